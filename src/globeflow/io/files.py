"""Files written so that a crash never leaves half of one, and their fingerprints.

Every file globeflow writes (checkpoints, tables, reports, pictures, maps) goes through
:func:`atomic_write`: a temporary file in the target's folder, then a rename over the target, so a
reader sees the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "file_sha256"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp)`` on a temp file in ``path``'s folder, then rename it over ``path``.

    A crash leaves the previous file (or none), never a half-written one. The temp file is created
    with mode 0o666 less the umask, as a plain ``open`` would (``mkstemp``'s 0o600 would make reports,
    pictures and maps unreadable to a web server or a colleague).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (weights of hundreds of MB stay out of memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
