"""Evaluation: point metrics (distances, GeoScore, accuracies), administrative accuracy, set metrics,
credible-region calibration, the training-free baselines, and the reports and tables of
``globeflow evaluate``, ``baseline`` and ``compare``."""

from .admin import ADMIN_LEVELS, admin_accuracy, admin_keys, keys_from_columns
from .baselines import BASELINES, baseline_predictions, baseline_to_file, read_arrays, uniform_guesses
from .calibration import LEVELS, calibration_summary, coverage, density_dataset, hpd_ranks
from .metrics import GEOSCORE_SCALE_KM, MAX_DISTANCE_KM, THRESHOLDS_KM, distances_km, geoscore, point_metrics
from .report import Evaluation, evaluate, evaluate_to_file, point_and_place_metrics, write_point_report
from .sets import prdc
from .tables import TABLE_COLUMNS, compare_reports, markdown_table, read_reports

__all__ = [
    "ADMIN_LEVELS", "admin_accuracy", "admin_keys", "keys_from_columns", "BASELINES", "baseline_predictions",
    "baseline_to_file", "read_arrays", "uniform_guesses", "LEVELS", "calibration_summary", "coverage",
    "density_dataset", "hpd_ranks", "GEOSCORE_SCALE_KM", "MAX_DISTANCE_KM", "THRESHOLDS_KM", "distances_km",
    "geoscore", "point_metrics", "Evaluation", "evaluate", "evaluate_to_file", "point_and_place_metrics", "write_point_report", "prdc",
    "TABLE_COLUMNS", "compare_reports", "markdown_table", "read_reports",
]
