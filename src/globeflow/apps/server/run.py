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

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ...inference.geolocator import Geolocator
from ...io.hub import HUB_PREFIX, PUBLISHED_MODELS, is_hub_spec
from .app import create_app
from .predictor import Predictor, ServeConfig

__all__ = ["load_predictor", "serve", "background_server", "uvicorn_config"]


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head: a connection that has not sent a
    complete request line and headers within ``header_timeout_s`` of opening (or of its previous
    response) is closed. uvicorn has no such timeout, so an idle or slow-header socket ("slowloris")
    stayed open for minutes. Its own keep-alive timeout still closes idle connections between
    requests; the body's pace is the app's ``read_timeout_s``."""

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        self._deadline = None

    def _expire(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request head arrived

    def on_response_complete(self) -> None:
        self._arm()  # before the base class, which may start a pipelined request (and disarm)
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_config(app, config: ServeConfig, **kwargs) -> uvicorn.Config:
    """The uvicorn settings of ``serve``: the header deadline, keep-alive timeout and connection cap of
    ``config`` (beyond ``max_connections`` open connections and tasks, uvicorn answers 503)."""
    protocol = type("HeaderDeadline", (_HeaderDeadline,), {"header_timeout_s": config.header_timeout_s})
    return uvicorn.Config(app, http=protocol, timeout_keep_alive=config.keep_alive_s,
                          limit_concurrency=config.max_connections, **kwargs)


def load_predictor(model: str | os.PathLike, *, encoder: str | None = None, encoder_path: str | None = None,
                   device: str | None = None, config: ServeConfig = ServeConfig(), warm_up: bool = True) -> Predictor:
    """The model (a run, checkpoint or hub model) and the encoder it was trained on (``encoder`` and
    ``encoder_path`` override), warmed up by one answer unless ``warm_up=False``."""
    locator = Geolocator.load(model, device=device)
    predictor = Predictor(locator, locator.image_encoder(encoder, encoder_path), config, name=_public_name(model))
    if warm_up:
        predictor.warm_up()
    return predictor


def _public_name(model: str | os.PathLike) -> str:
    """What the page and ``/api/health`` call the model: a hub name as given, a local path by its last
    two parts (``demo/rfm``), so that the server's folders are not shown to every client."""
    text = str(model)
    alias = text.partition(":")[0]
    if text.startswith(HUB_PREFIX) or text in PUBLISHED_MODELS:
        return text
    if alias in PUBLISHED_MODELS and is_hub_spec(text):
        return f"{alias} (local copy)"
    return "/".join(Path(text).parts[-2:])


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the app until interrupted."""
    print(f"globeflow serve: http://{host}:{port}/  (model {predictor.name}, encoder {predictor.encoder.name})",
          file=sys.stderr)
    uvicorn.Server(uvicorn_config(create_app(predictor), predictor.config, host=host, port=port,
                                  log_level=log_level)).run()


@contextmanager
def background_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 0,
                      timeout_s: float = 30.0) -> Iterator[str]:
    """Run the app on a thread (tests, benchmarks, embedding in a program); yields its base URL.

    ``port=0`` takes a free port: the socket is bound here and handed to uvicorn, so there is no
    race between choosing a port and listening on it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn_config(create_app(predictor), predictor.config, log_level="warning",
                                           lifespan="on"))
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
