"""PyTorch's packed int4 weight-only CPU matmul on our 4-bit weights (gansurvey.kernels.cpu) and the model form
that runs 4-bit Linear layers on it (compress.precision.to_int4_cpu_engine)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress import QuantConfig, quantize
from gansurvey.compress.precision import to_int4_cpu_engine
from gansurvey.compress.quantized_layers import Int4PackLinear
from gansurvey.kernels import cpu
from gansurvey.kernels.formats import quantize_weight

pytestmark = pytest.mark.skipif(not cpu.available(), reason="this PyTorch lacks the packed int4 CPU matmul")


@pytest.mark.parametrize(("n", "k", "group", "symmetric", "op_group"), [
    (32, 64, 32, True, 32), (48, 256, 64, False, 64), (16, 384, None, False, 128), (64, 96, None, True, 32),
])
def test_the_packed_int4_matmul_computes_the_stored_weight(n, k, group, symmetric, op_group):
    g = torch.Generator().manual_seed(0)
    w = quantize_weight(torch.randn(n, k, generator=g), 4, group_size=group, symmetric=symmetric)
    assert cpu.int4_group(w) == op_group  # per channel: the largest allowed group dividing K
    packed = cpu.Int4Packed.of(w)
    x, bias = torch.randn(2, 3, k, generator=g), torch.randn(n, generator=g)
    want = x @ w.dequantize().T + bias
    assert torch.allclose(packed.matmul(x, bias), want, atol=1e-4, rtol=1e-5)


def test_weights_the_op_cannot_take_are_named():
    g = torch.Generator().manual_seed(0)
    assert cpu.int4_group(quantize_weight(torch.randn(32, 64, generator=g), 8)) is None  # not 4-bit
    assert cpu.int4_group(quantize_weight(torch.randn(24, 64, generator=g), 4)) is None  # N not a multiple of 16
    assert cpu.int4_group(quantize_weight(torch.randn(32, 64, generator=g), 4, group_size=16)) is None
    with pytest.raises(GanSurveyError, match="takes 4-bit weights with N a multiple of 16"):
        cpu.Int4Packed.of(quantize_weight(torch.randn(24, 64, generator=g), 4))


def test_a_quantized_mlp_runs_its_4_bit_linear_layers_on_the_op():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 48), nn.ReLU(), nn.Linear(48, 20)).eval()
    q = quantize(model, QuantConfig(4, symmetric=False))
    fast = to_int4_cpu_engine(q)
    assert isinstance(fast[0], Int4PackLinear) and isinstance(fast[2], Int4PackLinear)
    assert not isinstance(fast[4], Int4PackLinear)  # 20 outputs: not a multiple of 16, left as stored
    x = torch.randn(5, 64)
    with torch.no_grad():
        assert torch.allclose(fast(x), q(x), atol=1e-4, rtol=1e-5)
    with pytest.raises(GanSurveyError, match="no layer fits the packed int4 CPU matmul"):
        to_int4_cpu_engine(quantize(model, QuantConfig(8)))
