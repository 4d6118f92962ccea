"""PNG pictures: a density world map and a reliability diagram (Agg, offline)."""

from __future__ import annotations

import os
import stat

import healpy
import matplotlib
import numpy as np
import pytest
from PIL import Image

from globeflow import viz as plotting
from globeflow.viz import charts, maps

PEAK = (40.0, -100.0)
FAR = (-40.0, 100.0)


def _peaked_map(nside: int, lat: float, lon: float, kappa: float, *, nest: bool) -> np.ndarray:
    """vMF log-density (nats per sr) with mean (lat, lon), ``(12 nside^2,)``; -inf far away."""
    x = np.stack(healpy.pix2vec(nside, np.arange(12 * nside ** 2), nest=nest), axis=-1)
    la, lo = np.radians(lat), np.radians(lon)
    mu = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    log_density = kappa * (x @ mu - 1.0) + np.log(kappa / (2 * np.pi))
    log_density[log_density < log_density.max() - 30] = -np.inf
    return log_density


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _pixel(rgb: np.ndarray, lat: float, lon: float) -> np.ndarray:
    x, y = plotting.map_pixel(lat, lon, rgb.shape[1])
    return rgb[int(y), int(x)]


@pytest.mark.parametrize("nest", [True, False])
def test_density_map_peak_is_where_the_density_is(tmp_path, nest):
    path = plotting.density_map_png(tmp_path / "map.png", _peaked_map(32, *PEAK, kappa=2000.0, nest=nest),
                                    nest=nest, width_px=800)
    assert path == tmp_path / "map.png"
    rgb = _rgb(path)
    assert rgb.shape[:2] == (400, 800)
    peak, far = _pixel(rgb, *PEAK), _pixel(rgb, *FAR)
    assert far.tolist() == [255, 255, 255]  # far below the maximum: left white
    assert np.abs(peak - far).sum() > 150  # strongly coloured at the peak
    # Read the colour scale back: the pixel whose colour is the highest on the colour map (among
    # those that are colour-map colours, not outline greys) sits at the peak.
    x0, y0 = plotting.map_pixel(90.0, -180.0, 800)
    x1, y1 = plotting.map_pixel(-90.0, 180.0, 800)
    area = rgb[int(y0) + 2:int(y1) - 2, int(x0) + 2:int(x1) - 2]
    table = np.round(matplotlib.colormaps[maps._CMAP](np.linspace(0, 1, 256))[:, :3] * 255)
    rows, cols = np.nonzero(area.max(axis=-1) - area.min(axis=-1) > 20)  # coloured: not white or grey
    distance = np.abs(area[rows, cols][:, None, :] - table[None]).sum(axis=-1)  # (K, 256)
    level = np.where(distance.min(axis=-1) <= 6, distance.argmin(axis=-1), -1)
    row, col = rows[np.argmax(level)], cols[np.argmax(level)]
    assert level.max() > 240
    lat = 90.0 - (row + int(y0) + 2 - y0) / (y1 - y0) * 180.0
    lon = -180.0 + (col + int(x0) + 2 - x0) / (x1 - x0) * 360.0
    assert abs(lat - PEAK[0]) < 5.0 and abs(lon - PEAK[1]) < 5.0


def test_density_map_full_options_and_exact_width(tmp_path):
    log_density = np.logaddexp(_peaked_map(64, 48.8, 2.3, 800.0, nest=True) + np.log(0.6),
                               _peaked_map(64, *PEAK, kappa=60.0, nest=True) + np.log(0.4))
    ordered = np.sort(log_density[np.isfinite(log_density)])[::-1]
    thresholds = {"50%": ordered[200], "90%": ordered[2000], "never": 1e9}  # the last has no contour
    path = plotting.density_map_png(tmp_path / "sub" / "full.png", log_density,
                                    modes=[(48.8, 2.3, "Paris"), (*PEAK, "Kansas")], truth=(45.76, 4.84),
                                    title="two modes", credible_thresholds=thresholds, width_px=1001)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] == 1001
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["full.png"]  # no temp file left


def test_density_map_rejects_a_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="length 100"):
        plotting.density_map_png(tmp_path / "bad.png", np.zeros(100))
    with pytest.raises(ValueError, match="NaN"):
        plotting.density_map_png(tmp_path / "bad.png", np.full(12, np.nan))
    with pytest.raises(ValueError, match="-inf everywhere"):
        plotting.density_map_png(tmp_path / "bad.png", np.full(12, -np.inf))
    with pytest.raises(ValueError, match="truth"):
        plotting.density_map_png(tmp_path / "bad.png", np.zeros(12), truth=(95.0, 0.0))
    assert list(tmp_path.iterdir()) == []


def test_density_map_replaces_atomically(tmp_path):
    target = tmp_path / "map.png"
    target.write_bytes(b"old")
    plotting.density_map_png(target, np.zeros(48), width_px=300)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [target]


def test_pictures_get_the_usual_permissions(tmp_path):
    # Readable like any file the user writes (umask applies), not 0o600 like a mkstemp file.
    umask = os.umask(0o022)
    try:
        path = plotting.reliability_png(tmp_path / "rel.png", [0.5], [0.5])
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(charts.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        plotting.reliability_png(tmp_path / "rel.png", [0.5], [0.5])
    assert list(tmp_path.iterdir()) == []


def test_reliability_png(tmp_path):
    path = plotting.reliability_png(tmp_path / "rel.png", [0.5, 0.9, 0.1], [0.45, 0.88, 0.12], n=200,
                                    title="coverage", width_px=640)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (640, 640)
    plotting.reliability_png(tmp_path / "rel2.png", [0.0, 1.0], [0.0, 1.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel.png", "rel2.png"]


@pytest.mark.parametrize("nominal, observed, kwargs, match", [
    ([0.5, 0.9], [0.5], {}, "same length"),
    ([], [], {}, "non-empty"),
    ([0.5, 1.2], [0.5, 0.9], {}, r"\[0, 1\]"),
    ([0.5], [0.5], {"n": 0}, "positive integer"),
])
def test_reliability_png_rejects_bad_input(tmp_path, nominal, observed, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.reliability_png(tmp_path / "rel.png", nominal, observed, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_wilson_interval_contains_the_estimate():
    p = np.array([0.0, 0.3, 1.0])
    lo, hi = charts._wilson_interval(p, 50)
    assert (lo <= p).all() and (p <= hi).all() and (hi - lo > 0).all()


def test_panels_png_draws_each_panel_at_the_exact_width(tmp_path):
    from PIL import Image

    from globeflow.viz import Panel, Series, panels_png

    panels = [Panel(f"panel {i}", "x", "y", [Series("a", [1, 2, 4], [0.1, float("nan"), 0.3], labels=["1", "2", "4"]),
                                             Series("b", [1, 2, 4], [0.2, 0.2, 0.1], dashed=True)], {"ref": 0.15},
                    logx=i == 1) for i in range(4)]
    path = panels_png(tmp_path / "p.png", panels, columns=2, width_px=900)
    with Image.open(path) as im:
        assert im.size[0] == 900 and im.size[1] > 300
    with pytest.raises(ValueError, match="series 'a': x has 3 points and y 2"):
        panels_png(tmp_path / "q.png", [Panel("t", "x", "y", [Series("a", [1, 2, 3], [1, 2])])])
    with pytest.raises(ValueError, match="no panels"):
        panels_png(tmp_path / "q.png", [])
    assert not (tmp_path / "q.png").exists()
