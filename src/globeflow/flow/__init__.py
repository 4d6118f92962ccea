"""Flows on the sphere: noise schedules, probability paths, the network, solvers, likelihood, the model.

The numerical core with :mod:`globeflow.geo`: tensors in, tensors out, tested against closed forms;
no file I/O, no plotting, no command line.
"""

from .likelihood import KM2_OFFSET, LOG_UNIFORM, ModelField, divergence, log_prob_ode, sample_log_prob_ode
from .model import GeoFlowModel, ModelConfig, chunked
from .network import GeoAdaLNMLP, NetworkConfig, network_config_from_dict
from .paths import PATHS, DiffusionPath, EuclideanFlowPath, Path, SpherePath, make_path
from .sampling import PROTOCOLS, SamplerConfig
from .schedules import Schedule, ScheduleConfig, make_schedule

__all__ = ["KM2_OFFSET", "LOG_UNIFORM", "ModelField", "divergence", "log_prob_ode", "sample_log_prob_ode",
           "GeoFlowModel", "ModelConfig", "chunked", "GeoAdaLNMLP", "NetworkConfig", "network_config_from_dict", "PATHS",
           "DiffusionPath", "EuclideanFlowPath", "Path", "SpherePath", "make_path", "PROTOCOLS", "SamplerConfig",
           "Schedule", "ScheduleConfig", "make_schedule"]
