"""The ``globeflow`` command: its parser (generated from the config dataclasses) and its commands."""

from .commands import COMMANDS, main
from .parser import build_parser

__all__ = ["main", "build_parser", "COMMANDS"]
