"""What every trained model's facade shares (:class:`Locator`), and reading a model's checkpoint.

:class:`~globeflow.inference.geolocator.Geolocator` (flow models) and
:class:`~globeflow.inference.head_locator.DirectGeolocator` (trained baselines) implement it;
:func:`~globeflow.inference.loading.load_locator` picks the one a checkpoint needs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .. import registry
from ..data.embeddings import Batch, EmbeddingDataset
from ..geo.distance import valid_latlon
from ..io.checkpoint import Checkpoint, CheckpointError, load_checkpoint, require_finite_weights, state_dict_problems
from ..io.device import resolve_device
from ..io.hub import PUBLISHED_MODELS
from .calibration import Recalibration

__all__ = ["Locator", "PointStrategy", "POINT_STRATEGIES", "load_weights", "read_model_checkpoint",
           "checkpoint_kind", "build_checkpoint_model", "Seed", "row_seeds", "first_seed", "seed_list"]

#: A seed: one int for a batch, ``None`` for fresh randomness, or one int per row.
Seed = Union[int, None, Sequence[int]]


def first_seed(seed: Seed) -> int | None:
    """The one seed of what is drawn once for a batch (Hutchinson probes): ``seed`` itself, or the
    first of per-row seeds (0 for none)."""
    if seed is None or isinstance(seed, int):
        return seed
    return int(seed[0]) if len(seed) else 0


def seed_list(seed: Seed, rows: int) -> list:
    """``seed`` as one entry per row: the same one repeated (an int or ``None``), or the per-row seeds."""
    return [seed] * rows if seed is None or isinstance(seed, int) else [int(s) for s in seed]


def row_seeds(seed: int, ids: Sequence[Any]) -> list[int]:
    """One seed per row from the run's ``seed`` and each row's id: a row's answer then never depends
    on its batch, its position or which rows were done before a resume."""
    return [int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:4], "little") for i in ids]

PointStrategy = Literal["geoscore", "mode", "grid", "single"]
POINT_STRATEGIES = ("geoscore", "mode", "grid", "single")


class Locator:
    """What every trained model's facade shares: the device, checked embeddings, seeded generators,
    streaming over a dataset. :class:`Geolocator` (flow models) and
    :class:`~globeflow.inference.head_locator.DirectGeolocator` (trained baselines) build on it."""

    #: The model class this facade answers for (its weights in ``.network``). Set by each subclass.
    model_class: type[torch.nn.Module]

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None, encoder: str | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        #: Name of the image encoder whose embeddings the model was trained on (None: unknown).
        self.encoder = encoder
        #: Where the weights came from, for reports: ``path`` of the weights file, and for hub models
        #: the spec, repository and commit.
        self.source: dict[str, Any] = {}
        #: The conformal recalibration of its credible regions (``calibration.json`` beside the
        #: weights, written by ``globeflow calibrate``), or None: the model's own levels.
        self.calibration: Recalibration | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, device: str | torch.device | None = None):
        """Build the model a loaded checkpoint describes, with its inference (EMA) weights."""
        kind = checkpoint_kind(ckpt)
        if not issubclass(kind.model_class, cls.model_class):
            raise CheckpointError(cls._wrong_model(ckpt, kind.name))
        model = build_checkpoint_model(ckpt)
        load_weights(ckpt, model.network)
        locator = cls(model, device, encoder=(ckpt.meta.get("extra") or {}).get("encoder"))
        locator.source = {"path": str(ckpt.path)}
        locator.calibration = Recalibration.beside(ckpt.path)
        return locator

    @property
    def config(self):
        return self.model.config

    @property
    def embedding_dim(self) -> int:
        return self.model.cond_dim

    @property
    def has_density(self) -> bool:
        raise NotImplementedError

    def require_density(self) -> None:
        """Raise ``ValueError`` unless the model has an exact, normalised density on the sphere."""
        if not self.has_density:
            raise ValueError(f"no exact log-density on the sphere for a {self.config.kind} model: "
                             f"{self._no_density_reason()}")

    def _no_density_reason(self) -> str:
        return "it has no density"

    @classmethod
    def _wrong_model(cls, ckpt: Checkpoint, kind: str) -> str:
        return f"{ckpt.path}: a {kind} model, which {cls.__name__} does not load"

    def _check_likelihood_args(self, units: str = "sr") -> None:
        self.require_density()
        if units not in ("sr", "km2"):
            raise ValueError(f"units must be 'sr' or 'km2', got {units!r}")

    def _generator(self, seed: "Seed") -> torch.Generator | None:
        """A generator on the model's device seeded with ``seed`` (``None``: fresh randomness; per-row
        seeds: the first row's, for what is not drawn per row)."""
        seed = first_seed(seed)
        return torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None

    def _per_row(self, seed: "Seed", rows: int, draw: Callable[[slice, torch.Generator | None], Tensor]) -> Tensor:
        """``draw(slice(0, rows), generator)`` with one generator for all rows, or, for per-row seeds
        (a sequence of ``rows`` ints), ``draw(slice(i, i + 1), generator_i)`` per row concatenated:
        each row's draw then depends on its own seed only, never on the other rows of its batch."""
        if seed is None or isinstance(seed, int):
            return draw(slice(0, rows), self._generator(seed))
        if len(seed) != rows:
            raise ValueError(f"got {len(seed)} seeds for {rows} rows")
        return torch.cat([draw(slice(i, i + 1), self._generator(int(s))) for i, s in enumerate(seed)])

    def _embeddings(self, embeddings: Tensor | np.ndarray) -> Tensor:
        emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, Tensor) else embeddings)
        if emb.dim() == 1:
            emb = emb.unsqueeze(0)
        if emb.dim() != 2 or emb.shape[1] != self.embedding_dim:
            raise ValueError(f"embeddings must have shape (B, {self.embedding_dim}) for this model, "
                             f"got {tuple(emb.shape)}")
        if not torch.isfinite(emb).all():
            raise ValueError("embeddings contain NaN or infinite values")
        return emb.to(self.device, torch.float32)

    def _latlon(self, latlon: Tensor | np.ndarray, rows: int) -> Tensor:
        """Checked ``(rows, 2)`` degrees as float64 (CPU)."""
        ll = torch.as_tensor(np.asarray(latlon) if not isinstance(latlon, Tensor) else latlon, dtype=torch.float64)
        if ll.shape != (rows, 2) or not valid_latlon(ll).all():
            raise ValueError(f"latlon must be ({rows}, 2) finite degrees in range, got shape {tuple(ll.shape)}")
        return ll

    # --- what every model answers (each subclass implements them) ---------------------------------------

    def sample(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, seed: int | None = 0,
               **solver: Any) -> Tensor:
        """Locations drawn from ``p(location | embedding)``: ``(B, num_samples, 2)`` degrees on the CPU."""
        raise NotImplementedError

    def predict(self, embeddings: Tensor | np.ndarray, **kwargs: Any) -> Tensor:
        """One best guess per embedding: ``(B, 2)`` degrees on the CPU."""
        raise NotImplementedError

    def log_prob(self, embeddings: Tensor | np.ndarray, latlon: Tensor | np.ndarray, **kwargs: Any) -> Tensor:
        """Exact log-density at one location per embedding: ``(B,)`` nats per steradian (or km^2)."""
        raise NotImplementedError

    def sample_with_log_prob(self, embeddings: Tensor | np.ndarray, num_samples: int = 256,
                             **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Samples ``(B, S, 2)`` degrees with their exact log-densities ``(B, S)``, on the CPU."""
        raise NotImplementedError

    def unconditional_embedding(self) -> Tensor:
        """The ``(1, D)`` condition whose density is the training prior ``p(x)`` (what fusing photos
        divides out); models without one raise ``ValueError``."""
        raise ValueError(f"a {self.config.kind} model has no unconditional density, which fusing photos needs")

    def density_maps(self, embeddings: Tensor | np.ndarray, config: Any = None, **kwargs: Any) -> list[Any]:
        """Coarse-to-fine HEALPix density maps, one per embedding (flow models with a density)."""
        raise ValueError(f"density maps need an rfm flow model, not a {self.config.kind} model")

    def predict_batches(self, dataset: EmbeddingDataset, *, batch_size: int = 256, progress: bool = False,
                        metadata: bool = False, **predict_kwargs) -> Iterator[tuple[Batch, Tensor]]:
        """Stream ``(batch, predictions (B, 2))`` over a dataset. Each row is seeded from ``seed`` and
        its id (:func:`row_seeds`), so its prediction does not depend on the batch size or its
        neighbours; ``seed=None`` draws fresh randomness."""
        seed = predict_kwargs.pop("seed", 0)
        for batch in dataset.iter_batches(batch_size, metadata=metadata, progress=progress):
            s = None if seed is None else row_seeds(seed, batch.ids)
            yield batch, self.predict(batch.embedding, seed=s, **predict_kwargs)


def load_weights(ckpt: Checkpoint, network: torch.nn.Module) -> None:
    """Load a checkpoint's inference weights into ``network``; a clear error when they do not fit."""
    weights = ckpt.weights()
    problems = state_dict_problems(network.state_dict(), weights)
    if problems:
        raise CheckpointError(f"{ckpt.path}: weights do not match the model config ({'; '.join(problems)})")
    require_finite_weights(ckpt.path, weights)
    network.load_state_dict(weights)


def checkpoint_kind(ckpt: Checkpoint) -> registry.Kind:
    """The model kind a checkpoint's config names."""
    try:
        return registry.get_kind((ckpt.meta.get("model_config") or {}).get("kind", ""))
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}: invalid model config in checkpoint: {e}") from None


def build_checkpoint_model(ckpt: Checkpoint) -> torch.nn.Module:
    """The model a checkpoint's config describes (weights not loaded), built through the registry."""
    kind = checkpoint_kind(ckpt)
    try:
        config = kind.config_class.from_dict(ckpt.meta["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path}: invalid model config in checkpoint: {e}") from None
    return registry.build_model(config)


def read_model_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A run's inference weights (EMA when present). A missing path that looks like a model name gets
    the list of names, not just "no checkpoint"."""
    if not Path(path).exists() and os.sep not in str(path) and "." not in Path(path).name:
        raise CheckpointError(f"{path}: no such run directory or checkpoint, and not a model name; published "
                              f"models: {', '.join(PUBLISHED_MODELS)} (or hf:owner/name for a hub repository)")
    return load_checkpoint(path, prefixes=("ema", "model"))
