"""The known-answer task's true densities behind the :class:`~globeflow.inference.locator.Locator`
interface: what a perfect model would answer, so that the answer machinery (maps, fusion,
constraints) can be checked against closed forms, free of any model's error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ... import geo
from ...inference.locator import Locator, Seed
from .known_answer import KnownAnswerTask

__all__ = ["TrueLocator"]


class TrueLocator(Locator):
    """A :class:`Locator` whose density is the task's true ``p(x | embedding)``; the zero embedding
    is the unconditional one, with the task's marginal ``p(x) = mean_c p(x | c)`` (classes uniform)."""

    def __init__(self, task: KnownAnswerTask):  # noqa: D107 -- no network to move or evaluate
        self.task = task
        self.device = torch.device("cpu")
        self.encoder = None
        self.source = {"true": "known-answer task"}
        self.calibration = None

    @property
    def embedding_dim(self) -> int:
        return self.task.embed_dim

    @property
    def has_density(self) -> bool:
        return True

    def unconditional_embedding(self) -> Tensor:
        return torch.zeros(1, self.embedding_dim)

    def _log_density(self, x: Tensor, emb: Tensor) -> Tensor:
        """``x (B, P, 3)``, ``emb (B, D)`` -> ``(B, P)`` float64; zero rows get the marginal."""
        zero = (emb == 0).all(dim=1)
        out = torch.empty(x.shape[:2], dtype=torch.float64)
        if (~zero).any():
            out[~zero] = self.task.log_prob_given_embedding(x[~zero], emb[~zero])
        if zero.any():
            out[zero] = torch.logsumexp(self.task.log_prob_all(x[zero]), dim=-1) - math.log(self.task.num_classes)
        return out

    def log_density_points(self, emb: Tensor, x: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, int, np.ndarray]:
        e = torch.as_tensor(np.asarray(emb), dtype=torch.float32)
        values = self._log_density(torch.from_numpy(np.asarray(x, dtype=np.float64)), e).numpy()
        return values, 0, np.zeros_like(values)

    def log_prob(self, embeddings: Tensor | np.ndarray, latlon: Tensor | np.ndarray, **kwargs: Any) -> Tensor:
        e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        x = geo.latlon_to_xyz(self._latlon(latlon, e.shape[0]))
        return self._log_density(x[:, None], e)[:, 0]

    def sample(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, seed: Seed = 0,
               **kwargs: Any) -> Tensor:
        e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        labels = self.task.class_log_posterior(e).argmax(dim=1)
        gen = torch.Generator().manual_seed(0 if seed is None or not isinstance(seed, int) else seed)
        x = self.task.sample_locations(labels.repeat_interleave(num_samples), generator=gen)
        return geo.xyz_to_latlon(x).reshape(e.shape[0], num_samples, 2)
