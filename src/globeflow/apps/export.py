"""A trained globeflow model -> a hub-layout folder with a model card, ready to push and pull.

``globeflow export RUN DIR --report eval.json`` writes ``config.json`` + ``model.safetensors`` (the
published layout, so the published package loads the network too), ``globeflow.json`` (model type,
schedule, encoder) and ``README.md`` (a model card with the evaluation table). ``hf upload owner/name
DIR`` pushes it; ``--model hf:owner/name`` pulls and loads it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .. import registry
from .._version import __version__
from ..evaluation.tables import markdown_table, read_reports
from ..flow.network import time_frequencies
from ..inference.geolocator import Geolocator
from ..inference.loading import load_locator
from ..io.checkpoint import CheckpointError
from ..io.files import file_sha256
from ..io.hub_layout import FREQS_KEY, GLOBEFLOW_NAME, PUBLISHED_CONFIG_KEYS, WEIGHTS_NAME, write_model_folder

__all__ = ["export_model", "model_card", "EXPORT_FORMAT"]

#: Version of ``globeflow.json``; bump when its fields change meaning.
EXPORT_FORMAT = 1



def export_model(run: str | os.PathLike, out: str | os.PathLike, *, reports: list[str | os.PathLike] = (),
                 name: str | None = None, any_report: bool = False) -> Path:
    """Write the flow model at ``run`` (run directory, checkpoint or hub spec) into ``out`` in the hub
    layout, with a model card holding the table of the given ``globeflow evaluate`` reports.

    Each report must have evaluated these weights (its checkpoint sha256 equals the model's), so
    that the card cannot show another model's numbers; ``any_report=True`` skips the check.
    """
    locator = load_locator(run, device="cpu")
    if not isinstance(locator, Geolocator):
        raise CheckpointError(f"{run}: a {locator.config.kind} baseline; the hub layout holds the flow network "
                              "(rfm, fm, diffusion) only")
    loaded = read_reports(reports)
    name = name or Path(out).name
    # Provenance without local paths: the card and globeflow.json are meant to be published.
    source = {k: v for k, v in locator.source.items() if k not in ("path", "spec")}
    source["sha256"] = file_sha256(locator.source["path"])
    for path, report in zip(reports, loaded):
        evaluated = (report.get("checkpoint") or {}).get("sha256")
        if not any_report and evaluated != source["sha256"]:
            raise ValueError(f"{path}: evaluated weights with sha256 {str(evaluated)[:12]}..., not this model's "
                             f"({source['sha256'][:12]}...); pass --any-report to include it anyway")
    meta = {"format": EXPORT_FORMAT, "globeflow_version": __version__, "model_config": locator.config.to_dict(),
            "encoder": locator.encoder, "source": source}
    network = locator.model.network
    parameters = sum(p.numel() for p in network.parameters())
    card = model_card(name, locator.config.to_dict(), locator.encoder, parameters,
                      [(Path(p).stem, r) for p, r in zip(reports, loaded)])
    # The frequency buffer as the published network saves it: the published class loads it and then
    # computes exactly globeflow's function, whichever variant the model was trained with.
    net = network.config
    tensors = {**network.state_dict(),
               FREQS_KEY: time_frequencies(net.dim // 4, endpoint=net.time_frequencies == "endpoint")}
    folder = write_model_folder(out, tensors, {k: getattr(net, k) for k in PUBLISHED_CONFIG_KEYS}, meta, card)
    if locator.calibration is not None:
        # The same network in another file: the recalibration carries over, bound to the new file.
        weights = folder / WEIGHTS_NAME
        dataclasses.replace(locator.calibration, weights_sha256=file_sha256(weights)).save(folder)
    return folder


def model_card(name: str, model_config: dict[str, Any], encoder: str | None, parameters: int,
               reports: list[tuple[str, dict[str, Any]]] = ()) -> str:
    """The ``README.md`` of an exported model: hub metadata, what the model is, how to use it, and
    its evaluation table (one row per ``(name, report)``)."""
    net, kind = model_config["network"], model_config["kind"]
    lines = ["---", "library_name: globeflow", "tags:", "- globeflow", "- geolocation", "- flow-matching",
             "- model_hub_mixin", "---", "", f"# {name}", "",
             f"A [globeflow](https://pypi.org/project/globeflow/) geolocation model: given an image embedding, "
             f"a probability distribution over the globe. Model type: {_kind_text(kind)}.", "",
             "| | |", "|---|---|",
             f"| type | `{kind}` |",
             f"| image encoder | `{encoder or 'unknown'}` (embedding dimension {net['cond_dim']}) |",
             f"| network | GeoAdaLNMLP, dim {net['dim']}, depth {net['depth']}, expansion {net['expansion']}, "
             f"{parameters / 1e6:.2f} M parameters |",
             f"| noise schedule | {_schedule_text(model_config['schedule'])} |",
             f"| time-embedding frequencies | `{net.get('time_frequencies', 'endpoint')}` |", "",
             "## Use", "", "```bash",
             f"globeflow predict --model hf:OWNER/{name} photos/ --out answers.csv   # or a local copy: --model DIR",
             "```", "",
             "```python", "from globeflow import Geolocator", "",
             f'geo = Geolocator.load("hf:OWNER/{name}")', "answers = geo.locate(['photo.jpg'])  # best guess, places, "
             "regions", "latlon = geo.predict(embeddings)       # (B, 2) degrees, from image embeddings",
             "```", "",
             f"`config.json` and `model.safetensors` follow the published PLONK layout (`PyTorchModelHubMixin`), "
             f"so the published package's `Plonk.from_pretrained` loads the network as well; `{GLOBEFLOW_NAME}` "
             "holds what the layout does not (model type, schedule, encoder).", ""]
    if reports:
        lines += ["## Evaluation", "", "Point predictions and exact densities, by `globeflow evaluate`:", "",
                  markdown_table([r for _, r in reports], [n for n, _ in reports]), ""]
        for n, r in reports:
            data, sampler = r.get("data", {}), r.get("sampler") or {}
            rows, where = r.get("metrics", {}).get("n", "?"), Path(str(data.get("path", "?"))).name
            lines.append(f"- `{n}`: {where} ({rows} rows, fingerprint "
                         f"`{str(data.get('fingerprint', '?'))[:12]}`), sampler {sampler.get('method', '?')} "
                         f"{sampler.get('steps', '?')} steps, guidance {sampler.get('guidance', '?')}, "
                         f"point strategy `{r.get('predict', {}).get('strategy', '?')}`")
        lines.append("")
    return "\n".join(lines)


def _kind_text(kind: str) -> str:
    return registry.KINDS[kind].summary if kind in registry.KINDS else kind


def _schedule_text(schedule: dict[str, Any]) -> str:
    if schedule.get("name") == "sigmoid":
        return f"sigmoid (start {schedule['start']:g}, end {schedule['end']:g}, tau {schedule['tau']:g})"
    return str(schedule.get("name"))
