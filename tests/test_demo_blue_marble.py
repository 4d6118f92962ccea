"""``globeflow demo`` on the Blue Marble task, at a tiny size: report contents and the cache."""

from __future__ import annotations

import json
import math

import pytest

from globeflow.apps.demos import blue_marble as demo
from globeflow.apps.tasks.blue_marble import BlueMarbleConfig
from globeflow.train import TrainConfig

TINY = demo.BlueMarbleDemoConfig(
    task=BlueMarbleConfig(train_rows=300, test_rows=24, pixels=32),
    encoder="efficientnet-lite0@32", network=(("dim", 16), ("depth", 1)),
    train=TrainConfig(steps=20, batch_size=64, val_every=10, ckpt_every=10, warmup_steps=5),
    point_samples=8, maps=1, batch_size=128)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, demo.run_blue_marble_demo(out, progress=False, config=TINY)


def test_demo_reports_both_protocols_against_the_baselines(first_run):
    out, report = first_run
    saved = json.loads((out / "report.json").read_text())
    assert saved["protocols"] == json.loads(json.dumps(report["protocols"]))
    for name in ("unseen_regions", "random"):
        r = report["protocols"][name]
        assert r["rows"] == 24
        assert r["uniform_nll"] == pytest.approx(math.log(4 * math.pi))
        assert math.isfinite(r["nll"])
        methods = r["metrics"]
        assert len(methods) == 5 and "nearest neighbours, k = 1" in methods
        for m in methods.values():
            assert 0 <= m["geoscore"] <= 5000 and m["n"] == 24
    # The unseen test patches lie in held-out blocks, so the nearest training patch is far away:
    # no 1-NN prediction can be within the exclusion radius of its test patch.
    nn1 = report["protocols"]["unseen_regions"]["metrics"]["nearest neighbours, k = 1"]
    assert nn1["acc_200km"] == 0.0
    md = (out / "report.md").read_text()
    assert "Unseen regions" in md and "Random split" in md
    assert (out / report["maps"][0]).exists()
    assert (out / "maps" / (report["maps"][0].split("/")[1].replace(".png", "-patch.png"))).exists()


def test_a_second_run_reuses_the_embeddings_the_model_and_the_report(first_run, monkeypatch):
    out, report = first_run

    def no_encoder(*args, **kwargs):
        raise AssertionError("a second run must not embed again")

    monkeypatch.setattr(demo, "load_encoder", no_encoder)  # the name the demo module calls
    cached = demo.run_blue_marble_demo(out, progress=False, config=TINY)
    assert cached["reused_report"] is True
    assert cached["protocols"] == json.loads(json.dumps(report["protocols"]))
    (out / "report.json").unlink()  # re-evaluate: data and model are still reused
    again = demo.run_blue_marble_demo(out, progress=False, config=TINY)
    assert again["reused_trained_model"] is True and "reused_report" not in again
    assert again["protocols"]["random"]["metrics"]["nearest neighbours, k = 1"] == \
        report["protocols"]["random"]["metrics"]["nearest neighbours, k = 1"]
    # Other settings are not served from the cache.
    other = demo.run_blue_marble_demo(out, progress=False, config=TINY, steps=TINY.train.steps + 5)
    assert "reused_report" not in other and other["train_steps"] == TINY.train.steps + 5
