"""The 45 nm energy-per-operation table (Horowitz, ISSCC 2014, as printed in Han et al., NIPS 2015, Fig. 1).

``data/energy_45nm.csv`` holds one row per (operation, bits) with its energy in picojoules, a mark
(``V``: read and cross-checked; ``UNVERIFIED``: the reduced-precision rows of the same table, not seen by
this project) and a source. The 32-bit memory rows are per *access* of one 32-bit word; per-byte figures
divide them by four.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import torch

from gansurvey.checks import GanSurveyError, check_choice
from gansurvey.config import data_dir

COLUMNS = ("operation", "bits", "energy_pj", "mark", "source")
MARKS = ("V", "UNVERIFIED")

#: Arithmetic precisions with rows in the table, and the (add, mult) rows one multiply-accumulate uses.
MAC_ROWS = {
    "fp32": (("float_add", 32), ("float_mult", 32)),
    "int32": (("int_add", 32), ("int_mult", 32)),
    "fp16": (("float_add", 16), ("float_mult", 16)),
    "int8": (("int_add", 8), ("int_mult", 8)),
}

# The table has no 64-bit, bfloat16 or 16-bit-integer rows; these map to the nearest row.
_TORCH_TO_PRECISION = {
    torch.float32: "fp32", torch.float64: "fp32",
    torch.float16: "fp16", torch.bfloat16: "fp16",
    torch.int8: "int8", torch.uint8: "int8", torch.qint8: "int8", torch.quint8: "int8",
    torch.int16: "int32", torch.int32: "int32", torch.int64: "int32", torch.qint32: "int32",
}


def precision_of(dtype: torch.dtype | str) -> str:
    """Map a torch dtype (or a precision name) to one of the table's precisions: fp32, fp16, int8, int32.

    float64 counts as fp32, bfloat16 as fp16, 16/64-bit integers as int32 (the table has no closer rows).
    """
    if isinstance(dtype, str):
        return check_choice("precision", dtype, MAC_ROWS)
    if dtype in _TORCH_TO_PRECISION:
        return _TORCH_TO_PRECISION[dtype]
    # Sub-byte and other packed integer dtypes compute like int8 at best.
    if not dtype.is_floating_point and dtype != torch.bool:
        return "int8"
    allowed = ", ".join(map(str, _TORCH_TO_PRECISION))
    raise GanSurveyError(f"no energy row for dtype {dtype}; allowed: {allowed}")


@dataclass(frozen=True)
class EnergyRow:
    operation: str
    bits: int
    energy_pj: float
    mark: str
    source: str


@dataclass(frozen=True)
class EnergyTable:
    """Validated energy rows keyed by (operation, bits), with the lookups the cost model needs."""

    rows: Mapping[tuple[str, int], EnergyRow]
    path: Path

    def row(self, operation: str, bits: int) -> EnergyRow:
        key = (operation, bits)
        if key not in self.rows:
            known = ", ".join(f"{op}/{b}" for op, b in sorted(self.rows))
            raise GanSurveyError(f"no row ({operation!r}, {bits} bits) in {self.path}; rows: {known}")
        return self.rows[key]

    def energy_pj(self, operation: str, bits: int) -> float:
        return self.row(operation, bits).energy_pj

    def mac_pj(self, dtype: torch.dtype | str = "fp32") -> float:
        """Energy of one multiply-accumulate (one mult + one add) at ``dtype``'s precision, in pJ.

        int8 and fp16 use the table's UNVERIFIED rows: check :meth:`mac_verified` before quoting the number.
        """
        return sum(self.energy_pj(op, bits) for op, bits in MAC_ROWS[precision_of(dtype)])

    def mac_verified(self, dtype: torch.dtype | str = "fp32") -> bool:
        """True when every row behind :meth:`mac_pj` for ``dtype`` is marked ``V``."""
        return all(self.row(op, bits).mark == "V" for op, bits in MAC_ROWS[precision_of(dtype)])

    def dram_pj_per_byte(self) -> float:
        """One 32-bit DRAM access spread over its four bytes."""
        return self.energy_pj("dram_access", 32) / 4

    def sram_pj_per_byte(self) -> float:
        """One 32-bit SRAM cache access spread over its four bytes."""
        return self.energy_pj("sram_access", 32) / 4

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(r) for r in self.rows.values()], columns=list(COLUMNS))


def load_energy_table(path: str | os.PathLike | None = None) -> EnergyTable:
    """Read and validate an energy CSV (default ``data/energy_45nm.csv``).

    A missing column, an empty or non-numeric ``bits``/``energy_pj``, an unknown ``mark`` or a repeated
    (operation, bits) pair raises :class:`GanSurveyError` naming the file, the line and the column.
    """
    path = Path(path) if path is not None else data_dir() / "energy_45nm.csv"
    if not path.is_file():
        raise GanSurveyError(f"energy table {path} does not exist")
    return _load(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: Path, _mtime: int) -> EnergyTable:
    # Cached by modification time, so an edited file is re-read and a broken one keeps failing.
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GanSurveyError(f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                                 f"expected columns: {', '.join(COLUMNS)}")
        rows: dict[tuple[str, int], EnergyRow] = {}
        for record in reader:
            line = reader.line_num
            row = _parse_row(path, line, record)
            key = (row.operation, row.bits)
            if key in rows:
                raise GanSurveyError(f"{path}, line {line}: repeated row for operation {row.operation!r} "
                                     f"at {row.bits} bits")
            rows[key] = row
    if not rows:
        raise GanSurveyError(f"{path}: no data rows")
    # Read-only: the table is cached and shared by every caller.
    return EnergyTable(rows=MappingProxyType(rows), path=path)


def _parse_row(path: Path, line: int, record: dict) -> EnergyRow:
    def bad(column: str, why: str) -> GanSurveyError:
        return GanSurveyError(f"{path}, line {line}, column {column!r}: {why}")

    if record.get(None):
        raise bad(COLUMNS[-1], f"extra field(s) {record[None]!r} beyond the {len(COLUMNS)} columns")
    operation = (record.get("operation") or "").strip()
    if not operation:
        raise bad("operation", "empty operation name")
    raw_bits = (record.get("bits") or "").strip()
    try:
        bits = int(raw_bits)
    except ValueError:
        raise bad("bits", f"{raw_bits!r} is not an integer") from None
    if bits <= 0:
        raise bad("bits", f"{bits} is not a positive bit width")
    raw_energy = (record.get("energy_pj") or "").strip()
    try:
        energy = float(raw_energy)
    except ValueError:
        raise bad("energy_pj", f"{raw_energy!r} is not a number") from None
    if not math.isfinite(energy) or energy < 0:
        raise bad("energy_pj", f"{raw_energy!r} is not a finite non-negative energy")
    mark = (record.get("mark") or "").strip()
    if mark not in MARKS:
        raise bad("mark", f"unknown mark {mark!r}; allowed: {', '.join(MARKS)}")
    return EnergyRow(operation, bits, energy, mark, (record.get("source") or "").strip())
