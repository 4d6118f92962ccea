"""The user-facing facade: :class:`Geolocator` loads a trained model and answers "where?".

>>> geo = Geolocator.load("runs/demo")                       # doctest: +SKIP
>>> latlon = geo.predict(embeddings)                          # (B, 2) degrees
>>> samples = geo.sample(embeddings, num_samples=100)         # (B, 100, 2) degrees
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from . import geometry as geo
from .checkpoint import (CHECKPOINT_NAME, Checkpoint, CheckpointError, load_checkpoint, save_checkpoint,
                         state_dict_problems)
from .data import Batch, EmbeddingDataset
from .density import DensityMap, MapConfig, refine_map
from .likelihood import KM2_OFFSET, ModelField, log_prob_ode, sample_log_prob_ode
from .metrics import valid_latlon
from .models import PUBLISHED_SAMPLER, GeoFlowModel, ModelConfig, SamplerConfig
from .points import best_expected_geoscore
from .training import resolve_device

__all__ = ["Locator", "Geolocator", "load_locator", "load_weights", "PointStrategy", "POINT_STRATEGIES", "PROTOCOLS"]

PointStrategy = Literal["geoscore", "mode", "grid", "single"]
POINT_STRATEGIES = ("geoscore", "mode", "grid", "single")
#: Sampler presets: globeflow's defaults per model type, or the published package's.
PROTOCOLS = ("globeflow", "published")

#: Rows (images x points) per network call in likelihood solves: bounds memory, keeps batches big.
_POINTS_PER_CALL = 8192


class Locator:
    """What every trained model's facade shares: the device, checked embeddings, seeded generators,
    streaming over a dataset. :class:`Geolocator` (flow models) and
    :class:`~globeflow.baselines.locator.DirectGeolocator` (trained baselines) build on it."""

    #: What a checkpoint of this facade holds: a config class with ``from_dict`` and the model class
    #: built from it (with its weights in ``.network``). Set by each subclass.
    config_class: Any
    model_class: Any

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None, encoder: str | None = None):
        self.device = resolve_device(str(device) if device is not None else None)
        self.model = model.to(self.device).eval().requires_grad_(False)
        #: Name of the image encoder whose embeddings the model was trained on (None: unknown).
        self.encoder = encoder
        #: Where the weights came from, for reports: ``path`` of the weights file, and for hub models
        #: the spec, repository and commit.
        self.source: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, device: str | torch.device | None = None):
        """Build the model a loaded checkpoint describes, with its inference (EMA) weights."""
        try:
            config = cls.config_class.from_dict(ckpt.meta["model_config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{ckpt.path}: invalid model config in checkpoint: {e}") from None
        model = cls.model_class(config)
        load_weights(ckpt, model.network)
        locator = cls(model, device, encoder=(ckpt.meta.get("extra") or {}).get("encoder"))
        locator.source = {"path": str(ckpt.path)}
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

    def _check_likelihood_args(self, units: str = "sr") -> None:
        self.require_density()
        if units not in ("sr", "km2"):
            raise ValueError(f"units must be 'sr' or 'km2', got {units!r}")

    def _generator(self, seed: int | None) -> torch.Generator | None:
        """A generator on the model's device seeded with ``seed`` (``None``: fresh randomness)."""
        return torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None

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

    def predict(self, embeddings: Tensor | np.ndarray, **kwargs) -> Tensor:
        raise NotImplementedError

    def predict_batches(self, dataset: EmbeddingDataset, *, batch_size: int = 256, progress: bool = False,
                        metadata: bool = False, **predict_kwargs) -> Iterator[tuple[Batch, Tensor]]:
        """Stream ``(batch, predictions (B, 2))`` over a dataset; seeds differ per batch, reproducibly."""
        seed = predict_kwargs.pop("seed", 0)
        for i, batch in enumerate(dataset.iter_batches(batch_size, metadata=metadata, progress=progress)):
            s = None if seed is None else seed + i
            yield batch, self.predict(batch.embedding, seed=s, **predict_kwargs)


def load_weights(ckpt: Checkpoint, network: torch.nn.Module) -> None:
    """Load a checkpoint's inference weights into ``network``; a clear error when they do not fit."""
    weights = ckpt.weights()
    problems = state_dict_problems(network.state_dict(), weights)
    if problems:
        raise CheckpointError(f"{ckpt.path}: weights do not match the model config ({'; '.join(problems)})")
    network.load_state_dict(weights)


def load_locator(path: str | os.PathLike, device: str | torch.device | None = None) -> "Locator":
    """Load any trained model: a :class:`Geolocator` for flow models (rfm, fm, diffusion), a
    :class:`~globeflow.baselines.locator.DirectGeolocator` for trained baselines (vmf, ...).

    ``path``: a run directory or checkpoint file, or a hub model (a published name such as
    ``plonk-osv5m``, ``plonk-osv5m:DIR``, ``hf:owner/name``, a hub-layout folder; see
    :mod:`globeflow.hub.registry`).
    """
    from .baselines.direct import HEAD_KINDS
    from .hub import is_hub_spec, load_hub_locator

    if is_hub_spec(path):
        return load_hub_locator(path, device)
    ckpt = _read_model_checkpoint(path)
    if (ckpt.meta.get("model_config") or {}).get("kind") in HEAD_KINDS:
        from .baselines.locator import DirectGeolocator

        return DirectGeolocator.from_checkpoint(ckpt, device)
    return Geolocator.from_checkpoint(ckpt, device)


def _read_model_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A run's inference weights (EMA when present). A missing path that looks like a model name gets
    the list of names, not just "no checkpoint"."""
    from .hub import PUBLISHED_MODELS

    if not Path(path).exists() and os.sep not in str(path) and "." not in Path(path).name:
        raise CheckpointError(f"{path}: no such run directory or checkpoint, and not a model name; published "
                              f"models: {', '.join(PUBLISHED_MODELS)} (or hf:owner/name for a hub repository)")
    return load_checkpoint(path, prefixes=("ema", "model"))


class Geolocator(Locator):
    """A trained generative geolocator on one device.

    Args:
        model: the model (its weights are used as they are: load EMA weights for inference).
        device: ``None``/``"auto"`` for CUDA when available, else CPU.
    """

    model: GeoFlowModel
    config_class, model_class = ModelConfig, GeoFlowModel

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Geolocator":
        """Load a run directory or checkpoint file (EMA weights when present), or a hub model (a
        published name such as ``plonk-osv5m``, ``hf:owner/name``, a hub-layout folder)."""
        from .hub import is_hub_spec, load_hub_locator

        if is_hub_spec(path):
            return load_hub_locator(path, device)
        return cls.from_checkpoint(_read_model_checkpoint(path), device)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, device: str | torch.device | None = None) -> "Geolocator":
        from .baselines.direct import HEAD_KINDS

        kind = (ckpt.meta.get("model_config") or {}).get("kind")
        if kind in HEAD_KINDS:
            raise CheckpointError(f"{ckpt.path}: a {kind} baseline, not a flow model; predict, evaluate and "
                                  "log-prob accept it (globeflow.api.load_locator loads it in Python), photo "
                                  "answers and maps need a flow model")
        return super().from_checkpoint(ckpt, device)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an inference checkpoint (weights + config) to a directory or file path."""
        p = Path(path)
        if p.suffix != ".safetensors":
            p = p / CHECKPOINT_NAME
        tensors = {f"ema.{k}": v for k, v in self.model.network.state_dict().items()}
        return save_checkpoint(p, tensors, model_config=self.config.to_dict(), extra={"encoder": self.encoder})

    def sampler(self, steps: int | None = None, cfg: float | None = None, method: str | None = None,
                step: str | None = None, protocol: str = "globeflow") -> SamplerConfig:
        """The model's sampler with the given fields overridden: globeflow's default for its type, or
        with ``protocol="published"`` the published package's (Euler or DDIM, 250 steps)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown sampling protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
        base = PUBLISHED_SAMPLER[self.config.kind] if protocol == "published" else self.model.default_sampler()
        changes = {k: v for k, v in dict(steps=steps, guidance=cfg, method=method, step=step).items() if v is not None}
        return replace(base, **changes)

    def point_sampler(self, strategy: str = "geoscore", steps: int | None = None, cfg: float | None = None,
                      method: str | None = None, protocol: str = "globeflow") -> SamplerConfig:
        """The sampler :meth:`predict` draws with for ``strategy``: unguided by default, guidance 2 for
        a single sample (the published recipe). ``mode`` and ``grid`` solve the likelihood ODE instead
        (RK4, ``steps`` or 16), which is what their config describes."""
        if strategy in ("mode", "grid"):
            return SamplerConfig(method="rk4", steps=steps or 16, guidance=cfg or 0.0)
        return self.sampler(steps, cfg if cfg is not None else (2.0 if strategy == "single" else 0.0), method,
                            protocol=protocol)

    def sample_xyz(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, steps: int | None = None,
                   cfg: float | None = None, method: str | None = None, seed: int | None = 0,
                   protocol: str = "globeflow") -> Tensor:
        """Samples as unit vectors ``(B, S, 3)`` on the model's device."""
        return self._draw(embeddings, num_samples, self.sampler(steps, cfg, method, protocol=protocol), seed)

    def _draw(self, embeddings: Tensor | np.ndarray, num_samples: int, sampler: SamplerConfig,
              seed: int | None) -> Tensor:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        return self.model.sample(self._embeddings(embeddings), num_samples, sampler, generator=self._generator(seed))

    def sample(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, steps: int | None = None,
               cfg: float | None = None, method: str | None = None, seed: int | None = 0,
               protocol: str = "globeflow") -> Tensor:
        """Draw locations from ``p(location | embedding)``.

        Args:
            embeddings: ``(B, D)`` (or ``(D,)``) image embeddings.
            num_samples: samples per embedding.
            steps, cfg, method: solver steps, guidance scale ``w``, solver name (model defaults).
            seed: for reproducible samples (``None``: fresh randomness).
            protocol: ``"globeflow"`` (default sampler) or ``"published"`` (the published package's).
        Returns:
            Tensor: ``(B, num_samples, 2)`` (lat, lon) degrees, on the CPU.
        """
        return geo.xyz_to_latlon(self.sample_xyz(embeddings, num_samples, steps=steps, cfg=cfg, method=method,
                                                 seed=seed, protocol=protocol).double()).cpu()

    def predict(self, embeddings: Tensor | np.ndarray, *, strategy: PointStrategy = "geoscore",
                num_samples: int = 256, steps: int | None = None, cfg: float | None = None,
                method: str | None = None, seed: int | None = 0, protocol: str = "globeflow") -> Tensor:
        """One best guess per embedding, ``(B, 2)`` (lat, lon) degrees on the CPU.

        ``strategy="geoscore"`` (default): draw ``num_samples`` unguided samples and keep the one with
        the highest expected GeoScore against the others (see :mod:`globeflow.points`).
        ``strategy="mode"``: draw ``num_samples`` unguided samples with their exact densities and keep
        the densest (mode seeking; rfm only).
        ``strategy="grid"``: the centre of the densest cell of the coarse-to-fine density map
        (:meth:`density_maps` with its defaults; rfm only, and the slowest).
        ``strategy="single"``: one sample with guidance ``cfg`` (2 by default), the published recipe.
        ``protocol="published"`` samples with the published sampler (Euler or DDIM, 250 steps); with
        ``strategy="single"`` that is the published evaluation protocol.
        """
        if strategy in ("mode", "grid") and (protocol != "globeflow" or method is not None):
            raise ValueError(f"point strategy {strategy!r} solves the likelihood ODE (RK4), so a sampler "
                             f"protocol or method does not apply; use 'single' or 'geoscore' with them")
        if strategy == "mode":
            latlon, logp = self.sample_with_log_prob(embeddings, num_samples, steps=steps or 16,
                                                     cfg=cfg or 0.0, seed=seed)
            return latlon[torch.arange(latlon.shape[0]), logp.argmax(dim=1)]
        if strategy == "grid":
            maps = self.density_maps(embeddings, steps=steps or 16, cfg=cfg or 0.0, seed=seed)
            return torch.tensor([m.argmax() for m in maps], dtype=torch.float64)
        if strategy not in ("geoscore", "single"):
            raise ValueError(f"unknown point strategy {strategy!r}; expected one of {', '.join(POINT_STRATEGIES)}")
        sampler = self.point_sampler(strategy, steps, cfg, method, protocol)
        xyz = self._draw(embeddings, num_samples if strategy == "geoscore" else 1, sampler, seed)
        best = best_expected_geoscore(xyz.double()) if strategy == "geoscore" else xyz[:, 0].double()
        return geo.xyz_to_latlon(best).cpu()

    @property
    def has_density(self) -> bool:
        """Whether the model has an exact, normalised density on the sphere (rfm models)."""
        return self.config.kind == "rfm"

    def _no_density_reason(self) -> str:
        return ("its density lives in R^3 (its restriction to the sphere is not a normalised density); "
                "exact log-densities on the sphere need an rfm model")

    def log_prob(self, embeddings: Tensor | np.ndarray, latlon: Tensor | np.ndarray, *, steps: int = 16,
                 method: str = "rk4", cfg: float = 0.0, divergence: str = "exact", units: str = "sr",
                 rtol: float = 1e-5, atol: float = 1e-5, seed: int | None = 0) -> Tensor:
        """Exact log-density of the model at given locations, ``(B,)`` on the CPU.

        Args:
            embeddings: ``(B, D)``; latlon: ``(B, 2)`` degrees, one location per embedding.
            steps, method: fixed-step ``"rk4"`` on the schedule's grid, or adaptive ``"dopri5"``.
            cfg: guidance scale (the guided field's density is also normalised).
            divergence: ``"exact"`` or ``"hutchinson"`` (see :mod:`globeflow.likelihood`).
            units: ``"sr"`` for nats per steradian, ``"km2"`` for nats per km^2.
        Raises:
            ValueError: for the R^3 variants (``fm``, ``diffusion``), whose densities live in R^3:
                restricted to the sphere they are not normalised, so no number is returned.
        """
        self._check_likelihood_args(units)
        emb = self._embeddings(embeddings)
        ll = self._latlon(latlon, emb.shape[0])
        x = geo.latlon_to_xyz(ll).to(self.device, torch.float32)
        gen = self._generator(seed)
        grid = self.model.schedule.sampling_grid(steps, device=self.device)
        result = log_prob_ode(ModelField(self.model, emb, cfg), x, grid=grid, method=method,
                              divergence_kind=divergence, rtol=rtol, atol=atol, generator=gen)  # type: ignore[arg-type]
        out = result.log_prob.double().cpu()
        return out + KM2_OFFSET if units == "km2" else out

    def sample_with_log_prob(self, embeddings: Tensor | np.ndarray, num_samples: int = 256, *, steps: int = 16,
                             cfg: float = 0.0, divergence: str = "exact", units: str = "sr",
                             seed: int | None = 0) -> tuple[Tensor, Tensor]:
        """Samples and their exact log-densities from one forward solve (see
        :func:`globeflow.likelihood.sample_log_prob_ode`).

        Returns:
            ``latlon (B, S, 2)`` degrees and ``log_prob (B, S)`` (nats per ``units``), on the CPU.
        """
        self._check_likelihood_args(units)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        emb = self._embeddings(embeddings)
        gen = self._generator(seed)
        x0 = self.model.path.prior((emb.shape[0], num_samples), generator=gen, device=self.device)
        grid = self.model.schedule.sampling_grid(steps, device=self.device)
        per_call = max(1, _POINTS_PER_CALL // num_samples)
        xs, lps = [], []
        for i in range(0, emb.shape[0], per_call):
            e = emb[i:i + per_call]
            r = sample_log_prob_ode(ModelField(self.model, e, cfg), x0[i:i + per_call], grid=grid,
                                    divergence_kind=divergence, generator=gen)  # type: ignore[arg-type]
            xs.append(r.x)
            lps.append(r.log_prob)
        latlon = geo.xyz_to_latlon(geo.projx(torch.cat(xs).double())).cpu()
        logp = torch.cat(lps).double().cpu()
        return latlon, logp + KM2_OFFSET if units == "km2" else logp

    def log_density_points(self, emb: Tensor, x: np.ndarray, *, steps: int = 16, cfg: float = 0.0,
                           divergence: str = "exact", seed: int | None = 0) -> tuple[np.ndarray, int]:
        """Exact log-densities (nats/sr) at many points per image: ``emb (B, D)``, ``x (B, P, 3)`` ->
        ``((B, P), field evaluations)``. Points are batched per image so that its conditioning is
        computed once per network call."""
        self._check_likelihood_args()
        b, p = x.shape[:2]
        gen = self._generator(seed)
        grid = self.model.schedule.sampling_grid(steps, device=self.device)
        xt = torch.from_numpy(np.array(x, dtype=np.float32)).to(self.device)  # a copy: x may be read-only
        out = np.empty((b, p), dtype=np.float64)
        nfe = 0
        rows = max(1, _POINTS_PER_CALL // max(1, b))
        for j in range(0, p, rows):
            r = log_prob_ode(ModelField(self.model, emb, cfg), xt[:, j:j + rows], grid=grid,
                             divergence_kind=divergence, generator=gen)  # type: ignore[arg-type]
            out[:, j:j + rows] = r.log_prob.double().cpu().numpy()
            nfe += r.nfe
        return out, nfe

    def density_maps(self, embeddings: Tensor | np.ndarray, config: MapConfig = MapConfig(), *, steps: int = 16,
                     cfg: float = 0.0, divergence: str = "exact", samples: Tensor | np.ndarray | None = None,
                     num_samples: int = 256, seed: int | None = 0, progress: bool = False) -> list[DensityMap]:
        """Coarse-to-fine HEALPix density maps, one per embedding (see :mod:`globeflow.density`).

        Args:
            samples: ``(B, S, 2)`` degrees whose cells are always refined; when ``None``,
                ``num_samples`` samples are drawn (``0``: refine by mass alone).
        """
        self._check_likelihood_args()
        emb = self._embeddings(embeddings)
        if samples is None and num_samples > 0:
            samples = self.sample(emb, num_samples, cfg=cfg, seed=seed)
        seeds = None
        if samples is not None:
            seeds = geo.latlon_to_xyz(torch.as_tensor(np.asarray(samples), dtype=torch.float64)).numpy()
        maps: list[DensityMap] = []
        images = max(1, _POINTS_PER_CALL // (4 * config.max_cells))  # images refined together
        for i in range(0, emb.shape[0], images):
            e = emb[i:i + images]
            fn = lambda pts: self.log_density_points(e, pts, steps=steps, cfg=cfg, divergence=divergence,  # noqa: E731
                                                     seed=seed)
            maps += refine_map(fn, e.shape[0], config, samples=None if seeds is None else seeds[i:i + images],
                               progress=progress)
        return maps
