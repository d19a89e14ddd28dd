"""Quantized layers of the precision family: the quantizer arithmetic, the packed layers, fake quantization for
quantization-aware training, and the export to PyTorch's integer CPU engines.

Layout. Every weight is handled as the GEMM matrix ``M`` (``N x K``) that :mod:`gansurvey.kernels` computes
with (``x @ M.T``): ``nn.Linear.weight`` itself, ``conv2d_weight_matrix`` (``Cout x Cin/groups*kh*kw``) and
``conv_transpose2d_weight_matrix`` (``Cout*kh*kw x Cin/groups``). Its rows belong to output channels (``R`` rows
per channel: 1, or ``kh*kw`` for a transposed convolution) and its columns to input channels. A *scale group*
is the set of weights sharing one scale: the whole tensor (per-tensor), one output channel (per-channel), or one
output channel times ``g`` input channels (per-group; for a convolution the group spans the kernel window too).
So a transposed convolution quantized per channel has ``Cout`` scales, as its ``Conv2d`` counterpart, not one
per GEMM row.

Grids (``w = (code - zero) * scale`` everywhere, the :class:`~gansurvey.kernels.QuantizedWeight` formula):

- symmetric, ``b >= 2`` bits: codes ``0 .. 2**b - 1``, implicit zero ``2**(b-1)`` (not stored);
- asymmetric: codes ``0 .. 2**b - 1`` and an integer zero point per scale group, stored as ``uint8``
  (Jacob et al. 2018, integer-arithmetic-only inference);
- binary (``b = 1``, symmetric): ``w = +-alpha`` with ``alpha = mean|w|`` (XNOR-Net, Rastegari et al. 2016),
  i.e. zero ``0.5`` and scale ``2 * alpha``;
- ternary (``b = 2``): ``w in {-alpha, 0, +alpha}``, threshold ``0.7 mean|w|`` (TWN, Li et al. 2016), i.e.
  codes ``1 .. 3`` around zero ``2``.

Storage (a layer's ``state_dict``): ``packed`` codes (``uint8``, two 4-bit or four 2-bit or eight 1-bit codes
per byte; 3 and 6 bits as a packed bitstream), ``scales`` (``float32``), ``zeros`` (``uint8``, asymmetric only),
the ``bias`` (``float32``) and, with activation quantization, ``act_qparams`` (scale and zero point of the
input). The dequantized weight is decoded once and cached outside the state (it is not stored).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gansurvey import kernels
from gansurvey.checks import GanSurveyError, check_choice
from gansurvey.kernels import QuantizedWeight, pack_codes, unpack_codes
from gansurvey.layers import CompressedLayer

_LOG = logging.getLogger(__name__)

#: Engines a quantized layer's forward may run on (:meth:`QuantizedLayer.engine` names the one it takes):
#: ``triton-w8a8`` (int8 x int8 GEMM, int32 accumulation, static activation grid folded in exactly),
#: ``triton-weight-only`` (codes decoded in the GEMM), ``triton-weight-only-fakequant`` (``activation_bits=8``
#: with a weight whose values do not fit int8, i.e. 8-bit asymmetric: the input is rounded to its grid in float,
#: then the weight-only kernel; logged once per layer), ``reference-dense`` / ``reference-dense-fakequant``
#: (the dequantized weight, decoded once and cached, through torch's float ops).
LAYER_ENGINES = ("triton-w8a8", "triton-weight-only", "triton-weight-only-fakequant", "reference-dense",
                 "reference-dense-fakequant")

#: Layer types the precision family quantizes.
QUANTIZABLE_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
#: Integer engines of PyTorch that compute every layer type right on this machine (``x86`` and ``onednn``
#: compute ConvTranspose2d wrongly here; see the design notes).
ENGINES = ("fbgemm", "qnnpack")
#: Clipping ratios searched by the ``mse`` rounding (fraction of the full range, or of alpha for binary/ternary).
MSE_RATIOS = torch.linspace(0.30, 1.0, 36).tolist()
TERNARY_THRESHOLD = 0.7  # TWN's threshold, as a fraction of mean |w|


# ---------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """How a layer's weight maps to its GEMM matrix and scale groups.

    ``kind`` is ``linear``, ``conv2d`` or ``conv_transpose2d``; the matrix is ``(cout * rows, cols)``;
    ``cin_g`` input channels per convolution group; ``window`` = ``kh*kw`` (1 for Linear); ``col_group``: matrix
    columns per scale group (``cols`` for per-channel and per-tensor); ``per_tensor``: one scale for all.
    """

    kind: str
    weight_shape: tuple[int, ...]
    cout: int
    rows: int
    cols: int
    groups: int
    col_group: int
    per_tensor: bool

    @property
    def n(self) -> int:
        return self.cout * self.rows

    @property
    def num_col_groups(self) -> int:
        return self.cols // self.col_group

    @property
    def scale_shape(self) -> tuple[int, int]:
        return (1, 1) if self.per_tensor else (self.cout, self.num_col_groups)


def layer_kind(module: nn.Module) -> str:
    """``linear``, ``conv2d`` or ``conv_transpose2d`` for a quantizable layer (an error otherwise)."""
    if isinstance(module, nn.ConvTranspose2d):
        return "conv_transpose2d"
    if isinstance(module, nn.Conv2d):
        return "conv2d"
    if isinstance(module, nn.Linear):
        return "linear"
    raise GanSurveyError(f"cannot quantize a {type(module).__name__}; allowed: Linear, Conv2d, ConvTranspose2d")


def geometry(module: nn.Module, granularity: str, group_size: int | None, name: str = "") -> Geometry:
    """The :class:`Geometry` of ``module`` under a granularity; checks that ``group_size`` divides its input
    channels (a layer with at most ``group_size`` input channels per group has one group)."""
    kind = layer_kind(module)
    w = module.weight
    groups = getattr(module, "groups", 1)
    if kind == "linear":
        cout, cin_g, window, rows = w.shape[0], w.shape[1], 1, 1
    elif kind == "conv2d":
        cout, cin_g, window, rows = w.shape[0], w.shape[1], w.shape[2] * w.shape[3], 1
    else:
        cin_g, window = w.shape[0] // groups, w.shape[2] * w.shape[3]
        cout, rows = w.shape[1] * groups, window
    cols = cin_g * window if kind != "conv_transpose2d" else cin_g
    per_col_channel = window if kind == "conv2d" else 1
    col_group = cols
    if granularity == "per-group" and group_size < cin_g:
        if cin_g % group_size:
            divisors = [d for d in range(1, cin_g + 1) if cin_g % d == 0]
            raise GanSurveyError(
                f"group_size={group_size} does not divide the {cin_g} input channels of layer {name!r} "
                f"({type(module).__name__}); allowed: a divisor of {cin_g} ({', '.join(map(str, divisors))}) "
                f"or {cin_g} and more (one group)")
        col_group = group_size * per_col_channel
    return Geometry(kind, tuple(w.shape), cout, rows, cols, groups, col_group, granularity == "per-tensor")


def weight_matrix(weight: Tensor, geo: Geometry) -> Tensor:
    """The GEMM matrix of a weight in its layer's layout (differentiable)."""
    if geo.kind == "linear":
        return weight
    if geo.kind == "conv2d":
        return weight.reshape(weight.shape[0], -1)
    cin = weight.shape[0]
    cin_g = cin // geo.groups
    return weight.reshape(geo.groups, cin_g, -1).transpose(1, 2).reshape(-1, cin_g)


def matrix_to_weight(matrix: Tensor, geo: Geometry) -> Tensor:
    """Inverse of :func:`weight_matrix`: the weight in the layer's own layout."""
    if geo.kind != "conv_transpose2d":
        return matrix.reshape(geo.weight_shape)
    cin, cout_g, kh, kw = geo.weight_shape
    cin_g = cin // geo.groups
    return matrix.reshape(geo.groups, cout_g * kh * kw, cin_g).transpose(1, 2).reshape(cin, cout_g, kh, kw)


def _grouped(matrix: Tensor, geo: Geometry) -> Tensor:
    """``matrix`` viewed as (scale rows, scale columns, elements per scale group)."""
    if geo.per_tensor:
        return matrix.reshape(1, 1, -1)
    g = geo.num_col_groups
    return matrix.reshape(geo.cout, geo.rows, g, geo.col_group).permute(0, 2, 1, 3).reshape(geo.cout, g, -1)


def expand_table(table: Tensor, geo: Geometry) -> Tensor:
    """A ``scale_shape`` table expanded to the ``(N, G)`` table of the GEMM matrix."""
    if geo.per_tensor:
        return table.expand(geo.n, 1).contiguous()
    return table.repeat_interleave(geo.rows, dim=0).contiguous()


def expand_full(table: Tensor, geo: Geometry) -> Tensor:
    """A ``scale_shape`` table expanded to one value per matrix element ``(N, K)``."""
    return expand_table(table, geo).repeat_interleave(geo.col_group, dim=1)[:, :geo.cols] if not geo.per_tensor \
        else table.expand(geo.n, geo.cols)


# ---------------------------------------------------------------------------------------------- quantizer


@dataclass(frozen=True)
class Grid:
    """The integer grid of one layer: ``bits``, ``mode`` (symmetric, asymmetric, binary, ternary)."""

    bits: int
    mode: str

    @property
    def code_range(self) -> tuple[int, int]:
        return (1, 3) if self.mode == "ternary" else (0, 2**self.bits - 1)

    def implicit_zero(self) -> float | None:
        """The fixed zero point of the grid (``None`` for asymmetric, whose zeros are stored)."""
        return {"binary": 0.5, "ternary": 2.0, "symmetric": float(2 ** (self.bits - 1))}.get(self.mode)


def grid_of(bits: int, symmetric: bool, ternary: bool) -> Grid:
    if ternary:
        return Grid(2, "ternary")
    if bits == 1 and symmetric:
        return Grid(1, "binary")
    return Grid(bits, "symmetric" if symmetric else "asymmetric")


def _params(groups: Tensor, grid: Grid, ratio: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
    """Scale and zero point per scale group (shape ``groups.shape[:2]``) for a clipping ``ratio``."""
    if grid.mode in ("binary", "ternary"):
        mag = groups.abs()
        mean = mag.mean(-1)
        if grid.mode == "binary":
            alpha = mean
        else:
            keep = mag > TERNARY_THRESHOLD * mean[..., None]
            alpha = (mag * keep).sum(-1) / keep.sum(-1).clamp_min(1)
        alpha = torch.where(alpha > 0, alpha * ratio, torch.ones_like(alpha))
        scale = 2 * alpha if grid.mode == "binary" else alpha
        return scale, torch.full_like(scale, grid.implicit_zero())
    if grid.mode == "symmetric":
        amax = groups.abs().amax(-1) * ratio
        qmax = 2 ** (grid.bits - 1) - 1 if grid.bits > 1 else 1
        scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
        return scale, torch.full_like(scale, grid.implicit_zero())
    lo = groups.amin(-1).clamp(max=0) * ratio
    hi = groups.amax(-1).clamp(min=0) * ratio
    span = hi - lo
    scale = torch.where(span > 0, span / (2**grid.bits - 1), torch.ones_like(span))
    zero = torch.round(-lo / scale).clamp(0, 2**grid.bits - 1)
    return scale, zero


def _round(values: Tensor, scale: Tensor, zero: Tensor, grid: Grid) -> Tensor:
    lo, hi = grid.code_range
    return torch.clamp(torch.round(values / scale + zero), lo, hi)


def fit_grid(matrix: Tensor, geo: Geometry, grid: Grid, rounding: str) -> tuple[Tensor, Tensor]:
    """Scales and zero points (``geo.scale_shape``) for ``matrix``: from the full range (``nearest``), or the
    clipping ratio of :data:`MSE_RATIOS` with the least squared error per scale group (``mse``; ``gptq`` starts
    from the same scales)."""
    with torch.no_grad():
        groups = _grouped(matrix.detach().float(), geo)
        if rounding == "nearest":
            return _params(groups, grid)
        ratios = [r * 1.5 for r in MSE_RATIOS] if grid.mode in ("binary", "ternary") else MSE_RATIOS
        best_err, best = None, None
        for r in ratios:
            scale, zero = _params(groups, grid, r)
            deq = (_round(groups, scale[..., None], zero[..., None], grid) - zero[..., None]) * scale[..., None]
            err = (deq - groups).pow(2).sum(-1)
            if best_err is None:
                best_err, best = err, (scale, zero)
            else:
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best = (torch.where(better, scale, best[0]), torch.where(better, zero, best[1]))
        return best


def quantize_matrix(matrix: Tensor, geo: Geometry, grid: Grid, scale: Tensor, zero: Tensor,
                    hessians: Tensor | None = None, damping: float = 0.01) -> Tensor:
    """Integer codes (``int64``, ``(N, K)``) of ``matrix`` on the grid; with ``hessians`` (``(groups, K, K)``,
    ``sum x x^T`` of the layer's calibration inputs per convolution group) the codes are chosen column by column
    with GPTQ's error feedback (Frantar et al. 2023), else by rounding to nearest."""
    w = matrix.detach().float()
    s_full, z_full = expand_full(scale, geo), expand_full(zero, geo)
    if hessians is None:
        return _round(w, s_full, z_full, grid).to(torch.int64)
    codes = torch.empty_like(w)
    per = geo.n // geo.groups
    for g in range(geo.groups):
        rows = slice(g * per, (g + 1) * per)
        codes[rows] = _gptq(w[rows].clone(), hessians[g].double(), s_full[rows], z_full[rows], grid, damping)
    return codes.to(torch.int64)


def _gptq(w: Tensor, h: Tensor, s: Tensor, z: Tensor, grid: Grid, damping: float) -> Tensor:
    k = w.shape[1]
    dead = torch.diag(h) == 0
    h = h.clone()
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damping * torch.diag(h).mean() * torch.eye(k, dtype=h.dtype)
    try:
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()
    except RuntimeError:  # numerically singular even after damping: plain rounding
        return _round(w, s, z, grid)
    codes = torch.empty_like(w)
    for i in range(k):
        col = w[:, i]
        c = _round(col, s[:, i], z[:, i], grid)
        q = (c - z[:, i]) * s[:, i]
        codes[:, i] = c
        err = (col - q) / hinv[i, i]
        w[:, i:] -= err[:, None] * hinv[i, i:][None, :]
    return codes


# ---------------------------------------------------------------------------------------------- layers


def _pair(v: Any) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class QuantizedLayer(nn.Module, CompressedLayer):
    """Base of :class:`QuantizedLinear`, :class:`QuantizedConv2d` and :class:`QuantizedConvTranspose2d`.

    Built by :func:`gansurvey.compress.quantize` (or :meth:`from_float`), not by hand. The forward runs through
    :mod:`gansurvey.kernels` (the Triton kernels on a GPU); on the CPU it runs the plain-torch reference with the
    dequantized weight decoded once and cached: weight-only quantization computes in floating point
    (``compute_dtype`` float32), with ``activation_bits=8`` the inputs are quantized to uint8 with a calibrated
    scale and zero point and the MACs are charged as int8 (Jacob et al. 2018); on the Triton path they run on
    the W8A8 kernel (int8 x int8, int32 accumulation). :meth:`engine` names the path taken.
    """

    kind = ""

    def __init__(self, geo: Geometry, grid: Grid, has_bias: bool, activation_bits: int | None) -> None:
        super().__init__()
        self.geo, self.grid, self.activation_bits = geo, grid, activation_bits
        self.compute_dtype = torch.int8 if activation_bits else torch.float32
        nbytes = -(-geo.cols * grid.bits // 8)
        self.register_buffer("packed", torch.zeros(geo.n, nbytes, dtype=torch.uint8))
        self.register_buffer("scales", torch.ones(geo.scale_shape))
        self.register_buffer("zeros", torch.zeros(geo.scale_shape, dtype=torch.uint8)
                             if grid.mode == "asymmetric" else None)
        self.register_buffer("bias", torch.zeros(geo.cout) if has_bias else None)
        self.register_buffer("act_qparams", torch.tensor([1.0, 0.0]) if activation_bits else None)
        self._cache: dict[str, Any] = {}

    # -- building
    @classmethod
    def from_float(cls, module: nn.Module, geo: Geometry, grid: Grid, codes: Tensor, scale: Tensor,
                   zero: Tensor, activation_bits: int | None = None,
                   act_range: tuple[float, float] | None = None) -> QuantizedLayer:
        """The quantized layer standing for ``module`` with the given codes ``(N, K)`` and grid tables."""
        layer = {"linear": QuantizedLinear, "conv2d": QuantizedConv2d,
                 "conv_transpose2d": QuantizedConvTranspose2d}[geo.kind](geo, grid, module.bias is not None,
                                                                         activation_bits)
        layer._copy_conv_args(module)
        with torch.no_grad():
            layer.packed.copy_(pack_codes(codes.cpu(), grid.bits))
            layer.scales.copy_(scale.float())
            if layer.zeros is not None:
                layer.zeros.copy_(zero.to(torch.uint8))
            if module.bias is not None:
                layer.bias.copy_(module.bias.detach().float())
            if activation_bits:
                layer.act_qparams.copy_(torch.tensor(activation_qparams(*act_range)))
        return layer.to(module.weight.device)

    def _copy_conv_args(self, module: nn.Module) -> None:
        pass

    # -- the protocol
    def quantized_weight(self) -> QuantizedWeight:
        """The weight as the kernels' :class:`~gansurvey.kernels.QuantizedWeight` (GEMM layout)."""
        key = self._key()
        if self._cache.get("qw_key") != key:
            zero = self.grid.implicit_zero()
            zeros = None
            if self.grid.mode == "asymmetric":
                zeros = expand_table(self.zeros.float(), self.geo)
            elif self.grid.mode != "symmetric":
                zeros = torch.full((self.geo.n, 1 if self.geo.per_tensor else self.geo.num_col_groups), zero,
                                   device=self.packed.device)
            group = self.geo.cols if self.geo.per_tensor else self.geo.col_group
            self._cache["qw"] = QuantizedWeight(self.packed, self.grid.bits, (self.geo.n, self.geo.cols),
                                                expand_table(self.scales, self.geo), zeros, group)
            self._cache["qw_key"] = key
        return self._cache["qw"]

    def _key(self) -> tuple:
        ts = [t for t in (self.packed, self.scales, self.zeros) if t is not None]
        return tuple((t.data_ptr(), t._version, str(t.device)) for t in ts)

    def int8_weight(self) -> QuantizedWeight | None:
        """The weight re-expressed exactly as an 8-bit symmetric :class:`~gansurvey.kernels.QuantizedWeight` (what
        the W8A8 kernel multiplies): ``code - zero`` as int8 with the same scales (binary's half-integer levels
        doubled, its scales halved). ``None`` when a value falls outside int8 (8-bit asymmetric grids)."""
        key = self._key()
        if self._cache.get("w8_key") != key:
            qw = self.quantized_weight()
            zero = qw.zero_points().repeat_interleave(qw.group_size, dim=1)[:, :qw.shape[1]]
            values, scales = self.codes().to(torch.float32) - zero, qw.scales
            if self.grid.mode == "binary":  # levels +-0.5: twice the values, half the scales, exactly
                values, scales = values * 2, scales / 2
            w8 = None
            if bool((values == values.round()).all()) and values.min() >= -128 and values.max() <= 127:
                w8 = QuantizedWeight(pack_codes((values + 128).to(torch.int64), 8), 8, qw.shape,
                                     scales.contiguous(), None, qw.group_size)
            self._cache["w8"], self._cache["w8_key"] = w8, key
        return self._cache["w8"]

    def engine(self, x: Tensor | torch.device | str | None = None) -> str:
        """The engine the forward runs on for input ``x`` (or on a device; default: this layer's), one of
        :data:`LAYER_ENGINES`; records name it beside timings."""
        where = self.packed.device if x is None else x
        fake = "-fakequant" if self.activation_bits else ""
        if kernels.backend(where) != "triton":
            return "reference-dense" + fake
        if self.activation_bits == 8 and self.int8_weight() is not None:
            return "triton-w8a8"
        return "triton-weight-only" + fake

    def _act_qparams(self) -> tuple[float, float]:
        key = (self.act_qparams.data_ptr(), self.act_qparams._version)
        if self._cache.get("aq_key") != key:  # read once, not a device sync per forward
            self._cache["aq"] = (float(self.act_qparams[0]), float(self.act_qparams[1]))
            self._cache["aq_key"] = key
        return self._cache["aq"]

    def codes(self) -> Tensor:
        """The integer codes ``(N, K)`` (``int64``) of the GEMM matrix."""
        return unpack_codes(self.packed, self.grid.bits, self.geo.cols)

    def dense_weight(self) -> Tensor:
        """The dequantized weight in the layout of the float layer (``float32``)."""
        return matrix_to_weight(self.quantized_weight().dequantize(), self.geo)

    def _dense(self, dtype: torch.dtype) -> Tensor:
        key = (self._key(), dtype)
        if self._cache.get("dense_key") != key:
            self._cache["dense"] = self.dense_weight().to(dtype).contiguous()
            self._cache["dense_key"] = key
        return self._cache["dense"]

    def stored_params(self) -> int:
        """One weight per code, plus the bias."""
        return self.geo.n * self.geo.cols + (self.bias.numel() if self.bias is not None else 0)

    def __deepcopy__(self, memo: dict) -> QuantizedLayer:
        cache, self._cache = self._cache, {}
        try:
            clone = nn.Module.__new__(type(self))
            memo[id(self)] = clone
            for k, v in self.__dict__.items():
                clone.__dict__[k] = copy.deepcopy(v, memo)
        finally:
            self._cache = cache
        return clone

    def _apply(self, fn, recurse=True):  # moving buffers (device, dtype) invalidates the cache
        self._cache = {}
        return super()._apply(fn, recurse)

    # -- forward
    def _input(self, x: Tensor) -> Tensor:
        if self.act_qparams is None:
            return x
        scale, zero = self.act_qparams[0], self.act_qparams[1]
        return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale

    def kernel_forward(self, x: Tensor, bias: Tensor | None,
                       epilogue: kernels.Epilogue | None = None) -> Tensor | None:
        """The forward on the Triton kernels with ``bias`` and ``epilogue`` in their epilogue (what
        :func:`~gansurvey.compress.fusion.fuse_epilogues` calls), or None when ``x`` does not take that path."""
        if kernels.backend(x) != "triton":
            return None
        if self.activation_bits == 8:
            w8 = self.int8_weight()
            if w8 is not None:  # the int8 kernel quantizes x on the layer's grid itself
                return self._kernel(x, w8, bias, self._act_qparams(), epilogue)
            if not self.__dict__.get("_fallback_logged"):
                self.__dict__["_fallback_logged"] = True
                _LOG.warning("%s: weight values exceed int8, so activation_bits=8 runs as "
                             "triton-weight-only-fakequant (input rounded in float)", self.extra_repr())
        return self._kernel(self._input(x), self.quantized_weight(), bias, None, epilogue)

    def forward(self, x: Tensor) -> Tensor:
        out = self.kernel_forward(x, self.bias)
        if out is not None:
            return out
        x = self._input(x)
        return self._float(x, self._dense(x.dtype))

    def extra_repr(self) -> str:
        gran = "per-tensor" if self.geo.per_tensor else (
            "per-channel" if self.geo.col_group == self.geo.cols else f"per-group ({self.geo.col_group} columns)")
        act = f", activations int{self.activation_bits}" if self.activation_bits else ""
        return f"{self.geo.weight_shape}, {self.grid.bits}-bit {self.grid.mode}, {gran}{act}"


class QuantizedLinear(QuantizedLayer):
    """A ``nn.Linear`` with packed integer weights (see :class:`QuantizedLayer`)."""

    kind = "linear"

    def _kernel(self, x: Tensor, w: QuantizedWeight, bias: Tensor | None,
                act_qparams: tuple[float, float] | None = None, epilogue: kernels.Epilogue | None = None) -> Tensor:
        return kernels.linear(x, w, bias, 8 if act_qparams else None, act_qparams, epilogue)

    def _float(self, x: Tensor, w: Tensor) -> Tensor:
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))


class QuantizedConv2d(QuantizedLayer):
    """A ``nn.Conv2d`` with packed integer weights (see :class:`QuantizedLayer`)."""

    kind = "conv2d"

    def _copy_conv_args(self, module: nn.Module) -> None:
        self.stride, self.padding, self.dilation = module.stride, module.padding, module.dilation
        self.groups, self.kernel_size, self.padding_mode = module.groups, module.kernel_size, module.padding_mode
        self._pad = module._reversed_padding_repeated_twice

    def _padded(self, x: Tensor) -> tuple[Tensor, Any]:
        if self.padding_mode == "zeros":
            return x, self.padding
        return F.pad(x, self._pad, mode=self.padding_mode), 0

    def _kernel(self, x: Tensor, w: QuantizedWeight, bias: Tensor | None,
                act_qparams: tuple[float, float] | None = None, epilogue: kernels.Epilogue | None = None) -> Tensor:
        x, padding = self._padded(x)
        return kernels.conv2d(x.contiguous(), w, bias, self.stride, padding, self.dilation, self.groups,
                              self.kernel_size, 8 if act_qparams else None, act_qparams, epilogue)

    def _float(self, x: Tensor, w: Tensor) -> Tensor:
        x, padding = self._padded(x)
        return F.conv2d(x, w, None if self.bias is None else self.bias.to(x.dtype), self.stride, padding,
                        self.dilation, self.groups)


class QuantizedConvTranspose2d(QuantizedLayer):
    """A ``nn.ConvTranspose2d`` with packed integer weights (see :class:`QuantizedLayer`)."""

    kind = "conv_transpose2d"

    def _copy_conv_args(self, module: nn.Module) -> None:
        self.stride, self.padding, self.dilation = module.stride, module.padding, module.dilation
        self.output_padding, self.groups, self.kernel_size = module.output_padding, module.groups, module.kernel_size
        self.out_channels = module.out_channels

    def _kernel(self, x: Tensor, w: QuantizedWeight, bias: Tensor | None,
                act_qparams: tuple[float, float] | None = None, epilogue: kernels.Epilogue | None = None) -> Tensor:
        return kernels.conv_transpose2d(x.contiguous(), w, bias, self.stride, self.padding,
                                        self.output_padding, self.dilation, self.groups, self.kernel_size,
                                        self.out_channels, 8 if act_qparams else None, act_qparams, epilogue)

    def _float(self, x: Tensor, w: Tensor) -> Tensor:
        return F.conv_transpose2d(x, w, None if self.bias is None else self.bias.to(x.dtype), self.stride,
                                  self.padding, self.output_padding, self.groups, self.dilation)


def activation_qparams(lo: float, hi: float) -> tuple[float, float]:
    """Scale and zero point of the asymmetric uint8 grid covering ``[min(lo, 0), max(hi, 0)]``."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255 if hi > lo else 1.0
    return scale, float(round(-lo / scale))


# ---------------------------------------------------------------------------------------------- fake quantization


class _STE(torch.autograd.Function):
    """Identity gradient through rounding (the straight-through estimator, Bengio et al. 2013)."""

    @staticmethod
    def forward(ctx, x: Tensor, q: Tensor) -> Tensor:
        return q

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def fake_quantize(weight: Tensor, geo: Geometry, grid: Grid, rounding: str) -> Tensor:
    """``weight`` rounded to its grid (scales refitted from the current weight), with the straight-through
    gradient; the same numbers :func:`gansurvey.compress.quantize` stores for this weight (``nearest``/``mse``)."""
    with torch.no_grad():
        m = weight_matrix(weight.detach(), geo)
        scale, zero = fit_grid(m, geo, grid, "mse" if rounding == "mse" else "nearest")
        s, z = expand_full(scale, geo), expand_full(zero, geo)
        q = matrix_to_weight((_round(m.float(), s, z, grid) - z) * s, geo).to(weight.dtype)
    return _STE.apply(weight, q)


class FakeQuantLayer(nn.Module):
    """A float layer trained with fake-quantized weights (and inputs): quantization-aware training.

    ``layer`` keeps the float weights the optimizer updates; the forward uses :func:`fake_quantize` of them.
    Built by :func:`gansurvey.compress.prepare_qat`; :func:`gansurvey.compress.convert_qat` packs it.
    """

    def __init__(self, layer: nn.Module, geo: Geometry, grid: Grid, rounding: str,
                 act_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.layer, self.geo, self.grid, self.rounding = layer, geo, grid, rounding
        self.register_buffer("act_qparams", None if act_range is None else torch.tensor(activation_qparams(
            *act_range)))

    def forward(self, x: Tensor) -> Tensor:
        if self.act_qparams is not None:
            scale, zero = self.act_qparams[0], self.act_qparams[1]
            x = _STE.apply(x, ((torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale).detach())
        w = fake_quantize(self.layer.weight, self.geo, self.grid, self.rounding)
        layer = self.layer
        if self.geo.kind == "linear":
            return F.linear(x, w, layer.bias)
        if self.geo.kind == "conv2d":
            return layer._conv_forward(x, w, layer.bias)
        return F.conv_transpose2d(x, w, layer.bias, layer.stride, layer.padding, layer.output_padding,
                                  layer.groups, layer.dilation)


# ---------------------------------------------------------------------------------------------- integer engines


class IntegerEngineLayer(nn.Module):
    """A quantized layer run by one of PyTorch's integer CPU engines (``torch.ao.nn.quantized``): the input is
    quantized to uint8 with a calibrated scale, the engine multiplies uint8 by int8 with int32 accumulation
    (Jacob et al. 2018), and the output is dequantized to float for the next (float) layer.

    Weights are int8 (the engines' only weight format): per output channel for Linear and Conv2d, per tensor for
    ConvTranspose2d, for which the engines refuse per-channel weights. Built by :func:`to_integer_engine`.
    """

    def __init__(self, op: nn.Module, engine: str, in_qparams: tuple[float, int], pad: Any = None,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.op, self.engine, self.in_qparams = op, engine, in_qparams
        self.pad, self.padding_mode = pad, padding_mode

    def forward(self, x: Tensor) -> Tensor:
        if torch.backends.quantized.engine != self.engine:
            torch.backends.quantized.engine = self.engine
        if self.pad is not None:
            x = F.pad(x, self.pad, mode=self.padding_mode)
        xq = torch.quantize_per_tensor(x.float().contiguous(), self.in_qparams[0], self.in_qparams[1],
                                       torch.quint8)
        return self.op(xq).dequantize()


def _int8_weight(weight: Tensor, per_channel: bool, axis: int = 0) -> Tensor:
    if per_channel:
        dims = [d for d in range(weight.dim()) if d != axis]
        amax = weight.abs().amax(dim=dims)
        scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax)).double()
        return torch.quantize_per_channel(weight, scale, torch.zeros_like(scale, dtype=torch.long), axis,
                                          torch.qint8)
    amax = float(weight.abs().max())
    return torch.quantize_per_tensor(weight, amax / 127 if amax > 0 else 1.0, 0, torch.qint8)


def engine_layer(layer: QuantizedLayer, in_range: tuple[float, float], out_range: tuple[float, float],
                 engine: str) -> IntegerEngineLayer:
    """The :class:`IntegerEngineLayer` computing ``layer`` with the engine, given its input and output ranges."""
    import torch.ao.nn.quantized as nnq

    torch.backends.quantized.engine = engine
    w = layer.dense_weight().detach().float().cpu()
    bias = None if layer.bias is None else layer.bias.detach().float().cpu()
    pad, mode = None, "zeros"
    if layer.kind == "linear":
        op = nnq.Linear(w.shape[1], w.shape[0])
        op.set_weight_bias(_int8_weight(w, True), bias)
    elif layer.kind == "conv2d":
        padding = layer.padding
        if layer.padding_mode != "zeros":
            pad, mode, padding = layer._pad, layer.padding_mode, 0
        op = nnq.Conv2d(w.shape[1] * layer.groups, w.shape[0], layer.kernel_size, layer.stride, padding,
                        layer.dilation, layer.groups, bias is not None)
        op.set_weight_bias(_int8_weight(w, True), bias)
    else:
        op = nnq.ConvTranspose2d(w.shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                                 layer.output_padding, layer.groups, bias is not None, layer.dilation)
        op.set_weight_bias(_int8_weight(w, False), bias)
    if layer.act_qparams is not None:
        in_q = (float(layer.act_qparams[0]), int(layer.act_qparams[1]))
    else:
        scale, zero = activation_qparams(*in_range)
        in_q = (scale, int(zero))
    out_scale, out_zero = activation_qparams(*out_range)
    op.scale, op.zero_point = float(out_scale), int(out_zero)
    return IntegerEngineLayer(op, engine, in_q, pad, mode)


def float_layer(layer: QuantizedLayer) -> nn.Module:
    """The plain ``nn.Linear``/``nn.Conv2d``/``nn.ConvTranspose2d`` computing what ``layer`` computes (its weight
    dequantized to float32, its bias and geometry): the form PyTorch's quantization tools take as input."""
    w = layer.dense_weight().detach().float().cpu()
    bias = None if layer.bias is None else layer.bias.detach().float().cpu()
    if layer.kind == "linear":
        out = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    elif layer.kind == "conv2d":
        out = nn.Conv2d(w.shape[1] * layer.groups, w.shape[0], layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, layer.groups, bias is not None, layer.padding_mode)
    else:
        out = nn.ConvTranspose2d(w.shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                                 layer.output_padding, layer.groups, bias is not None, layer.dilation)
    with torch.no_grad():
        out.weight.copy_(w)
        if bias is not None:
            out.bias.copy_(bias)
    return out.eval()


class Int4PackLinear(nn.Module):
    """A 4-bit :class:`QuantizedLinear` run by PyTorch's packed int4 weight-only CPU matmul
    (:mod:`gansurvey.kernels.cpu`): the weight stays 4 bits per value in memory, float32 activations. Built by
    :func:`gansurvey.compress.precision.to_int4_cpu_engine`; ``engine_name`` is what records name it."""

    engine_name = "torch-int4pack"

    def __init__(self, layer: QuantizedLinear) -> None:
        from gansurvey.kernels.cpu import Int4Packed

        super().__init__()
        self.weight = Int4Packed.of(layer.quantized_weight())
        self.bias = None if layer.bias is None else layer.bias.detach().float().cpu().clone()

    def forward(self, x: Tensor) -> Tensor:
        return self.weight.matmul(x, self.bias).to(x.dtype)


class FusedEngineModel(nn.Module):
    """A whole generator run by one of PyTorch's integer CPU engines as one static-quantized graph: batch norms
    folded into the convolution before them, ReLUs fused, residual additions in int8, and activations kept as
    uint8 tensors from one quantized layer to the next (quantized once at the input, dequantized at the output
    and only around the float operations the engine lacks). Built by
    :func:`gansurvey.compress.precision.to_fused_engine`; ``engine_name`` is what records name it."""

    def __init__(self, graph: nn.Module, engine: str) -> None:
        super().__init__()
        self.graph, self.engine = graph, engine

    @property
    def engine_name(self) -> str:
        return f"{self.engine}-int8-fused"

    def forward(self, *args: Any) -> Tensor:
        if torch.backends.quantized.engine != self.engine:
            torch.backends.quantized.engine = self.engine
        return self.graph(*args)


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES` and this PyTorch build has it; else a clear error."""
    if engine in ("x86", "onednn"):
        raise GanSurveyError(f"engine {engine!r} computes ConvTranspose2d wrongly on this machine; allowed: "
                             f"{', '.join(map(repr, ENGINES))}")
    check_choice("integer engine", engine, ENGINES)
    if engine not in torch.backends.quantized.supported_engines:
        raise GanSurveyError(f"this PyTorch build lacks the {engine!r} engine; it has "
                             f"{torch.backends.quantized.supported_engines}")
    return engine


def is_finite_range(lo: float, hi: float) -> bool:
    return math.isfinite(lo) and math.isfinite(hi)
