"""A tiny model behind the web app for the API and browser tests (real encoder, random network)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import torch
from PIL import Image

from globeflow.apps.server import Predictor, ServeConfig
from globeflow.data.encoders import load_encoder
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.inference import Geolocator
from globeflow.inference.answers import AnswerConfig
from globeflow.inference.density import MapConfig

ENCODER = "efficientnet-lite0@32"  # the real offline encoder, at a small input size for speed
FAST = ServeConfig(answers=AnswerConfig(num_samples=16, steps=2, solver="rk4", error_check=0, top_k=3,
                                        map=MapConfig(nside=8, start_nside=4, max_cells=16, exact_top=16)),
                   grid_width=72)


def tiny_predictor(config: ServeConfig = FAST, **changes) -> Predictor:
    torch.manual_seed(0)
    model = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=1280, dim=16, depth=1)))
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(0.3 * torch.randn_like(p))  # a density with structure, not the near-uniform start
    locator = Geolocator(model, device="cpu", encoder=ENCODER)
    return Predictor(locator, load_encoder(ENCODER), dataclasses.replace(config, **changes), name="tiny-test-model")


def jpeg_bytes(colour=(120, 160, 200), size=(48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def write_jpeg(path: Path, colour=(120, 160, 200)) -> Path:
    path.write_bytes(jpeg_bytes(colour))
    return path
