"""``globeflow demo``: the Blue Marble task (real image patches, offline) and the known-answer task,
built, trained, evaluated and reported with nothing to download."""

from .blue_marble import DEFAULT_MODEL, BlueMarbleDemoConfig, demo_model, run_blue_marble_demo
from .known_answer import DemoConfig, known_answer_report, make_task_data, run_demo

__all__ = ["DEFAULT_MODEL", "BlueMarbleDemoConfig", "demo_model", "run_blue_marble_demo", "DemoConfig",
           "known_answer_report", "make_task_data", "run_demo"]
