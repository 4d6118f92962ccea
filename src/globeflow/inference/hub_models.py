"""Hub-layout folders (the published PLONK models, globeflow exports) as flow models.

:mod:`globeflow.io.hub` finds a model's files and says what they are; here they become a
:class:`~globeflow.flow.model.GeoFlowModel` with its weights, checked strictly: every key and shape,
and the saved time-embedding frequencies (the one place where two implementations of this network
could silently differ).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..flow.model import GeoFlowModel, ModelConfig
from ..flow.network import GeoAdaLNMLP, NetworkConfig, frequency_variant, time_frequencies
from ..io.checkpoint import CheckpointError, require_finite_weights, state_dict_problems
from ..io.hub import resolve_spec
from ..io.hub_layout import CONFIG_NAME, FREQS_KEY, GLOBEFLOW_NAME, WEIGHTS_NAME, read_sizes, read_weights

__all__ = ["read_published_config", "load_published_network", "hub_model"]


def read_published_config(folder: str | os.PathLike) -> NetworkConfig:
    """The network of a hub-layout folder's ``config.json``, checked (frequencies: the published ones)."""
    sizes = read_sizes(folder)
    try:
        return NetworkConfig(**sizes, time_frequencies="published")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{Path(folder) / CONFIG_NAME}: invalid network sizes: {e}") from None


def _published_weights(folder: Path, config: NetworkConfig | None) -> tuple[NetworkConfig, dict[str, Tensor]]:
    """The folder's network config (with the frequency variant its weights carry) and its weights,
    checked against ``config`` (from ``globeflow.json``) when given."""
    sizes = read_published_config(folder)
    if config is not None and replace(config, time_frequencies="published") != sizes:
        raise CheckpointError(f"{folder / GLOBEFLOW_NAME}: network {config} disagrees with {folder / CONFIG_NAME}")
    expected = config or sizes
    weights = read_weights(folder)
    path = folder / WEIGHTS_NAME
    # The published network saves its time-embedding frequencies as a buffer; ours computes them, so the
    # buffer only says which variant the weights were trained with.
    freqs = weights.pop(FREQS_KEY, None)
    with torch.device("meta"):  # shapes only: no memory for a second copy of the weights
        wanted = GeoAdaLNMLP(expected).state_dict()
    problems = state_dict_problems(wanted, weights)
    if problems:
        raise CheckpointError(f"{path}: weights do not match the config ({folder / CONFIG_NAME}): "
                              f"{'; '.join(problems)}")
    if freqs is not None:
        variant = frequency_variant(freqs, expected.dim)
        if variant is None:
            ours = time_frequencies(expected.dim // 4, endpoint=False)
            raise CheckpointError(f"{path}: {FREQS_KEY} holds time-embedding frequencies {freqs.tolist()[:4]}..., "
                                  f"globeflow's network computes {ours.tolist()[:4]}...; outputs would differ")
        if variant != expected.time_frequencies and config is not None:
            raise CheckpointError(f"{path}: {FREQS_KEY} holds the {variant!r} time-embedding frequencies, "
                                  f"{folder / GLOBEFLOW_NAME} says {expected.time_frequencies!r}")
        expected = replace(expected, time_frequencies=variant)
    return expected, weights


def load_published_network(folder: str | os.PathLike, config: NetworkConfig | None = None) -> GeoAdaLNMLP:
    """A hub-layout folder -> :class:`GeoAdaLNMLP` with its weights (strict: every key and shape).

    Args:
        folder: holds ``config.json`` and ``model.safetensors``.
        config: the expected network (from ``globeflow.json``); checked against ``config.json``.
    """
    net_config, weights = _published_weights(Path(folder), config)
    network = GeoAdaLNMLP(net_config)
    require_finite_weights(Path(folder) / WEIGHTS_NAME, weights)
    network.load_state_dict(weights)
    return network.eval()


def hub_model(spec: str | os.PathLike) -> tuple[GeoFlowModel, str | None, dict[str, Any]]:
    """A hub model spec (see :mod:`globeflow.io.hub`) -> ``(model with its weights, encoder name,
    provenance)``; downloads the files when needed."""
    source = resolve_spec(spec)
    base = None
    if source.model_config is not None:
        try:
            base = ModelConfig.from_dict(source.model_config)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source.folder / GLOBEFLOW_NAME}: invalid model_config: {e}") from None
    net_config, weights = _published_weights(source.folder, None if base is None else base.network)
    if source.embedding_dim is not None and net_config.cond_dim != source.embedding_dim:
        # A warning, not an error: embedding datasets of that width still work (and tests use tiny
        # networks); photos are refused when the encoder is loaded (Geolocator.image_encoder).
        warnings.warn(f"{source.folder}: the network takes {net_config.cond_dim}-d embeddings, but "
                      f"{source.origin.get('alias', 'this model')}'s encoder ({source.encoder}) gives "
                      f"{source.embedding_dim}-d ones: is the folder a copy of another model? Photos will be "
                      "refused; embedding datasets must have that width", UserWarning, stacklevel=2)
    config = replace(base, network=net_config) if base is not None else ModelConfig(network=net_config,
                                                                                    kind=source.kind)
    model = GeoFlowModel(config)
    require_finite_weights(source.folder / WEIGHTS_NAME, weights)
    model.network.load_state_dict(weights)
    return model, source.encoder, {**source.origin, "path": str(source.folder / WEIGHTS_NAME)}
