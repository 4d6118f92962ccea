"""Baselines that globeflow's models are compared with, evaluated by the same harness.

Training-free: :class:`KNNGeolocator` (retrieval) and uniform guessing (``globeflow baseline``).
Trained by the same trainer (``globeflow train --model vmf | vmf-mixture | geocell | regression``):
:class:`DirectModel` with a head from :mod:`globeflow.baselines.heads`, answered through
:class:`globeflow.baselines.locator.DirectGeolocator`.
"""

from .direct import HEAD_KINDS, DirectConfig, DirectModel
from .knn import KNNGeolocator

__all__ = ["KNNGeolocator", "HEAD_KINDS", "DirectConfig", "DirectModel"]
