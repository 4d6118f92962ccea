"""The training loop: one straight loop, single process or DistributedDataParallel under torchrun.

Reproducibility is by construction: the data order of every step is a pure function of
``(seed, step, rank)`` and so are the step's random draws (time, prior noise, guidance drop), so a
run resumed from a checkpoint at step ``k`` performs exactly the steps ``k, k+1, ...`` of an
uninterrupted run and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .. import geo, registry
from ..data.embed import read_manifest
from ..data.embeddings import EmbeddingDataset
from ..flow.network import NetworkConfig
from ..io.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    non_finite,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from ..io.device import resolve_device
from ..io.lock import FolderLock
from ..io.files import atomic_write_text
from .config import TrainConfig, TrainingError
from .optim import build_optimizer, warmup_cosine

__all__ = ["TrainResult", "train", "evaluate_loss"]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    final_loss: float
    val_loss: float | None
    skipped_steps: int
    seconds: float


def _step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    # A distinct, reproducible stream per (seed, step, rank); the large odd multipliers keep the
    # streams of neighbouring steps and ranks from colliding.
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step * 7919 + rank * 104_729) % (2 ** 63))
    return g


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    # ema <- decay * ema + (1 - decay) * param: the average keeps most of its past.
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)


def _ema_decay(config: TrainConfig, step: int) -> float:
    # Short runs would otherwise average in the random initialisation for ~1/(1-decay) steps.
    return min(config.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def evaluate_loss(model: nn.Module, dataset: EmbeddingDataset, *, rows: int, seed: int,
                  device: torch.device, batch_size: int = 4096) -> float:
    """Mean training loss over the first ``rows`` rows, with fixed random draws (comparable over time)."""
    total, count = 0.0, 0
    for i, batch in enumerate(dataset.iter_batches(batch_size)):
        emb = batch.embedding[: rows - count].to(device)
        x1 = geo.latlon_to_xyz(batch.latlon[: rows - count]).to(device=device, dtype=torch.float32)
        loss = model.loss(x1, emb, generator=_step_generator(seed, i, 12345, device))
        total += loss.item() * len(x1)
        count += len(x1)
        if count >= rows:
            break
    return total / max(count, 1)


class _Dist:
    """Rank bookkeeping; a no-op outside torchrun."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float, device: torch.device) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], device=device, dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def _local_device(device: str | None) -> torch.device:
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(dev)
    return dev


def train(train_data: str | os.PathLike, run_dir: str | os.PathLike, *,
          model_config: registry.AnyConfig | None = None, network: dict[str, Any] | None = None,
          kind: str | None = None, cond_drop: float | None = None, emb_dropout: float | None = None,
          head: dict[str, Any] | None = None,
          config: TrainConfig = TrainConfig(), val_data: str | os.PathLike | None = None,
          resume: bool = False, device: str | None = None, progress: bool = True,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train a model on an embedding dataset and write checkpoints to ``run_dir``.

    Args:
        model_config: the full model config (a flow model's :class:`ModelConfig` or a trained
            baseline's :class:`~globeflow.baselines.direct.DirectConfig`); when omitted it is built
            from ``kind`` and ``network`` (NetworkConfig fields other than ``cond_dim``, which comes
            from the data), with ``cond_drop`` / ``emb_dropout`` for the flow kinds (rfm, fm,
            diffusion) and ``head`` (components, nside, label_tau_km) for the baseline kinds (vmf,
            vmf-mixture, geocell, regression).
        kind, cond_drop, emb_dropout: ``None`` takes the default of a new run (rfm, 0.1, 0) or the run's own.
        resume: continue from ``run_dir/checkpoint.safetensors`` (model, EMA, optimizer, step). The run's
            own settings continue; given ones must agree with them, except those of
            :data:`CHANGEABLE_ON_RESUME` (``steps`` only upwards), and the data must be the run's.
        on_step: called as ``on_step(step, loss)`` after every step (tests use it to interrupt).
    Raises:
        FolderBusyError: another process is training into ``run_dir``.
    """
    # One writer per run folder (the process that writes checkpoints; DDP's other ranks only read).
    lock = FolderLock(run_dir, "train") if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
    with lock:
        return _train(train_data, run_dir, model_config=model_config, network=network, kind=kind,
                      cond_drop=cond_drop, emb_dropout=emb_dropout, head=head, config=config, val_data=val_data,
                      resume=resume, device=device, progress=progress, on_step=on_step)


#: Training settings a resumed run may change: how long it goes on and how often it reports.
CHANGEABLE_ON_RESUME = ("steps", "log_every", "val_every", "ckpt_every", "val_rows", "max_bad_steps", "skip_invalid")


def _resume_config(path: Path, saved: TrainConfig, given: TrainConfig, step: int, saved_model: Any,
                   model_config: Any, network: dict[str, Any] | None, kind: str | None, head: dict[str, Any] | None,
                   cond_drop: float | None, emb_dropout: float | None, saved_data: dict[str, Any],
                   data: dict[str, Any], train_data: Any) -> TrainConfig:
    """The settings a resumed run continues with, or a :class:`TrainingError` listing every given
    setting that contradicts the run (a resume used to ignore them silently)."""
    conflicts = [f"{f.name} {getattr(given, f.name)!r} (the run's: {getattr(saved, f.name)!r})"
                 for f in dataclasses.fields(TrainConfig)
                 if f.name not in CHANGEABLE_ON_RESUME and getattr(given, f.name) != getattr(saved, f.name)]
    if kind is not None and kind != saved_model.kind:
        conflicts.append(f"model {kind!r} (the run's: {saved_model.kind!r})")
    for name, value in (network or {}).items():
        if getattr(saved_model.network, name) != value:
            conflicts.append(f"{name} {value!r} (the run's: {getattr(saved_model.network, name)!r})")
    model_fields = {**(head or {}), "cond_drop": cond_drop, "emb_dropout": emb_dropout}
    for name, value in model_fields.items():
        if value is not None and hasattr(saved_model, name) and getattr(saved_model, name) != value:
            conflicts.append(f"{name} {value!r} (the run's: {getattr(saved_model, name)!r})")
    if model_config is not None and model_config != saved_model:
        conflicts.append("model_config (differs from the run's)")
    if conflicts:
        raise TrainingError(f"{path}: --resume continues the run with its own settings, but these were given "
                            f"differently: {'; '.join(conflicts)}; drop them, or train a new run with another --out")
    if saved_data.get("fingerprint") and saved_data["fingerprint"] != data["fingerprint"]:
        raise TrainingError(f"{train_data}: not the data this run was trained on ({saved_data.get('num_rows')} rows, "
                            f"fingerprint {saved_data['fingerprint'][:12]}; this has {data['num_rows']} rows, "
                            f"{data['fingerprint'][:12]}); resume with the run's data")
    if given.steps <= step:
        raise TrainingError(f"{path}: the run is already at step {step}; pass --steps above {step} to train further")
    return dataclasses.replace(saved, **{name: getattr(given, name) for name in CHANGEABLE_ON_RESUME})


def _train(train_data, run_dir, *, model_config, network, kind, cond_drop, emb_dropout, head, config, val_data,
           resume, device, progress, on_step) -> TrainResult:

    dev = _local_device(device)
    ddp = _Dist(dev)
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    data = EmbeddingDataset(train_data, skip_invalid=config.skip_invalid)
    info = data.scan()
    # The image encoder that made the embeddings (written by ``globeflow embed``), so that
    # ``predict`` on photos embeds them with the same one.
    encoder = (read_manifest(train_data) or {}).get("encoder")
    val = EmbeddingDataset(val_data, skip_invalid=config.skip_invalid, expected_dim=info.dim) if val_data else None
    if val is not None:
        val.scan()

    start, state = 0, None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        saved_model = registry.config_from_dict(state.meta["model_config"])
        start = int(state.meta["step"])
        config = _resume_config(ckpt_path, TrainConfig(**state.meta["train_config"]), config, start,
                                saved_model, model_config, network, kind, head, cond_drop, emb_dropout,
                                (state.meta.get("extra") or {}).get("data") or {}, info.to_dict(), train_data)
        model_config = saved_model
    elif ckpt_path.exists() and not resume:
        raise TrainingError(f"{run_dir} already holds a checkpoint; pass --resume to continue it or choose another --out")
    if model_config is None:
        net = NetworkConfig(cond_dim=info.dim, **(network or {}))
        given = {"cond_drop": cond_drop, "emb_dropout": emb_dropout, **(head or {})}
        # Settings left at None take the model config's own defaults.
        model_config = registry.make_config(kind or "rfm", net, {k: v for k, v in given.items() if v is not None})
    if model_config.network.cond_dim != info.dim:
        raise TrainingError(f"{train_data}: embeddings have dimension {info.dim} but the model expects "
                            f"{model_config.network.cond_dim}")

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = registry.build_model(model_config).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = build_optimizer(config.optimizer, model, config.lr, config.weight_decay)
    if state is not None:
        model.network.load_state_dict(state.state("model"))
        ema.network.load_state_dict(state.state("ema"))
        optimizer_from_tensors(optimizer, state.state("optim"), state.meta["optim_groups"])
        del state
    wrapped = nn.parallel.DistributedDataParallel(model) if ddp.active else model

    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if config.batch_size % ddp.world:
        raise TrainingError(f"batch size {config.batch_size} is not divisible by the {ddp.world} processes")
    local_batch = config.batch_size // ddp.world
    batches = data.train_batches(local_batch, seed=config.seed, rank=ddp.rank, world_size=ddp.world,
                                 start_batch=start)

    def save(step: int) -> None:
        if not ddp.main:
            return
        opt_tensors, groups = optimizer_to_tensors(optimizer)
        weights = {**{f"model.{k}": v for k, v in model.network.state_dict().items()},
                   **{f"ema.{k}": v for k, v in ema.network.state_dict().items()}}
        bad_tensors = non_finite(weights)
        if bad_tensors:
            # Never write a model that answers NaN: the last good checkpoint stays as it is.
            kept = f"; {ckpt_path} (the last good checkpoint) is kept" if ckpt_path.exists() else ""
            raise TrainingError(f"the weights became NaN or infinite by step {step} ({', '.join(bad_tensors[:3])})"
                                f"{kept}; lower --lr or --grad-clip")
        tensors = {**weights, **opt_tensors}
        save_checkpoint(ckpt_path, tensors, model_config=model_config.to_dict(),
                        train_config=dataclasses.asdict(config), step=step, optim_groups=groups,
                        extra={"data": info.to_dict(), "encoder": encoder})
        # A readable copy of what the checkpoint's metadata says (never read back).
        atomic_write_text(run_dir / "config.json", json.dumps(
            {"step": step, "model": model_config.to_dict(), "train": dataclasses.asdict(config),
             "data": info.to_dict(), "world_size": ddp.world}, indent=2))

    log = open(run_dir / "metrics.jsonl", "a") if ddp.main else None
    bar = tqdm(total=config.steps, initial=start, disable=not (progress and ddp.main), desc="train", unit="step")
    t0, loss_value, val_loss, bad, skipped = time.time(), float("nan"), None, 0, 0
    try:
        for step in range(start, config.steps):
            lr = warmup_cosine(step, base_lr=config.lr, warmup=config.warmup_steps, total=config.steps,
                               min_ratio=config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            emb, latlon = next(batches)
            x1 = geo.latlon_to_xyz(latlon).to(device=dev, dtype=torch.float32)
            loss = wrapped(x1, emb.to(dev), generator=_step_generator(config.seed, step, ddp.rank, dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Gradients are all-reduced, so every rank sees the same norm and takes the same branch.
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip).item()
            done = step + 1
            bar.update(1)
            if not math.isfinite(grad_norm):
                bad, skipped = bad + 1, skipped + 1
                if bad >= config.max_bad_steps:
                    raise TrainingError(f"{bad} consecutive steps with non-finite loss or gradients at step "
                                        f"{step}; lower --lr or check the data")
            else:
                bad = 0
                optimizer.step()
                _ema_update(ema, model, _ema_decay(config, step))
                loss_value = loss.item()
            # A skipped step is still a step: validation and checkpoints keep their schedule, so a
            # run whose last step was skipped still saves its final checkpoint.
            if math.isfinite(grad_norm) and (done % config.log_every == 0 or done == config.steps):
                mean_loss = ddp.mean(loss_value, dev)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                if log:
                    log.write(json.dumps({"step": done, "loss": mean_loss, "lr": lr, "grad_norm": grad_norm,
                                          "skipped": skipped, "time": round(time.time() - t0, 3)}) + "\n")
                    log.flush()
            if val is not None and (done % config.val_every == 0 or done == config.steps):
                if ddp.main:
                    val_loss = evaluate_loss(ema, val, rows=config.val_rows, seed=config.seed, device=dev)
                    if log:
                        log.write(json.dumps({"step": done, "val_loss": val_loss}) + "\n")
                        log.flush()
                ddp.barrier()
            if done % config.ckpt_every == 0 or done == config.steps:
                save(done)
                ddp.barrier()
            if on_step is not None:
                on_step(done, loss_value)
    finally:
        bar.close()
        if log:
            log.close()
        ddp.close()
    return TrainResult(run_dir, config.steps, loss_value, val_loss, skipped, time.time() - t0)
