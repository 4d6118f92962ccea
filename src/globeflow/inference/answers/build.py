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
from ..density import DensityMap
from ..locator import Locator
from ..points import best_expected_geoscore
from .config import AnswerConfig
from .record import Answer, AreaShare, Guess, Localizability, RegionArea, TopPlace, Truth

__all__ = ["localizability", "answer_embeddings", "answer_images", "sample_answers"]

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
                      truth: np.ndarray | None = None, config: AnswerConfig = AnswerConfig(), seed: int = 0,
                      progress: bool = False) -> list[Answer]:
    """Full answers for a batch of images, one :class:`Answer` per embedding ``(B, D)``.

    Args:
        truth: optional ``(B, 2)`` true (lat, lon) degrees: adds errors, the truth's log-density and
            the credible level at which the truth is covered.
    """
    geolocator.require_density()
    guidance, steps = config.guidance, config.steps
    latlon, logp = geolocator.sample_with_log_prob(embeddings, config.num_samples, steps=steps, guidance=guidance,
                                                   seed=seed)
    maps = geolocator.density_maps(embeddings, config.map, steps=steps, guidance=guidance, samples=latlon, seed=seed,
                                   progress=progress)
    geoscore_best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(latlon)))
    truth_lp = None
    if truth is not None:
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
        truth_lp = geolocator.log_prob(embeddings, truth, steps=steps, guidance=guidance, seed=seed).numpy()
    settings = {"num_samples": config.num_samples, "steps": steps, "guidance": guidance, "seed": seed,
                "map": asdict(config.map)}
    return [_answer(dmap, latlon[b].numpy(), logp[b].numpy(), geoscore_best[b].tolist(),
                    None if truth is None else truth[b], None if truth_lp is None else float(truth_lp[b]),
                    config, settings) for b, dmap in enumerate(maps)]


def _answer(dmap: DensityMap, ll: np.ndarray, lp: np.ndarray, best: list[float], t: np.ndarray | None,
            truth_lp: float | None, config: AnswerConfig, settings: dict[str, Any]) -> Answer:
    densest = int(np.argmax(lp))
    modes = dmap.modes(config.top_k, config.min_separation_km)
    mode_ll = np.array([[m.lat, m.lon] for m in modes])
    names = places.reverse_geocode(mode_ll) if len(modes) else []
    codes = places.country_codes(mode_ll) if len(modes) else []
    top = tuple(TopPlace(m.lat, m.lon, m.mass, m.log_density, p, str(cc)) for m, p, cc in zip(modes, names, codes))
    truth = None
    if t is not None and truth_lp is not None:
        level = float(dmap.level_of(t[None])[0])
        truth = Truth(float(t[0]), float(t[1]), truth_lp, level, {str(p): bool(level < p) for p in config.levels})
    return Answer(
        units="nats/sr",
        best_guess=_guess(*best, t, _BEST),
        mode=_guess(*ll[densest], t, "densest of the samples (exact log-densities)", float(lp[densest])),
        grid_max=_guess(*dmap.argmax(), t, f"densest HEALPix cell, nside {dmap.nside}", float(dmap.log_density.max())),
        top_k=top,
        countries=_areas(ll, "country", config.top_areas),
        regions=_areas(ll, "region", config.top_areas),
        cities=_areas(ll, "city", config.top_areas),
        credible_regions=tuple(RegionArea(**dmap.credible_region(p).to_dict()) for p in config.levels),
        localizability=Localizability(**localizability(lp)),
        map={k: v for k, v in dmap.summary(config.levels).items() if k != "credible_regions"},
        settings=settings, truth=truth, samples=ll, log_probs=lp, density_map=dmap)


def answer_images(geolocator: Locator, embeddings: torch.Tensor | np.ndarray, *,
                  truth: np.ndarray | None = None, config: AnswerConfig = AnswerConfig(), seed: int = 0,
                  progress: bool = False) -> list[tuple[dict[str, Any], DensityMap]]:
    """:func:`answer_embeddings` as ``[(answer dict, density map)]``: what the file writers take."""
    answers = answer_embeddings(geolocator, embeddings, truth=truth, config=config, seed=seed, progress=progress)
    return [(a.to_dict(), a.density_map) for a in answers]


def sample_answers(geolocator: Locator, embeddings: torch.Tensor | np.ndarray, config: AnswerConfig,
                   seed: int) -> list[Answer]:
    """Answers of a model without a density: the best guess and the country probabilities of samples."""
    latlon = geolocator.sample(embeddings, config.num_samples, guidance=config.guidance, seed=seed)
    # The point estimate of ``predict`` (best expected GeoScore), from these samples, not a new set.
    best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(latlon.double())))
    return [Answer(best_guess=Guess(float(b[0]), float(b[1]), _BEST), countries=_areas(ll.numpy(), "country",
                                                                                            config.top_areas),
                   samples=ll.numpy()) for b, ll in zip(best.tolist(), latlon)]
