"""Point estimates from samples.

The GeoScore of a guess ``y`` for a true location ``x`` is ``5000 exp(-d(y, x) / 1492.7 km)``, so the
guess with the best *expected* GeoScore under the model's distribution ``p`` maximises
``E_{x~p}[exp(-d(y, x) / 1492.7)]``: a kernel density of ``p`` with that kernel. With samples from
``p`` we estimate it at every sample and keep the best one. This is "the sample in the densest
neighbourhood of the others" with the neighbourhood that the metric itself defines, i.e. the
Bayes-optimal decision under the model, up to Monte Carlo error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..geo.distance import EARTH_RADIUS_KM, GEOSCORE_SCALE_KM
from ..geo.sphere import dist

__all__ = ["expected_geoscore", "best_expected_geoscore"]


def expected_geoscore(candidates: Tensor, samples: Tensor) -> Tensor:
    """Monte Carlo expected GeoScore of each candidate: ``(B, C, 3), (B, S, 3) -> (B, C)``."""
    d_km = dist(candidates.unsqueeze(2), samples.unsqueeze(1)) * EARTH_RADIUS_KM
    return 5000.0 * torch.exp(-d_km / GEOSCORE_SCALE_KM).mean(dim=2)


def best_expected_geoscore(samples: Tensor, chunk: int = 64) -> Tensor:
    """For each row the sample with the highest expected GeoScore against all samples of that row.

    Args:
        samples (Tensor): ``(B, S, 3)`` unit vectors.
        chunk: rows processed at once (memory is ``chunk * S * S``).
    Returns:
        Tensor: ``(B, 3)``.
    """
    out = []
    for part in samples.split(chunk):
        score = expected_geoscore(part, part)
        best = score.argmax(dim=1)
        out.append(part[torch.arange(len(part)), best])
    return torch.cat(out) if out else samples.new_zeros(0, 3)
