"""Answers for groups of rows taken at one place: ``globeflow predict --group-by COLUMN`` and ``--fuse``.

Rows sharing a value of the column (an embedding dataset's metadata column, or a photos' labels-CSV
column) are photos of one place: each group gets one fused answer
(:meth:`Geolocator.fuse <globeflow.inference.geolocator.Geolocator.fuse>`), a group of one its photo's
own answer. ``--fuse`` makes all rows one group. Constraints (``--within``, ``--on-land``, ...) apply
to every answer. The table has one row per group: the group's value, its photo count, the sources
that contradict the others, the prior mass of the allowed area, then the columns of a photo answer;
the GeoJSON (and ``--maps``) hold each photo's contribution in full. A group's truth, when every
row is labelled, is the spherical mean of its rows' locations.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import geo
from ..data.embeddings import EmbeddingDataset
from ..inference.answers import Answer, AnswerConfig
from ..inference.evidence import Constraints, fuse
from ..inference.geolocator import Geolocator
from ..inference.locator import row_seeds
from ..io.files import atomic_write_text
from ..io.tables import check_table_path, write_table
from .mapping import flat_answer, row_stem, write_row

__all__ = ["Group", "group_rows", "answer_groups", "write_answers", "predict_groups_to_file", "ANSWER_FORMATS",
           "ALL_ROWS"]

#: Output formats of answers (the table, or one GeoJSON point feature per answer).
ANSWER_FORMATS = (".csv", ".parquet", ".geojson")

#: The group that ``--fuse`` puts every row in.
ALL_ROWS = "all"


@dataclass(frozen=True)
class Group:
    """Rows taken at one place: the grouping value, the rows' embeddings ``(n, D)``, their names, and
    the place (``truth (2,)`` degrees, the spherical mean of the rows' locations) when all are labelled."""

    key: str
    embeddings: np.ndarray
    sources: tuple[str, ...]
    truth: np.ndarray | None = None


def _mean_location(latlon: np.ndarray) -> np.ndarray | None:
    if not len(latlon) or not np.isfinite(latlon).all():
        return None
    xyz = geo.latlon_to_xyz(torch.as_tensor(latlon, dtype=torch.float64)).mean(dim=0)
    return geo.xyz_to_latlon(xyz / xyz.norm()).numpy()


def group_rows(keys: Sequence[Any], embeddings: np.ndarray, sources: Sequence[str], latlon: np.ndarray,
               *, column: str) -> list[Group]:
    """Rows grouped by ``keys`` (one per row), groups in order of first appearance. A row without a
    value is refused, naming it: which place it shows is unknown."""
    order: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k is None or (isinstance(k, float) and np.isnan(k)) or str(k).strip() == "":
            raise ValueError(f"--group-by {column}: {sources[i]} has no value in the column, so which place it "
                             "shows is unknown; give it a value (its own, to answer it alone)")
        order.setdefault(str(k), []).append(i)
    return [Group(k, embeddings[idx], tuple(sources[i] for i in idx), _mean_location(latlon[idx]))
            for k, idx in ((k, np.asarray(v)) for k, v in order.items())]


def answer_groups(geolocator: Geolocator, groups: Sequence[Group], *, config: AnswerConfig, seed: int,
                  constraints: Constraints | None, progress: bool = True, redundancy: float = 0.0) -> list[Answer]:
    """One answer per group, each seeded from the run's seed and the group's value (so a group's
    answer does not depend on the others)."""
    out = []
    seeds = row_seeds(seed, [g.key for g in groups])
    for group, s in tqdm(list(zip(groups, seeds)), desc="fuse", unit="group", disable=not progress):
        out.append(fuse(geolocator, group.embeddings, config=config, seed=s, truth=group.truth,
                                   constraints=constraints, sources=group.sources, redundancy=redundancy))
    return out


def _group_row(group: Group, answer: Answer, top_k: int) -> dict[str, Any]:
    report = answer.to_dict()
    row: dict[str, Any] = {"group": group.key, "photos": len(group.sources),
                           "contradicting": "; ".join(_contradicting(answer)),
                           "prior_mass": (answer.evidence or {}).get("prior_mass", 1.0)}
    if group.truth is not None:
        row.update(true_lat=float(group.truth[0]), true_lon=float(group.truth[1]))
    return {**row, **flat_answer(report, top_k)}


def write_answers(out: Path, groups: Sequence[Group], answers: Sequence[Answer], *, top_k: int,
                  levels: tuple[float, ...], maps_dir: Path | None) -> None:
    """The groups' answers as a table or GeoJSON at ``out`` (atomically), and their maps in ``maps_dir``."""
    rows, features = [], []
    for group, answer in zip(groups, answers):
        rows.append(_group_row(group, answer, top_k))
        meta = {"group": group.key, "photos": len(group.sources)}
        features.append(answer.to_geojson(meta))
        if maps_dir is not None and answer.density_map is not None:
            write_row(maps_dir, row_stem(group.key), group.key, answer.to_dict(), answer.density_map, levels)
    if out.suffix == ".geojson":
        atomic_write_text(out, json.dumps({"type": "FeatureCollection", "features": features}, allow_nan=False))
    else:
        columns = {k: [r.get(k, float("nan")) for r in rows] for k in rows[0]} if rows else {"group": []}
        write_table(columns, out)


def predict_groups_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                           group_by: str | None, fuse: bool = False, config: AnswerConfig,
                           constraints: Constraints | None = None,
                           maps_dir: str | os.PathLike | None = None, device: str | None = None,
                           skip_invalid: bool = False, seed: int = 0, progress: bool = True,
                           redundancy: float = 0.0) -> dict[str, Any]:
    """``globeflow predict RUN DATA.parquet --group-by COLUMN`` (or ``--fuse``: all rows one group; or
    only constraints: every row its own group): one answer per group, written to ``out``."""
    t0 = time.time()
    out = check_table_path(out, ANSWER_FORMATS)
    geolocator = Geolocator.load(run, device=device)
    geolocator.require_density()
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim, labels=False)
    info = dataset.scan()
    if group_by is not None and group_by not in dataset.metadata_columns:
        raise ValueError(f"--group-by {group_by}: {data} has no such column (its columns: "
                         f"{', '.join(dataset.metadata_columns) or 'none besides id, lat, lon, embedding'})")
    keys, embs, ids, latlon = [], [], [], []
    for batch in dataset.iter_batches(4096, metadata=group_by is not None):
        embs.append(batch.embedding.numpy())
        ids += [str(i) for i in batch.ids]
        latlon.append(batch.latlon.numpy())
        keys += list(batch.metadata[group_by]) if group_by is not None else [None] * len(batch.ids)
    if not ids:
        raise ValueError(f"{data}: no valid rows ({info.num_skipped} skipped)")
    emb, ll = np.concatenate(embs), np.concatenate(latlon)
    if group_by is None:
        keys = [ALL_ROWS] * len(ids) if fuse else ids
    groups = group_rows(keys, emb, [f"row {i}" for i in ids], ll, column=group_by or "id")
    answers = answer_groups(geolocator, groups, config=config, seed=seed, constraints=constraints, progress=progress,
                            redundancy=redundancy)
    maps = Path(maps_dir) if maps_dir is not None else None
    if maps is not None:
        maps.mkdir(parents=True, exist_ok=True)
    write_answers(out, groups, answers, top_k=config.top_k, levels=config.levels, maps_dir=maps)
    return {"out": str(out), "groups": len(groups), "rows": len(ids), "skipped_rows": info.num_skipped,
            "contradicting_photos": sum(len(_contradicting(a)) for a in answers),
            "seconds": round(time.time() - t0, 1)}


def _contradicting(answer: Answer) -> list[str]:
    return [c["source"] for c in (answer.evidence or {}).get("contributions", []) if c["contradicts"]]
