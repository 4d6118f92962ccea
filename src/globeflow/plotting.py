"""Pictures: a predicted density on a world map, and a reliability diagram of credible regions.

Everything is drawn with matplotlib's Agg canvas on a ``Figure`` object (no pyplot, no display, no
global backend switch), country outlines come from the offline Natural Earth polygons of
:mod:`globeflow.places`, and nothing is downloaded. Files are written atomically (a temp file in
the same folder, then a rename), so a reader never sees half a PNG.

Maps are equirectangular (plate carree): longitude -180..180 left to right, latitude 90..-90 top
to bottom. Text scales with ``width_px`` (the figure is always 16 inches wide, at
``width_px / 16`` dpi), so a small picture looks like a shrunk large one.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import healpy
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .checkpoint import atomic_write_bytes

__all__ = ["DYNAMIC_RANGE_NATS", "density_map_png", "reliability_png", "error_cdf_png", "error_map_png", "map_pixel",
           "sample_plate_carree"]

# Colours span the top 10 nats of log-density (a factor e^10 ~ 22,000 in density); everything
# fainter is left transparent, so the map shows where the mass is rather than a uniform wash.
DYNAMIC_RANGE_NATS = 10.0

_FIG_WIDTH_IN = 16.0
_MAP_HEIGHT_RATIO = 0.5  # figure height / width
# Map axes in figure fractions (left, bottom, width, height): 0.82 W by 0.82 * 0.5 W = 2:1 pixels.
_MAP_RECT = (0.045, 0.07, 0.82, 0.82)
_CBAR_RECT = (0.885, 0.07, 0.013, 0.82)
_CMAP = "YlOrRd"
_CONTOUR_COLOURS = ("#1f4e9c", "#6a3d9a", "#1b7837", "#444444")
_CONTOUR_STYLES = ("solid", "dashed", "dotted", "dashdot")


def _figure(width_px: int, height_ratio: float, width_in: float = _FIG_WIDTH_IN) -> Figure:
    """A figure exactly ``width_px`` wide, text sized as on a ``width_in``-inch figure."""
    if int(width_px) != width_px or width_px < 100:
        raise ValueError(f"width_px must be an integer >= 100, got {width_px}")
    # width_px / width_in is exact in binary for width_in = 16 or 8, so Agg gets width_px exactly.
    fig = Figure(figsize=(width_in, width_in * height_ratio), dpi=width_px / width_in)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` as PNG and write it atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def map_pixel(lat: float, lon: float, width_px: int = 1600) -> tuple[float, float]:
    """Pixel ``(x, y)`` (from the top-left corner) of a point in a :func:`density_map_png` picture."""
    height_px = int(width_px * _MAP_HEIGHT_RATIO)
    left, bottom, w, h = _MAP_RECT
    x = (left + (lon + 180.0) / 360.0 * w) * width_px
    y = height_px - (bottom + (lat + 90.0) / 180.0 * h) * height_px
    return x, y


def _check_log_density(log_density: np.ndarray) -> tuple[np.ndarray, int]:
    """``(12 nside^2,)`` log-densities -> (float64 copy, nside); ValueError naming the problem."""
    values = np.asarray(log_density, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"log_density must be a 1-D HEALPix map, got shape {values.shape}")
    npix = values.shape[0]
    if not healpy.isnpixok(npix):
        raise ValueError(f"log_density has length {npix}, which is not a HEALPix map length 12 * nside^2 "
                         f"(12, 48, 192, 768, ...)")
    if np.isnan(values).any() or (values == np.inf).any():
        raise ValueError("log_density has NaN or +inf values (only -inf, zero density, is allowed)")
    if not np.isfinite(values).any():
        raise ValueError("log_density is -inf everywhere: nothing to draw")
    return values, healpy.npix2nside(npix)


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
    pix = healpy.ang2pix(nside, np.broadcast_to(theta, (height, width)), np.broadcast_to(phi, (height, width)),
                         nest=nest)
    return lon, lat, values[pix]


def _draw_outlines(ax, linewidth: float) -> None:
    """Country outlines from the offline Natural Earth polygons (see :mod:`globeflow.places`)."""
    from .places import country_outlines

    lines = LineCollection(country_outlines(), colors="#555555", linewidths=linewidth, zorder=3)
    ax.add_collection(lines)


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
    fig = _figure(width_px, _MAP_HEIGHT_RATIO)
    ax = fig.add_axes(_MAP_RECT)
    cax = fig.add_axes(_CBAR_RECT)

    # Sample at the resolution the map axes will have on screen: one HEALPix look-up per pixel.
    map_w = max(2, round(_MAP_RECT[2] * width_px))
    map_h = max(1, round(_MAP_RECT[3] * width_px * _MAP_HEIGHT_RATIO))
    lon, lat, field = sample_plate_carree(values, nside, nest, map_w, map_h)
    top = float(values[np.isfinite(values)].max())
    shown = np.ma.masked_less(field, top - DYNAMIC_RANGE_NATS)  # -inf included
    image = ax.imshow(shown, cmap=_CMAP, vmin=top - DYNAMIC_RANGE_NATS, vmax=top, extent=(-180, 180, -90, 90),
                      origin="upper", interpolation="nearest", aspect="auto", zorder=1)
    colorbar = fig.colorbar(image, cax=cax)
    colorbar.set_label("log-density (nats per sr)")

    _draw_outlines(ax, linewidth=0.4)
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
    return _save_png(fig, path)


def _check_levels(values: Sequence[float], what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ValueError(f"{what} must be fractions in [0, 1], got {a.tolist()}")
    return a


def _wilson_interval(p: np.ndarray, n: int, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval ``(lo, hi)`` of binomial proportions ``p (K,)`` out of ``n``.

    Unlike p +- z sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero-width at p = 0 or 1,
    where well-calibrated high credible levels sit.
    """
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always contains p; min/max only absorb rounding (errorbar rejects negative bars).
    return np.clip(np.minimum(centre - half, p), 0.0, 1.0), np.clip(np.maximum(centre + half, p), 0.0, 1.0)


def reliability_png(path: str | os.PathLike, nominal: Sequence[float], observed: Sequence[float], *,
                    n: int | None = None, title: str = "", width_px: int = 800) -> Path:
    """Reliability diagram of credible-region coverage, saved as a square PNG ``width_px`` wide.

    ``nominal (K,)`` credible levels p, ``observed (K,)`` the fraction of true locations inside
    the p-credible region; a calibrated model lies on the diagonal. With ``n`` (number of labelled
    rows behind ``observed``) each point gets a 95% binomial (Wilson) interval. Written atomically.
    """
    x = _check_levels(nominal, "nominal")
    y = _check_levels(observed, "observed")
    if x.shape != y.shape:
        raise ValueError(f"nominal and observed must have the same length, got {x.size} and {y.size}")
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"n must be a positive integer (number of labelled rows), got {n}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]

    fig = _figure(width_px, 1.0, width_in=8.0)
    ax = fig.add_axes((0.12, 0.1, 0.82, 0.8))
    ax.plot([0, 1], [0, 1], color="#888888", linestyle="--", linewidth=1.2, label="perfect calibration")
    if n is not None:
        lo, hi = _wilson_interval(y, int(n))
        ax.errorbar(x, y, yerr=np.stack((y - lo, hi - y)), fmt="none", ecolor="#1f77b4", elinewidth=1.2,
                    capsize=3, label=f"95% interval (n = {int(n)})", clip_on=False)
    # clip_on=False: a point at 0 or 1 (common for high levels) is drawn whole, not halved by the axes.
    ax.plot(x, y, marker="o", markersize=6, color="#1f77b4", linewidth=1.8, label="observed", clip_on=False,
            zorder=3)
    ax.set_aspect("equal")
    _finish_axes(ax, (0, 1), "nominal credible level p", "fraction of true locations inside the p-credible region",
                 title or "Credible-region coverage")
    return _save_png(fig, path)


def _finish_axes(ax, xlim: tuple[float, float], xlabel: str, ylabel: str, title: str) -> None:
    """Limits (y in [0, 1]), labels, light grid, legend top left and title: the line plots' frame."""
    ax.set_xlim(*xlim)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.legend(loc="upper left", fontsize=10)
    ax.set_title(title, fontsize=13)


def error_cdf_png(path: str | os.PathLike, errors_km: dict[str, np.ndarray], *, title: str = "",
                  width_px: int = 800) -> Path:
    """Cumulative distribution of error distances, one curve per model: ``{label: (N,) km}``.

    Log-scaled distance axis from 1 km to half the circumference, with the accuracy thresholds
    (1, 25, 200, 750, 2500 km) marked. Written atomically.
    """
    from .metrics import MAX_DISTANCE_KM, THRESHOLDS_KM

    if not errors_km:
        raise ValueError("errors_km is empty: nothing to plot")
    fig = _figure(width_px, 0.75, width_in=8.0)
    ax = fig.add_axes((0.11, 0.12, 0.85, 0.78))
    for label, d in errors_km.items():
        d = np.sort(np.clip(np.asarray(d, dtype=np.float64), 1e-3, MAX_DISTANCE_KM))
        if d.size == 0:
            raise ValueError(f"no errors for {label!r}")
        ax.step(d, np.arange(1, d.size + 1) / d.size, where="post", linewidth=1.8, label=f"{label} (n = {d.size})")
    for t in THRESHOLDS_KM:
        ax.axvline(t, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    _finish_axes(ax, (1, MAX_DISTANCE_KM), "error distance (km, log scale)",
                 "fraction of predictions within the distance", title or "Error distances")
    return _save_png(fig, path)


def error_map_png(path: str | os.PathLike, true_latlon: np.ndarray, errors_km: np.ndarray, *, title: str = "",
                  width_px: int = 1600) -> Path:
    """The true locations ``(N, 2)`` on a world map, coloured by their error distance ``(N,)`` km
    (log colour scale), so that regions a model gets wrong stand out. Written atomically."""
    from matplotlib.colors import LogNorm

    from .metrics import MAX_DISTANCE_KM

    ll = np.asarray(true_latlon, dtype=np.float64).reshape(-1, 2)
    d = np.clip(np.asarray(errors_km, dtype=np.float64).reshape(-1), 1.0, MAX_DISTANCE_KM)
    if ll.shape[0] != d.shape[0] or d.size == 0:
        raise ValueError(f"need as many errors as locations (got {d.size} and {ll.shape[0]}), at least one")
    fig = _figure(width_px, 0.5)
    ax = fig.add_axes(_MAP_RECT)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    _draw_outlines(ax, 0.4)
    order = np.argsort(d)  # the worst on top
    points = ax.scatter(ll[order, 1], ll[order, 0], c=d[order], s=6, cmap="viridis",
                        norm=LogNorm(vmin=1.0, vmax=MAX_DISTANCE_KM), zorder=4, linewidths=0)
    fig.colorbar(points, cax=fig.add_axes(_CBAR_RECT), label="error distance (km)")
    ax.set_title(title or "Error distance at each true location", fontsize=13)
    return _save_png(fig, path)
