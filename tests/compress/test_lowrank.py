"""Low-rank factorization: exact at full rank on every layer type, really smaller at low rank, applicable to any
generator (the package's and plain-torch ones), and clear about what it refuses."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import gansurvey as gs
from gansurvey.checks import GanSurveyError
from gansurvey.compress import (
    LOWRANK_METHODS,
    LowRankConfig,
    MagnitudePruneConfig,
    chain_method,
    compress,
    factorizable_layers,
    factorize,
    factorized_layers,
    lowrank_report,
)
from gansurvey.compress.base import UncompressedWarning
from gansurvey.compress.lowrank import _tt_modes, evbmf_rank, full_ranks
from gansurvey.metrics.cost import count_macs, count_params, stored_bytes
from gansurvey.models.generators import DCGANGenerator, ResNetGenerator
from tests.conftest import QUICK, TINY, TINY_INPUT_SHAPES

# layer, input: every layer type and geometry the methods must reproduce exactly at full rank
LAYERS = {
    "linear": (lambda: nn.Linear(24, 36), (3, 24)),
    "conv-stride2": (lambda: nn.Conv2d(6, 10, 3, 2, 1), (2, 6, 9, 9)),
    "conv-reflect-rect": (lambda: nn.Conv2d(6, 5, (3, 5), 1, (1, 2), padding_mode="reflect", bias=False),
                          (2, 6, 8, 8)),
    "convT-s2-p1-op1": (lambda: nn.ConvTranspose2d(6, 10, 3, 2, 1, output_padding=1), (2, 6, 5, 5)),
    "convT-dilated": (lambda: nn.ConvTranspose2d(5, 4, (4, 3), (2, 3), 1, output_padding=(1, 2), dilation=(1, 2)),
                      (2, 5, 4, 4)),
}
CASES = [(layer, method) for layer, (make, _) in LAYERS.items() for method, kinds in LOWRANK_METHODS.items()
         if isinstance(make(), kinds)]


@pytest.mark.parametrize(("layer", "method"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_full_rank_reproduces_the_dense_layer(layer, method):
    make, shape = LAYERS[layer]
    torch.manual_seed(0)
    model, x = nn.Sequential(make()), torch.randn(*shape)
    dense = model[0]
    configs = [LowRankConfig(method, rank=1.0, layers=("0",))]
    if method != "cp":
        configs.append(LowRankConfig(method, energy=1.0, layers=("0",)))
    for config in configs:
        out = factorize(model, config)
        factor = out[0]
        assert factor in factorized_layers(out).values()
        with torch.no_grad():
            torch.testing.assert_close(out(x), model(x), atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(factor.dense_weight(), dense.weight, atol=1e-5, rtol=1e-4)
        if dense.bias is not None:
            torch.testing.assert_close(factor.dense_bias(), dense.bias)
        assert count_params(out) == factor.stored_params()


def test_a_real_module_tree_of_smaller_layers():
    conv = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False))
    out = factorize(conv, LowRankConfig("tucker2", rank=8))
    core = out[0]
    assert [type(m).__name__ for m in core] == ["Conv2d", "ConvTranspose2d", "Conv2d"]
    assert core[0].kernel_size == (1, 1) and core[2].kernel_size == (1, 1)
    # only the core keeps the transposed geometry
    assert core[1].stride == (2, 2) and core[1].padding == (1, 1) and core[1].weight.shape == (8, 8, 4, 4)
    cp = factorize(conv, LowRankConfig("cp", rank=16))[0]
    assert [m.groups for m in cp] == [1, 16, 16, 1]
    assert cp[1].stride == (2, 1) and cp[2].stride == (1, 2)
    x = torch.randn(1, 64, 4, 4)
    assert cp(x).shape == conv(x).shape == (1, 32, 8, 8)


@pytest.mark.parametrize("method", ["svd", "tucker2", "cp"])
def test_low_rank_cuts_params_macs_and_bytes(method):
    torch.manual_seed(0)
    g = DCGANGenerator(base=16).eval()
    x = g.sample_inputs(1, torch.Generator().manual_seed(0))
    small = factorize(g, LowRankConfig(method, rank=0.1 if method == "cp" else 0.25))
    assert factorized_layers(small)
    assert count_params(small) < 0.6 * count_params(g)
    assert count_macs(small, x) < count_macs(g, x)
    assert stored_bytes(small) < stored_bytes(g)
    for row in lowrank_report(small):
        assert row["params"] < row["dense_params"]


def test_tensor_train_linear_shrinks_an_mlp_and_is_exact_at_full_rank():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 784))
    x = torch.randn(5, 100)
    exact = factorize(mlp, LowRankConfig("tt", rank=1.0, layers=("0", "2")))
    with torch.no_grad():
        torch.testing.assert_close(exact(x), mlp(x), atol=2e-5, rtol=1e-4)
    small = factorize(mlp, LowRankConfig("tt", rank=4, cores=3))
    layer = small[2]
    assert layer.in_modes == (4, 8, 8) and layer.out_modes == (7, 8, 14) and layer.ranks == (4, 4)
    assert count_params(mlp) / count_params(small) > 20
    assert small(torch.randn(2, 3, 100)).shape == (2, 3, 784)  # leading dimensions pass through


def test_rank_rules():
    conv = nn.Conv2d(8, 16, 3)
    assert full_ranks(conv, "svd") == (16,) and full_ranks(conv, "tucker2") == (16, 8)
    assert full_ranks(conv, "cp") == (72,)
    assert _tt_modes(784, 3) == (7, 8, 14) and _tt_modes(13, 2) == (1, 13)
    out = factorize(nn.Sequential(conv), LowRankConfig("tucker2", rank=0.5, layers=("0",)))
    assert out[0].ranks == (8, 4)
    out = factorize(nn.Sequential(conv), LowRankConfig("tucker2", rank=12, layers=("0",)))
    assert out[0].ranks == (12, 8)  # an integer rank is clipped to a smaller mode's full rank
    # energy: a matrix with singular values 3, 2, 1 (shares 9/14, 4/14, 1/14)
    u, _ = torch.linalg.qr(torch.randn(10, 3))
    v, _ = torch.linalg.qr(torch.randn(12, 3))
    lin = nn.Linear(12, 10)
    with torch.no_grad():
        lin.weight.copy_(u @ torch.diag(torch.tensor([3.0, 2.0, 1.0])) @ v.T)
    for energy, rank in ((0.6, 1), (0.9, 2), (0.95, 3)):
        assert factorize(nn.Sequential(lin), LowRankConfig("svd", energy=energy, layers=("0",)))[0].ranks == (rank,)


def test_vbmf_finds_the_rank_of_a_noisy_low_rank_matrix():
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(64, 6, generator=g) @ torch.randn(6, 80, generator=g)
    assert evbmf_rank(signal + 0.05 * torch.randn(64, 80, generator=g)) == 6
    assert evbmf_rank(torch.randn(1, 9)) == 1
    lin = nn.Linear(80, 64)
    with torch.no_grad():
        lin.weight.copy_(signal + 0.05 * torch.randn(64, 80, generator=g))
    assert factorize(nn.Sequential(lin), LowRankConfig("svd", rank="vbmf"))[0].ranks == (6,)


# ------------------------------------------------------------------ any generator, built here or not


class CycleGANResnet(nn.Module):
    """A CycleGAN-style ResNet generator in plain torch (instance norm, reflection padding, transposed convs)."""

    def __init__(self, ngf: int = 8, blocks: int = 2) -> None:
        super().__init__()

        def block(c):
            return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                                 nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True),
                                  nn.Conv2d(ngf, ngf * 2, 3, 2, 1), nn.InstanceNorm2d(ngf * 2), nn.ReLU(True))
        self.blocks = nn.ModuleList(block(ngf * 2) for _ in range(blocks))
        self.tail = nn.Sequential(nn.ConvTranspose2d(ngf * 2, ngf, 3, 2, 1, output_padding=1),
                                  nn.InstanceNorm2d(ngf), nn.ReLU(True), nn.ReflectionPad2d(3),
                                  nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def forward(self, x):
        x = self.head(x)
        for b in self.blocks:
            x = x + b(x)
        return self.tail(x)


class TinyUNet(nn.Module):
    """A two-level pix2pix-style U-Net in plain torch (skip connections by concatenation)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.d1 = nn.Conv2d(3, c, 4, 2, 1)
        self.d2 = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.BatchNorm2d(2 * c))
        self.u2 = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.BatchNorm2d(c))
        self.u1 = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * c, 3, 4, 2, 1), nn.Tanh())

    def forward(self, x):
        e1 = self.d1(x)
        return self.u1(torch.cat([self.u2(self.d2(e1)), e1], 1))


FOREIGN = {"cyclegan-resnet": (CycleGANResnet, (1, 3, 16, 16)), "unet": (TinyUNet, (1, 3, 16, 16))}
PACKAGE = {**{kind: (make, TINY_INPUT_SHAPES[kind]) for kind, make in TINY.items()}, **FOREIGN}


def _input(model, shape):
    return torch.randn(*shape) if shape else model.sample_inputs(1, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", list(PACKAGE))
def test_factorize_any_generator(arch):
    make, shape = PACKAGE[arch]
    torch.manual_seed(0)
    model = make().eval()
    x = _input(model, shape)
    before = copy.deepcopy(model.state_dict())
    for method, kinds in LOWRANK_METHODS.items():
        if not any(isinstance(m, kinds) for m in model.modules()):
            continue
        names = tuple(factorizable_layers(model, method))
        # CP's ALS is the slow one: at low rank on the last two layers only (the exact check below covers all)
        config = LowRankConfig("cp", rank=2, layers=names[-2:]) if method == "cp" else LowRankConfig(method, rank=0.5)
        out = factorize(model, config).eval()
        with torch.no_grad():
            assert out(x).shape == model(x).shape
        assert out.compression == [config.to_dict()]
        # every factorizable layer (including transposed convolutions) at full rank: the same function
        exact = factorize(model, LowRankConfig(method, rank=1.0, layers=names)).eval()
        assert set(factorized_layers(exact)) == set(names)
        with torch.no_grad():
            torch.testing.assert_close(exact(x), model(x), atol=1e-4, rtol=1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_factorized_layers_train_and_chain_with_pruning():
    g = DCGANGenerator(base=8)
    small = factorize(g, LowRankConfig("tucker2", rank=0.5))
    x = g.sample_inputs(2, torch.Generator().manual_seed(0))
    small(x).square().mean().backward()
    assert all(p.grad is not None for p in small.parameters())
    both = compress(g, [MagnitudePruneConfig(0.5), LowRankConfig("svd", rank=0.5)])
    assert [c["family"] for c in both.compression] == ["pruning", "low-rank"]
    assert both(x).shape == g(x).shape
    assert chain_method(both.compression).endswith("+svd")
    with pytest.warns(UncompressedWarning, match="LowRankConfig changed nothing"):  # #21: and it says so
        again = factorize(small, LowRankConfig("svd", rank=0.5))  # factorized layers are left alone
    assert set(factorized_layers(again)) == set(factorized_layers(small))


def test_factorization_is_deterministic():
    g = ResNetGenerator(ngf=8, blocks=1)
    for config in (LowRankConfig("cp", rank=0.1), LowRankConfig("tucker2", rank=0.3)):
        a, b = factorize(g, config), factorize(g, config)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_measure_records_low_rank():
    bench = gs.get_benchmark("gaussians-mlp")
    record = gs.measure(factorize(bench.new_generator(), LowRankConfig("svd", rank=0.25)), bench, profile=QUICK)
    assert record.family == "low-rank" and record.method == "svd"
    assert record.params < gs.measure(bench.new_generator(), bench, profile=QUICK).params


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("kwargs", "words"), [
    (dict(method="qr", rank=2), ["'qr'", "'svd'", "'tucker2'", "'cp'", "'tt'"]),
    (dict(method="svd", rank=0), ["rank 0", "an integer >= 1", "(0, 1]", "'vbmf'"]),
    (dict(method="svd", rank=-0.5), ["rank -0.5", "(0, 1]"]),
    (dict(method="svd", rank=4.0), ["rank 4.0", "pass 4"]),
    (dict(method="svd", rank="auto"), ["'auto'", "'vbmf'"]),
    (dict(method="svd", rank=True), ["True", "an integer >= 1"]),
    (dict(method="svd", energy=0.0), ["energy", "(0, 1]", "0.0"]),
    (dict(method="svd", energy=1.2), ["energy", "(0, 1]", "1.2"]),
    (dict(method="svd"), ["exactly one of rank", "neither"]),
    (dict(method="svd", rank=2, energy=0.5), ["exactly one of rank", "both"]),
    (dict(method="cp", energy=0.9), ["'cp'", "energy=0.9", "integer >= 1 or a fraction"]),
    (dict(method="cp", rank="vbmf"), ["'cp'", "rank='vbmf'"]),
    (dict(method="svd", rank=2, cores=3), ["cores=3", "'tt'"]),
    (dict(method="tt", rank=2, cores=1), ["cores", ">= 2", "got 1"]),
    (dict(method="svd", rank=2, layers="net.0"), ["'net.0'", "tuple of module names"]),
])
def test_bad_configs_name_the_value_and_what_is_allowed(kwargs, words):
    with pytest.raises(GanSurveyError) as err:
        LowRankConfig(**kwargs)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize(("config", "words"), [
    (LowRankConfig("svd", rank=2, layers=("net.99",)), ["'net.99'", "does not exist", "'net.0'", "'net.3'"]),
    (LowRankConfig("svd", rank=2, layers=("net.1",)), ["'net.1'", "BatchNorm2d", "Linear, Conv2d, ConvTranspose2d"]),
    (LowRankConfig("tt", rank=2), ["DCGANGenerator", "'tt'", "Linear"]),
    (LowRankConfig("tucker2", rank=2, layers=("net.0",), ), None),  # allowed: a control
    (LowRankConfig("svd", rank=9, layers=("net.9",)), ["rank 9", "'net.9'", "1..1"]),
    (LowRankConfig("svd", rank=5000), ["rank 5000", "every layer", "1..32"]),
])
def test_bad_requests_leave_the_model_untouched(config, words):
    g = DCGANGenerator(base=8)
    before, structure = copy.deepcopy(g.state_dict()), repr(g)
    if words is None:
        factorize(g, config)
    else:
        with pytest.raises(GanSurveyError) as err:
            factorize(g, config)
        for word in words:
            assert word in str(err.value), (word, str(err.value))
    assert repr(g) == structure and not hasattr(g, "compression")
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())


def test_grouped_convolutions_are_refused_by_name_and_skipped_otherwise():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, groups=4), nn.Conv2d(8, 16, 3))
    with pytest.raises(GanSurveyError, match=r"'0' is a Conv2d with groups=4.*eligible layers: '1'"):
        factorize(model, LowRankConfig("tucker2", rank=2, layers=("0",)))
    out = factorize(model, LowRankConfig("tucker2", rank=2))
    assert list(factorized_layers(out)) == ["1"]
    with pytest.raises(GanSurveyError, match="factorize needs a torch module, got str"):
        factorize("g", LowRankConfig("svd", rank=2))
    with pytest.raises(GanSurveyError, match="factorize needs a factorize config, got MagnitudePruneConfig"):
        factorize(model, MagnitudePruneConfig(0.5))


# ------------------------------------------------------------------ study layer, claim, benchmark


def test_sweep_sensitivity_and_matched_runs_on_the_toy(quick_profile):
    tiny = quick_profile(eval_samples=100, latency_repeats=1, latency_warmup=0)
    from gansurvey.claims.lowrank import lowrank_vs_pruning
    from gansurvey.experiments import lowrank as xl
    from gansurvey.records import records_frame, with_settings

    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    g, d = bench.new_generator(), bench.new_discriminator()
    configs = xl.lowrank_configs({"svd": [0.25]})
    assert list(configs) == ["svd r=0.25"]
    records, samples = xl.lowrank_sweep(bench, g, d, configs, steps=2, notebook="03_low_rank", profile=tiny)
    frame = with_settings(records_frame(records), ["method", "rank", "finetuned"])
    assert frame["stage"].tolist() == ["no fine-tuning", "trained"]
    assert set(frame["method"]) == {"svd"} and set(frame["family"]) == {"low-rank"}
    assert set(samples) == {"svd r=0.25"}
    seeded, _ = xl.lowrank_sweep(bench, g, d, configs, steps=1, seeds=[4, 5], notebook="03_low_rank", profile=tiny)
    assert [(r.technique, r.seed) for r in seeded] == [("svd r=0.25 (no fine-tuning)", 4), ("svd r=0.25", 4),
                                                      ("svd r=0.25", 5)]  # factorized once, tuned per seed
    table = xl.lowrank_sensitivity(bench, g, "svd", [0.25], profile=tiny, quality=False)
    assert set(table["layer"]) == {"net.0", "net.2", "net.4", "net.6"} and (table["params_saved"] > 0).all()
    runs = xl.lowrank_vs_pruning_runs(bench, g, d, configs, seeds=[0], steps=2, mac_tolerance=0.5,
                                      profile=tiny)
    assert {r.family for r in runs} == {"low-rank", "pruning"}
    check = lowrank_vs_pruning(records_frame(runs))
    assert check.id == "LR" and check.seeds == 1 and len(check.evidence) == 1
    assert str(check.verdict) in ("indicative", "not testable")  # one seed never decides
    assert "indicative" in " ".join(check.notes)


def _run(arm, seed, value, bench="b", macs=100):
    from gansurvey.records import Measurement

    return Measurement(notebook="03_low_rank", benchmark=bench, technique=arm, family=arm, seed=seed, macs=macs,
                       primary_metric="domain_fid", primary_value=value, higher_is_better=False, profile="full",
                       settings={"arm": arm, "match": "svd r=0.25", "target_macs": 100})


@pytest.mark.parametrize(("lowrank", "pruned", "verdict"), [
    ([10, 11, 12], [20, 21, 22], "supported"),
    ([20, 21, 22], [10, 11, 12], "contradicted"),
    ([10, 15, 20], [12, 16, 19], "indicative"),
])
def test_lowrank_claim_is_computed_with_its_spread(lowrank, pruned, verdict):
    from gansurvey.claims.lowrank import lowrank_vs_pruning
    from gansurvey.records import records_frame

    records = [_run("low-rank", s, v) for s, v in enumerate(lowrank)] + [
        _run("pruning", s, v) for s, v in enumerate(pruned)]
    check = lowrank_vs_pruning(records_frame(records))
    assert str(check.verdict) == verdict and check.seeds == 3
    row = check.evidence.iloc[0]
    assert row["lowrank_sd"] == pytest.approx(torch.tensor(lowrank, dtype=torch.float64).std().item())
    assert "indicative" not in " ".join(check.notes)
    assert str(lowrank_vs_pruning(records_frame(records[:3])).verdict) == "not testable"


def test_mnist_mlp_benchmark_is_the_tensorizing_gans_setting():
    bench = gs.get_benchmark("mnist-mlp")
    g = bench.new_generator()
    x = bench.example_input(2)
    out = g(x)
    assert out.shape == (2, 1, 32, 32) and torch.all(out[..., :2, :] == -1.0)
    assert [m.out_features for m in g.modules() if isinstance(m, nn.Linear)][-1] == 784
    assert bench.new_discriminator()(out).shape == (2,)
    small = factorize(g, LowRankConfig("tt", rank=4))
    assert count_params(g) / count_params(small) > 35
    assert set(factorized_layers(small)) == {"net.0", "net.3", "net.6"}


def test_lowrank_claim_leaves_out_pairs_not_matched_in_macs():
    from gansurvey.claims.lowrank import lowrank_vs_pruning
    from gansurvey.records import records_frame

    records = [_run("low-rank", 0, 10.0), _run("pruning", 0, 20.0, macs=50)]
    check = lowrank_vs_pruning(records_frame(records))
    assert str(check.verdict) == "not testable" and check.evidence.empty
    assert any("MACs not within 10%" in n for n in check.notes)
    assert str(lowrank_vs_pruning(records_frame(records), mac_tolerance=0.6).verdict) == "indicative"  # 1 seed
