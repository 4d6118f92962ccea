"""The ``inat21`` kind: a COCO-style JSON (iNaturalist 2021) with positions per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from globeflow.data.embeddings import DatasetError

from .records import ImageRecord, ImageSource, Metadata
from .rows import _Collector, _required_location, _Skip
from .tables import _load_json

__all__: list[str] = []  # internal: read_images(kind='inat21') is the entry point


def _inat_categories(path: Path, data: dict[str, Any]) -> dict[Any, str]:
    """Image id -> category name, from ``annotations`` and ``categories`` when present."""
    annotations, categories = data.get("annotations", []), data.get("categories", [])
    if not isinstance(annotations, list) or not isinstance(categories, list):
        raise DatasetError(f"{path}: 'annotations' and 'categories' must be lists")
    names = {c.get("id"): c.get("name") for c in categories if isinstance(c, dict)}
    out: dict[Any, str] = {}
    for annotation in annotations:
        if isinstance(annotation, dict):
            name = names.get(annotation.get("category_id"))
            if name is not None:
                out.setdefault(annotation.get("image_id"), str(name))
    return out


def _read_inat21(path: Path, images: Path | None) -> ImageSource:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: missing 'images' list (expected COCO-style JSON)")
    categories = _inat_categories(path, data)
    root = images if images is not None else path.parent
    out = _Collector()
    for i, entry in enumerate(data["images"]):
        where = f"{path} images[{i}]"
        with out.row(where):
            if not isinstance(entry, dict):
                raise _Skip("entry is not an object")
            missing = [k for k in ("id", "file_name") if entry.get(k) is None]
            if missing:
                raise _Skip(f"missing {', '.join(missing)}")
            lat = entry.get("latitude", entry.get("lat"))
            lon = entry.get("longitude", entry.get("lon"))
            location = _required_location(lat, lon, ("latitude", "longitude"))
            file = root / str(entry["file_name"])
            if not file.is_file():
                raise _Skip(f"missing image file {file}")
            category = categories.get(entry["id"])
            metadata: Metadata = {} if category is None else {"category": category}
            out.add(ImageRecord(str(entry["id"]), *location, metadata, str(file)), where)
    return out.source("inat21", root)
