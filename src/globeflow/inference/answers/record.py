"""The answer for one image, as a typed record: :class:`Answer` and the records it is made of.

Every field says what its number means; :meth:`Answer.to_dict` is the JSON that ``globeflow map``,
``globeflow predict`` on photos and the web API write, and :meth:`Answer.to_geojson` a GeoJSON
feature at the best guess. Fields an answer cannot have (a model without a density has no modes,
credible regions or localizability) are ``None`` and left out of the dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...geo.places import Place
from ..density import DensityMap

__all__ = ["Guess", "TopPlace", "AreaShare", "RegionArea", "Localizability", "Truth", "Answer"]


class _Plain:
    """A record whose dict form is its fields, in order."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Guess:
    """A point answer: ``lat``, ``lon`` degrees, how it was chosen (``method``), its distance to the
    truth when known (``error_km``) and the model's log-density there (nats/sr) when computed."""

    lat: float
    lon: float
    method: str
    error_km: float | None = None
    log_density: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lat": self.lat, "lon": self.lon}
        if self.error_km is not None:
            out["error_km"] = self.error_km
        if self.log_density is not None:
            out["log_density"] = self.log_density
        out["method"] = self.method
        return out


@dataclass(frozen=True)
class TopPlace:
    """One of the distinct places the density points to, at a mode of the map (``lat``, ``lon``, the
    peak cell's ``log_density`` in nats/sr), with the nearest GeoNames place and the country polygon.

    Attributes:
        probability: the probability that the photo was taken within ``radius_km`` of the place.
        within_km: the same probability for other radii, ``{"25": p, "200": p, "750": p}``.
        basin_probability: the mass of the mode's basin of attraction (all cells whose steepest
            ascent ends at this mode): it can cover a continent, so it is *not* "was taken here".
    """

    lat: float
    lon: float
    probability: float
    radius_km: float
    within_km: dict[str, float]
    basin_probability: float
    log_density: float
    place: Place
    country_code: str

    def to_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "probability": self.probability, "radius_km": self.radius_km,
                "within_km": dict(self.within_km), "basin_probability": self.basin_probability,
                "log_density": self.log_density, "place": self.place.to_dict(), "country_code": self.country_code}


@dataclass(frozen=True)
class AreaShare(_Plain):
    """The probability that the photo was taken in one country, region or city (its samples' share);
    ``key`` is the OSV-5M style key, ``""`` (named ``"(sea)"``) for points in no country."""

    key: str
    name: str
    country_code: str
    probability: float


@dataclass(frozen=True)
class RegionArea(_Plain):
    """The ``level`` credible region: the region that holds the photo's location with probability
    ``level``, its area in km^2, its number of cells and the log-density (nats/sr) of its least dense
    cell. Without recalibration (``calibrated`` false) it is the smallest set of map cells holding
    ``level`` of the model's mass, a promise only as good as the model's calibration; with it, the
    smallest set holding ``map_level`` of the mass, the level that held the truth ``level`` of the
    time on the calibration data (:mod:`globeflow.inference.calibration`)."""

    level: float
    area_km2: float
    cells: int
    threshold_log_density: float
    map_level: float | None = None
    calibrated: bool = False


@dataclass(frozen=True)
class Localizability(_Plain):
    """How much the photo says about where it was taken: ``bits`` of information over the uniform
    density (0: none; 1 bit per halving of the area), with its Monte Carlo standard error, the
    entropy in nats/sr and the effective area in km^2 (the uniform region as uncertain)."""

    bits: float
    bits_stderr: float
    entropy_nats: float
    effective_area_km2: float


@dataclass(frozen=True)
class Truth(_Plain):
    """The true location when known: its log-density under the model (nats/sr), the credible level at
    which it is covered (the mass denser than it) and whether each reported region holds it."""

    lat: float
    lon: float
    log_density: float
    credible_level: float
    inside: dict[str, bool]


@dataclass(frozen=True)
class Answer:
    """Where one image was taken, as a distribution.

    Attributes:
        best_guess: the point answer (highest expected GeoScore among the samples).
        countries, regions, cities: probabilities of the areas (largest first).
        mode, grid_max: the densest sample and the densest map cell (models with a density).
        top_k: the most probable distinct places (modes of the map), each with the probability of
            being within ``radius_km`` of it.
        credible_regions: areas of the credible regions (50, 90, 95% by default).
        localizability: information the image gives about its location.
        map: facts of the density map (resolution, mass: 1 for a converged map, cost, the solver's
            error estimates).
        warnings: what makes these numbers less trustworthy than their labels say (a map mass off
            1, a solver error estimate above the bound); empty when there is none.
        settings: how the answer was computed (samples, steps, guidance, seed, map).
        truth: the truth's density and coverage, for labelled inputs.
        units: of every log-density here (``"nats/sr"``).
        samples: ``(S, 2)`` (lat, lon) degrees the answer was computed from; log_probs: their
            exact log-densities ``(S,)`` (models with a density).
        density_map: the HEALPix map (models with a density).
        source: the image's name (path or upload name); image_size: its ``(width, height)``.
        error: why there is no answer (an unreadable image, with ``on_unreadable="report"``).
        evidence: for an answer that combines evidence (:mod:`globeflow.inference.evidence`): the
            photos fused and what each contributed, the constraints and the prior mass of the
            allowed area; None for a plain answer.
    """

    best_guess: Guess | None = None
    countries: tuple[AreaShare, ...] | None = None
    mode: Guess | None = None
    grid_max: Guess | None = None
    top_k: tuple[TopPlace, ...] | None = None
    regions: tuple[AreaShare, ...] | None = None
    cities: tuple[AreaShare, ...] | None = None
    credible_regions: tuple[RegionArea, ...] | None = None
    localizability: Localizability | None = None
    map: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    warnings: tuple[str, ...] | None = None
    truth: Truth | None = None
    units: str | None = None
    samples: np.ndarray | None = field(default=None, repr=False, compare=False)
    log_probs: np.ndarray | None = field(default=None, repr=False, compare=False)
    density_map: DensityMap | None = field(default=None, repr=False, compare=False)
    source: str | None = None
    image_size: tuple[int, int] | None = None
    error: str | None = None
    evidence: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether there is an answer (``error`` is None)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-able data: the fields that are set, in the order of the report format
        (units, best_guess, mode, grid_max, top_k, countries, regions, cities, credible_regions,
        localizability, map, settings, warnings, truth, evidence), or ``{"source", "error"}`` for an unreadable image."""
        if self.error is not None:
            return {"source": self.source, "error": self.error}
        out: dict[str, Any] = {}
        for name in ("units", "best_guess", "mode", "grid_max", "top_k", "countries", "regions", "cities",
                     "credible_regions", "localizability", "map", "settings", "warnings", "truth", "evidence"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple):
                out[name] = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
            elif hasattr(value, "to_dict"):
                out[name] = value.to_dict()
            else:
                out[name] = value
        return out

    def to_geojson(self, properties: dict[str, Any] | None = None) -> dict[str, Any]:
        """A GeoJSON Feature: the best guess as a Point, ``properties`` then :meth:`to_dict` as its
        properties (a feature without geometry for an unreadable image)."""
        geometry = None if self.best_guess is None else {"type": "Point",
                                                         "coordinates": [self.best_guess.lon, self.best_guess.lat]}
        return {"type": "Feature", "geometry": geometry, "properties": {**(properties or {}), **self.to_dict()}}
