"""An exclusive OS lock on an output folder, so two commands never write one run at once.

Two ``train`` runs on one ``--out`` used to both succeed, overwriting each other's checkpoints and
interleaving ``metrics.jsonl``. :class:`FolderLock` takes an advisory ``flock`` on ``<folder>/.lock``
for as long as the command runs: the operating system releases it when the process ends in any way
(a ``kill -9`` included), so a stale lock file never blocks the next run, and the file's content says
who holds it (pid, host, command, start time) for the error message of the one refused. Holding it,
the temporary files a killed writer left (a checkpoint-sized one for a kill mid-save) are removed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from .files import remove_stale_temps

__all__ = ["FolderLock", "FolderBusyError", "LOCK_NAME"]

LOCK_NAME = ".lock"

try:  # POSIX; on Windows the folder is not locked (documented), as msvcrt locks are per byte range
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class FolderBusyError(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, "train"):`` holds ``folder/.lock`` exclusively (creating the folder),
    or raises :class:`FolderBusyError` naming the holder at once (it never waits)."""

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder, self.command = Path(folder), command
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> "FolderLock":
        self._created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
                os.close(fd)
                raise FolderBusyError(f"{self.folder} is in use by another globeflow process ({_describe(holder)}); "
                                      "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                                 "argv": sys.argv[1:], "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        # Holding the lock, no other writer is alive here: temp files are a killed run's debris.
        remove_stale_temps(self.folder)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is None:
            return
        lock = self.folder / LOCK_NAME
        if kind is not None and self._created and [p.name for p in self.folder.iterdir()] == [LOCK_NAME]:
            # A command that failed before writing anything leaves no folder behind it.
            lock.unlink()
            self.folder.rmdir()
        # Otherwise the file stays (removing it would race with a process opening it to lock).
        os.close(self._fd)
        self._fd = None


def _describe(holder: str) -> str:
    try:
        h = json.loads(holder)
        return f"globeflow {h['command']}, pid {h['pid']} on {h['host']}, since {h['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
