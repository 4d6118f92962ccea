"""Self-describing checkpoints: one safetensors file holding weights and (optionally) training state,
with the model and training configs in its metadata. Written atomically; never unpickled.

Tensor key prefixes: ``model.`` (raw weights), ``ema.`` (averaged weights, used for inference when
present) and ``optim.`` (optimizer state). Metadata (all JSON strings): ``globeflow`` (format
version), ``model_config``, ``train_config``, ``step``, ``optim_groups``, ``extra``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .files import atomic_write

__all__ = ["CHECKPOINT_NAME", "FORMAT_VERSION", "CheckpointError", "Checkpoint", "save_checkpoint",
           "load_checkpoint", "resolve_checkpoint", "optimizer_to_tensors", "optimizer_from_tensors",
           "state_dict_problems", "non_finite", "require_finite_weights", "save_safetensors"]

CHECKPOINT_NAME = "checkpoint.safetensors"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or does not match what is asked of it."""


class Checkpoint:
    """What :func:`load_checkpoint` returns: ``meta`` (decoded metadata) and ``tensors``."""

    def __init__(self, path: Path, meta: dict[str, Any], tensors: dict[str, Tensor]):
        self.path, self.meta, self.tensors = path, meta, tensors

    def state(self, prefix: str) -> dict[str, Tensor]:
        """Tensors under ``prefix.`` with the prefix removed."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}

    def weights(self) -> dict[str, Tensor]:
        """The weights to use for inference: EMA when stored, else the raw weights."""
        return self.state("ema") or self.state("model")


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, Tensor], *, model_config: dict,
                    train_config: dict | None = None, step: int = 0, optim_groups: list | None = None,
                    extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (a crash leaves the previous file intact)."""
    path = Path(path)
    meta = {
        "globeflow": FORMAT_VERSION,
        "model_config": json.dumps(model_config),
        "train_config": json.dumps(train_config or {}),
        "step": str(int(step)),
        "optim_groups": json.dumps(optim_groups or []),
        "extra": json.dumps(extra or {}),
    }
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_safetensors(flat, tmp, meta))
    return path


def save_safetensors(tensors: dict[str, Tensor], tmp: str, meta: dict[str, str]) -> None:
    """``safetensors`` ``save_file``, its I/O failures raised as the ``OSError`` they are (it wraps a
    full disk as ``SafetensorError: ... I/O error: ... (os error 28)``), so callers see one kind."""
    try:
        save_file(tensors, tmp, metadata=meta)
    except SafetensorError as e:
        code = re.search(r"os error (\d+)", str(e))
        if code:
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from e
        raise


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory or a checkpoint file -> the checkpoint file; clear error when absent."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.exists():
        raise CheckpointError(f"{path}: no checkpoint found (expected a run directory containing "
                              f"{CHECKPOINT_NAME}, or the file itself)")
    return p


def load_checkpoint(path: str | os.PathLike, prefixes: tuple[str, ...] | None = None,
                    device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; only keys under ``prefixes`` if given."""
    p = resolve_checkpoint(path)
    try:
        with safe_open(str(p), framework="pt", device=str(device)) as f:
            raw = f.metadata() or {}
            keys = [k for k in f.keys() if prefixes is None or k.split(".", 1)[0] in prefixes]
            tensors = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{p}: not a readable checkpoint (truncated or corrupt file?): {e}") from None
    if raw.get("globeflow") is None or "model_config" not in raw:
        raise CheckpointError(f"{p}: safetensors file without globeflow metadata (model_config missing); "
                              "is it a checkpoint written by globeflow?")
    try:
        meta = {k: json.loads(v) for k, v in raw.items() if k != "globeflow"}
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: corrupt checkpoint metadata: {e}") from None
    meta["format"] = raw["globeflow"]
    return Checkpoint(p, meta, tensors)


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list]:
    """Flatten an optimizer's state into ``optim.{param_index}.{name}`` tensors + JSON param groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: list) -> None:
    """Inverse of :func:`optimizer_to_tensors` (``tensors`` without the ``optim.`` prefix)."""
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def non_finite(tensors: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (in key order)."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def require_finite_weights(path: str | os.PathLike, tensors: dict[str, Tensor]) -> None:
    """Refuse weights with non-finite values, naming the file and the first tensors: such a model
    answers (90, 0) for every photo and a density of NaN, never an error of its own."""
    bad = non_finite(tensors)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(f"{path}: the weights hold NaN or infinite values ({', '.join(bad[:3])}{more}): "
                              "the run diverged; train again with a lower --lr")


def state_dict_problems(expected: dict[str, Tensor], given: dict[str, Tensor]) -> list[str]:
    """What keeps ``given`` weights from loading into a module whose state dict is ``expected``:
    missing and unexpected keys (the first five of each) and the first shape mismatch; empty when
    they fit."""
    problems = []
    for label, keys in (("missing", sorted(set(expected) - set(given))), ("unexpected", sorted(set(given) - set(expected)))):
        if keys:
            problems.append(f"{label} {', '.join(keys[:5])}" + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""))
    for key in sorted(set(expected) & set(given)):
        if given[key].shape != expected[key].shape:
            problems.append(f"{key} has shape {tuple(given[key].shape)}, the config implies {tuple(expected[key].shape)}")
            break
    return problems
