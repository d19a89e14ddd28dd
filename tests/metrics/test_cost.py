"""Cost metrics: MACs against hand counts, params, stored bytes, per-layer breakdown, energy, latency."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.config import data_dir
from gansurvey.layers import CompressedLayer
from gansurvey.metrics.cost import (
    activation_traffic_bytes,
    cost_breakdown,
    count_macs,
    count_params,
    energy_estimate,
    state_bytes,
    stored_bytes,
    weight_traffic_bytes,
)
from gansurvey.metrics.energy import load_energy_table
from gansurvey.metrics.latency import REGIMES, classify_regime, measure_latency, measured_peaks, regime_report

# ---------------------------------------------------------------- MACs


def test_conv2d_macs_match_hand_count():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 17, 17)
    # out 9x9; every output element costs in_channels x 3 x 3 MACs
    assert count_macs(conv, x) == 2 * 8 * 9 * 9 * 3 * 3 * 3
    grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
    x = torch.randn(1, 8, 6, 5)
    assert count_macs(grouped, x) == 1 * 12 * 6 * 5 * (8 // 4) * 9
    # a plain convolution costs the same under torchprofile's rule
    assert count_macs(grouped, x, convention="torchprofile") == count_macs(grouped, x)


def _torchprofile_rule(layer: nn.ConvTranspose2d, out: torch.Tensor) -> int:
    # Written from torchprofile's rule: output elements x (weight dim 1 if out channels == weight dim 0,
    # else weight dim 0) x kernel elements.
    w = layer.weight.shape
    channels = w[1] if out.shape[1] == w[0] else w[0]
    return out.numel() * channels * w[2] * w[3]


@pytest.mark.parametrize("cin,cout,k,stride,pad,outpad,groups,h,w", [
    (6, 4, 4, 2, 1, 0, 1, 5, 7),
    (6, 4, 4, 2, 1, 1, 2, 5, 7),
    (4, 4, 3, 2, 1, 1, 2, 5, 7),
    (100, 16, 4, 1, 0, 0, 1, 1, 1),  # a DCGAN first layer: 1x1 -> 4x4, charged 16x its true cost
])
def test_conv_transpose_macs_true_and_torchprofile(cin, cout, k, stride, pad, outpad, groups, h, w):
    layer = nn.ConvTranspose2d(cin, cout, k, stride, pad, output_padding=outpad, groups=groups)
    n = 2
    x = torch.randn(n, cin, h, w)
    out = layer(x)
    h_out = (h - 1) * stride - 2 * pad + (k - 1) + outpad + 1
    w_out = (w - 1) * stride - 2 * pad + (k - 1) + outpad + 1
    assert out.shape == (n, cout, h_out, w_out)
    # each input element is scattered into out_channels / groups kernels
    true = n * cin * h * w * (cout // groups) * k * k
    assert count_macs(layer, x) == true
    profiled = count_macs(layer, x, convention="torchprofile")
    assert profiled == _torchprofile_rule(layer, out)
    expected_ratio = (h_out * w_out) / (h * w)
    if cin != cout:  # the rule charges all input channels, not in_channels / groups
        expected_ratio *= groups
    assert profiled / true == pytest.approx(expected_ratio)
    assert profiled > true


def test_stride2_conv_transpose_overcount_is_stride_squared():
    layer = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1)
    x = torch.randn(1, 6, 8, 8)  # 8x8 -> 16x16: exactly stride^2 more output positions
    assert count_macs(layer, x, "torchprofile") == 4 * count_macs(layer, x)


def test_linear_macs_and_tuple_input():
    assert count_macs(nn.Linear(10, 7), torch.randn(3, 10)) == 3 * 10 * 7
    assert count_macs(nn.Linear(10, 7, bias=False), (torch.randn(5, 10),), "torchprofile") == 5 * 10 * 7


def test_count_macs_restores_training_modes():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[2].eval()
    before = model[1].running_mean.clone()
    count_macs(model, torch.randn(8, 4))
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[1].running_mean, before)  # ran in eval mode: statistics untouched


# ---------------------------------------------------------------- params and bytes


class _Packed(nn.Module):
    """A stand-in layer: int8 codes, a float scale, a non-persistent cache."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("codes", torch.zeros(10, 6, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(10))
        self.register_buffer("cache", torch.zeros(100), persistent=False)

    def forward(self, x):
        return x @ (self.codes.float() * self.scale[:, None]).t()


class _Declared(CompressedLayer, _Packed):
    """The same layer following the compressed-layer protocol: it declares its count and compute dtype."""

    compute_dtype = torch.int8

    def __init__(self, declared: int) -> None:
        super().__init__()
        self.declared = declared

    def stored_params(self) -> int:
        return self.declared

    def dense_weight(self) -> torch.Tensor:
        return self.codes.float() * self.scale[:, None]


def test_count_params_rule():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    # conv weight + bias, BN affine (running statistics excluded), linear
    assert count_params(model) == (8 * 3 * 9 + 8) + (8 + 8) + (8 * 2 + 2)
    assert count_params(_Packed()) == 60 + 10  # codes and scale; the non-persistent cache is not stored
    assert count_params(_Declared(123)) == 123
    assert count_params(nn.Sequential(_Declared(7), nn.Linear(2, 2))) == 7 + 6
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert count_params(tied) == 16


def test_stored_bytes_are_real_and_grow():
    small, large = nn.Linear(16, 16), nn.Linear(64, 64)
    assert state_bytes(small) == (16 * 16 + 16) * 4
    assert stored_bytes(small) >= state_bytes(small)
    assert stored_bytes(large) > stored_bytes(small)
    assert stored_bytes(large) - stored_bytes(small) >= state_bytes(large) - state_bytes(small)
    # int8 codes take a quarter of float bytes
    assert state_bytes(_Packed()) == 60 * 1 + 10 * 4
    assert weight_traffic_bytes(small) == state_bytes(small)


# ---------------------------------------------------------------- breakdown and energy


class _Inline(nn.Module):
    """A container that owns a parameter and does a matmul in its own forward besides its child's work."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(6, 5))
        self.body = nn.Sequential(nn.ConvTranspose2d(5, 4, 4, 2, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Tanh())

    def forward(self, z):
        return self.body((z @ self.proj)[:, :, None, None].expand(-1, -1, 3, 3))


@pytest.mark.parametrize("model,x", [
    (nn.Sequential(nn.ConvTranspose2d(8, 6, 4, 1, 0), nn.BatchNorm2d(6), nn.ReLU(),
                   nn.ConvTranspose2d(6, 1, 4, 2, 1), nn.Tanh()), torch.randn(3, 8, 1, 1)),
    (_Inline(), torch.randn(2, 6)),
])
def test_breakdown_totals_match_whole_model_counts(model, x):
    table = cost_breakdown(model, x)
    assert int(table["macs"].sum()) == count_macs(model, x)
    assert int(table["params"].sum()) == count_params(model)
    assert int(table["weight_bytes"].sum()) == weight_traffic_bytes(model)
    assert int((table["input_bytes"] + table["output_bytes"]).sum()) == activation_traffic_bytes(model, x)
    assert table["total_uj"].to_numpy() == pytest.approx(
        (table["compute_uj"] + table["weight_dram_uj"] + table["activation_uj"]).to_numpy())
    assert {"ConvTranspose2d", "BatchNorm2d", "Tanh"} <= set(table["type"])


def test_inline_container_work_is_charged_to_its_row():
    table = cost_breakdown(_Inline(), torch.randn(2, 6)).set_index("layer")
    assert table.loc["(model)", "macs"] == 2 * 6 * 5
    assert table.loc["(model)", "params"] == 30
    assert table.loc["body.0", "macs"] == 2 * 5 * 3 * 3 * 4 * 16


def _csv_energy(operation: str, bits: int) -> float:
    with open(data_dir() / "energy_45nm.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["operation"] == operation and int(row["bits"]) == bits:
                return float(row["energy_pj"])
    raise AssertionError(f"{operation}/{bits} not in the energy table")


def test_layer_energy_by_hand():
    layer = nn.Linear(20, 10)
    x = torch.randn(4, 20)
    row = cost_breakdown(layer, x).iloc[0]
    macs = 4 * 20 * 10
    mac_pj = _csv_energy("float_mult", 32) + _csv_energy("float_add", 32)
    weight_bytes = (20 * 10 + 10) * 4
    act_bytes = (4 * 20 + 4 * 10) * 4
    assert row["macs"] == macs and row["precision"] == "fp32" and bool(row["energy_verified"])
    assert row["compute_uj"] == pytest.approx(macs * mac_pj * 1e-6)
    assert row["weight_dram_uj"] == pytest.approx(weight_bytes * _csv_energy("dram_access", 32) / 4 * 1e-6)
    assert row["activation_uj"] == pytest.approx(act_bytes * _csv_energy("sram_access", 32) / 4 * 1e-6)
    in_dram = energy_estimate(layer, x, activations_in="dram")
    assert in_dram["activation_uj"] == pytest.approx(act_bytes * 160 * 1e-6)
    est = energy_estimate(layer, x)
    assert est["total_uj"] == pytest.approx(row["total_uj"])
    memory = est["weight_dram_uj"] + est["activation_uj"]
    assert est["memory_share"] == pytest.approx(memory / est["total_uj"])
    assert est["memory_share"] > 0.9  # the survey's premise: DRAM weight reads dominate at this size
    assert est["verified"]


def test_int8_compute_uses_unverified_rows():
    layer = _Declared(60)
    est = energy_estimate(layer, torch.randn(3, 6))
    assert not est["verified"]
    assert est["compute_uj"] == pytest.approx(3 * 6 * 10 * (0.2 + 0.03) * 1e-6)
    table = load_energy_table()
    assert table.mac_pj("fp32") == pytest.approx(4.6) and table.mac_verified("fp32")
    assert not table.mac_verified(torch.float16)


def test_shipped_energy_table_matches_literature():
    table = load_energy_table()
    frame = table.to_frame()
    assert set(frame.loc[frame["mark"] == "V", "bits"]) == {32}
    assert len(frame[frame["mark"] == "V"]) == 7 and len(frame[frame["mark"] == "UNVERIFIED"]) == 4
    assert table.energy_pj("dram_access", 32) == 640 and table.energy_pj("float_mult", 32) == 3.7
    assert table.dram_pj_per_byte() == 160 and table.sram_pj_per_byte() == 1.25


def _write(tmp_path, text: str):
    path = tmp_path / "energy.csv"
    path.write_text(text)
    return path


HEADER = "operation,bits,energy_pj,mark,source\n"


@pytest.mark.parametrize("text,expected", [
    ("operation,bits,mark,source\nint_add,32,V,x\n", ["line 1", "energy_pj"]),
    (HEADER + "int_add,32,0.1,V,x\nfloat_add,32,lots,V,x\n", ["line 3", "'energy_pj'", "'lots'"]),
    (HEADER + "int_add,32,0.1,maybe,x\n", ["line 2", "'mark'", "'maybe'", "UNVERIFIED"]),
    (HEADER + "int_add,thirty,0.1,V,x\n", ["line 2", "'bits'"]),
    (HEADER + "int_add,32,0.1,V,x\nint_add,32,0.2,V,y\n", ["line 3", "repeated"]),
    (HEADER + "int_add,32,-1,V,x\n", ["line 2", "'energy_pj'"]),
])
def test_malformed_energy_rows_name_line_and_column(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(GanSurveyError) as info:
        load_energy_table(path)
    message = str(info.value)
    assert str(path.resolve()) in message or str(path) in message
    for part in expected:
        assert part in message


def test_custom_energy_table_is_used(tmp_path):
    text = (HEADER + "float_add,32,1,V,t\nfloat_mult,32,1,V,t\nsram_access,32,0,V,t\ndram_access,32,4,V,t\n")
    table = load_energy_table(_write(tmp_path, text))
    est = energy_estimate(nn.Linear(3, 2, bias=False), torch.randn(1, 3), energy=table)
    assert est["compute_uj"] == pytest.approx(6 * 2 * 1e-6)
    assert est["weight_dram_uj"] == pytest.approx(6 * 4 * 1e-6)  # 24 bytes at 1 pJ/byte


# ---------------------------------------------------------------- latency and regimes


def test_measure_latency_rows_and_columns():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    model.train()
    x = torch.randn(5, 1, 8, 8)
    frame = measure_latency(model, x, batch_sizes=(1, 3), warmup=1, repeats=2, device="cpu")
    assert list(frame.columns) == ["batch", "median_ms", "p25_ms", "p75_ms", "per_sample_ms", "repeats",
                                   "device", "threads"]
    assert frame["batch"].tolist() == [1, 3]
    per_batch = (frame["per_sample_ms"] * frame["batch"]).to_numpy()
    assert per_batch == pytest.approx(frame["median_ms"].to_numpy())
    assert (frame["p25_ms"] <= frame["median_ms"]).all() and (frame["median_ms"] <= frame["p75_ms"]).all()
    assert frame["threads"].iloc[0] == torch.get_num_threads() and frame["device"].iloc[0]
    assert model.training and model[0].weight.device.type == "cpu"


PEAKS = {"gflops": 100.0, "gbytes_per_s": 10.0, "call_overhead_s": 1e-5}


def test_classify_regime_with_given_peaks():
    # 2e10 FLOP at 100 GFLOP/s = 0.2 s, 1 MB at 10 GB/s = 0.1 ms
    assert classify_regime(10**10, 10**6, 0.25, peaks=PEAKS) == "compute-bound"
    # 2 kFLOP, 1 GB at 10 GB/s = 0.1 s
    assert classify_regime(10**3, 10**9, 0.12, peaks=PEAKS, layers=10) == "memory-bound"
    # tiny work, latency at the per-call overhead of 8 layers
    assert classify_regime(10, 100, 1e-4, peaks=PEAKS, layers=8) == "launch-bound"
    # large work, but so slow that neither peak is approached: overhead dominates
    assert classify_regime(10**6, 10**4, 1.0, peaks=PEAKS) == "launch-bound"
    report = regime_report(10**10, 10**6, 0.25, peaks=PEAKS)
    assert report["achieved_gflops"] == pytest.approx(80.0)
    assert report["machine_balance_flop_per_byte"] == pytest.approx(10.0)
    assert report["regime"] in REGIMES


def test_device_peaks_are_positive_and_cached():
    first = measured_peaks("cpu")
    assert set(first) == {"gflops", "gbytes_per_s", "call_overhead_s"}
    assert all(v > 0 and math.isfinite(v) for v in first.values())
    assert measured_peaks("cpu") == first


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_name_the_value():
    layer, x = nn.Linear(2, 2), torch.randn(1, 2)
    with pytest.raises(GanSurveyError, match="'flops'.*'torchprofile'"):
        count_macs(layer, x, convention="flops")
    with pytest.raises(GanSurveyError, match="batch size.*0"):
        measure_latency(layer, x, batch_sizes=(1, 0), device="cpu")
    with pytest.raises(GanSurveyError, match="repeats.*-1"):
        measure_latency(layer, x, repeats=-1, device="cpu")
    with pytest.raises(GanSurveyError, match=r"shape \(0, 2\) has no first sample"):
        measure_latency(layer, torch.randn(0, 2), device="cpu")
    with pytest.raises(GanSurveyError, match="batch_sizes is empty"):
        measure_latency(layer, x, batch_sizes=(), device="cpu")
    with pytest.raises(GanSurveyError, match="'l2'.*'sram'"):
        cost_breakdown(layer, x, activations_in="l2")
    with pytest.raises(GanSurveyError, match="latency"):
        classify_regime(1, 1, 0.0, peaks=PEAKS)
    with pytest.raises(GanSurveyError, match="precision 'int4'"):
        load_energy_table().mac_pj("int4")
    with pytest.raises(GanSurveyError, match="does not exist"):
        load_energy_table("/nonexistent/energy.csv")
