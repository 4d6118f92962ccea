"""Nearest-neighbour retrieval: the location of the most similar training embeddings.

Similarity is the cosine of the embeddings (inner product of L2-normalised vectors, exact search with
faiss's flat index). With ``k > 1`` the prediction is the *spherical mean* of the neighbours'
locations: the normalised mean of their unit vectors (the Frechet-mean approximation that every
retrieval geolocation paper uses); ``k = 1`` returns the nearest neighbour's location unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import geo
from ..io.extras import require

__all__ = ["KNNGeolocator"]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KNNGeolocator:
    """Retrieval baseline over a labelled embedding set.

    Args:
        embeddings: ``(N, D)`` training embeddings.
        latlon: ``(N, 2)`` their locations, degrees.
    """

    def __init__(self, embeddings: np.ndarray, latlon: np.ndarray):
        require("knn", "nearest-neighbour retrieval")
        import faiss  # an optional extra: loaded when a retrieval index is built

        emb = _normalise(embeddings)
        if emb.ndim != 2 or len(emb) == 0:
            raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {emb.shape}")
        latlon = np.asarray(latlon, dtype=np.float64)
        if latlon.shape != (len(emb), 2):
            raise ValueError(f"latlon must be ({len(emb)}, 2), got {latlon.shape}")
        self.index = faiss.IndexFlatIP(emb.shape[1])
        self.index.add(emb)
        self.xyz = geo.latlon_to_xyz(torch.from_numpy(latlon)).numpy()

    def neighbours(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(cosine similarities (B, k), indices (B, k))``, most similar first."""
        if not 1 <= k <= self.index.ntotal:
            raise ValueError(f"k must be in [1, {self.index.ntotal}], got {k}")
        return self.index.search(_normalise(embeddings), k)

    def predict(self, embeddings: np.ndarray, k: int = 1) -> np.ndarray:
        """``(B, 2)`` degrees: the nearest neighbour's location (k = 1) or the spherical mean of k."""
        _, idx = self.neighbours(embeddings, k)
        mean = self.xyz[idx].mean(axis=1)
        # The mean of antipodal neighbours is ~0: fall back to the nearest one rather than a random direction.
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        mean = np.where(norm > 1e-9, mean / np.maximum(norm, 1e-12), self.xyz[idx[:, 0]])
        return geo.xyz_to_latlon(torch.from_numpy(mean)).numpy()
