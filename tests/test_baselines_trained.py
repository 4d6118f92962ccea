"""Trained baselines: closed forms of the heads, the shared trainer and checkpoints, and the harness."""

import json
import math

import pytest
import torch
from helpers import CENTRES, DIM, make_rows, write_dataset

from globeflow import geo
from globeflow.apps.cli import main
from globeflow.baselines.direct import DirectConfig, DirectModel
from globeflow.baselines.heads import GeocellHead, RegressionHead, VMFMixtureHead
from globeflow.flow.network import NetworkConfig
from globeflow.geo import healpix as grid
from globeflow.inference import Geolocator, load_locator
from globeflow.inference.head_locator import DirectGeolocator
from globeflow.io import CheckpointError, load_checkpoint
from globeflow.train import TrainConfig, train

SMALL = dict(dim=32, depth=2)


def _vmf_output(mu_latlon, kappa, weights=None) -> torch.Tensor:
    """A raw VMFMixtureHead output (1, 5K or 4) that decodes to the given means, kappas, weights."""
    mu = geo.latlon_to_xyz(torch.tensor(mu_latlon, dtype=torch.float64))
    k = len(mu)
    log_kappa = torch.log(torch.tensor(kappa, dtype=torch.float64))
    raw_kappa = 10.0 * torch.atanh((log_kappa - 2.0) / 10.0)  # inverse of the head's bounded map
    parts = [mu.reshape(-1), raw_kappa]
    if k > 1:
        parts.append(torch.log(torch.tensor(weights, dtype=torch.float64)))
    return torch.cat(parts).unsqueeze(0)


def _sphere_integral(log_prob_fn, nside: int = 128) -> float:
    centres = grid.cell_centers(nside).unsqueeze(0)
    return float((log_prob_fn(centres).exp() * grid.cell_area(nside)).sum())


def test_vmf_head_matches_closed_form_density_and_integrates_to_one():
    head = VMFMixtureHead(1)
    out = _vmf_output([[48.0, 2.0]], [30.0])
    mu, kappa, log_w = head.params(out)
    assert torch.allclose(kappa, torch.tensor([[30.0]], dtype=torch.float64)) and log_w.item() == 0.0
    at_mean = head.log_prob(out, mu)  # density at the mean: kappa / (2 pi (1 - exp(-2 kappa)))
    assert at_mean.item() == pytest.approx(math.log(30.0 / (2 * math.pi * (1 - math.exp(-60.0)))), rel=1e-9)
    assert _sphere_integral(lambda x: head.log_prob(out, x)) == pytest.approx(1.0, abs=2e-3)


def test_vmf_samples_have_the_closed_form_mean_cosine():
    head = VMFMixtureHead(1)
    out = _vmf_output([[-10.0, 120.0]], [5.0])
    mu = head.params(out)[0][:, 0]
    x = head.sample(out, 20000, generator=torch.Generator().manual_seed(0))
    # E[mu.x] = coth(kappa) - 1/kappa for a vMF on S^2.
    expected = 1 / math.tanh(5.0) - 1 / 5.0
    assert geo.inner(x[0], mu).mean().item() == pytest.approx(expected, abs=0.01)


def test_mixture_samples_follow_the_weights_and_the_mode_is_the_heavier_component():
    head = VMFMixtureHead(3)
    out = _vmf_output([[48.0, 2.0], [-33.0, 151.0], [0.0, -60.0]], [2000.0, 2000.0, 2000.0], [0.2, 0.5, 0.3])
    x = head.sample(out, 10000, generator=torch.Generator().manual_seed(1))
    mu = head.params(out)[0][0]
    nearest = geo.dist(x[0].unsqueeze(1), mu.unsqueeze(0)).argmin(dim=1)
    freq = torch.bincount(nearest, minlength=3).double() / 10000
    assert torch.allclose(freq, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), atol=0.02)
    best = head.candidates(out)[0, 0]
    assert geo.dist(best, mu[1]).item() < 1e-9
    assert _sphere_integral(lambda p: head.log_prob(out, p), nside=256) == pytest.approx(1.0, abs=5e-3)


def test_geocell_labels_density_samples_and_refinement():
    head = GeocellHead(nside=4, tau_km=300.0)
    x1 = geo.latlon_to_xyz(torch.tensor([[48.0, 2.0]]))
    q = head.soft_labels(x1)
    assert q.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert q.argmax().item() == grid.cell_of(x1, 4, nest=True).item()
    # Two neighbouring cells share the mass: density = P / cell area, uniform inside each cell.
    a = 37
    b = int(next(n for n in __import__("healpy").get_all_neighbours(4, a, nest=True) if n >= 0))
    out = torch.full((1, grid.num_cells(4)), -30.0, dtype=torch.float64)
    out[0, a] = out[0, b] = 0.0
    lp = head.log_prob(out, head.centres.double()[[a, b]].unsqueeze(0))
    assert torch.allclose(lp, torch.full((1, 2), math.log(0.5 / grid.cell_area(4)), dtype=torch.float64), atol=1e-9)
    assert _sphere_integral(lambda p: head.log_prob(out, p), nside=64) == pytest.approx(1.0, abs=1e-9)
    s = head.sample(out, 4000, generator=torch.Generator().manual_seed(0))
    cells = grid.cell_of(s[0], 4, nest=True)
    assert set(cells.tolist()) == {a, b}
    assert abs((cells == a).double().mean().item() - 0.5) < 0.03
    # The refined candidate sits on the border between the two: equidistant from their centres.
    refined = head.candidates(out)[0, -1]
    ca, cb = head.centres.double()[a], head.centres.double()[b]
    assert geo.dist(refined, ca).item() == pytest.approx(geo.dist(refined, cb).item(), rel=1e-6)


def test_regression_loss_is_the_great_circle_distance_in_km():
    head = RegressionHead()
    x1 = geo.latlon_to_xyz(torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    out = 3.0 * geo.latlon_to_xyz(torch.tensor([[0.0, 10.0], [90.0, 0.0]], dtype=torch.float64))
    expected = torch.tensor([10.0, 90.0], dtype=torch.float64) * math.pi / 180 * geo.EARTH_RADIUS_KM
    assert torch.allclose(head.loss(out, x1), expected, rtol=1e-9)


def test_config_round_trip_and_errors():
    c = DirectConfig(NetworkConfig(cond_dim=8, dim=32, depth=2), kind="geocell", nside=8, label_tau_km=100.0)
    assert DirectConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert DirectConfig(NetworkConfig(cond_dim=8), kind="geocell", nside=16).tau_km == pytest.approx(
        0.5 * grid.resolution_km(16))
    with pytest.raises(ValueError, match="unknown baseline kind 'vmf2'"):
        DirectConfig(NetworkConfig(cond_dim=8), kind="vmf2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="power of 2"):
        DirectConfig(NetworkConfig(cond_dim=8), kind="geocell", nside=12)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("direct")
    write_dataset(d / "train.parquet", 4000, 0)
    write_dataset(d / "test.parquet", 200, 1)
    return d


@pytest.fixture(scope="module")
def vmf_run(data):
    train(data / "train.parquet", data / "vmf", kind="vmf-mixture", network=SMALL, progress=False,
          config=TrainConfig(steps=300, batch_size=256, warmup_steps=20), device="cpu")
    return data / "vmf"


def test_trained_mixture_finds_the_class_centres(vmf_run):
    loc = load_locator(vmf_run, device="cpu")
    assert isinstance(loc, DirectGeolocator) and loc.config.kind == "vmf-mixture" and loc.has_density
    latlon, emb, labels = make_rows(400, 3)
    pred = loc.predict(emb, strategy="mode")
    err = geo.haversine_km(pred, CENTRES[labels])
    # Classes 0 and 1 are tight (kappa 500, ~280 km spread): the answer is at their centre.
    assert err[labels < 2].median().item() < 150
    nll = -loc.log_prob(emb, latlon).mean().item()
    assert nll < math.log(4 * math.pi) - 2.0


def test_resumed_baseline_training_equals_uninterrupted(data, tmp_path):
    cfg = TrainConfig(steps=12, batch_size=64, warmup_steps=2, ckpt_every=6)
    train(data / "train.parquet", tmp_path / "full", kind="geocell", network=SMALL, head={"nside": 4},
          config=cfg, progress=False, device="cpu")

    class Stop(Exception):
        pass

    def stop_at_6(step, _):
        if step == 6:
            raise Stop

    with pytest.raises(Stop):
        train(data / "train.parquet", tmp_path / "half", kind="geocell", network=SMALL, head={"nside": 4},
              config=cfg, progress=False, device="cpu", on_step=stop_at_6)
    train(data / "train.parquet", tmp_path / "half", config=cfg, resume=True, progress=False, device="cpu")
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "half")
    assert b.meta["model_config"]["kind"] == "geocell" and b.meta["model_config"]["nside"] == 4
    for k, v in a.weights().items():
        assert torch.equal(v, b.weights()[k]), k


def test_locator_answers_follow_the_head():
    model = DirectModel(DirectConfig(NetworkConfig(cond_dim=DIM, dim=16, depth=1), kind="vmf"))
    # Constant output whatever the embedding: a vMF at Paris with kappa 50.
    with torch.no_grad():
        model.network.final_linear.weight.zero_()
        model.network.final_linear.bias.copy_(_vmf_output([[48.0, 2.0]], [50.0])[0].float())
    loc = DirectGeolocator(model, device="cpu")
    emb = torch.randn(3, DIM)
    assert torch.allclose(loc.predict(emb, strategy="mode"), torch.tensor([[48.0, 2.0]] * 3, dtype=torch.float64),
                          atol=1e-4)
    # The expected-GeoScore answer of a single vMF is its mean, up to the Monte Carlo noise of 256
    # samples: well inside the distribution's ~1,270 km angular spread (sqrt(2 / kappa) rad).
    assert geo.haversine_km(loc.predict(emb), torch.tensor([[48.0, 2.0]])).max().item() < 300
    truth = torch.tensor([[40.0, 10.0]] * 3, dtype=torch.float64)
    expected = geo.vmf_log_prob(geo.latlon_to_xyz(truth), geo.latlon_to_xyz(torch.tensor([48.0, 2.0], dtype=torch.float64)), 50.0)
    assert torch.allclose(loc.log_prob(emb, truth), expected, atol=1e-4)
    assert torch.allclose(loc.log_prob(emb, truth, units="km2") - loc.log_prob(emb, truth),
                          torch.full((3,), -2 * math.log(geo.EARTH_RADIUS_KM), dtype=torch.float64))
    latlon, lp = loc.sample_with_log_prob(emb, 16, seed=0)
    assert torch.allclose(lp, loc.log_prob(emb.repeat_interleave(16, 0), latlon.reshape(-1, 2)).reshape(3, 16), atol=1e-4)
    with pytest.raises(ValueError, match="guidance"):
        loc.predict(emb, guidance=2.0)
    with pytest.raises(ValueError, match="'grid' is not available for a vmf baseline"):
        loc.predict(emb, strategy="grid")


def test_flow_loader_refuses_a_baseline_checkpoint(vmf_run):
    with pytest.raises(CheckpointError, match="vmf-mixture baseline, not a flow model"):
        Geolocator.load(vmf_run)


def test_evaluate_reports_a_baselines_exact_nll(vmf_run, data, tmp_path):
    out = tmp_path / "vmf.json"
    assert main(["evaluate", str(vmf_run), str(data / "test.parquet"), "--out", str(out),
                 "--calibration-samples", "16", "--num-samples", "32"]) == 0
    report = json.loads(out.read_text())
    latlon, emb, _ = make_rows(200, 1)
    lp = load_locator(vmf_run).log_prob(emb, latlon)
    assert report["metrics"]["nll"] == pytest.approx(-lp.mean().item(), rel=1e-6)
    assert report["model"]["kind"] == "vmf-mixture" and report["sampler"] is None
    assert len(report["metrics"]["calibration"]["coverage"]) == 9
    # The Markdown row carries the nested calibration gap and the NLL as the table's last columns.
    row = out.with_suffix(".md").read_text().splitlines()[2].split("|")
    m = report["metrics"]
    assert row[-4:-1] == [f" {m['nll']:.3f} ", f" {m['calibration']['mean_abs_gap']:.3f} ", " 200 "]


def test_regression_evaluates_without_a_density(data, tmp_path, capsys):
    run = tmp_path / "reg"
    assert main(["train", str(data / "train.parquet"), "--out", str(run), "--model", "regression", "--dim", "32",
                 "--depth", "2", "--steps", "200", "--batch-size", "256", "--no-progress", "--device", "cpu"]) == 0
    out = tmp_path / "reg.json"
    assert main(["evaluate", str(run), str(data / "test.parquet"), "--out", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["nll"] is None and "regression model has no normalised density" in m["nll_note"]
    latlon, emb, labels = make_rows(400, 3)
    err = geo.haversine_km(load_locator(run).predict(emb), CENTRES[labels])
    assert err[labels < 2].median().item() < 300
    capsys.readouterr()
    assert main(["log-prob", str(run), str(data / "test.parquet"), "--out", str(tmp_path / "lp.csv")]) == 2
    assert "direct regression predicts a point" in capsys.readouterr().err


def test_cli_rejects_a_bad_geocell_grid(data, tmp_path, capsys):
    assert main(["train", str(data / "train.parquet"), "--out", str(tmp_path / "g"), "--model", "geocell",
                 "--nside", "12", "--steps", "2", "--no-progress"]) == 2
    assert "nside must be a power of 2" in capsys.readouterr().err


def test_weights_of_another_size_are_named_not_a_torch_error(vmf_run, tmp_path):
    from globeflow.io import save_checkpoint

    ckpt = load_checkpoint(vmf_run)
    config = dict(ckpt.meta["model_config"], network={**ckpt.meta["model_config"]["network"], "dim": 64})
    bad = save_checkpoint(tmp_path / "bad.safetensors", {k: v for k, v in ckpt.tensors.items() if k.startswith("ema.")},
                          model_config=config)
    with pytest.raises(CheckpointError, match=r"bad.safetensors: weights do not match the model config "
                                              r"\(.* has shape \(96,\), the config implies \(192,\)"):
        load_locator(bad)
