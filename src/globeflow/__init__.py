"""globeflow: where on Earth was this photo taken, as a probability distribution over the globe."""

from .api import POINT_STRATEGIES, Geolocator, load_locator
from .models import DEFAULT_SAMPLER, GeoFlowModel, ModelConfig, SamplerConfig
from .network import GeoAdaLNMLP, NetworkConfig
from .schedules import Schedule, ScheduleConfig
from .training import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "Geolocator",
    "load_locator",
    "POINT_STRATEGIES",
    "GeoFlowModel",
    "ModelConfig",
    "SamplerConfig",
    "DEFAULT_SAMPLER",
    "GeoAdaLNMLP",
    "NetworkConfig",
    "Schedule",
    "ScheduleConfig",
    "TrainConfig",
    "train",
    "__version__",
]
