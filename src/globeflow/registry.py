"""The one place that knows the model kinds: for each, its config class and its model class.

The flow kinds (``rfm``, ``fm``, ``diffusion``) are the probability paths of
:data:`globeflow.flow.paths.PATHS`; the trained baselines (``vmf``, ``vmf-mixture``, ``geocell``,
``regression``) are the heads of :data:`globeflow.baselines.HEADS`. Everything that builds a model
from a name or a saved config (the trainer, :func:`globeflow.inference.load_locator`, the CLI's
``--model`` choices) asks here; nothing else branches on a kind's name. Which facade answers for a
model follows from its model class (:mod:`globeflow.inference.loading`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Union

from torch import nn

from .baselines.direct import HEADS, DirectConfig, DirectModel
from .flow.model import GeoFlowModel, ModelConfig
from .flow.network import NetworkConfig
from .flow.paths import PATHS

__all__ = ["Kind", "KINDS", "AnyConfig", "get_kind", "make_config", "config_from_dict", "build_model"]

#: A saved model's config: a flow model's or a trained baseline's.
AnyConfig = Union[ModelConfig, DirectConfig]


@dataclass(frozen=True)
class Kind:
    """One model kind: its name, what it is, and the classes that make it."""

    name: str
    summary: str
    config_class: type
    model_class: type[nn.Module]

    @property
    def settings(self) -> tuple[str, ...]:
        """The config fields a user sets besides the network (``cond_drop``, ``components``, ...)."""
        return tuple(f.name for f in dataclasses.fields(self.config_class) if f.name not in ("network", "kind"))


#: Every model kind, flow kinds first (``rfm``, the default, leads).
KINDS: dict[str, Kind] = {
    **{name: Kind(name, path.summary, ModelConfig, GeoFlowModel) for name, path in PATHS.items()},
    **{name: Kind(name, head.summary, DirectConfig, DirectModel) for name, head in HEADS.items()},
}


def get_kind(name: str) -> Kind:
    """The kind called ``name``; ``ValueError`` listing the kinds otherwise."""
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; expected one of {', '.join(KINDS)}")
    return KINDS[name]


def make_config(kind: str, network: NetworkConfig, settings: dict[str, Any] | None = None) -> AnyConfig:
    """A new model's config: ``kind``, its network and those of ``settings`` its config class has
    (``cond_drop`` and ``emb_dropout`` for flow models, ``components``, ``nside``, ``label_tau_km``
    for baselines); the others do not apply to this kind and are left out."""
    k = get_kind(kind)
    given = {name: value for name, value in (settings or {}).items() if name in k.settings}
    return k.config_class(network, kind=kind, **given)


def config_from_dict(d: dict[str, Any]) -> AnyConfig:
    """A checkpoint's ``model_config`` -> its config object, by its ``kind``."""
    return get_kind(d.get("kind", "")).config_class.from_dict(d)


def build_model(config: AnyConfig) -> nn.Module:
    """The trainable module a config describes (its weights freshly initialised)."""
    return get_kind(config.kind).model_class(config)
