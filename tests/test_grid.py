import math

import pytest
import torch

from globeflow import geo
from globeflow.geo import healpix as grid


@pytest.mark.parametrize("nside", [1, 4, 32])
def test_equal_area_cells_cover_the_sphere(nside):
    assert grid.num_cells(nside) == 12 * nside ** 2
    assert grid.cell_area(nside) * grid.num_cells(nside) == pytest.approx(4 * math.pi)
    centers = grid.cell_centers(nside)
    assert centers.shape == (12 * nside ** 2, 3) and geo.check_point(centers)
    # Each centre lies in its own cell.
    assert torch.equal(grid.cell_of(centers, nside), torch.arange(grid.num_cells(nside)))


def test_integral_of_a_vmf_over_the_grid_is_one():
    centers = grid.cell_centers(64)
    mu = geo.latlon_to_xyz(torch.tensor([-17.0, 179.9], dtype=torch.float64))
    mass = (geo.vmf_log_prob(centers, mu.expand_as(centers), 50.0).exp() * grid.cell_area(64)).sum()
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_uniform_points_fill_cells_evenly():
    x = geo.uniform((120_000,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    counts = torch.bincount(grid.cell_of(x, 2), minlength=48).double()
    # Multinomial with 48 equal cells: ~2500 +- 50 each.
    assert (counts - 2500).abs().max() < 250


def test_sizes_and_errors():
    assert grid.cell_area_km2(1) == pytest.approx(4 * math.pi * 6371.0 ** 2 / 12)
    assert grid.resolution_km(64) == pytest.approx(math.sqrt(grid.cell_area_km2(64)))
    with pytest.raises(ValueError, match="power of 2"):
        grid.num_cells(3)
