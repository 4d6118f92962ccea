"""Density maps: computed coarse to fine on the equal-area HEALPix grid (:mod:`.refine`), read as
mass, credible regions, modes and entropy (:mod:`.map`)."""

from .map import CREDIBLE_LEVELS, CredibleRegion, DensityMap, Mode
from .refine import LogDensityFn, MapConfig, refine_map

__all__ = ["CREDIBLE_LEVELS", "CredibleRegion", "DensityMap", "Mode", "LogDensityFn", "MapConfig", "refine_map"]
