"""Baselines that globeflow's models are compared with, evaluated by the same harness.

Training-free: :class:`KNNGeolocator` (retrieval) and uniform guessing (``globeflow baseline``).
Trained by the same trainer (``globeflow train --model vmf | vmf-mixture | geocell | regression``):
:class:`DirectModel` with a head from :mod:`globeflow.baselines.heads` (the kinds: :data:`HEADS`),
answered through :class:`globeflow.inference.DirectGeolocator`.
"""

from .direct import HEAD_KINDS, HEADS, DirectConfig, DirectModel, DirectNetwork
from .heads import GeocellHead, Head, RegressionHead, VMFMixtureHead
from .knn import KNNGeolocator

__all__ = ["KNNGeolocator", "HEADS", "HEAD_KINDS", "DirectConfig", "DirectModel", "DirectNetwork", "Head",
           "GeocellHead", "RegressionHead", "VMFMixtureHead"]
