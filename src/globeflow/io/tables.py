"""Tables of per-row results (predictions, log-densities, answers) as Parquet or CSV files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .files import atomic_write

__all__ = ["OUTPUT_FORMATS", "check_table_path", "write_table"]

#: Suffixes a table can be written as.
OUTPUT_FORMATS = (".parquet", ".csv")


def check_table_path(out: str | os.PathLike, formats: tuple[str, ...] = OUTPUT_FORMATS) -> Path:
    """``out`` as a path, refused before any work when its suffix names no supported format."""
    out = Path(out)
    if out.suffix not in formats:
        allowed = " or ".join(formats) if len(formats) == 2 else ", ".join(formats)
        raise ValueError(f"--out {out}: unsupported output format {out.suffix or '(none)'}; use {allowed}")
    return out


def write_table(columns: dict[str, Any], out: Path) -> None:
    """Columns of equal length -> ``out`` as Parquet or CSV (by suffix), written atomically.

    The ``id`` column is written as text, so that numeric and string ids read back alike.
    """
    table = pa.table({k: (pa.array([str(i) for i in v]) if k == "id" else pa.array(v)) for k, v in columns.items()})
    if out.suffix == ".parquet":
        atomic_write(out, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True))
    else:
        atomic_write(out, lambda tmp: pacsv.write_csv(table, tmp))
