"""The outside world, for every layer: files written atomically, checkpoints, tables, the Hugging Face
hub (files and descriptions, no model objects), devices, and the optional extras.

A leaf: nothing here imports another part of globeflow.
"""

from .checkpoint import (
                         CHECKPOINT_NAME,
                         Checkpoint,
                         CheckpointError,
                         load_checkpoint,
                         resolve_checkpoint,
                         save_checkpoint,
                         state_dict_problems,
)
from .device import resolve_device
from .extras import EXTRAS, MissingExtraError, require
from .files import atomic_write, atomic_write_bytes, atomic_write_text, file_sha256
from .tables import OUTPUT_FORMATS, check_table_path, write_table

__all__ = [
    "CHECKPOINT_NAME", "Checkpoint", "CheckpointError", "load_checkpoint", "resolve_checkpoint", "save_checkpoint",
    "state_dict_problems", "resolve_device", "EXTRAS", "MissingExtraError", "require", "atomic_write",
    "atomic_write_bytes", "atomic_write_text", "file_sha256", "OUTPUT_FORMATS", "check_table_path", "write_table",
]
