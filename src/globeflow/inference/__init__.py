"""Inference: the facades that answer "where?" for a trained model, and what they compute.

* :class:`Geolocator` (flow models; the front door: ``Geolocator.load(...).locate(photos)``) and
  :class:`DirectGeolocator` (trained baselines), both :class:`Locator` s; :func:`load_locator` is the
  one constructor for any model;
* point estimates (:mod:`.points`), density maps (:mod:`.density`), answers (:mod:`.answers`),
  photos as inputs (:mod:`.photos`), dataset-wide predictions (:mod:`.datasets`).
"""

from .answers import (
                      Answer,
                      AnswerConfig,
                      AreaShare,
                      Guess,
                      Localizability,
                      RegionArea,
                      TopPlace,
                      Truth,
                      answer_embeddings,
                      answer_images,
                      localizability,
                      sample_answers,
)
from .calibration import CALIBRATION_NAME, CalibrationError, Recalibration
from .datasets import log_prob_dataset, predict_dataset
from .density import CREDIBLE_LEVELS, CredibleRegion, DensityMap, MapConfig, Mode, refine_map
from .geolocator import PHOTO_ANSWERS, Geolocator
from .head_locator import DIRECT_STRATEGIES, DirectGeolocator
from .hub_models import hub_model, load_published_network, read_published_config
from .loading import load_locator
from .locator import POINT_STRATEGIES, Locator, PointStrategy
from .photos import ImageInput, iter_answers, photo_inputs
from .points import best_expected_geoscore, expected_geoscore
from .settings import LogProbConfig, PointConfig

__all__ = [
    "Geolocator", "DirectGeolocator", "Locator", "load_locator", "PointStrategy", "POINT_STRATEGIES",
    "DIRECT_STRATEGIES", "PHOTO_ANSWERS", "Answer", "AnswerConfig", "AreaShare", "Guess", "Localizability",
    "RegionArea", "TopPlace", "Truth", "answer_embeddings", "answer_images", "localizability", "sample_answers",
    "log_prob_dataset", "predict_dataset", "CREDIBLE_LEVELS", "CredibleRegion", "DensityMap", "MapConfig", "Mode",
    "refine_map", "hub_model", "load_published_network", "read_published_config", "ImageInput", "photo_inputs", "iter_answers",
    "best_expected_geoscore", "expected_geoscore", "PointConfig", "LogProbConfig", "Recalibration",
    "CalibrationError", "CALIBRATION_NAME",
]
