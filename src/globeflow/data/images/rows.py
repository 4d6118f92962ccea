"""Row checks shared by the readers: the collector of records and skipped rows, and the
parsing of coordinates and JSON metadata. A row that cannot be used raises :class:`_Skip`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .records import ImageRecord, ImageSource, Metadata

__all__: list[str] = []  # internal helpers of read_images

_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "lng", "longitude")
_NAN = float("nan")


class _Skip(Exception):
    """A row (or sample) that cannot be used; the message is the reason."""


class _Collector:
    """Records in order, skipped rows, and the ids seen so far."""

    def __init__(self) -> None:
        self.records: list[ImageRecord] = []
        self.skipped: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}  # id -> where it was first seen

    @contextmanager
    def row(self, where: str) -> Iterator[None]:
        try:
            yield
        except _Skip as skip:
            self.skipped.append((where, str(skip)))

    def add(self, record: ImageRecord, where: str) -> None:
        if record.id in self._first:
            raise _Skip(f"duplicate id {record.id!r} (first seen at {self._first[record.id]})")
        self._first[record.id] = where
        self.records.append(record)

    def source(self, kind: str, root: Path | str) -> ImageSource:
        return ImageSource(self.records, self.skipped, kind, str(root))


def _coordinate(value: Any, name: str, bound: float) -> float:
    if isinstance(value, bool):
        raise _Skip(f"{name} {value!r} is not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _Skip(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise _Skip(f"{name} {value!r} is not finite")
    if abs(number) > bound:
        raise _Skip(f"{name} {number} is out of range [-{bound:g}, {bound:g}]")
    return number


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _location(lat: Any, lon: Any, names: tuple[str, str]) -> tuple[float, float] | None:
    """Checked ``(lat, lon)``; None when both are missing; :class:`_Skip` when one is missing
    or either is not a number or out of range."""
    if _is_missing(lat) and _is_missing(lon):
        return None
    for value, name in ((lat, names[0]), (lon, names[1])):
        if _is_missing(value):
            raise _Skip(f"{name} is missing")
    return _coordinate(lat, names[0], 90.0), _coordinate(lon, names[1], 180.0)


def _required_location(lat: Any, lon: Any, names: tuple[str, str]) -> tuple[float, float]:
    location = _location(lat, lon, names)
    if location is None:
        raise _Skip(f"{names[0]} and {names[1]} are missing")
    return location


def _json_metadata(values: dict[str, Any], exclude: Sequence[str] = ()) -> Metadata:
    out: Metadata = {}
    for key, value in values.items():
        if key in exclude or value is None:
            continue
        if isinstance(value, (str, int, float)):
            out[str(key)] = value
        else:
            out[str(key)] = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return out
