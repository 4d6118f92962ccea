"""Image datasets: photos with their positions, as :class:`ImageRecord` s, read lazily.

:func:`read_images` lists a dataset's images and positions without decoding any image; each
record's :meth:`ImageRecord.open` decodes its image when asked. Rows that cannot be used (bad or
missing coordinates, missing image file, duplicate id, ...) are never dropped silently: they are
listed in :attr:`ImageSource.skipped` as ``(where, reason)``, ``where`` being ``"<csv> row <n>"``
(``n`` 0-based, the header not counted, as in :mod:`globeflow.data.embeddings`),
``"<json> images[<i>]"``, ``"<shard>:<key>"`` or an image file's path. Whole-dataset problems
(missing path, unreadable CSV/JSON/tar, missing columns) raise :class:`DatasetError`. The first
record with a given id wins; later ones are skipped as duplicates.

Kinds (``kind="auto"`` picks one with :func:`detect_kind`):

* ``files``: an image file, a folder (searched recursively for :data:`IMAGE_EXTENSIONS`; names
  with a component starting with ``.`` are ignored), a glob pattern, or a list of these. The id
  is the path relative to ``root`` without its extension (``"paris/eiffel"``; in a flat folder,
  the stem), ``root`` being the folder given, else the deepest folder holding all the files.
  Positions come from a ``labels`` CSV when given (columns ``id``, ``lat``/``latitude``,
  ``lon``/``lng``/``longitude``; other non-empty cells become metadata), whose id may be that
  relative path or, when no other file shares it, the file's stem, either with or without the
  extension; files without a usable label row are unlabelled. Without ``labels``, positions come
  from EXIF GPS (:func:`globeflow.data.exif.gps_from_exif`).
* ``osv5m``: an OSV-5M root (holding exactly one CSV with ``id``, ``latitude``, ``longitude``,
  ``country`` columns) or that CSV. The image of row ``id`` is ``<id>.<ext>`` anywhere below
  ``images/<csv stem>/`` when that folder exists (OSV-5M ships ``images/test/00/<id>.jpg``), else
  below ``images/``.
* ``inat21``: a COCO-style JSON (iNaturalist 2021): ``images`` entries with ``id``,
  ``file_name`` (relative to the JSON's folder), ``latitude``, ``longitude``; the name of the
  category of the image's annotation becomes metadata ``category``.
* ``yfcc``: a YFCC100M / MP-16 style CSV: an id column (the first of ``IMG_ID``, ``photo_id``,
  ``id``, ``IMG_FILE``, ``file_name``; the id is the cell as written) and ``LAT``/``latitude``,
  ``LON``/``lng``/``longitude``. The image is ``<images>/<path>`` when there is a path column
  (``IMG_FILE``, ``file_name``, ``filename``, ``img_path``, ``path``) other than the id column;
  else ``<images>/<id>`` when the id holds a ``/`` or ends in an image extension (MP-16's
  ``9e/0d/3905128742.jpg``); else ``<images>/<id><ext>`` for the first ``ext`` of
  :data:`IMAGE_EXTENSIONS` that exists.
* ``webdataset``: uncompressed tar shards (a path, a folder of ``*.tar``, a list, brace patterns
  such as ``shards-{000..009}.tar``, or globs). A sample is the members sharing a key (the name up
  to the first dot of its base name, as webdataset does); its image is its first member with an
  extension in :data:`IMAGE_EXTENSIONS`, its position the ``lat``/``latitude`` and
  ``lon``/``lng``/``longitude`` keys of its ``json`` member (the other keys become metadata) or
  its ``.lat``/``.lon`` text members. The id is the key. Records keep the shard path, member name
  and byte span of the image; only the small json/lat/lon members are read while listing.

Column names match case-insensitively. For ``osv5m`` and ``yfcc``, place-name columns
(``continent``, ``country``, ``region``, ``sub-region``, ``state``, ``county``, ``city``,
``neighbourhood``) become metadata, keyed by those lower-case names. Positions are degrees; a
record whose position is unknown (``files`` and ``webdataset`` only) has ``lat = lon = NaN``
unless ``require_location=True``, which skips it instead. Metadata values are ``str`` from CSV
cells (empty cells omitted) and JSON scalars from JSON (``null`` omitted, lists and objects as
compact JSON text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .files import _read_files
from .inat21 import _read_inat21
from .osv5m import _is_osv5m_table, _read_osv5m
from .paths import PathLike, Paths, _as_list
from .records import IMAGE_EXTENSIONS, MAX_PIXELS, ImageRecord, ImageSource, UnreadableImageError
from .webdataset import _read_webdataset, expand_braces
from .yfcc import _read_yfcc

__all__ = [
    "KINDS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "UnreadableImageError",
    "ImageRecord",
    "ImageSource",
    "detect_kind",
    "expand_braces",
    "read_images",
]

KINDS: tuple[str, ...] = ("files", "osv5m", "inat21", "yfcc", "webdataset")


def _is_shard_pattern(text: str) -> bool:
    return text.lower().endswith(".tar")


def detect_kind(path: Paths) -> str:
    """The kind :func:`read_images` uses for ``kind="auto"``, in this order: names ending in
    ``.tar`` (with brace patterns or globs) -> ``webdataset``; a ``.json`` file -> ``inat21``; a
    ``.csv`` file -> ``osv5m`` when it has ``id``, ``latitude``, ``longitude`` and ``country``
    columns and an ``images/`` folder next to it, else ``yfcc``; a folder with an ``images/``
    folder and such a CSV -> ``osv5m``; anything else (folders, images, globs, lists) ->
    ``files``. A list is ``webdataset`` when every item names shards."""
    items = _as_list(path)
    if items and all(_is_shard_pattern(item) for item in items):
        return "webdataset"
    if len(items) != 1:
        return "files"
    candidate = Path(items[0])
    suffix = candidate.suffix.lower()
    if suffix == ".json":
        return "inat21"
    if suffix == ".csv":
        osv5m = (candidate.parent / "images").is_dir() and _is_osv5m_table(candidate)
        return "osv5m" if osv5m else "yfcc"
    if candidate.is_dir() and (candidate / "images").is_dir():
        if any(_is_osv5m_table(p) for p in candidate.glob("*.csv")):
            return "osv5m"
    return "files"


def _single(path: Paths, kind: str) -> Path:
    items = _as_list(path)
    if len(items) != 1:
        raise ValueError(f"kind={kind!r} reads one path, got {len(items)}")
    return Path(items[0])


def read_images(
    path: Paths,
    *,
    kind: str = "auto",
    labels: PathLike | None = None,
    images: PathLike | None = None,
    require_location: bool = False,
) -> ImageSource:
    """List an image dataset (see the module docstring for the kinds and their rules).

    ``labels`` (a CSV of ``id``, ``lat``, ``lon``) is only for ``files``, and given with
    ``kind="auto"`` it selects ``files``. ``images`` overrides the folder images are looked for
    in (``osv5m``: ``<root>/images``; ``inat21``: the JSON's folder; ``yfcc``: ``images/`` next to
    the CSV if it exists, else the CSV's folder). ``require_location`` skips records without a
    position (``files``, ``webdataset``); the other kinds always skip rows without one.

    Records come in this order: ``files``: each given item in turn, a folder's or a glob's files
    sorted by path; ``osv5m``, ``yfcc``: CSV row order; ``inat21``: the JSON's ``images`` order;
    ``webdataset``: shards in the given (expanded; globs sorted) order, samples in member order.
    No image is decoded. Raises :class:`DatasetError` for a missing path or an unreadable or
    incomplete table, and ``ValueError`` for an unknown kind or arguments that do not apply.
    """
    if kind == "auto":
        kind = "files" if labels is not None else detect_kind(path)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected 'auto' or one of {', '.join(KINDS)}")
    if labels is not None and kind != "files":
        raise ValueError(f"labels is only used with kind='files', not {kind!r}")
    if images is not None and kind in ("files", "webdataset"):
        raise ValueError(f"images is not used with kind={kind!r}")
    image_root = Path(images) if images is not None else None
    readers: dict[str, Callable[[], ImageSource]] = {
        "files": lambda: _read_files(path, labels, require_location),
        "osv5m": lambda: _read_osv5m(_single(path, kind), image_root),
        "inat21": lambda: _read_inat21(_single(path, kind), image_root),
        "yfcc": lambda: _read_yfcc(_single(path, kind), image_root),
        "webdataset": lambda: _read_webdataset(path, require_location),
    }
    return readers[kind]()
