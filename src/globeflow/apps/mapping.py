"""``globeflow map``: per-row density maps and answers, written to a folder, resumable.

For every valid row of an embedding dataset, ``OUT/<id>.json`` (best guesses, top-k places, country /
region / city probabilities, credible-region areas, localizability, map facts, and the truth's
density and credible level when the row is labelled), ``OUT/<id>.png`` (the map), ``OUT/<id>.npz``
(the HEALPix array) and ``OUT/<id>.geojson`` (the 50/90/95% credible regions, one MultiPolygon each). The JSON is
written last and atomically, so a row with a JSON is complete: a second run skips it (resume after
a kill). ``OUT/index.csv`` lists all rows sorted by localizability, most localizable first.
``OUT/map_settings.json`` records the model (weights sha256) and settings the folder was made with: a
resume with others is refused. One process writes a folder at a time (``OUT/.lock``), and each row
is seeded from its id, so an answer does not depend on its batch or on a resume.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.embeddings import EmbeddingDataset
from ..inference.answers import AnswerConfig
from ..inference.evidence import Constraints
from ..inference.geolocator import Geolocator
from ..inference.locator import row_seeds
from ..io.files import atomic_write_text, file_sha256
from ..io.lock import FolderLock
from ..viz.maps import density_map_png

__all__ = ["map_to_dir", "row_stem", "write_row", "flat_answer"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def row_stem(row_id: Any) -> str:
    """A file name for a row id: the id where it is safe, else a cleaned id plus a short hash (so
    ids that clean to the same text never share files)."""
    text = str(row_id)
    clean = _UNSAFE.sub("_", text).strip("._")[:80] or "row"
    if clean == text:
        return clean
    return f"{clean}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _label(mode: dict) -> str:
    place = mode.get("place", {})
    name = ", ".join(v for v in (place.get("name"), mode.get("country_code") or place.get("country_code")) if v)
    return f"{name} ({100 * mode['probability']:.0f}% within {mode['radius_km']:g} km)"


def write_row(out: Path, stem: str, row_id: Any, report: dict, dmap, levels: tuple[float, ...]) -> None:
    """One row's map PNG, HEALPix ``.npz``, credible-region GeoJSON and, last, its answer JSON."""
    report = {"id": str(row_id), **report}
    thresholds = {f"{100 * r['level']:.0f}%": r["threshold_log_density"] for r in report["credible_regions"]}
    truth = report.get("truth")
    best = report["best_guess"]
    density_map_png(out / f"{stem}.png", dmap.log_density, nest=True,
                    modes=[(m["lat"], m["lon"], _label(m)) for m in report["top_k"]],
                    truth=(truth["lat"], truth["lon"]) if truth else None, credible_thresholds=thresholds,
                    title=f"{row_id}: best guess {best['lat']:.2f}, {best['lon']:.2f}; "
                          f"localizability {report['localizability']['bits']:.1f} bits")
    dmap.save_npz(out / f"{stem}.npz")
    atomic_write_text(out / f"{stem}.geojson", json.dumps(dmap.to_geojson(levels)))
    report["files"] = {k: f"{stem}.{k}" for k in ("png", "npz", "geojson")}
    atomic_write_text(out / f"{stem}.json", json.dumps(report, indent=2, allow_nan=False))


def flat_answer(report: dict[str, Any], top_k: int, countries: int = 3) -> dict[str, Any]:
    """One table row from an answer dict (missing entries are empty / NaN, so columns line up): the
    best guess, localizability, credible-region areas, ``top_k`` places and ``countries`` countries."""
    row: dict[str, Any] = {"lat": report["best_guess"]["lat"], "lon": report["best_guess"]["lon"]}
    loc = report.get("localizability")
    row["localizability_bits"] = loc["bits"] if loc else float("nan")
    regions = {f"area{100 * r['level']:.0f}_km2": r["area_km2"] for r in report.get("credible_regions", [])}
    row.update(regions)
    places = report.get("top_k", [])
    # A place's probability is that of the photo being within this distance of it (not its basin's mass).
    row["place_radius_km"] = places[0]["radius_km"] if places else float("nan")
    for i in range(top_k):
        m = report.get("top_k", [])[i] if i < len(report.get("top_k", [])) else None
        row[f"place{i + 1}"] = m["place"]["name"] if m else ""
        row[f"place{i + 1}_country"] = m["country_code"] if m else ""
        row[f"place{i + 1}_lat"] = m["lat"] if m else float("nan")
        row[f"place{i + 1}_lon"] = m["lon"] if m else float("nan")
        row[f"place{i + 1}_probability"] = m["probability"] if m else float("nan")
        row[f"place{i + 1}_basin_probability"] = m["basin_probability"] if m else float("nan")
    for i in range(countries):
        c = report["countries"][i] if i < len(report["countries"]) else None
        row[f"country{i + 1}"] = c["name"] if c else ""
        row[f"country{i + 1}_probability"] = c["probability"] if c else float("nan")
    return row


def _index(out: Path, stems: list[str]) -> int:
    rows = []
    for stem in stems:
        path = out / f"{stem}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        top_country = r["countries"][0] if r["countries"] else {}
        area90 = next((c["area_km2"] for c in r["credible_regions"] if abs(c["level"] - 0.9) < 1e-9), None)
        rows.append({"id": r["id"], "localizability_bits": r["localizability"]["bits"],
                     "best_lat": r["best_guess"]["lat"], "best_lon": r["best_guess"]["lon"],
                     "top_place": r["top_k"][0]["place"]["name"] if r["top_k"] else "",
                     "top_place_probability": r["top_k"][0]["probability"] if r["top_k"] else "",
                     "place_radius_km": r["top_k"][0]["radius_km"] if r["top_k"] else "",
                     "top_country": top_country.get("name", ""),
                     "top_country_probability": top_country.get("probability", ""),
                     "area90_km2": area90, "error_km": r["best_guess"].get("error_km", ""), "json": path.name})
    rows.sort(key=lambda r: -r["localizability_bits"])
    buf = io.StringIO()
    fields = ["id", "localizability_bits", "best_lat", "best_lon", "top_place", "top_place_probability",
              "place_radius_km", "top_country",
              "top_country_probability", "area90_km2", "error_km", "json"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "index.csv", buf.getvalue())
    return len(rows)


def map_to_dir(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
               config: AnswerConfig = AnswerConfig(), batch_size: int = 4, limit: int | None = None,
               device: str | None = None, skip_invalid: bool = False, progress: bool = True,
               seed: int = 0, constraints: Constraints | None = None) -> dict[str, Any]:
    """``globeflow map RUN DATA --out DIR``; returns a summary (rows written, skipped, resumed).
    One process at a time writes a folder (:class:`~globeflow.io.lock.FolderLock`). ``constraints``
    restrict every row's answer (:mod:`globeflow.inference.evidence.constraints`)."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    t0 = time.time()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    geolocator = Geolocator.load(run, device=device)
    geolocator.require_density()
    # A map needs no truth: unlabelled rows are mapped (their answers have no truth section).
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim, labels=False)
    info = dataset.scan()
    total = info.num_valid if limit is None else min(limit, info.num_valid)
    _refuse_duplicate_ids(dataset, total, data)
    constraints = constraints or Constraints()
    settings = _settings(geolocator, config, seed, constraints)
    with FolderLock(out, "map"):  # the folder is made only once the inputs are known to be good
        _check_settings(out, settings)
        return _map_rows(geolocator, dataset, info, out, total, config=config, batch_size=batch_size,
                         progress=progress, seed=seed, t0=t0, constraints=constraints)


#: What a map folder was made with; a resume with another model or other settings is refused.
SETTINGS_NAME = "map_settings.json"


def _settings(geolocator: Geolocator, config: AnswerConfig, seed: int, constraints: Constraints) -> dict[str, Any]:
    weights = geolocator.source.get("path")
    out = {"model": {"weights_sha256": file_sha256(weights) if weights else None, "source": str(weights)},
           "answers": json.loads(json.dumps(dataclasses.asdict(config))), "seed": seed,
           "calibration": None if geolocator.calibration is None else geolocator.calibration.describe()}
    if constraints.active:  # (folders made before constraints existed have no entry: the same as none)
        out["constraints"] = constraints.describe()
    return out


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record the settings of a new folder; refuse to resume one made with others (rows already
    written would be reported as this model's answers)."""
    path = out / SETTINGS_NAME
    if not path.exists():
        if any(out.glob("*.json")):
            raise ValueError(f"--out {out} holds maps but no {SETTINGS_NAME}, so which model made them is unknown; "
                             "choose another --out")
        atomic_write_text(path, json.dumps(settings, indent=2))
        return
    before = json.loads(path.read_text())
    if before.get("model", {}).get("weights_sha256") != settings["model"]["weights_sha256"]:
        raise ValueError(f"--out {out} was written by another model ({before.get('model', {}).get('source')}); "
                         "its rows would be reported as this model's: choose another --out")
    changed = sorted(k for k in ("answers", "seed", "calibration", "constraints") if before.get(k) != settings.get(k))
    if changed:
        raise ValueError(f"--out {out} was written with other settings ({', '.join(changed)} differ, see "
                         f"{path}); use the same settings to resume, or another --out")


def _refuse_duplicate_ids(dataset: EmbeddingDataset, total: int, data: str | os.PathLike) -> None:
    """One file per id: ids that repeat (or that would share a file name) are refused, naming the rows."""
    rows: dict[str, list[int]] = {}
    position = 0
    for batch in dataset.iter_batches(4096):
        for row_id in batch.ids:
            if position >= total:
                break
            rows.setdefault(row_stem(row_id), []).append(position)
            position += 1
    repeated = [(stem, where) for stem, where in rows.items() if len(where) > 1]
    if repeated:
        shown = "; ".join(f"{stem!r} at rows {', '.join(map(str, where[:5]))}" for stem, where in repeated[:5])
        raise ValueError(f"{data}: {len(repeated)} ids repeat ({shown}); map writes one file per id, so the ids "
                         "must be unique (rows counted from 0 among the valid rows)")


def _map_rows(geolocator: Geolocator, dataset: EmbeddingDataset, info: Any, out: Path, total: int, *,
              config: AnswerConfig, batch_size: int, progress: bool, seed: int, t0: float,
              constraints: Constraints) -> dict[str, Any]:
    stems: list[str] = []
    written = resumed = 0
    bar = None
    if progress:
        bar = tqdm(total=total, desc="map", unit="row")
    for batch in dataset.iter_batches(batch_size):
        if len(stems) >= total:
            break
        keep = min(len(batch.ids), total - len(stems))
        todo = []
        for j, row_id in enumerate(batch.ids[:keep]):
            stem = row_stem(row_id)
            stems.append(stem)
            if (out / f"{stem}.json").exists():
                resumed += 1
            else:
                todo.append(j)
        if todo:
            idx = np.asarray(todo)
            # Seeded per row (from its id): an answer never depends on its batch or on a resume.
            answers = geolocator.answer(batch.embedding[idx], truth=batch.latlon[idx].numpy(), config=config,
                                        seed=row_seeds(seed, [batch.ids[j] for j in todo]), constraints=constraints)
            for j, a in zip(todo, answers):
                write_row(out, row_stem(batch.ids[j]), batch.ids[j], a.to_dict(), a.density_map, config.levels)
                written += 1
        if bar is not None:
            bar.update(keep)
    if bar is not None:
        bar.close()
    indexed = _index(out, stems)
    return {"out": str(out), "rows": len(stems), "written": written, "resumed": resumed, "indexed": indexed,
            "skipped_rows": info.num_skipped, "seconds": round(time.time() - t0, 1)}
