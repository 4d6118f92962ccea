"""Path arguments: one path or a list of them, and the image files a file, folder or glob
names."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from globeflow.data.embeddings import DatasetError

from .records import IMAGE_EXTENSIONS

__all__: list[str] = []  # internal helpers of read_images

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Sequence[PathLike]]


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _walk_images(folder: Path) -> list[Path]:
    """Image files below ``folder``, sorted by relative path; hidden components are skipped."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(parent, f) for f in files if not f.startswith("."))
    return sorted((p for p in found if _is_image(p)), key=lambda p: p.relative_to(folder).parts)


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _image_files(text: str) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob (its image matches, sorted)."""
    path = Path(text)
    if path.is_dir():
        files = _walk_images(path)
        if not files:
            extensions = ", ".join(IMAGE_EXTENSIONS)
            raise DatasetError(f"{path}: folder contains no image files ({extensions})")
        return files
    if path.is_file():
        return [path]
    if _has_magic(text):
        matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
        matches = [m for m in matches if m.is_file() and _is_image(m)]
        if not matches:
            raise DatasetError(f"{text}: pattern matches no image files")
        return matches
    raise DatasetError(f"{path}: no such file or folder")


def _as_list(path: Paths) -> list[str]:
    single = isinstance(path, (str, os.PathLike))
    items = [os.fspath(path)] if single else [os.fspath(p) for p in path]
    if not items:
        raise DatasetError("no path given")
    return items


def _common_root(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent.absolute()) for p in paths]))
