"""``globeflow serve``: a web page and a JSON API that answer "where on Earth?" for a photo.

* :mod:`~globeflow.server.app`: the FastAPI app (routes, limits, JSON errors);
* :mod:`~globeflow.server.predictor`: photo bytes -> answer (decode safely, embed, answer, density grid);
* :mod:`~globeflow.server.work`: the bounded work queue;
* ``static/``: the page (our own HTML, CSS and JavaScript; no third-party script).
"""

from __future__ import annotations

from .predictor import Predictor, ServeConfig, density_grid
from .run import DEFAULT_MODEL, background_server, load_predictor, serve

__all__ = ["Predictor", "ServeConfig", "density_grid", "create_app", "load_predictor", "serve", "background_server",
           "DEFAULT_MODEL"]


def create_app(predictor: Predictor):
    """See :func:`globeflow.server.app.create_app` (imported lazily: FastAPI loads only when serving)."""
    from .app import create_app as _create

    return _create(predictor)
