"""Command-line options written once: generated from the fields of the frozen config dataclasses, and
one table for the run options that are no config's (device, seed, output, ...).

A config field becomes ``--field-name`` with its type (``int``, ``float``, ``str``, ``bool``, a
``Literal`` as choices, ``X | None``), its default (the dataclass's, or a preset instance's) and the
help text in its metadata (``field(metadata={"help": ...})``). Metadata ``"cli": False`` keeps a field
off the command line (set by the data or by another option); ``"flag"`` renames it, ``"choices"``
restricts it, ``"parse"`` reads a tuple-valued field from one text (``"FR,DE"`` -> ``("FR", "DE")``). :func:`config_from` reads the options back into the config, so a setting added to a
config appears on the command line without another line of CLI code.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Literal, TypeVar, Union

__all__ = ["add_config", "config_from", "add_run_options", "RUN_OPTIONS", "finite_float"]

T = TypeVar("T")


def _resolve(annotation: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """``(python type, choices)`` of a field annotation; ``X | None`` is ``X``."""
    origin = typing.get_origin(annotation)
    if origin is Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _resolve(args[0])
    if origin is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    return annotation, None


def finite_float(text: str) -> float:
    """An option's number: ``float`` that refuses ``nan`` and ``inf`` (which ``float`` accepts and no
    setting means), so the error names the option at parse time."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _parsed(parse: Any) -> Any:
    """An argparse type from a field's ``parse`` function: its ``ValueError`` names the option."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _cli_fields(cls: type, only: tuple[str, ...] | None, exclude: tuple[str, ...]) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is False or f.name in exclude or (only is not None and f.name not in only):
            continue
        kind, _ = _resolve(hints[f.name])
        if dataclasses.is_dataclass(kind):
            continue  # a nested config: added on its own
        out.append((f, hints[f.name]))
    return out


def add_config(group: argparse._ActionsContainer, cls: type, *, base: Any = None, only: tuple[str, ...] | None = None,
               exclude: tuple[str, ...] = (), helps: dict[str, str] | None = None) -> None:
    """Add an option for each command-line field of the dataclass ``cls`` to ``group``.

    Args:
        base: an instance whose values are the defaults (a preset such as the photo answers);
            otherwise the dataclass's defaults.
        only, exclude: which fields.
        helps: help texts replacing the fields' own (where a command means something narrower).
    """
    for f, annotation in _cli_fields(cls, only, exclude):
        kind, choices = _resolve(annotation)
        choices = f.metadata.get("choices", choices)
        default = getattr(base, f.name) if base is not None else (
            f.default if f.default is not dataclasses.MISSING else None)
        text = (helps or {}).get(f.name, f.metadata.get("help", ""))
        if kind is bool:
            group.add_argument(_flag(f), dest=f.name, action="store_true" if not default else "store_false",
                               default=default, help=text)
            continue
        parse = f.metadata.get("parse")
        shown = f" (default {default})" if default not in (None, ()) else ""
        group.add_argument(_flag(f), dest=f.name, type=_parsed(parse) if parse else (finite_float if kind is float
                                                                                      else kind),
                           choices=choices, default=default, help=(text + shown) if text else None)


def config_from(args: argparse.Namespace, cls: type[T], *, base: Any = None, **fixed: Any) -> T:
    """The config ``cls`` from the options :func:`add_config` added (fields without an option take
    ``base``'s value or their default), with ``fixed`` fields given directly (nested configs, data-
    dependent sizes)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in fixed:
            values[f.name] = fixed[f.name]
        elif hasattr(args, f.name) and f.metadata.get("cli", True) is not False:
            values[f.name] = getattr(args, f.name)
        elif base is not None:
            values[f.name] = getattr(base, f.name)
    if base is not None:
        return dataclasses.replace(base, **values)
    return cls(**values)


#: Options that belong to a run, not to a saved config, declared once: ``(flags, argparse keywords)``.
RUN_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "device": (("--device",), dict(default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if available)")),
    "seed": (("--seed",), dict(type=int, default=0, help="random seed (default %(default)s)")),
    "batch_size": (("--batch-size",), dict(type=int, default=256, help="rows per batch (default %(default)s)")),
    "skip_invalid": (("--skip-invalid",), dict(action="store_true",
                                               help="skip and count invalid rows instead of failing")),
    "no_progress": (("--no-progress",), dict(action="store_true", help="no progress bars")),
    "encoder": (("--encoder",), dict(default=None, help="image encoder (default: the one the model was trained on)")),
    "encoder_path": (("--encoder-path",), dict(default=None,
                                               help="local folder with the encoder's weights (offline)")),
    "image_kind": (("--kind",), dict(dest="image_kind", default="auto",
                                     choices=("auto", "files", "osv5m", "inat21", "yfcc", "webdataset"),
                                     help="image dataset layout (default: detected)")),
    "labels": (("--labels",), dict(default=None, help="CSV with id, lat, lon of the photos (adds the truth)")),
}


def add_run_options(group: argparse._ActionsContainer, *names: str, **defaults: Any) -> None:
    """Add the named :data:`RUN_OPTIONS` to ``group``; ``defaults`` replace their defaults (and their
    help's ``(default ...)``) for one command, e.g. ``batch_size=4``."""
    for name in names:
        flags, kwargs = RUN_OPTIONS[name]
        kwargs = dict(kwargs)
        if name in defaults:
            kwargs["default"] = defaults[name]
        group.add_argument(*flags, **kwargs)
