"""Checks shared by every settings dataclass: what the type system cannot say about a number."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["require_finite"]


def require_finite(config: Any) -> None:
    """Refuse a settings dataclass holding a NaN or infinite float (also inside a tuple field).

    ``lr <= 0`` is false for NaN, so range checks written as comparisons let NaN through; a NaN
    weight decay trains a model whose weights are NaN and whose every prediction is (90, 0). Each
    config's ``__post_init__`` calls this first, so no command and no API call can start with one.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        for x in value if isinstance(value, tuple) else (value,):
            if isinstance(x, float) and not math.isfinite(x):
                raise ValueError(f"{type(config).__name__}.{f.name} must be a finite number, got {x}")
