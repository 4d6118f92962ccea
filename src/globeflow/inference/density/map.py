"""A density map on the equal-area HEALPix grid, and the answers read off it.

A :class:`DensityMap` holds one log-density per cell of a NESTED HEALPix grid (as
:func:`~globeflow.inference.density.refine.refine_map` computes it). Everything here works on the
finished map: total mass (a normalisation check), credible regions (the smallest set of cells holding
p of the mass, with its area), grid entropy, the grid maximum, and modes (basins of steepest ascent
over cell neighbours, with their masses).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from ...geo import healpix as hgrid
from ...geo.distance import EARTH_RADIUS_KM
from ...io.files import atomic_write_bytes
from .regions import region_geometry

__all__ = ["CREDIBLE_LEVELS", "DensityMap", "CredibleRegion", "Mode"]

#: Credible levels reported by default.
CREDIBLE_LEVELS = (0.5, 0.9, 0.95)


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
        error_nats: ``(12 nside^2,)`` the likelihood solver's error estimate of each exact cell's value
            (NaN for interpolated cells, and for fixed-step solvers, which give none).
        source: ``"ode"`` (values solved at cell centres, or interpolated from solved coarser cells) or
            ``"samples"`` (a kernel estimate from samples with exact densities: :mod:`.kernel`).
    """

    log_density: np.ndarray
    evaluated_nside: np.ndarray
    evaluations: int = 0
    nfe: int = 0
    units: str = field(default="nats/sr")
    error_nats: np.ndarray | None = field(default=None, repr=False)
    source: str = "ode"

    def densest_error(self, top: int = 1000) -> float | None:
        """The largest of the solver's own (local) error estimates (nats) among the ``top`` densest
        exact cells; None when the solver gave none. Local errors only: backwards from the data the
        flow expands, so an error in a point's position grows on the way and the global error can be
        much larger (an answer measures it with a check solve; see ``AnswerConfig.error_check``)."""
        if self.error_nats is None:
            return None
        order = np.argsort(-self.log_density, kind="stable")[:top]
        err = self.error_nats[order]
        err = err[np.isfinite(err)]
        return float(err.max()) if err.size else None

    @property
    def nside(self) -> int:
        return int(hgrid.npix_to_nside(self.log_density.size))

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
        lon, lat = hgrid.pix2ang(self.nside, cells, nest=True, lonlat=True)
        lon = np.where(lon > 180.0, lon - 360.0, lon)
        return np.stack((lat, lon), axis=-1)

    def latlon_cells(self, latlon: np.ndarray) -> np.ndarray:
        """NESTED cells containing ``latlon (M, 2)`` degrees."""
        latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        return hgrid.ang2pix(self.nside, latlon[:, 1], latlon[:, 0], nest=True, lonlat=True)

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

    def probability_within(self, lat: float, lon: float, radius_km: float) -> float:
        """The probability that the location is within ``radius_km`` (great circle) of ``(lat, lon)``.

        Each cell overlapping the disc contributes its probability (:meth:`probabilities`, so a disc
        that covers whole cells gets exactly their mass, and the whole sphere 1) times the share of
        it inside the disc. The share splits the cell into sub-cells at most an eighth of the radius
        across (at least 16, at most 4^6), weighted by the map's bilinear interpolation of the
        log-density at their centres: a disc smaller than a cell gets the mass of its own part of it.
        """
        if not radius_km > 0:
            raise ValueError(f"radius_km must be > 0, got {radius_km}")
        la, lo = np.radians(lat), np.radians(lon)
        centre = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
        angle = min(radius_km / EARTH_RADIUS_KM, np.pi)
        cells = hgrid.query_disc(self.nside, centre, angle, nest=True)
        k = int(np.clip(np.ceil(np.log2(hgrid.resolution_km(self.nside) / (radius_km / 8.0))), 2, 6))
        fine = self.nside << k
        kids = (cells[:, None] * 4 ** k + np.arange(4 ** k)).reshape(-1)
        theta, phi = hgrid.pix2ang(fine, kids, nest=True)
        logp = hgrid.interpolate(self.log_density, theta, phi, nest=True).reshape(cells.size, -1)
        w = np.exp(logp - logp.max(axis=1, keepdims=True))
        inside = (_cells_xyz(fine, kids) @ centre >= np.cos(angle)).reshape(cells.size, -1)
        share = (w * inside).sum(axis=1) / w.sum(axis=1)
        return float(min((self.probabilities()[cells] * share).sum(), 1.0))

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
        A basin without mass is not a mode.
        """
        nside, logp = self.nside, self.log_density
        npix = logp.size
        # A strict total order: density, then height z, then index.
        z = hgrid.pix2vec(nside, np.arange(npix), nest=True)[2]
        rank = np.empty(npix, dtype=np.int64)
        rank[np.lexsort((np.arange(npix), z, logp))] = np.arange(npix)
        nb = hgrid.neighbours(nside, np.arange(npix), nest=True)  # (8, npix), -1 = none
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
        # A basin of zero mass (a region a constraint excludes, where the density is 0) is no place.
        modes = [Mode(float(ll[i, 0]), float(ll[i, 1]), float(merged[i]), float(logp[peaks[i]])) for i in kept
                 if merged[i] > 0.0]
        modes.sort(key=lambda m: -m.mass)
        return modes[:k]

    def to_geojson(self, levels: tuple[float, ...] = CREDIBLE_LEVELS) -> dict:
        """RFC 7946 GeoJSON: a FeatureCollection with one Feature per credible level, its region as one
        ``MultiPolygon`` (cut at the antimeridian, pole edges kept, counter-clockwise exteriors:
        :mod:`.regions`), with the level, area, cell count and edge log-density as properties,
        widest region first (so a map draws the narrower ones on top)."""
        feats = []
        for level in sorted(levels, reverse=True):
            region = self.credible_region(level)
            feats.append({"type": "Feature", "geometry": region_geometry(self.nside, region.cells),
                          "properties": {**region.to_dict(), "units": self.units, "nside": self.nside,
                                         "source": self.source}})
        return {"type": "FeatureCollection", "features": feats}

    def summary(self, levels: tuple[float, ...] = CREDIBLE_LEVELS) -> dict:
        """Map facts for reports: resolution, mass, cost, credible-region areas, grid entropy."""
        return {"nside": self.nside, "cells": int(self.log_density.size), "units": self.units, "source": self.source,
                "cell_km": hgrid.resolution_km(self.nside), "mass": self.mass(),
                "exact_cells": int((self.evaluated_nside == self.nside).sum()),
                "evaluations": self.evaluations, "nfe": self.nfe,
                "solver_local_error_nats": self.densest_error(),
                "grid_entropy_nats": self.entropy(),
                "credible_regions": [self.credible_region(p).to_dict() for p in levels]}

    def save_npz(self, path) -> None:
        """The map as arrays (``log_density``, ``evaluated_nside``, NESTED order), written atomically."""
        buf = io.BytesIO()
        np.savez_compressed(buf, log_density=self.log_density.astype(np.float32),
                            evaluated_nside=self.evaluated_nside.astype(np.int16),
                            nside=np.int64(self.nside), ordering=np.array("NESTED"), units=np.array(self.units))
        atomic_write_bytes(path, buf.getvalue())


def _cells_xyz(nside: int, cells: np.ndarray) -> np.ndarray:
    return np.stack(hgrid.pix2vec(nside, cells, nest=True), axis=-1)
