"""The answers people want from a density: best guesses, places, areas, credible regions, localizability.

For each image, :func:`answer_embeddings` combines two views of the same model density:

- ``S`` samples with their exact log-densities (one forward solve): the mode-seeking guess (the
  densest sample), the expected-GeoScore guess, the probabilities of countries, regions and cities
  (the fraction of samples falling in each), and the entropy behind the localizability score;
- the coarse-to-fine HEALPix map (:mod:`globeflow.inference.density`): the grid maximum, the top-k modes with
  their masses, and the credible regions with their areas.

**Localizability** is the information the photo gives about its location: ``log 4 pi - H`` where
``H = -E_q[log q(x)]`` is the differential entropy of the model density (nats per steradian),
estimated by Monte Carlo over the samples' exact log-densities; it is reported in bits, so
1 bit = "half of the globe", ~9 bits = a region of ~1,000,000 km^2 (a country), ~19 bits = ~1,000
km^2 (a city). It is >= 0 for every distribution on the sphere, 0 for the uniform one. The
effective area ``exp(H) R^2`` km^2 says the same in area: the size of the uniform region as uncertain
as the model. Sort a collection by it to see which photos can be placed.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ... import geo
from ...geo import places
from ...geo.distance import EARTH_RADIUS_KM
from ...geo.distributions import LOG_UNIFORM
from ..calibration import Recalibration
from ..density import DensityMap, hpd_region, kernel_map
from ..locator import Locator, Seed, first_seed, seed_list
from ..points import best_expected_geoscore
from .config import AnswerConfig
from .record import Answer, AreaShare, Guess, Localizability, RegionArea, TopPlace, Truth

__all__ = ["localizability", "answer_embeddings", "answer_images", "sample_answers", "assemble_answer", "answer_settings"]

_BEST = "highest expected GeoScore among samples"


def localizability(log_prob_samples: np.ndarray) -> dict[str, float]:
    """Entropy-based localizability from samples' exact log-densities ``(S,)`` (nats/sr).

    Returns the Monte Carlo entropy with its standard error, the information gain over the uniform
    density in bits (the score), and the effective area in km^2.
    """
    lp = np.asarray(log_prob_samples, dtype=np.float64).reshape(-1)
    if lp.size < 2 or not np.isfinite(lp).all():
        raise ValueError("localizability needs at least 2 finite sample log-densities")
    h = float(-lp.mean())
    se = float(lp.std(ddof=1) / math.sqrt(lp.size))
    return {"bits": (-LOG_UNIFORM - h) / math.log(2.0), "bits_stderr": se / math.log(2.0), "entropy_nats": h,
            "effective_area_km2": math.exp(h) * EARTH_RADIUS_KM ** 2}


def _guess(lat: float, lon: float, truth: np.ndarray | None, method: str, log_density: float | None = None) -> Guess:
    error = None
    if truth is not None:
        error = float(geo.haversine_km(torch.tensor([lat, lon], dtype=torch.float64),
                                       torch.as_tensor(truth, dtype=torch.float64)))
    return Guess(float(lat), float(lon), method, error, log_density)


def _areas(latlon: np.ndarray, level: str, top: int) -> tuple[AreaShare, ...]:
    return tuple(AreaShare(**a) for a in places.area_probabilities(latlon, level, top=top))


def answer_embeddings(geolocator: Locator, embeddings: torch.Tensor | np.ndarray, *,
                      truth: np.ndarray | None = None, config: AnswerConfig = AnswerConfig(), seed: Seed = 0,
                      progress: bool = False) -> list[Answer]:
    """Full answers for a batch of images, one :class:`Answer` per embedding ``(B, D)``.

    Args:
        truth: optional ``(B, 2)`` true (lat, lon) degrees: adds errors, the truth's log-density and
            the credible level at which the truth is covered (rows with NaN have no truth).
        seed: one int for the batch, or one int per row (``row_seeds``: each answer then depends on
            its own row only).
    """
    geolocator.require_density()
    guidance, steps = config.guidance, config.steps
    solver = config.solver_options()
    # ``seed``: one int for the batch, or one per row (then an answer never depends on its batch);
    # what is not drawn per row (only Hutchinson probes) takes the first.
    one_seed = first_seed(seed)
    latlon, logp = geolocator.sample_with_log_prob(embeddings, config.num_samples, steps=steps, guidance=guidance,
                                                   seed=seed, **solver)
    if config.map.source == "samples":
        xyz = geo.latlon_to_xyz(latlon.double()).numpy()
        maps = [kernel_map(xyz[b], logp[b].numpy(), config.map.nside) for b in range(xyz.shape[0])]
    else:
        maps = geolocator.density_maps(embeddings, config.map, steps=steps, guidance=guidance, samples=latlon,
                                       seed=one_seed, progress=progress, **solver)
    checks = _error_check(geolocator, embeddings, maps, latlon.numpy(), logp.numpy(), config, one_seed)
    geoscore_best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(latlon)))
    truth_lp = None
    if truth is not None:
        # Rows without a location (NaN) get no truth section; the others their log-density.
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
        known = np.isfinite(truth).all(axis=1)
        truth_lp = np.full(len(truth), np.nan)
        if known.any():
            emb = np.asarray(embeddings, dtype=np.float32)[known]
            truth_lp[known] = geolocator.log_prob(emb, truth[known], steps=steps, guidance=guidance, seed=one_seed,
                                                  **solver).numpy()
    recal = geolocator.calibration
    settings = answer_settings(config, recal)
    seeds = seed_list(seed, len(maps))
    answers = []
    for b, dmap in enumerate(maps):
        known = truth is not None and bool(np.isfinite(truth[b]).all())
        answers.append(assemble_answer(dmap, latlon[b].numpy(), logp[b].numpy(), checks[b], geoscore_best[b].tolist(),
                               truth[b] if known else None, float(truth_lp[b]) if known else None, config,
                               {**settings, "seed": seeds[b]}, recal))
    return answers


def answer_settings(config: AnswerConfig, recal: Recalibration | None) -> dict[str, Any]:
    """How an answer was computed, as its ``settings`` record (the seed is added per answer)."""
    return {"num_samples": config.num_samples, "steps": config.steps, **config.solver_options(),
            "guidance": config.guidance, "place_radius_km": config.place_radius_km, "map": asdict(config.map),
            "calibration": None if recal is None else recal.describe()}


def _error_check(geolocator: Locator, embeddings: torch.Tensor | np.ndarray, maps: list[DensityMap],
                 latlon: np.ndarray, logp: np.ndarray, config: AnswerConfig,
                 seed: int) -> list[tuple[float | None, float | None]]:
    """Per image, the measured error (nats) of its ``error_check`` densest exact map cells and densest
    samples: the largest difference to a tighter solve. After an adaptive solver the reference is
    dopri5 at a 10x tighter tolerance: the solver's own error estimates add up local errors only, and
    the backward flow amplifies them (it expands): on the dim-256 two-mode map they said 0.006 where
    the error was 0.29. After RK4 it is RK4 with 4x the steps (error ~4^-4 of it where the field is
    smooth, and measured 2-4x smaller where it is stiff), as cheap as the answer's own samples:
    a tight adaptive solve of a stiff field takes hundreds of small steps."""
    n = config.error_check
    if n == 0:
        return [(None, None)] * len(maps)
    if config.solver == "rk4":
        reference = dict(method="rk4", steps=4 * config.steps)
    else:
        tol = min(config.rtol, config.atol) / 10
        reference = dict(method="dopri5", rtol=tol, atol=tol)
    emb, pts, parts = np.asarray(embeddings, dtype=np.float32), [], []
    for b, dmap in enumerate(maps):
        exact = np.flatnonzero(dmap.evaluated_nside == dmap.nside)
        cells = exact[np.argsort(-dmap.log_density[exact], kind="stable")[:n]]
        best = np.argsort(-logp[b], kind="stable")[:n]
        pts.append(np.concatenate((dmap.centers_latlon(cells), latlon[b][best])))
        parts.append((dmap.log_density[cells], logp[b][best]))
    rows = np.repeat(np.arange(len(maps)), [len(p) for p in pts])
    ref = geolocator.log_prob(emb[rows], np.concatenate(pts), guidance=config.guidance, seed=seed,
                              **reference).numpy()
    out, start = [], 0
    for cells_lp, samples_lp in parts:
        k = len(cells_lp)
        c, s = ref[start:start + k], ref[start + k:start + k + len(samples_lp)]
        start += k + len(samples_lp)
        out.append((float(np.abs(cells_lp - c).max()) if k else None, float(np.abs(samples_lp - s).max())))
    return out


def _regions(dmap: DensityMap, lp: np.ndarray, levels: tuple[float, ...],
             recal: Recalibration | None) -> tuple[RegionArea, ...]:
    """The credible regions at the nominal levels; with a recalibration, each is the model's own
    region at the recalibrated level (``map_level``). On a map estimated from the samples, the area
    and edge density are the samples' own (:func:`~globeflow.inference.density.hpd_region`: exact
    densities, no kernel smoothing, which widens regions) and ``cells`` counts the drawn region."""
    out = []
    for p in levels:
        q = p if recal is None else recal.level(p)
        d = dmap.credible_region(q).to_dict()
        if dmap.source == "samples":
            t, area = hpd_region(lp, q)
            d.update(area_km2=area * EARTH_RADIUS_KM ** 2, threshold_log_density=t)
        out.append(RegionArea(**{**d, "level": p}, map_level=q, calibrated=recal is not None))
    return tuple(out)


def _fraction_within(samples: np.ndarray, lat: float, lon: float, radius_km: float) -> float:
    """The fraction of ``samples (S, 2)`` degrees within ``radius_km`` of ``(lat, lon)``."""
    d = geo.haversine_km(torch.as_tensor(samples, dtype=torch.float64),
                         torch.tensor([lat, lon], dtype=torch.float64).expand(len(samples), 2))
    return float((d <= radius_km).double().mean())


def _top_places(dmap: DensityMap, samples: np.ndarray, config: AnswerConfig) -> tuple[TopPlace, ...]:
    """The map's modes with their within-radius probabilities: integrated over the map when its values
    are solved, the samples' fraction (the unbiased Monte Carlo estimate, not the kernel-smoothed one)
    when the map is itself estimated from them."""
    modes = dmap.modes(config.top_k, config.min_separation_km)
    if not modes:
        return ()
    mode_ll = np.array([[m.lat, m.lon] for m in modes])
    names, codes = places.reverse_geocode(mode_ll), places.country_codes(mode_ll)
    within_fn = dmap.probability_within
    if dmap.source == "samples":
        within_fn = lambda lat, lon, r: _fraction_within(samples, lat, lon, r)  # noqa: E731
    out = []
    for m, name, cc in zip(modes, names, codes):
        within = {f"{r:g}": within_fn(m.lat, m.lon, r) for r in config.within_km}
        radius = within.get(f"{config.place_radius_km:g}")
        if radius is None:
            radius = within_fn(m.lat, m.lon, config.place_radius_km)
        out.append(TopPlace(m.lat, m.lon, radius, config.place_radius_km, within, m.mass, m.log_density, name,
                            str(cc)))
    return tuple(out)


def _warnings(dmap: DensityMap, check: tuple[float | None, float | None], config: AnswerConfig) -> tuple[str, ...]:
    """Why the numbers may be less exact than their labels say (empty when they are within bounds)."""
    out = []
    mass = dmap.mass()
    if abs(mass - 1.0) > config.mass_tolerance:
        out.append(f"the density map's total mass is {mass:.4f}, not 1 within {config.mass_tolerance:g}: "
                   "probabilities are renormalised, but densities are off by about log(mass)")
    errors = [e for e in check if e is not None]
    if errors and max(errors) > config.max_error_nats:
        fix = "more --steps" if config.solver == "rk4" else "tighten --rtol/--atol"
        out.append(f"the densities are off by up to {max(errors):.3g} nats against a tighter solve (bound "
                   f"{config.max_error_nats:g}): {fix}")
    if not errors:
        out.append("no numerical error check (--error-check 0)")
    return tuple(out)


def assemble_answer(dmap: DensityMap, ll: np.ndarray, lp: np.ndarray, check: tuple[float | None, float | None],
                    best: list[float], t: np.ndarray | None, truth_lp: float | None, config: AnswerConfig,
                    settings: dict[str, Any], recal: Recalibration | None) -> Answer:
    """One answer from its parts: the map, samples ``ll (S, 2)`` with log-densities ``lp (S,)``, the
    measured errors ``check`` (map cells, samples), the best guess ``best`` [lat, lon], the truth
    ``t (2,)`` and its log-density (or None)."""
    densest = int(np.argmax(lp))
    top = _top_places(dmap, ll, config)
    facts = {k: v for k, v in dmap.summary(config.levels).items() if k != "credible_regions"}
    facts["densest_cells_error_nats"], facts["samples_error_nats"] = check
    truth = None
    if t is not None and truth_lp is not None:
        # The mass denser than the truth: off the map's cells, or (a map estimated from the samples)
        # the samples' fraction denser than it, the HPD rank that calibration uses.
        level = float(dmap.level_of(t[None])[0]) if dmap.source == "ode" else float(np.mean(lp > truth_lp))
        inside = {str(p): bool(level < (p if recal is None else recal.level(p))) for p in config.levels}
        truth = Truth(float(t[0]), float(t[1]), truth_lp, level, inside)
    return Answer(
        units="nats/sr",
        best_guess=_guess(*best, t, _BEST),
        mode=_guess(*ll[densest], t, "densest of the samples (exact log-densities)", float(lp[densest])),
        grid_max=_guess(*dmap.argmax(), t, f"densest HEALPix cell, nside {dmap.nside}", float(dmap.log_density.max())),
        top_k=top,
        countries=_areas(ll, "country", config.top_areas),
        regions=_areas(ll, "region", config.top_areas),
        cities=_areas(ll, "city", config.top_areas),
        credible_regions=_regions(dmap, lp, config.levels, recal),
        localizability=Localizability(**localizability(lp)),
        map=facts, settings=settings, warnings=_warnings(dmap, check, config), truth=truth, samples=ll,
        log_probs=lp, density_map=dmap)


def answer_images(geolocator: Locator, embeddings: torch.Tensor | np.ndarray, *,
                  truth: np.ndarray | None = None, config: AnswerConfig = AnswerConfig(), seed: Seed = 0,
                  progress: bool = False) -> list[tuple[dict[str, Any], DensityMap]]:
    """:func:`answer_embeddings` as ``[(answer dict, density map)]``: what the file writers take."""
    answers = answer_embeddings(geolocator, embeddings, truth=truth, config=config, seed=seed, progress=progress)
    return [(a.to_dict(), a.density_map) for a in answers]


def sample_answers(geolocator: Locator, embeddings: torch.Tensor | np.ndarray, config: AnswerConfig,
                   seed: Seed) -> list[Answer]:
    """Answers of a model without a density: the best guess and the country probabilities of samples."""
    latlon = geolocator.sample(embeddings, config.num_samples, guidance=config.guidance, seed=seed)
    # The point estimate of ``predict`` (best expected GeoScore), from these samples, not a new set.
    best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(latlon.double())))
    return [Answer(best_guess=Guess(float(b[0]), float(b[1]), _BEST), countries=_areas(ll.numpy(), "country",
                                                                                            config.top_areas),
                   samples=ll.numpy()) for b, ll in zip(best.tolist(), latlon)]
