"""The ``webdataset`` kind: uncompressed tar shards, named by paths, folders, globs or brace
patterns (:func:`expand_braces`), listed without reading their images."""

from __future__ import annotations

import glob
import json
import re
import tarfile
from pathlib import Path

from globeflow.data.embeddings import DatasetError

from .paths import Paths, _as_list, _common_root, _has_magic
from .records import IMAGE_EXTENSIONS, ImageRecord, ImageSource, Metadata
from .rows import _LAT_NAMES, _LON_NAMES, _NAN, _Collector, _json_metadata, _location, _Skip

__all__ = ["expand_braces"]

# webdataset's rule: the key is everything up to the first dot of the base name.
_KEY_EXT = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")


def _brace_group(pattern: str) -> tuple[int, int, list[str]] | None:
    """``(start, end, alternatives)`` of the first expandable ``{...}`` group, or None."""
    for start, char in enumerate(pattern):
        if char != "{":
            continue
        depth, cuts = 0, []
        for end in range(start, len(pattern)):
            depth += {"{": 1, "}": -1}.get(pattern[end], 0)
            if depth == 1 and pattern[end] == ",":
                cuts.append(end)
            if depth == 0:
                break
        else:
            return None  # unbalanced: the rest is literal
        body = pattern[start + 1 : end]
        if cuts:
            edges = [start, *cuts, end]
            return start, end, [pattern[a + 1 : b] for a, b in zip(edges, edges[1:])]
        numbers = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
        if numbers:
            first, last = numbers.groups()
            padded = any(len(n.lstrip("-")) > 1 and n.lstrip("-")[0] == "0" for n in (first, last))
            width = max(len(first), len(last)) if padded else 0
            step = 1 if int(last) >= int(first) else -1
            values = range(int(first), int(last) + step, step)
            return start, end, [f"{v:0{width}d}" for v in values]
    return None


def expand_braces(pattern: str) -> list[str]:
    """Shell-style brace expansion: ``{a,b}`` alternatives and ``{000..009}`` zero-padded
    ranges, nested or several per pattern, expanded left to right."""
    group = _brace_group(pattern)
    if group is None:
        return [pattern]
    start, end, alternatives = group
    prefix, suffix = pattern[:start], pattern[end + 1 :]
    return [out for alt in alternatives for out in expand_braces(prefix + alt + suffix)]


def _shard_files(pattern: str) -> list[Path]:
    """A shard, the sorted matches of a glob, or the sorted ``*.tar`` files of a folder."""
    path = Path(pattern)
    if path.is_file():
        return [path]
    if path.is_dir() or _has_magic(pattern):
        found = sorted(path.glob("*.tar") if path.is_dir() else map(Path, glob.glob(pattern)))
        if not found:
            raise DatasetError(f"{pattern}: no tar shards found")
        return found
    raise DatasetError(f"{path}: no such shard")


def _shards(path: Paths) -> list[Path]:
    patterns = [p for item in _as_list(path) for p in expand_braces(item)]
    return [shard for p in patterns for shard in _shard_files(p)]


def _text_member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> str:
    extracted = tar.extractfile(info)
    if extracted is None:
        raise _Skip(f"{info.name} is not a regular file")
    try:
        return extracted.read().decode("utf-8")
    except UnicodeDecodeError:
        raise _Skip(f"{info.name} is not UTF-8 text") from None


def _sample_position(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]
) -> tuple[tuple[float, float] | None, Metadata]:
    if "json" in members:
        try:
            values = json.loads(_text_member(tar, members["json"]))
        except ValueError as exc:
            raise _Skip(f"{members['json'].name} is not valid JSON ({exc})") from None
        if not isinstance(values, dict):
            raise _Skip(f"{members['json'].name} is not a JSON object")
        lat_key = next((k for k in _LAT_NAMES if k in values), None)
        lon_key = next((k for k in _LON_NAMES if k in values), None)
        metadata = _json_metadata(values, exclude=(lat_key, lon_key))
        location = _location(values.get(lat_key), values.get(lon_key), ("lat", "lon"))
        if location is not None:
            return location, metadata
    else:
        metadata = {}
    lat = _text_member(tar, members["lat"]) if "lat" in members else None
    lon = _text_member(tar, members["lon"]) if "lon" in members else None
    return _location(lat, lon, (".lat", ".lon")), metadata


def _group_members(
    shard: Path, tar: tarfile.TarFile, out: _Collector
) -> dict[str, dict[str, tarfile.TarInfo]]:
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    for info in tar.getmembers():
        if not info.isfile():
            continue
        match = _KEY_EXT.match(info.name)
        if match is None:
            out.skipped.append((f"{shard}:{info.name}", "member has no extension, no sample"))
            continue
        key, extension = match.group(1), match.group(2).lower()
        sample = samples.setdefault(key, {})
        if extension in sample:
            out.skipped.append((f"{shard}:{info.name}", f"second .{extension} member for {key}"))
            continue
        sample[extension] = info
    return samples


def _read_shard(shard: Path, require_location: bool, out: _Collector) -> None:
    image_extensions = [e.lstrip(".") for e in IMAGE_EXTENSIONS]
    try:
        tar = tarfile.open(shard, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"{shard}: not a readable uncompressed tar file ({exc})") from exc
    with tar:
        try:
            samples = _group_members(shard, tar, out)
        except (tarfile.TarError, OSError) as exc:
            raise DatasetError(f"{shard}: not a readable tar file ({exc})") from exc
        for key, members in samples.items():
            where = f"{shard}:{key}"
            with out.row(where):
                image = next((members[e] for e in image_extensions if e in members), None)
                if image is None:
                    raise _Skip(f"no image member (has: {', '.join(sorted(members))})")
                location, metadata = _sample_position(tar, members)
                if location is None and require_location:
                    raise _Skip("no location (json lat/lon or .lat/.lon members)")
                lat, lon = location or (_NAN, _NAN)
                span = None if image.issparse() else (image.offset_data, image.size)
                source = f"{shard}:{image.name}"
                record = ImageRecord(key, lat, lon, metadata, source, str(shard), image.name, span)
                out.add(record, where)


def _read_webdataset(path: Paths, require_location: bool) -> ImageSource:
    shards = _shards(path)
    out = _Collector()
    for shard in shards:
        _read_shard(shard, require_location, out)
    return out.source("webdataset", _common_root(shards))
