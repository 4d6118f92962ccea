"""``globeflow embed``: images -> an embedding dataset (Parquet shards), resumable and shardable.

The records of an :class:`~globeflow.data.images.ImageSource` are cut, in their (deterministic)
order, into chunks of ``shard_rows``; chunk ``k`` becomes ``OUT/part-<k>.parquet`` (the embedding
dataset format of :mod:`globeflow.data.embeddings`: lat, lon, embedding, id, metadata columns plus
``source``). Each part is written atomically, so a part that exists is complete: a killed run
resumes where it stopped without recomputing finished parts, and gives the same files as an
uninterrupted run (each part's batches depend only on the part). Work is split across processes
by chunk (``--shard i/n``, or ``RANK`` / ``WORLD_SIZE`` under ``torchrun``), so processes on
several machines can fill one folder.

Images that cannot be decoded are skipped, counted and listed: per part in
``OUT/_skipped/part-<k>.json`` (written before the part, so the list is never lost), and in
``OUT/skipped.csv`` once every part exists. ``OUT/embed.json`` records the encoder and a
fingerprint of the source; a second run into the same folder with another source or encoder is
refused instead of mixing two datasets.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checks import require_finite
from ..io.files import atomic_write_text, remove_stale_temps
from .embeddings import write_embeddings

if TYPE_CHECKING:
    from .encoders import Encoder
    from .images import ImageRecord, ImageSource

__all__ = ["EmbedConfig", "MANIFEST_NAME", "parse_shard", "embed_to_dir", "embed_records", "read_manifest"]

MANIFEST_NAME = "embed.json"
SKIPPED_DIR = "_skipped"  # a leading underscore keeps it out of dataset discovery


@dataclass(frozen=True)
class EmbedConfig:
    """``shard_rows`` images per Parquet part; ``batch_size`` images per encoder call; ``workers``
    threads decoding images (Pillow releases the GIL while decoding)."""

    shard_rows: int = field(default=4096, metadata={"help": "images per Parquet part"})
    batch_size: int = field(default=64, metadata={"help": "images per encoder call"})
    workers: int = field(default=2, metadata={"help": "image-decoding threads"})

    def __post_init__(self) -> None:
        require_finite(self)
        for name in ("shard_rows", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> ``(RANK, WORLD_SIZE)`` from the
    environment (``torchrun``), else ``(0, 1)``."""
    if text is None:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected INDEX/COUNT, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {text!r}: need 0 <= INDEX < COUNT")
    return i, n


def _fingerprint(records: Sequence["ImageRecord"]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.id}\t{r.source}\t{r.lat!r}\t{r.lon!r}\n".encode())
    return h.hexdigest()[:16]


def _load(record: "ImageRecord", encoder: "Encoder") -> tuple[torch.Tensor | None, Exception | None]:
    """``(pixels (3, H, W), None)``, or ``(None, error)`` for an image that cannot be used."""
    try:
        image = record.open()
        return encoder.preprocess([image])[0], None
    except Exception as err:  # noqa: BLE001 - any decoder failure skips the image, with its reason
        return None, err


def embed_records(records: Sequence["ImageRecord"], encoder: "Encoder", *, batch_size: int = 64,
                  workers: int = 2, progress: Any = None,
                  errors: Literal["skip", "raise"] = "skip") -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Embed records in order: ``(kept (M,) indices into records, embeddings (M, dim) float32,
    skipped [(source, reason)])``. ``progress``: an object with ``update(n)`` (a tqdm bar).

    Records are anything with ``source`` and ``open() -> PIL image``. With ``errors="raise"`` the
    first image that cannot be used raises its own error instead of being skipped.
    """
    kept, chunks, skipped = [], [], []
    pool = ThreadPoolExecutor(workers) if workers > 0 else None
    try:
        for start in range(0, len(records), batch_size):
            part = records[start:start + batch_size]
            loaded = list(pool.map(lambda r: _load(r, encoder), part)) if pool else [_load(r, encoder) for r in part]
            failed = [err for _, err in loaded if err is not None]
            if failed and errors == "raise":
                raise failed[0]
            good = [(start + j, px) for j, (px, _) in enumerate(loaded) if px is not None]
            skipped += [(r.source, f"{type(err).__name__}: {err}") for r, (px, err) in zip(part, loaded) if px is None]
            if good:
                kept += [j for j, _ in good]
                chunks.append(encoder.embed(torch.stack([px for _, px in good])).float().cpu().numpy())
            if progress is not None:
                progress.update(len(part))
    finally:
        if pool:
            pool.shutdown()
    emb = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
    return np.asarray(kept, dtype=np.int64), emb, skipped


def _part_name(k: int) -> str:
    return f"part-{k:05d}.parquet"


def _metadata_keys(records: Sequence["ImageRecord"]) -> list[str]:
    keys: set[str] = set()
    for r in records:
        keys.update(r.metadata)
    return sorted(k for k in keys if k not in ("lat", "lon", "embedding", "id", "source"))


def _write_part(path: Path, records: Sequence["ImageRecord"], kept: np.ndarray, emb: np.ndarray,
                keys: list[str]) -> None:
    rows = [records[i] for i in kept]
    latlon = np.array([[r.lat, r.lon] for r in rows], dtype=np.float64).reshape(-1, 2)
    # Strings throughout (missing = ""), so every part has the same schema whatever its rows hold.
    metadata = {k: [str(r.metadata.get(k, "")) for r in rows] for k in keys}
    metadata["source"] = [r.source for r in rows]
    write_embeddings(path, latlon, emb, ids=[r.id for r in rows], metadata=metadata)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ``embed.json`` of an embedding folder (or of the folder holding a part file), or None."""
    folder = Path(folder)
    path = (folder if folder.is_dir() else folder.parent) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else None


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    old = read_manifest(out)
    if old is None:
        return
    for key in ("encoder", "dim", "fingerprint", "records", "shard_rows"):
        if old.get(key) != manifest[key]:
            raise ValueError(f"--out {out}: holds embeddings made with {key}={old.get(key)!r}, this run has "
                             f"{key}={manifest[key]!r}; use another --out folder (or delete this one) instead "
                             "of mixing two datasets")


def _write_skipped_csv(out: Path, chunks: int) -> int:
    rows = []
    for name in ["source.json"] + [f"part-{k:05d}.json" for k in range(chunks)]:
        path = out / SKIPPED_DIR / name
        if path.exists():
            rows += json.loads(path.read_text())
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "reason"])
    writer.writerows(rows)
    atomic_write_text(out / "skipped.csv", buf.getvalue())
    return len(rows)


def embed_to_dir(source: "ImageSource", encoder: "Encoder", out: str | os.PathLike, *,
                 config: EmbedConfig = EmbedConfig(), shard: tuple[int, int] = (0, 1),
                 progress: bool = True) -> dict[str, Any]:
    """Embed this process's share of ``source`` into ``out``; returns a summary.

    Summary keys: ``parts`` (this process's), ``parts_written``, ``parts_resumed``, ``rows_written``,
    ``images_skipped`` (undecodable images in the parts written now), ``source_skipped`` (rows the
    reader could not use), ``complete`` (every part of the dataset exists), ``skipped_list``.
    """
    index, count = shard
    records = list(source.records)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    chunks = max(1, math.ceil(len(records) / config.shard_rows))
    manifest = {"encoder": encoder.name, "dim": encoder.dim, "records": len(records),
                "fingerprint": _fingerprint(records), "shard_rows": config.shard_rows, "parts": chunks,
                "source_kind": source.kind, "source_root": str(source.root), "config": asdict(config)}
    _check_manifest(out, manifest)
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=2))
    atomic_write_text(out / SKIPPED_DIR / "source.json", json.dumps([list(s) for s in source.skipped]))
    keys = _metadata_keys(records)
    mine = [k for k in range(chunks) if k % count == index]
    todo = [k for k in mine if not (out / _part_name(k)).exists()]
    # A killed run's temp files: all of them when this is the only process (no shards), else only
    # those of the parts this process writes (another shard may be writing its own right now).
    remove_stale_temps(out, None if count == 1 else [_part_name(k) for k in todo])
    remove_stale_temps(out / SKIPPED_DIR, None if count == 1 else [f"part-{k:05d}.json" for k in todo])
    bar = None
    if progress:
        total = sum(len(records[k * config.shard_rows:(k + 1) * config.shard_rows]) for k in todo)
        bar = tqdm(total=total, desc=f"embed ({encoder.name})", unit="img")
    written_rows, skipped_now = 0, []
    try:
        for k in todo:
            part = records[k * config.shard_rows:(k + 1) * config.shard_rows]
            kept, emb, skipped = embed_records(part, encoder, batch_size=config.batch_size,
                                               workers=config.workers, progress=bar)
            # The skip list first: once the part exists, its list exists too.
            atomic_write_text(out / SKIPPED_DIR / f"part-{k:05d}.json", json.dumps([list(s) for s in skipped]))
            _write_part(out / _part_name(k), part, kept, emb, keys)
            written_rows += len(kept)
            skipped_now += skipped
    finally:
        if bar is not None:
            bar.close()
    complete = all((out / _part_name(k)).exists() for k in range(chunks))
    total_skipped = _write_skipped_csv(out, chunks) if complete else None
    return {"parts": len(mine), "parts_written": len(todo), "parts_resumed": len(mine) - len(todo),
            "rows_written": written_rows, "images_skipped": len(skipped_now),
            "source_skipped": len(source.skipped), "complete": complete, "skipped_total": total_skipped,
            "skipped_list": skipped_now, "out": str(out)}
