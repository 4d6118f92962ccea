"""The command line's parser: each command's options come from the config dataclasses it fills
(:mod:`.options`), so a setting is written once, in its config."""

from __future__ import annotations

import argparse
from typing import Sequence

from ... import registry
from ..._version import __version__
from ...baselines.direct import DirectConfig
from ...data.embed import EmbedConfig
from ...flow.model import ModelConfig
from ...flow.network import NetworkConfig
from ...inference.answers import AnswerConfig
from ...inference.density import MapConfig
from ...inference.evidence import Constraints
from ...inference.geolocator import PHOTO_ANSWERS
from ...inference.settings import LogProbConfig, PointConfig
from ...train.config import TrainConfig
from ..server.predictor import ServeConfig
from .options import add_config, add_run_options, finite_float

__all__ = ["build_parser", "explicit_options", "MODEL_HELP"]

MODEL_HELP = ("the model: a run directory or checkpoint, a hub-layout folder, hf:owner/name, or a published model "
              "name (globeflow models lists them; downloaded once into the Hugging Face cache)")


def _add_model_arg(p: argparse.ArgumentParser, data_help: str) -> None:
    p.add_argument("inputs", nargs="+", metavar="PATH",
                   help=f"the model (unless --model is given), then the data: {data_help}")
    p.add_argument("--model", default=None, help=MODEL_HELP + ". Also accepted as the first positional argument")


def _kinds_help() -> str:
    return "; ".join(f"{name}: {kind.summary}" for name, kind in registry.KINDS.items())


def _train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model on an embedding dataset (Parquet)")
    t.add_argument("data", help="Parquet file or folder with lat, lon, embedding columns")
    t.add_argument("--out", required=True, help="run directory for checkpoints and logs")
    t.add_argument("--val", default=None, help="validation embedding dataset")
    t.add_argument("--model", choices=tuple(registry.KINDS), default="rfm", help=f"model kind (default rfm): "
                   f"{_kinds_help()}")
    m = t.add_argument_group("model")
    add_config(m, NetworkConfig)
    add_config(m, ModelConfig)
    add_config(m, DirectConfig)
    add_config(t.add_argument_group("training"), TrainConfig)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_run_options(t, "device", "no_progress")


def _predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict locations for an embedding dataset, or answer photos")
    _add_model_arg(p, "embedding dataset (Parquet file or folder: one best guess per row), or photos (files, a "
                      "folder, a glob, or an image dataset: best guess, top-k places, country probabilities, "
                      "localizability per photo)")
    p.add_argument("--out", required=True, help="output file: .parquet or .csv (also .geojson for photos)")
    g = p.add_argument_group("sampling")
    add_config(g, PointConfig)
    add_run_options(g, "batch_size", "seed", "skip_invalid", "device")
    ph = p.add_argument_group("photos")
    add_run_options(ph, "encoder", "encoder_path", "image_kind", "labels")
    add_config(ph, AnswerConfig, base=PHOTO_ANSWERS, only=("top_k",))
    add_config(ph, MapConfig, base=PHOTO_ANSWERS.map, only=("nside",),
               helps={"nside": "HEALPix resolution of each photo's density map (32 and 64 cost ~4x and ~16x)"})
    ph.add_argument("--maps", default=None, help="folder for each photo's density map (PNG, npz, GeoJSON, JSON)")
    ev = p.add_argument_group("evidence (full answers, rfm models: several photos of one place, and what is known "
                              "of the place)")
    ev.add_argument("--fuse", action="store_true", help="all photos (rows) were taken at one place: one fused answer")
    ev.add_argument("--group-by", default=None, metavar="COLUMN",
                    help="rows sharing a value of COLUMN (a labels-CSV column for photos, a column of an embedding "
                         "dataset) were taken at one place: one fused answer per value")
    ev.add_argument("--redundancy", type=finite_float, default=0.0, metavar="RHO",
                    help="how much the photos of a place repeat each other, in [0, 1]: 0 (default) treats them as "
                         "independent given the place (the product formula), 1 as copies of one photo; n photos "
                         "count as n / (1 + RHO (n - 1)). Fit it on held-out groups of your kind of photos "
                         "(benchmarks/evidence.py)")
    add_config(ev, Constraints)


def _evaluate(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("evaluate", help="evaluate point predictions on a labelled embedding dataset")
    _add_model_arg(e, "labelled embedding dataset")
    e.add_argument("--out", required=True, help="report JSON path")
    g = e.add_argument_group("sampling")
    add_config(g, PointConfig)
    add_run_options(g, "batch_size", "seed", "skip_invalid", "device")
    e.add_argument("--no-nll", action="store_true",
                   help="skip the exact negative log-likelihood and calibration (rfm models)")
    e.add_argument("--calibration-samples", type=int, default=64,
                   help="samples with exact densities per row for credible-region calibration (default 64; 0: off)")


def _calibrate(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("calibrate", help="recalibrate a run's credible regions on labelled held-out data "
                                         "(conformal); writes a new run directory that every command accepts")
    _add_model_arg(c, "labelled embedding dataset held out from training (the calibration rows)")
    c.add_argument("--out", required=True, help="the new run directory (weights copied, calibration.json added)")
    c.add_argument("--calibration-samples", type=int, default=64,
                   help="samples with exact densities per row for each row's credible level (default 64)")
    add_run_options(c, "batch_size", "seed", "skip_invalid", "device", "no_progress")


def _map(sub: argparse._SubParsersAction) -> None:
    mp = sub.add_parser("map", help="density map, top-k places, area probabilities, credible regions and "
                                    "localizability for each row (rfm models)")
    _add_model_arg(mp, "embedding dataset (Parquet file or folder)")
    mp.add_argument("--out", required=True, help="output folder: <id>.json/.png/.npz/.geojson per row, index.csv")
    add_config(mp.add_argument_group("answers"), AnswerConfig)
    add_config(mp.add_argument_group("map"), MapConfig)
    add_config(mp.add_argument_group("constraints (what is known of the place)"), Constraints)
    mp.add_argument("--limit", type=int, default=None, help="only the first N valid rows")
    add_run_options(mp, "batch_size", "seed", "skip_invalid", "device", "no_progress", batch_size=4)


def _log_prob(sub: argparse._SubParsersAction) -> None:
    lp = sub.add_parser("log-prob", help="exact log-density of each row's true location (rfm models)")
    _add_model_arg(lp, "embedding dataset with lat, lon")
    lp.add_argument("--out", required=True, help="output file: .parquet or .csv")
    add_config(lp, LogProbConfig)
    add_run_options(lp, "batch_size", "skip_invalid", "device", batch_size=1024)


def _embed(sub: argparse._SubParsersAction) -> None:
    em = sub.add_parser("embed", help="images -> embedding dataset (Parquet parts), resumable and shardable")
    em.add_argument("images", nargs="+", help="image file(s), folder, glob, OSV-5M root, iNat21 JSON, "
                                              "YFCC/MP-16 CSV or WebDataset tar shards")
    em.add_argument("--out", required=True, help="output folder of part-NNNNN.parquet files")
    add_run_options(em, "image_kind", "labels")
    em.add_argument("--encoder", default="efficientnet-lite0", help="image encoder (default efficientnet-lite0)")
    add_run_options(em, "encoder_path")
    add_config(em, EmbedConfig)
    em.add_argument("--shard", default=None, help="INDEX/COUNT: this process's share of the parts "
                                                  "(default: RANK/WORLD_SIZE under torchrun, else all)")
    em.add_argument("--unlabelled", action="store_true", help="keep images with no location (lat/lon NaN)")
    add_run_options(em, "device", "no_progress")


def _baseline(sub: argparse._SubParsersAction) -> None:
    bl = sub.add_parser("baseline", help="evaluate a baseline (knn retrieval, uniform guessing) with evaluate's "
                                         "harness and report")
    bl.add_argument("kind", choices=("knn", "uniform"))
    bl.add_argument("data", help="labelled embedding dataset to evaluate on")
    bl.add_argument("--out", required=True, help="report JSON path (also .md and error pictures beside it)")
    bl.add_argument("--train", default=None, help="labelled embedding dataset to retrieve from (knn)")
    bl.add_argument("--k", type=int, default=1, help="neighbours: 1, or the spherical mean of k (default 1)")
    add_run_options(bl, "seed", "skip_invalid")


def _small(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("compare", help="one table across evaluate reports (GeoScore, distances, accuracies, NLL)")
    cp.add_argument("reports", nargs="+", help="report JSON files written by globeflow evaluate")
    cp.add_argument("--out", default=None, help="also write the table to this Markdown file")

    ex = sub.add_parser("export", help="write a trained flow model in the hub layout (config.json, "
                        "model.safetensors, globeflow.json) with a model card, to push with `hf upload`")
    ex.add_argument("run", help="run directory, checkpoint file or hub model")
    ex.add_argument("out", help="output folder")
    ex.add_argument("--report", action="append", default=[],
                    help="globeflow evaluate report (JSON) for the model card's table; repeatable")
    ex.add_argument("--name", default=None, help="model name in the card (default: the folder's name)")
    ex.add_argument("--any-report", action="store_true",
                    help="accept reports of other weights (by default each must have evaluated this model)")

    sub.add_parser("models", help="list the published models that --model accepts by name")


def _serve(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="a web page and JSON API: drop a photo, see where on Earth it could be "
                                      "(needs the server extra)")
    sv.add_argument("--model", default=None, help=MODEL_HELP + " (default: the Blue Marble demo model, "
                    "runs/demo/rfm, trained on first use)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    add_run_options(sv, "encoder", "encoder_path")
    sv.add_argument("--max-upload-mb", type=finite_float, default=ServeConfig().max_upload_bytes / 2**20,
                    help="largest accepted photo in MB (default %(default)g)")
    add_config(sv, ServeConfig)
    add_config(sv, AnswerConfig, base=ServeConfig().answers, only=("num_samples",),
               helps={"num_samples": "samples per photo"})
    add_run_options(sv, "device")


def _demo(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("demo", help="offline visual geolocation on NASA's Blue Marble image: build, embed, train, "
                                    "evaluate, draw maps (no download)")
    m.add_argument("--task", choices=("blue-marble", "known-answer"), default="blue-marble",
                   help="blue-marble (default): real image patches; known-answer: synthetic embeddings with a "
                        "known true density")
    m.add_argument("--out", default=None, help="output directory (default runs/demo or runs/demo-known-answer)")
    m.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    add_run_options(m, "device", "no_progress")


def build_parser() -> argparse.ArgumentParser:
    """``globeflow``'s parser, one sub-command per job."""
    parser = argparse.ArgumentParser(prog="globeflow", description="Where on Earth was this photo taken? "
                                     "Generative visual geolocation on the sphere.")
    parser.add_argument("--version", action="version", version=f"globeflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_train, _predict, _evaluate, _calibrate, _map, _log_prob, _embed, _baseline, _small, _serve, _demo):
        add(sub)
    return parser


def explicit_options(argv: Sequence[str]) -> set[str]:
    """The destinations of the options given on ``argv`` (not those left at their defaults): what a
    ``train --resume`` may compare with the run it continues. argparse has no public way to ask, so
    the parser is rebuilt with every default suppressed and parsed again."""
    parser = build_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.dest not in ("help", "version"):
                action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv)))) - {"command"}
