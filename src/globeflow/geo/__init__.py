"""The Earth as a sphere: coordinates, geometry, distances, distributions, equal-area cells, places.

``from globeflow import geo`` gives the sphere's functions and distance scales by name
(``geo.latlon_to_xyz``, ``geo.haversine_km``, ``geo.vmf_sample``, ...); the HEALPix grid
(:mod:`globeflow.geo.healpix`) and the offline place names and borders (:mod:`globeflow.geo.places`)
are imported as modules. Tensors in, tensors out: nothing here reads or writes files of its own.
"""

from .distance import (
                       EARTH_RADIUS_KM,
                       GEOSCORE_SCALE_KM,
                       MAX_DISTANCE_KM,
                       THRESHOLDS_KM,
                       distances_km,
                       geoscore,
                       haversine_km,
                       valid_latlon,
)
from .distributions import LOG_UNIFORM, uniform, vmf_log_prob, vmf_sample
from .manifold import EUCLIDEAN, SPHERE, Euclidean, Manifold, Sphere
from .sphere import (
                       SPHERE_AREA,
                       check_point,
                       check_tangent,
                       dist,
                       expmap,
                       geodesic,
                       geodesic_velocity,
                       inner,
                       latlon_to_xyz,
                       logmap,
                       proju,
                       projx,
                       retraction,
                       points_around,
                       tangent_basis,
                       xyz_to_latlon,
)

__all__ = [
    "EARTH_RADIUS_KM", "GEOSCORE_SCALE_KM", "MAX_DISTANCE_KM", "THRESHOLDS_KM", "distances_km", "geoscore",
    "haversine_km", "valid_latlon", "LOG_UNIFORM", "uniform", "vmf_log_prob", "vmf_sample", "EUCLIDEAN", "SPHERE",
    "Euclidean", "Manifold", "Sphere", "SPHERE_AREA", "check_point", "check_tangent", "dist", "expmap", "geodesic",
    "geodesic_velocity", "inner", "latlon_to_xyz", "logmap", "points_around", "projx", "proju", "retraction", "tangent_basis",
    "xyz_to_latlon",
]
