"""Baselines that globeflow's models are compared with, evaluated by the same harness."""

from .knn import KNNGeolocator

__all__ = ["KNNGeolocator"]
