"""Command line: ``globeflow train | predict | evaluate | calibrate | log-prob | map | embed | baseline |
compare | export | models | serve | demo``. Thin: parse (:mod:`.parser`), call the library, format."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from ... import registry
from ...data.embed import EmbedConfig, embed_to_dir, parse_shard
from ...data.embeddings import DatasetError
from ...data.encoders import EncoderUnavailableError, load_encoder
from ...data.images import read_images
from ...evaluation.baselines import baseline_to_file
from ...evaluation.report import evaluate_to_file
from ...evaluation.tables import compare_reports
from ...flow.network import NetworkConfig
from ...inference.answers import AnswerConfig, override
from ...inference.calibration import CalibrationError
from ...inference.density import MapConfig
from ...inference.evidence import Constraints
from ...inference.geolocator import PHOTO_ANSWERS
from ...inference.settings import LogProbConfig, PointConfig
from ...io.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from ...io.device import resolve_device
from ...io.extras import MissingExtraError, require
from ...io.files import refuse_overwrite
from ...io.lock import FolderBusyError
from ...io.hub import published_table
from ...train import TrainConfig, TrainingError, train
from ..calibrate import calibrate_to_dir
from ..demos.blue_marble import demo_model, run_blue_marble_demo
from ..demos.known_answer import run_demo
from ..export import export_model
from ..groups import predict_groups_to_file
from ..mapping import map_to_dir
from ..photos import predict_photos_to_file
from ..predict import log_prob_to_file, predict_to_file
from ..server.predictor import ServeConfig
from .options import config_from
from .parser import build_parser, explicit_options

__all__ = ["main", "COMMANDS"]

#: Errors a user can fix: one ``globeflow: error:`` line, exit status 2.
#: ``OSError`` covers what the machine refuses (a full disk, a read-only folder, a missing or
#: unreadable file): the user's to fix, so one line too, naming the file where the OS does.
USER_ERRORS = (DatasetError, CheckpointError, CalibrationError, TrainingError, ValueError, OSError,
               MissingExtraError, EncoderUnavailableError, FolderBusyError)


def _cmd_train(a: argparse.Namespace) -> int:
    network = {f.name: getattr(a, f.name) for f in dataclasses.fields(NetworkConfig) if hasattr(a, f.name)}
    # Every kind's settings are options; the registry keeps those of the chosen kind.
    settings = {name: getattr(a, name) for kind in registry.KINDS.values() for name in kind.settings
                if hasattr(a, name)}
    refuse_overwrite(a.out, data=[a.data, a.val])
    config, kind = config_from(a, TrainConfig), a.model
    checkpoint = Path(a.out) / CHECKPOINT_NAME
    if a.resume and checkpoint.exists():
        # Continue with the run's own settings; only the options given on this command line are
        # compared with them (train refuses those that contradict the run).
        given = explicit_options(a.argv)
        saved = TrainConfig(**load_checkpoint(checkpoint, prefixes=()).meta["train_config"])
        config = dataclasses.replace(saved, **{f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)
                                               if f.name in given})
        network = {k: v for k, v in network.items() if k in given}
        settings = {k: v for k, v in settings.items() if k in given}
        kind = a.model if "model" in given else None
    result = train(a.data, a.out, kind=kind, network=network, head=settings, config=config, val_data=a.val,
                   resume=a.resume, device=a.device, progress=not a.no_progress)
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


def _is_embedding_dataset(paths: list[str]) -> bool:
    if len(paths) != 1:
        return False
    p = Path(paths[0])
    return p.suffix == ".parquet" or (p.is_dir() and any(p.rglob("*.parquet")))


def _cmd_predict(a: argparse.Namespace) -> int:
    _split_model(a, max_data=None)
    for out in (a.out, getattr(a, "maps", None)):
        refuse_overwrite(out, data=[*a.data, getattr(a, "labels", None), a.within_geojson], models=[a.run])
    if not _is_embedding_dataset(a.data):
        return _predict_photos(a)
    constraints = _constraints(a)
    if a.group_by is not None or a.fuse or constraints.active:
        return _predict_groups(a, constraints)
    summary = predict_to_file(a.run, a.data[0], a.out, batch_size=a.batch_size, device=a.device,
                              skip_invalid=a.skip_invalid, **config_from(a, PointConfig).predict_kwargs(a.seed))
    print(json.dumps(summary))
    return 0


def _constraints(a: argparse.Namespace) -> Constraints:
    """The command's constraints, with their country codes checked before any work is done."""
    constraints = config_from(a, Constraints)
    constraints.check_known()
    return constraints


def _answer_config(a: argparse.Namespace, what: str) -> AnswerConfig:
    """The photo answers' settings with the command's overrides (full answers: photos, groups)."""
    if a.top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {a.top_k}")
    if a.protocol != "globeflow" or a.strategy is not None:
        raise ValueError(f"--protocol and --point apply to point predictions of embedding datasets; {what} draw "
                         "samples with exact densities (rfm) and report the best guess, top places and regions")
    # --steps 0 keeps the photo answers' steps, as before.
    return override(PHOTO_ANSWERS, top_k=a.top_k, nside=a.nside, num_samples=a.num_samples, guidance=a.guidance,
                    steps=a.steps or None)


def _check_weight(a: argparse.Namespace) -> None:
    if not 0.0 <= a.redundancy <= 1.0:
        raise ValueError(f"--redundancy must be in [0, 1], got {a.redundancy:g}")


def _predict_groups(a: argparse.Namespace, constraints: Constraints) -> int:
    _check_weight(a)
    if a.fuse and a.group_by is not None:
        raise ValueError("--fuse (all rows one place) and --group-by (one place per value) exclude each other")
    config = _answer_config(a, "--fuse, --group-by and constraints")
    summary = predict_groups_to_file(a.run, a.data[0], a.out, group_by=a.group_by, fuse=a.fuse, config=config,
                                     constraints=constraints, maps_dir=a.maps, device=a.device,
                                     skip_invalid=a.skip_invalid, seed=a.seed, redundancy=a.redundancy)
    print(json.dumps(summary))
    return 0


def _predict_photos(a: argparse.Namespace) -> int:
    _check_weight(a)
    if a.fuse and a.group_by is not None:
        raise ValueError("--fuse (all photos one place) and --group-by (one place per value) exclude each other")
    config = _answer_config(a, "photo answers")
    summary = predict_photos_to_file(a.run, a.data[0] if len(a.data) == 1 else a.data, a.out, kind=a.image_kind,
                                     labels=a.labels, encoder=a.encoder, encoder_path=a.encoder_path,
                                     config=config, maps_dir=a.maps, batch_size=min(a.batch_size, 16),
                                     device=a.device, seed=a.seed, constraints=_constraints(a),
                                     group_by=a.group_by, fuse=a.fuse, redundancy=a.redundancy)
    for where, why in summary.pop("skipped_list")[:20]:
        print(f"globeflow: skipped {where}: {why}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    _split_model(a)
    refuse_overwrite(a.out, data=[a.data], models=[a.run])
    report = evaluate_to_file(a.run, a.data, a.out, batch_size=a.batch_size, device=a.device,
                              skip_invalid=a.skip_invalid, nll=not a.no_nll,
                              calibration_samples=a.calibration_samples,
                              **config_from(a, PointConfig).predict_kwargs(a.seed))
    print(json.dumps(report["metrics"], indent=2))
    return 0


def _cmd_calibrate(a: argparse.Namespace) -> int:
    _split_model(a)
    refuse_overwrite(a.out, data=[a.data], models=[a.run])
    summary = calibrate_to_dir(a.run, a.data, a.out, calibration_samples=a.calibration_samples,
                               batch_size=a.batch_size, device=a.device, skip_invalid=a.skip_invalid, seed=a.seed,
                               progress=not a.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_log_prob(a: argparse.Namespace) -> int:
    _split_model(a)
    refuse_overwrite(a.out, data=[a.data], models=[a.run])
    summary = log_prob_to_file(a.run, a.data, a.out, batch_size=a.batch_size, device=a.device,
                               skip_invalid=a.skip_invalid, **config_from(a, LogProbConfig).log_prob_kwargs())
    print(json.dumps(summary))
    return 0


def _cmd_map(a: argparse.Namespace) -> int:
    _split_model(a)
    refuse_overwrite(a.out, data=[a.data], models=[a.run])
    config = config_from(a, AnswerConfig, map=config_from(a, MapConfig))
    summary = map_to_dir(a.run, a.data, a.out, config=config, batch_size=a.batch_size, limit=a.limit,
                         device=a.device, skip_invalid=a.skip_invalid, progress=not a.no_progress, seed=a.seed,
                         constraints=_constraints(a))
    print(json.dumps(summary))
    return 0


def _cmd_embed(a: argparse.Namespace) -> int:
    refuse_overwrite(a.out, data=[*a.images, a.labels])
    config = config_from(a, EmbedConfig)
    shard = parse_shard(a.shard)
    paths = a.images[0] if len(a.images) == 1 else a.images
    source = read_images(paths, kind=a.image_kind, labels=a.labels, require_location=not a.unlabelled)
    if not source.records:
        raise ValueError(f"{' '.join(a.images)}: no usable images found ({len(source.skipped)} skipped)")
    encoder = load_encoder(a.encoder, a.encoder_path, device=resolve_device(a.device))
    summary = embed_to_dir(source, encoder, a.out, config=config, shard=shard, progress=not a.no_progress)
    for where, why in summary.pop("skipped_list")[:20]:
        print(f"globeflow: skipped {where}: {why}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _cmd_baseline(a: argparse.Namespace) -> int:
    refuse_overwrite(a.out, data=[a.data, a.train])
    report = baseline_to_file(a.kind, a.data, a.out, train=a.train, k=a.k, seed=a.seed, skip_invalid=a.skip_invalid)
    print(json.dumps({k: v for k, v in report["metrics"].items() if not isinstance(v, dict)}, indent=2))
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    refuse_overwrite(a.out, data=a.reports)
    print(compare_reports(a.reports, a.out))
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    refuse_overwrite(a.out, data=a.report, models=[a.run])
    folder = export_model(a.run, a.out, reports=a.report, name=a.name, any_report=a.any_report)
    print(json.dumps({"out": str(folder), "files": sorted(p.name for p in folder.iterdir() if p.is_file())}))
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    print("published models (--model NAME, or NAME:DIR for a local copy):")
    print(published_table())
    return 0


def _cmd_serve(a: argparse.Namespace) -> int:
    require("server", "globeflow serve")
    # The server's own modules import FastAPI and uvicorn, which the base install does not have.
    from ..server.run import load_predictor, serve

    if not (math.isfinite(a.max_upload_mb) and a.max_upload_mb > 0):
        raise ValueError(f"--max-upload-mb must be a positive number, got {a.max_upload_mb}")
    defaults = ServeConfig()
    config = config_from(a, ServeConfig, base=defaults, max_upload_bytes=int(a.max_upload_mb * 1024 * 1024),
                         answers=dataclasses.replace(defaults.answers, num_samples=a.num_samples))
    model = a.model if a.model is not None else demo_model(device=a.device)
    predictor = load_predictor(model, encoder=a.encoder, encoder_path=a.encoder_path, device=a.device, config=config)
    serve(predictor, a.host, a.port)
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    if a.steps is not None and a.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {a.steps}")
    if a.task == "known-answer":
        report = run_demo(Path(a.out or "runs/demo-known-answer"), steps=a.steps, device=a.device,
                          progress=not a.no_progress)
    else:
        report = run_blue_marble_demo(Path(a.out or "runs/demo"), steps=a.steps, device=a.device,
                                      progress=not a.no_progress)
    print(report["markdown"])
    return 0


COMMANDS = {"train": _cmd_train, "predict": _cmd_predict, "evaluate": _cmd_evaluate, "calibrate": _cmd_calibrate, "log-prob": _cmd_log_prob,
            "map": _cmd_map, "embed": _cmd_embed, "baseline": _cmd_baseline, "compare": _cmd_compare,
            "export": _cmd_export, "models": _cmd_models, "serve": _cmd_serve, "demo": _cmd_demo}


def _message(e: BaseException) -> str:
    """One line for an error: an operating-system error as ``file: reason`` (``[Errno 28] No space left
    on device`` names no file)."""
    if isinstance(e, OSError) and e.strerror and not (e.args and isinstance(e.args[0], str)):
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors a user can fix become one ``globeflow: error: ...`` line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        print(f"globeflow: error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("globeflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
