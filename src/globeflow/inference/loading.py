"""The one constructor of a trained model: :func:`load_locator` reads a run, a checkpoint or a hub
model and returns the facade its model kind needs."""

from __future__ import annotations

import os

import torch

from .. import registry
from ..io.checkpoint import CheckpointError
from ..io.hub import is_hub_spec
from .geolocator import Geolocator
from .head_locator import DirectGeolocator
from .locator import Locator, checkpoint_kind, read_model_checkpoint

__all__ = ["load_locator", "LOCATORS"]

#: The facade of each model class (the registry says which class a kind's model is).
LOCATORS: tuple[type[Locator], ...] = (Geolocator, DirectGeolocator)


def load_locator(path: str | os.PathLike, device: str | torch.device | None = None) -> Locator:
    """Load any trained model: a :class:`Geolocator` for flow models (rfm, fm, diffusion), a
    :class:`DirectGeolocator` for trained baselines (vmf, vmf-mixture, geocell, regression).

    ``path``: a run directory or checkpoint file, or a hub model (a published name such as
    ``plonk-osv5m``, ``plonk-osv5m:DIR``, ``hf:owner/name``, a hub-layout folder; see
    :mod:`globeflow.io.hub`).
    """
    if is_hub_spec(path):
        return Geolocator.load(path, device)
    ckpt = read_model_checkpoint(path)
    kind = checkpoint_kind(ckpt)
    for locator in LOCATORS:
        if issubclass(kind.model_class, locator.model_class):
            return locator.from_checkpoint(ckpt, device)
    raise CheckpointError(f"{ckpt.path}: no facade answers for a {kind.name} model "
                          f"(kinds: {', '.join(registry.KINDS)})")  # pragma: no cover - every kind has one
