"""Pictures: density maps on a world map (:mod:`.maps`), reliability diagrams and error charts
(:mod:`.charts`), line charts in panels (:mod:`.curves`). matplotlib's Agg canvas only; every file written atomically."""

from .charts import error_cdf_png, error_map_png, reliability_png
from .curves import Panel, Series, panels_png
from .maps import DYNAMIC_RANGE_NATS, density_map_png, map_pixel, sample_plate_carree

__all__ = ["DYNAMIC_RANGE_NATS", "density_map_png", "map_pixel", "sample_plate_carree", "reliability_png",
           "error_cdf_png", "error_map_png", "Panel", "Series", "panels_png"]
