"""The ``yfcc`` kind: a YFCC100M / MP-16 style CSV of image ids or paths and positions."""

from __future__ import annotations

from pathlib import Path

from .paths import _is_image
from .records import IMAGE_EXTENSIONS, ImageRecord, ImageSource
from .rows import _LAT_NAMES, _LON_NAMES, _Collector, _required_location, _Skip
from .tables import _cells, _read_csv

__all__: list[str] = []  # internal: read_images(kind='yfcc') is the entry point

_YFCC_ID_COLUMNS = ("img_id", "photo_id", "id", "img_file", "file_name")
_YFCC_PATH_COLUMNS = ("img_file", "file_name", "filename", "img_path", "path")


def _yfcc_image(root: Path, image_id: str, relative: str | None) -> Path:
    """Where the image of a YFCC/MP-16 row is (the rule in the module docstring)."""
    if relative is not None:
        return root / relative
    if "/" in image_id or _is_image(Path(image_id)):
        return root / image_id
    for extension in IMAGE_EXTENSIONS:
        candidate = root / f"{image_id}{extension}"
        if candidate.is_file():
            return candidate
    return root / image_id


def _read_yfcc(path: Path, images: Path | None) -> ImageSource:
    if images is not None:
        root = images
    else:
        root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    out = _Collector()
    with _read_csv(path) as (table, rows):
        columns = table.require(id=_YFCC_ID_COLUMNS, lat=_LAT_NAMES, lon=_LON_NAMES)
        path_column = table.find(_YFCC_PATH_COLUMNS)
        if path_column == columns["id"]:
            path_column = None
        names = (table.header[columns["lat"]], table.header[columns["lon"]])
        places = table.places()
        for where, cells in rows:
            with out.row(where):
                cells = _cells(table, cells)
                image_id = cells[columns["id"]].strip()
                if not image_id:
                    raise _Skip("id is empty")
                location = _required_location(cells[columns["lat"]], cells[columns["lon"]], names)
                relative = cells[path_column].strip() if path_column is not None else None
                file = _yfcc_image(root, image_id, relative)
                if not file.is_file():
                    raise _Skip(f"missing image file {file}")
                metadata = {k: cells[i] for k, i in places.items() if cells[i].strip()}
                out.add(ImageRecord(image_id, *location, metadata, str(file)), where)
    return out.source("yfcc", root)
