"""One photo's bytes -> the answer the web page and ``POST /api/predict`` return.

Decoding is Pillow's, behind :func:`~globeflow.data.images.records.decode_image` (header checked for
decompression bombs before any pixel is decoded, truncated data refused). The answer is
:meth:`Geolocator.locate <globeflow.inference.geolocator.Geolocator.locate>`'s, what ``globeflow
predict`` gives for a photo, plus the density on a plate carree grid for drawing.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ...checks import require_finite
from ...data.encoders import Encoder
from ...data.images.records import decode_image
from ...inference.answers import AnswerConfig
from ...inference.density import DensityMap, MapConfig
from ...inference.evidence import Constraints, fuse
from ...inference.geolocator import Geolocator
from ...inference.photos import embed_inputs, photo_inputs
from ...viz.maps import DYNAMIC_RANGE_NATS, sample_plate_carree
from .assets import world_outlines_json

__all__ = ["ServeConfig", "Predictor", "density_grid"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and answer settings of ``globeflow serve``."""

    #: Largest accepted upload (the image file itself); the CLI takes it in MB (``--max-upload-mb``).
    max_upload_bytes: int = field(default=20 * 1024 * 1024, metadata={"cli": False})
    #: Largest accepted image, in pixels, checked from the header before decoding (decompression bombs).
    max_pixels: int = field(default=50_000_000, metadata={"help": "largest accepted image in pixels, checked "
                                                                  "before decoding"})
    #: Requests in progress at once (reading, waiting or being answered); the next gets 503.
    max_pending: int = field(default=32, metadata={"help": "requests in progress at once; the next gets 503"})
    #: Seconds a client may take to send its upload (a slow client holds a slot meanwhile); then 408.
    read_timeout_s: float = field(default=30.0, metadata={"help": "seconds an upload may take (then 408)"})
    max_guidance: float = field(default=10.0, metadata={"help": "largest guidance scale a request may ask for"})
    #: Photos one request may send to be fused (several photos of one place); each costs about one answer.
    max_photos: int = field(default=8, metadata={"help": "photos one request may fuse (several photos of one place)"})
    #: Memory an image may take while it is decoded and converted, estimated from its header (mode,
    #: bit depth, size) before decoding: a 49 Mpx float TIFF of 315 KB needed ~1.1 GB.
    max_decode_mb: int = field(default=512, metadata={"help": "largest memory (MB) an image may take to decode, "
                                                              "estimated from its header by mode and bit depth"})
    #: Seconds a connection may take to send a complete request head (slow clients, "slowloris").
    header_timeout_s: float = field(default=10.0, metadata={"help": "seconds a connection may take to send its "
                                                                    "request headers (then it is closed)"})
    #: Seconds an idle kept-alive connection stays open between requests.
    keep_alive_s: float = field(default=5.0, metadata={"help": "seconds an idle connection stays open"})
    #: Open connections at once; beyond it new requests get 503.
    max_connections: int = field(default=64, metadata={"help": "open connections at once (then 503)"})
    #: Density raster sent to the page: width x width/2 plate carree cells.
    grid_width: int = field(default=360, metadata={"cli": False})
    #: Chosen for latency on a CPU: a nside-16 map (~440 km cells) refined around 48 cells, with
    #: dopri5 at 1e-4 (as photo answers: each answer measures its error and warns above 0.05 nats;
    #: before issue 15 it was RK4-8, about 6 s per photo, whose errors no answer reported).
    #: ``globeflow map`` makes the fine maps.
    answers: AnswerConfig = field(default_factory=lambda: AnswerConfig(
        num_samples=128, rtol=1e-4, atol=1e-4, top_k=5,
        map=MapConfig(nside=16, start_nside=4, max_cells=48, exact_top=48)))

    def __post_init__(self) -> None:
        require_finite(self)
        for name in ("max_upload_bytes", "max_pixels", "max_pending", "grid_width", "max_decode_mb", "max_connections",
                     "max_photos"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("read_timeout_s", "header_timeout_s", "keep_alive_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.grid_width % 2:
            raise ValueError(f"grid_width must be even, got {self.grid_width}")


def density_grid(dmap: DensityMap, width: int) -> dict[str, Any]:
    """The map's log-density on a ``width x width/2`` plate carree grid, row 0 at the north, quantised
    to bytes over the top :data:`DYNAMIC_RANGE_NATS` nats: byte ``v > 0`` means
    ``log_density = max - range * (255 - v) / 254``, 0 means fainter (drawn transparent)."""
    height = width // 2
    _, _, values = sample_plate_carree(dmap.log_density, dmap.nside, True, width, height)
    top = float(values.max())
    scaled = 1.0 + 254.0 * (values - (top - DYNAMIC_RANGE_NATS)) / DYNAMIC_RANGE_NATS
    quantised = np.where(scaled >= 1.0, np.rint(np.clip(scaled, 1.0, 255.0)), 0).astype(np.uint8)
    return {"width": width, "height": height, "projection": "plate carree, row 0 at 90N, column 0 at 180W",
            "encoding": "uint8, base64", "max_log_density": top, "range_nats": DYNAMIC_RANGE_NATS,
            "units": dmap.units, "data": base64.b64encode(quantised.tobytes()).decode("ascii")}


class Predictor:
    """A model and its encoder, answering one photo at a time (called from the work queue's thread)."""

    def __init__(self, locator: Geolocator, encoder: Encoder, config: ServeConfig = ServeConfig(), name: str = ""):
        locator.use_encoder(encoder)
        self.locator, self.encoder, self.config, self.name = locator, encoder, config, name

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.locator.config.kind, "encoder": self.encoder.name,
                "density": bool(self.locator.has_density)}

    def warm_up(self) -> None:
        """One answer on a synthetic photo: builds the place indexes (seconds, once per process) and
        warms the allocator, so that the first visitor does not wait for them."""
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (90, 120, 160)).save(buf, format="PNG")
        self.answer(buf.getvalue(), "warm-up.png")
        world_outlines_json()

    def answer(self, data: bytes, source: str, guidance: float = 0.0, seed: int = 0,
               constraints: Constraints | None = None) -> dict[str, Any]:
        """Answer for one encoded image; raises ``UnreadableImageError`` for a bad one."""
        return self.answer_photos([(data, source)], guidance, seed, constraints)

    def answer_photos(self, photos: Sequence[tuple[bytes, str]], guidance: float = 0.0, seed: int = 0,
                      constraints: Constraints | None = None) -> dict[str, Any]:
        """One answer for encoded images ``[(bytes, name)]``: one photo's own, or several photos of
        one place fused, each restricted to ``constraints``; raises ``UnreadableImageError`` for a bad one."""
        t0 = time.perf_counter()
        limit = self.config.max_decode_mb * 2**20
        images = [decode_image(data, source, self.config.max_pixels, max_bytes=limit) for data, source in photos]
        config = dataclasses.replace(self.config.answers, guidance=guidance)
        if len(images) == 1:
            answer = self.locator.locate(images, config=config, seed=seed, constraints=constraints)[0]
        else:
            emb, _, _ = embed_inputs(self.encoder, photo_inputs(images))
            # The photos' own names, so that the contributions and warnings say which photo is which.
            answer = fuse(self.locator, emb, config=config, seed=seed, constraints=constraints,
                                       sources=[name for _, name in photos])
        first = images[0]
        out: dict[str, Any] = {"model": self.describe(), "image": {"name": photos[0][1], "width": first.width,
                                                                   "height": first.height}}
        if len(images) > 1:
            out["images"] = [{"name": name, "width": im.width, "height": im.height}
                             for (_, name), im in zip(photos, images)]
        out.update(answer.to_dict())
        if answer.density_map is not None:
            out["density"] = density_grid(answer.density_map, self.config.grid_width)
        else:
            out.update(density=None, top_k=[], localizability=None, credible_regions=[])
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out
