"""Equal-area grids of the sphere (HEALPix, through ``healpy``).

Every cell of a HEALPix grid has the same area ``4 pi / (12 nside^2)`` steradians, so sums of
``density * cell_area`` over the cells are unbiased integrals: what normalisation checks, credible
regions and density maps need. A plain lat/lon grid over-weights the poles.
"""

from __future__ import annotations

import math

import healpy
import numpy as np
import torch
from torch import Tensor

from .geometry import EARTH_RADIUS_KM

__all__ = ["check_nside", "num_cells", "cell_area", "cell_area_km2", "cell_centers", "cell_of",
           "resolution_km"]


def check_nside(nside: int) -> int:
    """``nside`` must be a power of two (nested and ring schemes both accept it)."""
    if not healpy.isnsideok(nside, nest=True):
        raise ValueError(f"HEALPix nside must be a power of 2 (1, 2, 4, ..., 8192), got {nside}")
    return nside


def num_cells(nside: int) -> int:
    """``12 nside^2``."""
    return healpy.nside2npix(check_nside(nside))


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
    x, y, z = healpy.pix2vec(nside, np.arange(num_cells(nside)), nest=nest)
    return torch.from_numpy(np.stack((x, y, z), axis=-1)).to(dtype)


def cell_of(x: Tensor, nside: int, *, nest: bool = False) -> Tensor:
    """HEALPix index of the cell containing each point ``x (..., 3)`` -> ``(...)`` int64."""
    v = x.detach().reshape(-1, 3).double().cpu().numpy()
    pix = healpy.vec2pix(check_nside(nside), v[:, 0], v[:, 1], v[:, 2], nest=nest)
    return torch.from_numpy(np.asarray(pix, dtype=np.int64)).reshape(x.shape[:-1])
