"""Image records: one image and its position (:class:`ImageRecord`, decoded lazily and safely),
a dataset's records with its skipped rows (:class:`ImageSource`), and the error for an image that
cannot be read."""

from __future__ import annotations

import io
import math
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from globeflow.data.embeddings import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_FORMATS", "MAX_PIXELS", "UnreadableImageError", "ImageRecord", "ImageSource", "decode_image",
           "decode_bytes"]

# Order matters: it is the order in which extensions are tried for an id without one, and the
# order of preference when a WebDataset sample has several image members.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Pillow's own default limit; images with more pixels are refused before decoding.
MAX_PIXELS = 89_478_485
#: The only decoders Pillow may use: photo formats. Without the list, ``Image.open`` tries every
#: plugin, EPS included, whose ``load()`` runs Ghostscript on the data (a hazard for uploads).
#: (Multi-picture JPEGs, MPO, are opened by the JPEG decoder.)
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# Register every plugin now: ``Image.open(formats=...)`` looks the names up before its lazy init.
Image.init()

Metadata = dict[str, Union[str, int, float]]


class UnreadableImageError(DatasetError):
    """An image could not be read or decoded. The message is ``"<source>: <reason>"``."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Default reduce would call __init__ with the message only (DataLoader workers pickle).
        return (type(self), (self.source, self.reason))


@dataclass(frozen=True)
class ImageRecord:
    """One image and its position.

    ``lat``/``lon`` are degrees, NaN when unknown. ``source`` says where the image is for
    people: a file path, or ``"<shard>:<member>"``. The image lives in the file ``path`` (the
    image file, or the tar shard; ``None`` means ``source`` is the file path); for a tar shard,
    ``member`` names it and ``span`` is the ``(offset, size)`` of its bytes in the shard (without
    ``span`` the member is looked up by name, which scans the tar).
    """

    id: str
    lat: float
    lon: float
    metadata: Metadata = field(default_factory=dict, hash=False)
    source: str = ""
    path: str | None = None
    member: str | None = None
    span: tuple[int, int] | None = None

    @property
    def has_location(self) -> bool:
        return math.isfinite(self.lat) and math.isfinite(self.lon)

    def read_bytes(self) -> bytes:
        """The encoded image file; raises :class:`UnreadableImageError`."""
        file = self.path or self.source
        try:
            if self.member is None:
                with open(file, "rb") as fh:
                    return fh.read()
            if self.span is None:
                return _tar_member_bytes(file, self.member)
            offset, size = self.span
            with open(file, "rb") as fh:
                fh.seek(offset)
                data = fh.read(size)
        except FileNotFoundError:
            raise UnreadableImageError(self.source, f"no such file: {file}") from None
        except (OSError, tarfile.TarError, KeyError) as exc:
            raise UnreadableImageError(self.source, f"cannot read: {exc}") from exc
        if len(data) != size:
            raise UnreadableImageError(self.source, f"shard truncated: {len(data)} of {size} bytes")
        return data

    def open(self, *, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
        """The decoded image, fully loaded, in RGB, turned upright per its EXIF orientation.

        Raises :class:`UnreadableImageError` for a missing, truncated, corrupt or non-image file,
        and for a decompression bomb: more than ``max_pixels`` pixels (checked from the header,
        before decoding; ``None`` leaves only Pillow's own limit, twice ``MAX_IMAGE_PIXELS``).
        Pillow's ``DecompressionBombWarning`` may still be issued (above its own limit) before
        the error. Safe to call from several threads.
        """
        return decode_image(self.read_bytes(), self.source, max_pixels)


def _tar_member_bytes(shard: str, member: str) -> bytes:
    with tarfile.open(shard, mode="r:") as tar:
        extracted = tar.extractfile(member)
        if extracted is None:
            raise KeyError(f"{member} is not a regular file")
        return extracted.read()


#: Bytes per pixel of Pillow's in-memory image by mode (RGB and YCbCr are stored as 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 4, "YCbCr": 4, "LAB": 4, "HSV": 4,
               "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4}


def decode_bytes(mode: str, pixels: int) -> int:
    """Estimated peak memory (bytes) of decoding an image of ``mode`` and ``pixels`` and converting it
    to 8-bit RGB as :func:`decode_image` does: the decoded image, the float32 copy that 16-bit and
    float images are rescaled through, and the RGB result."""
    decoded = 2 if mode.startswith("I;16") else _MODE_BYTES.get(mode, 4)
    rescale = 4 + 1 if mode in ("I", "F") or mode.startswith("I;16") else 0
    return pixels * (decoded + rescale + 4)


def decode_image(data: bytes, source: str, max_pixels: int | None = MAX_PIXELS, *,
                 max_bytes: int | None = None) -> Image.Image:
    """Encoded image bytes -> a fully loaded, upright RGB image; :class:`UnreadableImageError` (naming
    ``source``) for a non-image, a truncated or corrupt file, more than ``max_pixels`` pixels, or
    (with ``max_bytes``) an estimated decoding memory (:func:`decode_bytes`) above ``max_bytes``:
    a pixel count alone lets a small float TIFF take gigabytes."""
    # Pillow only warns between 1x and 2x its MAX_IMAGE_PIXELS; the explicit check decides. The
    # warning is not silenced here: catch_warnings is process-wide and open() runs in threads.
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            pixels = image.width * image.height
            if max_pixels is not None and pixels > max_pixels:
                raise UnreadableImageError(
                    source,
                    f"decompression bomb: {image.width}x{image.height} = {pixels} pixels "
                    f"exceeds the limit of {max_pixels}",
                )
            need = decode_bytes(image.mode, pixels)
            if max_bytes is not None and need > max_bytes:
                raise UnreadableImageError(
                    source,
                    f"decoding this {image.width}x{image.height} {image.mode} image would take about "
                    f"{need / 2**20:.0f} MB, over the limit of {max_bytes / 2**20:.0f} MB",
                )
            image.load()
            return _to_8bit(_upright(image)).convert("RGB")
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives here as an exception when warnings are errors (-W error).
        raise UnreadableImageError(source, f"decompression bomb: {exc}") from exc
    except UnidentifiedImageError:
        raise UnreadableImageError(source, f"not an image (format not recognised; accepted: "
                                           f"{', '.join(IMAGE_FORMATS)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt image data.
        raise UnreadableImageError(source, f"cannot decode image: {exc}") from exc


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale -> 8-bit ``L``: ``convert("RGB")`` would clip every value above 255,
    turning a 16-bit photo almost entirely white. 16-bit data (and 32-bit data within its range) is
    divided by 257 (65535 -> 255), 8-bit-range integers are kept, anything else is scaled from its
    minimum (or 0) to its maximum."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float32)  # float32 is exact for 16-bit data and halves the copy
    low, high = min(float(values.min()), 0.0), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and 255 < high <= 65535 and low >= 0):
        top = 65535.0
    elif image.mode == "I" and high <= 255 and low >= 0:
        top = 255.0
    else:
        values, top = values - low, max(high - low, 1e-12)
    return Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        return image  # a broken orientation tag should not make a good image unreadable


@dataclass
class ImageSource:
    """The records of a dataset, in the order documented for its kind, and the skipped rows.

    ``kind`` is one of :data:`KINDS`. ``root`` is the folder ids and image paths are taken
    relative to (``files``, ``inat21``, ``yfcc``), the dataset root (``osv5m``) or the folder
    holding the shards (``webdataset``).
    """

    records: list[ImageRecord]
    skipped: list[tuple[str, str]]
    kind: str
    root: str

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> ImageRecord:
        return self.records[index]
