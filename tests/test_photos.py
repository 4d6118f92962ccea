"""``globeflow predict`` on photos: encoder from the checkpoint, answers per photo, skipped images."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from globeflow.apps.cli import main
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.inference import Geolocator

ENCODER = "efficientnet-lite0@32"  # the real offline encoder, at a small input size for speed


def _run(tmp_path, kind="rfm", encoder=ENCODER):
    torch.manual_seed(0)
    model = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=1280, dim=16, depth=1), kind=kind))
    path = tmp_path / f"run-{kind}"
    Geolocator(model, device="cpu", encoder=encoder).save(path)
    return path


def _settings():
    return ["--num-samples", "32", "--steps", "4"]


def test_predict_on_a_folder_of_photos_writes_answers_and_skips_the_broken_one(tmp_path, photos, capsys):
    out = tmp_path / "answers.csv"
    maps = tmp_path / "maps"
    assert main(["predict", str(_run(tmp_path)), str(photos), "--out", str(out), "--maps", str(maps),
                 "--top-k", "2", *_settings()]) == 0
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["photos"] == 4 and summary["skipped_images"] == 1 and summary["encoder"] == ENCODER
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["gps", "img0", "img1", "img2"]
    for r in rows:
        assert -90 <= float(r["lat"]) <= 90 and -180 <= float(r["lon"]) <= 180
        p1, p2 = float(r["place1_probability"]), float(r["place2_probability"] or 0)
        assert 0 < p2 <= p1 <= 1
        assert float(r["country1_probability"]) >= float(r["country2_probability"] or 0)
        # A density on the sphere can be no flatter than uniform: localizability >= 0 bits (up to noise).
        assert float(r["localizability_bits"]) > -0.5
    # The EXIF position is kept as the truth of that photo.
    assert float(rows[0]["true_lat"]) == pytest.approx(-33.86, abs=1e-4)
    assert sorted(p.name for p in maps.glob("*.png")) == ["gps.png", "img0.png", "img1.png", "img2.png"]


def test_predict_on_photos_as_geojson_and_for_a_model_without_density(tmp_path, photos, capsys):
    out = tmp_path / "answers.geojson"
    assert main(["predict", str(_run(tmp_path, kind="fm")), str(photos / "img0.jpg"), str(photos / "img1.jpg"),
                 "--out", str(out), *_settings()]) == 0
    features = json.loads(out.read_text())["features"]
    assert [f["properties"]["id"] for f in features] == ["img0", "img1"]
    for f in features:
        lon, lat = f["geometry"]["coordinates"]
        assert (lat, lon) == (f["properties"]["best_guess"]["lat"], f["properties"]["best_guess"]["lon"])
        assert sum(c["probability"] for c in f["properties"]["countries"]) <= 1 + 1e-9
        assert "localizability" not in f["properties"]  # no density, no entropy-based score


def test_predict_on_photos_needs_a_matching_encoder(tmp_path, photos, capsys):
    out = tmp_path / "a.csv"
    assert main(["predict", str(_run(tmp_path, encoder=None)), str(photos), "--out", str(out)]) == 2
    assert "pass --encoder" in capsys.readouterr().err
    run = _run(tmp_path)
    with pytest.raises(SystemExit):
        main(["predict", str(run), str(photos), "--out", str(out), "--kind", "nonsense"])
    assert not out.exists()
