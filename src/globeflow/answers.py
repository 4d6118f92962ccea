"""The answers people want from a density: best guesses, places, areas, credible regions, localizability.

For each image, :func:`answer_images` combines two views of the same model density:

- ``S`` samples with their exact log-densities (one forward solve): the mode-seeking guess (the
  densest sample), the expected-GeoScore guess, the probabilities of countries, regions and cities
  (the fraction of samples falling in each), and the entropy behind the localizability score;
- the coarse-to-fine HEALPix map (:mod:`globeflow.density`): the grid maximum, the top-k modes with
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
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import geometry as geo
from .density import CREDIBLE_LEVELS, DensityMap, MapConfig
from .geometry import EARTH_RADIUS_KM
from .likelihood import LOG_UNIFORM
from .points import best_expected_geoscore

if TYPE_CHECKING:
    from .api import Geolocator

__all__ = ["AnswerConfig", "localizability", "answer_images"]


@dataclass(frozen=True)
class AnswerConfig:
    """Settings of :func:`answer_images` (all densities unguided by default: they are the calibrated ones)."""

    num_samples: int = 256
    steps: int = 16
    guidance: float = 0.0
    top_k: int = 5
    min_separation_km: float = 250.0
    top_areas: int = 10
    levels: tuple[float, ...] = CREDIBLE_LEVELS
    map: MapConfig = field(default_factory=MapConfig)

    def __post_init__(self) -> None:
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 (the entropy needs a spread), got {self.num_samples}")
        for name in ("steps", "top_k", "top_areas"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not all(0.0 < p <= 1.0 for p in self.levels):
            raise ValueError(f"credible levels must be in (0, 1], got {self.levels}")


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


def _point(lat: float, lon: float, truth: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"lat": float(lat), "lon": float(lon)}
    if truth is not None:
        out["error_km"] = float(geo.haversine_km(torch.tensor([lat, lon], dtype=torch.float64),
                                                 torch.as_tensor(truth, dtype=torch.float64)))
    return out


def answer_images(geolocator: "Geolocator", embeddings: torch.Tensor | np.ndarray, *,
                  truth: np.ndarray | None = None, config: AnswerConfig = AnswerConfig(), seed: int = 0,
                  progress: bool = False) -> list[tuple[dict[str, Any], DensityMap]]:
    """Full answers for a batch of images: ``[(report dict, density map)]``, one per embedding.

    Args:
        embeddings: ``(B, D)``.
        truth: optional ``(B, 2)`` true (lat, lon) degrees: adds errors, the truth's log-density and
            the credible level at which the truth is covered.
    """
    from . import places

    geolocator.require_density()
    w, steps = config.guidance, config.steps
    latlon, logp = geolocator.sample_with_log_prob(embeddings, config.num_samples, steps=steps, cfg=w, seed=seed)
    maps = geolocator.density_maps(embeddings, config.map, steps=steps, cfg=w, samples=latlon, seed=seed,
                                   progress=progress)
    geoscore_best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(latlon)))
    truth_lp = None
    if truth is not None:
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
        truth_lp = geolocator.log_prob(embeddings, truth, steps=steps, cfg=w, seed=seed).numpy()
    out = []
    for b, dmap in enumerate(maps):
        t = None if truth is None else truth[b]
        ll, lp = latlon[b].numpy(), logp[b].numpy()
        densest = int(np.argmax(lp))
        g_lat, g_lon = geoscore_best[b].tolist()
        modes = dmap.modes(config.top_k, config.min_separation_km)
        mode_ll = np.array([[m.lat, m.lon] for m in modes])
        names = places.reverse_geocode(mode_ll) if len(modes) else []
        codes = places.country_codes(mode_ll) if len(modes) else []
        top = []
        for m, p, cc in zip(modes, names, codes):
            d = m.to_dict()
            d["place"] = p.to_dict()
            d["country_code"] = str(cc)
            top.append(d)
        report: dict[str, Any] = {
            "units": "nats/sr",
            "best_guess": {**_point(g_lat, g_lon, t), "method": "highest expected GeoScore among samples"},
            "mode": {**_point(*ll[densest], t), "log_density": float(lp[densest]),
                     "method": "densest of the samples (exact log-densities)"},
            "grid_max": {**_point(*dmap.argmax(), t), "log_density": float(dmap.log_density.max()),
                         "method": f"densest HEALPix cell, nside {dmap.nside}"},
            "top_k": top,
            "countries": places.area_probabilities(ll, "country", top=config.top_areas),
            "regions": places.area_probabilities(ll, "region", top=config.top_areas),
            "cities": places.area_probabilities(ll, "city", top=config.top_areas),
            "credible_regions": [dmap.credible_region(p).to_dict() for p in config.levels],
            "localizability": localizability(lp),
            "map": {k: v for k, v in dmap.summary(config.levels).items() if k != "credible_regions"},
            "settings": {"num_samples": config.num_samples, "steps": steps, "guidance": w, "seed": seed,
                         "map": asdict(config.map)},
        }
        if t is not None and truth_lp is not None:
            level = float(dmap.level_of(t[None])[0])
            report["truth"] = {"lat": float(t[0]), "lon": float(t[1]), "log_density": float(truth_lp[b]),
                               "credible_level": level,
                               "inside": {str(p): bool(level < p) for p in config.levels}}
        out.append((report, dmap))
    return out

