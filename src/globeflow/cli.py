"""Command line: ``globeflow train | predict | evaluate | log-prob | map | embed | baseline | compare | export |
models | serve | demo``. Thin: parse, call the library, format."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]

EMB_DROPOUT = 0.0


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--point", choices=("geoscore", "mode", "grid", "single"), default=None,
                   help="point estimate: best expected GeoScore among samples (default), densest sample (mode), "
                        "densest cell of the density map (grid), or one guided sample (single; the default "
                        "with --protocol published)")
    g.add_argument("--protocol", choices=("globeflow", "published"), default="globeflow",
                   help="sampler preset: globeflow's defaults (e.g. 16 RK4 steps on the sphere), or the published "
                        "package's (Euler or DDIM, 250 steps); published + --point single + guidance 2 is the "
                        "published evaluation protocol")
    g.add_argument("--num-samples", type=int, default=None,
                   help="samples per image for --point geoscore / mode (default 256; 128 for photos)")
    g.add_argument("--steps", type=int, default=None, help="solver steps (default: the model's, e.g. 16 RK4 steps for rfm)")
    g.add_argument("--method", default=None, help="solver: euler, midpoint, rk4 (rfm, fm) or ddim (diffusion)")
    g.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale w (default 0 for geoscore, 2 for single)")
    g.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--skip-invalid", action="store_true", help="skip and count invalid rows instead of failing")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if available)")


_MODEL_HELP = ("the model: a run directory or checkpoint, a hub-layout folder, hf:owner/name, or a published model "
               "name (globeflow models lists them; downloaded once into the Hugging Face cache). Also accepted "
               "as the first positional argument")


def _add_model_arg(p: argparse.ArgumentParser, data_help: str) -> None:
    p.add_argument("inputs", nargs="+", metavar="PATH",
                   help=f"the model (unless --model is given), then the data: {data_help}")
    p.add_argument("--model", default=None, help=_MODEL_HELP)


def build_parser() -> argparse.ArgumentParser:
    from .baselines.direct import HEAD_KINDS
    from .training import TrainConfig

    d = TrainConfig()
    parser = argparse.ArgumentParser(prog="globeflow", description="Generative visual geolocation on the sphere.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on an embedding dataset (Parquet)")
    t.add_argument("data", help="Parquet file or folder with lat, lon, embedding columns")
    t.add_argument("--out", required=True, help="run directory for checkpoints and logs")
    t.add_argument("--val", default=None, help="validation embedding dataset")
    t.add_argument("--model", choices=("rfm", "fm", "diffusion") + HEAD_KINDS, default="rfm",
                   help="rfm: flow matching on the sphere (default); fm: flow matching in R^3; diffusion: DDPM/DDIM "
                        "in R^3; baselines with the same backbone: vmf (von Mises-Fisher regression), vmf-mixture, "
                        "geocell (HEALPix classification), regression (a unit vector, no density)")
    t.add_argument("--components", type=int, default=3, help="vmf-mixture components (default 3)")
    t.add_argument("--nside", type=int, default=16, help="geocell HEALPix nside: 12 nside^2 cells (default 16: "
                                                          "3,072 cells of ~400 km)")
    t.add_argument("--label-tau-km", type=float, default=None,
                   help="geocell label smoothing length in km (default: half the cell size)")
    t.add_argument("--dim", type=int, default=256, help="network width (default 256)")
    t.add_argument("--depth", type=int, default=6, help="number of residual blocks (default 6)")
    t.add_argument("--cond-drop", type=float, default=0.1, help="guidance dropout probability (default 0.1)")
    t.add_argument("--emb-dropout", type=float, default=EMB_DROPOUT,
                   help=f"dropout on embedding coordinates in training (default {EMB_DROPOUT}; see docs/design.md)")
    t.add_argument("--steps", type=int, default=d.steps, help=f"training steps (default {d.steps})")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help=f"global batch size (default {d.batch_size})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    t.add_argument("--optimizer", choices=("adamw", "lamb"), default=d.optimizer)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    t.add_argument("--ema-decay", type=float, default=d.ema_decay)
    t.add_argument("--grad-clip", type=float, default=d.grad_clip)
    t.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    t.add_argument("--val-every", type=int, default=d.val_every)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--skip-invalid", action="store_true", help="skip and count invalid rows instead of failing")
    t.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if available)")
    t.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("predict", help="predict locations for an embedding dataset, or answer photos")
    _add_model_arg(p, "embedding dataset (Parquet file or folder: one best guess per row), "
                                           "or photos (files, a folder, a glob, or an image dataset: best guess, "
                                           "top-k places, country probabilities, localizability per photo)")
    p.add_argument("--out", required=True, help="output file: .parquet or .csv (also .geojson for photos)")
    _add_sampler_args(p)
    ph = p.add_argument_group("photos")
    ph.add_argument("--encoder", default=None, help="image encoder (default: the one the model was trained on)")
    ph.add_argument("--encoder-path", default=None, help="local folder with the encoder's weights (offline)")
    ph.add_argument("--kind", default="auto", choices=("auto", "files", "osv5m", "inat21", "yfcc", "webdataset"))
    ph.add_argument("--labels", default=None, help="CSV with id, lat, lon of the photos (adds the truth)")
    ph.add_argument("--top-k", type=int, default=3, help="distinct places per photo (default 3)")
    ph.add_argument("--nside", type=int, default=None,
                    help="HEALPix resolution of each photo's density map (default 16; 32 and 64 cost ~4x and ~16x)")
    ph.add_argument("--maps", default=None, help="folder for each photo's density map (PNG, npz, GeoJSON, JSON)")

    e = sub.add_parser("evaluate", help="evaluate point predictions on a labelled embedding dataset")
    _add_model_arg(e, "labelled embedding dataset")
    e.add_argument("--out", required=True, help="report JSON path")
    _add_sampler_args(e)

    e.add_argument("--no-nll", action="store_true",
                   help="skip the exact negative log-likelihood and calibration (rfm models)")
    e.add_argument("--calibration-samples", type=int, default=64,
                   help="samples with exact densities per row for credible-region calibration (default 64; 0: off)")

    mp = sub.add_parser("map", help="density map, top-k places, area probabilities, credible regions and "
                                    "localizability for each row (rfm models)")
    _add_model_arg(mp, "embedding dataset (Parquet file or folder)")
    mp.add_argument("--out", required=True, help="output folder: <id>.json/.png/.npz/.geojson per row, index.csv")
    mp.add_argument("--nside", type=int, default=64, help="HEALPix resolution of the maps (default 64: ~92 km cells)")
    mp.add_argument("--start-nside", type=int, default=8, help="coarse grid evaluated everywhere (default 8)")
    mp.add_argument("--max-cells", type=int, default=256, help="cells refined by mass per level (default 256)")
    mp.add_argument("--num-samples", type=int, default=256, help="samples with exact densities per row (default 256)")
    mp.add_argument("--top-k", type=int, default=5, help="distinct places reported (default 5)")
    mp.add_argument("--steps", type=int, default=16, help="RK4 steps of the likelihood ODE (default 16)")
    mp.add_argument("--guidance", type=float, default=0.0, help="guidance scale (default 0: the calibrated density)")
    mp.add_argument("--limit", type=int, default=None, help="only the first N valid rows")
    mp.add_argument("--batch-size", type=int, default=4, help="rows mapped together (default 4)")
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--skip-invalid", action="store_true")
    mp.add_argument("--device", default=None)
    mp.add_argument("--no-progress", action="store_true")

    lp = sub.add_parser("log-prob", help="exact log-density of each row's true location (rfm models)")
    _add_model_arg(lp, "embedding dataset with lat, lon")
    lp.add_argument("--out", required=True, help="output file: .parquet or .csv")
    lp.add_argument("--steps", type=int, default=16, help="RK4 steps (default 16)")
    lp.add_argument("--method", choices=("rk4", "dopri5"), default="rk4")
    lp.add_argument("--guidance", type=float, default=0.0)
    lp.add_argument("--divergence", choices=("exact", "hutchinson"), default="exact")
    lp.add_argument("--units", choices=("sr", "km2"), default="sr", help="nats per steradian (default) or per km^2")
    lp.add_argument("--batch-size", type=int, default=1024)
    lp.add_argument("--skip-invalid", action="store_true")
    lp.add_argument("--device", default=None)

    em = sub.add_parser("embed", help="images -> embedding dataset (Parquet parts), resumable and shardable")
    em.add_argument("images", nargs="+", help="image file(s), folder, glob, OSV-5M root, iNat21 JSON, "
                                              "YFCC/MP-16 CSV or WebDataset tar shards")
    em.add_argument("--out", required=True, help="output folder of part-NNNNN.parquet files")
    em.add_argument("--kind", default="auto", choices=("auto", "files", "osv5m", "inat21", "yfcc", "webdataset"),
                    help="dataset layout (default: detected)")
    em.add_argument("--labels", default=None, help="CSV with id, lat, lon for a folder of images")
    em.add_argument("--encoder", default="efficientnet-lite0", help="image encoder (default efficientnet-lite0)")
    em.add_argument("--encoder-path", default=None, help="local folder with the encoder's weights (offline)")
    em.add_argument("--shard-rows", type=int, default=4096, help="images per Parquet part (default 4096)")
    em.add_argument("--batch-size", type=int, default=64, help="images per encoder call (default 64)")
    em.add_argument("--workers", type=int, default=2, help="image-decoding threads (default 2)")
    em.add_argument("--shard", default=None, help="INDEX/COUNT: this process's share of the parts "
                                                  "(default: RANK/WORLD_SIZE under torchrun, else all)")
    em.add_argument("--unlabelled", action="store_true", help="keep images with no location (lat/lon NaN)")
    em.add_argument("--device", default=None)
    em.add_argument("--no-progress", action="store_true")

    bl = sub.add_parser("baseline", help="evaluate a baseline (knn retrieval, uniform guessing) with evaluate's "
                                         "harness and report")
    bl.add_argument("kind", choices=("knn", "uniform"))
    bl.add_argument("data", help="labelled embedding dataset to evaluate on")
    bl.add_argument("--out", required=True, help="report JSON path (also .md and error pictures beside it)")
    bl.add_argument("--train", default=None, help="labelled embedding dataset to retrieve from (knn)")
    bl.add_argument("--k", type=int, default=1, help="neighbours: 1, or the spherical mean of k (default 1)")
    bl.add_argument("--seed", type=int, default=0)
    bl.add_argument("--skip-invalid", action="store_true")

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

    sv = sub.add_parser("serve", help="a web page and JSON API: drop a photo, see where on Earth it could be")
    sv.add_argument("--model", default=None, help=_MODEL_HELP.split(". Also")[0] + " (default: the Blue Marble "
                    "demo model, runs/demo/rfm, trained on first use)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--encoder", default=None, help="image encoder (default: the one the model was trained on)")
    sv.add_argument("--encoder-path", default=None, help="local folder with the encoder's weights (offline)")
    sv.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted photo (default 20 MB)")
    sv.add_argument("--max-pending", type=int, default=32,
                    help="requests in progress at once; the next gets 503 (default 32)")
    sv.add_argument("--num-samples", type=int, default=128, help="samples per photo (default 128)")
    sv.add_argument("--device", default=None)

    m = sub.add_parser("demo", help="offline visual geolocation on NASA's Blue Marble image: build, embed, train, "
                                    "evaluate, draw maps (no download)")
    m.add_argument("--task", choices=("blue-marble", "known-answer"), default="blue-marble",
                   help="blue-marble (default): real image patches; known-answer: synthetic embeddings with a "
                        "known true density")
    m.add_argument("--out", default=None, help="output directory (default runs/demo or runs/demo-known-answer)")
    m.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    m.add_argument("--device", default=None)
    m.add_argument("--no-progress", action="store_true")
    return parser


def _cmd_train(a: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    config = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer,
                         weight_decay=a.weight_decay, warmup_steps=a.warmup_steps, ema_decay=a.ema_decay,
                         grad_clip=a.grad_clip, ckpt_every=a.ckpt_every, val_every=a.val_every, seed=a.seed,
                         skip_invalid=a.skip_invalid)
    result = train(a.data, a.out, kind=a.model, network={"dim": a.dim, "depth": a.depth}, config=config,
                   val_data=a.val, resume=a.resume, device=a.device, progress=not a.no_progress,
                   cond_drop=a.cond_drop, emb_dropout=a.emb_dropout,
                   head={"components": a.components, "nside": a.nside, "label_tau_km": a.label_tau_km})
    if os.environ.get("RANK", "0") != "0":
        return 0  # one summary per run, from the process that wrote the checkpoint
    print(json.dumps({"run_dir": str(result.run_dir), "step": result.step, "final_loss": result.final_loss,
                      "val_loss": result.val_loss, "skipped_steps": result.skipped_steps,
                      "seconds": round(result.seconds, 1)}))
    return 0


def _split_model(a: argparse.Namespace, max_data: int | None = 1) -> None:
    """``[MODEL] DATA...`` or ``--model MODEL DATA...`` -> ``a.run`` and ``a.data``."""
    items = list(a.inputs)
    if a.model is None:
        if len(items) < 2:
            raise ValueError(f"globeflow {a.command}: give the model and the data (globeflow {a.command} MODEL "
                             f"DATA, or --model MODEL DATA)")
        a.model, items = items[0], items[1:]
    if max_data is not None and len(items) > max_data:
        raise ValueError(f"globeflow {a.command}: expected one dataset after the model, got {' '.join(items)}")
    a.run, a.data = a.model, items if max_data is None else items[0]


def _predict_kwargs(a: argparse.Namespace) -> dict:
    point = a.point or ("single" if a.protocol == "published" else "geoscore")
    kwargs = dict(strategy=point, num_samples=256 if a.num_samples is None else a.num_samples, steps=a.steps,
                  cfg=a.guidance, method=a.method, seed=a.seed)
    if a.protocol != "globeflow":  # trained baselines accept only the default
        kwargs["protocol"] = a.protocol
    return kwargs


def _is_embedding_dataset(paths: list[str]) -> bool:
    if len(paths) != 1:
        return False
    p = Path(paths[0])
    return p.suffix == ".parquet" or (p.is_dir() and any(p.rglob("*.parquet")))


def _cmd_predict(a: argparse.Namespace) -> int:
    from .evaluation import predict_to_file

    _split_model(a, max_data=None)
    if not _is_embedding_dataset(a.data):
        return _predict_photos(a)
    summary = predict_to_file(a.run, a.data[0], a.out, batch_size=a.batch_size, device=a.device,
                              skip_invalid=a.skip_invalid, **_predict_kwargs(a))
    print(json.dumps(summary))
    return 0


def _predict_photos(a: argparse.Namespace) -> int:
    from .photos import PHOTO_ANSWERS, predict_photos_to_file

    if a.top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {a.top_k}")
    if a.protocol != "globeflow" or a.point is not None:
        raise ValueError("--protocol and --point apply to embedding datasets; photo answers draw samples with "
                         "exact densities (rfm) and report the best guess, top places and regions")
    map_config = PHOTO_ANSWERS.map if a.nside is None else dataclasses.replace(PHOTO_ANSWERS.map, nside=a.nside)
    samples = PHOTO_ANSWERS.num_samples if a.num_samples is None else a.num_samples
    config = dataclasses.replace(PHOTO_ANSWERS, num_samples=samples, top_k=a.top_k, map=map_config,
                                 guidance=a.guidance or 0.0, steps=a.steps or PHOTO_ANSWERS.steps)
    summary = predict_photos_to_file(a.run, a.data[0] if len(a.data) == 1 else a.data, a.out, kind=a.kind,
                                     labels=a.labels, encoder=a.encoder, encoder_path=a.encoder_path,
                                     config=config, maps_dir=a.maps, batch_size=min(a.batch_size, 16),
                                     device=a.device, seed=a.seed)
    for where, why in summary.pop("skipped_list")[:20]:
        print(f"globeflow: skipped {where}: {why}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluation import evaluate_to_file

    _split_model(a)
    report = evaluate_to_file(a.run, a.data, a.out, batch_size=a.batch_size, device=a.device,
                              skip_invalid=a.skip_invalid, nll=not a.no_nll,
                              calibration_samples=a.calibration_samples, **_predict_kwargs(a))
    print(json.dumps(report["metrics"], indent=2))
    return 0


def _cmd_log_prob(a: argparse.Namespace) -> int:
    from .evaluation import log_prob_to_file

    _split_model(a)
    summary = log_prob_to_file(a.run, a.data, a.out, batch_size=a.batch_size, device=a.device,
                               skip_invalid=a.skip_invalid, units=a.units, steps=a.steps, method=a.method,
                               cfg=a.guidance, divergence=a.divergence)
    print(json.dumps(summary))
    return 0


def _cmd_map(a: argparse.Namespace) -> int:
    from .answers import AnswerConfig
    from .density import MapConfig
    from .mapping import map_to_dir

    _split_model(a)
    config = AnswerConfig(num_samples=a.num_samples, steps=a.steps, guidance=a.guidance, top_k=a.top_k,
                          map=MapConfig(nside=a.nside, start_nside=a.start_nside, max_cells=a.max_cells))
    summary = map_to_dir(a.run, a.data, a.out, config=config, batch_size=a.batch_size, limit=a.limit,
                         device=a.device, skip_invalid=a.skip_invalid, progress=not a.no_progress, seed=a.seed)
    print(json.dumps(summary))
    return 0


def _cmd_embed(a: argparse.Namespace) -> int:
    from .data.images import read_images
    from .embedding import EmbedConfig, embed_to_dir, parse_shard
    from .encoders import load_encoder
    from .training import resolve_device

    config = EmbedConfig(shard_rows=a.shard_rows, batch_size=a.batch_size, workers=a.workers)
    shard = parse_shard(a.shard)
    paths = a.images[0] if len(a.images) == 1 else a.images
    source = read_images(paths, kind=a.kind, labels=a.labels, require_location=not a.unlabelled)
    if not source.records:
        raise ValueError(f"{' '.join(a.images)}: no usable images found ({len(source.skipped)} skipped)")
    encoder = load_encoder(a.encoder, a.encoder_path, device=resolve_device(a.device))
    summary = embed_to_dir(source, encoder, a.out, config=config, shard=shard, progress=not a.no_progress)
    for where, why in summary.pop("skipped_list")[:20]:
        print(f"globeflow: skipped {where}: {why}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _cmd_baseline(a: argparse.Namespace) -> int:
    from .baselines.evaluate import baseline_to_file

    report = baseline_to_file(a.kind, a.data, a.out, train=a.train, k=a.k, seed=a.seed, skip_invalid=a.skip_invalid)
    print(json.dumps({k: v for k, v in report["metrics"].items() if not isinstance(v, dict)}, indent=2))
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from .evaluation import compare_reports

    print(compare_reports(a.reports, a.out))
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from .hub import export_model

    folder = export_model(a.run, a.out, reports=a.report, name=a.name, any_report=a.any_report)
    print(json.dumps({"out": str(folder), "files": sorted(p.name for p in folder.iterdir() if p.is_file())}))
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    from .hub.registry import published_table

    print("published models (--model NAME, or NAME:DIR for a local copy):")
    print(published_table())
    return 0


def _cmd_serve(a: argparse.Namespace) -> int:
    from .server import ServeConfig, load_predictor, serve

    import math

    if not (math.isfinite(a.max_upload_mb) and a.max_upload_mb > 0):
        raise ValueError(f"--max-upload-mb must be a positive number, got {a.max_upload_mb}")
    defaults = ServeConfig()
    config = dataclasses.replace(defaults, max_upload_bytes=int(a.max_upload_mb * 1024 * 1024),
                                 max_pending=a.max_pending,
                                 answers=dataclasses.replace(defaults.answers, num_samples=a.num_samples))
    predictor = load_predictor(a.model, encoder=a.encoder, encoder_path=a.encoder_path, device=a.device, config=config)
    serve(predictor, a.host, a.port)
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    if a.steps is not None and a.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {a.steps}")
    if a.task == "known-answer":
        from .demo import run_demo

        report = run_demo(Path(a.out or "runs/demo-known-answer"), steps=a.steps, device=a.device,
                          progress=not a.no_progress)
    else:
        from .demo_blue_marble import run_blue_marble_demo

        report = run_blue_marble_demo(Path(a.out or "runs/demo"), steps=a.steps, device=a.device,
                                      progress=not a.no_progress)
    print(report["markdown"])
    return 0


COMMANDS = {"train": _cmd_train, "predict": _cmd_predict, "evaluate": _cmd_evaluate, "log-prob": _cmd_log_prob,
            "map": _cmd_map, "embed": _cmd_embed, "baseline": _cmd_baseline, "compare": _cmd_compare,
            "export": _cmd_export, "models": _cmd_models, "serve": _cmd_serve, "demo": _cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors a user can fix become one ``globeflow: error: ...`` line and exit code 2."""
    from .checkpoint import CheckpointError
    from .data import DatasetError
    from .training import TrainingError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (DatasetError, CheckpointError, TrainingError, ValueError, FileNotFoundError, IsADirectoryError) as e:
        print(f"globeflow: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("globeflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
