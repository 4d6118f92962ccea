"""Photos in: whatever a user has (file paths, Pillow images, encoded bytes, arrays, dataset records)
as inputs that :func:`globeflow.data.embed.embed_records` decodes and embeds in batches, and the batch
loop of :meth:`Geolocator.locate <globeflow.inference.geolocator.Geolocator.locate>`.

Each input gets a ``source`` (its path, or ``image <i>`` for an in-memory one) that names it in errors
and in answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import torch
from PIL import Image

from ..data.embed import embed_records
from ..data.encoders import Encoder
from ..data.images.records import MAX_PIXELS, ImageRecord, UnreadableImageError, decode_image
from .answers import Answer, AnswerConfig

__all__ = ["ImageInput", "PhotoInput", "photo_inputs", "iter_answers", "embed_inputs", "fuse_inputs"]

#: What :meth:`Geolocator.locate <globeflow.inference.geolocator.Geolocator.locate>` accepts per image.
ImageInput = Union[str, os.PathLike, Image.Image, bytes, np.ndarray, ImageRecord]
#: The types of one image (anything else is taken as a sequence of images).
_ONE_IMAGE = (str, os.PathLike, Image.Image, bytes, bytearray, memoryview, np.ndarray, ImageRecord)


@dataclass(frozen=True)
class PhotoInput:
    """One image to embed: its name and how to get it decoded (RGB, upright, fully loaded)."""

    source: str
    load: Callable[[], Image.Image]

    def open(self) -> Image.Image:
        return self.load()


def _array_image(array: np.ndarray, source: str) -> Image.Image:
    a = np.asarray(array)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise UnreadableImageError(source, f"an image array must be uint8 (H, W), (H, W, 3) or (H, W, 4), got "
                                           f"{a.dtype} {a.shape}")
    return Image.fromarray(a)


def _one(item: Any, index: int, max_pixels: int | None) -> PhotoInput:
    if isinstance(item, ImageRecord):
        return PhotoInput(item.source, lambda: item.open(max_pixels=max_pixels))
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        record = ImageRecord(id=path.stem, lat=float("nan"), lon=float("nan"), source=str(item))
        return PhotoInput(str(item), lambda: record.open(max_pixels=max_pixels))
    source = f"image {index}"
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        return PhotoInput(source, lambda: decode_image(data, source, max_pixels))
    if isinstance(item, Image.Image):
        return PhotoInput(source, lambda: item)
    if isinstance(item, np.ndarray):
        return PhotoInput(source, lambda: _array_image(item, source))
    raise TypeError(f"image {index}: expected a path, a PIL image, encoded bytes, a uint8 array or an ImageRecord, "
                    f"got {type(item).__name__}")


def photo_inputs(images: ImageInput | Sequence[ImageInput], *, max_pixels: int | None = MAX_PIXELS) -> list[PhotoInput]:
    """The images as :class:`PhotoInput` s, in order; one image may be given alone. Files are read
    and decoded only when embedded (``max_pixels`` guards against decompression bombs)."""
    items = [images] if isinstance(images, _ONE_IMAGE) else list(images)
    return [_one(item, i, max_pixels) for i, item in enumerate(items)]


def iter_answers(encoder: Encoder, answer: Callable[..., list[Answer]], inputs: Sequence[PhotoInput], *,
                 config: AnswerConfig, seed: int = 0, batch_size: int = 16, workers: int = 2,
                 on_unreadable: Literal["raise", "report"] = "raise") -> Iterator[Answer]:
    """Embed ``inputs`` with ``encoder`` a batch at a time and ``answer(embeddings, config=, seed=)``
    them: one :class:`Answer` per input, in order, yielded as each batch is done (see
    :meth:`Geolocator.locate <globeflow.inference.geolocator.Geolocator.locate>`)."""
    if on_unreadable not in ("raise", "report"):
        raise ValueError(f"on_unreadable must be 'raise' or 'report', got {on_unreadable!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(inputs), batch_size):
        part = inputs[start:start + batch_size]
        kept, emb, skipped = embed_records(part, encoder, batch_size=batch_size, workers=workers,
                                           errors="raise" if on_unreadable == "raise" else "skip")
        # Photo i is seeded with seed + i: its answer is the same alone, in any batch, or after others.
        seeds = [seed + start + int(j) for j in kept]
        found = iter(answer(torch.from_numpy(emb), config=config, seed=seeds) if len(kept) else [])
        reasons = iter(skipped)
        kept_set = set(kept.tolist())
        for j, item in enumerate(part):
            if j in kept_set:
                yield replace(next(found), source=item.source)
            else:
                yield Answer(source=item.source, error=next(reasons)[1])


def embed_inputs(encoder: Encoder, inputs: Sequence[PhotoInput], *, batch_size: int = 16, workers: int = 2,
                 on_unreadable: Literal["raise", "report"] = "raise"
                 ) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """All of ``inputs`` embedded: ``(embeddings (n, D) of the readable ones, their sources, [(source,
    reason)] of the unreadable ones)`` (``"raise"`` raises on the first unreadable one instead)."""
    if on_unreadable not in ("raise", "report"):
        raise ValueError(f"on_unreadable must be 'raise' or 'report', got {on_unreadable!r}")
    kept, emb, skipped = embed_records(list(inputs), encoder, batch_size=batch_size, workers=workers,
                                       errors="raise" if on_unreadable == "raise" else "skip")
    names = [inputs[int(j)].source for j in kept]
    return np.asarray(emb), names, list(skipped)


def fuse_inputs(fuse: Callable[..., Answer], encoder: Encoder, inputs: Sequence[PhotoInput], *,
                batch_size: int = 16, workers: int = 2, on_unreadable: Literal["raise", "report"] = "raise") -> Answer:
    """Photos of one place embedded and fused into one answer, ``fuse(embeddings, sources=names)``; with
    ``on_unreadable="report"`` the unreadable ones are left out and listed in ``evidence["skipped"]``."""
    emb, names, skipped = embed_inputs(encoder, inputs, batch_size=batch_size, workers=workers,
                                       on_unreadable=on_unreadable)
    if not names:
        raise ValueError(f"none of the {len(inputs)} photos could be read: nothing to fuse")
    answer = fuse(emb, sources=names)
    if skipped:
        answer = replace(answer, evidence={**(answer.evidence or {}),
                                           "skipped": [{"source": s, "error": e} for s, e in skipped]})
    return answer
