"""globeflow: where on Earth was this photo taken, as a probability distribution over the globe.

>>> from globeflow import Geolocator
>>> geo = Geolocator.load("plonk-osv5m")             # or a run directory, or hf:owner/name  # doctest: +SKIP
>>> answers = geo.locate(["a.jpg", "b.jpg"], top_k=5)                                       # doctest: +SKIP
>>> answers[0].best_guess, answers[0].countries[:3], answers[0].to_geojson()                 # doctest: +SKIP

Importing globeflow loads torch and the front door, not the optional or heavy libraries (healpy,
matplotlib, transformers, FastAPI, faiss): those load where they are used.
"""

from ._version import __version__
from .flow import GeoFlowModel, ModelConfig, NetworkConfig, SamplerConfig
from .inference import Answer, AnswerConfig, DensityMap, DirectGeolocator, Geolocator, Locator, MapConfig, load_locator
from .train import TrainConfig, train

__all__ = [
    "__version__",
    "Geolocator",
    "Answer",
    "load_locator",
    "Locator",
    "DirectGeolocator",
    "AnswerConfig",
    "MapConfig",
    "DensityMap",
    "GeoFlowModel",
    "ModelConfig",
    "NetworkConfig",
    "SamplerConfig",
    "TrainConfig",
    "train",
]
