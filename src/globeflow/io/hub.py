"""Models by name: the published PLONK checkpoints, hub repositories and local hub-layout folders.

What ``--model`` (and :func:`globeflow.inference.load_locator`) accepts besides a globeflow run:

* ``plonk-osv5m`` (and the other names in :data:`PUBLISHED_MODELS`): the published model, downloaded
  by ``huggingface_hub`` into its cache on first use (``HF_HUB_OFFLINE=1``: the cache only);
* ``plonk-osv5m:DIR``: the same model from a local copy (``hf download nicolas-dufour/PLONK_OSV_5M
  --local-dir DIR`` on a machine with network), offline;
* ``hf:owner/name`` or ``hf:owner/name@revision``: any hub repository in this layout; its type and
  encoder come from its ``globeflow.json`` (globeflow exports) or from the published registry;
* ``DIR``: a hub-layout folder, described the same way (or named after a published repository).

The published repositories carry only the network; which model type (RFM, flow, diffusion) and which
image encoder each one goes with is what the published package's pipeline hard-codes, restated in
:data:`PUBLISHED_MODELS`. This module finds the files and says what they are; it builds nothing
(:mod:`globeflow.inference.loading` does).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT_NAME, CheckpointError
from .extras import require
from .hub_layout import (CARD_NAME, CONFIG_NAME, GLOBEFLOW_NAME, WEIGHTS_NAME, folder_problem, is_model_folder,
                         read_globeflow_meta)

__all__ = ["PublishedModel", "PUBLISHED_MODELS", "HubSource", "is_hub_spec", "resolve_spec", "download",
           "published_table", "HUB_PREFIX", "hub_options", "hub_failure"]

HUB_PREFIX = "hf:"

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_options() -> dict[str, Any]:
    """``from_pretrained`` / ``snapshot_download`` keywords from the environment as it is now:
    ``local_files_only`` when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set, and ``cache_dir``
    from ``HF_HUB_CACHE`` or ``HF_HOME`` when one is set (otherwise the library's default cache).
    huggingface_hub freezes these variables when first imported; reading them here honours changes."""
    env = os.environ
    offline = any(env.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    options: dict[str, Any] = {"local_files_only": offline}
    cache = env.get("HF_HUB_CACHE") or (os.path.join(env["HF_HOME"], "hub") if env.get("HF_HOME") else None)
    if cache:
        options["cache_dir"] = cache
    return options


def hub_failure(options: dict[str, Any], err: BaseException) -> str:
    """``"<mode>, in <cache>: <first line of the error>"`` for a hub load that failed with ``options``
    (from :func:`hub_options`): what a user needs to see to fix it."""
    mode = "offline (HF_HUB_OFFLINE)" if options["local_files_only"] else "online"
    cache = f"cache {options['cache_dir']}" if "cache_dir" in options else "the default Hugging Face cache"
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
    return f"{mode}, in {cache}: {reason}"


@dataclass(frozen=True)
class PublishedModel:
    """One published checkpoint: where it lives, what it is, what it was trained on."""

    alias: str
    repo_id: str
    #: The model kind (a name in :data:`globeflow.registry.KINDS`): rfm, fm or diffusion.
    kind: str
    #: globeflow's name of the image encoder whose embeddings the model takes (see globeflow.data.encoders).
    encoder: str
    dataset: str
    #: Dimension of the encoder's embeddings, which the network's ``cond_dim`` must equal (both
    #: published encoders, StreetCLIP and DINOv2 ViT-L/14, give 1024).
    embedding_dim: int = 1024

    @property
    def repo_name(self) -> str:
        return self.repo_id.split("/", 1)[1]


def _published() -> dict[str, PublishedModel]:
    sets = (("osv5m", "OSV_5M", "streetclip", "OSV-5M"), ("yfcc", "YFCC", "dinov2-vitl14-reg", "YFCC100M"),
            ("inat", "iNaturalist", "dinov2-vitl14-reg", "iNat21"))
    kinds = (("", "rfm"), ("_flow", "fm"), ("_diffusion", "diffusion"))
    models = [PublishedModel(f"plonk-{short}{suffix.replace('_', '-')}", f"nicolas-dufour/PLONK_{repo}{suffix}",
                             kind, encoder, dataset)
              for short, repo, encoder, dataset in sets for suffix, kind in kinds]
    return {m.alias: m for m in models}


#: The published models by short name: ``plonk-{osv5m,yfcc,inat}`` (RFM on the sphere, the paper's
#: best), with ``-flow`` (flow matching in R^3) and ``-diffusion`` (diffusion in R^3) variants.
PUBLISHED_MODELS: dict[str, PublishedModel] = _published()


@dataclass(frozen=True)
class HubSource:
    """A resolved model folder and what it is."""

    folder: Path
    #: The model config as saved in globeflow.json; None for a published folder (network sizes from config.json).
    model_config: dict[str, Any] | None
    kind: str
    encoder: str | None
    #: Where it came from, for reports: spec, repo_id, revision / commit, alias.
    origin: dict[str, Any] = field(default_factory=dict)
    #: The embedding dimension its encoder gives, when known (a published model's).
    embedding_dim: int | None = None


def is_hub_spec(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a hub model (a published name, ``name:DIR``, ``hf:repo``, a hub-layout
    folder) rather than a globeflow run directory or checkpoint file."""
    s = str(spec)
    if s in PUBLISHED_MODELS or s.startswith(HUB_PREFIX):
        return True
    alias, colon, rest = s.partition(":")
    if colon and rest and (alias in PUBLISHED_MODELS or _looks_like_alias(s)):
        return True
    return is_model_folder(Path(s).expanduser()) and not (Path(s).expanduser() / CHECKPOINT_NAME).exists()


#: What a published model's short name looks like (so that ``plonk-osv:DIR``, a typo, is answered
#: as a misspelt name, not as a missing run folder called ``plonk-osv:DIR``).
_ALIAS = re.compile(r"^[a-z][a-z0-9-]+$")


def _looks_like_alias(spec: str) -> bool:
    alias, colon, rest = spec.partition(":")
    return bool(colon and rest and _ALIAS.match(alias)) and not Path(spec).exists()


def _known_names() -> str:
    return ", ".join(PUBLISHED_MODELS)


def resolve_spec(spec: str | os.PathLike) -> HubSource:
    """A model spec (see the module docstring) -> its local folder and description; downloads if needed."""
    s = str(spec)
    if s in PUBLISHED_MODELS:
        m = PUBLISHED_MODELS[s]
        folder = download(m.repo_id, hint=f"--model {m.alias}:DIR")
        return _describe(folder, m, {"spec": s, "alias": m.alias, "repo_id": m.repo_id, **_commit(folder)})
    alias, colon, rest = s.partition(":")
    if colon and alias in PUBLISHED_MODELS and rest:
        m = PUBLISHED_MODELS[alias]
        folder = Path(rest).expanduser()
        problem = folder_problem(folder)
        if problem:
            raise CheckpointError(f"{rest}: {problem} (for {alias}: a copy of {m.repo_id})")
        other = _registry_match(folder)
        if other is not None and other.alias != alias:
            raise CheckpointError(f"{rest}: its name says it is a copy of {other.repo_id} (a {other.kind} model), "
                                  f"not of {m.repo_id} ({m.kind}): pass --model {other.alias}:{rest}")
        return _describe(folder, m, {"spec": s, "alias": alias, "repo_id": m.repo_id})
    if s.startswith(HUB_PREFIX):
        repo_id, _, revision = s[len(HUB_PREFIX):].partition("@")
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise CheckpointError(f"{s}: expected {HUB_PREFIX}owner/name or {HUB_PREFIX}owner/name@revision")
        folder = download(repo_id, revision or None, hint="--model DIR (a local copy of the repository)")
        return _describe(folder, _registry_match(folder, repo_id),
                         {"spec": s, "repo_id": repo_id, "revision": revision or "main", **_commit(folder)})
    if _looks_like_alias(s):  # (a published alias with a folder returned above)
        close = difflib.get_close_matches(alias, PUBLISHED_MODELS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise CheckpointError(f"{alias}: not a published model name{hint}; NAME:DIR loads a local copy of one "
                              f"of {_known_names()}")
    folder = Path(s).expanduser()
    problem = folder_problem(folder)
    if problem:
        raise CheckpointError(f"{s}: {problem}")
    return _describe(folder, _registry_match(folder), {"spec": s})


def _registry_match(folder: Path, repo_id: str | None = None) -> PublishedModel | None:
    """The published model a repository id or a folder's path names (``.../PLONK_OSV_5M_flow`` or a hub
    cache path ``.../models--nicolas-dufour--PLONK_OSV_5M_flow/snapshots/<commit>``)."""
    names = set()
    for f in (folder, folder.resolve()):
        names.add(f.name)
        if f.parent.name == "snapshots":
            names.add(f.parent.parent.name)
    for m in PUBLISHED_MODELS.values():
        if m.repo_id == repo_id or m.repo_name in names or f"models--{m.repo_id.replace('/', '--')}" in names:
            return m
    return None


def _describe(folder: Path, published: PublishedModel | None, origin: dict[str, Any]) -> HubSource:
    meta = read_globeflow_meta(folder)
    if meta is not None:
        config = meta["model_config"]
        return HubSource(folder, config, str(config.get("kind")), meta.get("encoder"), origin)
    if published is None:
        raise CheckpointError(
            f"{folder}: a hub-layout folder without {GLOBEFLOW_NAME}, so its model type (rfm, fm, diffusion) "
            f"and image encoder are unknown; name the published model it is a copy of, e.g. "
            f"--model plonk-osv5m:{folder} (published names: {_known_names()})")
    return HubSource(folder, None, published.kind, published.encoder, origin, published.embedding_dim)


def _commit(folder: Path) -> dict[str, str]:
    # huggingface_hub's cache keeps each revision in snapshots/<commit hash>.
    return {"commit": folder.name} if folder.parent.name == "snapshots" else {}


def download(repo_id: str, revision: str | None = None, *, hint: str = "") -> Path:
    """The hub repository's model files in the local cache (downloaded when missing, with progress bars).

    Honours ``HF_HUB_OFFLINE`` (cache only) and ``HF_HUB_CACHE`` / ``HF_HOME``, read at call time.

    Raises:
        CheckpointError: the files are neither cached nor downloadable; the message says which mode,
            which cache, and how to run offline.
    """
    require("hub", f"downloading {repo_id}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    options = hub_options()
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, library_name="globeflow",
                                        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, GLOBEFLOW_NAME, CARD_NAME],
                                        **options))
    except (OSError, ValueError, HfHubHTTPError) as err:
        offline = f"; without network, copy the repository to a folder and pass {hint}" if hint else ""
        raise CheckpointError(f"{repo_id}: cannot get the model from the Hugging Face hub, "
                              f"{hub_failure(options, err)}{offline}") from err
    if not is_model_folder(folder):
        raise CheckpointError(f"{repo_id}: the repository has no {CONFIG_NAME} + {WEIGHTS_NAME} (got "
                              f"{sorted(p.name for p in folder.iterdir())} in {folder})")
    return folder


def published_table() -> str:
    """One line per published model: name, repository, type, encoder."""
    return "\n".join(f"  {m.alias:24s} {m.repo_id:40s} {m.kind:9s} {m.encoder}" for m in PUBLISHED_MODELS.values())

