"""Several photos of one place: their densities fused into one posterior.

Photos ``1..n`` taken at the same place ``x``, each independent of the others given ``x``, give

    p(x | photos) ∝ prod_i q(x | photo_i) / p(x)^(n-1),

where ``q(x | photo_i)`` is the model's density for photo ``i`` (a posterior: it holds the prior once)
and ``p(x)`` is the training prior, estimated by the model's unconditional density (the zero
condition that classifier-free guidance trains with ``cond_drop``). :func:`fuse` computes this on the
coarse-to-fine HEALPix map (:func:`~globeflow.inference.density.refine.refine_components`): every
evaluated cell gets the *exact* log-density of every photo and of the prior, the refinement follows
the fused mass, and the map is renormalised on the sphere. Its answers are read off the map
(:mod:`.answers`).

Photos of one place are rarely independent given the place: two frames of one street share much of
what they show, and the product then counts the shared evidence twice (over-confident, more so the
more photos). ``redundancy`` ``rho`` in [0, 1] says how much: each photo's evidence is tempered,
``p(x) prod_i (q_i(x) / p(x))^w`` (a logarithmic opinion pool) with ``w = 1 / (1 + rho (n - 1))``,
the weight that makes ``n`` equally correlated photos count as ``n / (1 + rho (n - 1))`` independent
ones. ``rho = 0`` is the product formula above (independent photos, the default); ``rho = 1`` the
geometric mean of the photos' densities (n copies of one photo). It is a property of the user's
kind of photos, to fit on held-out groups of them (``benchmarks/evidence.py`` fits it).

What each photo contributed is the information it adds to the others: the Kullback-Leibler
divergence, in bits, from the fused density without it to the fused density (both on the same grid).
A photo *contradicts* the others when the fused density gives its own 95% credible region less than
5% of its mass: the photos then do not point to one place (another place, or a misleading photo).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch

from ... import geo
from ..answers import Answer, AnswerConfig, answer_embeddings, answer_settings
from ..density import DensityMap
from ..density.refine import refine_components
from ..locator import Locator
from .answers import answer_from_map, constrain_answer, constraint_evidence
from .constraints import EXCLUDED_LOG_DENSITY, Constraints, constrain_map

__all__ = ["fuse", "fused_map", "pool_weights", "photo_weight", "CONTRADICTION_LEVEL", "CONTRADICTION_MASS"]

#: A photo contradicts the others when the fused density gives its own CONTRADICTION_LEVEL credible
#: region less than CONTRADICTION_MASS.
CONTRADICTION_LEVEL = 0.95
CONTRADICTION_MASS = 0.05


def _logsumexp(a: np.ndarray) -> float:
    m = float(a.max())
    return m + math.log(float(np.exp(a - m).sum()))


def _normalised(logp: np.ndarray, cell_area: float) -> np.ndarray:
    """Log-density (nats/sr) of the map ``logp`` renormalised to mass 1 on the grid."""
    return logp - _logsumexp(logp) - math.log(cell_area)


def photo_weight(n: int, redundancy: float = 0.0) -> float:
    """Each photo's weight ``w = 1 / (1 + rho (n - 1))`` among ``n`` with redundancy ``rho``."""
    if not 0.0 <= redundancy <= 1.0:
        raise ValueError(f"the redundancy of the photos must be in [0, 1], got {redundancy}")
    return 1.0 / (1.0 + redundancy * (n - 1))


def pool_weights(n: int, redundancy: float = 0.0) -> np.ndarray:
    """The coefficients of ``(log q_1, ..., log q_n, log p)`` in the fused log-density: ``w`` per
    photo and ``1 - n w`` for the prior (``1 - n`` for the product formula, ``redundancy = 0``)."""
    w = photo_weight(n, redundancy)
    return np.r_[np.full(n, w), 1.0 - n * w]


def fused_map(locator: Locator, embeddings: torch.Tensor | np.ndarray, config: AnswerConfig, *, seed: int = 0,
              progress: bool = False, redundancy: float = 0.0) -> tuple[DensityMap, np.ndarray, float]:
    """The fused density of ``n`` photos' embeddings ``(n, D)`` on the coarse-to-fine map
    (``redundancy``: see the module docstring).

    Returns:
        ``(map, components, log_z)``: the normalised fused map; ``components (12 nside^2, n + 1)``,
        each photo's exact log-density (nats/sr) on the map's cells, then the prior's (interpolated
        where a cell was not evaluated); ``log_z``, the log of the product formula's mass on the grid
        (its normaliser).
    """
    locator.require_density()
    emb = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    n = emb.shape[0]
    cond = torch.cat((emb, locator.unconditional_embedding().to(emb.dtype)))
    solver = config.solver_options()
    # The photos' own samples steer the refinement to where each one has mass.
    samples = locator.sample(emb, config.num_samples, guidance=config.guidance, seed=seed)
    seeds = geo.latlon_to_xyz(samples.double()).numpy().reshape(1, -1, 3)

    def solved(**how: Any):
        def log_densities(pts: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
            x = np.ascontiguousarray(np.broadcast_to(pts[0], (n + 1, *pts.shape[1:])))
            values, nfe, errors = locator.log_density_points(cond, x, guidance=config.guidance, seed=seed, **how)
            return values.T[None], nfe, errors.T[None]
        return log_densities

    weights = pool_weights(n, redundancy)
    coarse = solved(steps=config.map.coarse_steps, method="rk4") if config.map.coarse_steps else None
    (raw, components), = refine_components(solved(steps=config.steps, **solver), 1, weights, config.map,
                                           samples=seeds, progress=progress, coarse_fn=coarse)
    log_z = _logsumexp(raw.log_density) + math.log(raw.cell_area)
    fused = DensityMap(raw.log_density - log_z, raw.evaluated_nside, raw.evaluations, raw.nfe, raw.units,
                       error_nats=raw.error_nats)
    return fused, components, log_z


def _contributions(fused: DensityMap, components: np.ndarray, sources: Sequence[str],
                   weight: float = 1.0) -> list[dict[str, Any]]:
    """Per photo: the information (bits) it adds to the others, the fused mass in its own 95%
    credible region, and whether it contradicts the others (see the module docstring)."""
    n = components.shape[1] - 1
    p = fused.probabilities()
    lp = np.log(np.maximum(p, 1e-300))
    out = []
    for i in range(n):
        without = fused.log_density - weight * (components[:, i] - components[:, n])
        q = np.exp(_normalised(without, fused.cell_area) + math.log(fused.cell_area))
        gain = float(np.sum(p * (lp - np.log(np.maximum(q, 1e-300))))) / math.log(2.0)
        own = DensityMap(_normalised(components[:, i], fused.cell_area), fused.evaluated_nside)
        region = own.credible_region(CONTRADICTION_LEVEL).cells
        mass = float(p[region].sum())
        out.append({"source": sources[i], "information_bits": max(gain, 0.0),
                    f"fused_mass_in_own_{100 * CONTRADICTION_LEVEL:.0f}_region": mass,
                    "contradicts": bool(mass < CONTRADICTION_MASS)})
    return out


def fuse(locator: Locator, embeddings: torch.Tensor | np.ndarray, *, config: AnswerConfig = AnswerConfig(),
         seed: int = 0, truth: np.ndarray | None = None, constraints: Constraints | None = None,
         sources: Sequence[str] | None = None, progress: bool = False, redundancy: float = 0.0) -> Answer:
    """One answer for photos taken at the same place: embeddings ``(n, D)``, the place's ``truth (2,)``
    (lat, lon) when known, the photos' ``redundancy`` (0: independent, the product formula). ``n = 1``
    is exactly the single photo's answer (constrained, when ``constraints`` are given)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != locator.embedding_dim:
        raise ValueError(f"embeddings must have shape (n, {locator.embedding_dim}) for this model, got {emb.shape}")
    n = emb.shape[0]
    if n == 0:
        raise ValueError("fusing needs at least one photo")
    names = list(sources) if sources is not None else [f"photo {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"got {len(names)} sources for {n} photos")
    known = truth is not None and bool(np.isfinite(np.asarray(truth, dtype=np.float64)).all())
    t = np.asarray(truth, dtype=np.float64).reshape(2) if known else None
    active = constraints is not None and constraints.active
    if n == 1:
        answer = answer_embeddings(locator, emb, truth=None if t is None else t[None], config=config, seed=seed,
                                   progress=progress)[0]
        return constrain_answer(answer, constraints, config, seed=seed, recal=locator.calibration) if active else answer
    w = pool_weights(n, redundancy)
    fused, components, log_z = fused_map(locator, emb, config, seed=seed, progress=progress, redundancy=redundancy)
    contributions = _contributions(fused, components, names, float(w[0]))
    evidence: dict[str, Any] = {
        "photos": n, "sources": names, "redundancy": redundancy, "weight": float(w[0]),
        "formula": "p(x | photos) ∝ p(x) prod_i (q(x | photo_i) / p(x))^weight, weight = 1 / (1 + redundancy "
                   "(n - 1)); redundancy 0: the photos are independent given the place",
        "prior": "the model's unconditional density (zero condition)",
        "contributions": contributions,
        "contributions_meaning": "information_bits: what the photo adds to the others (KL divergence from the "
                                 "fusion without it); contradicts: the fused density gives the photo's own 95% "
                                 f"region less than {CONTRADICTION_MASS:g} of its mass"}
    area, prior_mass = None, 1.0
    dmap = fused
    if active:
        dmap, prior_mass, area = constrain_map(fused, constraints)
        evidence.update(constraint_evidence(constraints, prior_mass))
    truth_lp = None
    if t is not None:
        truth_lp = EXCLUDED_LOG_DENSITY
        if not active or bool(constraints.allows(t[None])[0]):
            cond = np.concatenate((emb, locator.unconditional_embedding().numpy()))
            parts = locator.log_prob(cond, np.repeat(t[None], n + 1, axis=0), steps=config.steps,
                                     guidance=config.guidance, seed=seed, **config.solver_options()).numpy()
            truth_lp = float(parts @ w - log_z - math.log(prior_mass))
    # A recalibration fitted on single photos does not apply to fused ones (warned below).
    settings = {**answer_settings(config, None), "seed": seed}
    warnings = [f"{c['source']} contradicts the other photos: the fused density gives its own 95% region "
                f"{c['fused_mass_in_own_95_region']:.2g} of its mass" for c in contributions if c["contradicts"]]
    if locator.calibration is not None:
        warnings.append("the recalibration of credible regions was fitted on single photos and is not applied "
                        "to fused ones")
    answer = answer_from_map(dmap, config, seed=seed, settings=settings, evidence=evidence, truth=t,
                             truth_lp=truth_lp, constraints=constraints if active else None, area=area,
                             warnings=tuple(warnings))
    return replace(answer, source=" + ".join(names))
