"""CSV and JSON tables: opening them with clear errors, finding columns case-insensitively,
numbering rows as ``"<csv> row <n>"``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from globeflow.data.embeddings import DatasetError

from .rows import _Skip

__all__: list[str] = []  # internal helpers of read_images

# Place-name columns kept as metadata for osv5m and yfcc (header names, case-insensitive).
_PLACE_COLUMNS = (
    "continent", "country", "region", "sub-region", "state", "county", "city", "neighbourhood"
)  # fmt: skip


@dataclass
class _Table:
    path: Path
    header: list[str]

    def find(self, names: Sequence[str]) -> int | None:
        """Index of the first of ``names`` present (case-insensitive), or None."""
        lowered = [h.strip().lower() for h in self.header]
        return next((lowered.index(n) for n in names if n in lowered), None)

    def require(self, **columns: Sequence[str]) -> dict[str, int]:
        found = {key: self.find(names) for key, names in columns.items()}
        missing = ["/".join(names) for key, names in columns.items() if found[key] is None]
        if missing:
            present = ", ".join(self.header) or "(none)"
            raise DatasetError(
                f"{self.path}: missing required column(s) {', '.join(missing)}; "
                f"columns present: {present}"
            )
        return {key: index for key, index in found.items() if index is not None}

    def places(self) -> dict[str, int]:
        """Place-name metadata columns present: canonical name -> index."""
        found = {name: self.find((name,)) for name in _PLACE_COLUMNS}
        return {name: index for name, index in found.items() if index is not None}


@contextmanager
def _read_csv(path: Path) -> Iterator[tuple[_Table, Iterator[tuple[str, list[str]]]]]:
    """The table (header stripped) and an iterator of ``(where, cells)`` rows; callers check
    each row's length with :func:`_cells`."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open ({exc})") from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"{path}: empty file, expected a CSV header") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not a readable CSV file ({exc})") from exc
        yield _Table(path, [h.strip() for h in header]), _numbered_rows(path, reader)


def _numbered_rows(path: Path, reader: Iterator[list[str]]) -> Iterator[tuple[str, list[str]]]:
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path} row {row}: not readable as CSV ({exc})") from exc
        if cells:  # a blank line is not a row
            yield f"{path} row {row}", cells
            row += 1


def _cells(table: _Table, cells: list[str]) -> list[str]:
    if len(cells) != len(table.header):
        raise _Skip(f"row has {len(cells)} fields, the header has {len(table.header)}")
    return cells


def _csv_header(path: Path) -> list[str] | None:
    try:
        with _read_csv(path) as (table, _):
            return [h.strip().lower() for h in table.header]
    except DatasetError:
        return None


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from exc
