"""How to draw samples: :class:`SamplerConfig` (solver, steps, guidance scale) and the presets.

Each probability path has its default sampler (globeflow's, chosen on the known-answer benchmark)
and the published package's (for reproducing published numbers); see :mod:`globeflow.flow.paths`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checks import require_finite

__all__ = ["SamplerConfig", "STEPS", "PROTOCOLS"]

#: How a sampler moves. On the sphere (rfm): Munthe-Kaas rotations, the retraction (projection after
#: each step), or the published package's step. In R^3 (fm, diffusion): ``exp`` keeps the states in
#: R^3 and projects once at the end; ``retraction`` projects every step onto the sphere (an ablation).
STEPS = ("exp", "retraction", "published")
#: Sampler presets: globeflow's defaults per model kind, or the published package's.
PROTOCOLS = ("globeflow", "published")


@dataclass(frozen=True)
class SamplerConfig:
    """How to draw samples: solver, number of steps, guidance scale.

    ``step="published"`` is the published sampler's step, for reproducing published samples. With
    ``euler`` (rfm): ``projx(x + h * output)`` with the raw, *unprojected* network output (its normal
    component changes the step length, which is why ``exp`` and ``retraction`` project onto the
    tangent plane first). With ``ddim`` (diffusion): each coordinate of the clean estimate clamped to
    [-1, 1], as the published DDIM does, instead of globeflow's clip of its norm to 1 (the two differ
    inside the ball too: (0.9, 0.9, 0) is kept by one and shortened by the other). Guided output is
    ``(1 + guidance) f_cond - guidance f_uncond``.
    """

    method: str = field(default="rk4", metadata={"help": "solver: euler, midpoint, rk4 (rfm, fm) or ddim (diffusion)"})
    steps: int = field(default=16, metadata={"help": "solver steps"})
    guidance: float = field(default=0.0, metadata={"help": "classifier-free guidance scale"})
    step: str = field(default="exp", metadata={"help": "how a sampler moves: exp (sphere: rotations; R^3: free, projected "
                                                       "at the end), retraction (projected after every step) "
                                                       "or published"})

    def __post_init__(self) -> None:
        require_finite(self)
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")
        if self.step not in STEPS:
            raise ValueError(f"sampler step must be 'exp', 'retraction' or 'published', got {self.step!r}")
        if self.step == "published" and self.method not in ("euler", "ddim"):
            raise ValueError(f"the published step is the published Euler or DDIM step; use method 'euler' or "
                             f"'ddim', not {self.method!r}")
