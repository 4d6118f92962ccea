"""A density map from samples with exact log-densities, with no likelihood solve on the grid.

The coarse-to-fine map (:mod:`.refine`) solves the likelihood ODE at thousands of cell centres, which
costs far more than the samples themselves. When the answer's ``S`` samples already carry their exact
log-densities ``log q(x_i)`` (one forward solve, :meth:`Geolocator.sample_with_log_prob`), a map can
be read off them instead: an adaptive kernel estimate whose bandwidths come from the exact densities.

Each sample ``i`` spreads its ``1/S`` of the mass with a von Mises-Fisher kernel of angular width

    sigma_i^2 = k / (pi S q(x_i))    (radians^2; q per steradian),

the disc that ``k`` samples occupy where the density is ``q(x_i)``: Abramson's square-root law
``h_i ~ q_i^(-1/2)``, with the exact density as its pilot instead of a first estimate. The one free
factor ``k`` is fitted per image so that the leave-one-out estimate at each sample matches its exact
density (median absolute log error over a grid of ``k``): the exact values calibrate the smoothing.
A kernel narrower than half a cell puts its mass in its own cell; wider ones are weighted over the
cells of their ``5 sigma`` disc and normalised on the grid, so the map's mass is 1 by construction.
A small uniform share (``floor / S``) keeps cells no kernel reaches finite: their true density is
below what ``S`` samples resolve.

The map is an *estimate* (its values are not solved; ``evaluated_nside`` is 0 everywhere and
``source`` says ``"samples"``): what is read off it carries Monte Carlo error of order
``sqrt(p (1 - p) / S)`` on a probability and the kernel's smoothing on areas.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...geo import healpix as hgrid
from ...geo.distributions import vmf_log_prob
from .map import DensityMap

__all__ = ["kernel_map", "kernel_widths", "fit_factor", "loo_error", "hpd_region", "KERNEL_FACTORS", "FLOOR"]

#: Candidate values of the bandwidth factor ``k`` (samples per kernel disc), fitted per image.
KERNEL_FACTORS = tuple(float(2.0 ** e) for e in np.arange(-2.0, 6.5, 0.5))
#: Mass share spread uniformly, per sample (a share of ``FLOOR / S`` in all).
FLOOR = 0.1


def kernel_widths(log_prob: np.ndarray, factor: float) -> np.ndarray:
    """Angular widths ``sigma_i (S,)`` in radians for exact log-densities ``(S,)`` (nats/sr), capped at
    one radian (a kernel wider than that is nearly uniform on the sphere anyway)."""
    lp = np.asarray(log_prob, dtype=np.float64)
    return np.minimum(np.sqrt(factor / (math.pi * lp.size * np.exp(lp))), 1.0)


def loo_error(xyz: np.ndarray, log_prob: np.ndarray, factor: float) -> float:
    """Median absolute difference (nats) between the leave-one-out kernel estimate at each sample
    ``xyz (S, 3)`` and its exact log-density ``(S,)``, for the bandwidth factor ``factor``."""
    lp = np.asarray(log_prob, dtype=np.float64)
    x = torch.as_tensor(xyz, dtype=torch.float64)
    kappa = torch.as_tensor(1.0 / kernel_widths(lp, factor) ** 2)
    logk = vmf_log_prob(x[:, None, :], x[None, :, :], kappa[None, :])  # [i, j]: kernel j at sample i
    logk.fill_diagonal_(-math.inf)
    loo = (torch.logsumexp(logk, dim=1) - math.log(lp.size - 1)).numpy()
    return float(np.median(np.abs(loo - lp)))


def fit_factor(xyz: np.ndarray, log_prob: np.ndarray) -> float:
    """The factor ``k`` of :data:`KERNEL_FACTORS` with the smallest :func:`loo_error`."""
    errors = [loo_error(xyz, log_prob, k) for k in KERNEL_FACTORS]
    return KERNEL_FACTORS[int(np.argmin(errors))]


def kernel_map(xyz: np.ndarray, log_prob: np.ndarray, nside: int, factor: float | None = None) -> DensityMap:
    """The kernel density map of samples ``xyz (S, 3)`` (unit vectors) with exact log-densities
    ``log_prob (S,)`` (nats/sr) on the NESTED grid of ``nside``; ``factor`` defaults to the fitted one."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    lp = np.asarray(log_prob, dtype=np.float64).reshape(-1)
    if xyz.shape[0] != lp.size or lp.size < 2:
        raise ValueError(f"kernel_map needs at least 2 samples with one log-density each, got {xyz.shape[0]} "
                         f"samples and {lp.size} log-densities")
    if not np.isfinite(lp).all():
        raise ValueError("kernel_map needs finite sample log-densities")
    k = fit_factor(xyz, lp) if factor is None else factor
    sigma = kernel_widths(lp, k)
    s, npix = lp.size, hgrid.num_cells(nside)
    mass = np.zeros(npix)
    half_cell = 0.5 * math.sqrt(hgrid.cell_area(nside))
    own = hgrid.vec2pix(nside, xyz[:, 0], xyz[:, 1], xyz[:, 2], nest=True)
    narrow = sigma < half_cell
    np.add.at(mass, own[narrow], 1.0 / s)
    for i in np.flatnonzero(~narrow):
        cells = hgrid.query_disc(nside, xyz[i], min(5.0 * sigma[i], math.pi), nest=True)
        centres = np.stack(hgrid.pix2vec(nside, cells, nest=True), axis=-1)
        w = np.exp((centres @ xyz[i] - 1.0) / sigma[i] ** 2)
        mass[cells] += w / (w.sum() * s)
    floor = FLOOR / s
    mass = (1.0 - floor) * mass + floor / npix
    return DensityMap(np.log(mass / hgrid.cell_area(nside)), np.zeros(npix, dtype=np.int32), source="samples")


def hpd_region(log_prob: np.ndarray, level: float) -> tuple[float, float]:
    """The ``level`` highest-density region of a density from its samples' exact log-densities
    ``(S,)``: ``(threshold, area)``, the log-density (nats/sr) at its edge and its area in steradians.

    The region is ``{x: log q(x) >= t}`` with ``P_q(log q(X) >= t) = level``, so ``t`` is the
    ``1 - level`` quantile of the samples' log-densities; its area ``E_q[1{log q >= t} / q]`` is
    estimated by importance sampling over the same samples, unbiased for a given ``t`` and of bounded
    variance (inside the region ``1/q <= exp(-t)``). No kernel smoothing enters either number.
    """
    if not 0.0 < level <= 1.0:
        raise ValueError(f"credible level must be in (0, 1], got {level}")
    lp = np.asarray(log_prob, dtype=np.float64).reshape(-1)
    t = float(np.quantile(lp, 1.0 - level, method="lower"))
    inside = lp >= t
    return t, float(np.exp(-lp[inside]).sum() / lp.size)
