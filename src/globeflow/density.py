"""Density maps on the equal-area HEALPix grid, and the answers read off them.

A map holds one log-density per cell of a NESTED HEALPix grid. Evaluating the exact likelihood at
all 49,152 cells of nside 64 costs 49,152 ODE solves, most of them where there is no mass. Instead
:func:`refine_map` works coarse-to-fine: it evaluates every cell of a coarse grid, then, level by
level, evaluates the four children of the cells that hold the mass (the densest cells holding
``MapConfig.mass`` of it, at most ``max_cells``, and enough of the densest for the final map's
``exact_top`` densest cells to be exact) and of the cells that contain model samples (so
that a mode sharper than a coarse cell, invisible at the coarse centres, is still found). The
children of the other cells take the bilinear interpolation of the coarse map's log-density. ``evaluated_nside`` records, per cell,
the resolution its value was computed at, so no interpolated value passes for an exact one.

Everything downstream works on the finished equal-area map: total mass (a normalisation check),
credible regions (the smallest set of cells holding p of the mass, with its area), grid entropy,
the grid maximum, and modes (basins of steepest ascent over cell neighbours, with their masses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import healpy
import numpy as np

from . import grid as hgrid
from .geometry import EARTH_RADIUS_KM

__all__ = ["MapConfig", "DensityMap", "CredibleRegion", "Mode", "refine_map", "CREDIBLE_LEVELS"]

#: Credible levels reported by default.
CREDIBLE_LEVELS = (0.5, 0.9, 0.95)

#: ``(x (B, P, 3) float64 unit vectors) -> (log-density (B, P) nats/sr, field evaluations)``.
LogDensityFn = Callable[[np.ndarray], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class MapConfig:
    """How a density map is computed.

    Attributes:
        nside: output resolution (a power of two; 64 gives 49,152 cells of ~92 km).
        start_nside: the coarse grid evaluated everywhere (8: 768 cells of ~730 km).
        mass: each level refines the smallest set of cells holding this fraction of the mass.
        max_cells: at most this many cells are refined by mass per level and image (each costs 4
            solves); cells holding samples are refined in addition.
        min_samples: a cell is refined for its samples when it holds at least this many.
        exact_top: the densest cells of the final map are evaluated exactly, at least this many:
            each level also refines its densest ``1.25 exact_top / 4^(levels left)`` cells (the 25%
            margin covers ranking changes as values sharpen). A tight density's mass sits in a few
            cells, so without this most of its densest cells would be interpolated.
    """

    nside: int = 64
    start_nside: int = 8
    mass: float = 0.999
    max_cells: int = 256
    min_samples: int = 2
    exact_top: int = 1000

    def __post_init__(self) -> None:
        hgrid.check_nside(self.nside)
        hgrid.check_nside(self.start_nside)
        if self.start_nside > self.nside:
            raise ValueError(f"start_nside ({self.start_nside}) must not exceed nside ({self.nside})")
        if not 0.0 < self.mass <= 1.0:
            raise ValueError(f"mass must be in (0, 1], got {self.mass}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")
        if self.exact_top < 0:
            raise ValueError(f"exact_top must be >= 0, got {self.exact_top}")
        if self.max_cells < 1:
            raise ValueError(f"max_cells must be >= 1, got {self.max_cells}")


@dataclass(frozen=True)
class CredibleRegion:
    """The smallest set of cells holding ``level`` of the (normalised) mass."""

    level: float
    cells: np.ndarray  # (M,) NESTED indices, densest first
    area_km2: float
    threshold: float  # log-density (nats/sr) of the least dense cell inside

    def to_dict(self) -> dict:
        return {"level": self.level, "area_km2": self.area_km2, "cells": int(self.cells.size),
                "threshold_log_density": self.threshold}


@dataclass(frozen=True)
class Mode:
    """A local maximum of the map and the mass of its basin of attraction."""

    lat: float
    lon: float
    mass: float  # normalised probability of the basin
    log_density: float  # at the peak cell, nats/sr

    def to_dict(self) -> dict:
        return {"lat": self.lat, "lon": self.lon, "probability": self.mass, "log_density": self.log_density}


@dataclass(frozen=True)
class DensityMap:
    """Log-density (nats per steradian) of one image on a NESTED HEALPix grid.

    Attributes:
        log_density: ``(12 nside^2,)``.
        evaluated_nside: ``(12 nside^2,)``: the grid each value was computed on (``nside`` where the
            cell centre itself was evaluated; coarser where the value is a coarser cell's).
        evaluations: exact likelihood solves spent on this map; nfe: field evaluations (JVPs count).
    """

    log_density: np.ndarray
    evaluated_nside: np.ndarray
    evaluations: int = 0
    nfe: int = 0
    units: str = field(default="nats/sr")

    @property
    def nside(self) -> int:
        return int(healpy.npix2nside(self.log_density.size))

    @property
    def cell_area(self) -> float:
        return hgrid.cell_area(self.nside)

    def mass(self) -> float:
        """Total probability over the sphere: 1 for a normalised density (up to solver and grid error)."""
        return float(np.exp(self.log_density).sum() * self.cell_area)

    def probabilities(self) -> np.ndarray:
        """Cell masses normalised to sum to one, ``(12 nside^2,)``."""
        w = np.exp(self.log_density - self.log_density.max())
        return w / w.sum()

    def centers_latlon(self, cells: np.ndarray) -> np.ndarray:
        """``(M, 2)`` degrees of the given NESTED cells' centres."""
        lon, lat = healpy.pix2ang(self.nside, cells, nest=True, lonlat=True)
        lon = np.where(lon > 180.0, lon - 360.0, lon)
        return np.stack((lat, lon), axis=-1)

    def latlon_cells(self, latlon: np.ndarray) -> np.ndarray:
        """NESTED cells containing ``latlon (M, 2)`` degrees."""
        latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        return healpy.ang2pix(self.nside, latlon[:, 1], latlon[:, 0], nest=True, lonlat=True)

    def argmax(self) -> tuple[float, float]:
        """Centre ``(lat, lon)`` of the densest cell: the grid-maximum point prediction."""
        lat, lon = self.centers_latlon(np.array([int(np.argmax(self.log_density))]))[0]
        return float(lat), float(lon)

    def credible_region(self, level: float) -> CredibleRegion:
        """Smallest set of cells whose normalised mass reaches ``level`` (highest density first)."""
        if not 0.0 < level <= 1.0:
            raise ValueError(f"credible level must be in (0, 1], got {level}")
        order = np.argsort(-self.log_density, kind="stable")
        cum = np.cumsum(self.probabilities()[order])
        n = min(int(np.searchsorted(cum, level * cum[-1] - 1e-12)) + 1, order.size)
        cells = order[:n]
        return CredibleRegion(level, cells, n * hgrid.cell_area_km2(self.nside), float(self.log_density[cells[-1]]))

    def level_of(self, latlon: np.ndarray) -> np.ndarray:
        """For points ``(M, 2)``: the normalised mass of the cells denser than the point's cell, ``(M,)``.

        A point lies inside the p-credible region exactly when this is below p.
        """
        ascending = np.argsort(self.log_density, kind="stable")
        sorted_logp = self.log_density[ascending]
        # above[i] = mass of the cells at sorted positions >= i; above[npix] = 0.
        above = np.concatenate((np.cumsum(self.probabilities()[ascending][::-1])[::-1], [0.0]))
        own = self.log_density[self.latlon_cells(latlon)]
        return above[np.searchsorted(sorted_logp, own, side="right")]

    def entropy(self) -> float:
        """Entropy of the normalised map, ``-sum_i q_i log(q_i / A)`` in nats (per steradian)."""
        q = self.probabilities()
        nz = q > 0
        return float(-(q[nz] * np.log(q[nz] / self.cell_area)).sum())

    def modes(self, k: int = 5, min_separation_km: float = 250.0) -> list[Mode]:
        """The ``k`` most probable modes: basins of steepest ascent over the 8 cell neighbours.

        Each cell climbs to its densest neighbour until a local maximum; a mode's probability is the
        mass of all cells that climb to it. Ties (flat, unrefined regions) break by the cell centre's
        z, a smooth function with one maximum, so a plateau drains to one peak instead of many (an
        index tie-break would leave one spurious peak per HEALPix base cell). A peak closer than
        ``min_separation_km`` to a denser one is merged into it (bumps of one mountain are one place).
        """
        nside, logp = self.nside, self.log_density
        npix = logp.size
        # A strict total order: density, then height z, then index.
        z = healpy.pix2vec(nside, np.arange(npix), nest=True)[2]
        rank = np.empty(npix, dtype=np.int64)
        rank[np.lexsort((np.arange(npix), z, logp))] = np.arange(npix)
        nb = healpy.get_all_neighbours(nside, np.arange(npix), nest=True)  # (8, npix), -1 = none
        nb_rank = np.where(nb >= 0, rank[np.where(nb >= 0, nb, 0)], -1)
        best = np.argmax(nb_rank, axis=0)
        up = nb[best, np.arange(npix)]
        parent = np.where(nb_rank[best, np.arange(npix)] > rank, up, np.arange(npix))
        while True:  # pointer jumping: every cell points at its peak after O(log path) rounds
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
        q = self.probabilities()
        peaks, inverse = np.unique(parent, return_inverse=True)
        masses = np.bincount(inverse, weights=q)
        order = np.argsort(-logp[peaks], kind="stable")
        peaks, masses = peaks[order], masses[order]
        ll = self.centers_latlon(peaks)
        kept: list[int] = []
        merged = masses.copy()
        xyz = _cells_xyz(nside, peaks)
        for i in range(peaks.size):
            if kept:
                ang = np.arccos(np.clip(xyz[kept] @ xyz[i], -1.0, 1.0)) * EARTH_RADIUS_KM
                j = int(np.argmin(ang))
                if ang[j] < min_separation_km:
                    merged[kept[j]] += masses[i]
                    continue
            kept.append(i)
        modes = [Mode(float(ll[i, 0]), float(ll[i, 1]), float(merged[i]), float(logp[peaks[i]])) for i in kept]
        modes.sort(key=lambda m: -m.mass)
        return modes[:k]

    def to_geojson(self, level: float = 0.95, max_cells: int = 5000) -> dict:
        """GeoJSON FeatureCollection of the cells of the ``level`` credible region (densest first,
        at most ``max_cells``), each a polygon with its log-density and probability."""
        region = self.credible_region(level)
        cells = region.cells[:max_cells]
        q = self.probabilities()
        feats = []
        for c in cells:
            corners = healpy.boundaries(self.nside, int(c), step=1, nest=True)  # (3, 4)
            lon, lat = healpy.vec2ang(corners.T, lonlat=True)
            lon = _unwrap_lon(np.where(lon > 180.0, lon - 360.0, lon))
            ring = [[round(float(a), 5), round(float(b), 5)] for a, b in zip(lon, lat)]
            ring.append(ring[0])
            feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                          "properties": {"cell": int(c), "log_density": float(self.log_density[c]),
                                         "probability": float(q[c]),
                                         "exact": bool(self.evaluated_nside[c] == self.nside)}})
        return {"type": "FeatureCollection", "features": feats,
                "properties": {"nside": self.nside, "ordering": "NESTED", "units": self.units,
                               "credible_level": level, "cells_in_region": int(region.cells.size),
                               "area_km2": region.area_km2}}

    def summary(self, levels: tuple[float, ...] = CREDIBLE_LEVELS) -> dict:
        """Map facts for reports: resolution, mass, cost, credible-region areas, grid entropy."""
        return {"nside": self.nside, "cells": int(self.log_density.size), "units": self.units,
                "cell_km": hgrid.resolution_km(self.nside), "mass": self.mass(),
                "exact_cells": int((self.evaluated_nside == self.nside).sum()),
                "evaluations": self.evaluations, "nfe": self.nfe,
                "grid_entropy_nats": self.entropy(),
                "credible_regions": [self.credible_region(p).to_dict() for p in levels]}

    def save_npz(self, path) -> None:
        """The map as arrays (``log_density``, ``evaluated_nside``, NESTED order), written atomically."""
        import io

        from .checkpoint import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, log_density=self.log_density.astype(np.float32),
                            evaluated_nside=self.evaluated_nside.astype(np.int16),
                            nside=np.int64(self.nside), ordering=np.array("NESTED"), units=np.array(self.units))
        atomic_write_bytes(path, buf.getvalue())


def _unwrap_lon(lon: np.ndarray) -> np.ndarray:
    """Keep a cell's corners on one side of the antimeridian (GeoJSON polygons must not jump 360)."""
    return np.where(lon < 0.0, lon + 360.0, lon) if lon.max() - lon.min() > 180.0 else lon


def _cells_xyz(nside: int, cells: np.ndarray) -> np.ndarray:
    return np.stack(healpy.pix2vec(nside, cells, nest=True), axis=-1)


def _select(logp: np.ndarray, mass: float, max_cells: int, min_cells: int, forced: np.ndarray | None) -> np.ndarray:
    """Cells to refine at one level: the densest cells holding ``mass`` (at most ``max_cells``, at
    least ``min_cells``), plus every ``forced`` cell (those holding samples: their coarse values may
    have missed a sharp mode, so they never compete with the mass-based cells for the cap)."""
    order = np.argsort(-logp, kind="stable")
    w = np.exp(logp[order] - logp[order[0]])
    cum = np.cumsum(w) / w.sum()
    n = max(min(int(np.searchsorted(cum, mass)) + 1, max_cells), min(min_cells, order.size))
    chosen = order[:n]
    if forced is not None and forced.size:
        chosen = np.union1d(chosen, forced)
    return np.sort(chosen)


def refine_map(log_density_fn: LogDensityFn, batch: int, config: MapConfig = MapConfig(), *,
               samples: np.ndarray | None = None, progress: bool = False) -> list[DensityMap]:
    """Coarse-to-fine density maps for ``batch`` images at once.

    Args:
        log_density_fn: evaluates the exact log-density at ``(batch, P, 3)`` points (all images in
            one call, so per-image work is shared across its points).
        samples: optional ``(batch, S, 3)`` model samples; the cells containing them are refined at
            every level.
    Returns:
        One :class:`DensityMap` per image.
    """
    nside = config.start_nside
    cells = np.arange(hgrid.num_cells(nside))
    pts = np.broadcast_to(_cells_xyz(nside, cells), (batch, cells.size, 3))
    values, nfe = log_density_fn(np.ascontiguousarray(pts))
    logp = [values[b].astype(np.float64) for b in range(batch)]
    level = [np.full(cells.size, nside, dtype=np.int32) for _ in range(batch)]
    evaluations = [cells.size] * batch
    levels = int(round(math.log2(config.nside // config.start_nside)))
    bar = None
    if progress and levels:
        from tqdm.auto import tqdm
        bar = tqdm(total=levels, desc="refine map", unit="level")
    while nside < config.nside:
        left = int(round(math.log2(config.nside // nside)))  # refinements still to come, this one included
        min_cells = math.ceil(1.25 * config.exact_top / 4 ** left)
        chosen = []
        for b in range(batch):
            forced = None
            if samples is not None:
                s = samples[b].reshape(-1, 3)
                cells_s, counts = np.unique(healpy.vec2pix(nside, s[:, 0], s[:, 1], s[:, 2], nest=True),
                                            return_counts=True)
                # A cell with two or more samples holds real mass (a lone sample of a broad density
                # says little, and refining every one of them would double the cost).
                forced = cells_s[counts >= config.min_samples]
            chosen.append(_select(logp[b], config.mass, config.max_cells, min_cells, forced))
        width = max(c.size for c in chosen) * 4
        children = np.zeros((batch, width), dtype=np.int64)
        for b, c in enumerate(chosen):
            kids = (4 * c[:, None] + np.arange(4)).reshape(-1)
            children[b, :kids.size] = kids
            children[b, kids.size:] = kids[0]  # padding repeats a real cell; its result is discarded
        nside *= 2
        pts = _cells_xyz(nside, children.reshape(-1)).reshape(batch, width, 3)
        values, n = log_density_fn(pts)
        nfe += n
        theta, phi = healpy.pix2ang(nside, np.arange(hgrid.num_cells(nside)), nest=True)
        for b, c in enumerate(chosen):
            k = c.size * 4
            # Cells not refined take the coarse map's bilinear interpolation at their centres (in
            # log-density, which is smooth where it is not refined): far better than the parent's
            # value wherever the density has a slope, and the same on flat regions.
            logp[b] = healpy.get_interp_val(logp[b], theta, phi, nest=True)
            level[b] = np.repeat(level[b], 4)
            logp[b][children[b, :k]] = values[b, :k]
            level[b][children[b, :k]] = nside
            evaluations[b] += k
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return [DensityMap(logp[b], level[b], evaluations[b], nfe) for b in range(batch)]

