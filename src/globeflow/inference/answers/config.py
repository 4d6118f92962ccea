"""How an answer is computed: :class:`AnswerConfig` (samples, solver steps, guidance, places, map)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ...checks import require_finite
from ...flow.likelihood import LIKELIHOOD_METHODS
from ..density import CREDIBLE_LEVELS, MapConfig

__all__ = ["AnswerConfig", "override", "WITHIN_KM"]

#: Radii (km) of the within-distance probabilities reported for every top place.
WITHIN_KM = (25.0, 200.0, 750.0)


@dataclass(frozen=True)
class AnswerConfig:
    """Settings of an answer (all densities unguided by default: they are the calibrated ones)."""

    num_samples: int = field(default=256, metadata={"help": "samples with exact densities per image"})
    steps: int = field(default=16, metadata={"help": "RK4 steps of the likelihood ODE (solver rk4)"})
    solver: str = field(default="dopri5", metadata={"help": "likelihood solver: rk4 (fixed steps) or an adaptive "
                                                          "pair with an error estimate (dopri5, bosh3)",
                                                  "choices": LIKELIHOOD_METHODS})
    rtol: float = field(default=1e-5, metadata={"help": "relative tolerance of an adaptive solver"})
    atol: float = field(default=1e-5, metadata={"help": "absolute tolerance of an adaptive solver"})
    guidance: float = field(default=0.0, metadata={"help": "guidance scale (0: the calibrated density)"})
    top_k: int = field(default=5, metadata={"help": "distinct places reported"})
    min_separation_km: float = field(default=250.0, metadata={"help": "places closer than this are one place"})
    place_radius_km: float = field(default=200.0, metadata={"help": "a top place's probability is that of "
                                                                     "being within this distance of it"})
    within_km: tuple[float, ...] = field(default=WITHIN_KM, metadata={"cli": False})
    error_check: int = field(default=32, metadata={"help": "densest map cells and densest samples re-solved "
                                                            "tighter (10x the tolerance, or 4x the RK4 steps) to "
                                                            "measure the answer's error (0: off)"})
    max_error_nats: float = field(default=0.05, metadata={"help": "warn when the measured error (--error-check) "
                                                                   "exceeds this"})
    mass_tolerance: float = field(default=0.01, metadata={"help": "warn when the map's mass is further than "
                                                                   "this from 1"})
    top_areas: int = field(default=10, metadata={"help": "countries, regions and cities reported"})
    levels: tuple[float, ...] = field(default=CREDIBLE_LEVELS, metadata={"cli": False})
    map: MapConfig = field(default_factory=MapConfig)

    def solver_options(self) -> dict[str, Any]:
        """The likelihood solver's keyword arguments (``method``, ``rtol``, ``atol``)."""
        return dict(method=self.solver, rtol=self.rtol, atol=self.atol)

    def __post_init__(self) -> None:
        require_finite(self)
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 (the entropy needs a spread), got {self.num_samples}")
        if self.error_check < 0:
            raise ValueError(f"error_check must be >= 0, got {self.error_check}")
        for name in ("steps", "top_k", "top_areas"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.solver not in LIKELIHOOD_METHODS:
            raise ValueError(f"solver must be one of {', '.join(LIKELIHOOD_METHODS)}, got {self.solver!r}")
        for name in ("rtol", "atol", "place_radius_km", "max_error_nats", "mass_tolerance"):
            if not getattr(self, name) > 0:  # also refuses NaN
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not all(r > 0 for r in self.within_km):
            raise ValueError(f"within_km radii must be > 0, got {self.within_km}")
        if not all(0.0 < p <= 1.0 for p in self.levels):
            raise ValueError(f"credible levels must be in (0, 1], got {self.levels}")


def override(config: AnswerConfig, *, top_k: int | None = None, guidance: float | None = None,
             num_samples: int | None = None, steps: int | None = None, nside: int | None = None) -> AnswerConfig:
    """``config`` with the given fields replaced (``None`` keeps the config's; ``nside`` is the map's).

    Steps are those of the fixed-step solver, so giving ``steps`` also selects ``solver="rk4"``.
    """
    changes: dict[str, Any] = {k: v for k, v in dict(top_k=top_k, guidance=guidance, num_samples=num_samples,
                                                    steps=steps).items() if v is not None}
    if steps is not None:
        changes["solver"] = "rk4"
    if nside is not None:
        changes["map"] = replace(config.map, nside=nside)
    return replace(config, **changes) if changes else config
