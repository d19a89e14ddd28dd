"""Compressed weight formats for the GEMM kernels, and the bit packing they share.

Why a module of its own: the Triton kernels, the plain-torch references and the compression code
(``gansurvey.compress``) must agree on one byte layout and one dequantization formula. Both live here.

GEMM layout everywhere in ``gansurvey.kernels``: a weight matrix ``W`` has shape ``(N, K)`` and an op computes
``x @ W.T`` for ``x`` of shape ``(M, K)`` (the layout of ``nn.Linear.weight``).

Packing: integer codes in ``[0, 2**bits)`` are stored along the last dimension as a little-endian bitstream per
row: code ``k`` occupies bits ``k*bits .. k*bits+bits-1`` of the row, bit ``b`` of the row lives in byte
``b // 8`` at bit position ``b % 8``, and each row is padded with zero bits to whole bytes. For ``bits`` in
1, 2, 4, 8 this is the same as "``8 // bits`` codes per byte, lowest bits first", which is what the kernels read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gansurvey.checks import GanSurveyError, check_number

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def bytes_per_row(length: int, bits: int) -> int:
    """Bytes one packed row of ``length`` codes of ``bits`` bits takes (rows are padded to whole bytes).

    >>> bytes_per_row(100, 4), bytes_per_row(10, 3)
    (50, 4)
    """
    return (length * bits + 7) // 8


def _check_bits(bits: int) -> int:
    return check_number("bits", bits, minimum=1, maximum=8, integer=True)


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Pack integer codes in ``[0, 2**bits)`` along the last dimension into ``uint8`` bytes.

    Returns a tensor of shape ``codes.shape[:-1] + (bytes_per_row(K, bits),)``; exactly undone by
    :func:`unpack_codes`.

    >>> packed = pack_codes(torch.tensor([[1, 2, 3, 0, 7]]), bits=3)
    >>> packed.shape, unpack_codes(packed, bits=3, length=5).tolist()
    (torch.Size([1, 2]), [[1, 2, 3, 0, 7]])
    """
    _check_bits(bits)
    if not isinstance(codes, Tensor):
        raise GanSurveyError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in _INTEGER_DTYPES:
        raise GanSurveyError(f"codes must have an integer dtype (uint8, int8, int16, int32, int64), got {codes.dtype}")
    if codes.dim() == 0:
        raise GanSurveyError("codes must have at least one dimension, got a scalar")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 2**bits):
        raise GanSurveyError(
            f"codes must lie in [0, {2**bits}) for bits={bits}, got values in [{int(codes.min())}, {int(codes.max())}]"
        )
    length = codes.shape[-1]
    lead = codes.shape[:-1]
    shifts = torch.arange(bits, device=codes.device, dtype=torch.int32)
    stream = ((codes.to(torch.int32).unsqueeze(-1) >> shifts) & 1).reshape(*lead, length * bits)
    nbytes = bytes_per_row(length, bits)
    pad = nbytes * 8 - length * bits
    if pad:
        stream = torch.nn.functional.pad(stream, (0, pad))
    weights = 1 << torch.arange(8, device=codes.device, dtype=torch.int32)
    return (stream.reshape(*lead, nbytes, 8) * weights).sum(-1).to(torch.uint8)


def unpack_codes(packed: Tensor, bits: int, length: int) -> Tensor:
    """Unpack ``length`` codes per row from ``uint8`` bytes written by :func:`pack_codes`; returns ``int64`` codes.

    >>> unpack_codes(pack_codes(torch.tensor([3, 0, 1]), bits=2), bits=2, length=3).tolist()
    [3, 0, 1]
    """
    _check_bits(bits)
    check_number("length", length, minimum=0, integer=True)
    if not isinstance(packed, Tensor) or packed.dtype != torch.uint8:
        got = packed.dtype if isinstance(packed, Tensor) else type(packed).__name__
        raise GanSurveyError(f"packed must be a uint8 tensor, got {got}")
    if packed.dim() == 0:
        raise GanSurveyError("packed must have at least one dimension, got a scalar")
    need = bytes_per_row(length, bits)
    if packed.shape[-1] != need:
        raise GanSurveyError(
            f"packed rows must hold {need} bytes for length={length} at bits={bits}, got {packed.shape[-1]}"
        )
    lead = packed.shape[:-1]
    shifts = torch.arange(8, device=packed.device, dtype=torch.int32)
    stream = ((packed.to(torch.int32).unsqueeze(-1) >> shifts) & 1).reshape(*lead, need * 8)
    stream = stream[..., : length * bits].reshape(*lead, length, bits)
    weights = 1 << torch.arange(bits, device=packed.device, dtype=torch.int64)
    return (stream.to(torch.int64) * weights).sum(-1)


def _check_matrix_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise GanSurveyError(f"shape must be (N, K) with two positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _check_packed(packed: Tensor, shape: tuple[int, int], bits: int) -> None:
    if not isinstance(packed, Tensor) or packed.dtype != torch.uint8:
        got = packed.dtype if isinstance(packed, Tensor) else type(packed).__name__
        raise GanSurveyError(f"packed must be a uint8 tensor, got {got}")
    want = (shape[0], bytes_per_row(shape[1], bits))
    if tuple(packed.shape) != want:
        raise GanSurveyError(
            f"packed must have shape (N, ceil(K*bits/8)) = {want} for shape={shape} and bits={bits}, "
            f"got {tuple(packed.shape)}"
        )


def _check_float_table(what: str, value: Tensor, want: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(value, Tensor) or value.dtype != torch.float32:
        got = value.dtype if isinstance(value, Tensor) else type(value).__name__
        raise GanSurveyError(f"{what} must be a float32 tensor, got {got}")
    if tuple(value.shape) != want:
        raise GanSurveyError(f"{what} must have shape {want}, got {tuple(value.shape)}")
    if value.device != device:
        raise GanSurveyError(f"{what} must be on the device of packed ({device}), got {value.device}")


@dataclass(frozen=True, eq=False)
class QuantizedWeight:
    """An ``(N, K)`` weight stored as packed ``bits``-bit integer codes with per-group scales and zero points.

    Dequantization: ``w[n, k] = (code[n, k] - zero[n, k // group_size]) * scale[n, k // group_size]``.

    - ``packed``: ``uint8`` of shape ``(N, ceil(K * bits / 8))`` (layout of :func:`pack_codes`).
    - ``scales``: ``float32`` of shape ``(N, G)`` with ``G = ceil(K / group_size)``. Only this shape is accepted:
      per-channel quantization is ``group_size = K`` (``G = 1``); per-tensor quantization is expressed by the
      caller as one scale expanded to ``(N, 1)``.
    - ``zeros``: ``float32`` ``(N, G)``, or ``None`` for symmetric quantization with the implicit zero point
      ``2**(bits-1)`` (codes ``0..2**bits-1`` stand for ``-2**(bits-1) .. 2**(bits-1)-1``).
    - ``group_size``: positive int, ``K`` for per-channel.

    >>> codes = torch.tensor([[0, 8, 15, 7]])
    >>> w = QuantizedWeight(pack_codes(codes, 4), 4, (1, 4), torch.full((1, 1), 0.5), None, 4)
    >>> w.dequantize().tolist()
    [[-4.0, 0.0, 3.5, -0.5]]
    """

    packed: Tensor
    bits: int
    shape: tuple[int, int]
    scales: Tensor
    zeros: Tensor | None = None
    group_size: int | None = None
    _layouts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        shape = _check_matrix_shape(tuple(self.shape))
        object.__setattr__(self, "shape", shape)
        n, k = shape
        group_size = k if self.group_size is None else self.group_size
        check_number("group_size", group_size, minimum=1, maximum=k, integer=True)
        object.__setattr__(self, "group_size", int(group_size))
        _check_packed(self.packed, shape, self.bits)
        groups = self.num_groups
        _check_float_table("scales", self.scales, (n, groups), self.packed.device)
        if self.zeros is not None:
            _check_float_table("zeros", self.zeros, (n, groups), self.packed.device)

    @property
    def num_groups(self) -> int:
        """``G = ceil(K / group_size)``, the number of scale columns."""
        return -(-self.shape[1] // self.group_size)

    @property
    def symmetric(self) -> bool:
        """True when ``zeros`` is None (implicit zero point ``2**(bits-1)``)."""
        return self.zeros is None

    @property
    def device(self) -> torch.device:
        return self.packed.device

    def codes(self) -> Tensor:
        """The unpacked integer codes, ``int64`` of shape ``(N, K)``."""
        return unpack_codes(self.packed, self.bits, self.shape[1])

    # Kernel layouts, built once per weight (the fields are frozen, so the copies never go stale).
    def packed_kmajor(self) -> Tensor:
        """``packed`` transposed to ``(ceil(K*bits/8), N)``: a tile's bytes are contiguous along ``N``."""
        return _cached(self._layouts, "packed", lambda: self.packed.T.contiguous())

    def scales_kmajor(self) -> Tensor:
        """``scales`` as ``(G, N)``: one group's scales for a block of columns are contiguous."""
        return _cached(self._layouts, "scales", lambda: self.scales.T.contiguous())

    def zeros_kmajor(self) -> Tensor | None:
        """``zeros`` as ``(G, N)`` (``None`` when symmetric)."""
        return None if self.zeros is None else _cached(self._layouts, "zeros", lambda: self.zeros.T.contiguous())

    def int8_group_sums(self) -> Tensor:
        """``sum_k (code - 128)`` per scale group, ``int32`` ``(G, N)``, of an 8-bit symmetric weight (W8A8 folds
        static activation zero points in with it)."""
        if self.bits != 8 or self.zeros is not None:
            raise GanSurveyError(f"int8_group_sums needs an 8-bit symmetric weight, got bits={self.bits}, "
                                 f"zeros={'None' if self.zeros is None else 'given'}")

        def sums() -> Tensor:
            n, k = self.shape
            values = self.packed.to(torch.int32) - 128
            pad = self.num_groups * self.group_size - k
            values = torch.nn.functional.pad(values, (0, pad)).reshape(n, self.num_groups, self.group_size)
            return values.sum(-1, dtype=torch.int32).T.contiguous()

        return _cached(self._layouts, "int8_sums", sums)

    def zero_points(self) -> Tensor:
        """Zero points as a ``float32`` ``(N, G)`` tensor (the implicit ``2**(bits-1)`` when symmetric)."""
        if self.zeros is not None:
            return self.zeros
        return torch.full_like(self.scales, float(2 ** (self.bits - 1)))

    def dequantize(self) -> Tensor:
        """The ``(N, K)`` ``float32`` weight the codes stand for."""
        k = self.shape[1]
        scale = self.scales.repeat_interleave(self.group_size, dim=1)[:, :k]
        zero = self.zero_points().repeat_interleave(self.group_size, dim=1)[:, :k]
        return (self.codes().to(torch.float32) - zero) * scale

    def rows(self, start: int, stop: int) -> QuantizedWeight:
        """The rows ``start:stop`` as a weight of their own (used to split a matrix per convolution group)."""
        return self.take_rows(slice(start, stop))

    def take_rows(self, index: slice | Tensor) -> QuantizedWeight:
        """The rows ``index`` (a slice, or a 1-D integer tensor giving their order) as a weight of their own."""
        packed = self.packed[index].contiguous()
        return QuantizedWeight(
            packed,
            self.bits,
            (packed.shape[0], self.shape[1]),
            self.scales[index].contiguous(),
            None if self.zeros is None else self.zeros[index].contiguous(),
            self.group_size,
        )

    def kernel_layout(self, key: object, build: Callable[[], object]) -> object:
        """What ``build()`` derives from this weight for a kernel (a reordered copy, ...), built once per ``key``
        and kept: the fields are frozen, so it never goes stale."""
        return _cached(self._layouts, key, build)

    def nbytes(self) -> int:
        """Bytes the format stores (codes, scales and zero points)."""
        extra = 0 if self.zeros is None else self.zeros.numel() * 4
        return self.packed.numel() + self.scales.numel() * 4 + extra


@dataclass(frozen=True, eq=False)
class CodebookWeight:
    """An ``(N, K)`` weight stored as packed ``bits``-bit indices into a codebook: ``w[n, k] = codebook[idx[n, k]]``.

    - ``packed``: ``uint8`` of shape ``(N, ceil(K * bits / 8))`` (layout of :func:`pack_codes`).
    - ``codebook``: ``float32``, either ``(2**bits,)`` shared by the layer or ``(N, 2**bits)`` one per row
      (``w[n, k] = codebook[n, idx[n, k]]``).

    >>> w = CodebookWeight(pack_codes(torch.tensor([[0, 1, 1]]), 1), 1, (1, 3), torch.tensor([-0.5, 2.0]))
    >>> w.dequantize().tolist()
    [[-0.5, 2.0, 2.0]]
    """

    packed: Tensor
    bits: int
    shape: tuple[int, int]
    codebook: Tensor
    _layouts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        shape = _check_matrix_shape(tuple(self.shape))
        object.__setattr__(self, "shape", shape)
        _check_packed(self.packed, shape, self.bits)
        entries = 2**self.bits
        cb = self.codebook
        want = (shape[0], entries) if isinstance(cb, Tensor) and cb.dim() == 2 else (entries,)
        _check_float_table("codebook", cb, want, self.packed.device)

    @property
    def per_row(self) -> bool:
        """True for one codebook per row (``codebook`` of shape ``(N, 2**bits)``)."""
        return self.codebook.dim() == 2

    @property
    def device(self) -> torch.device:
        return self.packed.device

    def indices(self) -> Tensor:
        """The unpacked indices, ``int64`` of shape ``(N, K)``."""
        return unpack_codes(self.packed, self.bits, self.shape[1])

    def packed_kmajor(self) -> Tensor:
        """``packed`` transposed to ``(ceil(K*bits/8), N)`` (see :meth:`QuantizedWeight.packed_kmajor`)."""
        return _cached(self._layouts, "packed", lambda: self.packed.T.contiguous())

    def dequantize(self) -> Tensor:
        """The ``(N, K)`` ``float32`` weight the indices stand for."""
        idx = self.indices()
        if self.per_row:
            return torch.gather(self.codebook, 1, idx)
        return self.codebook[idx]

    def rows(self, start: int, stop: int) -> CodebookWeight:
        """The rows ``start:stop`` as a weight of their own (used to split a matrix per convolution group)."""
        return self.take_rows(slice(start, stop))

    def take_rows(self, index: slice | Tensor) -> CodebookWeight:
        """The rows ``index`` (a slice, or a 1-D integer tensor giving their order) as a weight of their own."""
        packed = self.packed[index].contiguous()
        cb = self.codebook[index].contiguous() if self.per_row else self.codebook
        return CodebookWeight(packed, self.bits, (packed.shape[0], self.shape[1]), cb)

    def kernel_layout(self, key: object, build: Callable[[], object]) -> object:
        """See :meth:`QuantizedWeight.kernel_layout`."""
        return _cached(self._layouts, key, build)

    def nbytes(self) -> int:
        """Bytes the format stores (indices and codebook)."""
        return self.packed.numel() + self.codebook.numel() * 4


def _cached(store: dict, key: object, build: Callable[[], object]) -> Any:
    if key not in store:
        store[key] = build()
    return store[key]


class Int8Activation(NamedTuple):
    """Activations quantized per row: ``x ~= values.float() * scale[:, None]`` (a tuple, so it unpacks)."""

    values: Tensor
    scale: Tensor


def quantize_activations(x: Tensor) -> Int8Activation:
    """Dynamic per-row symmetric int8 quantization of an ``(M, K)`` float tensor.

    ``scale[m] = max|x[m]| / 127`` (1 for an all-zero row) and ``values = round(x / scale)`` in ``[-127, 127]``.
    Returns ``(x_int8 (M, K) int8, x_scale (M,) float32)``.

    >>> q, s = quantize_activations(torch.tensor([[1.0, -0.5, 0.0]]))
    >>> q.tolist(), round(s.item() * 127, 6)
    ([[127, -64, 0]], 1.0)
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise GanSurveyError(f"x must be a floating-point tensor, got {got}")
    if x.dim() != 2:
        raise GanSurveyError(f"x must have shape (M, K), got {tuple(x.shape)}")
    xf = x.to(torch.float32)
    amax = xf.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    values = torch.round(xf / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return Int8Activation(values, scale.contiguous())


def quantize_activations_static(x: Tensor, scale: float, zero_point: float) -> tuple[Tensor, Tensor, int]:
    """Static asymmetric uint8 quantization of an ``(M, K)`` float tensor on a calibrated grid.

    ``q = clamp(round(x / scale) + zero_point, 0, 255)`` stands for ``(q - zero_point) * scale`` (the grid of
    Jacob et al. 2018, which ``gansurvey.compress`` calibrates). Returns ``(q - 128`` as int8 ``(M, K)``,
    ``scale`` per row ``(M,)`` float32, ``offset = 128 - zero_point)``: ``q - zero_point = values + offset``.

    >>> v, s, off = quantize_activations_static(torch.tensor([[0.0, 1.0]]), 0.5, 10)
    >>> v.tolist(), off, ((v.int() + off).float() * s[:, None]).tolist()
    ([[-118, -116]], 118, [[0.0, 1.0]])
    """
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 2:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise GanSurveyError(f"x must be an (M, K) floating-point tensor, got {got}")
    scale, zero = float(scale), float(zero_point)
    if not scale > 0 or zero != round(zero) or not 0 <= zero <= 255:
        raise GanSurveyError(f"act_qparams must be (scale > 0, integer zero point in [0, 255]), got ({scale}, {zero})")
    q = torch.clamp(torch.round(x.to(torch.float32) / scale) + zero, 0, 255)
    values = (q - 128).to(torch.int8)
    return values, torch.full((x.shape[0],), scale, dtype=torch.float32, device=x.device), 128 - int(zero)


def quantize_weight(
    weight: Tensor, bits: int, group_size: int | None = None, symmetric: bool = True
) -> QuantizedWeight:
    """Round-to-nearest quantization of an ``(N, K)`` float weight into a :class:`QuantizedWeight`.

    A small helper for tests and benchmarks (``gansurvey.compress`` holds the real quantizers).
    Symmetric: ``scale = max|w| / (2**(bits-1) - 1)`` per group (``max|w| / 1`` at one bit);
    asymmetric: min/max affine over ``2**bits - 1`` steps.

    >>> quantize_weight(torch.tensor([[1.0, -1.0, 0.5]]), bits=8).dequantize().shape
    torch.Size([1, 3])
    """
    _check_bits(bits)
    if not isinstance(weight, Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise GanSurveyError(f"weight must be a 2-D float tensor (N, K), got {getattr(weight, 'shape', weight)!r}")
    n, k = weight.shape
    group_size = k if group_size is None else group_size
    check_number("group_size", group_size, minimum=1, maximum=k, integer=True)
    groups = -(-k // group_size)
    w = torch.nn.functional.pad(weight.to(torch.float32), (0, groups * group_size - k))
    w = w.reshape(n, groups, group_size)
    valid = torch.nn.functional.pad(torch.ones(k, device=weight.device), (0, groups * group_size - k))
    valid = valid.reshape(1, groups, group_size) > 0
    top = 2**bits - 1
    if symmetric:
        half = 2 ** (bits - 1)
        amax = w.abs().amax(dim=2)
        scales = torch.where(amax > 0, amax / max(half - 1, 1), torch.ones_like(amax))
        codes = torch.round(w / scales[..., None]) + half
        zeros = None
    else:
        big = torch.finfo(torch.float32).max
        lo = torch.where(valid, w, big).amin(dim=2).clamp(max=0)
        hi = torch.where(valid, w, -big).amax(dim=2).clamp(min=0)
        scales = torch.where(hi > lo, (hi - lo) / top, torch.ones_like(hi))
        zeros = torch.round(-lo / scales)
        codes = torch.round(w / scales[..., None]) + zeros[..., None]
    codes = codes.clamp(0, top).reshape(n, groups * group_size)[:, :k].to(torch.int64)
    return QuantizedWeight(pack_codes(codes, bits), bits, (n, k), scales.contiguous(), zeros, group_size)
