"""Load the model and its encoder, then run the app with uvicorn."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .predictor import Predictor, ServeConfig

__all__ = ["DEFAULT_MODEL", "load_predictor", "serve", "background_server"]

#: The Blue Marble demo's model (``globeflow demo``), trained on first use when absent.
DEFAULT_MODEL = Path("runs/demo/rfm")


def load_predictor(model: str | os.PathLike | None = None, *, encoder: str | None = None,
                   encoder_path: str | None = None, device: str | None = None,
                   config: ServeConfig = ServeConfig(), progress: bool = True, warm_up: bool = True) -> Predictor:
    """The model (a run, checkpoint or hub model; default: the demo's, trained if absent) and the
    encoder it was trained on, warmed up by one answer unless ``warm_up=False``."""
    from ..api import Geolocator
    from ..checkpoint import CHECKPOINT_NAME
    from ..encoders import load_encoder

    if model is None:
        model = DEFAULT_MODEL
        if not (DEFAULT_MODEL / CHECKPOINT_NAME).exists():
            from ..demo_blue_marble import run_blue_marble_demo

            print(f"globeflow serve: no model given and {DEFAULT_MODEL} is absent; training the Blue Marble demo "
                  "model first (about 10 minutes on 2 CPU cores, once)", file=sys.stderr)
            run_blue_marble_demo(DEFAULT_MODEL.parent, device=device, progress=progress)
    locator = Geolocator.load(model, device=device)
    name = encoder or locator.encoder
    if name is None:
        raise ValueError(f"{model}: the checkpoint does not name its image encoder; pass --encoder")
    predictor = Predictor(locator, load_encoder(name, encoder_path, device=locator.device), config,
                          name=_public_name(model))
    if warm_up:
        predictor.warm_up()
    return predictor


def _public_name(model: str | os.PathLike) -> str:
    """What the page and ``/api/health`` call the model: a hub name as given, a local path by its last
    two parts (``demo/rfm``), so that the server's folders are not shown to every client."""
    from ..hub import is_hub_spec
    from ..hub.registry import HUB_PREFIX, PUBLISHED_MODELS

    text = str(model)
    alias = text.partition(":")[0]
    if text.startswith(HUB_PREFIX) or text in PUBLISHED_MODELS:
        return text
    if alias in PUBLISHED_MODELS and is_hub_spec(text):
        return f"{alias} (local copy)"
    return "/".join(Path(text).parts[-2:])


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the app until interrupted."""
    import uvicorn

    from .app import create_app

    print(f"globeflow serve: http://{host}:{port}/  (model {predictor.name}, encoder {predictor.encoder.name})",
          file=sys.stderr)
    uvicorn.run(create_app(predictor), host=host, port=port, log_level=log_level)


@contextmanager
def background_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 0,
                      timeout_s: float = 30.0) -> Iterator[str]:
    """Run the app on a thread (tests, benchmarks, embedding in a program); yields its base URL.

    ``port=0`` takes a free port: the socket is bound here and handed to uvicorn, so there is no
    race between choosing a port and listening on it.
    """
    import uvicorn

    from .app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="globeflow-serve")
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start within {timeout_s:g} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
