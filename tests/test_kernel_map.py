"""The map estimated from samples with exact densities (no solves): its mass, its agreement with a
known density, and the credible regions read from the samples' own densities."""

import math

import numpy as np
import pytest
import torch

from globeflow import geo
from globeflow.geo import healpix as hgrid
from globeflow.geo.distributions import vmf_log_prob, vmf_sample
from globeflow.inference.density import hpd_region, kernel_map
from globeflow.inference.density.kernel import FLOOR, KERNEL_FACTORS, fit_factor, loo_error


def _vmf(kappa: float, n: int, seed: int, mu=(0.3, -0.5, 0.8)):
    mu = geo.projx(torch.tensor(mu, dtype=torch.float64))
    x = vmf_sample(mu, kappa, n, generator=torch.Generator().manual_seed(seed))
    return mu, x.numpy(), vmf_log_prob(x, mu, kappa).numpy()


def _cap_probability(kappa: float, half_angle: float) -> float:
    """P(angle to the mean <= half_angle) under vMF(kappa): (1 - exp(-kappa (1 - cos a))) / (1 - exp(-2 kappa))."""
    return -math.expm1(-kappa * (1.0 - math.cos(half_angle))) / -math.expm1(-2.0 * kappa)


@pytest.mark.parametrize("kappa", [20.0, 400.0])
def test_hpd_region_matches_the_vmf_cap(kappa):
    # The p region of a vMF is the cap holding p: 1 - cos a = -log(1 - p (1 - e^{-2 kappa})) / kappa,
    # of area 2 pi (1 - cos a), at whose edge log q = log C + kappa (cos a - 1) ... = vmf_log_prob there.
    mu, _, lp = _vmf(kappa, 20000, seed=1)
    for p in (0.5, 0.9, 0.95):
        one_minus_cos = -math.log1p(-p * -math.expm1(-2.0 * kappa)) / kappa
        edge = vmf_log_prob(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0],
                            dtype=torch.float64), kappa).item() - kappa * one_minus_cos
        t, area = hpd_region(lp, p)
        assert area == pytest.approx(2 * math.pi * one_minus_cos, rel=0.03)
        assert t == pytest.approx(edge, abs=0.03)
    with pytest.raises(ValueError, match="credible level"):
        hpd_region(lp, 1.5)


@pytest.mark.parametrize("kappa", [30.0, 3000.0])
def test_kernel_map_is_normalised_and_holds_the_cap_masses(kappa):
    mu, x, lp = _vmf(kappa, 1024, seed=2)
    dmap = kernel_map(x, lp, nside=32)
    assert dmap.source == "samples" and dmap.mass() == pytest.approx(1.0, abs=1e-9)
    assert not (dmap.evaluated_nside == dmap.nside).any()  # no value passes for a solved one
    # The floor: every cell is finite, and holds at least its uniform share.
    assert np.isfinite(dmap.log_density).all()
    assert dmap.probabilities().min() >= FLOOR / 1024 / hgrid.num_cells(32) * (1 - 1e-9)
    # Mass within caps around the mean: the kernel estimate against the closed form, within the
    # Monte Carlo error of 1024 samples plus the kernel's smoothing.
    cell_xyz = np.stack(hgrid.pix2vec(32, np.arange(hgrid.num_cells(32)), nest=True), axis=-1)
    angle = np.arccos(np.clip(cell_xyz @ mu.numpy(), -1, 1))
    scale = 1.0 / math.sqrt(kappa)
    for r in (1.5 * scale, 3.0 * scale):
        r = max(r, 2.0 * math.sqrt(hgrid.cell_area(32)))  # a cap of a few cells at least
        got = dmap.probabilities()[angle <= r].sum()
        assert got == pytest.approx(_cap_probability(kappa, r), abs=0.08), (r, got)
    # The densest cell is at the mean.
    assert geo.haversine_km(torch.tensor(dmap.argmax(), dtype=torch.float64),
                            geo.xyz_to_latlon(mu)) < 2 * hgrid.resolution_km(32)


def test_bandwidth_is_fitted_to_the_exact_densities():
    # The samples' exact densities decide the kernels' widths: the fitted factor is the grid's best
    # at reproducing each sample's density from the others, and clearly better than its extremes.
    _, x, lp = _vmf(50.0, 512, seed=4)
    k = fit_factor(x, lp)
    errors = {f: loo_error(x, lp, f) for f in KERNEL_FACTORS}
    assert errors[k] == min(errors.values())
    assert errors[k] < 0.5 * min(errors[KERNEL_FACTORS[0]], errors[KERNEL_FACTORS[-1]]), errors
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_map(x[:1], lp[:1], 8)
    with pytest.raises(ValueError, match="finite"):
        kernel_map(x[:3], np.array([0.0, np.nan, 1.0]), 8)
