"""Land locations and the two protocols' splits (random; unseen regions held out in HEALPix blocks)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .... import geo
from ....geo import healpix
from .config import LAND_SHARE_NSIDE, BlueMarbleConfig, BlueMarbleSplits, _check_lat_range
from .imagery import patch_grid

__all__ = ["land_locations", "make_splits"]

#: Side of the probe grid that measures a patch's land fraction.
_LAND_PROBE = 5
#: Candidate locations drawn per batch by the rejection sampler.
_BATCH = 16_384


def _is_land(latlon: np.ndarray) -> np.ndarray:
    """``global_land_mask`` (1 km GLOBE data; lakes count as land) at ``latlon (..., 2)`` -> ``(...)`` bool."""
    # Imported here: the mask unpacks to ~1 GB and takes seconds, needed only to draw locations.
    from global_land_mask import globe

    lon = (latlon[..., 1] + 180.0) % 360.0 - 180.0
    return globe.is_land(latlon[..., 0], lon)


def _land_batches(rng: np.random.Generator, lat_range: tuple[float, float], min_land: float,
                  size_km: float) -> Iterator[np.ndarray]:
    """Endless batches of accepted locations ``(m, 2)``, in the order ``rng`` draws them."""
    z_lo, z_hi = (math.sin(math.radians(t)) for t in lat_range)
    while True:
        lat = np.degrees(np.arcsin(rng.uniform(z_lo, z_hi, _BATCH)))
        lon = rng.uniform(-180.0, 180.0, _BATCH)
        latlon = np.stack((lat, lon), axis=-1)
        latlon = latlon[_is_land(latlon)]
        if min_land > 0.0 and len(latlon):
            probes = patch_grid(latlon, size_km=size_km, pixels=_LAND_PROBE)
            latlon = latlon[_is_land(probes).mean(axis=(1, 2)) >= min_land]
        yield latlon


def land_locations(n: int, *, seed: int, lat_range: tuple[float, float] = (-60.0, 75.0),
                   min_land: float = 0.5, size_km: float = 150.0) -> np.ndarray:
    """``n`` area-uniform land locations ``(n, 2)`` float64 degrees, the same for the same arguments.

    A location is kept when its latitude is in ``lat_range``, its centre is land and at least
    ``min_land`` of a 5 x 5 grid of probes over the ``size_km`` patch around it is land.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _check_lat_range(lat_range)
    batches, total = [np.empty((0, 2))], 0
    stream = _land_batches(np.random.default_rng(seed), lat_range, min_land, size_km)
    while total < n:
        batches.append(next(stream))
        total += len(batches[-1])
    return np.concatenate(batches)[:n]


# ---------------------------------------------------------------------- splits


def _cells(latlon: np.ndarray, nside: int) -> np.ndarray:
    """Nested HEALPix cell of each location ``(N, 2)`` -> ``(N,)``."""
    return healpix.ang2pix(nside, latlon[:, 1], latlon[:, 0], nest=True, lonlat=True)


def _land_share_per_cell(config: BlueMarbleConfig) -> np.ndarray:
    """Share of the land (centres in ``lat_range``) in each nested cell at ``holdout_nside``, summing to 1."""
    fine = np.arange(12 * LAND_SHARE_NSIDE**2)
    lon, lat = healpix.pix2ang(LAND_SHARE_NSIDE, fine, nest=True, lonlat=True)
    latlon = np.stack((lat, lon), axis=-1)
    land = _is_land(latlon) & (lat >= config.lat_range[0]) & (lat <= config.lat_range[1])
    # In the nested scheme a coarse cell's children are a contiguous block of (fine / coarse)^2 cells.
    counts = np.bincount(fine[land] // (LAND_SHARE_NSIDE // config.holdout_nside) ** 2,
                         minlength=12 * config.holdout_nside**2)
    return counts / counts.sum()


def _choose_held_out(share: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Cells with land, in a random order, until their share reaches ``fraction``: sorted ``(k,)``."""
    order = rng.permutation(np.flatnonzero(share > 0))
    k = int(np.searchsorted(np.cumsum(share[order]), fraction)) + 1
    return np.sort(order[:k])


def _unit(latlon: np.ndarray) -> np.ndarray:
    return geo.latlon_to_xyz(torch.from_numpy(latlon)).numpy()


def _split_by_cells(batches: Iterator[np.ndarray], held_mask: np.ndarray,
                    nside: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each batch of locations as (inside, outside) the cells where ``held_mask`` is true."""
    for batch in batches:
        inside = held_mask[_cells(batch, nside)]
        yield batch[inside], batch[~inside]


def _near(points: np.ndarray, radius_km: float) -> Callable[[np.ndarray], np.ndarray]:
    """A test ``latlon (m, 2) -> (m,)`` bool: within ``radius_km`` of any of ``points (k, 2)``.

    A KD-tree on unit vectors with the chord of the arc, which orders points exactly as the
    great-circle distance does; arcs beyond pi are capped at the diameter.
    """
    from scipy.spatial import cKDTree  # ~0.4 s to import: only building splits needs it

    if len(points) == 0:
        return lambda latlon: np.zeros(len(latlon), dtype=bool)
    tree = cKDTree(_unit(points))
    chord = 2.0 * math.sin(min(radius_km / geo.EARTH_RADIUS_KM, math.pi) / 2.0)
    return lambda latlon: np.isfinite(tree.query(_unit(latlon), k=1, distance_upper_bound=chord)[0])


def _take_far(batches: Iterator[np.ndarray], need: int,
              near: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, int]:
    """The first ``need`` candidates that are not ``near``, and how many near ones came before the last."""
    kept, total, dropped = [np.empty((0, 2))], 0, 0
    while total < need:
        batch = next(batches)
        close = near(batch)
        far = np.flatnonzero(~close)[: need - total]
        if total + len(far) == need:  # candidates after the last one used were never drawn
            close = close[: far[-1] + 1]
        kept.append(batch[far])
        total += len(far)
        dropped += int(close.sum())
    return np.concatenate(kept), dropped


def make_splits(config: BlueMarbleConfig = BlueMarbleConfig()) -> BlueMarbleSplits:
    """Training set and the two protocols' test sets; deterministic for a config.

    One stream of land candidates (as :func:`land_locations` draws them) is routed: centres inside
    a held-out cell fill ``test_unseen``, and the rest of those are dropped. The others, once
    ``test_unseen`` is complete, are dropped when within ``exclusion_radius_km`` of a
    ``test_unseen`` point and otherwise fill ``test_random``, then ``train``.
    """
    rng = np.random.default_rng(config.seed)
    share = _land_share_per_cell(config)
    held = _choose_held_out(share, config.holdout_fraction, rng)
    held_mask = np.zeros(len(share), dtype=bool)
    held_mask[held] = True
    stream = _land_batches(rng, config.lat_range, config.min_land, config.size_km)
    split = _split_by_cells(stream, held_mask, config.holdout_nside)
    inside, outside, num_inside = [np.empty((0, 2))], [], 0
    while num_inside < config.test_rows:
        batch_in, batch_out = next(split)
        inside.append(batch_in)
        outside.append(batch_out)
        num_inside += len(batch_in)
    test_unseen = np.concatenate(inside)[: config.test_rows]
    outside_stream = itertools.chain(outside, (batch_out for _, batch_out in split))
    kept, dropped = _take_far(outside_stream, config.train_rows + config.test_rows,
                              _near(test_unseen, config.exclusion_radius_km))
    return BlueMarbleSplits(
        train=kept[config.test_rows:],
        test_random=kept[: config.test_rows],
        test_unseen=test_unseen,
        held_out_cells=held,
        held_out_land_fraction=float(share[held].sum()),
        dropped_by_exclusion=dropped,
    )
