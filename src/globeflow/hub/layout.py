"""A hub model folder: ``config.json`` + ``model.safetensors`` (+ ``globeflow.json``, ``README.md``).

This is what ``huggingface_hub.PyTorchModelHubMixin.save_pretrained`` writes for the published
``GeoAdaLNMLP``: the config holds the network's constructor arguments (``input_dim, dim, depth,
expansion, cond_dim``) and the weights carry the network's own parameter names, which
:class:`~globeflow.network.GeoAdaLNMLP` shares, so they load unchanged. globeflow's exports add
``globeflow.json`` (model type, schedule, encoder), kept out of ``config.json`` because the published
class forwards every config key to its constructor. Every mismatch (missing or unknown key, wrong
shape, missing config field, truncated file) is an error naming the file and the problem; nothing is
unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..checkpoint import CheckpointError, atomic_write, atomic_write_text, state_dict_problems
from ..network import GeoAdaLNMLP, NetworkConfig, time_frequencies

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "GLOBEFLOW_NAME", "CARD_NAME", "PUBLISHED_CONFIG_KEYS", "FREQS_KEY",
           "read_published_config", "read_globeflow_meta", "load_published_network", "write_model_folder",
           "is_model_folder"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: globeflow's own description of an exported model (absent from the published folders).
GLOBEFLOW_NAME = "globeflow.json"
CARD_NAME = "README.md"
PUBLISHED_CONFIG_KEYS = ("input_dim", "dim", "depth", "expansion", "cond_dim")
#: The published network's saved frequency buffer (globeflow computes the same values).
FREQS_KEY = "time_embedder.encode_time.freqs"
GLOBEFLOW_KEY = "globeflow"


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder in the hub layout (holds ``config.json`` and ``model.safetensors``)."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


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


def read_published_config(folder: str | os.PathLike) -> NetworkConfig:
    """The network sizes of a hub-layout folder, checked (frequencies: the published ones)."""
    path = Path(folder) / CONFIG_NAME
    raw = _read_json(path, ", ".join(PUBLISHED_CONFIG_KEYS))
    missing = [k for k in PUBLISHED_CONFIG_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)} (expected {', '.join(PUBLISHED_CONFIG_KEYS)})")
    try:
        return NetworkConfig(**{k: int(raw[k]) for k in PUBLISHED_CONFIG_KEYS}, time_frequencies="published")
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


def _frequency_variant(freqs: torch.Tensor, config: NetworkConfig, path: Path) -> str:
    """Which of globeflow's time-embedding variants the saved frequency buffer holds."""
    for variant in ("published", "endpoint"):
        ours = time_frequencies(config.dim // 4, endpoint=variant == "endpoint")
        if freqs.shape == ours.shape and torch.allclose(freqs.float(), ours, rtol=1e-6):
            return variant
    ours = time_frequencies(config.dim // 4, endpoint=False)
    raise CheckpointError(f"{path}: {FREQS_KEY} holds time-embedding frequencies {freqs.tolist()[:4]}..., "
                          f"globeflow's network computes {ours.tolist()[:4]}...; outputs would differ")


def load_published_network(folder: str | os.PathLike, config: NetworkConfig | None = None) -> GeoAdaLNMLP:
    """A hub-layout folder -> :class:`GeoAdaLNMLP` with its weights (strict: every key and shape).

    Args:
        folder: holds ``config.json`` and ``model.safetensors``.
        config: the expected network (from ``globeflow.json``); checked against ``config.json``.
    """
    folder = Path(folder)
    sizes = read_published_config(folder)
    if config is not None and replace(config, time_frequencies="published") != sizes:
        raise CheckpointError(f"{folder / GLOBEFLOW_NAME}: network {config} disagrees with {folder / CONFIG_NAME}")
    config = config or sizes
    path = folder / WEIGHTS_NAME
    if not path.exists():
        raise CheckpointError(f"{path}: missing; a hub-layout model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
    # The published network saves its time-embedding frequencies as a buffer; ours computes them.
    # The buffer says which variant the weights were trained with (the one place where two
    # implementations of this network could silently differ).
    freqs = weights.pop(FREQS_KEY, None)
    network = GeoAdaLNMLP(config)
    problems = state_dict_problems(network.state_dict(), weights)
    if problems:
        raise CheckpointError(f"{path}: weights do not match the config ({folder / CONFIG_NAME}): "
                              f"{'; '.join(problems)}")
    if freqs is not None:
        variant = _frequency_variant(freqs, config, path)
        if variant != config.time_frequencies and config is not sizes:
            raise CheckpointError(f"{path}: {FREQS_KEY} holds the {variant!r} time-embedding frequencies, "
                                  f"{folder / GLOBEFLOW_NAME} says {config.time_frequencies!r}")
        if variant != config.time_frequencies:
            network = GeoAdaLNMLP(replace(config, time_frequencies=variant))
    network.load_state_dict(weights)
    return network.eval()


def write_model_folder(folder: str | os.PathLike, network: GeoAdaLNMLP, meta: dict[str, Any] | None = None,
                       card: str | None = None) -> Path:
    """Write ``network`` in the hub layout, each file atomically; loadable by the published package too.

    The frequency buffer is saved as the published network saves it, so that the published class
    (which loads it into its buffer) computes exactly what globeflow computes, whichever variant the
    model was trained with.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    config = network.config
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in network.state_dict().items()}
    tensors[FREQS_KEY] = time_frequencies(config.dim // 4, endpoint=config.time_frequencies == "endpoint")
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write_text(folder / CONFIG_NAME,
                      json.dumps({k: getattr(config, k) for k in PUBLISHED_CONFIG_KEYS}, indent=2, sort_keys=True))
    if meta is not None:
        atomic_write_text(folder / GLOBEFLOW_NAME, json.dumps(meta, indent=2))
    if card is not None:
        atomic_write_text(folder / CARD_NAME, card)
    return folder
