"""Files written so that a crash never leaves half of one, and their fingerprints.

Every file globeflow writes (checkpoints, tables, reports, pictures, maps) goes through
:func:`atomic_write`: a temporary file in the target's folder, then a rename over the target, so a
reader sees the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "file_sha256", "refuse_overwrite",
           "remove_stale_temps"]


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
        mode = os.stat(tmp).st_mode & 0o777  # 0o666 less the umask
        write(str(tmp))
        # A writer that recreates the file (safetensors writes with 0o600) must not change its mode.
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None and e.strerror:  # a failed write() names no file
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


#: The names globeflow gives its temporary files, ``.<target>.<hex>.tmp``: :func:`atomic_write`'s
#: (12 hex digits) and the embedding writer's (a uuid4's 32).
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.([0-9a-f]{12}|[0-9a-f]{32})\.tmp$")


def remove_stale_temps(folder: str | os.PathLike, targets: Iterable[str] | None = None) -> list[str]:
    """Remove the temporary files of :func:`atomic_write` left in ``folder`` by a killed process (a
    ``kill -9`` mid-save leaves a checkpoint-sized one), or only those for the file names
    ``targets``; returns their names. Call it only where no other live process writes those files
    (holding the folder's lock, or for files only this process writes)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if targets is None else set(targets)
    removed = []
    for p in folder.iterdir():
        m = _TEMP_NAME.match(p.name)
        if m and p.is_file() and (wanted is None or m.group("target") in wanted):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


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


def refuse_overwrite(out: str | os.PathLike | None, *, data: Iterable[str | os.PathLike | None] = (),
                     models: Iterable[str | os.PathLike | None] = ()) -> None:
    """Refuse an output path that would destroy or pollute an input, before anything is written.

    An output may not *be* any input (``predict data.parquet --out data.parquet`` replaced the data
    with its predictions), nor lie *inside* a data input that is a folder (a predictions file or a map
    folder written into a dataset folder becomes part of that dataset on the next read). Model inputs
    (run folders, checkpoints) may hold outputs, as reports beside the weights do, but not be one.
    Inputs that are not local paths (a published model's name) are ignored.
    """
    if out is None:
        return
    target = Path(out).expanduser().resolve()
    for kind, paths in (("data", data), ("model", models)):
        for given in paths:
            if given is None or not Path(given).expanduser().exists():
                continue
            source = Path(given).expanduser().resolve()
            if target == source:
                raise ValueError(f"--out {out} is the {kind} input {given}: it would be overwritten; "
                                 "write the output elsewhere")
            if kind == "data" and source.is_dir() and target.is_relative_to(source):
                raise ValueError(f"--out {out} is inside the data folder {given}: the output would become part "
                                 "of that dataset; write it outside the folder")
