import pytest
import torch

from gansurvey.checks import GanSurveyError
from gansurvey.kernels import (
    CodebookWeight,
    QuantizedWeight,
    pack_codes,
    quantize_activations,
    quantize_weight,
    unpack_codes,
)
from gansurvey.kernels.formats import bytes_per_row


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 100), (2, 5, 13), (4, 64)])
def test_pack_unpack_round_trip_is_exact(bits, shape):
    codes = torch.randint(0, 2**bits, shape, generator=torch.Generator().manual_seed(bits))
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.shape == (*shape[:-1], bytes_per_row(shape[-1], bits))
    assert torch.equal(unpack_codes(packed, bits, shape[-1]), codes)


def test_pack_layout_lowest_bits_first_and_bitstream():
    assert pack_codes(torch.tensor([1, 2]), 4).tolist() == [0x21]
    assert pack_codes(torch.tensor([1, 2, 3, 0]), 2).tolist() == [0b00111001]
    assert pack_codes(torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1]), 1).tolist() == [0b1101, 1]
    # 3 bits, little-endian bitstream: 6 = 0b110 straddles bytes (bits 6, 7 of byte 0 = 0, 1; bit 0 of byte 1 = 1)
    assert pack_codes(torch.tensor([5, 7, 6]), 3).tolist() == [0b10111101, 0b1]
    assert pack_codes(torch.tensor([200, 3]), 8).tolist() == [200, 3]
    assert pack_codes(torch.tensor([[1], [2]], dtype=torch.uint8), 5).tolist() == [[1], [2]]


@pytest.mark.parametrize(
    ("codes", "bits", "match"),
    [
        (torch.tensor([0, 16]), 4, r"\[0, 16\)"),
        (torch.tensor([-1, 0]), 3, r"\[0, 8\)"),
        (torch.tensor([0, 1]), 0, "bits"),
        (torch.tensor([0, 1]), 9, "bits"),
        (torch.tensor([0.0, 1.0]), 4, "integer dtype"),
        (torch.tensor(1), 4, "scalar"),
    ],
)
def test_pack_rejects_bad_input(codes, bits, match):
    with pytest.raises(GanSurveyError, match=match):
        pack_codes(codes, bits)


def test_unpack_rejects_bad_input():
    with pytest.raises(GanSurveyError, match="uint8"):
        unpack_codes(torch.zeros(3, dtype=torch.int32), 4, 6)
    with pytest.raises(GanSurveyError, match="hold 3 bytes"):
        unpack_codes(torch.zeros(4, dtype=torch.uint8), 4, 6)


def test_quantized_weight_dequantize_formula():
    codes = torch.tensor([[0, 5, 15, 7, 9], [1, 2, 3, 4, 14]])
    scales = torch.tensor([[0.5, 2.0, 1.0], [1.0, 0.25, 4.0]])
    zeros = torch.tensor([[1.0, 2.0, 3.0], [0.0, 8.0, 7.0]])
    w = QuantizedWeight(pack_codes(codes, 4), 4, (2, 5), scales, zeros, group_size=2)
    want = torch.empty(2, 5)
    for n in range(2):
        for k in range(5):
            want[n, k] = (codes[n, k] - zeros[n, k // 2]) * scales[n, k // 2]
    assert torch.equal(w.dequantize(), want)
    sym = QuantizedWeight(pack_codes(codes, 4), 4, (2, 5), scales, None, group_size=2)
    assert torch.equal(sym.dequantize()[0, :2], torch.tensor([-8.0, -3.0]) * 0.5)
    assert w.num_groups == 3 and not w.symmetric and sym.symmetric
    assert w.rows(1, 2).dequantize().equal(want[1:])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scales": torch.ones(4, 2)}, r"scales must have shape \(4, 1\)"),
        ({"scales": torch.ones(4, 1, dtype=torch.float64)}, "scales must be a float32"),
        ({"zeros": torch.ones(4, 2)}, r"zeros must have shape \(4, 1\)"),
        ({"group_size": 0}, "group_size"),
        ({"group_size": 11}, "group_size"),
        ({"bits": 9}, "bits"),
        ({"shape": (4, 12), "group_size": None}, "packed must have shape"),
        ({"shape": (4,)}, r"shape must be \(N, K\)"),
        ({"packed": torch.zeros(4, 5, dtype=torch.int8)}, "packed must be a uint8"),
    ],
)
def test_quantized_weight_validation(kwargs, match):
    args = {"packed": torch.zeros(4, 5, dtype=torch.uint8), "bits": 4, "shape": (4, 10), "scales": torch.ones(4, 1),
            "zeros": None, "group_size": 10}
    args.update(kwargs)
    with pytest.raises(GanSurveyError, match=match):
        QuantizedWeight(**args)


def test_codebook_weight_per_layer_and_per_row():
    idx = torch.tensor([[0, 3, 1], [2, 2, 0]])
    packed = pack_codes(idx, 2)
    layer = CodebookWeight(packed, 2, (2, 3), torch.tensor([-1.0, 0.0, 0.5, 2.0]))
    assert layer.dequantize().tolist() == [[-1.0, 2.0, 0.0], [0.5, 0.5, -1.0]]
    rows = CodebookWeight(packed, 2, (2, 3), torch.arange(8.0).reshape(2, 4))
    assert rows.per_row and rows.dequantize().tolist() == [[0.0, 3.0, 1.0], [6.0, 6.0, 4.0]]
    assert rows.rows(1, 2).dequantize().tolist() == [[6.0, 6.0, 4.0]]
    with pytest.raises(GanSurveyError, match=r"codebook must have shape \(4,\)"):
        CodebookWeight(packed, 2, (2, 3), torch.zeros(8))
    with pytest.raises(GanSurveyError, match=r"codebook must have shape \(2, 4\)"):
        CodebookWeight(packed, 2, (2, 3), torch.zeros(3, 4))


def test_quantize_activations_per_row():
    x = torch.tensor([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0], [-3.0, 1.5, 0.0]])
    q, s = quantize_activations(x)
    assert q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (3,)
    assert q[0].tolist() == [127, -64, 32] and q[1].tolist() == [0, 0, 0] and q[2, 0] == -127
    assert torch.allclose(q.float() * s[:, None], x, atol=3 / 127 / 2 + 1e-6)
    with pytest.raises(GanSurveyError, match="floating-point"):
        quantize_activations(torch.ones(2, 2, dtype=torch.int32))
    with pytest.raises(GanSurveyError, match=r"\(M, K\)"):
        quantize_activations(torch.ones(2))


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_weight_error_shrinks_with_bits(bits, symmetric):
    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(0))
    q = quantize_weight(w, bits, group_size=16, symmetric=symmetric)
    err = (q.dequantize() - w).abs().max().item()
    assert err <= 2 * w.abs().max().item() / (2**bits - 2)
