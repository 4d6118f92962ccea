"""The Bayes-optimal point for GeoScore under a density known through exact samples: the point with
the highest expected GeoScore, found by a beam search down the nested HEALPix hierarchy and a compass
search around the best cell (what the known-answer task scores models against)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ... import geo
from ...geo import healpix

__all__ = ["GEOSCORE_MAX", "geoscore_from_angle", "bayes_point"]

GEOSCORE_MAX = 5000.0
#: Upper bound on the elements of one (classes, candidates, samples) block: 2^20 float64 = 8 MiB.
#: Much smaller blocks drown in per-op threading overhead when the CPU is shared; larger ones
#: fall out of cache.
_CHUNK_ELEMENTS = 1 << 20
#: Coarsest HEALPix level of the predictor's beam search (192 cells, ~15 degrees apart).
_BEAM_START_NSIDE = 4
#: The local pattern search stops once its step is below this many km (far below the MC error).
_REFINE_TOL_KM = 0.01
_REFINE_MAX_ITER = 200


def geoscore_from_angle(theta: Tensor) -> Tensor:
    """GeoScore for a great-circle angle in radians (any shape)."""
    return GEOSCORE_MAX * torch.exp(-theta * (geo.EARTH_RADIUS_KM / geo.GEOSCORE_SCALE_KM))


def _expected_geoscore(y: Tensor, x: Tensor) -> Tensor:
    """Monte Carlo expected GeoScore of candidates ``y (C, M, 3)`` under samples ``x (C, N, 3)`` -> ``(C, M)``.

    The (candidate, sample) angle comes from a batched matmul and ``acos`` instead of
    :func:`globeflow.geo.dist`, which would materialise a ``(C, M, N, 3)`` cross product. In
    float64, ``acos`` near 1 resolves angles to ~1.5e-8 rad (0.1 m), far below anything scored here.
    """
    num_c, num_m, num_n = y.shape[0], y.shape[1], x.shape[1]
    step = max(1, _CHUNK_ELEMENTS // (num_c * num_n))
    xt = x.transpose(1, 2)
    out = []
    for ys in y.split(step, dim=1):
        theta = torch.acos(torch.bmm(ys, xt).clamp_(-1.0, 1.0))
        out.append(geoscore_from_angle(theta).mean(dim=-1))
    return torch.cat(out, dim=1) if num_m else y.new_zeros(num_c, 0)


def _healpix_vectors(nside: int, pix: np.ndarray) -> Tensor:
    """Centres of nested HEALPix cells ``pix (...)`` -> unit vectors ``(..., 3)`` float64."""
    vec = np.stack(healpix.pix2vec(nside, pix.reshape(-1), nest=True), axis=-1)
    return torch.from_numpy(vec).reshape(*pix.shape, 3).to(torch.float64)


def _beam_search(x: Tensor, nside: int, beam: int) -> Tensor:
    """Best nested-HEALPix cell centre at ``nside`` for each class, ``x (C, N, 3) -> (C, 3)``."""
    num_c = x.shape[0]
    level = min(_BEAM_START_NSIDE, nside)
    pix = np.broadcast_to(np.arange(12 * level * level), (num_c, 12 * level * level))
    while True:
        cand = _healpix_vectors(level, pix)
        score = _expected_geoscore(cand, x)
        if level == nside:
            return cand[torch.arange(num_c), score.argmax(dim=1)]
        keep = score.topk(min(beam, score.shape[1]), dim=1).indices.numpy()
        parents = np.take_along_axis(pix, keep, axis=1)
        # Nested scheme: the children of cell p at 2 * nside are 4p, ..., 4p + 3.
        pix = (4 * parents[:, :, None] + np.arange(4)).reshape(num_c, -1)
        level *= 2


def _compass_refine(y: Tensor, x: Tensor, h0: float) -> Tensor:
    """Local maximisation of the MC expected GeoScore from ``y (C, 3)``; see :meth:`KnownAnswerTask.bayes_predictor
    <globeflow.apps.tasks.known_answer.KnownAnswerTask.bayes_predictor>`."""
    offsets = torch.arange(-2, 3, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1).reshape(-1, 2)  # (25, 2)
    centre = int(((grid == 0).all(dim=-1)).nonzero()[0, 0])
    h = torch.full((y.shape[0],), h0, dtype=torch.float64)
    tol = _REFINE_TOL_KM / geo.EARTH_RADIUS_KM
    for _ in range(_REFINE_MAX_ITER):
        active = h >= tol
        if not active.any():
            break
        e1, e2 = geo.tangent_basis(y)
        step = h[:, None, None] * (grid[None, :, :1] * e1[:, None] + grid[None, :, 1:] * e2[:, None])
        cand = geo.expmap(y[:, None, :].expand_as(step), step)  # (C, 25, 3)
        best = _expected_geoscore(cand, x).argmax(dim=1)
        moved = best != centre
        y = torch.where(active[:, None], cand[torch.arange(y.shape[0]), best], y)
        h = torch.where(active & ~moved, h / 2, h)
    return y


def bayes_point(x: Tensor, nside: int, beam: int) -> Tensor:
    """The point of highest Monte Carlo expected GeoScore under each class's samples ``x (C, N, 3)``:
    the best nested-HEALPix cell at ``nside`` (beam search), refined by a compass search -> ``(C, 3)``."""
    y = _beam_search(x, nside, beam)
    return _compass_refine(y, x, math.sqrt(healpix.cell_area(nside)))
