"""Geolocation tasks with known locations: a synthetic known-answer task (true densities known) and
the Blue Marble task (real image patches, offline)."""

from __future__ import annotations

from .blue_marble import BlueMarbleConfig, BlueMarbleSplits, make_splits
from .known_answer import Component, KnownAnswerTask, default_task

__all__ = ["BlueMarbleConfig", "BlueMarbleSplits", "Component", "KnownAnswerTask", "default_task", "make_splits"]
