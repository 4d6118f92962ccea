"""``globeflow predict`` on photos: a file, folder, glob or dataset of images -> one answer per photo.

Each readable photo is answered by :meth:`Geolocator.locate
<globeflow.inference.geolocator.Geolocator.locate>`: embedded with the encoder the model was trained on
(recorded in its checkpoint by ``globeflow embed`` + ``train``; ``--encoder`` overrides), then answered
as by ``globeflow map`` (rfm models): the best guess, the top-k distinct places with the probability
of being within ``place_radius_km`` of each (``placeN_probability``; ``placeN_basin_probability`` is
the mass of the place's basin of attraction, which can span a continent),
the country probabilities and the localizability. Models without a density (``fm``, ``diffusion``)
give the best guess and the country probabilities of their samples. Output: CSV or Parquet (flat
columns) or GeoJSON (one point feature per photo, with the full answer as properties). With
``maps_dir``, each photo's density map (PNG, HEALPix array, GeoJSON region, JSON) is written there.
Unreadable photos are skipped, counted and listed; the table is written atomically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.images import read_images
from ..inference.answers import AnswerConfig
from ..inference.geolocator import PHOTO_ANSWERS, Geolocator
from ..inference.evidence import Constraints
from ..inference.photos import embed_inputs, iter_answers, photo_inputs
from ..io.files import atomic_write_text
from ..io.tables import check_table_path, write_table
from .groups import ALL_ROWS, answer_groups, group_rows, write_answers
from .mapping import flat_answer, row_stem, write_row

__all__ = ["PHOTO_ANSWERS", "PHOTO_FORMATS", "predict_photos_to_file", "photo_rows"]

PHOTO_FORMATS = (".csv", ".parquet", ".geojson")


def photo_rows(geolocator: Geolocator, records: Sequence[Any], *, config: AnswerConfig = PHOTO_ANSWERS,
               batch_size: int = 8, workers: int = 2, seed: int = 0, maps_dir: Path | None = None,
               progress: bool = True, constraints: Constraints | None = None
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]:
    """``(flat rows, GeoJSON features, skipped [(source, reason)])`` for image records, in order: the
    answers of :meth:`Geolocator.locate`, written out (maps included) as each batch is done, so that
    a large folder never holds all its maps in memory."""
    rows, features, skipped = [], [], []

    def answer(embeddings, **kwargs):
        return geolocator.answer(embeddings, constraints=constraints, **kwargs)

    answers = iter_answers(geolocator.image_encoder(), answer, photo_inputs(records), config=config,
                           seed=seed, batch_size=batch_size, workers=workers, on_unreadable="report")
    with tqdm(total=len(records), desc="predict", unit="photo", disable=not progress) as bar:
        for rec, answer in zip(records, answers):
            bar.update(1)
            if not answer.ok:
                skipped.append((rec.source, answer.error))
                continue
            meta: dict[str, Any] = {"id": rec.id, "source": rec.source}
            if np.isfinite(rec.lat) and np.isfinite(rec.lon):
                meta.update(true_lat=rec.lat, true_lon=rec.lon)
            report = answer.to_dict()
            rows.append({**meta, **flat_answer(report, config.top_k)})
            features.append(answer.to_geojson(meta))
            if maps_dir is not None and answer.density_map is not None:
                write_row(maps_dir, row_stem(rec.id), rec.id, report, answer.density_map, config.levels)
    return rows, features, skipped


def predict_photos_to_file(run: str | os.PathLike, images: str | os.PathLike | Sequence[str], out: str | os.PathLike,
                           *, kind: str = "auto", labels: str | None = None, encoder: str | None = None,
                           encoder_path: str | None = None, config: AnswerConfig = PHOTO_ANSWERS,
                           maps_dir: str | os.PathLike | None = None, batch_size: int = 8, workers: int = 2,
                           device: str | None = None, progress: bool = True, seed: int = 0,
                           constraints: Constraints | None = None, group_by: str | None = None,
                           fuse: bool = False, redundancy: float = 0.0) -> dict[str, Any]:
    """Answer every photo in ``images`` and write the table ``out``; returns a summary. With
    ``group_by`` (a column of the labels CSV) or ``fuse`` (all photos one place), one fused answer per
    group (:mod:`.groups`)."""
    out = check_table_path(out, PHOTO_FORMATS)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    t0 = time.time()
    geolocator = Geolocator.load(run, device=device)
    enc = geolocator.image_encoder(encoder, encoder_path)
    geolocator.use_encoder(enc)
    source = read_images(images, kind=kind, labels=labels)
    if not source.records:
        raise ValueError(f"{images}: no images found ({len(source.skipped)} skipped)")
    maps = Path(maps_dir) if maps_dir is not None else None
    if maps is not None:
        maps.mkdir(parents=True, exist_ok=True)
    if group_by is not None or fuse:
        return _fused_photos(geolocator, source, out, config=config, batch_size=batch_size, workers=workers,
                             seed=seed, maps=maps, progress=progress, constraints=constraints, group_by=group_by,
                             t0=t0, encoder=enc.name, redundancy=redundancy)
    rows, features, skipped = photo_rows(geolocator, source.records, config=config, batch_size=batch_size,
                                         workers=workers, seed=seed, maps_dir=maps, progress=progress,
                                         constraints=constraints)
    if out.suffix == ".geojson":
        atomic_write_text(out, json.dumps({"type": "FeatureCollection", "features": features}, allow_nan=False))
    else:
        columns = {k: [r.get(k, float("nan")) for r in rows] for k in rows[0]} if rows else {"id": []}
        write_table(columns, out)
    return {"out": str(out), "photos": len(rows), "skipped_images": len(skipped) + len(source.skipped),
            "skipped_list": skipped + list(source.skipped), "encoder": enc.name, "seconds": round(time.time() - t0, 1)}


def _fused_photos(geolocator: Geolocator, source: Any, out: Path, *, config: AnswerConfig, batch_size: int,
                  workers: int, seed: int, maps: Path | None, progress: bool, constraints: Constraints | None,
                  group_by: str | None, t0: float, encoder: str, redundancy: float) -> dict[str, Any]:
    """Photos embedded, grouped (by a labels column, or all together) and answered one group at a time."""
    records = list(source.records)
    if group_by is not None:
        missing = [r.source for r in records if group_by not in r.metadata]
        if len(missing) == len(records):
            raise ValueError(f"--group-by {group_by}: no photo has this column; it comes from the --labels CSV "
                             "(one column per row, e.g. 'place')")
    emb, names, skipped = embed_inputs(geolocator.image_encoder(), photo_inputs(records), batch_size=batch_size,
                                       workers=workers, on_unreadable="report")
    by_source = {r.source: r for r in records}
    kept = [by_source[n] for n in names]
    if not kept:
        raise ValueError(f"none of the {len(records)} photos could be read")
    keys = [r.metadata.get(group_by) for r in kept] if group_by is not None else [ALL_ROWS] * len(kept)
    latlon = np.array([[r.lat, r.lon] for r in kept], dtype=np.float64)
    groups = group_rows(keys, emb, names, latlon, column=group_by or "all")
    answers = answer_groups(geolocator, groups, config=config, seed=seed, constraints=constraints, progress=progress,
                            redundancy=redundancy)
    write_answers(out, groups, answers, top_k=config.top_k, levels=config.levels, maps_dir=maps)
    listed = skipped + list(source.skipped)
    return {"out": str(out), "groups": len(groups), "photos": len(kept), "skipped_images": len(listed),
            "skipped_list": listed, "encoder": encoder, "seconds": round(time.time() - t0, 1)}
