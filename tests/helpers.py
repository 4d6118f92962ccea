"""Small deterministic datasets for tests: a few vMF classes with class-vector embeddings."""

from __future__ import annotations

from pathlib import Path

import torch

from globeflow import geo
from globeflow.data import write_embeddings
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.inference import Geolocator

CENTRES = torch.tensor([[48.0, 2.0], [-33.0, 151.0], [40.0, -74.0], [0.0, 20.0]], dtype=torch.float64)
KAPPAS = torch.tensor([500.0, 500.0, 50.0, 10.0], dtype=torch.float64)
DIM = 8


def make_rows(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(latlon (n, 2) float64, embedding (n, DIM) float32, labels (n,))``."""
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(len(CENTRES), DIM, generator=torch.Generator().manual_seed(1234))
    labels = torch.randint(0, len(CENTRES), (n,), generator=g)
    x = geo.vmf_sample(geo.latlon_to_xyz(CENTRES)[labels], KAPPAS[labels], generator=g)
    emb = vectors[labels] + 0.1 * torch.randn(n, DIM, generator=g)
    return geo.xyz_to_latlon(x), emb.float(), labels


def write_dataset(path: Path, n: int, seed: int) -> Path:
    latlon, emb, labels = make_rows(n, seed)
    return write_embeddings(path, latlon, emb, metadata={"label": labels.tolist()})


def random_geolocator(cond_dim: int = 3):
    """A small rfm model with random weights large enough to give a density with structure."""
    torch.manual_seed(0)
    m = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=cond_dim, dim=16, depth=2)))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.4)
    torch.nn.init.normal_(m.network.final_linear.weight, std=0.05)
    return Geolocator(m, device="cpu")
