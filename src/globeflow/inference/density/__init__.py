"""Density maps: computed coarse to fine on the equal-area HEALPix grid (:mod:`.refine`), read as
mass, credible regions, modes and entropy (:mod:`.map`), or estimated from samples with exact
densities without solves (:mod:`.kernel`)."""

from .kernel import hpd_region, kernel_map
from .map import CREDIBLE_LEVELS, CredibleRegion, DensityMap, Mode
from .refine import MAP_SOURCES, LogDensityFn, MapConfig, refine_map

__all__ = ["CREDIBLE_LEVELS", "CredibleRegion", "DensityMap", "Mode", "LogDensityFn", "MapConfig", "MAP_SOURCES",
           "refine_map", "kernel_map", "hpd_region"]
