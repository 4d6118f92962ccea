"""The ``files`` kind: image files, folders or globs, positioned by a labels CSV or by EXIF GPS."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from PIL import Image

from globeflow.data.exif import gps_from_exif

from .paths import PathLike, Paths, _as_list, _common_root, _image_files
from .records import IMAGE_EXTENSIONS, ImageRecord, ImageSource, Metadata
from .rows import _LAT_NAMES, _LON_NAMES, _NAN, _Collector, _required_location, _Skip
from .tables import _cells, _read_csv

__all__: list[str] = []  # internal: read_images(kind='files') is the entry point


def _read_files(path: Paths, labels: PathLike | None, require_location: bool) -> ImageSource:
    items = _as_list(path)
    files = [f for item in items for f in _image_files(item)]
    if len(items) == 1 and Path(items[0]).is_dir():
        root = Path(items[0])
    else:
        root = _common_root(files)
    out = _Collector()
    ids = [_file_id(f, root) for f in files]
    positions = _labels(Path(labels), files, ids, out) if labels is not None else None
    for file, file_id in zip(files, ids):
        with out.row(str(file)):
            if positions is not None:
                lat, lon, metadata = positions.get(file_id) or (_NAN, _NAN, {})
            else:
                lat, lon = _exif_position(file) or (_NAN, _NAN)
                metadata = {}
            if require_location and not math.isfinite(lat):
                origin = f"no row in {labels}" if positions is not None else "no EXIF GPS position"
                raise _Skip(f"no location ({origin})")
            out.add(ImageRecord(file_id, lat, lon, metadata, str(file)), str(file))
    return out.source("files", root)


def _file_id(file: Path, root: Path) -> str:
    relative = file.absolute().relative_to(root.absolute()).as_posix()
    return relative[: -len(file.suffix)] if file.suffix else relative


def _exif_position(file: Path) -> tuple[float, float] | None:
    try:
        return gps_from_exif(file)
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error,
            Image.DecompressionBombError, Image.DecompressionBombWarning):  # fmt: skip
        return None  # an unreadable image has no position here; open() reports why


def _label_key(text: str) -> str:
    key = text.strip().replace("\\", "/").removeprefix("./")
    suffix = Path(key).suffix
    return key[: -len(suffix)] if suffix.lower() in IMAGE_EXTENSIONS else key


def _labels(
    path: Path, files: list[Path], ids: list[str], out: _Collector
) -> dict[str, tuple[float, float, Metadata]]:
    """Positions and metadata from a labels CSV, keyed by file id. A label id matches a file's
    id (relative path) or, when it has no ``/``, the file's stem if exactly one file has it."""
    known = set(ids)
    by_stem: dict[str, list[str]] = {}
    for file, file_id in zip(files, ids):
        by_stem.setdefault(file.stem, []).append(file_id)
    positions: dict[str, tuple[float, float, Metadata]] = {}
    with _read_csv(path) as (table, rows):
        columns = table.require(id=("id",), lat=_LAT_NAMES, lon=_LON_NAMES)
        extra = [i for i in range(len(table.header)) if i not in columns.values()]
        for where, cells in rows:
            with out.row(where):
                cells = _cells(table, cells)
                key = _label_key(cells[columns["id"]])
                file_id = key if key in known else _match_stem(key, by_stem)
                if file_id in positions:
                    raise _Skip(f"duplicate label for image {file_id!r}")
                lat, lon = _required_location(
                    cells[columns["lat"]], cells[columns["lon"]],
                    (table.header[columns["lat"]], table.header[columns["lon"]]),
                )  # fmt: skip
                metadata = {table.header[i]: cells[i] for i in extra if cells[i].strip()}
                positions[file_id] = (lat, lon, metadata)
    return positions


def _match_stem(key: str, by_stem: dict[str, list[str]]) -> str:
    matches = by_stem.get(key, []) if "/" not in key else []
    if len(matches) > 1:
        raise _Skip(f"id {key!r} matches {len(matches)} images ({', '.join(matches)}); "
                    "use the path relative to the folder")  # fmt: skip
    if not matches:
        raise _Skip(f"no image file for id {key!r}")
    return matches[0]
