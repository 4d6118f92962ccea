"""The published PLONK checkpoints' layout: ``config.json`` + ``model.safetensors`` in one folder.

This is what ``huggingface_hub.PyTorchModelHubMixin.save_pretrained`` writes for the published
``GeoAdaLNMLP``: the config holds the network's constructor arguments (``input_dim, dim, depth,
expansion, cond_dim``) and the weights carry the network's own parameter names, which
:class:`~globeflow.network.GeoAdaLNMLP` shares, so they load unchanged. Every mismatch (missing or
unknown key, wrong shape, missing config field, truncated file) is an error naming the file and the
problem; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from .checkpoint import CheckpointError, state_dict_problems
import torch

from .network import GeoAdaLNMLP, NetworkConfig, time_frequencies

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "PUBLISHED_CONFIG_KEYS", "read_published_config",
           "load_published_network"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PUBLISHED_CONFIG_KEYS = ("input_dim", "dim", "depth", "expansion", "cond_dim")
#: The published network's saved frequency buffer (globeflow computes the same values).
FREQS_KEY = "time_embedder.encode_time.freqs"


def read_published_config(folder: str | os.PathLike) -> NetworkConfig:
    """The network sizes of a published-layout folder, checked."""
    path = Path(folder) / CONFIG_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a published-layout model folder holds {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object with {', '.join(PUBLISHED_CONFIG_KEYS)}")
    missing = [k for k in PUBLISHED_CONFIG_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)} (expected {', '.join(PUBLISHED_CONFIG_KEYS)})")
    try:
        return NetworkConfig(**{k: int(raw[k]) for k in PUBLISHED_CONFIG_KEYS}, time_frequencies="published")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid network sizes: {e}") from None


def load_published_network(folder: str | os.PathLike) -> GeoAdaLNMLP:
    """A published-layout folder -> :class:`GeoAdaLNMLP` with its weights (strict: every key and shape)."""
    config = read_published_config(folder)
    path = Path(folder) / WEIGHTS_NAME
    if not path.exists():
        raise CheckpointError(f"{path}: missing; a published-layout model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
    network = GeoAdaLNMLP(config)
    expected = network.state_dict()
    # The published network saves its time-embedding frequencies as a buffer; ours computes them.
    # Check that they agree (the one place where the two implementations could silently differ).
    freqs = weights.pop(FREQS_KEY, None)
    problems = state_dict_problems(expected, weights)
    if problems:
        raise CheckpointError(f"{path}: weights do not match the config ({Path(folder) / CONFIG_NAME}): "
                              f"{'; '.join(problems)}")
    ours = time_frequencies(config.dim // 4, endpoint=False)
    if freqs is not None and (freqs.shape != ours.shape or not torch.allclose(freqs.float(), ours, rtol=1e-6)):
        raise CheckpointError(f"{path}: {FREQS_KEY} holds time-embedding frequencies {freqs.tolist()[:4]}..., "
                              f"globeflow's network computes {ours.tolist()[:4]}...; outputs would differ")
    network.load_state_dict(weights)
    return network.eval()
