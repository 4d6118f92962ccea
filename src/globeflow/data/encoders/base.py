"""The encoder interface, the offline-weights error, and the small image operations encoders share.

An :class:`Encoder` is a frozen image model: ``preprocess`` turns Pillow images into a pixel batch
with the model's own resizing, cropping and normalisation, and ``embed`` turns that batch into one
float32 vector per image. Preprocessing is plain Pillow + torch with documented constants, so it is
deterministic and needs no downloaded processor files.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

__all__ = ["ENCODER_PATH_HINT", "IMAGENET_MEAN", "IMAGENET_STD", "Encoder", "EncoderUnavailableError", "center_crop",
           "center_square", "resize_shortest", "to_rgb", "to_tensor"]

#: ImageNet channel statistics (torchvision / DINOv2), RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENCODER_PATH_HINT = "run once online so the weights are cached, or pass --encoder-path to a local copy of the weights"


class EncoderUnavailableError(RuntimeError):
    """The weights of an encoder cannot be obtained (offline, not cached, missing package or file).

    The message names the model, what was tried and how to fix it.
    """

    def __init__(self, model: str, tried: str, fix: str = ENCODER_PATH_HINT):
        self.model, self.tried, self.fix = model, tried, fix
        super().__init__(f"image encoder {model!r} is unavailable: tried {tried}. To fix: {fix}.")


class Encoder(nn.Module, abc.ABC):
    """A frozen image encoder: Pillow images -> pixels ``(B, 3, H, W)`` -> embeddings ``(B, dim)``.

    Subclasses set ``name`` (what :func:`globeflow.data.encoders.load_encoder` accepts to rebuild the same
    encoder) and ``dim``, and implement :meth:`preprocess` and :meth:`forward`.
    """

    name: str
    dim: int

    @abc.abstractmethod
    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """Images of any size and mode -> ``(B, 3, H, W)`` float32 pixels on the CPU, ready for ``embed``."""

    @abc.abstractmethod
    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, H, W)`` on the module's device -> ``(B, dim)`` embeddings."""

    def train(self, mode: bool = True) -> "Encoder":
        # Frozen: a parent's ``.train()`` must not switch on dropout or batch statistics, which would
        # make an image's embedding depend on its batch.
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def embed(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, H, W)`` from :meth:`preprocess` -> ``(B, dim)`` float32 on the module's device."""
        param = next(self.parameters())
        return self(pixels.to(device=param.device, dtype=param.dtype)).float()

    def embed_images(self, images: Sequence[Image.Image]) -> Tensor:
        """``embed(preprocess(images))``: ``(B, dim)`` float32."""
        return self.embed(self.preprocess(images))


# --- image operations (Pillow in, Pillow or tensor out) -------------------------------------------

def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB. Transparent pixels are composited on white (as transformers' ``convert_rgb``
    does), because their stored colour is arbitrary and often black."""
    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def center_square(image: Image.Image) -> Image.Image:
    """The largest centred square (a 1:1 centre crop); the odd pixel of a difference goes right/bottom."""
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s))


def resize_shortest(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so the shorter side is ``size``; the longer side is truncated as transformers'
    ``get_resize_output_image_size`` does (``int(size * long / short)``), to match CLIP's processor."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    other = int(size * long / short)
    new = (size, other) if w <= h else (other, size)
    return image.resize(new, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Centre ``size x size`` crop, offsets ``(W - size) // 2`` as in transformers' ``center_crop``."""
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(images: Sequence[Image.Image], size: int, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """RGB ``size x size`` images -> ``(B, 3, size, size)`` float32, ``(x / 255 - mean) / std`` per channel."""
    arr = np.zeros((0, size, size, 3), np.float32)
    if len(images):
        arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 255.0  # (B, H, W, 3)
    if arr.shape[1:] != (size, size, 3):
        raise ValueError(f"expected {size}x{size} RGB images, got an array of shape {arr.shape}")
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s
