"""Hugging Face hub models: the published PLONK checkpoints and globeflow models in the same layout.

* :mod:`~globeflow.hub.layout`: a model folder (``config.json`` + ``model.safetensors``, as
  ``PyTorchModelHubMixin`` writes them), read strictly and written atomically.
* :mod:`~globeflow.hub.registry`: the published models by short name (``plonk-osv5m`` ...), each with
  its model type and image encoder; downloads through ``huggingface_hub`` (cached, offline-aware).
* :mod:`~globeflow.hub.export`: a trained globeflow model -> a hub folder with a model card.
"""

from __future__ import annotations

from .export import export_model, model_card
from .layout import (CONFIG_NAME, GLOBEFLOW_KEY, PUBLISHED_CONFIG_KEYS, WEIGHTS_NAME, is_model_folder,
                     load_published_network, read_published_config, write_model_folder)
from .registry import (PUBLISHED_MODELS, HubSource, PublishedModel, download, is_hub_spec, load_hub_locator,
                       resolve_spec)

__all__ = [
    "CONFIG_NAME", "WEIGHTS_NAME", "GLOBEFLOW_KEY", "PUBLISHED_CONFIG_KEYS", "read_published_config",
    "load_published_network", "write_model_folder", "is_model_folder",
    "PublishedModel", "PUBLISHED_MODELS", "HubSource", "is_hub_spec", "resolve_spec", "download",
    "load_hub_locator", "export_model", "model_card",
]
