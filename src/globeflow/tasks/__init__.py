"""Synthetic tasks with known answers, for testing and benchmarking the generative geolocator."""

from __future__ import annotations

from .known_answer import Component, KnownAnswerTask, default_task

__all__ = ["Component", "KnownAnswerTask", "default_task"]
