"""Area keys (OSV-5M style) and the probability mass of samples in each country, region and city."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .borders import country_codes
from .common import LEVELS, SEA_KEY, SEA_NAME, _check_latlon, _join, _xyz, country_name
from .gazetteer import _gazetteer

__all__ = ["area_keys", "area_probabilities", "known_region_keys"]


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def _areas(latlon: np.ndarray, level: str) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Per point, the index of its area ``(N,)``, and per area its key, label and country code."""
    _check_level(level)
    lat, lon = _check_latlon(latlon)
    cc = country_codes(np.stack((lat, lon), axis=-1))
    if level == "country":
        place = np.full(len(cc), -1, dtype=np.int64)
    else:
        place = _gazetteer().nearest_in_country(_xyz(lat, lon), cc)
    # Keys are built once per distinct (country, place), not once per point.
    codes, cc_ids = np.unique(cc, return_inverse=True)
    pairs, inverse = np.unique(np.stack((cc_ids.reshape(-1), place)), axis=1, return_inverse=True)
    keys, labels, area_cc = [], [], []
    for cc_id, row in pairs.T:
        code = str(codes[cc_id])
        key, label = _key_and_label(code, int(row), level)
        keys.append(key)
        labels.append(label)
        area_cc.append(code)
    return inverse.reshape(-1), keys, labels, area_cc


def _key_and_label(code: str, row: int, level: str) -> tuple[str, str]:
    """Key and human label of the area of GeoNames place ``row`` (-1: none) in country ``code``."""
    if not code:
        return SEA_KEY, SEA_NAME
    parts: list[str] = []
    if row >= 0 and level != "country":
        gaz = _gazetteer()
        parts = [str(gaz.admin1[row])]
        if level == "city":
            parts = [str(gaz.name[row]), str(gaz.admin2[row]), *parts]
    return _join([*parts, code]), _join([*parts, country_name(code)])


def area_keys(latlon: np.ndarray, level: str = "country") -> np.ndarray:
    """OSV-5M style key of the area containing each point ``(N, 2)`` -> ``(N,)`` str.

    ``level`` is ``"country"`` (``"FR"``), ``"region"`` (``"Ile-de-France, FR"``) or ``"city"``
    (``"Paris, Ile-de-France, FR"``); ``""`` at sea at every level. See the module docstring.
    """
    inverse, keys, _, _ = _areas(latlon, level)
    if not keys:
        return np.zeros(0, dtype=str)
    return np.asarray(keys, dtype=str)[inverse]


def area_probabilities(latlon: np.ndarray, level: str = "country", weights: np.ndarray | None = None,
                       top: int | None = 10) -> list[dict[str, Any]]:
    """Probability mass of the samples ``latlon (N, 2)`` in each area, largest first.

    Each entry is ``{"key", "name", "country_code", "probability"}``; ``name`` is a human label
    (the country's full name at the country level, ``"(sea)"`` for the sea entry, whose key is
    ``""``). ``weights (N,)`` non-negative, normalised here; None gives every sample the same
    weight. Sorted by probability descending, ties by key; the probabilities of all entries sum
    to 1 before the first ``top`` are kept (``top=None`` keeps all).
    """
    _check_level(level)
    lat, _ = _check_latlon(latlon)
    n = len(lat)
    if n == 0:
        raise ValueError("latlon has no points (shape (0, 2)): no probabilities to compute")
    if top is not None and top < 0:
        raise ValueError(f"top must be None or >= 0, got {top}")
    w = _check_weights(weights, n)
    inverse, keys, labels, area_cc = _areas(latlon, level)
    # Several (country, place) pairs can share a key (two towns of one region): merge by key.
    unique_keys, key_of_area = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    mass = np.bincount(key_of_area.reshape(-1)[inverse], weights=w, minlength=len(unique_keys))
    info = {k: (lab, c) for k, lab, c in zip(keys, labels, area_cc)}
    entries = [{"key": str(k), "name": info[str(k)][0], "country_code": info[str(k)][1], "probability": float(p)}
               for k, p in zip(unique_keys, mass)]
    entries.sort(key=lambda e: (-e["probability"], e["key"]))
    return entries if top is None else entries[:top]


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """``(N,)`` non-negative weights with a positive sum -> normalised ``(N,)`` float64."""
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) like latlon's rows, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights have non-finite values (NaN or inf)")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative, got {w.min():g}")
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to 0: no probability mass to share")
    return w / total


@functools.lru_cache(maxsize=None)
def known_region_keys() -> frozenset[str]:
    """Every region key a point can have (``"admin1, CC"`` of some GeoNames place; ``"CC"`` where
    the place has no admin1)."""
    gaz = _gazetteer()
    return frozenset(_join([str(a), str(c)]) for a, c in zip(gaz.admin1, gaz.cc))
