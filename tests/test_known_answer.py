"""Tests of the known-answer benchmark: exact densities, exact samples, entropy, Bayes predictor."""

from __future__ import annotations

import math

import healpy
import numpy as np
import pytest
import torch

from globeflow import geo
from globeflow.apps.tasks import Component, KnownAnswerTask, default_task
from globeflow.apps.tasks.known_answer import _bayes_predictor_cached

R = geo.EARTH_RADIUS_KM


@pytest.fixture(scope="module")
def task() -> KnownAnswerTask:
    return default_task()


#: Quadrature grid: nside 128 cells are ~0.46 degrees, a third of the tightest component's 1.3 degree
#: spread. Equal-area cells make the midpoint rule ``sum(f) * 4 pi / npix``.
GRID_NSIDE = 128


@pytest.fixture(scope="module")
def grid_log_density(task: KnownAnswerTask) -> torch.Tensor:
    """``log p(x | c)`` at the nested-order nside-128 cell centres, ``(C, 12 * 128^2)``."""
    return _class_log_density_on_grid(task, _healpix_grid(GRID_NSIDE, nest=True))


def _healpix_grid(nside: int, nest: bool = False) -> torch.Tensor:
    """All HEALPix cell centres ``(12 nside^2, 3)`` float64."""
    vec = healpy.pix2vec(nside, np.arange(12 * nside * nside), nest=nest)
    return torch.from_numpy(np.stack(vec, axis=-1))


def _class_log_density_on_grid(task: KnownAnswerTask, x: torch.Tensor) -> torch.Tensor:
    """``log p(x | c)`` on a grid ``x (P, 3)`` for every class, one class at a time: ``(C, P)``."""
    return torch.stack([task.log_prob(x, torch.tensor(c)) for c in range(task.num_classes)])


def _vmf_entropy(kappa: float) -> float:
    """Closed-form entropy of a vMF on S^2, in nats.

    p(x) = C exp(kappa mu.x) with C = kappa / (4 pi sinh kappa), and E[mu.x] = coth kappa - 1/kappa, so
    H = -log C - kappa E[mu.x] = log(4 pi sinh(kappa) / kappa) - kappa coth(kappa) + 1.
    Written without overflow: log(4 pi sinh k / k) = log(2 pi / k) + k + log1p(-e^{-2k}) and
    k - k coth k = -2k / (e^{2k} - 1) = -2k e^{-2k} / (1 - e^{-2k}).
    """
    k = kappa
    return (math.log(2 * math.pi / k) + math.log1p(-math.exp(-2 * k)) + 1.0
            - 2 * k * math.exp(-2 * k) / -math.expm1(-2 * k))


def _vmf_expected_geoscore_at_mean(kappa: float, num: int = 2_000_000) -> float:
    """E[5000 exp(-R theta / 1492.7)] for theta the angle of a vMF sample from its mean.

    ``u = 1 - mu.x`` has density ``kappa exp(-kappa u) / (1 - exp(-2 kappa))`` on [0, 2]; the
    midpoint rule on its quantiles (inverse CDF) is a deterministic quadrature.
    """
    q = (np.arange(num) + 0.5) / num
    u = -np.log1p(-q * -np.expm1(-2 * kappa)) / kappa
    theta = np.arccos(np.clip(1.0 - u, -1.0, 1.0))
    return float(np.mean(5000.0 * np.exp(-R * theta / 1492.7)))


# ---------------------------------------------------------------------- construction


def test_default_task_covers_the_advertised_cases(task: KnownAnswerTask) -> None:
    assert task.num_classes == 8
    for comps in task.classes:
        assert sum(c.weight for c in comps) == pytest.approx(1.0)
    kappas = [c.kappa for comps in task.classes for c in comps]
    assert min(kappas) <= 10 and max(kappas) >= 2000
    assert any(c.lat >= 80 for comps in task.classes for c in comps)  # near the pole
    # One class with components on both sides of the antimeridian.
    assert any({math.copysign(1, c.lon) for c in comps if abs(c.lon) > 178} == {1.0, -1.0} for comps in task.classes)
    assert sorted(len(comps) for comps in task.classes) == [1, 1, 1, 2, 2, 2, 3, 4]


@pytest.mark.parametrize("bad", [
    dict(classes=()),
    dict(classes=((),)),
    dict(classes=((Component(0, 0, 10, 0.5), Component(0, 10, 10, 0.4)),)),
    dict(classes=((Component(0, 0, 10, 1.0),),), noise=0.0),
    dict(classes=((Component(0, 0, 10, 1.0),),), embed_dim=0),
])
def test_invalid_tasks_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        KnownAnswerTask(**bad)


@pytest.mark.parametrize("bad", [(95, 0, 10, 1), (0, 181, 10, 1), (0, 0, 0, 1), (0, 0, 10, 0)])
def test_invalid_components_are_rejected(bad: tuple) -> None:
    with pytest.raises(ValueError):
        Component(*bad)


def test_class_vectors_are_deterministic_and_seeded(task: KnownAnswerTask) -> None:
    v = task.class_vectors()
    assert v.shape == (8, 32) and v.dtype == torch.float32
    assert torch.equal(v, default_task().class_vectors())
    assert not torch.equal(v, default_task(seed=1).class_vectors())
    # N(0, I / D): norms near 1 whatever D.
    assert 0.6 < float(v.norm(dim=1).mean()) < 1.4
    assert 0.6 < float(default_task(embed_dim=512).class_vectors().norm(dim=1).mean()) < 1.4


def test_sample_shapes_dtypes_and_determinism(task: KnownAnswerTask) -> None:
    latlon, emb, labels = task.sample(1000, generator=torch.Generator().manual_seed(3))
    assert latlon.shape == (1000, 2) and latlon.dtype == torch.float64
    assert emb.shape == (1000, 32) and emb.dtype == torch.float32
    assert labels.shape == (1000,) and labels.dtype == torch.long
    assert latlon[:, 0].abs().max() <= 90 and latlon[:, 1].abs().max() <= 180
    assert set(labels.tolist()) == set(range(8))
    again = task.embedding_dataset(1000, seed=3)
    assert torch.equal(again["latlon"], latlon) and torch.equal(again["embedding"], emb)
    assert torch.equal(again["labels"], labels)
    other = task.embedding_dataset(1000, seed=4)
    assert not torch.equal(other["latlon"], latlon)


# ---------------------------------------------------------------------- densities


def test_class_densities_integrate_to_one(grid_log_density: torch.Tensor) -> None:
    mass = grid_log_density.exp().sum(dim=1) * (4 * math.pi / grid_log_density.shape[1])
    torch.testing.assert_close(mass, torch.ones(8, dtype=torch.float64), atol=1e-3, rtol=0)


def test_log_prob_all_and_latlon_variants_agree(task: KnownAnswerTask) -> None:
    gen = torch.Generator().manual_seed(0)
    latlon, _, labels = task.sample(50, generator=gen)
    x = geo.latlon_to_xyz(latlon)
    lp = task.log_prob(x, labels)
    assert lp.shape == (50,) and lp.dtype == torch.float64
    torch.testing.assert_close(task.log_prob_all(x).gather(1, labels[:, None]).squeeze(1), lp)
    torch.testing.assert_close(task.true_log_prob_latlon(latlon, labels), lp)
    # (n, S, 2) with labels (n,): the labels broadcast over the sample axis.
    many = latlon[:, None, :].expand(50, 4, 2)
    out = task.true_log_prob_latlon(many, labels)
    assert out.shape == (50, 4)
    torch.testing.assert_close(out, lp[:, None].expand(50, 4))
    with pytest.raises(ValueError):
        task.log_prob(x, labels[:10])


def test_density_is_continuous_across_antimeridian_and_pole(task: KnownAnswerTask) -> None:
    east = torch.tensor([[-17.0, 179.9999]], dtype=torch.float64)
    west = torch.tensor([[-17.0, -179.9999]], dtype=torch.float64)
    lab = torch.tensor([6])
    a, b = task.true_log_prob_latlon(east, lab), task.true_log_prob_latlon(west, lab)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    assert float(a) > 0.0  # the Fiji class has real mass there (density > 1 / sr)
    pole = torch.tensor([[90.0, lon] for lon in (-180.0, -45.0, 0.0, 120.0)], dtype=torch.float64)
    lp = task.true_log_prob_latlon(pole, torch.full((4,), 5))
    torch.testing.assert_close(lp, lp[:1].expand(4), atol=1e-9, rtol=0)
    assert float(lp[0]) > 0.0


# ---------------------------------------------------------------------- sampling and entropy


@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0, 2000.0])
def test_single_vmf_entropy_matches_closed_form(kappa: float) -> None:
    t = KnownAnswerTask(classes=((Component(-40.0, 100.0, kappa, 1.0),),))
    h, se = t.entropy_with_stderr(num_samples=200_000, seed=1)
    assert abs(float(h[0]) - _vmf_entropy(kappa)) < 3 * float(se[0])


def test_closed_form_entropy_limits() -> None:
    # The formula itself: uniform limit log 4 pi, and log(2 pi e / kappa) for large kappa.
    assert _vmf_entropy(1e-6) == pytest.approx(math.log(4 * math.pi), abs=1e-5)
    assert _vmf_entropy(1e4) == pytest.approx(math.log(2 * math.pi * math.e / 1e4), abs=1e-9)


def test_mixture_entropy_matches_quadrature(task: KnownAnswerTask, grid_log_density: torch.Tensor) -> None:
    # Sampler-free reference: H = -sum p log p * 4 pi / npix on the HEALPix grid.
    lp = grid_log_density
    h_quad = -(lp.exp() * lp).sum(dim=1) * (4 * math.pi / lp.shape[1])
    h, se = task.entropy_with_stderr(num_samples=50_000, seed=2)
    assert ((h - h_quad).abs() < 4 * se).all(), (h, h_quad, se)
    # And the estimator is deterministic in its seed.
    assert torch.equal(task.entropy(num_samples=1000, seed=5), task.entropy(num_samples=1000, seed=5))
    assert not torch.equal(task.entropy(num_samples=1000, seed=5), task.entropy(num_samples=1000, seed=6))


def test_samples_follow_the_density_chi_square(task: KnownAnswerTask, grid_log_density: torch.Tensor) -> None:
    """Counts of exact samples in the 768 nside-8 cells against the density's mass in each cell."""
    coarse, n = 8, 20_000
    group = (GRID_NSIDE // coarse) ** 2  # nested scheme: children of a coarse cell are contiguous
    lp = grid_log_density
    mass = (lp.exp() * (4 * math.pi / lp.shape[1])).reshape(8, -1, group).sum(dim=2)  # (C, 768)
    labels = torch.arange(8).repeat_interleave(n)
    x = task.sample_locations(labels, generator=torch.Generator().manual_seed(7)).numpy()
    cell = healpy.vec2pix(coarse, x[:, 0], x[:, 1], x[:, 2], nest=True).reshape(8, n)
    for c in range(8):
        observed = np.bincount(cell[c], minlength=12 * coarse**2).astype(float)
        expected = mass[c].numpy() * n
        big = expected >= 5.0  # pool the sparse cells into one, as chi-square needs
        obs = np.append(observed[big], observed[~big].sum())
        exp = np.append(expected[big], expected[~big].sum())
        keep = exp > 0
        stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
        dof = max(int(keep.sum()) - 1, 1)
        # Mean dof, sd sqrt(2 dof): 6 sd is a false-alarm rate far below 1e-6.
        assert stat < dof + 6 * math.sqrt(2 * dof) + 10, (c, stat, dof)


@pytest.mark.parametrize("cls", [2, 3])
def test_mode_fractions_match_weights(task: KnownAnswerTask, cls: int) -> None:
    n = 20_000
    comps = task.classes[cls]
    x = task.sample_locations(torch.full((n,), cls), generator=torch.Generator().manual_seed(11))
    modes = geo.latlon_to_xyz(torch.tensor([[c.lat, c.lon] for c in comps], dtype=torch.float64))
    d = geo.dist(x[:, None, :], modes[None]) * R  # (n, K) km
    assert float(d.min(dim=1).values.max()) < 2500.0  # every sample belongs to some mode
    frac = torch.bincount(d.argmin(dim=1), minlength=len(comps)).double() / n
    w = torch.tensor([c.weight for c in comps], dtype=torch.float64)
    assert ((frac - w).abs() < 4 * (w * (1 - w) / n).sqrt()).all(), (frac, w)


def test_antimeridian_class_samples_both_sides(task: KnownAnswerTask) -> None:
    latlon, _, labels = task.sample(4000, generator=torch.Generator().manual_seed(0))
    lon = latlon[labels == 6, 1]
    assert (lon > 175).float().mean() > 0.2 and (lon < -175).float().mean() > 0.2
    assert float(lon.abs().min()) > 170.0


# ---------------------------------------------------------------------- embeddings


def test_embeddings_identify_their_class(task: KnownAnswerTask) -> None:
    data = task.embedding_dataset(5000, seed=1)
    nearest = torch.cdist(data["embedding"], task.class_vectors()).argmin(dim=1)
    assert (nearest == data["labels"]).float().mean() > 0.99
    post = task.class_log_posterior(data["embedding"]).exp()
    assert post.shape == (5000, 8)
    torch.testing.assert_close(post.sum(dim=1), torch.ones(5000, dtype=torch.float64))
    assert (post.gather(1, data["labels"][:, None]) > 0.999).float().mean() > 0.999
    # With a one-hot posterior the embedding-conditional density is the class density.
    x = geo.latlon_to_xyz(data["latlon"][:200])
    torch.testing.assert_close(task.log_prob_given_embedding(x, data["embedding"][:200]),
                               task.log_prob(x, data["labels"][:200]), atol=1e-6, rtol=0)
    xs = torch.stack((x, x.flip(0)), dim=1)  # (n, S=2, 3)
    assert task.log_prob_given_embedding(xs, data["embedding"][:200]).shape == (200, 2)


def test_ambiguous_embedding_gives_mixture_density() -> None:
    # Huge noise: the posterior is no longer one-hot and p(x | e) mixes the classes.
    t = KnownAnswerTask(classes=((Component(0, 0, 100, 1.0),), (Component(0, 90, 100, 1.0),)), noise=100.0)
    e = torch.zeros(1, t.embed_dim)
    x = geo.latlon_to_xyz(torch.tensor([[0.0, 0.0]], dtype=torch.float64))
    post = t.class_log_posterior(e).exp()
    expected = torch.log((post * t.log_prob_all(x).exp()).sum(dim=1))
    torch.testing.assert_close(t.log_prob_given_embedding(x, e), expected)
    assert 0.3 < float(post[0, 0]) < 0.7


# ---------------------------------------------------------------------- Bayes predictor


def test_bayes_predictor_of_single_vmf_is_its_mean() -> None:
    centres = [(48.86, 2.35, 2000.0), (85.0, 30.0, 200.0), (-17.0, 180.0, 50.0), (-89.0, 0.0, 500.0)]
    t = KnownAnswerTask(classes=tuple((Component(lat, lon, k, 1.0),) for lat, lon, k in centres))
    mu = geo.latlon_to_xyz(torch.tensor([c[:2] for c in centres], dtype=torch.float64))
    for seed in (0, 1):
        y = t.bayes_predictor(num_mc=10_000, seed=seed)
        assert y.shape == (4, 3) and y.dtype == torch.float64
        assert geo.check_point(y)
        assert float((geo.dist(y, mu) * R).max()) < 2.0


def test_bayes_predictor_sits_at_the_heavier_mode(task: KnownAnswerTask) -> None:
    # Heavier mode listed second, so an index mix-up would show.
    t = KnownAnswerTask(classes=((Component(-33.87, 151.21, 300.0, 0.35), Component(-33.45, -70.67, 300.0, 0.65)),))
    y = t.bayes_predictor(num_mc=10_000)
    heavy = geo.latlon_to_xyz(torch.tensor([-33.45, -70.67], dtype=torch.float64))
    assert float(geo.dist(y[0], heavy)) * R < 50.0
    # Default class 3: Tokyo carries 0.6 of the mass.
    tokyo = geo.latlon_to_xyz(torch.tensor([35.68, 139.69], dtype=torch.float64))
    assert float(geo.dist(task.bayes_predictor()[3], tokyo)) * R < 50.0


def test_beam_search_agrees_with_exhaustive_scan(task: KnownAnswerTask) -> None:
    beam = task.bayes_predictor(nside=16, num_mc=2000, seed=4)
    full = task.bayes_predictor(nside=16, num_mc=2000, seed=4, beam=10**6)
    assert float((geo.dist(beam, full) * R).max()) < 1.0


def test_bayes_geoscore_of_single_vmf_matches_quadrature() -> None:
    kappas = (20.0, 300.0, 2000.0)
    t = KnownAnswerTask(classes=tuple((Component(10.0, -60.0, k, 1.0),) for k in kappas))
    score, se = t.bayes_geoscore_with_stderr(num_mc=10_000, num_samples=100_000)
    exact = torch.tensor([_vmf_expected_geoscore_at_mean(k) for k in kappas], dtype=torch.float64)
    assert ((score - exact).abs() < 4 * se).all(), (score, exact, se)


def test_bayes_predictor_beats_other_points_on_the_same_test_set(task: KnownAnswerTask) -> None:
    data = task.embedding_dataset(40_000, seed=9)
    ours = task.bayes_geoscore_for(data["latlon"], data["labels"])
    assert ours.shape == (40_000,) and ours.dtype == torch.float64
    y = task.bayes_predictor()
    # The per-point scores average to the expected score, class by class.
    expected, se = task.bayes_geoscore_with_stderr()
    for c in range(8):
        sel = data["labels"] == c
        spread = float(ours[sel].std()) / math.sqrt(int(sel.sum()))
        assert abs(float(ours[sel].mean()) - float(expected[c])) < 4 * math.hypot(spread, float(se[c]))
    # Shifting every prediction 300 km in any direction scores worse on the same points.
    e1 = geo.proju(y, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(y))
    e1 = torch.where(e1.norm(dim=1, keepdim=True) > 1e-6, e1, geo.proju(y, torch.tensor([1.0, 0, 0]).double().expand_as(y)))
    e1 = e1 / e1.norm(dim=1, keepdim=True)
    e2 = torch.linalg.cross(y, e1, dim=-1)
    for direction in (e1, -e1, e2, -e2):
        moved = geo.xyz_to_latlon(geo.expmap(y, direction * (300.0 / R)))[data["labels"]]
        theirs = 5000.0 * torch.exp(-geo.haversine_km(moved, data["latlon"]) / 1492.7)
        assert float(theirs.mean()) < float(ours.mean())


def test_bayes_predictor_is_deterministic(task: KnownAnswerTask) -> None:
    a = task.bayes_predictor(nside=8, num_mc=1000, seed=3)
    # Bypass the cache, which would make a second call trivially equal.
    b = _bayes_predictor_cached.__wrapped__(default_task(), 8, 1000, 3, 32)
    assert torch.equal(a, b)
    c = _bayes_predictor_cached.__wrapped__(default_task(), 8, 1000, 4, 32)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError):
        task.bayes_predictor(nside=12)
