import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_rows, write_dataset

from globeflow.evaluation.metrics import point_metrics
from globeflow.inference import Geolocator
from globeflow.io import CheckpointError, load_checkpoint
from globeflow.train import TrainConfig, TrainingError, train
from globeflow.train.loop import _ema_update
from globeflow.train.optim import Lamb, warmup_cosine

NET = {"dim": 32, "depth": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return write_dataset(d / "train.parquet", 4000, 0), write_dataset(d / "val.parquet", 300, 1)


def small(**kw):
    base = dict(steps=40, batch_size=64, warmup_steps=5, ckpt_every=10, val_every=20, log_every=10, lr=2e-3)
    base.update(kw)
    return TrainConfig(**base)


def weights(run):
    return load_checkpoint(run).tensors


def test_resume_after_a_kill_ends_with_the_same_weights(data, tmp_path):
    train_path, val_path = data
    full = tmp_path / "full"
    train(train_path, full, network=NET, config=small(), val_data=val_path, progress=False)

    class Killed(Exception):
        pass

    def kill_at_25(step, loss):
        if step == 25:
            raise Killed

    part = tmp_path / "part"
    with pytest.raises(Killed):
        train(train_path, part, network=NET, config=small(), val_data=val_path, progress=False, on_step=kill_at_25)
    assert load_checkpoint(part).meta["step"] == 20  # the last checkpoint before the kill
    train(train_path, part, network=NET, config=small(), val_data=val_path, resume=True, progress=False)
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_ema_is_an_average_not_a_copy():
    ema, model = torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 2, bias=False)
    torch.nn.init.zeros_(ema.weight)
    torch.nn.init.ones_(model.weight)
    _ema_update(ema, model, 0.999)
    assert torch.allclose(ema.weight, torch.full((2, 2), 0.001))


def test_training_learns_and_logs(data, tmp_path):
    train_path, val_path = data
    run = tmp_path / "run"
    res = train(train_path, run, network=NET, config=small(steps=150, lr=3e-3), val_data=val_path, progress=False)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [l["val_loss"] for l in lines if "val_loss" in l]
    assert len(vals) >= 2 and vals[-1] < vals[0]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["network"]["cond_dim"] == 8 and cfg["train"]["steps"] == 150 and cfg["step"] == 150
    # Better than chance: the classes are separable, the predictions land near the right centre.
    latlon, emb, _ = make_rows(200, 7)
    m = point_metrics(Geolocator.load(run).predict(emb, num_samples=32, steps=8), latlon)
    assert m["acc_2500km"] > 0.5, m


def test_existing_run_needs_resume(data, tmp_path):
    train(data[0], tmp_path / "r", network=NET, config=small(steps=10), progress=False)
    with pytest.raises(TrainingError, match="already holds a checkpoint"):
        train(data[0], tmp_path / "r", network=NET, config=small(steps=10), progress=False)


def test_nan_guard_stops_a_diverging_run(data, tmp_path):
    with pytest.raises(TrainingError, match="consecutive steps with non-finite"):
        train(data[0], tmp_path / "nan", network=NET, config=small(lr=1e30, steps=60, max_bad_steps=3,
                                                                    grad_clip=1e30), progress=False)


def test_corrupt_checkpoint_is_reported(data, tmp_path):
    run = tmp_path / "c"
    train(data[0], run, network=NET, config=small(steps=10), progress=False)
    ck = run / "checkpoint.safetensors"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Geolocator.load(run)


def test_warmup_cosine_shape():
    lrs = [warmup_cosine(s, base_lr=1.0, warmup=10, total=110) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.5) and lrs[-1] < 0.001
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_lamb_trust_ratio_scales_update_to_weight_norm():
    p = torch.nn.Parameter(torch.full((4,), 2.0))
    opt = Lamb([p], lr=0.1)
    p.grad = torch.tensor([1.0, -1.0, 1.0, -1.0])
    opt.step()
    # Adam's first update is sign(g) (norm 2 for 4 entries); trust ratio |w| / |u| = 4 / 2.
    assert torch.allclose(p.detach(), torch.tensor([2.0, 2.0, 2.0, 2.0]) - 0.1 * 2.0 * torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-5)


def _torchrun(nproc, data, out, steps, batch):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "globeflow", "train", str(data), "--out", str(out), "--dim", "32", "--depth", "2",
           "--steps", str(steps), "--batch-size", str(batch), "--lr", "3e-3", "--warmup-steps", "10",
           "--ckpt-every", "50", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)


def test_ddp_two_processes_matches_one_process(data, tmp_path):
    train_path, _ = data
    _torchrun(1, train_path, tmp_path / "one", 150, 128)
    _torchrun(2, train_path, tmp_path / "two", 150, 128)
    latlon, emb, _ = make_rows(300, 11)
    scores = {}
    for name in ("one", "two"):
        run = tmp_path / name
        assert sorted(p.name for p in run.iterdir() if p.suffix == ".safetensors") == ["checkpoint.safetensors"]
        assert json.loads((run / "config.json").read_text())["world_size"] == (1 if name == "one" else 2)
        steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(set(steps))  # one writer: no step logged twice
        scores[name] = point_metrics(Geolocator.load(run).predict(emb, num_samples=32, steps=8), latlon)["geoscore"]
    assert abs(scores["one"] - scores["two"]) < 0.1 * scores["one"], scores


def test_embedding_dropout_is_reproducible_and_only_acts_in_training():
    from globeflow.flow import GeoFlowModel, ModelConfig
    from globeflow.flow.network import NetworkConfig

    torch.manual_seed(0)
    net = NetworkConfig(cond_dim=8, dim=16, depth=1)
    plain, dropped = GeoFlowModel(ModelConfig(net)), GeoFlowModel(ModelConfig(net, emb_dropout=0.5))
    dropped.load_state_dict(plain.state_dict())
    latlon, emb, _ = make_rows(64, seed=0)
    from globeflow import geo
    x1 = geo.latlon_to_xyz(latlon).float()
    loss = lambda m: m.loss(x1, emb, generator=torch.Generator().manual_seed(5))  # noqa: E731
    assert loss(dropped) == loss(dropped)  # the mask comes from the step's generator
    assert loss(dropped) != loss(plain)
    x, g = geo.projx(torch.randn(4, 3)), torch.tensor(0.3)
    torch.testing.assert_close(dropped.velocity(x, g, emb[:4]), plain.velocity(x, g, emb[:4]))
    with pytest.raises(ValueError, match="emb_dropout"):
        ModelConfig(net, emb_dropout=1.0)
    assert ModelConfig.from_dict({k: v for k, v in ModelConfig(net).to_dict().items() if k != "emb_dropout"}) \
        == ModelConfig(net)  # checkpoints written before the field existed still load


def test_weights_that_turn_nan_are_never_saved(data, tmp_path, monkeypatch):
    # Issue 16, defect 1: a NaN setting once saved a checkpoint with half its EMA tensors NaN, and
    # predict answered (90, 0) for every row. Whatever makes the weights non-finite, the save refuses
    # and the last good checkpoint stays.
    loop = sys.modules["globeflow.train.loop"]  # (globeflow.train.train, the function, hides the package)

    def poisoned(ema, model, decay):
        _ema_update(ema, model, decay)
        if poisoned.calls == 12:
            next(iter(ema.parameters())).data.fill_(float("nan"))
        poisoned.calls += 1

    poisoned.calls = 0
    monkeypatch.setattr(loop, "_ema_update", poisoned)
    run = tmp_path / "poisoned"
    with pytest.raises(TrainingError, match=r"became NaN or infinite by step 20 \(ema\..*last good checkpoint"):
        train(data[0], run, network=NET, config=small(steps=30), progress=False)
    assert load_checkpoint(run).meta["step"] == 10
    Geolocator.load(run)  # the kept checkpoint is a good one


def test_a_run_whose_last_step_is_skipped_still_saves(data, tmp_path, monkeypatch):
    # Issue 16, defect 1: with --lr inf --steps 3 the run skipped its last steps and wrote no
    # checkpoint at all. A skipped step is still a step, and the run ends with its final save.
    real = torch.nn.utils.clip_grad_norm_
    calls = []

    def nan_on_last(params, max_norm):
        calls.append(1)
        norm = real(params, max_norm)
        return torch.tensor(float("nan")) if len(calls) == 7 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_on_last)
    result = train(data[0], tmp_path / "skip", network=NET, config=small(steps=7, ckpt_every=100), progress=False)
    assert result.skipped_steps == 1
    assert load_checkpoint(tmp_path / "skip").meta["step"] == 7


def test_loading_non_finite_weights_is_refused(data, tmp_path):
    from globeflow.io.checkpoint import save_checkpoint

    run = tmp_path / "ok"
    train(data[0], run, network=NET, config=small(steps=10), progress=False)
    ck = load_checkpoint(run)
    tensors = dict(ck.tensors)
    key = next(k for k in tensors if k.startswith("ema."))
    tensors[key] = torch.full_like(tensors[key], float("inf"))
    save_checkpoint(run / "checkpoint.safetensors", tensors, model_config=ck.meta["model_config"],
                    train_config=ck.meta["train_config"], step=10, optim_groups=ck.meta["optim_groups"])
    with pytest.raises(CheckpointError, match=f"hold NaN or infinite values \\({key[4:]}"):
        Geolocator.load(run)
