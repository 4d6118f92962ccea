"""Vision towers from ``transformers``: StreetCLIP, DINOv2-L with registers, and any CLIP or SigLIP.

``transformers`` is imported inside functions only, so ``import globeflow.encoders`` stays light.
Weights come from ``<Model>.from_pretrained(hub id or local folder)``. ``HF_HUB_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` and ``HF_HUB_CACHE`` / ``HF_HOME`` are read at load time (huggingface_hub
freezes them when first imported), and a download that cannot happen becomes an
:class:`~globeflow.data.encoders.base.EncoderUnavailableError`.

Embeddings, each matching how the published models were fed:

* ``streetclip`` (``geolocal/StreetCLIP``, CLIP ViT-L/14-336): the CLS token of the last encoder
  layer, *before* ``post_layernorm``, 1024-d. In transformers' CLIP vision model
  ``last_hidden_state`` is the encoder output and only ``pooler_output`` goes through
  ``post_layernorm``; PLONK's OSV-5M embeddings are ``last_hidden_state[:, 0]``.
* ``dinov2-vitl14-reg`` (``facebook/dinov2-with-registers-large``): the normalised CLS token,
  1024-d. PLONK's YFCC/iNat embeddings are ``torch.hub`` ``dinov2_vitl14_reg(x)``, whose head is the
  identity on ``x_norm_clstoken``, the CLS token after the final layer norm. In transformers that is
  ``pooler_output`` (= ``layernorm(sequence)[:, 0]``), not the pre-norm token.
* ``clip:<hub id or path>`` / ``siglip:<hub id or path>``: the model's ``pooler_output``
  (CLIP: post-layernorm CLS; SigLIP: attention-pooling head).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from PIL import Image
from torch import Tensor

from ...io.extras import require
from ...io.hub import hub_failure, hub_options
from .base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Encoder,
    EncoderUnavailableError,
    center_crop,
    center_square,
    resize_shortest,
    to_rgb,
    to_tensor,
)

__all__ = ["CLIP_MEAN", "CLIP_STD", "SIGLIP_MEAN", "SIGLIP_STD", "STREETCLIP_ID", "CLIPVisionEncoder", "DINOv2RegEncoder",
           "HFVisionEncoder", "SiglipVisionEncoder", "StreetCLIPEncoder", "local_folder"]

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

STREETCLIP_ID = "geolocal/StreetCLIP"
DINOV2_REG_ID = "facebook/dinov2-with-registers-large"
#: OpenAI CLIP pixel statistics (also StreetCLIP's processor config).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
#: PLONK's DINOv2 input side (a 24 x 24 grid of 14-pixel patches).
DINOV2_IMAGE_SIZE = 336


class HFVisionEncoder(Encoder):
    """A frozen transformers vision model; subclasses choose the model class, pixels and pooling.

    Args:
        model: the transformers vision model (``config.hidden_size`` is the embedding dimension).
        name: the registry name that rebuilds this encoder.
        image_size: side of the square pixels that ``preprocess`` makes.
    """

    model_class: ClassVar[str]  # the transformers class, looked up when first needed
    family: ClassVar[str]  # names are "<family>:<source>" unless the class has a default_name
    default_name: ClassVar[str | None] = None  # the registry name of a fixed model
    default_source: ClassVar[str | None] = None  # its hub id

    def __init__(self, model: PreTrainedModel, *, name: str, image_size: int):
        super().__init__()
        self.model = model
        self.name = name
        self.dim = int(model.config.hidden_size)
        self.image_size = image_size
        self.requires_grad_(False).eval()

    @classmethod
    def default_image_size(cls, config: PretrainedConfig) -> int:
        return int(config.image_size)

    @classmethod
    def from_config(cls, config: PretrainedConfig, *, name: str | None = None,
                    image_size: int | None = None) -> HFVisionEncoder:
        """Random weights from a transformers config (tests build tiny models this way, offline)."""
        import transformers

        model = getattr(transformers, cls.model_class)(config)
        name = name or cls.default_name or f"{cls.family}:random"
        return cls(model, name=name, image_size=image_size or cls.default_image_size(config))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, *,
                        name: str | None = None) -> HFVisionEncoder:
        """Weights from a hub id or a local folder (as written by ``save_pretrained``), in float32;
        ``None`` means the class's ``default_source``.

        Raises:
            EncoderUnavailableError: the files are neither cached nor downloadable (e.g. offline).
            MissingExtraError: transformers is not installed (the ``hub`` extra).
        """
        require("hub", f"the {cls.default_name or cls.family} image encoder")
        import transformers  # ~1 s to import: only Hugging Face encoders need it

        if name_or_path is None and cls.default_source is None:
            raise ValueError(f"{cls.__name__}.from_pretrained needs a hub id or a local folder")
        source = str(name_or_path if name_or_path is not None else cls.default_source)
        name = name or cls.default_name or f"{cls.family}:{source}"
        options = hub_options()
        try:
            model = getattr(transformers, cls.model_class).from_pretrained(source, **options)
        except OSError as err:
            raise EncoderUnavailableError(
                name, f"transformers.{cls.model_class}.from_pretrained({source!r}) {hub_failure(options, err)}"
            ) from err
        return cls(model.float(), name=name, image_size=cls.default_image_size(model.config))


class CLIPVisionEncoder(HFVisionEncoder):
    """Any CLIP vision tower (``clip:<hub id or path>``): ``pooler_output``, the post-layernorm CLS token.

    Preprocessing as CLIP's processor: RGB, bicubic resize of the shorter side to ``image_size``,
    centre crop ``image_size``, CLIP mean/std.
    """

    model_class = "CLIPVisionModel"
    family = "clip"

    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """``images`` -> ``(B, 3, image_size, image_size)`` float32."""
        size = self.image_size
        crops = [center_crop(resize_shortest(to_rgb(im), size), size) for im in images]
        return to_tensor(crops, size, CLIP_MEAN, CLIP_STD)

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, S, S)`` -> ``(B, hidden_size)``."""
        return self.model(pixel_values=pixels).pooler_output


class StreetCLIPEncoder(CLIPVisionEncoder):
    """StreetCLIP (``streetclip``): the CLS token before ``post_layernorm``, 1024-d, at 336 pixels.

    Pre-norm, because that is what PLONK's OSV-5M models were trained on
    (``CLIPVisionModel(...).last_hidden_state[:, 0]``); the pooled output is that token after
    ``post_layernorm``.
    """

    default_name = "streetclip"
    default_source = STREETCLIP_ID

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, S, S)`` -> ``(B, hidden_size)``, the last layer's CLS token before ``post_layernorm``."""
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]


class SiglipVisionEncoder(HFVisionEncoder):
    """Any SigLIP vision tower (``siglip:<hub id or path>``): ``pooler_output`` (attention pooling).

    Preprocessing as SigLIP's processor: RGB, bicubic resize of the whole image to
    ``image_size x image_size`` (no crop, the aspect ratio is not kept), mean/std 0.5.
    """

    model_class = "SiglipVisionModel"
    family = "siglip"

    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """``images`` -> ``(B, 3, image_size, image_size)`` float32 in [-1, 1]."""
        size = self.image_size
        resized = [to_rgb(im).resize((size, size), Image.Resampling.BICUBIC) for im in images]
        return to_tensor(resized, size, SIGLIP_MEAN, SIGLIP_STD)

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, S, S)`` -> ``(B, hidden_size)``."""
        out = self.model(pixel_values=pixels)
        if out.pooler_output is None:
            # Towers configured without the pooling head (vision_use_head=False): mean of the
            # normalised tokens, as transformers' SiglipForImageClassification pools.
            return out.last_hidden_state.mean(dim=1)
        return out.pooler_output


class DINOv2RegEncoder(HFVisionEncoder):
    """DINOv2 ViT-L/14 with registers (``dinov2-vitl14-reg``): the normalised CLS token, 1024-d.

    Preprocessing as PLONK's DINOv2 embeddings: RGB, the largest centred square (1:1 crop), bicubic
    resize to 336, ImageNet mean/std. The position embeddings are interpolated to 24 x 24 patches.
    """

    model_class = "Dinov2WithRegistersModel"
    family = "dinov2"
    default_name = "dinov2-vitl14-reg"
    default_source = DINOV2_REG_ID

    @classmethod
    def default_image_size(cls, config: PretrainedConfig) -> int:
        # config.image_size (518) is the pretraining size; PLONK embedded at 336.
        return DINOV2_IMAGE_SIZE

    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """``images`` -> ``(B, 3, image_size, image_size)`` float32."""
        size = self.image_size
        squares = [center_square(to_rgb(im)).resize((size, size), Image.Resampling.BICUBIC) for im in images]
        return to_tensor(squares, size, IMAGENET_MEAN, IMAGENET_STD)

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels (B, 3, S, S)``, ``S`` a multiple of the patch size -> ``(B, hidden_size)``."""
        return self.model(pixel_values=pixels).pooler_output


def local_folder(path: str | os.PathLike, name: str) -> str:
    """``path`` as a string if it is a folder; otherwise an :class:`EncoderUnavailableError`, because
    ``from_pretrained`` would take a mistyped path for a hub id."""
    if not Path(path).is_dir():
        what = "is a file, not a folder" if Path(path).exists() else "does not exist"
        raise EncoderUnavailableError(
            name, f"the local weights folder {str(path)!r}, which {what}",
            "pass --encoder-path to a folder with the model's config.json and weights "
            "(as written by save_pretrained), or leave it out to use the Hugging Face hub")
    return str(path)
