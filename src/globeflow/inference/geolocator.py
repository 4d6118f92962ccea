"""The front door: :class:`Geolocator` loads a trained flow model and answers "where?".

>>> geo = Geolocator.load("plonk-osv5m")                      # doctest: +SKIP
>>> answers = geo.locate(["a.jpg", "b.jpg"], top_k=5)        # doctest: +SKIP
>>> answers[0].best_guess, answers[0].countries[0]           # doctest: +SKIP
>>> latlon = geo.predict(embeddings)                          # (B, 2) degrees       # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import geo
from ..data.encoders import Encoder, load_encoder
from ..data.images.records import MAX_PIXELS
from ..flow.likelihood import KM2_OFFSET, ModelField, log_prob_ode, sample_log_prob_ode
from ..flow.model import GeoFlowModel, ModelConfig, chunked
from ..flow.sampling import PROTOCOLS, SamplerConfig
from ..io.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from ..io.hub import is_hub_spec
from .answers import Answer, AnswerConfig, answer_embeddings, override, sample_answers
from .calibration import Recalibration
from .density import DensityMap, MapConfig, refine_map
from .evidence import Constraints, constrain_answers
from .evidence import fuse as fuse_photos
from .hub_models import hub_model
from .locator import POINT_STRATEGIES, Locator, PointStrategy, Seed, read_model_checkpoint
from .photos import ImageInput, fuse_inputs, iter_answers, photo_inputs
from .points import best_expected_geoscore
from .settings import BEST_GUESS_SAMPLES, BEST_GUESS_STEPS, PHOTO_ANSWERS

__all__ = ["Geolocator", "PHOTO_ANSWERS", "BEST_GUESS_SAMPLES", "BEST_GUESS_STEPS"]

#: Rows (images x points) per network call in likelihood solves: bounds memory, keeps batches big.
_POINTS_PER_CALL = 8192

class Geolocator(Locator):
    """A trained generative geolocator (rfm, fm or diffusion) on one device.

    Args:
        model: the model (its weights are used as they are: load EMA weights for inference).
        device: ``None``/``"auto"`` for CUDA when available, else CPU.
        encoder: the name of the image encoder the model was trained on (what :meth:`locate` embeds
            photos with).
    """

    model: GeoFlowModel
    model_class = GeoFlowModel

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None, encoder: str | None = None):
        super().__init__(model, device, encoder)
        self._image_encoder: Encoder | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    # --- loading and saving -----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Geolocator":
        """Load a run directory or checkpoint file (EMA weights when present), or a hub model (a
        published name such as ``plonk-osv5m``, ``plonk-osv5m:DIR``, ``hf:owner/name``, a hub-layout
        folder; see :mod:`globeflow.io.hub`). Baselines load with :func:`globeflow.inference.load_locator`."""
        if is_hub_spec(path):
            model, encoder, source = hub_model(path)
            locator = cls(model, device, encoder=encoder)
            locator.source = source
            locator.calibration = Recalibration.beside(source["path"])
            return locator
        return cls.from_checkpoint(read_model_checkpoint(path), device)

    @classmethod
    def _wrong_model(cls, ckpt: Checkpoint, kind: str) -> str:
        return (f"{ckpt.path}: a {kind} baseline, not a flow model; predict, evaluate and log-prob "
                "accept it (globeflow.inference.load_locator loads it in Python), photo answers and maps need a "
                "flow model")

    def save(self, path: str | os.PathLike) -> Path:
        """Write an inference checkpoint (weights + config) to a directory or file path."""
        p = Path(path)
        if p.suffix != ".safetensors":
            p = p / CHECKPOINT_NAME
        tensors = {f"ema.{k}": v for k, v in self.model.network.state_dict().items()}
        return save_checkpoint(p, tensors, model_config=self.config.to_dict(), extra={"encoder": self.encoder})

    # --- photos -------------------------------------------------------------------------------------------------

    def image_encoder(self, name: str | None = None, path: str | os.PathLike | None = None) -> Encoder:
        """The image encoder photos are embedded with: ``name`` (default: the model's own, recorded at
        training) from local weights ``path`` when given. The model's own is loaded once and kept."""
        if name is None and path is None and self._image_encoder is not None:
            return self._image_encoder
        chosen = name or self.encoder
        if chosen is None:
            raise ValueError(f"{self.source.get('path', 'this model')}: the checkpoint does not record which image "
                             "encoder made its training embeddings; pass --encoder (e.g. efficientnet-lite0)")
        encoder = self._fitting(load_encoder(chosen, path, device=self.device))
        if name is None and path is None:
            self._image_encoder = encoder
        return encoder

    def use_encoder(self, encoder: Encoder) -> None:
        """Embed photos with this (already loaded) encoder from now on."""
        self._image_encoder = self._fitting(encoder)

    def _fitting(self, encoder: Encoder) -> Encoder:
        if encoder.dim != self.embedding_dim:
            raise ValueError(f"encoder {encoder.name} makes {encoder.dim}-d embeddings, the model takes "
                             f"{self.embedding_dim}-d ones; pass the --encoder the model was trained with")
        return encoder

    def answer(self, embeddings: Tensor | np.ndarray, *, config: AnswerConfig = AnswerConfig(), seed: Seed = 0,
               truth: np.ndarray | None = None, progress: bool = False,
               constraints: Constraints | None = None) -> list[Answer]:
        """One :class:`~globeflow.inference.answers.Answer` per embedding ``(B, D)``: the full answer
        (places, areas, credible regions, localizability, map) for a model with a density, the best
        guess and area probabilities of samples otherwise. ``constraints`` restrict each answer to
        what is known of the place (:mod:`globeflow.inference.evidence.constraints`; rfm models)."""
        if not self.has_density:
            if constraints is not None and constraints.active:
                self.require_density()
            return sample_answers(self, embeddings, config, seed)
        answers = answer_embeddings(self, embeddings, truth=truth, config=config, seed=seed, progress=progress)
        return constrain_answers(answers, constraints, config, seed, self.calibration)

    def unconditional_embedding(self) -> Tensor:
        if self.model.config.cond_drop == 0.0:  # the zero condition was never trained: no prior
            raise ValueError("this model was trained without guidance dropout (cond_drop 0), so it has no "
                             "unconditional density: fusing photos needs that prior")
        return torch.zeros(1, self.embedding_dim)

    def locate(self, images: ImageInput | Sequence[ImageInput], *, top_k: int | None = None,
               guidance: float | None = None, num_samples: int | None = None, steps: int | None = None,
               nside: int | None = None, config: AnswerConfig = PHOTO_ANSWERS, seed: int = 0, batch_size: int = 16,
               workers: int = 2, on_unreadable: Literal["raise", "report"] = "raise",
               max_pixels: int | None = MAX_PIXELS, progress: bool = False, fuse: bool = False,
               constraints: Constraints | None = None) -> list[Answer] | Answer:
        """Where was each photo taken? One :class:`~globeflow.inference.answers.Answer` per image, or
        with ``fuse=True`` one for all, taken at one place (:func:`~globeflow.inference.evidence.fuse`).

        Args:
            images: a path, a PIL image, encoded bytes, a ``uint8`` array (H, W, 3), an
                :class:`~globeflow.data.images.ImageRecord`, or a sequence of them.
            top_k, guidance, num_samples, steps, nside: override fields of ``config`` (photo answers:
                128 samples, 3 places, a nside-16 map).
            seed: answers are reproducible: image ``i`` is seeded with ``seed + i``, so its answer does
                not depend on ``batch_size`` or on the other images.
            batch_size: images decoded (``workers`` threads), embedded and answered together.
            on_unreadable: ``"raise"`` the image's error (an
                :class:`~globeflow.data.images.UnreadableImageError` for a bad file), or ``"report"`` it
                as an answer whose ``error`` says why (``answer.ok`` is False).
            max_pixels: larger images are refused before decoding (decompression bombs).
            fuse: one fused answer (unreadable photos, with "report", are listed in ``evidence["skipped"]``).
            constraints: what is known of the place (countries, a box, land only, ...).
        """
        config = override(config, top_k=top_k, guidance=guidance, num_samples=num_samples, steps=steps, nside=nside)
        inputs = photo_inputs(images, max_pixels=max_pixels)
        if fuse:
            return fuse_inputs(functools.partial(fuse_photos, self, config=config, seed=seed, constraints=constraints,
                                                 progress=progress), self.image_encoder(), inputs,
                               batch_size=batch_size, workers=workers, on_unreadable=on_unreadable)
        answers = iter_answers(self.image_encoder(), functools.partial(self.answer, constraints=constraints), inputs,
                               config=config, seed=seed, batch_size=batch_size, workers=workers,
                               on_unreadable=on_unreadable)
        out = []
        with tqdm(total=len(inputs), desc="locate", unit="photo", disable=not progress) as bar:
            for a in answers:
                out.append(a)
                bar.update(1)
        return out

    # --- samplers -----------------------------------------------------------------------------------------------

    def sampler(self, steps: int | None = None, guidance: float | None = None, method: str | None = None,
                step: str | None = None, protocol: str = "globeflow") -> SamplerConfig:
        """The model's sampler with the given fields overridden: globeflow's default for its type, or
        with ``protocol="published"`` the published package's (Euler or DDIM, 250 steps)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown sampling protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
        path = self.model.path
        base = path.published_sampler if protocol == "published" else path.default_sampler
        changes = {k: v for k, v in dict(steps=steps, guidance=guidance, method=method, step=step).items()
                   if v is not None}
        return replace(base, **changes)

    def point_sampler(self, strategy: str = "geoscore", steps: int | None = None, guidance: float | None = None,
                      method: str | None = None, protocol: str = "globeflow") -> SamplerConfig:
        """The sampler :meth:`predict` draws with for ``strategy``: unguided by default, guidance 2 for
        a single sample (the published recipe). ``mode`` and ``grid`` solve the likelihood ODE instead
        (RK4, ``steps`` or 16), which is what their config describes."""
        if strategy in ("mode", "grid"):
            return SamplerConfig(method="rk4", steps=steps or 16, guidance=guidance or 0.0)
        if strategy == "geoscore" and steps is None and method is None and protocol == "globeflow" and self.has_density:
            steps = BEST_GUESS_STEPS
        return self.sampler(steps, guidance if guidance is not None else (2.0 if strategy == "single" else 0.0),
                            method, protocol=protocol)

    # --- samples and points -------------------------------------------------------------------------------------

    def sample_xyz(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, steps: int | None = None,
                   guidance: float | None = None, method: str | None = None, seed: Seed = 0,
                   protocol: str = "globeflow") -> Tensor:
        """Samples as unit vectors ``(B, S, 3)`` on the model's device."""
        return self._draw(embeddings, num_samples, self.sampler(steps, guidance, method, protocol=protocol), seed)

    def _draw(self, embeddings: Tensor | np.ndarray, num_samples: int, sampler: SamplerConfig,
              seed: Seed) -> Tensor:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        emb = self._embeddings(embeddings)
        return self._per_row(seed, emb.shape[0], lambda rows, gen: self.model.sample(emb[rows], num_samples, sampler,
                                                                                     generator=gen))

    def sample(self, embeddings: Tensor | np.ndarray, num_samples: int = 100, *, steps: int | None = None,
               guidance: float | None = None, method: str | None = None, seed: Seed = 0,
               protocol: str = "globeflow") -> Tensor:
        """Draw locations from ``p(location | embedding)``.

        Args:
            embeddings: ``(B, D)`` (or ``(D,)``) image embeddings.
            num_samples: samples per embedding.
            steps, guidance, method: solver steps, guidance scale, solver name (model defaults).
            seed: for reproducible samples (``None``: fresh randomness).
            protocol: ``"globeflow"`` (default sampler) or ``"published"`` (the published package's).
        Returns:
            Tensor: ``(B, num_samples, 2)`` (lat, lon) degrees, on the CPU.
        """
        return geo.xyz_to_latlon(self.sample_xyz(embeddings, num_samples, steps=steps, guidance=guidance,
                                                 method=method, seed=seed, protocol=protocol).double()).cpu()

    def predict(self, embeddings: Tensor | np.ndarray, *, strategy: PointStrategy = "geoscore",
                num_samples: int = BEST_GUESS_SAMPLES, steps: int | None = None, guidance: float | None = None,
                method: str | None = None, seed: Seed = 0, protocol: str = "globeflow") -> Tensor:
        """One best guess per embedding, ``(B, 2)`` (lat, lon) degrees on the CPU.

        ``strategy="geoscore"`` (default): draw ``num_samples`` unguided samples and keep the one with
        the highest expected GeoScore against the others (see :mod:`globeflow.inference.points`).
        ``strategy="mode"``: draw ``num_samples`` unguided samples with their exact densities and keep
        the densest (mode seeking; rfm only).
        ``strategy="grid"``: the centre of the densest cell of the coarse-to-fine density map
        (:meth:`density_maps` with its defaults; rfm only, and the slowest).
        ``strategy="single"``: one sample with ``guidance`` (2 by default), the published recipe.
        ``protocol="published"`` samples with the published sampler (Euler or DDIM, 250 steps); with
        ``strategy="single"`` that is the published evaluation protocol.
        """
        if strategy in ("mode", "grid") and (protocol != "globeflow" or method is not None):
            raise ValueError(f"point strategy {strategy!r} solves the likelihood ODE (RK4), so a sampler "
                             f"protocol or method does not apply; use 'single' or 'geoscore' with them")
        if strategy == "mode":
            latlon, logp = self.sample_with_log_prob(embeddings, num_samples, steps=steps or 16,
                                                     guidance=guidance or 0.0, seed=seed)
            return latlon[torch.arange(latlon.shape[0]), logp.argmax(dim=1)]
        if strategy == "grid":
            maps = self.density_maps(embeddings, steps=steps or 16, guidance=guidance or 0.0, seed=seed)
            return torch.tensor([m.argmax() for m in maps], dtype=torch.float64)
        if strategy not in ("geoscore", "single"):
            raise ValueError(f"unknown point strategy {strategy!r}; expected one of {', '.join(POINT_STRATEGIES)}")
        sampler = self.point_sampler(strategy, steps, guidance, method, protocol)
        xyz = self._draw(embeddings, num_samples if strategy == "geoscore" else 1, sampler, seed)
        best = best_expected_geoscore(xyz.double()) if strategy == "geoscore" else xyz[:, 0].double()
        return geo.xyz_to_latlon(best).cpu()

    # --- densities ----------------------------------------------------------------------------------------------

    @property
    def has_density(self) -> bool:
        """Whether the model has an exact, normalised density on the sphere (rfm models)."""
        return self.model.path.exact_density

    def _no_density_reason(self) -> str:
        return ("its density lives in R^3 (its restriction to the sphere is not a normalised density); "
                "exact log-densities on the sphere need an rfm model")

    def log_prob(self, embeddings: Tensor | np.ndarray, latlon: Tensor | np.ndarray, *, steps: int = 16,
                 method: str = "rk4", guidance: float = 0.0, divergence: str = "exact", units: str = "sr",
                 rtol: float = 1e-5, atol: float = 1e-5, seed: int | None = 0) -> Tensor:
        """Exact log-density of the model at given locations, ``(B,)`` on the CPU.

        Args:
            embeddings: ``(B, D)``; latlon: ``(B, 2)`` degrees, one location per embedding.
            steps, method: fixed-step ``"rk4"`` on the schedule's grid, or an adaptive pair (``"dopri5"``,
                ``"bosh3"``) with tolerances ``rtol``, ``atol`` on the augmented state.
            guidance: guidance scale (the guided field's density is also normalised).
            divergence: ``"exact"`` or ``"hutchinson"`` (see :mod:`globeflow.flow.likelihood`).
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
        result = log_prob_ode(ModelField(self.model, emb, guidance), x, grid=grid, method=method,
                              divergence_kind=divergence, rtol=rtol, atol=atol, generator=gen)  # type: ignore[arg-type]
        out = result.log_prob.double().cpu()
        return out + KM2_OFFSET if units == "km2" else out

    def sample_with_log_prob(self, embeddings: Tensor | np.ndarray, num_samples: int = 256, *, steps: int = 16,
                             guidance: float = 0.0, divergence: str = "exact", units: str = "sr",
                             seed: Seed = 0, method: str = "rk4", rtol: float = 1e-5,
                             atol: float = 1e-5) -> tuple[Tensor, Tensor]:
        """Samples and their exact log-densities from one forward solve (see
        :func:`globeflow.flow.likelihood.sample_log_prob_ode`; ``method``, ``rtol``, ``atol`` as in
        :meth:`log_prob`). Returns ``latlon (B, S, 2)`` degrees and ``log_prob (B, S)`` (nats per ``units``), on the CPU.
        """
        self._check_likelihood_args(units)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        emb = self._embeddings(embeddings)
        gen = self._generator(seed)
        x0 = self._per_row(seed, emb.shape[0], lambda rows, g: self.model.path.prior(
            (emb[rows].shape[0], num_samples), generator=g, device=self.device))
        grid = self.model.schedule.sampling_grid(steps, device=self.device)

        def solve(i: int, n: int):
            return sample_log_prob_ode(ModelField(self.model, emb[i:i + n], guidance), x0[i:i + n], grid=grid,
                                       divergence_kind=divergence, generator=gen,  # type: ignore[arg-type]
                                       method=method, rtol=rtol, atol=atol)

        results = chunked(solve, emb.shape[0], max(1, _POINTS_PER_CALL // num_samples))
        latlon = geo.xyz_to_latlon(geo.projx(torch.cat([r.x for r in results]).double())).cpu()
        logp = torch.cat([r.log_prob for r in results]).double().cpu()
        return latlon, logp + KM2_OFFSET if units == "km2" else logp

    def log_density_points(self, emb: Tensor, x: np.ndarray, *, steps: int = 16, guidance: float = 0.0,
                           divergence: str = "exact", seed: int | None = 0, method: str = "rk4",
                           rtol: float = 1e-5, atol: float = 1e-5) -> tuple[np.ndarray, int, np.ndarray]:
        """Exact log-densities (nats/sr) at many points per image: ``emb (B, D)``, ``x (B, P, 3)`` ->
        ``((B, P), field evaluations, error estimates (B, P) in nats, NaN for "rk4")``. Points are
        batched per image so that its conditioning is computed once per network call."""
        self._check_likelihood_args()
        b, p = x.shape[:2]
        gen = self._generator(seed)
        grid = self.model.schedule.sampling_grid(steps, device=self.device)
        xt = torch.from_numpy(np.array(x, dtype=np.float32)).to(self.device)  # a copy: x may be read-only

        def solve(j: int, n: int):
            return log_prob_ode(ModelField(self.model, emb, guidance), xt[:, j:j + n], grid=grid, method=method,
                                divergence_kind=divergence, generator=gen, rtol=rtol, atol=atol)  # type: ignore[arg-type]

        results = chunked(solve, p, max(1, _POINTS_PER_CALL // max(1, b)))
        if not results:
            return np.empty((b, 0)), 0, np.empty((b, 0))
        out = np.concatenate([r.log_prob.double().cpu().numpy() for r in results], axis=1)
        err = np.concatenate([_errors(r).double().cpu().numpy() for r in results], axis=1)
        return out, sum(r.nfe for r in results), err

    def density_maps(self, embeddings: Tensor | np.ndarray, config: MapConfig = MapConfig(), *, steps: int = 16,
                     guidance: float = 0.0, divergence: str = "exact", samples: Tensor | np.ndarray | None = None,
                     num_samples: int = 256, seed: int | None = 0, progress: bool = False, method: str = "rk4",
                     rtol: float = 1e-5, atol: float = 1e-5) -> list[DensityMap]:
        """Coarse-to-fine HEALPix density maps, one per embedding (see :mod:`globeflow.inference.density`).

        Args:
            samples: ``(B, S, 2)`` degrees whose cells are always refined; when ``None``,
                ``num_samples`` samples are drawn (``0``: refine by mass alone).
        """
        self._check_likelihood_args()
        emb = self._embeddings(embeddings)
        if samples is None and num_samples > 0:
            samples = self.sample(emb, num_samples, guidance=guidance, seed=seed)
        seeds = None
        if samples is not None:
            seeds = geo.latlon_to_xyz(torch.as_tensor(np.asarray(samples), dtype=torch.float64)).numpy()

        def refine(i: int, n: int) -> list[DensityMap]:
            e = emb[i:i + n]
            fn = lambda pts: self.log_density_points(e, pts, steps=steps, guidance=guidance,  # noqa: E731
                                                     divergence=divergence, seed=seed, method=method, rtol=rtol,
                                                     atol=atol)
            coarse = None
            if config.coarse_steps:
                coarse = lambda pts: self.log_density_points(e, pts, steps=config.coarse_steps,  # noqa: E731
                                                             guidance=guidance, divergence=divergence, seed=seed)
            return refine_map(fn, n, config, samples=None if seeds is None else seeds[i:i + n], progress=progress,
                              coarse_fn=coarse)

        # Images refined together share every network call.
        parts = chunked(refine, emb.shape[0], max(1, _POINTS_PER_CALL // (4 * config.max_cells)))
        return [m for part in parts for m in part]


def _errors(result) -> Tensor:
    """A likelihood result's error estimates, NaN where its solver has none (fixed steps)."""
    return result.error if result.error is not None else torch.full_like(result.log_prob, float("nan"))
