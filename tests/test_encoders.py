"""Image encoders: dimensions, the pooling each published model expects, preprocessing invariants,
batch consistency, the embedded EfficientNet-Lite0 weights, and offline failures. Nothing is downloaded:
Hugging Face towers are tiny random models built from configs."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import globeflow.data.encoders as E
from globeflow.data.encoders import EncoderUnavailableError, load_encoder
from globeflow.data.encoders.base import IMAGENET_MEAN, IMAGENET_STD
from globeflow.data.encoders.efficientnet import LITE_MEAN, LITE_STD, EfficientNetLite0, default_weights_path
from globeflow.data.encoders.hf import CLIP_MEAN, CLIP_STD, SIGLIP_MEAN, SIGLIP_STD

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)
MEAN_STD = {"clip": (CLIP_MEAN, CLIP_STD), "streetclip": (CLIP_MEAN, CLIP_STD), "siglip": (SIGLIP_MEAN, SIGLIP_STD),
            "dinov2": (IMAGENET_MEAN, IMAGENET_STD), "efficientnet": (LITE_MEAN, LITE_STD)}


def _tiny(kind: str) -> E.Encoder:
    torch.manual_seed(0)
    if kind == "clip":
        return E.CLIPVisionEncoder.from_config(transformers.CLIPVisionConfig(**TINY))
    if kind == "streetclip":
        return E.StreetCLIPEncoder.from_config(transformers.CLIPVisionConfig(**TINY))
    if kind == "siglip":
        return E.SiglipVisionEncoder.from_config(transformers.SiglipVisionConfig(**TINY))
    if kind == "dinov2":
        config = transformers.Dinov2WithRegistersConfig(**TINY, num_register_tokens=4)
        return E.DINOv2RegEncoder.from_config(config, image_size=32)
    return EfficientNetLite0(image_size=64, pretrained=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a shared, busy CPU, torch's OpenMP threads spin against each other: one thread runs these
    # tiny models tens of times faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoders() -> dict[str, E.Encoder]:
    return {kind: _tiny(kind) for kind in MEAN_STD}


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    return EfficientNetLite0()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    import matplotlib.cbook

    return Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")


def _noise(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8), mode)


def test_all_names_importable():
    for name in E.__all__:
        assert getattr(E, name) is not None


def test_package_imports_transformers_only_inside_functions():
    """``import globeflow.encoders`` must stay light: no module-level ``transformers`` import
    (a subprocess check would cost seconds of torch start-up)."""
    for module in (E, E.base, E.efficientnet, E.hf):
        tree = ast.parse(Path(module.__file__).read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.split(".")[0] == "transformers"], module.__name__


@pytest.mark.parametrize("kind,dim", [("clip", 32), ("streetclip", 32), ("siglip", 32), ("dinov2", 32),
                                      ("efficientnet", 1280)])
def test_embedding_dimension(encoders, kind, dim):
    enc = encoders[kind]
    emb = enc.embed_images([_noise(50, 40, 0), _noise(33, 61, 1)])
    assert enc.dim == dim and emb.shape == (2, dim) and emb.dtype == torch.float32
    # not degenerate: order-one features that tell two images apart
    assert torch.isfinite(emb).all() and emb.abs().mean() > 1e-2 and (emb[0] - emb[1]).abs().max() > 1e-3


def test_streetclip_is_cls_token_before_post_layernorm(encoders):
    enc = encoders["streetclip"]
    px = enc.preprocess([_noise(40, 40, 2), _noise(60, 45, 3)])
    emb = enc.embed(px)
    with torch.no_grad():
        out = enc.model(pixel_values=px, output_hidden_states=True)
    torch.testing.assert_close(emb, out.last_hidden_state[:, 0])
    torch.testing.assert_close(emb, out.hidden_states[-1][:, 0])
    # the pooled output is this token after post_layernorm, so it is a different vector
    assert (emb - out.pooler_output).abs().max() > 1e-2
    torch.testing.assert_close(enc.model.post_layernorm(emb), out.pooler_output)


def test_dinov2_is_normalised_cls_token(encoders):
    enc = encoders["dinov2"]
    px = enc.preprocess([_noise(40, 40, 4)])
    with torch.no_grad():
        out = enc.model(pixel_values=px, output_hidden_states=True)
    pre_norm_cls = out.hidden_states[-1][:, 0]
    emb = enc.embed(px)
    torch.testing.assert_close(emb, enc.model.layernorm(pre_norm_cls))
    assert (emb - pre_norm_cls).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_generic_towers_use_pooled_output(encoders, kind):
    enc = encoders[kind]
    px = enc.preprocess([_noise(40, 30, 5)])
    with torch.no_grad():
        pooled = enc.model(pixel_values=px).pooler_output
    torch.testing.assert_close(enc.embed(px), pooled)


@pytest.mark.parametrize("kind", list(MEAN_STD))
def test_batch_equals_one_at_a_time(encoders, kind):
    enc = encoders[kind]
    images = [_noise(50, 40, 6), _noise(20, 70, 7), _noise(64, 64, 8)]
    batch = enc.embed_images(images)
    alone = torch.cat([enc.embed_images([im]) for im in images])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(MEAN_STD))
@pytest.mark.parametrize("size", [(90, 60), (60, 90), (7, 5)])
def test_preprocess_shape(encoders, kind, size):
    enc = encoders[kind]
    px = enc.preprocess([_noise(*size, 9), _noise(*size, 10)])
    assert px.shape == (2, 3, enc.image_size, enc.image_size) and px.dtype == torch.float32


@pytest.mark.parametrize("kind", ["dinov2", "efficientnet"])
@pytest.mark.parametrize("size,box", [((90, 60), (15, 0, 75, 60)), ((61, 80), (0, 9, 61, 70))])
def test_square_centre_crop(encoders, kind, size, box):
    enc = encoders[kind]
    image = _noise(*size, 11)
    torch.testing.assert_close(enc.preprocess([image]), enc.preprocess([image.crop(box)]), atol=0, rtol=0)


@pytest.mark.parametrize("kind", list(MEAN_STD))
def test_constant_image_normalises_to_closed_form(encoders, kind):
    enc = encoders[kind]
    rgb = (200, 30, 117)
    px = enc.preprocess([Image.new("RGB", (45, 70), rgb)])[0]
    mean, std = MEAN_STD[kind]
    expected = [(c / 255 - m) / s for c, m, s in zip(rgb, mean, std)]
    for channel, value in zip(px, expected):
        torch.testing.assert_close(channel, torch.full_like(channel, value), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["clip", "dinov2", "efficientnet"])
def test_other_modes_become_rgb(encoders, kind):
    enc = encoders[kind]
    mean, std = MEAN_STD[kind]
    grey = enc.preprocess([Image.new("L", (40, 40), 90)])[0]
    clear = enc.preprocess([Image.new("RGBA", (40, 40), (0, 0, 0, 0))])[0]  # fully transparent black
    assert grey.shape[0] == clear.shape[0] == 3
    for c in range(3):
        assert grey[c].sub((90 / 255 - mean[c]) / std[c]).abs().max() < 1e-5
        # transparent pixels are composited on white, not left at their stored black
        assert clear[c].sub((1 - mean[c]) / std[c]).abs().max() < 1e-5
    for image in (_noise(30, 20, 12, "RGBA"), Image.new("LA", (30, 20)), Image.new("P", (30, 20)),
                  Image.new("I;16", (30, 20)), Image.new("CMYK", (30, 20))):
        assert enc.preprocess([image]).shape == (1, 3, enc.image_size, enc.image_size)


def test_clip_and_siglip_preprocessing_match_transformers_processors(encoders):
    images = [_noise(70, 50, 13), _noise(41, 90, 14)]
    clip = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    torch.testing.assert_close(encoders["clip"].preprocess(images),
                               clip(images=images, return_tensors="pt")["pixel_values"], atol=1e-5, rtol=0)
    siglip = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    torch.testing.assert_close(encoders["siglip"].preprocess(images),
                               siglip(images=images, return_tensors="pt")["pixel_values"], atol=1e-5, rtol=0)


def test_frozen_encoder_stays_in_eval_mode(encoders):
    enc = encoders["efficientnet"]
    parent = torch.nn.Sequential(enc)
    parent.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    assert not any(p.requires_grad for p in enc.parameters())


def test_embed_casts_pixels_to_the_module_and_returns_float32(encoders):
    enc = _tiny("clip")
    px = enc.preprocess([_noise(40, 40, 15)])
    reference = enc.embed(px)
    out = enc.to(torch.float64).embed(px)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)


def test_lite0_loads_the_wheel_weights(lite0):
    weights = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    state = lite0.model.state_dict()
    assert state.keys() == weights.keys()
    for key, tensor in weights.items():
        assert torch.equal(state[key], tensor), key


def test_lite0_pretrained_features_see_the_photo(lite0, photo):
    emb = lite0.embed_images([photo, Image.new("RGB", (224, 224), (120, 160, 200))])
    assert emb.shape == (2, 1280) and (emb[0] - emb[1]).abs().max() > 0.1
    # the pooled features feed the ImageNet classifier: Grace Hopper is in uniform (class 652)
    with torch.no_grad():
        assert lite0.model._fc(emb[:1]).argmax().item() == 652


def test_lite0_normalisation_matches_its_batchnorm_statistics(lite0, photo):
    """The stem's batch-norm input has about its running variance with (x - 127) / 128, and several
    times more with ImageNet mean/std: the weights were trained on TensorFlow's Lite preprocessing."""
    x = lite0.preprocess([photo]) * torch.tensor(LITE_STD).view(1, 3, 1, 1) + torch.tensor(LITE_MEAN).view(1, 3, 1, 1)
    bn = lite0.model._bn0

    def variance_ratio(mean, std):
        z = lite0.model._conv_stem((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
        return (z.var(dim=(0, 2, 3)) / bn.running_var).median().item()

    with torch.no_grad():
        assert 0.5 < variance_ratio(LITE_MEAN, LITE_STD) < 2.0
        assert variance_ratio(IMAGENET_MEAN, IMAGENET_STD) > 3.0


def test_lite0_small_inputs(photo):
    enc = load_encoder("efficientnet-lite0@64")
    assert enc.name == "efficientnet-lite0@64" and enc.image_size == 64
    assert enc.embed_images([photo]).shape == (1, 1280)
    with pytest.raises(ValueError, match="64x64"):
        enc.embed(torch.zeros(1, 3, 224, 224))


def test_lite0_missing_weights_file(tmp_path):
    with pytest.raises(EncoderUnavailableError, match="efficientnet-lite0") as err:
        load_encoder("efficientnet-lite0", path=tmp_path / "nope.pth")
    assert "nope.pth" in str(err.value)


@pytest.mark.parametrize("name,source", [("streetclip", "geolocal/StreetCLIP"),
                                         ("dinov2-vitl14-reg", "facebook/dinov2-with-registers-large"),
                                         ("clip:openai/clip-vit-base-patch32", "openai/clip-vit-base-patch32"),
                                         ("siglip:google/siglip-base-patch16-224", "google/siglip-base-patch16-224")])
def test_offline_without_weights_raises_unavailable(monkeypatch, tmp_path, name, source):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(EncoderUnavailableError) as err:
        load_encoder(name)
    message = str(err.value)
    assert name in message and source in message and str(tmp_path) in message
    assert "offline" in message and "--encoder-path" in message


def test_missing_local_folder_raises_unavailable(tmp_path):
    with pytest.raises(EncoderUnavailableError, match="streetclip") as err:
        load_encoder("streetclip", path=tmp_path / "absent")
    assert "absent" in str(err.value)


def test_local_folder_loads_offline(monkeypatch, tmp_path):
    """StreetCLIP ships as a full CLIPModel; its vision tower loads from a local folder with no hub."""
    torch.manual_seed(1)
    text = transformers.CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                       num_attention_heads=4, vocab_size=99)
    vision = transformers.CLIPVisionConfig(**TINY)
    full = transformers.CLIPModel(transformers.CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict()))
    full.save_pretrained(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_encoder("streetclip", path=tmp_path)
    assert enc.name == "streetclip" and enc.dim == 32 and enc.image_size == 32
    px = enc.preprocess([_noise(50, 40, 16)])
    with torch.no_grad():
        expected = full.vision_model(pixel_values=px).last_hidden_state[:, 0]
    torch.testing.assert_close(enc.embed(px), expected)
    generic = load_encoder("clip:my/clip", path=tmp_path)
    assert generic.name == "clip:my/clip"
    with torch.no_grad():
        pooled = full.vision_model(pixel_values=px).pooler_output
    torch.testing.assert_close(generic.embed(px), pooled)


@pytest.mark.parametrize("name", ["resnet50", "clip:", "efficientnet-lite0@x", "efficientnet-lite0@0"])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(ValueError) as err:
        load_encoder(name)
    message = str(err.value)
    if "@" not in name:
        assert all(valid in message for valid in E.ENCODER_NAMES) and "clip:<hub id or path>" in message


def test_an_encoder_path_that_is_a_file_is_named_as_one(tmp_path):
    from globeflow.data.encoders import EncoderUnavailableError
    from globeflow.data.encoders.hf import local_folder

    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(EncoderUnavailableError, match="which is a file, not a folder"):
        local_folder(f, "streetclip")
    with pytest.raises(EncoderUnavailableError, match="which does not exist"):
        local_folder(tmp_path / "nope", "streetclip")
