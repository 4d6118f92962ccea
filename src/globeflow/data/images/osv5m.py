"""The ``osv5m`` kind: an OSV-5M CSV and the images below ``images/``."""

from __future__ import annotations

from pathlib import Path

from globeflow.data.embeddings import DatasetError

from .paths import _walk_images
from .records import ImageRecord, ImageSource
from .rows import _Collector, _required_location, _Skip
from .tables import _cells, _csv_header, _read_csv

__all__: list[str] = []  # internal: read_images(kind='osv5m') is the entry point

_OSV5M_COLUMNS = ("id", "latitude", "longitude", "country")


def _is_osv5m_table(path: Path) -> bool:
    header = _csv_header(path)
    return header is not None and all(c in header for c in _OSV5M_COLUMNS)


def _osv5m_table(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    tables = sorted(p for p in path.glob("*.csv") if _is_osv5m_table(p))
    if len(tables) != 1:
        found = ", ".join(p.name for p in tables) or "none"
        raise DatasetError(
            f"{path}: expected one OSV-5M CSV (columns {', '.join(_OSV5M_COLUMNS)}), "
            f"found {found}; pass the CSV's path"
        )
    return tables[0]


def _index_by_stem(folder: Path) -> dict[str, Path]:
    """Image files below ``folder`` by stem; the first in sorted order wins."""
    index: dict[str, Path] = {}
    for file in _walk_images(folder):
        index.setdefault(file.stem, file)
    return index


def _read_osv5m(path: Path, images: Path | None) -> ImageSource:
    table_path = _osv5m_table(path)
    root = table_path.parent
    image_root = images if images is not None else root / "images"
    if not image_root.is_dir():
        raise DatasetError(f"{image_root}: no such folder (OSV-5M images are expected there)")
    split = image_root / table_path.stem
    index = _index_by_stem(split if split.is_dir() else image_root)
    out = _Collector()
    with _read_csv(table_path) as (table, rows):
        columns = table.require(id=("id",), lat=("latitude",), lon=("longitude",))
        places = table.places()
        for where, cells in rows:
            with out.row(where):
                cells = _cells(table, cells)
                image_id = cells[columns["id"]].strip()
                location = _required_location(
                    cells[columns["lat"]], cells[columns["lon"]], ("latitude", "longitude")
                )
                file = index.get(image_id)
                if file is None:
                    raise _Skip(f"no image file {image_id}.jpg below {image_root}")
                metadata = {k: cells[i] for k, i in places.items() if cells[i].strip()}
                out.add(ImageRecord(image_id, *location, metadata, str(file)), where)
    return out.source("osv5m", root)
