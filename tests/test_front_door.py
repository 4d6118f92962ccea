"""The front door: ``Geolocator.load(...).locate(images)`` returns typed answers, the same as
``globeflow predict`` on the same photos and seed, for paths, Pillow images, bytes and arrays alike."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import globeflow
from globeflow import Answer, Geolocator
from globeflow.apps.cli import main
from globeflow.data.images import UnreadableImageError
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.inference import AreaShare, Guess

ENCODER = "efficientnet-lite0@32"  # the real offline encoder, at a small input size for speed
FAST = dict(num_samples=32, steps=4)


def _run(tmp_path, kind="rfm"):
    torch.manual_seed(0)
    model = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=1280, dim=16, depth=1), kind=kind))
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(0.3 * torch.randn_like(p))  # a density with structure, not the near-uniform start
    path = tmp_path / f"run-{kind}"
    Geolocator(model, device="cpu", encoder=ENCODER).save(path)
    return path


def test_the_front_door_is_the_package_root():
    assert globeflow.Geolocator is Geolocator and "Geolocator" in globeflow.__all__ and "Answer" in globeflow.__all__


def test_locate_equals_globeflow_predict_on_the_same_photos_and_seed(tmp_path, photos):
    run = _run(tmp_path)
    paths = [str(photos / f"img{i}.jpg") for i in range(3)]
    out = tmp_path / "answers.geojson"
    assert main(["predict", str(run), *paths, "--out", str(out), "--num-samples", "32", "--steps", "4",
                 "--seed", "3"]) == 0
    features = json.loads(out.read_text())["features"]
    answers = Geolocator.load(run, device="cpu").locate(paths, seed=3, **FAST)
    assert [a.source for a in answers] == paths and len(features) == 3
    for answer, feature in zip(answers, features):
        properties = dict(feature["properties"])
        assert properties.pop("id") == answer.source.split("/")[-1].removesuffix(".jpg")
        assert properties.pop("source") == answer.source
        assert properties == json.loads(json.dumps(answer.to_dict()))
        assert feature["geometry"] == answer.to_geojson()["geometry"]


def test_answers_are_typed_and_mean_what_they_say(tmp_path, photos):
    geo = Geolocator.load(_run(tmp_path), device="cpu")
    (answer,) = geo.locate(photos / "img0.jpg", top_k=2, **FAST)  # one image alone
    assert isinstance(answer, Answer) and answer.ok and isinstance(answer.best_guess, Guess)
    assert -90 <= answer.best_guess.lat <= 90 and -180 <= answer.best_guess.lon <= 180
    assert answer.samples.shape == (32, 2) and answer.log_probs.shape == (32,)
    assert all(isinstance(c, AreaShare) for c in answer.countries)
    shares = [c.probability for c in answer.countries]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-9
    # A country's probability is its samples' share: recount it from the samples.
    from globeflow.geo.places import area_keys

    keys = area_keys(answer.samples, "country")
    assert all(math.isclose(c.probability, float(np.mean(keys == c.key))) for c in answer.countries)
    areas = [r.area_km2 for r in answer.credible_regions]
    assert [r.level for r in answer.credible_regions] == [0.5, 0.9, 0.95] and areas == sorted(areas)
    assert len(answer.top_k) <= 2 and answer.units == "nats/sr"
    assert answer.density_map is not None and answer.map["nside"] == answer.density_map.nside == 16
    feature = answer.to_geojson({"id": "x"})
    assert feature["geometry"]["coordinates"] == [answer.best_guess.lon, answer.best_guess.lat]
    assert feature["properties"]["id"] == "x" and feature["properties"]["best_guess"]["lat"] == answer.best_guess.lat


def test_paths_pil_images_bytes_and_arrays_give_the_same_answer(tmp_path):
    png = tmp_path / "scene.png"
    pixels = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(png)
    geo = Geolocator.load(_run(tmp_path), device="cpu")
    inputs = [png, Image.open(png).convert("RGB"), png.read_bytes(), pixels]
    assert [a.source for a in geo.locate(inputs, **FAST)] == [str(png), "image 1", "image 2", "image 3"]
    # The same pixels, however given, are the same embedding and (alone, same seed) the same answer.
    # (In one batch each image draws its own samples from the batch's stream, so positions differ.)
    first = geo.locate(inputs[0], **FAST)[0].to_dict()
    for item in inputs[1:]:
        assert geo.locate(item, **FAST)[0].to_dict() == first


def test_an_unreadable_photo_raises_or_is_reported(tmp_path, photos):
    geo = Geolocator.load(_run(tmp_path), device="cpu")
    broken = photos / "broken.jpg"
    with pytest.raises(UnreadableImageError, match="broken.jpg"):
        geo.locate([photos / "img0.jpg", broken], **FAST)
    good, bad = geo.locate([photos / "img0.jpg", broken], on_unreadable="report", **FAST)
    assert good.ok and not bad.ok and "broken.jpg" in bad.source and bad.error
    assert bad.to_dict() == {"source": str(broken), "error": bad.error}
    assert bad.to_geojson()["geometry"] is None
    with pytest.raises(UnreadableImageError, match="image 0: an image array must be uint8"):
        geo.locate(np.zeros((4, 4, 3), dtype=np.float32), **FAST)
    with pytest.raises(TypeError, match="image 0: expected a path"):
        geo.locate([3.5], **FAST)
    with pytest.raises(ValueError, match="on_unreadable"):
        geo.locate([broken], on_unreadable="ignore")


def test_a_model_without_a_density_answers_with_its_samples(tmp_path, photos):
    geo = Geolocator.load(_run(tmp_path, kind="fm"), device="cpu")
    (answer,) = geo.locate([photos / "img1.jpg"], **FAST)
    assert set(answer.to_dict()) == {"best_guess", "countries"}
    assert answer.density_map is None and answer.top_k is None and answer.samples.shape == (32, 2)


def test_the_encoder_comes_with_the_model(tmp_path, photos):
    geo = Geolocator.load(_run(tmp_path), device="cpu")
    assert geo.image_encoder().name == ENCODER and geo.image_encoder() is geo.image_encoder()
    with pytest.raises(ValueError, match="makes 1024-d embeddings, the model takes 1280-d"):
        geo.use_encoder(type("Other", (), {"dim": 1024, "name": "other"})())
    img = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 200, 30)).save(img, format="PNG")
    assert geo.locate(img.getvalue(), **FAST)[0].ok
