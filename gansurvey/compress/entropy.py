"""Lossless entropy coders for symbol streams (codebook indices, run lengths of sparse positions).

Three coders, each turning a 1-D array of integer symbols in ``[0, alphabet)`` into self-contained bytes and
back, exactly:

- ``"huffman"``: canonical Huffman coding (Huffman 1952), as in Deep Compression (Han et al. 2016). Code lengths
  are limited to :data:`MAX_CODE_BITS` so that decoding is one table lookup per symbol; the stream is cut into
  chunks whose bit offsets are stored, so every chunk is decoded at once (vectorised with numpy). A Huffman code
  spends at least one bit per symbol.
- ``"ans"``: asymmetric numeral systems (Duda 2013), a stack coder that gets within a fraction of a percent of
  the Shannon entropy, below one bit per symbol too (the ``constriction`` package's ``AnsCoder``).
- ``"arithmetic"``: range coding, the integer form of arithmetic coding (``constriction``'s ``RangeEncoder``).

Both model-based coders use the symbol counts, stored in the header as variable-length integers, as the
probability model; the decoder rebuilds the same model from them. A coder never checks integrity: the layers
that hold these bytes carry a checksum (see :mod:`gansurvey.compress.encoding`). Corrupt input still fails with
:class:`~gansurvey.checks.GanSurveyError` rather than returning symbols outside the alphabet.

>>> import numpy as np
>>> data = encode_symbols(np.array([0, 0, 0, 1, 2, 0]), 4, "huffman")
>>> decode_symbols(data, 6, 4, "huffman").tolist()
[0, 0, 0, 1, 2, 0]
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from gansurvey.checks import GanSurveyError, check_choice, check_number

#: The entropy coders by name.
CODERS = ("huffman", "ans", "arithmetic")
#: Longest Huffman code (bits): the decoder's lookup table has ``2**MAX_CODE_BITS`` entries.
MAX_CODE_BITS = 16
_MAX_ALPHABET = 1 << 12


def _check_alphabet(alphabet: int) -> int:
    return check_number("alphabet size", alphabet, minimum=1, maximum=_MAX_ALPHABET, integer=True)


def _as_symbols(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise GanSurveyError(f"symbols must be a 1-D integer array, got dtype {arr.dtype} and shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= alphabet):
        raise GanSurveyError(f"symbols must lie in [0, {alphabet}), got values in [{arr.min()}, {arr.max()}]")
    return arr


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits per symbol) of a histogram of symbol counts; 0 for an empty one.

    >>> entropy_bits(np.array([2, 1, 1]))
    1.5
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return max(0.0, float(-(p * np.log2(p)).sum()))


# ---------------------------------------------------------------- small byte helpers


def _varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        v = int(v)
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _read_varints(data: bytes, count: int, offset: int) -> tuple[np.ndarray, int]:
    values = np.zeros(count, dtype=np.int64)
    for i in range(count):
        shift, value = 0, 0
        while True:
            if offset >= len(data) or shift > 56:
                raise GanSurveyError("corrupt entropy-coded stream: its symbol counts end early or overflow")
            byte = data[offset]
            offset += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values[i] = value
    return values, offset


# ---------------------------------------------------------------- Huffman


def huffman_code_lengths(counts: np.ndarray, max_bits: int = MAX_CODE_BITS) -> np.ndarray:
    """Code length of every symbol of a Huffman code for ``counts`` (0 for unused symbols), at most ``max_bits``.

    A single used symbol gets one bit. When the optimal code is longer than ``max_bits`` the counts are
    flattened (halved, kept non-zero) until it fits, a common length-limiting heuristic.

    >>> huffman_code_lengths(np.array([5, 2, 1, 1])).tolist()
    [1, 2, 3, 3]
    """
    counts = np.asarray(counts, dtype=np.int64).copy()
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) == 0:
        return lengths
    if len(used) == 1:
        lengths[used] = 1
        return lengths
    while True:
        heap = [(int(counts[s]), int(s), (int(s),)) for s in used]
        heapq.heapify(heap)
        lengths[:] = 0
        tie = len(counts)
        while len(heap) > 1:
            c1, _, s1 = heapq.heappop(heap)
            c2, _, s2 = heapq.heappop(heap)
            for s in s1 + s2:
                lengths[s] += 1
            heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
            tie += 1
        if lengths.max() <= max_bits:
            return lengths
        counts[used] = counts[used] // 2 + 1


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical Huffman codewords (as integers, most significant bit first) for the given code lengths."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    order = sorted((int(n), s) for s, n in enumerate(lengths.tolist()) if n > 0)
    code, previous = 0, order[0][0] if order else 0
    for n, s in order:
        code <<= n - previous
        codes[s] = code
        code += 1
        previous = n
    return codes


def _chunk_size(n: int) -> int:
    # About 2*sqrt(n) symbols per chunk: few decoding steps, few stored offsets (4 bytes per chunk).
    return int(min(8192, max(256, 2 * math.isqrt(max(n, 1)))))


def huffman_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    """Canonical Huffman bytes for ``symbols``: code lengths (one byte per symbol of the alphabet), the chunk
    size and chunk bit offsets (uint32), then the codewords, most significant bit first."""
    alphabet = _check_alphabet(alphabet)
    symbols = _as_symbols(symbols, alphabet)
    lengths = huffman_code_lengths(np.bincount(symbols, minlength=alphabet))
    codes = canonical_codes(lengths)
    sym_len, sym_code = lengths[symbols], codes[symbols]
    ends = np.cumsum(sym_len)
    starts = ends - sym_len
    total = int(ends[-1]) if len(ends) else 0
    bits = np.zeros(total, dtype=np.uint8)
    for j in range(int(sym_len.max()) if len(sym_len) else 0):
        sel = sym_len > j
        bits[starts[sel] + j] = (sym_code[sel] >> (sym_len[sel] - 1 - j)) & 1
    chunk = _chunk_size(len(symbols))
    offsets = starts[::chunk].astype(np.uint32) if len(symbols) else np.zeros(0, dtype=np.uint32)
    header = lengths.astype(np.uint8).tobytes() + np.array([chunk, len(offsets)], dtype="<u4").tobytes()
    return header + offsets.astype("<u4").tobytes() + np.packbits(bits).tobytes()


def huffman_decode(data: bytes, count: int, alphabet: int) -> np.ndarray:
    """The ``count`` symbols that :func:`huffman_encode` wrote into ``data``."""
    alphabet = _check_alphabet(alphabet)
    check_number("symbol count", count, minimum=0, integer=True)
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) < alphabet + 8:
        raise GanSurveyError(f"corrupt Huffman stream: {len(buf)} bytes cannot hold its {alphabet}-symbol header")
    lengths = buf[:alphabet].astype(np.int64)
    chunk, chunks = (int(v) for v in np.frombuffer(buf[alphabet:alphabet + 8].tobytes(), dtype="<u4"))
    if lengths.max() > MAX_CODE_BITS or chunk < 1 or chunks != -(-count // chunk):
        raise GanSurveyError(f"corrupt Huffman stream: code lengths up to {lengths.max()} bits, chunk size {chunk} "
                             f"and {chunks} chunks do not describe {count} symbols")
    start = alphabet + 8 + 4 * chunks
    if len(buf) < start:
        raise GanSurveyError("corrupt Huffman stream: it ends inside its chunk table")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.frombuffer(buf[alphabet + 8:start].tobytes(), dtype="<u4").astype(np.int64)
    payload = buf[start:]
    # Lookup table over MAX_CODE_BITS-bit windows: symbol and code length (0 = no codeword starts here).
    codes = canonical_codes(lengths)
    table_sym = np.zeros(1 << MAX_CODE_BITS, dtype=np.int64)
    table_len = np.zeros(1 << MAX_CODE_BITS, dtype=np.int64)
    for s in np.flatnonzero(lengths):
        n = int(lengths[s])
        lo = int(codes[s]) << (MAX_CODE_BITS - n)
        hi = (int(codes[s]) + 1) << (MAX_CODE_BITS - n)
        if hi > len(table_sym):
            raise GanSurveyError("corrupt Huffman stream: its code lengths do not form a prefix code")
        table_sym[lo:hi], table_len[lo:hi] = s, n
    padded = np.concatenate([payload, np.zeros(3, dtype=np.uint8)]).astype(np.int64)
    total_bits = 8 * len(payload)
    out = np.zeros((chunks, chunk), dtype=np.int64)
    pos = offsets.copy()
    last = count - chunk * (chunks - 1)  # symbols in the last chunk
    for t in range(chunk):
        rows = slice(None) if t < last else slice(0, chunks - 1)
        p = pos[rows]
        if np.any(p >= total_bits) or np.any(p < 0):
            raise GanSurveyError("truncated or corrupt Huffman stream: a codeword starts past its last bit")
        i, r = p >> 3, p & 7
        window = (((padded[i] << 16) | (padded[i + 1] << 8) | padded[i + 2]) >> (8 - r)) & 0xFFFF
        n = table_len[window]
        if np.any(n == 0) or np.any(p + n > total_bits):
            raise GanSurveyError("corrupt Huffman stream: bits that are no codeword, or a codeword past its end")
        out[rows, t] = table_sym[window]
        pos[rows] = p + n
    return out.reshape(-1)[:count]


# ---------------------------------------------------------------- ANS and range coding (constriction)


def _constriction():
    try:
        import constriction
    except ImportError as err:  # pragma: no cover - a pinned dependency
        raise GanSurveyError("the 'ans' and 'arithmetic' coders need the constriction package "
                             "(pip install constriction==0.5.0); 'huffman' works without it") from err
    return constriction


def _model(counts: np.ndarray):
    constriction = _constriction()
    total = counts.sum()
    probabilities = counts.astype(np.float64) / total if total else np.full(len(counts), 1.0 / len(counts))
    if len(counts) == 1:  # constriction needs two symbols; a never-used second one costs nothing
        probabilities = np.array([1.0, 0.0])
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def _model_encode(symbols: np.ndarray, alphabet: int, coder: str) -> bytes:
    alphabet = _check_alphabet(alphabet)
    symbols = _as_symbols(symbols, alphabet)
    counts = np.bincount(symbols, minlength=alphabet)
    header = _varints(counts)
    if len(symbols) == 0:
        return header
    constriction = _constriction()
    model = _model(counts)
    if coder == "ans":
        enc = constriction.stream.stack.AnsCoder()
        enc.encode_reverse(symbols.astype(np.int32), model)
    else:
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(symbols.astype(np.int32), model)
    return header + enc.get_compressed().astype("<u4").tobytes()


def _model_decode(data: bytes, count: int, alphabet: int, coder: str) -> np.ndarray:
    alphabet = _check_alphabet(alphabet)
    check_number("symbol count", count, minimum=0, integer=True)
    counts, offset = _read_varints(bytes(data), alphabet, 0)
    if int(counts.sum()) != count:
        raise GanSurveyError(f"corrupt {coder} stream: its symbol counts add up to {int(counts.sum())}, "
                             f"not the {count} symbols expected")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    words = data[offset:]
    if len(words) % 4:
        raise GanSurveyError(f"truncated {coder} stream: {len(words)} payload bytes is not a whole number of "
                             "32-bit words")
    compressed = np.frombuffer(words, dtype="<u4").astype(np.uint32)
    constriction = _constriction()
    model = _model(counts)
    try:
        if coder == "ans":
            out = constriction.stream.stack.AnsCoder(compressed).decode(model, count)
        else:
            out = constriction.stream.queue.RangeDecoder(compressed).decode(model, count)
    except Exception as err:  # constriction raises its own errors on invalid data
        raise GanSurveyError(f"corrupt {coder} stream: {err}") from None
    out = np.asarray(out, dtype=np.int64)
    if out.size and (out.min() < 0 or out.max() >= alphabet):
        raise GanSurveyError(f"corrupt {coder} stream: it decodes to symbols outside [0, {alphabet})")
    return out


# ---------------------------------------------------------------- one interface


def encode_symbols(symbols: np.ndarray, alphabet: int, coder: str) -> bytes:
    """Entropy-code ``symbols`` (integers in ``[0, alphabet)``) with ``coder`` (one of :data:`CODERS`).

    Args:
        symbols: 1-D integer array.
        alphabet: number of possible symbols (at most 4096).
        coder: ``"huffman"``, ``"ans"`` or ``"arithmetic"``.

    Returns:
        Bytes that :func:`decode_symbols` turns back into ``symbols`` given their count.

    >>> len(encode_symbols(np.zeros(1000, dtype=int), 2, "ans")) < 20
    True
    """
    check_choice("entropy coder", coder, CODERS)
    if coder == "huffman":
        return huffman_encode(symbols, alphabet)
    return _model_encode(symbols, alphabet, coder)


def decode_symbols(data: bytes, count: int, alphabet: int, coder: str) -> np.ndarray:
    """The ``count`` symbols :func:`encode_symbols` wrote into ``data`` (``int64``); a clear error on bytes it
    could not have written."""
    check_choice("entropy coder", coder, CODERS)
    if coder == "huffman":
        return huffman_decode(data, count, alphabet)
    return _model_decode(data, count, alphabet, coder)
