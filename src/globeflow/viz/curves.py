"""Line charts in panels: one or more measured quantities against a setting (guidance scale, number
of components, solver time), each panel with its own axes. Used by the experiments report."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .figures import figure, save_png

__all__ = ["Series", "Panel", "panels_png"]


@dataclass(frozen=True)
class Series:
    """One curve: ``x (K,)`` and ``y (K,)``; ``labels`` (K strings) annotate its points; ``dashed``
    draws it dashed (a second quantity of the same model in the same colour)."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str | None = None
    dashed: bool = False
    labels: Sequence[str] | None = None


@dataclass(frozen=True)
class Panel:
    """One set of axes: its curves, horizontal reference lines ``{name: y}`` and axis scales."""

    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    hlines: dict[str, float] = field(default_factory=dict)
    logx: bool = False


def panels_png(path: str | os.PathLike, panels: Sequence[Panel], *, columns: int = 3, width_px: int = 1600,
               title: str = "") -> Path:
    """Draw ``panels`` on a grid ``columns`` wide and write the PNG atomically. Points with a
    non-finite value are left out of their curve (a metric not defined at that setting)."""
    if not panels:
        raise ValueError("no panels to draw")
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = figure(width_px, 0.36 * rows * 3 / cols + (0.04 if title else 0.0))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, s in enumerate(panel.series):
            x, y = np.asarray(s.x, dtype=np.float64), np.asarray(s.y, dtype=np.float64)
            if x.shape != y.shape:
                raise ValueError(f"series {s.name!r}: x has {x.size} points and y {y.size}")
            ok = np.isfinite(x) & np.isfinite(y)
            colour = s.colour or palette[j % len(palette)]
            ax.plot(x[ok], y[ok], marker="o", markersize=4, linewidth=1.6, color=colour,
                    linestyle="--" if s.dashed else "-", label=s.name)
            if s.labels is not None:
                for xi, yi, text in zip(x[ok], y[ok], np.asarray(list(s.labels))[ok]):
                    ax.annotate(str(text), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7,
                                color=colour)
        for k, (name, value) in enumerate(panel.hlines.items()):
            ax.axhline(value, color="#555555", linewidth=1.0, linestyle=[":", "-."][k % 2], label=name)
        if panel.logx:
            ax.set_xscale("log")
        ax.set_xlabel(panel.xlabel, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.set_title(panel.title, fontsize=10)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return save_png(fig, path)
