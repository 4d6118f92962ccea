"""What every picture shares: a figure of an exact pixel size on matplotlib's Agg canvas (no pyplot,
no display, no global backend switch), the map frame, country outlines, and atomic PNG writes."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ..geo.places import country_outlines
from ..io.files import atomic_write_bytes

__all__ = ["MAP_HEIGHT_RATIO", "MAP_RECT", "CBAR_RECT", "figure", "save_png", "draw_outlines", "finish_axes"]

FIG_WIDTH_IN = 16.0
MAP_HEIGHT_RATIO = 0.5  # figure height / width
# Map axes in figure fractions (left, bottom, width, height): 0.82 W by 0.82 * 0.5 W = 2:1 pixels.
MAP_RECT = (0.045, 0.07, 0.82, 0.82)
CBAR_RECT = (0.885, 0.07, 0.013, 0.82)


def figure(width_px: int, height_ratio: float, width_in: float = FIG_WIDTH_IN) -> Figure:
    """A figure exactly ``width_px`` wide, text sized as on a ``width_in``-inch figure."""
    if int(width_px) != width_px or width_px < 100:
        raise ValueError(f"width_px must be an integer >= 100, got {width_px}")
    # width_px / width_in is exact in binary for width_in = 16 or 8, so Agg gets width_px exactly.
    # matplotlib (~0.5 s to import) loads with the first picture, not with every command.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, width_in * height_ratio), dpi=width_px / width_in)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` as PNG and write it atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def draw_outlines(ax, linewidth: float) -> None:
    """Country outlines from the offline Natural Earth polygons (see :mod:`globeflow.geo.places`)."""
    from matplotlib.collections import LineCollection

    lines = LineCollection(country_outlines(), colors="#555555", linewidths=linewidth, zorder=3)
    ax.add_collection(lines)


def finish_axes(ax, xlim: tuple[float, float], xlabel: str, ylabel: str, title: str) -> None:
    """Limits (y in [0, 1]), labels, light grid, legend top left and title: the line plots' frame."""
    ax.set_xlim(*xlim)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.legend(loc="upper left", fontsize=10)
    ax.set_title(title, fontsize=13)
