"""A hub model folder: ``config.json`` + ``model.safetensors`` (+ ``globeflow.json``, ``README.md``).

This is what ``huggingface_hub.PyTorchModelHubMixin.save_pretrained`` writes for the published
``GeoAdaLNMLP``: the config holds the network's constructor arguments (``input_dim, dim, depth,
expansion, cond_dim``) and the weights carry the network's own parameter names, which
:class:`~globeflow.flow.network.GeoAdaLNMLP` shares, so they load unchanged. globeflow's exports add
``globeflow.json`` (model type, schedule, encoder), kept out of ``config.json`` because the published
class forwards every config key to its constructor.

This module reads and writes the files as plain data (sizes, tensors, dicts) and builds no model:
:mod:`globeflow.inference.loading` does. Every problem (missing file or field, bad JSON, truncated
weights) is a :class:`~globeflow.io.checkpoint.CheckpointError` naming the file; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from .checkpoint import CheckpointError, save_safetensors
from .files import atomic_write, atomic_write_text

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "GLOBEFLOW_NAME", "CARD_NAME", "PUBLISHED_CONFIG_KEYS", "FREQS_KEY",
           "is_model_folder", "folder_problem", "read_sizes", "read_globeflow_meta", "read_weights", "write_model_folder"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: globeflow's own description of an exported model (absent from the published folders).
GLOBEFLOW_NAME = "globeflow.json"
CARD_NAME = "README.md"
PUBLISHED_CONFIG_KEYS = ("input_dim", "dim", "depth", "expansion", "cond_dim")
#: The published network's saved frequency buffer (globeflow computes the same values).
FREQS_KEY = "time_embedder.encode_time.freqs"


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder in the hub layout (holds ``config.json`` and ``model.safetensors``)."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def folder_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being a hub-layout model folder, in words (None when it is one): each
    case its own message, with what to do about it."""
    p = Path(path)
    if not p.exists():
        return "no such folder"
    if not p.is_dir():
        return "not a folder (a hub-layout model is a folder holding config.json and model.safetensors)"
    if not (p / WEIGHTS_NAME).is_file() and (p / "pytorch_model.bin").is_file():
        return ("holds pytorch_model.bin but no model.safetensors: a pickle, which globeflow never loads (unpickling "
                "can run code); download the repository's model.safetensors, or convert the file to safetensors")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (p / n).is_file()]
    if missing:
        return f"no {' and no '.join(missing)} (a hub-layout model folder holds {CONFIG_NAME} and {WEIGHTS_NAME})"
    return None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a hub-layout model folder holds {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object with {what}")
    return raw


def read_sizes(folder: str | os.PathLike) -> dict[str, int]:
    """The network sizes in a folder's ``config.json``: the :data:`PUBLISHED_CONFIG_KEYS` as integers."""
    path = Path(folder) / CONFIG_NAME
    raw = _read_json(path, ", ".join(PUBLISHED_CONFIG_KEYS))
    missing = [k for k in PUBLISHED_CONFIG_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)} (expected {', '.join(PUBLISHED_CONFIG_KEYS)})")
    try:
        return {k: int(raw[k]) for k in PUBLISHED_CONFIG_KEYS}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid network sizes: {e}") from None


def read_globeflow_meta(folder: str | os.PathLike) -> dict[str, Any] | None:
    """``globeflow.json`` of an exported model (model config, encoder), or ``None`` in published folders."""
    path = Path(folder) / GLOBEFLOW_NAME
    if not path.exists():
        return None
    meta = _read_json(path, "model_config and encoder")
    if not isinstance(meta.get("model_config"), dict):
        raise CheckpointError(f"{path}: no model_config object; was it written by globeflow export?")
    return meta


def read_weights(folder: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a folder's ``model.safetensors`` (the frequency buffer included, when saved)."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.exists():
        raise CheckpointError(f"{path}: missing; a hub-layout model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None


def write_model_folder(folder: str | os.PathLike, tensors: dict[str, Tensor], sizes: dict[str, int],
                       meta: dict[str, Any] | None = None, card: str | None = None) -> Path:
    """Write a network's ``tensors`` and ``sizes`` in the hub layout, each file atomically.

    Args:
        tensors: the state dict, with the :data:`FREQS_KEY` buffer as the published network saves it
            (so that the published class loads and computes exactly the same function).
        sizes: the :data:`PUBLISHED_CONFIG_KEYS` (``config.json``, nothing else: the published class
            forwards every key to its constructor).
        meta: ``globeflow.json``; card: ``README.md``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_safetensors(flat, tmp, {"format": "pt"}))
    atomic_write_text(folder / CONFIG_NAME,
                      json.dumps({k: sizes[k] for k in PUBLISHED_CONFIG_KEYS}, indent=2, sort_keys=True))
    if meta is not None:
        atomic_write_text(folder / GLOBEFLOW_NAME, json.dumps(meta, indent=2))
    if card is not None:
        atomic_write_text(folder / CARD_NAME, card)
    return folder
