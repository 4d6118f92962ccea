"""Charts of an evaluation: a reliability diagram of credible regions, the error-distance CDF, and a
world map of the error at each true location. Drawn with matplotlib's Agg canvas, written atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..geo.distance import MAX_DISTANCE_KM, THRESHOLDS_KM
from .figures import CBAR_RECT, MAP_RECT, draw_outlines, figure, finish_axes, save_png

__all__ = ["reliability_png", "error_cdf_png", "error_map_png"]


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

    fig = figure(width_px, 1.0, width_in=8.0)
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
    finish_axes(ax, (0, 1), "nominal credible level p", "fraction of true locations inside the p-credible region",
                 title or "Credible-region coverage")
    return save_png(fig, path)


def error_cdf_png(path: str | os.PathLike, errors_km: dict[str, np.ndarray], *, title: str = "",
                  width_px: int = 800) -> Path:
    """Cumulative distribution of error distances, one curve per model: ``{label: (N,) km}``.

    Log-scaled distance axis from 1 km to half the circumference, with the accuracy thresholds
    (1, 25, 200, 750, 2500 km) marked. Written atomically.
    """
    if not errors_km:
        raise ValueError("errors_km is empty: nothing to plot")
    fig = figure(width_px, 0.75, width_in=8.0)
    ax = fig.add_axes((0.11, 0.12, 0.85, 0.78))
    for label, d in errors_km.items():
        d = np.sort(np.clip(np.asarray(d, dtype=np.float64), 1e-3, MAX_DISTANCE_KM))
        if d.size == 0:
            raise ValueError(f"no errors for {label!r}")
        ax.step(d, np.arange(1, d.size + 1) / d.size, where="post", linewidth=1.8, label=f"{label} (n = {d.size})")
    for t in THRESHOLDS_KM:
        ax.axvline(t, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    finish_axes(ax, (1, MAX_DISTANCE_KM), "error distance (km, log scale)",
                 "fraction of predictions within the distance", title or "Error distances")
    return save_png(fig, path)


def error_map_png(path: str | os.PathLike, true_latlon: np.ndarray, errors_km: np.ndarray, *, title: str = "",
                  width_px: int = 1600) -> Path:
    """The true locations ``(N, 2)`` on a world map, coloured by their error distance ``(N,)`` km
    (log colour scale), so that regions a model gets wrong stand out. Written atomically."""
    ll = np.asarray(true_latlon, dtype=np.float64).reshape(-1, 2)
    d = np.clip(np.asarray(errors_km, dtype=np.float64).reshape(-1), 1.0, MAX_DISTANCE_KM)
    if ll.shape[0] != d.shape[0] or d.size == 0:
        raise ValueError(f"need as many errors as locations (got {d.size} and {ll.shape[0]}), at least one")
    fig = figure(width_px, 0.5)  # loads matplotlib
    from matplotlib.colors import LogNorm

    ax = fig.add_axes(MAP_RECT)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    draw_outlines(ax, 0.4)
    order = np.argsort(d)  # the worst on top
    points = ax.scatter(ll[order, 1], ll[order, 0], c=d[order], s=6, cmap="viridis",
                        norm=LogNorm(vmin=1.0, vmax=MAX_DISTANCE_KM), zorder=4, linewidths=0)
    fig.colorbar(points, cax=fig.add_axes(CBAR_RECT), label="error distance (km)")
    ax.set_title(title or "Error distance at each true location", fontsize=13)
    return save_png(fig, path)
