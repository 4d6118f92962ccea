"""A predicted density on a world map (PNG), and the map's pixels (for the web page's raster).

Everything is drawn with matplotlib's Agg canvas on a ``Figure`` object (no pyplot, no display, no
global backend switch), country outlines come from the offline Natural Earth polygons of
:mod:`globeflow.geo.places`, and nothing is downloaded. Files are written atomically (a temp file in
the same folder, then a rename), so a reader never sees half a PNG.

Maps are equirectangular (plate carree): longitude -180..180 left to right, latitude 90..-90 top
to bottom. Text scales with ``width_px`` (the figure is always 16 inches wide, at
``width_px / 16`` dpi), so a small picture looks like a shrunk large one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..geo import healpix
from .figures import CBAR_RECT, MAP_HEIGHT_RATIO, MAP_RECT, draw_outlines, figure, save_png

__all__ = ["DYNAMIC_RANGE_NATS", "density_map_png", "map_pixel", "sample_plate_carree"]

# Colours span the top 10 nats of log-density (a factor e^10 ~ 22,000 in density); everything
# fainter is left transparent, so the map shows where the mass is rather than a uniform wash.
DYNAMIC_RANGE_NATS = 10.0
_CMAP = "YlOrRd"
_CONTOUR_COLOURS = ("#1f4e9c", "#6a3d9a", "#1b7837", "#444444")
_CONTOUR_STYLES = ("solid", "dashed", "dotted", "dashdot")


def map_pixel(lat: float, lon: float, width_px: int = 1600) -> tuple[float, float]:
    """Pixel ``(x, y)`` (from the top-left corner) of a point in a :func:`density_map_png` picture."""
    height_px = int(width_px * MAP_HEIGHT_RATIO)
    left, bottom, w, h = MAP_RECT
    x = (left + (lon + 180.0) / 360.0 * w) * width_px
    y = height_px - (bottom + (lat + 90.0) / 180.0 * h) * height_px
    return x, y


def _check_log_density(log_density: np.ndarray) -> tuple[np.ndarray, int]:
    """``(12 nside^2,)`` log-densities -> (float64 copy, nside); ValueError naming the problem."""
    values = np.asarray(log_density, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"log_density must be a 1-D HEALPix map, got shape {values.shape}")
    npix = values.shape[0]
    if not healpix.is_map_length(npix):
        raise ValueError(f"log_density has length {npix}, which is not a HEALPix map length 12 * nside^2 "
                         f"(12, 48, 192, 768, ...)")
    if np.isnan(values).any() or (values == np.inf).any():
        raise ValueError("log_density has NaN or +inf values (only -inf, zero density, is allowed)")
    if not np.isfinite(values).any():
        raise ValueError("log_density is -inf everywhere: nothing to draw")
    return values, healpix.npix_to_nside(npix)


def _check_point(lat: float, lon: float, what: str) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        raise ValueError(f"{what} must be (lat in [-90, 90], lon in [-180, 180]) degrees, got ({lat}, {lon})")


def sample_plate_carree(values: np.ndarray, nside: int, nest: bool, width: int, height: int) -> tuple[np.ndarray, ...]:
    """The HEALPix map at each pixel centre of a ``height x width`` plate carree grid.

    Returns ``(lon (width,), lat (height,), field (height, width))``, row 0 at the north.
    """
    lon = -180.0 + (np.arange(width) + 0.5) * (360.0 / width)
    lat = 90.0 - (np.arange(height) + 0.5) * (180.0 / height)
    theta = np.radians(90.0 - lat)[:, None]
    phi = np.radians(lon)[None, :]
    pix = healpix.ang2pix(nside, np.broadcast_to(theta, (height, width)), np.broadcast_to(phi, (height, width)),
                         nest=nest)
    return lon, lat, values[pix]


def density_map_png(path: str | os.PathLike, log_density: np.ndarray, *, nest: bool = True,
                    modes: Sequence[tuple[float, float, str]] = (), truth: tuple[float, float] | None = None,
                    title: str = "", credible_thresholds: dict[str, float] | None = None,
                    width_px: int = 1600) -> Path:
    """Draw a HEALPix log-density map ``(12 nside^2,)`` on a world map and save it as a PNG.

    ``log_density`` is in nats per steradian (``-inf`` where the density is zero), NESTED ordering
    unless ``nest=False``. Colour shows the log-density within ``DYNAMIC_RANGE_NATS`` of its
    maximum; fainter cells stay white. ``credible_thresholds`` maps a label such as ``"50%"`` to a
    log-density threshold: the boundary of ``log_density >= threshold`` is drawn as a contour.
    ``modes`` are ``(lat, lon, label)`` markers, ``truth`` the true ``(lat, lon)``. The picture is
    ``width_px`` wide and half as high; written atomically. Returns the path.
    """
    values, nside = _check_log_density(log_density)
    for lat, lon, _ in modes:
        _check_point(lat, lon, "a mode")
    if truth is not None:
        _check_point(truth[0], truth[1], "truth")
    fig = figure(width_px, MAP_HEIGHT_RATIO)
    ax = fig.add_axes(MAP_RECT)
    cax = fig.add_axes(CBAR_RECT)

    # Sample at the resolution the map axes will have on screen: one HEALPix look-up per pixel.
    map_w = max(2, round(MAP_RECT[2] * width_px))
    map_h = max(1, round(MAP_RECT[3] * width_px * MAP_HEIGHT_RATIO))
    lon, lat, field = sample_plate_carree(values, nside, nest, map_w, map_h)
    top = float(values[np.isfinite(values)].max())
    shown = np.ma.masked_less(field, top - DYNAMIC_RANGE_NATS)  # -inf included
    image = ax.imshow(shown, cmap=_CMAP, vmin=top - DYNAMIC_RANGE_NATS, vmax=top, extent=(-180, 180, -90, 90),
                      origin="upper", interpolation="nearest", aspect="auto", zorder=1)
    colorbar = fig.colorbar(image, cax=cax)
    colorbar.set_label("log-density (nats per sr)")

    draw_outlines(ax, linewidth=0.4)
    from matplotlib.lines import Line2D  # matplotlib loads with the first picture (see figures.figure)

    handles: list[Line2D] = []
    if credible_thresholds:
        # Contours on the sampled grid; -inf replaced by a finite floor so matplotlib can
        # interpolate across zero-density cells.
        floor = min(float(field[np.isfinite(field)].min()), min(credible_thresholds.values())) - 1.0
        finite_field = np.where(np.isfinite(field), field, floor)
        for i, (label, threshold) in enumerate(credible_thresholds.items()):
            colour = _CONTOUR_COLOURS[i % len(_CONTOUR_COLOURS)]
            style = _CONTOUR_STYLES[i % len(_CONTOUR_STYLES)]
            # A threshold outside the field's range has no contour; matplotlib would warn.
            if finite_field.min() < threshold <= finite_field.max():
                ax.contour(lon, lat, finite_field, levels=[threshold], colors=[colour], linestyles=[style],
                           linewidths=1.4, zorder=4)
            handles.append(Line2D([], [], color=colour, linestyle=style, linewidth=1.4, label=f"{label} credible"))
    for lat_m, lon_m, label in modes:
        ax.plot(lon_m, lat_m, marker="o", markersize=7, markerfacecolor="#1f77b4", markeredgecolor="white",
                markeredgewidth=1.2, linestyle="none", zorder=5)
        if label:
            ax.annotate(label, (lon_m, lat_m), xytext=(6, 6), textcoords="offset points", fontsize=9, zorder=6,
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    if modes:
        handles.append(Line2D([], [], marker="o", color="#1f77b4", markeredgecolor="white", linestyle="none",
                              label="modes"))
    if truth is not None:
        ax.plot(truth[1], truth[0], marker="*", markersize=16, markerfacecolor="#00c853", markeredgecolor="black",
                markeredgewidth=1.0, linestyle="none", zorder=7)
        handles.append(Line2D([], [], marker="*", markersize=12, color="#00c853", markeredgecolor="black",
                              linestyle="none", label="true location"))
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=9, framealpha=0.85)

    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(np.arange(-180, 181, 60))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.set_xticklabels([f"{t:d}°" for t in range(-180, 181, 60)])
    ax.set_yticklabels([f"{t:d}°" for t in range(-90, 91, 30)])
    ax.grid(True, color="#bbbbbb", linewidth=0.3, zorder=2)
    if title:
        ax.set_title(title, fontsize=13)
    return save_png(fig, path)
