"""Encoding, the survey's fifth family: weight sharing (k-means codebooks) and entropy coding, with real
bitstreams.

Deep Compression (Han, Mao & Dally, ICLR 2016) chains three stages: pruning, weight sharing and Huffman coding.
This module is the last two, over the compression contract:

- **weight sharing** (lossy): each selected layer's weights are clustered by 1-D k-means into ``2**bits``
  centroids (a per-layer *codebook*); every weight is replaced by its centroid and stored as a ``bits``-bit index.
  The centroid initialisations Han et al. compare are ``linear`` (evenly spaced between the smallest and the
  largest weight, their best), ``density`` (evenly spaced quantiles) and ``random`` (Forgy: weights drawn at
  random). ``iterations=0`` keeps the initial centroids: with ``linear`` that is plain uniform (min/max)
  quantization stored as a codebook, the baseline weight sharing is compared with at equal bits.
- **entropy coding** (lossless): the indices are coded with a Huffman code (Huffman 1952; Deep Compression's
  choice), with asymmetric numeral systems (``ans``, Duda 2013) or with range (arithmetic) coding; see
  :mod:`gansurvey.compress.entropy`. ``coder=None`` stores the indices packed at ``bits`` bits each.
- **pruned layers** (masked by magnitude pruning, or in sparse storage): only the non-zero weights are shared,
  zeros stay exact, and the positions of the non-zeros are coded as relative offsets (gaps, with an escape for
  gaps over 254, as Deep Compression's relative index) by the same coder; without a coder they are stored as
  the sparse format's bitmap or gaps (:mod:`gansurvey.compress.sparse`).

**The stored state is the bitstream.** An encoded layer (``CodebookLinear``, ``CodebookConv2d``,
``CodebookConvTranspose2d``) holds one ``uint8`` buffer ``stream`` (a 32-byte header with two CRC-32
checksums, then the coded positions and indices), its ``codebook`` (float32, ``2**bits`` entries) and its bias.
So ``torch.save(model.state_dict())`` (what :func:`gansurvey.metrics.cost.stored_bytes` measures) writes these
bytes, and loading decodes them: a corrupted or truncated stream raises :class:`GanSurveyError`, never wrong
weights. The header's first checksum covers the stream itself; the second (the *state* checksum) covers every
other stored field of the layer (codebook, bias), refreshed whenever the state is saved (a trained codebook
changes after encoding), so a flipped codebook or bias byte in a saved file is refused too.
Decoding happens once; the indices are cached (not stored) and the forward pass runs the codebook (LUT)
kernels of :mod:`gansurvey.kernels` on a GPU (Triton) and, on a CPU, the reference computation
(``codebook[indices]``, then the plain convolution); ``layer.engine()`` names the path. With autograd on and
a trainable codebook the forward builds ``codebook[indices]`` instead, so the gradient of every weight
that shares a centroid is summed into that centroid: trained sharing is fine-tuning with the shared trainer
(``experiments_encoding.trained_sharing``).

Example::

    from gansurvey.compress import encode, EncodeConfig, MagnitudePruneConfig, compress
    small = encode(generator, EncodeConfig(bits=4, coder="huffman"))
    deep = compress(generator, [MagnitudePruneConfig(0.9), EncodeConfig(bits=4, coder="ans")])
"""

from __future__ import annotations

import copy
import io
import logging
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from gansurvey import kernels
from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress.base import CompressConfig, check_family_configs, compress, register
from gansurvey.compress.entropy import CODERS, decode_symbols, encode_symbols, entropy_bits
from gansurvey.compress.sparse import decode_positions, encode_index, is_sparse_storage, mask_of, select_layers, unmask
from gansurvey.layers import CompressedLayer

__all__ = [
    "CODERS", "INITS", "CodebookConv2d", "CodebookConvTranspose2d", "CodebookLinear", "EncodeConfig",
    "codebook_layers", "decode", "deserialize", "encode", "encoding_report", "kmeans_codebook", "recode",
    "serialize",
]

#: Centroid initialisations compared by Han et al. (2016).
INITS = ("linear", "density", "random")
#: Coder of a layer's stream: ``None`` (packed indices) or one of :data:`CODERS`.
CODER_CHOICES = (None, *CODERS)
#: A layer whose weights are at least this fraction exact zeros (and every pruned layer) codes its positions.
ZERO_FRACTION = 0.25

_LOG = logging.getLogger(__name__)
_MAGIC = b"GSEN"
_FORMAT = 2  # 2: the header carries the state checksum (codebook, bias); format 1 streams had none
# magic, format, coder, bits, positions, numel, coded, pos len, code len, state crc, stream crc
_HEADER = struct.Struct("<4sBBBBIIIIII")
_CODER_IDS = {None: 0, "huffman": 1, "ans": 2, "arithmetic": 3}
_CODER_NAMES = {v: k for k, v in _CODER_IDS.items()}
_GAP_ESCAPE = 255  # run-length symbol: 255 zeros and no weight; s < 255: s zeros then a weight
_INDEX_TAGS = {torch.uint8: 0, torch.int16: 1, torch.int32: 2}
_INDEX_DTYPES = {v: (k, np.dtype(d)) for k, v, d in
                 ((torch.uint8, 0, "u1"), (torch.int16, 1, "<i2"), (torch.int32, 2, "<i4"))}


# ---------------------------------------------------------------- the config and the verb


@dataclass(frozen=True)
class EncodeConfig(CompressConfig):
    """Weight sharing with ``2**bits`` k-means centroids per layer, then entropy coding of the indices.

    - ``bits``: 1 to 8 bits per index (a codebook of ``2**bits`` centroids per layer).
    - ``coder``: ``"huffman"`` (Deep Compression), ``"ans"`` or ``"arithmetic"``; ``None`` stores the indices
      packed at ``bits`` bits each.
    - ``init``: centroid initialisation, ``"linear"``, ``"density"`` or ``"random"`` (Han et al. 2016).
    - ``iterations``: k-means (Lloyd) iterations, 0 or more; ``0`` with ``init="linear"`` is uniform quantization.
    - ``layers``: module names to encode; ``None`` = every Linear, Conv2d and ConvTranspose2d.
    - ``seed``: seed of the ``random`` initialisation.

    Example:
        >>> EncodeConfig(bits=4, coder="ans").to_dict()["family"]
        'encoding'
    """

    family: ClassVar[str] = "encoding"
    VERSION: ClassVar[int] = 1
    method: ClassVar[str] = "weight-sharing"
    stage_rank: ClassVar[int] = 4
    stage_rule: ClassVar[str] = ("encoding turns weights into coded bitstreams, so it comes last (after pruning "
                                 "and quantization)")

    bits: int = 4
    coder: str | None = "huffman"
    init: str = "linear"
    iterations: int = 20
    layers: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_number("bits", self.bits, minimum=1, maximum=8, integer=True)
        if self.coder is not None:
            if not isinstance(self.coder, str) or self.coder not in CODERS:
                raise GanSurveyError(f"unknown entropy coder {self.coder!r}; allowed: None (packed indices), "
                                     f"{', '.join(map(repr, CODERS))}")
        check_choice("codebook initialisation", self.init, INITS)
        check_number("k-means iterations", self.iterations, minimum=0, maximum=10_000, integer=True)
        check_number("seed", self.seed, minimum=0, integer=True)
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers):
                raise GanSurveyError(f"layers must be a tuple of module names or None, got {self.layers!r}")
            object.__setattr__(self, "layers", tuple(self.layers))


def encode(model: nn.Module, config: EncodeConfig | Sequence[EncodeConfig], example_input: Any = None) -> nn.Module:
    """An encoded copy of ``model``: shared weights stored as (entropy-coded) codebook indices.

    Args:
        model: any module (generator or discriminator, built by this package or not); masked or sparse-stored
            layers of a pruned model keep their zeros exactly and code their positions.
        config: an :class:`EncodeConfig` or a list of them (applied in order).
        example_input: unused (the contract's argument).

    Returns:
        A new module whose selected layers are ``Codebook*`` layers; ``model`` is not modified.

    Example::

        small = encode(generator, EncodeConfig(bits=4, coder="huffman"))
        stored_bytes(small) / stored_bytes(generator)  # about 1/8 or less
    """
    check_family_configs("encode", model, config, (EncodeConfig,))
    return compress(model, config, example_input)


@register(EncodeConfig)
def _encode_handler(model: nn.Module, config: EncodeConfig, example_input: Any) -> nn.Module:
    layers = select_layers(model, config.layers)
    rng = np.random.default_rng(config.seed)
    for name, module in layers.items():
        if not _convertible(module):
            if config.layers is not None:
                raise GanSurveyError(f"layer {name!r} is a {type(module).__name__}, which encoding cannot convert; "
                                     f"allowed: nn.Linear, nn.Conv2d, nn.ConvTranspose2d (plain, pruned or encoded)")
            continue
        _encode_layer(name, module, config, rng)
    return model


# ---------------------------------------------------------------- k-means weight sharing


def kmeans_codebook(values: np.ndarray, bits: int, init: str = "linear", iterations: int = 20,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means of ``values`` into ``2**bits`` centroids (sorted); returns ``(codebook float32, indices)``.

    Each value's index is its nearest float32 centroid, so ``codebook[indices]`` are the shared weights exactly.

    Args:
        values: the weights to share (1-D).
        bits: 1 to 8.
        init: ``linear``, ``density`` or ``random`` (Han et al. 2016, section 3.1).
        iterations: Lloyd iterations (stops early when no index changes); 0 keeps the initial centroids.
        rng: random generator for the ``random`` initialisation.

    >>> cb, idx = kmeans_codebook(np.array([0.0, 0.1, 1.0, 1.1]), bits=1)
    >>> cb.tolist(), idx.tolist()
    ([0.05000000074505806, 1.0499999523162842], [0, 0, 1, 1])
    """
    check_number("bits", bits, minimum=1, maximum=8, integer=True)
    check_choice("codebook initialisation", init, INITS)
    k = 2**bits
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return np.zeros(k, dtype=np.float32), np.zeros(0, dtype=np.int64)
    lo, hi = float(v.min()), float(v.max())
    if init == "linear":
        centroids = np.linspace(lo, hi, k)
    elif init == "density":
        centroids = np.quantile(v, np.linspace(0, 1, k))
    else:
        rng = rng if rng is not None else np.random.default_rng(0)
        centroids = rng.choice(v, size=k, replace=v.size < k)
    centroids = np.sort(centroids)
    # In one dimension every cluster is a run of the sorted values: each Lloyd step needs only the k - 1
    # boundaries (a search among the sorted values) and prefix sums, not a pass over every value.
    ordered = np.sort(v)
    prefix = np.concatenate([[0.0], np.cumsum(ordered)])
    for _ in range(iterations):
        edges = np.concatenate([[0], np.searchsorted(ordered, (centroids[:-1] + centroids[1:]) / 2, "right"),
                                [v.size]])
        counts = np.diff(edges)
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centroids))
        if np.array_equal(new, centroids):
            break
        centroids = new
    codebook = np.sort(centroids.astype(np.float32))
    return codebook, _nearest(v.astype(np.float32), codebook)


def _nearest(v: np.ndarray, sorted_centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted centroids for each value (ties to the lower one)."""
    c = sorted_centroids.astype(v.dtype)
    mid = (c[:-1] + c[1:]) / 2
    idx = np.searchsorted(mid, v, side="left")
    # Rounding of the midpoints can misplace a value by one: settle it by distance.
    lower = np.clip(idx - 1, 0, len(c) - 1)
    upper = np.clip(idx + 1, 0, len(c) - 1)
    best = idx.copy()
    for cand in (lower, upper):
        closer = np.abs(v - c[cand]) < np.abs(v - c[best])
        best[closer] = cand[closer]
    return best.astype(np.int64)


# ---------------------------------------------------------------- the layer bitstream


@dataclass
class DecodedStream:
    """What a layer's stream holds: bits, the coder of its indices (``None``: packed), weight count, the flat
    positions of the coded weights (``None`` when every weight is coded) and their codebook indices."""

    bits: int
    coder: str | None
    numel: int
    positions: np.ndarray | None
    indices: np.ndarray
    state_crc: int = 0


def _gap_symbols(positions: np.ndarray) -> np.ndarray:
    """Run-length symbols of sorted flat positions: zeros skipped before each weight, with escapes."""
    gaps = np.diff(positions, prepend=-1) - 1
    escapes = gaps // _GAP_ESCAPE
    rest = gaps - escapes * _GAP_ESCAPE
    # Each weight emits `escapes` escape symbols then its remainder.
    counts = escapes + 1
    out = np.full(int(counts.sum()), _GAP_ESCAPE, dtype=np.int64)
    out[np.cumsum(counts) - 1] = rest
    return out


def _positions_of(symbols: np.ndarray) -> np.ndarray:
    steps = np.where(symbols == _GAP_ESCAPE, _GAP_ESCAPE, symbols + 1)
    ends = np.cumsum(steps) - 1
    return ends[symbols != _GAP_ESCAPE]


def _packed_positions(positions: np.ndarray, numel: int) -> bytes:
    keep = torch.zeros(numel, dtype=torch.bool)
    keep[torch.from_numpy(np.asarray(positions, dtype=np.int64))] = True
    index = encode_index(keep)
    tag = _INDEX_TAGS[index.dtype]
    return bytes([tag]) + index.numpy().astype(_INDEX_DTYPES[tag][1]).tobytes()


def encode_stream(indices: np.ndarray, bits: int, coder: str | None, numel: int,
                  positions: np.ndarray | None = None, state_crc: int = 0) -> bytes:
    """The bytes of one layer: header (with CRC-32), positions (when given), indices.

    Each section is entropy-coded with ``coder`` unless that would be longer than its plain form (packed
    ``bits``-bit indices; the sparse format's bitmap or gaps for positions), which is then stored instead, as
    DEFLATE's stored blocks do: a coded layer is never larger than a packed one. The header says which.

    Args:
        indices: codebook index of each coded weight (``int``, in ``[0, 2**bits)``).
        bits: index width, 1 to 8.
        coder: ``None`` (packed indices) or one of :data:`CODERS`.
        numel: weights of the layer.
        positions: sorted flat positions of the coded weights; ``None`` = all ``numel`` weights, in order.
        state_crc: :func:`stored_fields_crc` of the layer's other stored fields (the layers refresh it on saving).
    """
    indices = np.asarray(indices, dtype=np.int64)
    pos_mode, pos_bytes = 0, b""
    if positions is not None:
        pos_mode, pos_bytes = 1, _packed_positions(positions, numel)
        if coder is not None:
            symbols = _gap_symbols(np.asarray(positions, dtype=np.int64))
            coded = struct.pack("<I", len(symbols)) + encode_symbols(symbols, _GAP_ESCAPE + 1, coder)
            if len(coded) < len(pos_bytes):
                pos_mode, pos_bytes = 1 + _CODER_IDS[coder], coded
    code_coder = None
    code_bytes = kernels.pack_codes(torch.from_numpy(indices).view(1, -1), bits).numpy().tobytes() \
        if len(indices) else b""
    if coder is not None:
        coded = encode_symbols(indices, 2**bits, coder)
        if len(coded) < len(code_bytes):
            code_coder, code_bytes = coder, coded
    header = _HEADER.pack(_MAGIC, _FORMAT, _CODER_IDS[code_coder], bits, pos_mode, numel, len(indices),
                          len(pos_bytes), len(code_bytes), state_crc, 0)
    return _sealed(header + pos_bytes + code_bytes)


def _sealed(data: bytes) -> bytes:
    """``data`` with its stream CRC-32 (over the header, state checksum included, and the payload) filled in."""
    crc = zlib.crc32(data[_HEADER.size:], zlib.crc32(data[:_HEADER.size - 4]))
    return data[:_HEADER.size - 4] + struct.pack("<I", crc) + data[_HEADER.size:]


def with_state_crc(data: bytes, state_crc: int) -> bytes:
    """A copy of a layer's stream whose header carries ``state_crc`` (both checksums updated)."""
    head = bytearray(data[:_HEADER.size])
    struct.pack_into("<I", head, _HEADER.size - 8, state_crc)
    return _sealed(bytes(head) + bytes(data[_HEADER.size:]))


def stored_fields_crc(fields: dict[str, torch.Tensor]) -> int:
    """CRC-32 of a layer's stored fields other than its stream (codebook, bias...): names, dtypes, shapes and
    bytes, in name order, so a changed value, a swapped field or a resized one all change it."""
    crc = 0
    for name in sorted(fields):
        t = fields[name].detach().cpu().contiguous()
        crc = zlib.crc32(f"{name}:{t.dtype}:{tuple(t.shape)};".encode(), crc)
        crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy().tobytes(), crc)
    return crc


def decode_stream(data: bytes | np.ndarray | torch.Tensor, where: str = "stream") -> DecodedStream:
    """Parse and decode one layer's bytes; a :class:`GanSurveyError` naming ``where`` for any damage."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy().tobytes()
    elif isinstance(data, np.ndarray):
        data = data.tobytes()
    if len(data) < _HEADER.size:
        raise GanSurveyError(f"truncated encoded weights in {where}: {len(data)} bytes, shorter than the "
                             f"{_HEADER.size}-byte header")
    magic, fmt, coder_id, bits, pos_mode, numel, coded, pos_len, code_len, fields_crc, crc = \
        _HEADER.unpack_from(data)
    if magic == _MAGIC and fmt == 1:
        raise GanSurveyError(f"encoded weights in {where} are format 1, whose checksum left the codebook and bias "
                             f"unchecked; allowed: format {_FORMAT} (re-encode the model and save it again)")
    if magic != _MAGIC or fmt != _FORMAT:
        raise GanSurveyError(f"corrupted encoded weights in {where}: header {magic!r} format {fmt} is not a "
                             f"gansurvey codebook stream ({_MAGIC!r} format {_FORMAT})")
    want = _HEADER.size + pos_len + code_len
    if len(data) != want:
        what = "truncated (or corrupted)" if len(data) < want else "corrupted"
        raise GanSurveyError(f"{what} encoded weights in {where}: {len(data)} bytes, the header announces {want}")
    if zlib.crc32(data[_HEADER.size:], zlib.crc32(data[:_HEADER.size - 4])) != crc:
        raise GanSurveyError(f"corrupted encoded weights in {where}: the CRC-32 checksum does not match "
                             "(a changed byte); refusing to decode wrong weights")
    if coder_id not in _CODER_NAMES or not 1 <= bits <= 8 or coded > numel or pos_mode - 1 not in _CODER_NAMES \
            and pos_mode != 0:
        raise GanSurveyError(f"corrupted encoded weights in {where}: coder id {coder_id}, bits {bits}, position "
                             f"mode {pos_mode}, {coded} coded of {numel} weights")
    coder = _CODER_NAMES[coder_id]
    pos_bytes, code_bytes = data[_HEADER.size:_HEADER.size + pos_len], data[_HEADER.size + pos_len:]
    try:
        positions = None
        if pos_mode == 1:
            dtype, np_dtype = _INDEX_DTYPES[pos_bytes[0]]
            index = torch.from_numpy(np.frombuffer(pos_bytes[1:], dtype=np_dtype).astype(
                np_dtype.newbyteorder("="))).to(dtype)
            positions = decode_positions(index, numel).numpy()
        elif pos_mode > 1:
            (count,) = struct.unpack_from("<I", pos_bytes)
            positions = _positions_of(decode_symbols(pos_bytes[4:], count, _GAP_ESCAPE + 1,
                                                     _CODER_NAMES[pos_mode - 1]))
        if positions is not None:
            if len(positions) != coded or (coded and (positions[-1] >= numel or positions[0] < 0)):
                raise GanSurveyError(f"{len(positions)} positions for {coded} coded weights of {numel}")
        elif coded != numel:
            raise GanSurveyError(f"{coded} coded weights without positions in a layer of {numel}")
        if coder is None:
            packed = torch.frombuffer(bytearray(code_bytes), dtype=torch.uint8) if code_bytes else \
                torch.zeros(0, dtype=torch.uint8)
            indices = kernels.unpack_codes(packed.view(1, -1), bits, coded).view(-1).numpy() if coded else \
                np.zeros(0, dtype=np.int64)
        else:
            indices = decode_symbols(code_bytes, coded, 2**bits, coder)
    except (GanSurveyError, KeyError, IndexError, struct.error, ValueError) as err:
        raise GanSurveyError(f"corrupted encoded weights in {where}: {err}") from None
    return DecodedStream(bits, coder, numel, positions, np.asarray(indices, dtype=np.int64), fields_crc)


# ---------------------------------------------------------------- the codebook layers


class CodebookMixin(CompressedLayer):
    """A layer stored as a bitstream of codebook indices (see the module docstring).

    State: ``stream`` (uint8 buffer: header, coded positions, coded indices), ``codebook`` (float32 parameter of
    ``2**bits`` centroids) and the bias. Cached, not stored: the decoded indices and positions and the packed
    kernel codes. ``weight`` is the shared dense weight, rebuilt on access (differentiable in the codebook).
    """

    compute_dtype: ClassVar[torch.dtype | None] = torch.float32
    weight_shape: tuple[int, ...]

    # -- building and decoding

    def _set_stream(self, data: bytes, codebook: torch.Tensor, device: torch.device,
                    decoded: DecodedStream | None = None) -> None:
        self.register_buffer("stream", torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device))
        self.codebook = nn.Parameter(codebook.to(device=device, dtype=torch.float32))
        self._decode_cache(decoded=decoded)

    def _decode_cache(self, where: str = "stream", decoded: DecodedStream | None = None) -> None:
        decoded = decoded if decoded is not None else decode_stream(self.stream, where)
        if decoded.numel != math.prod(self.weight_shape):
            raise GanSurveyError(f"encoded weights in {where} hold {decoded.numel} weights; the layer's weight of "
                                 f"shape {self.weight_shape} has {math.prod(self.weight_shape)}")
        if self.codebook.numel() != 2**decoded.bits:
            raise GanSurveyError(f"codebook of {self.codebook.numel()} entries does not fit {decoded.bits}-bit "
                                 f"indices in {where}; it needs {2**decoded.bits}")
        device = self.stream.device
        self.bits, self.coder = decoded.bits, decoded.coder
        self.register_buffer("_indices", torch.from_numpy(decoded.indices).to(device), persistent=False)
        positions = decoded.positions if decoded.positions is not None else np.zeros(0, dtype=np.int64)
        self.register_buffer("_positions", torch.from_numpy(positions).to(device), persistent=False)
        self.has_positions = decoded.positions is not None
        self.register_buffer("_packed", self._kernel_codes(), persistent=False)

    def decode_stream(self) -> DecodedStream:
        """Decode this layer's stream from its bytes (what loading does; cached afterwards)."""
        return decode_stream(self.stream)

    # -- the shared weight

    def _flat_codes(self, fill: int) -> torch.Tensor:
        """Index of every weight (``fill`` where a pruned weight is)."""
        if not self.has_positions:
            return self._indices
        codes = torch.full((math.prod(self.weight_shape),), fill, dtype=torch.int64, device=self._indices.device)
        codes[self._positions] = self._indices
        return codes

    @property
    def kernel_bits(self) -> int | None:
        """Index width of the kernel format: ``bits``, one more for a pruned layer (its zero gets an entry),
        ``None`` when that exceeds 8 (the forward then uses the dense shared weight)."""
        kbits = self.bits + (1 if self.has_positions else 0)
        return kbits if kbits <= 8 else None

    def _matrix(self, codes: torch.Tensor) -> torch.Tensor:
        shaped = codes.view(self.weight_shape)
        if isinstance(self, nn.ConvTranspose2d):
            return kernels.conv_transpose2d_weight_matrix(shaped, self.groups)
        return shaped.reshape(self.weight_shape[0], -1)

    def _kernel_codes(self) -> torch.Tensor:
        kbits = self.kernel_bits
        if kbits is None:
            return torch.zeros(0, dtype=torch.uint8, device=self.stream.device)
        return kernels.pack_codes(self._matrix(self._flat_codes(2**self.bits)).contiguous(), kbits)

    def kernel_weight(self) -> kernels.CodebookWeight | None:
        """The :class:`gansurvey.kernels.CodebookWeight` the forward multiplies by (``None`` when 9 bits would
        be needed)."""
        kbits = self.kernel_bits
        if kbits is None:
            return None
        codebook = self.codebook.detach().to(torch.float32)
        if kbits > self.bits:
            codebook = torch.cat([codebook, codebook.new_zeros(2**kbits - codebook.numel())])
        return kernels.CodebookWeight(self._packed, kbits, self._matrix_shape(), codebook)

    def _matrix_shape(self) -> tuple[int, int]:
        numel = math.prod(self.weight_shape)
        k = self.weight_shape[0] // self.groups if isinstance(self, nn.ConvTranspose2d) else \
            numel // self.weight_shape[0]
        return numel // k, k

    @property
    def weight(self) -> torch.Tensor:
        # index_select, not codebook[indices]: the gradient of advanced indexing accumulates with atomic adds on
        # several CPU threads, so trained centroids would differ from run to run; index_select's gradient
        # (index_add_ on a 1-D tensor) sums in a fixed order on the CPU.
        shared = self.codebook.index_select(0, self._indices)
        if not self.has_positions:
            return shared.view(self.weight_shape)
        dense = shared.new_zeros(math.prod(self.weight_shape)).index_put((self._positions,), shared)
        return dense.view(self.weight_shape)

    def dense_weight(self) -> torch.Tensor:
        return self.weight.detach()

    def stored_params(self) -> int:
        # One stored weight per coded index (the survivors of a pruned layer), plus the bias; the codebook and
        # the stream's header are overhead, visible in stored bytes.
        return int(self._indices.numel()) + (self.bias.numel() if self.bias is not None else 0)

    def distinct_weights(self) -> int:
        """Distinct values of the shared weight (at most ``2**bits``, plus the zero of a pruned layer)."""
        return int(torch.unique(self.dense_weight()).numel())

    #: ``"auto"``: the LUT kernels of :mod:`gansurvey.kernels` where they run fused (Triton, on a GPU); on the
    #: reference backend the dense shared weight is gathered from the cached indices (``codebook[indices]``, what
    #: the reference LUT kernel computes, without unpacking the bits on every call). ``"always"``: the kernels
    #: API on every backend (tests compare the two).
    kernel_mode: ClassVar[str] = "auto"

    def _use_kernel(self, x: torch.Tensor | torch.device | str) -> bool:
        if torch.is_grad_enabled() and self.codebook.requires_grad:
            return False
        if self.kernel_bits is None:
            if kernels.backend(x) == "triton" and not self.__dict__.get("_fallback_logged"):
                self.__dict__["_fallback_logged"] = True
                _LOG.warning("%s: pruned 8-bit sharing needs 9-bit indices, which no kernel reads; this layer runs "
                             "as reference-dense (the shared dense weight)", self.extra_repr())
            return False
        return self.kernel_mode == "always" or kernels.backend(x) == "triton"

    def engine(self, x: torch.Tensor | torch.device | str | None = None) -> str:
        """The engine the forward runs on for input ``x`` (or on a device; default: this layer's):
        ``triton-lut`` (indices looked up inside the GEMM, codes of 1 to 8 bits, a pruned layer's zero as one
        more entry), ``reference`` (the kernels API's plain-torch reference, ``kernel_mode="always"``) or
        ``reference-dense`` (the shared dense weight ``codebook[indices]`` through torch's float ops: the CPU
        default, autograd with a trainable codebook, and 9-bit indices of pruned 8-bit layers, logged once)."""
        where = self.stream.device if x is None else x
        if not self._use_kernel(where):
            return "reference-dense"
        return kernels.engine(self.kernel_weight(), where)

    # -- state dict

    def _stored_field_names(self) -> list[str]:
        """Names of this layer's own stored fields other than ``stream`` (what the state checksum covers)."""
        names = [n for n, p in self._parameters.items() if p is not None]
        names += [n for n, b in self._buffers.items() if b is not None and n not in self._non_persistent_buffers_set]
        return [n for n in names if n != "stream"]

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # The codebook trains after encoding: the saved stream carries the checksum of the fields saved beside it.
        fields = {n: destination[prefix + n] for n in self._stored_field_names() if prefix + n in destination}
        data = with_state_crc(self.stream.detach().cpu().numpy().tobytes(), stored_fields_crc(fields))
        destination[prefix + "stream"] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.stream.device)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # A checkpoint may hold a stream of another length and a codebook of another size: adopt them first.
        stream, codebook = state_dict.get(prefix + "stream"), state_dict.get(prefix + "codebook")
        decoded = None
        if stream is not None:
            # Decode and check before anything changes: a damaged stream or field leaves this layer as it was.
            decoded = decode_stream(stream, f"{prefix}stream")
            fields = {name: state_dict[prefix + name] for name in self._stored_field_names()
                      if prefix + name in state_dict}
            if stored_fields_crc(fields) != decoded.state_crc:
                raise GanSurveyError(
                    f"corrupted encoded weights in {prefix}stream: the checksum of the layer's other stored fields "
                    f"({', '.join(prefix + n for n in sorted(fields))}) does not match (a changed codebook or bias "
                    "byte); refusing to load wrong weights")
            self.stream = torch.empty_like(stream, device=self.stream.device)
        if codebook is not None:
            self.codebook = nn.Parameter(torch.empty_like(codebook, device=self.codebook.device),
                                         requires_grad=self.codebook.requires_grad)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._decode_cache(where=f"{prefix}stream", decoded=decoded)

    def extra_repr(self) -> str:
        coder = self.coder or "packed"
        pruned = ", pruned" if self.has_positions else ""
        return f"{super().extra_repr()}, bits={self.bits}, coder={coder}{pruned}, stream={self.stream.numel()}B"


class CodebookLinear(CodebookMixin, nn.Linear):
    """A Linear layer stored as coded codebook indices (built by :func:`encode`)."""

    def kernel_forward(self, x: torch.Tensor, bias: torch.Tensor | None,
                       epilogue: kernels.Epilogue | None = None) -> torch.Tensor | None:
        """The forward on the LUT kernel with ``bias`` and ``epilogue`` fused, or None off that path."""
        if not self._use_kernel(x):
            return None
        return kernels.linear(x, self.kernel_weight(), bias, epilogue=epilogue)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.kernel_forward(x, self.bias)
        return F.linear(x, self.weight, self.bias) if out is None else out


class CodebookConv2d(CodebookMixin, nn.Conv2d):
    """A Conv2d layer stored as coded codebook indices (built by :func:`encode`)."""

    def kernel_forward(self, x: torch.Tensor, bias: torch.Tensor | None,
                       epilogue: kernels.Epilogue | None = None) -> torch.Tensor | None:
        """The forward on the LUT kernel with ``bias`` and ``epilogue`` fused, or None off that path."""
        if not self._use_kernel(x) or isinstance(self.padding, str):
            return None
        padding = self.padding
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        return kernels.conv2d(x, self.kernel_weight(), bias, self.stride, padding, self.dilation, self.groups,
                              self.kernel_size, epilogue=epilogue)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.kernel_forward(x, self.bias)
        return self._conv_forward(x, self.weight, self.bias) if out is None else out


class CodebookConvTranspose2d(CodebookMixin, nn.ConvTranspose2d):
    """A ConvTranspose2d stored as coded codebook indices (built by :func:`encode`)."""

    def kernel_forward(self, x: torch.Tensor, bias: torch.Tensor | None, epilogue: kernels.Epilogue | None = None,
                       output_size: list[int] | None = None) -> torch.Tensor | None:
        """The forward on the LUT kernel with ``bias`` and ``epilogue`` fused, or None off that path."""
        if not self._use_kernel(x):
            return None
        output_padding = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size, 2,
                                              self.dilation)
        return kernels.conv_transpose2d(x, self.kernel_weight(), bias, self.stride, self.padding,
                                        output_padding, self.dilation, self.groups, self.kernel_size,
                                        self.out_channels, epilogue=epilogue)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        out = self.kernel_forward(x, self.bias, output_size=output_size)
        return super().forward(x, output_size) if out is None else out


_BASES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
_CODEBOOK_CLASSES = {nn.Linear: CodebookLinear, nn.Conv2d: CodebookConv2d, nn.ConvTranspose2d: CodebookConvTranspose2d}
_CLASS_BASE = {cls: base for base, cls in _CODEBOOK_CLASSES.items()}


def _base_of(module: nn.Module) -> type | None:
    """The plain layer type ``module`` stands for, if encoding knows how to convert it."""
    cls = type(module)
    if cls in _BASES:
        return cls
    if cls in _CLASS_BASE:
        return _CLASS_BASE[cls]
    if is_sparse_storage(module) or mask_of(module) is not None:
        return next((b for b in _BASES if b in cls.__bases__), None)
    return None


def _convertible(module: nn.Module) -> bool:
    return _base_of(module) is not None


def codebook_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The encoded (``Codebook*``) layers of ``model`` by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, CodebookMixin)}


def _encode_layer(name: str, module: nn.Module, config: EncodeConfig, rng: np.random.Generator) -> None:
    base = _base_of(module)
    pruned = mask_of(module) is not None or is_sparse_storage(module) or \
        (isinstance(module, CodebookMixin) and module.has_positions)
    with torch.no_grad():
        weight = module.weight.detach().to(torch.float32)
    device, shape, numel = weight.device, tuple(weight.shape), weight.numel()
    if 2**config.bits > numel:
        raise GanSurveyError(f"layer {name!r} has {numel} weights, fewer than the {2**config.bits} centroids of a "
                             f"{config.bits}-bit codebook; allowed: bits <= {int(math.log2(numel))} for this layer "
                             "(or leave it out with layers=...)")
    flat = weight.flatten().cpu().numpy()
    nonzero = flat != 0
    positions = None
    if pruned or (1 - nonzero.mean()) >= ZERO_FRACTION:
        positions = np.flatnonzero(nonzero).astype(np.int64)
        values = flat[positions]
    else:
        values = flat
    codebook, indices = kmeans_codebook(values, config.bits, config.init, config.iterations, rng)
    data = encode_stream(indices, config.bits, config.coder, numel, positions)
    # Strip the old weight storage (plain, masked, sparse or encoded), then become the codebook class.
    if mask_of(module) is not None:
        unmask(module)
    for key in ("weight", "values", "codebook"):
        module._parameters.pop(key, None)
    for key in ("index", "stream", "_indices", "_positions", "_packed"):
        module._buffers.pop(key, None)
        module._non_persistent_buffers_set.discard(key)
    module.__class__ = _CODEBOOK_CLASSES[base]
    module.weight_shape = shape
    # The encoder's own arrays seed the cache; loading a state dict decodes the stream itself.
    used = _CODER_NAMES[_HEADER.unpack_from(data)[2]]
    module._set_stream(data, torch.from_numpy(codebook), device,
                       DecodedStream(config.bits, used, numel, positions, indices))


# ---------------------------------------------------------------- whole models


def decode(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every encoded layer turned back into a plain layer holding its shared weights
    (bit-exact: the values ``codebook[index]`` and exact zeros).

    Example::

        plain = decode(encode(generator, EncodeConfig(bits=3)))
    """
    out = copy.deepcopy(model)
    for module in codebook_layers(out).values():
        weight = module.dense_weight().clone()
        for key in ("codebook",):
            module._parameters.pop(key, None)
        for key in ("stream", "_indices", "_positions", "_packed"):
            module._buffers.pop(key, None)
            module._non_persistent_buffers_set.discard(key)
        module.__class__ = _CLASS_BASE[type(module)]
        module.weight = nn.Parameter(weight)
    return out


def recode(model: nn.Module, coder: str | None) -> nn.Module:
    """A copy of an encoded ``model`` whose streams hold the same indices and positions coded with ``coder``
    (lossless: the shared weights, trained codebooks included, do not change). This is Deep Compression's
    last stage applied to a shared (and possibly fine-tuned) model.

    Example::

        coded = recode(trained_shared_model, "huffman")
    """
    if coder is not None and coder not in CODERS:
        raise GanSurveyError(f"unknown entropy coder {coder!r}; allowed: None (packed indices), "
                             f"{', '.join(map(repr, CODERS))}")
    layers = codebook_layers(model)
    if not layers:
        raise GanSurveyError(f"{type(model).__name__} has no encoded layers to recode; encode it first")
    out = copy.deepcopy(model)
    for module in codebook_layers(out).values():
        indices = module._indices.cpu().numpy()
        positions = module._positions.cpu().numpy() if module.has_positions else None
        numel = math.prod(module.weight_shape)
        data = encode_stream(indices, module.bits, coder, numel, positions)
        used = _CODER_NAMES[_HEADER.unpack_from(data)[2]]
        module.stream = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(module.stream.device)
        module._decode_cache(decoded=DecodedStream(module.bits, used, numel, positions, indices))
    if getattr(out, "compression", None):
        last = dict(out.compression[-1])
        if last.get("type") == "EncodeConfig":
            out.compression = [*out.compression[:-1], {**last, "coder": coder}]
    return out


def serialize(model: nn.Module) -> bytes:
    """The bytes ``torch.save(model.state_dict())`` writes: for an encoded model, its bitstreams, codebooks and
    the rest of its state. :func:`gansurvey.metrics.cost.stored_bytes` is their length."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def deserialize(template: nn.Module, data: bytes) -> nn.Module:
    """A copy of ``template`` (an encoded model of the same architecture) holding the state in ``data``.

    Every stream is checked and decoded as it loads: damage raises :class:`GanSurveyError`.
    """
    out = copy.deepcopy(template)
    try:
        state = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as err:  # torch raises assorted errors on damaged archives
        # torch's own message suggests weights_only=False, which would run code from the file: name the error only
        raise GanSurveyError(f"cannot read the serialized model ({len(data)} bytes): not a state written by "
                             f"serialize() ({type(err).__name__})") from None
    try:
        out.load_state_dict(state)
    except RuntimeError as err:
        coded = sorted({k.rsplit(".", 1)[0] for k in state if k.endswith((".stream", ".codebook"))})
        have = set(codebook_layers(template))
        hint = (f"; the data holds encoded layers ({', '.join(coded[:3])}{', ...' if len(coded) > 3 else ''}) "
                f"that the template has not: encode the template with the same EncodeConfig first") \
            if coded and not have >= set(coded) else ""
        first = " ".join(str(err).split())[:200]
        raise GanSurveyError(f"the serialized state does not fit the template {type(template).__name__}{hint} "
                             f"({first})") from None
    return out


def encoding_report(model: nn.Module) -> pd.DataFrame:
    """One row per encoded layer: weights, coded weights, bits, coder of the indices, the Shannon entropy of the
    indices (bits per coded weight) and of the position symbols (bits per symbol), the entropy bound of the
    whole layer (bits per weight), and the achieved size (stream and codebook, bits per weight) beside the size
    of packed ``bits``-bit indices plus codebook."""
    rows = []
    for name, m in codebook_layers(model).items():
        numel, coded = math.prod(m.weight_shape), m._indices.numel()
        counts = np.bincount(m._indices.cpu().numpy(), minlength=2**m.bits)
        symbols = _gap_symbols(m._positions.cpu().numpy()) if m.has_positions else np.zeros(0, dtype=np.int64)
        gap_entropy = entropy_bits(np.bincount(symbols, minlength=256)) if len(symbols) else 0.0
        codebook_bits = 8 * m.codebook.numel() * m.codebook.element_size()
        rows.append(dict(
            layer=name, type=type(m).__name__.removeprefix("Codebook"), weights=numel, coded=coded, bits=m.bits,
            coder=m.coder or "packed", code_entropy=entropy_bits(counts), position_entropy=gap_entropy,
            entropy_bits_per_weight=(entropy_bits(counts) * coded + gap_entropy * len(symbols)) / numel,
            stream_bytes=m.stream.numel(), codebook_bytes=codebook_bits // 8,
            coded_bits_per_weight=(8 * m.stream.numel() + codebook_bits) / numel,
            packed_bits_per_weight=(m.bits * coded + codebook_bits) / numel))
    return pd.DataFrame(rows, columns=["layer", "type", "weights", "coded", "bits", "coder", "code_entropy",
                                       "position_entropy", "entropy_bits_per_weight", "stream_bytes",
                                       "codebook_bytes", "coded_bits_per_weight", "packed_bits_per_weight"])
