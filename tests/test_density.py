"""Density maps: closed forms of the von Mises-Fisher density on the equal-area grid, and refinement."""

import json
import math

import healpy
import numpy as np
import pytest

from globeflow.geo import EARTH_RADIUS_KM
from globeflow.geo import healpix as hp
from globeflow.inference.density import DensityMap, MapConfig, refine_map


def unit(lat, lon):
    la, lo = math.radians(lat), math.radians(lon)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


def vmf_logpdf(x, mu, kappa):
    """log vMF on S^2: kappa / (4 pi sinh kappa) exp(kappa mu.x), stable for large kappa."""
    log_c = math.log(kappa / (2 * math.pi)) - math.log1p(-math.exp(-2 * kappa))
    return log_c + kappa * (x @ mu - 1.0)


def mixture_logpdf(x, comps):
    parts = np.stack([math.log(w) + vmf_logpdf(x, unit(*c), k) for c, k, w in comps], axis=-1)
    m = parts.max(-1, keepdims=True)
    return (m + np.log(np.exp(parts - m).sum(-1, keepdims=True)))[..., 0]


def full_map(comps, nside):
    xyz = np.stack(healpy.pix2vec(nside, np.arange(hp.num_cells(nside)), nest=True), -1)
    logp = mixture_logpdf(xyz, comps)
    return DensityMap(logp, np.full(logp.size, nside, dtype=np.int32))


def cap_area_sr(kappa, p):
    """Area of the vMF cap holding mass p: mass(cap 1 - cos t = a) = (1 - e^{-kappa a}) / (1 - e^{-2 kappa})."""
    a = -math.log(1.0 - p * (1.0 - math.exp(-2 * kappa))) / kappa
    return 2 * math.pi * a


VMF = [((30.0, 40.0), 50.0, 1.0)]


def test_vmf_map_mass_credible_areas_entropy_match_closed_forms():
    m = full_map(VMF, 64)
    assert abs(m.mass() - 1.0) < 1e-3
    for p in (0.5, 0.9, 0.95):
        region = m.credible_region(p)
        exact_km2 = cap_area_sr(50.0, p) * EARTH_RADIUS_KM ** 2
        assert abs(region.area_km2 / exact_km2 - 1.0) < 0.02, (p, region.area_km2, exact_km2)
        assert region.cells.size * hp.cell_area_km2(64) == pytest.approx(region.area_km2)
    k = 50.0
    entropy = -math.log(k / (4 * math.pi * math.sinh(k))) - k * (1 / math.tanh(k) - 1 / k)
    assert m.entropy() == pytest.approx(entropy, abs=0.01)
    lat, lon = m.argmax()
    assert abs(lat - 30.0) < 1.0 and abs(lon - 40.0) < 1.0


def test_level_of_is_the_cap_mass_inside_the_point():
    m = full_map(VMF, 64)
    # A point at angle t from the centre: the denser mass is the cap 1 - cos t.
    for t_deg in (5.0, 12.0, 20.0):
        a = 1 - math.cos(math.radians(t_deg))
        exact = (1 - math.exp(-50.0 * a)) / (1 - math.exp(-100.0))
        got = m.level_of(np.array([[30.0 + t_deg, 40.0]]))[0]
        assert got == pytest.approx(exact, abs=0.02)
    # The densest cell has nothing above it; consistency with credible_region.
    assert m.level_of(np.array([m.argmax()]))[0] == 0.0
    region = m.credible_region(0.5)
    inside = m.centers_latlon(region.cells[:-1])
    assert (m.level_of(inside) < 0.5).all()


def test_modes_find_components_with_their_masses():
    comps = [((45.0, 5.0), 300.0, 0.7), ((-30.0, 150.0), 100.0, 0.3)]
    modes = full_map(comps, 32).modes(k=5)
    assert len(modes) == 2
    assert modes[0].mass == pytest.approx(0.7, abs=0.01) and modes[1].mass == pytest.approx(0.3, abs=0.01)
    assert abs(modes[0].lat - 45.0) < 2 and abs(modes[0].lon - 5.0) < 2
    assert abs(modes[1].lat + 30.0) < 2 and abs(modes[1].lon - 150.0) < 2


def test_a_flat_map_is_one_mode_not_thousands():
    m = DensityMap(np.full(hp.num_cells(8), -math.log(4 * math.pi)), np.full(hp.num_cells(8), 8))
    modes = m.modes(k=10)
    assert len(modes) == 1 and modes[0].mass == pytest.approx(1.0)
    assert m.mass() == pytest.approx(1.0)


def _signed_area(ring):
    """Shoelace area of a ring in degrees^2: positive for counter-clockwise."""
    x, y = np.asarray(ring).T
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def _check_rfc7946(geometry):
    """The rules of RFC 7946 a validator checks on a MultiPolygon: closed rings of >= 4 positions,
    longitudes in [-180, 180] and latitudes in [-90, 90], exteriors counter-clockwise, holes clockwise."""
    assert geometry["type"] == "MultiPolygon"
    for polygon in geometry["coordinates"]:
        for k, ring in enumerate(polygon):
            assert len(ring) >= 4 and ring[0] == ring[-1]
            lon, lat = np.asarray(ring).T
            assert lon.min() >= -180 and lon.max() <= 180 and lat.min() >= -90 and lat.max() <= 90
            assert (_signed_area(ring) > 0) == (k == 0)


def _contains(geometry, lon, lat):
    from shapely.geometry import Point, shape

    g = shape(geometry)
    return np.array([g.covers(Point(a, b)) for a, b in zip(lon, lat)])


@pytest.mark.parametrize("centre", [(10.0, 20.0), (0.0, 180.0), (89.0, 0.0), (-89.0, 100.0)])
def test_credible_regions_are_one_valid_multipolygon_each(centre):
    # Issue 16, defect 15: a cell at 179.9 E reached 182.8, polar cells lost their pole edge, and a
    # region was thousands of cell Features.
    m = full_map([(centre, 200.0, 1.0)], 16)
    gj = m.to_geojson()
    json.dumps(gj, allow_nan=False)
    assert [f["properties"]["level"] for f in gj["features"]] == [0.95, 0.9, 0.5]
    cell_lon, cell_lat = hp.pix2ang(16, np.arange(hp.num_cells(16)), nest=True, lonlat=True)
    cell_lon = np.where(cell_lon > 180, cell_lon - 360, cell_lon)
    for f in gj["features"]:
        _check_rfc7946(f["geometry"])
        region = m.credible_region(f["properties"]["level"])
        assert f["properties"]["area_km2"] == region.area_km2 and f["properties"]["cells"] == region.cells.size
        # The polygons hold exactly the region's cells: every centre inside, no other centre.
        inside = np.zeros(hp.num_cells(16), bool)
        inside[region.cells] = True
        got = _contains(f["geometry"], cell_lon, cell_lat)
        assert (got == inside).all(), (int((got & ~inside).sum()), int((~got & inside).sum()))
    if abs(centre[0]) > 80:  # the cap around the pole is covered up to the pole itself
        pole = 90.0 if centre[0] > 0 else -90.0
        assert _contains(gj["features"][-1]["geometry"], [0.0, 120.0, -120.0], [pole] * 3).all()
    if centre[1] == 180.0:  # cut at the antimeridian: parts on both sides, touching +-180
        lons = [p[0] for poly in gj["features"][-1]["geometry"]["coordinates"] for p in poly[0]]
        assert min(lons) == -180.0 and max(lons) == 180.0


def test_a_region_of_the_whole_sphere_is_the_whole_lon_lat_rectangle():
    from shapely.geometry import shape

    m = DensityMap(np.full(hp.num_cells(4), -math.log(4 * math.pi)), np.full(hp.num_cells(4), 4))
    g = shape(m.to_geojson((1.0,))["features"][0]["geometry"])
    assert g.area == pytest.approx(360.0 * 180.0, rel=1e-6)


def make_fn(comps, counter):
    def fn(pts):
        counter.append(pts.shape[0] * pts.shape[1])
        return mixture_logpdf(pts, comps), 1, np.zeros(pts.shape[:2])
    return fn


SHARP = [((10.0, 20.0), 20.0, 0.6), ((-12.0, -60.0), 20000.0, 0.4)]  # the second is ~45 km wide


def test_refinement_matches_the_full_map_where_the_mass_is_at_a_fraction_of_the_cost():
    comps = [((45.0, 5.0), 300.0, 0.7), ((-30.0, 150.0), 100.0, 0.3)]
    calls = []
    (m,) = refine_map(make_fn(comps, calls), 1, MapConfig(nside=64, start_nside=8, max_cells=512))
    full = full_map(comps, 64)
    exact = m.evaluated_nside == 64
    top = np.argsort(-full.log_density)[:1000]
    assert exact[top].all()
    assert np.allclose(m.log_density[top], full.log_density[top])
    assert abs(m.mass() - 1.0) < 0.01
    assert m.evaluations == sum(calls) < hp.num_cells(64) / 5
    assert m.credible_region(0.9).area_km2 == pytest.approx(full.credible_region(0.9).area_km2, rel=0.02)


def test_samples_find_a_mode_sharper_than_the_coarse_cells():
    rng = np.random.default_rng(0)
    # Samples of the sharp component (a 45 km blob between coarse cell centres) and of the broad one,
    # each spread as its component (angular sd 1 / sqrt(kappa)).
    sharp = unit(-12.0, -60.0) + rng.normal(scale=1 / math.sqrt(20000.0), size=(100, 3))
    broad = unit(10.0, 20.0) + rng.normal(scale=1 / math.sqrt(20.0), size=(150, 3))
    samples = np.concatenate((sharp, broad))[None]
    samples /= np.linalg.norm(samples, axis=-1, keepdims=True)
    cfg = MapConfig(nside=256, start_nside=8, max_cells=256)
    (blind,) = refine_map(make_fn(SHARP, []), 1, cfg)
    (seeded,) = refine_map(make_fn(SHARP, []), 1, cfg, samples=samples)
    assert abs(seeded.mass() - 1.0) < 0.02
    assert blind.mass() < 0.8  # the coarse grid never saw the sharp component
    lat, lon = seeded.argmax()
    assert abs(lat + 12.0) < 0.5 and abs(lon + 60.0) < 0.5


def test_batched_refinement_equals_one_image_at_a_time():
    comps_a, comps_b = [((45.0, 5.0), 300.0, 1.0)], [((-30.0, 150.0), 30.0, 1.0)]

    def fn(pts):
        return np.stack((mixture_logpdf(pts[0], comps_a), mixture_logpdf(pts[1], comps_b))), 1, np.zeros(pts.shape[:2])

    a, b = refine_map(fn, 2, MapConfig(nside=32))
    (a1,) = refine_map(make_fn(comps_a, []), 1, MapConfig(nside=32))
    (b1,) = refine_map(make_fn(comps_b, []), 1, MapConfig(nside=32))
    assert np.array_equal(a.log_density, a1.log_density) and np.array_equal(b.log_density, b1.log_density)
    assert a.evaluations == a1.evaluations and b.evaluations == b1.evaluations


def test_map_config_rejects_bad_values():
    with pytest.raises(ValueError, match="power of 2"):
        MapConfig(nside=48)
    with pytest.raises(ValueError, match="start_nside"):
        MapConfig(nside=8, start_nside=16)
    with pytest.raises(ValueError, match="mass"):
        MapConfig(mass=0.0)
    with pytest.raises(ValueError, match="credible level"):
        full_map(VMF, 4).credible_region(1.5)


def test_npz_round_trip(tmp_path):
    m = full_map(VMF, 8)
    m.save_npz(tmp_path / "m.npz")
    z = np.load(tmp_path / "m.npz")
    assert int(z["nside"]) == 8 and str(z["ordering"]) == "NESTED"
    assert np.allclose(z["log_density"], m.log_density, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_the_densest_cells_of_a_tight_density_are_exact():
    # A 140 km mode: its 99.9% mass fits in a few coarse cells, yet the 1,000 densest cells of the
    # nside-64 map reach far beyond them; they must all be evaluated, not interpolated.
    comps = [((48.86, 2.35), 2000.0, 1.0)]
    (m,) = refine_map(make_fn(comps, []), 1, MapConfig(nside=64, exact_top=1000))
    full = full_map(comps, 64)
    top = np.argsort(-full.log_density)[:1000]
    assert (m.evaluated_nside[top] == 64).all()
    assert np.allclose(m.log_density[top], full.log_density[top])
    (fewer,) = refine_map(make_fn(comps, []), 1, MapConfig(nside=64, exact_top=0))
    assert (fewer.evaluated_nside[top] == 64).mean() < 0.5


def vmf_within(kappa, radius_km):
    """Closed form: the vMF mass within a great-circle distance of its mean."""
    a = 1.0 - math.cos(radius_km / 6371.0)
    return (1.0 - math.exp(-kappa * a)) / (1.0 - math.exp(-2 * kappa))


@pytest.mark.parametrize("kappa", [450.0, 5000.0])
def test_probability_within_a_distance_matches_the_vmf_closed_form(kappa):
    # kappa 450: ~300 km wide; 5000: ~90 km, about one nside-64 cell, so the 25 km disc lies inside
    # the peak cell and only the sub-cell interpolation can resolve it.
    m = full_map([((30.0, 40.0), kappa, 1.0)], 64)
    for radius in (25.0, 200.0, 750.0):
        assert abs(m.probability_within(30.0, 40.0, radius) - vmf_within(kappa, radius)) < 0.02, (kappa, radius)
    # Off the mode, a disc holds less; the whole sphere holds everything; bad radii are refused.
    assert m.probability_within(33.0, 40.0, 200.0) < m.probability_within(30.0, 40.0, 200.0)
    assert abs(m.probability_within(-30.0, -140.0, 20100.0) - 1.0) < 1e-6
    with pytest.raises(ValueError, match="radius_km must be > 0"):
        m.probability_within(30.0, 40.0, 0.0)
