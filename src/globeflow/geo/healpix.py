"""Equal-area grids of the sphere: HEALPix, the one place that calls ``healpy``.

Every cell of a HEALPix grid has the same area ``4 pi / (12 nside^2)`` steradians, so sums of
``density * cell_area`` over the cells are unbiased integrals: what normalisation checks, credible
regions and density maps need. A plain lat/lon grid over-weights the poles.

``healpy`` (with astropy, ~2 s) is imported on first use, not with globeflow: the grid arithmetic
(sizes, areas) needs no library, and the look-ups below load it when first called. They are healpy's
own functions, passed through (``nest=True`` is globeflow's order everywhere: a cell's children are
``4i .. 4i+3``).
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .distance import EARTH_RADIUS_KM

__all__ = ["MAX_NSIDE", "is_nside", "check_nside", "num_cells", "npix_to_nside", "is_map_length", "cell_area", "cell_area_km2",
           "resolution_km", "cell_centers", "cell_of", "pix2vec", "vec2pix", "pix2ang", "ang2pix", "vec2ang",
           "neighbours", "interpolate", "query_disc", "boundaries"]

#: healpy's largest resolution (2^29).
MAX_NSIDE = 1 << 29


@functools.lru_cache(maxsize=None)
def _healpy() -> ModuleType:
    import healpy

    return healpy


def is_nside(nside: int) -> bool:
    """Whether ``nside`` is a power of two a HEALPix grid can have (nested and ring schemes both)."""
    ok = isinstance(nside, (int, np.integer)) and not isinstance(nside, bool) and 1 <= nside <= MAX_NSIDE
    return bool(ok and nside & (nside - 1) == 0)


def check_nside(nside: int) -> int:
    """``nside`` as an int; ``ValueError`` unless it is a power of two (:func:`is_nside`)."""
    if not is_nside(nside):
        raise ValueError(f"HEALPix nside must be a power of 2 (1, 2, 4, ..., 8192), got {nside}")
    return int(nside)


def num_cells(nside: int) -> int:
    """``12 nside^2``."""
    return 12 * check_nside(nside) ** 2


def is_map_length(npix: int) -> bool:
    """Whether ``npix`` is ``12 nside^2`` for some ``nside >= 1`` (a RING map may have any ``nside``)."""
    nside = math.isqrt(max(int(npix), 0) // 12)
    return npix == 12 * nside * nside and nside >= 1


def npix_to_nside(npix: int) -> int:
    """The ``nside`` of a map of ``npix = 12 nside^2`` cells."""
    if not is_map_length(npix):
        raise ValueError(f"{npix} is not a HEALPix map length 12 * nside^2 (12, 48, 192, 768, ...)")
    return math.isqrt(npix // 12)


def cell_area(nside: int) -> float:
    """Area of one cell in steradians."""
    return 4.0 * math.pi / num_cells(nside)


def cell_area_km2(nside: int) -> float:
    """Area of one cell in km^2 on a sphere of radius 6371 km."""
    return cell_area(nside) * EARTH_RADIUS_KM ** 2


def resolution_km(nside: int) -> float:
    """Typical cell size: the square root of the cell area, in km."""
    return math.sqrt(cell_area_km2(nside))


def cell_centers(nside: int, *, nest: bool = False, dtype: torch.dtype = torch.float64) -> Tensor:
    """Unit vectors of all cell centres, ``(12 nside^2, 3)``, in HEALPix pixel order."""
    x, y, z = _healpy().pix2vec(nside, np.arange(num_cells(nside)), nest=nest)
    return torch.from_numpy(np.stack((x, y, z), axis=-1)).to(dtype)


def cell_of(x: Tensor, nside: int, *, nest: bool = False) -> Tensor:
    """HEALPix index of the cell containing each point ``x (..., 3)`` -> ``(...)`` int64."""
    v = x.detach().reshape(-1, 3).double().cpu().numpy()
    pix = _healpy().vec2pix(check_nside(nside), v[:, 0], v[:, 1], v[:, 2], nest=nest)
    return torch.from_numpy(np.asarray(pix, dtype=np.int64)).reshape(x.shape[:-1])


# --- healpy's look-ups, loaded on first use -----------------------------------------------------------------------


def pix2vec(nside: int, pix: Any, nest: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors ``(x, y, z)`` of the centres of cells ``pix``."""
    return _healpy().pix2vec(nside, pix, nest=nest)


def vec2pix(nside: int, x: Any, y: Any, z: Any, nest: bool = True) -> np.ndarray:
    """The cells containing the points ``(x, y, z)``."""
    return _healpy().vec2pix(nside, x, y, z, nest=nest)


def pix2ang(nside: int, pix: Any, nest: bool = True, lonlat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centres of cells as ``(theta, phi)`` radians, or ``(lon, lat)`` degrees with ``lonlat``."""
    return _healpy().pix2ang(nside, pix, nest=nest, lonlat=lonlat)


def ang2pix(nside: int, theta: Any, phi: Any, nest: bool = True, lonlat: bool = False) -> np.ndarray:
    """The cells containing ``(theta, phi)`` radians, or ``(lon, lat)`` degrees with ``lonlat``."""
    return _healpy().ang2pix(nside, theta, phi, nest=nest, lonlat=lonlat)


def vec2ang(vectors: np.ndarray, lonlat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Angles of vectors ``(N, 3)``: ``(theta, phi)`` radians or ``(lon, lat)`` degrees."""
    return _healpy().vec2ang(vectors, lonlat=lonlat)


def neighbours(nside: int, pix: Any, nest: bool = True) -> np.ndarray:
    """The 8 neighbours of each cell, ``(8, N)``; -1 where a cell has only 7."""
    return _healpy().get_all_neighbours(nside, pix, nest=nest)


def interpolate(values: np.ndarray, theta: Any, phi: Any, nest: bool = True) -> np.ndarray:
    """Bilinear interpolation of a map ``values (12 nside^2,)`` at ``(theta, phi)`` radians."""
    return _healpy().get_interp_val(values, theta, phi, nest=nest)


def query_disc(nside: int, vec: Any, radius: float, nest: bool = True) -> np.ndarray:
    """Cells overlapping the disc of ``radius`` radians around the unit vector ``vec (3,)``
    (inclusive: a cell that only touches it is in)."""
    return _healpy().query_disc(nside, np.asarray(vec, dtype=np.float64), radius, inclusive=True, nest=nest)


def boundaries(nside: int, pix: int, step: int = 1, nest: bool = True) -> np.ndarray:
    """Corners of a cell as unit vectors ``(3, 4 step)``."""
    return _healpy().boundaries(nside, pix, step=step, nest=nest)
