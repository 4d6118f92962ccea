"""``globeflow serve``: a web page and a JSON API that answer "where on Earth?" for a photo.

* :mod:`~globeflow.apps.server.predictor`: photo bytes -> answer (decode safely, locate, density grid),
  and the server's settings (:class:`ServeConfig`);
* :mod:`~globeflow.apps.server.app`: the FastAPI app (routes, limits, JSON errors);
* :mod:`~globeflow.apps.server.run`: load a model, run the app (``serve``, ``background_server``);
* :mod:`~globeflow.apps.server.work`: the bounded work queue;
* ``static/``: the page (our own HTML, CSS and JavaScript; no third-party script).

``app`` and ``run`` need the ``server`` extra (FastAPI, uvicorn, python-multipart), so this package
imports only what does not: ``from globeflow.apps.server.run import serve`` for the rest.
"""

from __future__ import annotations

from .predictor import Predictor, ServeConfig, density_grid

__all__ = ["Predictor", "ServeConfig", "density_grid"]
