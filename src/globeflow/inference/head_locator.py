""":class:`DirectGeolocator`: the user-facing facade of a trained baseline, answering the questions a
:class:`~globeflow.inference.geolocator.Geolocator` answers (points, samples, exact log-densities) so that ``globeflow
predict / evaluate / log-prob`` treat baselines and flow models alike.

A density head's point answer uses the flow models' rule, the best expected GeoScore (see
:mod:`globeflow.inference.points`), with the head's own candidates (component means, refined cells) added to
the samples: for a single vMF the mean direction is then the answer, as it should be.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import geo
from ..baselines.direct import DirectModel
from ..baselines.heads import RegressionHead
from ..flow.likelihood import KM2_OFFSET
from .locator import Locator, Seed
from .points import expected_geoscore

__all__ = ["DirectGeolocator", "DIRECT_STRATEGIES"]

DIRECT_STRATEGIES = ("geoscore", "mode", "single")


class DirectGeolocator(Locator):
    """A trained baseline (vmf, vmf-mixture, geocell, regression) on one device."""

    model: DirectModel
    model_class = DirectModel  # ``config`` is a DirectConfig

    @property
    def has_density(self) -> bool:
        return self.model.has_density

    def _no_density_reason(self) -> str:
        return "direct regression predicts a point, not a distribution"

    @torch.no_grad()
    def _outputs(self, embeddings: Tensor | np.ndarray) -> Tensor:
        return self.model.network(self._embeddings(embeddings))

    @staticmethod
    def _check_solver_args(solver: dict[str, Any]) -> None:
        # Solver settings are accepted so that callers can treat every model alike; guidance, though,
        # would change a flow model's answer, so asking for it here is an error rather than a no-op.
        if solver.get("guidance"):
            raise ValueError(f"guidance ({solver['guidance']}) applies to flow models only, not to trained baselines")
        if solver.get("protocol", "globeflow") != "globeflow":
            raise ValueError(f"the {solver['protocol']} sampling protocol applies to flow models only, "
                             "not to trained baselines")

    def sample_xyz(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, seed: Seed = 0,
                   **solver: Any) -> Tensor:
        """Exact samples ``(B, S, 3)`` on the model's device (density heads only)."""
        return self._sample_outputs(embeddings, num_samples, seed, solver)[1]

    def _sample_outputs(self, embeddings: Tensor | np.ndarray, num_samples: int, seed: Seed,
                        solver: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """``(network outputs (B, out_dim), samples (B, S, 3))``: one network pass for both."""
        self.require_density()
        self._check_solver_args(solver)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        out = self._outputs(embeddings)
        return out, self._head_samples(out, num_samples, seed)

    def _head_samples(self, out: Tensor, num_samples: int, seed: Seed) -> Tensor:
        """``(B, S, 3)`` samples of the head for outputs ``(B, out_dim)`` (per-row seeds: each row its own)."""
        return self._per_row(seed, out.shape[0], lambda rows, gen: self.model.head.sample(out[rows], num_samples,
                                                                                          generator=gen))

    def sample(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, seed: Seed = 0,
               **solver: Any) -> Tensor:
        """Samples ``(B, S, 2)`` degrees on the CPU."""
        return geo.xyz_to_latlon(self.sample_xyz(embeddings, num_samples, seed=seed, **solver).double()).cpu()

    def predict(self, embeddings: Tensor | np.ndarray, *, strategy: str = "geoscore", num_samples: int = 256,
                seed: Seed = 0, **solver: Any) -> Tensor:
        """One best guess per embedding, ``(B, 2)`` degrees on the CPU.

        ``geoscore`` (default): the candidate (head candidates and ``num_samples`` samples) with the
        best expected GeoScore under the model. ``mode``: the densest head candidate (a vMF mean, the
        most probable cell's centre). ``single``: one sample. Regression models have one answer.
        """
        self._check_solver_args(solver)
        if isinstance(self.model.head, RegressionHead):
            return geo.xyz_to_latlon(self.model.head.point(self._outputs(embeddings)).double()).cpu()
        if strategy not in DIRECT_STRATEGIES:
            raise ValueError(f"point strategy {strategy!r} is not available for a {self.config.kind} baseline; "
                             f"use one of {', '.join(DIRECT_STRATEGIES)}")
        out = self._outputs(embeddings)
        head = self.model.head
        if strategy == "mode":
            best = head.candidates(out)[:, 0]
        else:
            samples = self._head_samples(out, num_samples if strategy == "geoscore" else 1, seed).double()
            if strategy == "single":
                best = samples[:, 0]
            else:
                cand = torch.cat((head.candidates(out).double(), samples), dim=1)
                score = expected_geoscore(cand, samples)
                best = cand[torch.arange(len(cand)), score.argmax(dim=1)]
        return geo.xyz_to_latlon(best.double()).cpu()

    def log_prob(self, embeddings: Tensor | np.ndarray, latlon: Tensor | np.ndarray, *, units: str = "sr",
                 **solver: Any) -> Tensor:
        """Closed-form log-density at one location per embedding, ``(B,)`` on the CPU (nats/sr or
        nats/km^2). Solver arguments (steps, method, seed) are accepted and ignored."""
        self._check_likelihood_args(units)
        self._check_solver_args(solver)
        emb = self._embeddings(embeddings)
        x = geo.latlon_to_xyz(self._latlon(latlon, emb.shape[0])).to(self.device, torch.float64)
        with torch.no_grad():
            lp = self.model.head.log_prob(self.model.network(emb).double(), x.unsqueeze(1))[:, 0]
        return lp.cpu() + (KM2_OFFSET if units == "km2" else 0.0)

    def sample_with_log_prob(self, embeddings: Tensor | np.ndarray, num_samples: int = 256, *, units: str = "sr",
                             seed: Seed = 0, **solver: Any) -> tuple[Tensor, Tensor]:
        """Samples ``(B, S, 2)`` degrees and their log-densities ``(B, S)``, on the CPU."""
        self._check_likelihood_args(units)
        out, xyz = self._sample_outputs(embeddings, num_samples, seed, solver)
        xyz = xyz.double()
        with torch.no_grad():
            lp = self.model.head.log_prob(out.double(), xyz)
        return geo.xyz_to_latlon(xyz).cpu(), lp.cpu() + (KM2_OFFSET if units == "km2" else 0.0)
