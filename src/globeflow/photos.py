"""``globeflow predict`` on photos: a file, folder, glob or dataset of images -> one answer per photo.

Each readable photo is embedded with the encoder the model was trained on (recorded in its
checkpoint by ``globeflow embed`` + ``train``; ``--encoder`` overrides), then answered as by
``globeflow map`` (rfm models): the best guess, the top-k distinct places with their probabilities,
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
import torch

from .answers import AnswerConfig, answer_images
from .api import Geolocator
from .checkpoint import atomic_write_text
from .density import MapConfig

__all__ = ["PHOTO_ANSWERS", "PHOTO_FORMATS", "predict_photos_to_file", "photo_rows", "sample_answers"]

#: Answers for photo folders, sized for ~10 s a photo on 2 CPU cores with the default model size
#: (dim 256): 128 samples with exact densities and a nside-16 map (~370 km cells, ~700 exact
#: solves). Exact solves dominate the cost, so a finer map costs ~4x per level: ``--nside 32`` for
#: more detail, ``globeflow map`` for the full nside-64 maps.
PHOTO_ANSWERS = AnswerConfig(num_samples=128, top_k=3, map=MapConfig(nside=16, start_nside=4, max_cells=64,
                                                                       exact_top=100))
PHOTO_FORMATS = (".csv", ".parquet", ".geojson")


def _flat(report: dict[str, Any], top_k: int, countries: int = 3) -> dict[str, Any]:
    """One table row from an answer dict (missing entries are empty / NaN, so columns line up)."""
    row: dict[str, Any] = {"lat": report["best_guess"]["lat"], "lon": report["best_guess"]["lon"]}
    loc = report.get("localizability")
    row["localizability_bits"] = loc["bits"] if loc else float("nan")
    regions = {f"area{100 * r['level']:.0f}_km2": r["area_km2"] for r in report.get("credible_regions", [])}
    row.update(regions)
    for i in range(top_k):
        m = report.get("top_k", [])[i] if i < len(report.get("top_k", [])) else None
        row[f"place{i + 1}"] = m["place"]["name"] if m else ""
        row[f"place{i + 1}_country"] = m["country_code"] if m else ""
        row[f"place{i + 1}_lat"] = m["lat"] if m else float("nan")
        row[f"place{i + 1}_lon"] = m["lon"] if m else float("nan")
        row[f"place{i + 1}_probability"] = m["probability"] if m else float("nan")
    for i in range(countries):
        c = report["countries"][i] if i < len(report["countries"]) else None
        row[f"country{i + 1}"] = c["name"] if c else ""
        row[f"country{i + 1}_probability"] = c["probability"] if c else float("nan")
    return row


def sample_answers(geolocator: Geolocator, emb: torch.Tensor, config: AnswerConfig, seed: int) -> list[dict]:
    """Answers of a model without a density: best guess and country probabilities of samples."""
    from . import places

    from . import geometry as geo
    from .points import best_expected_geoscore

    latlon = geolocator.sample(emb, config.num_samples, cfg=config.guidance, seed=seed)
    # The point estimate of ``predict`` (best expected GeoScore), from these samples, not a new set.
    best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(latlon.double())))
    return [{"best_guess": {"lat": float(b[0]), "lon": float(b[1]),
                            "method": "highest expected GeoScore among samples"},
             "countries": places.area_probabilities(ll.numpy(), "country", top=config.top_areas)}
            for b, ll in zip(best.tolist(), latlon)]


def photo_rows(geolocator: Geolocator, encoder: Any, records: Sequence[Any], *, config: AnswerConfig = PHOTO_ANSWERS,
               batch_size: int = 8, workers: int = 2, seed: int = 0, maps_dir: Path | None = None,
               progress: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]:
    """``(flat rows, full reports, skipped [(source, reason)])`` for image records, in order."""
    from .embedding import embed_records
    from .mapping import row_stem, write_row

    rows, reports, skipped = [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(records), desc="predict", unit="photo")
    try:
        for start in range(0, len(records), batch_size):
            part = records[start:start + batch_size]
            kept, emb, bad = embed_records(part, encoder, batch_size=batch_size, workers=workers)
            skipped += bad
            if len(kept):
                emb_t = torch.from_numpy(emb)
                if geolocator.has_density:
                    answers = answer_images(geolocator, emb_t, config=config, seed=seed + start)
                else:
                    answers = [(a, None) for a in sample_answers(geolocator, emb_t, config, seed + start)]
                for j, (report, dmap) in zip(kept.tolist(), answers):
                    rec = part[j]
                    meta = {"id": rec.id, "source": rec.source}
                    if np.isfinite(rec.lat) and np.isfinite(rec.lon):
                        meta.update(true_lat=rec.lat, true_lon=rec.lon)
                    rows.append({**meta, **_flat(report, config.top_k)})
                    reports.append({**meta, **report})
                    if maps_dir is not None and dmap is not None:
                        write_row(maps_dir, row_stem(rec.id), rec.id, report, dmap, config.levels)
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return rows, reports, skipped


def _geojson(reports: list[dict[str, Any]]) -> dict[str, Any]:
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["best_guess"]["lon"],
                                                                                  r["best_guess"]["lat"]]},
                 "properties": r} for r in reports]
    return {"type": "FeatureCollection", "features": features}


def predict_photos_to_file(run: str | os.PathLike, images: str | os.PathLike | Sequence[str], out: str | os.PathLike,
                           *, kind: str = "auto", labels: str | None = None, encoder: str | None = None,
                           encoder_path: str | None = None, config: AnswerConfig = PHOTO_ANSWERS,
                           maps_dir: str | os.PathLike | None = None, batch_size: int = 8, workers: int = 2,
                           device: str | None = None, progress: bool = True, seed: int = 0) -> dict[str, Any]:
    """Answer every photo in ``images`` and write the table ``out``; returns a summary."""
    from .data.images import read_images
    from .encoders import load_encoder

    out = Path(out)
    if out.suffix not in PHOTO_FORMATS:
        raise ValueError(f"--out {out}: unsupported output format {out.suffix or '(none)'}; use "
                         f"{', '.join(PHOTO_FORMATS)}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    t0 = time.time()
    geolocator = Geolocator.load(run, device=device)
    name = encoder or geolocator.encoder
    if name is None:
        raise ValueError(f"{run}: the checkpoint does not record which image encoder made its training "
                         "embeddings; pass --encoder (e.g. efficientnet-lite0)")
    enc = load_encoder(name, encoder_path, device=geolocator.device)
    if enc.dim != geolocator.embedding_dim:
        raise ValueError(f"encoder {name} gives {enc.dim}-d embeddings but the model {run} expects "
                         f"{geolocator.embedding_dim}-d; pass the --encoder the model was trained with")
    source = read_images(images, kind=kind, labels=labels)
    if not source.records:
        raise ValueError(f"{images}: no images found ({len(source.skipped)} skipped)")
    maps = Path(maps_dir) if maps_dir is not None else None
    if maps is not None:
        maps.mkdir(parents=True, exist_ok=True)
    rows, reports, skipped = photo_rows(geolocator, enc, source.records, config=config, batch_size=batch_size,
                                        workers=workers, seed=seed, maps_dir=maps, progress=progress)
    if out.suffix == ".geojson":
        atomic_write_text(out, json.dumps(_geojson(reports), allow_nan=False))
    else:
        from .evaluation import write_table
        columns = {k: [r.get(k, float("nan")) for r in rows] for k in rows[0]} if rows else {"id": []}
        write_table(columns, out)
    return {"out": str(out), "photos": len(rows), "skipped_images": len(skipped) + len(source.skipped),
            "skipped_list": skipped + list(source.skipped), "encoder": name, "seconds": round(time.time() - t0, 1)}
