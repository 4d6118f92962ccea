"""Administrative accuracy as the OSV-5M benchmark computes it: same country, region, sub-region, city.

Each point is given the GeoNames ``cities1000`` place nearest to it (:func:`places.reverse_geocode`,
great-circle nearest, the data ``places`` has already loaded) and that place's keys:

* ``country``: ``cc``;
* ``region``: ``admin1, cc``;
* ``sub_region``: ``admin2, admin1, cc``;
* ``city``: ``name, admin2, admin1, cc``.

Parts are joined by ``", "`` and kept even when empty, so a key always has the same number of parts
at one level (unlike :func:`places.area_keys`, which uses country polygons and drops empty parts).
A prediction matches when its key equals the ground truth's at that level.

Unlike :func:`places.area_keys`, the country is the nearest city's ``cc``, not the polygon that
contains the point: this is the benchmark's convention, kept so the numbers compare with published
ones. A consequence of the nearest-city rule is that "same city" means "same nearest town":
GeoNames lists every suburb of 1,000 inhabitants, so a point 5 km from the centre of Paris is
already nearest to Neuilly-sur-Seine or Vanves.

An invalid prediction (NaN, infinite or out of range) gets the key ``""``, which matches nothing:
it counts as a miss at every level and is never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..geo.places import reverse_geocode

__all__ = ["TRUTH_COLUMNS", "keys_from_columns", "ADMIN_LEVELS", "INVALID_KEY", "admin_keys", "admin_accuracy"]

ADMIN_LEVELS = ("country", "region", "sub_region", "city")
INVALID_KEY = ""
_SEPARATOR = ", "


def _valid_rows(latlon: np.ndarray) -> np.ndarray:
    """``(N, 2)`` -> ``(N,)`` bool: finite, ``|lat| <= 90`` and ``|lon| <= 180``."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(latlon).all(axis=1) & (np.abs(latlon[:, 0]) <= 90) & (np.abs(latlon[:, 1]) <= 180)


def _as_latlon(latlon: object, what: str) -> np.ndarray:
    a = np.asarray(latlon, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{what} must have shape (N, 2) as (lat, lon) in degrees, got shape {a.shape}")
    return a


def admin_keys(latlon: np.ndarray) -> dict[str, np.ndarray]:
    """OSV-5M keys of the nearest GeoNames place of each point.

    Args:
        latlon: ``(N, 2)`` degrees (lat, lon); invalid rows (NaN, inf, out of range) are allowed.

    Returns:
        ``{level: (N,) str array}`` for ``level`` in :data:`ADMIN_LEVELS`; invalid rows get
        :data:`INVALID_KEY` (``""``) at every level.
    """
    a = _as_latlon(latlon, "latlon")
    ok = _valid_rows(a)
    keys = {level: np.full(len(a), INVALID_KEY, dtype=object) for level in ADMIN_LEVELS}
    rows = np.flatnonzero(ok)
    for i, p in zip(rows, reverse_geocode(a[rows]) if len(rows) else []):
        cc, admin1, admin2 = p.country_code, p.admin1, p.admin2
        keys["country"][i] = cc
        keys["region"][i] = _SEPARATOR.join((admin1, cc))
        keys["sub_region"][i] = _SEPARATOR.join((admin2, admin1, cc))
        keys["city"][i] = _SEPARATOR.join((p.name, admin2, admin1, cc))
    return {level: k.astype(str) for level, k in keys.items()}


#: Dataset columns that hold ground-truth areas (OSV-5M names; ``sub_region`` also accepted).
TRUTH_COLUMNS = {"country": ("country",), "region": ("region",), "sub_region": ("sub-region", "sub_region"),
                 "city": ("city",)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def keys_from_columns(columns: Mapping[str, Sequence[Any]]) -> dict[str, list[str | None]]:
    """Ground-truth keys from dataset columns (OSV-5M's ``country``, ``region``, ``sub-region``,
    ``city``, themselves GeoNames names), joined like :func:`admin_keys` so that they compare equal.

    A level is returned only when its column and those of the coarser levels are present. A row gets
    ``None`` at a level (masked out of that level's accuracy) when its value or a coarser one is
    missing (None or NaN); an empty string is an empty part, as in :func:`admin_keys` (GeoNames
    leaves admin2 empty in many countries, and both sides then carry the same empty part).
    """
    found = {level: next((columns[c] for c in names if c in columns), None) for level, names in TRUTH_COLUMNS.items()}
    out: dict[str, list[str | None]] = {}
    parts: list[Sequence[Any]] = []
    for level in ADMIN_LEVELS:
        if found[level] is None:
            break
        parts.insert(0, found[level])  # finer parts first: "city, sub-region, region, cc"
        out[level] = [None if any(_missing(v) for v in row) else _SEPARATOR.join(str(v) for v in row)
                      for row in zip(*parts)]
    return out


def _present(values: Sequence[str | None], n: int, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth keys ``(n,)`` -> (keys as str, mask of rows that have one). None, "" and NaN are missing."""
    if len(values) != n:
        raise ValueError(f"true_keys[{level!r}] has {len(values)} entries, predictions have {n} rows")
    missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) or v == "" for v in values], dtype=bool)
    keys = np.array(["" if m else str(v) for v, m in zip(values, missing)], dtype=object).astype(str)
    return keys, ~missing


def admin_accuracy(pred: np.ndarray, true: np.ndarray | None = None, *,
                   true_keys: Mapping[str, Sequence[str | None]] | None = None) -> dict[str, float]:
    """Fraction of predictions in the same country, region, sub-region and city as the truth.

    Args:
        pred: ``(N, 2)`` predicted (lat, lon) degrees; an invalid row counts as a miss.
        true: ``(N, 2)`` true (lat, lon) degrees, reverse-geocoded like the predictions; must be
            valid. Ignored at the levels that ``true_keys`` gives.
        true_keys: ``{level: (N,) keys}`` in the format of :func:`admin_keys` (for instance the
            dataset's own annotations); None, ``""`` or NaN marks a row without ground truth at
            that level, which is left out of that level's denominator.

    Returns:
        ``acc_<level>`` (fraction in [0, 1], NaN when no row has ground truth at that level) and
        ``n_<level>`` (rows with ground truth) for each level, plus ``n`` and ``n_invalid``
        (invalid predictions, counted as misses).
    """
    p = _as_latlon(pred, "pred")
    n = len(p)
    if n == 0:
        raise ValueError("no predictions to evaluate (pred has shape (0, 2))")
    given = dict(true_keys or {})
    unknown = set(given) - set(ADMIN_LEVELS)
    if unknown:
        raise ValueError(f"true_keys levels must be among {ADMIN_LEVELS}, got {sorted(unknown)}")
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {lv: _present(v, n, lv) for lv, v in given.items()}
    if len(truth) < len(ADMIN_LEVELS):
        if true is None:
            missing = [lv for lv in ADMIN_LEVELS if lv not in truth]
            raise ValueError(f"true coordinates are needed for the levels true_keys does not give: {missing}")
        t = _as_latlon(true, "true")
        if t.shape != p.shape:
            raise ValueError(f"pred and true must have the same shape, got {p.shape} and {t.shape}")
        bad = ~_valid_rows(t)
        if bad.any():
            raise ValueError(f"true has {int(bad.sum())} invalid row(s) (NaN or out of range), "
                             f"first at row {int(np.flatnonzero(bad)[0])}")
        for lv, k in admin_keys(t).items():
            truth.setdefault(lv, (k, np.ones(n, dtype=bool)))
    pk = admin_keys(p)
    out: dict[str, float] = {"n": n, "n_invalid": int((~_valid_rows(p)).sum())}
    for lv in ADMIN_LEVELS:
        keys, has = truth[lv]
        hits = (pk[lv] == keys) & (pk[lv] != INVALID_KEY) & has
        m = int(has.sum())
        out[f"acc_{lv}"] = float(hits.sum() / m) if m else math.nan
        out[f"n_{lv}"] = m
    return out
