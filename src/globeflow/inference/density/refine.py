"""Coarse-to-fine density maps on the equal-area HEALPix grid.

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

import numpy as np
from tqdm.auto import tqdm

from ...checks import require_finite
from ...geo import healpix as hgrid
from .map import DensityMap, _cells_xyz

__all__ = ["MapConfig", "MAP_SOURCES", "LogDensityFn", "refine_map", "refine_components"]

#: ``(x (B, P, 3) float64 unit vectors) -> (log-density (B, P) nats/sr, field evaluations, error estimate
#: (B, P) nats, NaN where the solver gives none)``.
LogDensityFn = Callable[[np.ndarray], tuple[np.ndarray, int, np.ndarray]]


#: Where a map's values come from (:attr:`MapConfig.source`).
MAP_SOURCES = ("ode", "samples")


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
        coarse_steps: the coarse levels only choose where to refine (and give the far, unrefined
            cells their interpolated values), so they can be solved cheaply: RK4 with this many
            steps. The final level always uses the answer's solver.
        source: ``"ode"``: the coarse-to-fine solves above; ``"samples"``: no solve on the grid, the
            map is the kernel estimate of the answer's samples with their exact densities
            (:mod:`.kernel`; only ``nside`` applies), ~100x cheaper and an estimate, not a solve.
    """

    nside: int = field(default=64, metadata={"help": "HEALPix resolution of the map (64: 49,152 cells of ~92 km)"})
    start_nside: int = field(default=8, metadata={"help": "coarse grid evaluated everywhere"})
    mass: float = field(default=0.999, metadata={"help": "each level refines the densest cells holding this mass"})
    max_cells: int = field(default=256, metadata={"help": "cells refined by mass per level"})
    min_samples: int = field(default=2, metadata={"help": "a cell holding this many samples is refined"})
    exact_top: int = field(default=1000, metadata={"help": "the final map's densest cells evaluated exactly"})
    coarse_steps: int = field(default=0, metadata={"help": "RK4 steps on the levels before the last, which only "
                                                           "steer the refinement (0: the answer's own solver)"})

    source: str = field(default="ode", metadata={"help": "where the map's values come from: ode (exact solves on a "
                                                          "coarse-to-fine grid) or samples (a kernel estimate from "
                                                          "the answer's samples and their exact densities: no "
                                                          "solves, Monte Carlo accuracy)",
                                                  "choices": MAP_SOURCES})

    def __post_init__(self) -> None:
        require_finite(self)
        if self.source not in MAP_SOURCES:
            raise ValueError(f"map source must be one of {', '.join(MAP_SOURCES)}, got {self.source!r}")
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
        if self.coarse_steps < 0:
            raise ValueError(f"coarse_steps must be >= 0, got {self.coarse_steps}")


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
               samples: np.ndarray | None = None, progress: bool = False,
               coarse_fn: LogDensityFn | None = None) -> list[DensityMap]:
    """Coarse-to-fine density maps for ``batch`` images at once.

    Args:
        log_density_fn: evaluates the exact log-density at ``(batch, P, 3)`` points (all images in
            one call, so per-image work is shared across its points).
        samples: optional ``(batch, S, 3)`` model samples; the cells containing them are refined at
            every level.
        coarse_fn: evaluates the levels before the final one (default: ``log_density_fn``).
    Returns:
        One :class:`DensityMap` per image.
    """
    def one(fn: LogDensityFn) -> Callable[[np.ndarray], tuple[np.ndarray, int, np.ndarray]]:
        def call(pts: np.ndarray):
            values, nfe, errors = fn(pts)
            return values[..., None], nfe, np.asarray(errors)[..., None]
        return call

    out = _refine(one(log_density_fn), batch, np.ones(1), config, samples, progress,
                  None if coarse_fn is None else one(coarse_fn))
    return [m for m, _ in out]


def refine_components(log_density_fn: Callable[[np.ndarray], tuple[np.ndarray, int, np.ndarray]], batch: int,
                      weights: np.ndarray, config: MapConfig = MapConfig(), *, samples: np.ndarray | None = None,
                      progress: bool = False,
                      coarse_fn: Callable[[np.ndarray], tuple[np.ndarray, int, np.ndarray]] | None = None
                      ) -> list[tuple[DensityMap, np.ndarray]]:
    """Coarse-to-fine maps of a weighted sum of ``K`` log-densities, ``sum_k weights[k] log q_k(x)``
    (unnormalised: the caller renormalises), refined where the *sum* holds its mass, with every
    component kept on the final grid.

    ``log_density_fn`` maps ``(batch, P, 3)`` points to ``((batch, P, K) log-densities, field
    evaluations, (batch, P, K) error estimates)`` (``coarse_fn``, the same for the levels before the
    last, as in :func:`refine_map`); a map's error is ``sum_k |weights[k]| error_k``.
    Returns ``(map, components (12 nside^2, K))`` per image; interpolated cells take each
    component's own interpolation (their sum is then the sum's interpolation, as interpolation is linear).
    A product of densities is sharper than any of them, so the ranking of its cells moves more between
    levels: after the last level, any of the ``exact_top`` densest cells that is still interpolated is
    evaluated exactly (repeated until none is, at most 4 times).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    return _refine(log_density_fn, batch, w, config, samples, progress, coarse_fn, polish=True)


def _refine(fn: Callable[[np.ndarray], tuple[np.ndarray, int, np.ndarray]], batch: int, weights: np.ndarray,
            config: MapConfig, samples: np.ndarray | None, progress: bool,
            coarse: Callable[[np.ndarray], tuple[np.ndarray, int, np.ndarray]] | None, *, polish: bool = False
            ) -> list[tuple[DensityMap, np.ndarray]]:
    """The refinement of :func:`refine_map` on ``K`` components: ``fn`` returns ``(B, P, K)``."""
    nside = config.start_nside
    coarse_fn = coarse or fn
    abs_w = np.abs(weights)

    def combine(comp: np.ndarray) -> np.ndarray:  # (..., K) -> (...,); K = 1 with weight 1 is the value itself
        return comp[..., 0] if weights.size == 1 and weights[0] == 1.0 else comp @ weights

    def combined_error(err: np.ndarray) -> np.ndarray:  # (..., K) -> (...,): sum_k |w_k| |error_k|
        err = np.asarray(err, dtype=np.float64)
        return err[..., 0] if weights.size == 1 else np.abs(err) @ abs_w

    def store(b: int, cells: np.ndarray, values: np.ndarray, errors: np.ndarray) -> None:
        """Image ``b``'s exact values at ``cells`` of the current grid (``values, errors (len(cells), K)``)."""
        comps[b][cells] = values
        error[b][cells] = combined_error(errors)
        level[b][cells] = nside
        logp[b] = combine(comps[b])
        evaluations[b] += cells.size

    cells = np.arange(hgrid.num_cells(nside))
    pts = np.broadcast_to(_cells_xyz(nside, cells), (batch, cells.size, 3))
    values, nfe, errors = (fn if nside == config.nside else coarse_fn)(np.ascontiguousarray(pts))
    comps = [values[b].astype(np.float64) for b in range(batch)]
    error = [combined_error(errors[b]) for b in range(batch)]
    logp = [combine(c) for c in comps]
    level = [np.full(cells.size, nside, dtype=np.int32) for _ in range(batch)]
    evaluations = [cells.size] * batch
    levels = int(round(math.log2(config.nside // config.start_nside)))
    bar = None
    if progress and levels:
        bar = tqdm(total=levels, desc="refine map", unit="level")
    while nside < config.nside:
        left = int(round(math.log2(config.nside // nside)))  # refinements still to come, this one included
        min_cells = math.ceil(1.25 * config.exact_top / 4 ** left)
        chosen = []
        for b in range(batch):
            forced = None
            if samples is not None:
                s = samples[b].reshape(-1, 3)
                cells_s, counts = np.unique(hgrid.vec2pix(nside, s[:, 0], s[:, 1], s[:, 2], nest=True),
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
        values, n, errors = (fn if nside == config.nside else coarse_fn)(pts)
        nfe += n
        theta, phi = hgrid.pix2ang(nside, np.arange(hgrid.num_cells(nside)), nest=True)
        for b, c in enumerate(chosen):
            k = c.size * 4
            # Cells not refined take the coarse map's bilinear interpolation at their centres (in
            # log-density, which is smooth where it is not refined): far better than the parent's
            # value wherever the density has a slope, and the same on flat regions.
            comps[b] = np.stack([hgrid.interpolate(comps[b][:, j], theta, phi, nest=True)
                                 for j in range(weights.size)], axis=-1)
            level[b] = np.repeat(level[b], 4)
            # An interpolated cell has no solver error of its own: it is NaN, not its parent's.
            error[b] = np.full(level[b].size, np.nan)
            store(b, children[b, :k], values[b, :k], errors[b, :k])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    for _ in range(4 if polish else 0):
        missing = [np.sort(order[level[b][order] != nside]) for b in range(batch)
                   for order in [np.argsort(-logp[b], kind="stable")[:config.exact_top]]]
        if not any(m.size for m in missing):
            break
        width = max(m.size for m in missing)
        cells_b = np.stack([np.resize(m, width) if m.size else np.zeros(width, dtype=np.int64) for m in missing])
        values, n, errors = fn(_cells_xyz(nside, cells_b.reshape(-1)).reshape(batch, width, 3))
        nfe += n
        for b, m in enumerate(missing):
            store(b, m, values[b, :m.size], errors[b, :m.size])
    return [(DensityMap(logp[b], level[b], evaluations[b], nfe, error_nats=error[b]), comps[b]) for b in range(batch)]
