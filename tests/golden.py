"""Golden outputs: what ``predict``, ``map``, ``log-prob``, ``evaluate``, photo answers and the web
server answer on committed models and data (``tests/fixtures/golden``, built by
``tools/make_golden.py``), recorded once and compared on every run (``tests/test_golden.py``).

Each case runs a command the way a user does and returns its output as JSON-able data, with what
legitimately differs between runs taken out: wall-clock times, and the temporary and fixture folders
(replaced by ``<tmp>`` and ``<fixtures>``). Numbers are compared with a relative and absolute
tolerance of 1e-5 (cross-machine rounding of float32 arithmetic, far below any change of behaviour);
everything else exactly.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "golden"
EXPECTED = FIXTURES / "expected"
KNOWN_TEST_ROWS = 16
BLUE_PATCHES = 3
BLUE_ENCODER = "efficientnet-lite0@64"
RTOL = ATOL = 1e-5
#: Keys whose values are wall-clock measurements.
TIMING_KEYS = frozenset({"seconds", "seconds_rfm_points", "time"})

KNOWN = FIXTURES / "known_test.parquet"
RFM, FM, VMF, BLUE = (FIXTURES / n for n in ("known_rfm", "known_fm", "known_vmf", "blue_rfm"))


def _cli(*args: Any) -> None:
    from globeflow.apps.cli import main

    code = main([str(a) for a in args])
    if code != 0:
        raise AssertionError(f"globeflow {' '.join(map(str, args))} exited with {code}")


def _normalise(value: Any, tmp: Path) -> Any:
    """Paths as placeholders, timing keys dropped, tuples as lists (JSON's view of the data)."""
    if isinstance(value, dict):
        return {str(k): _normalise(v, tmp) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, (list, tuple)):
        return [_normalise(v, tmp) for v in value]
    if isinstance(value, str):
        for real, mark in ((str(tmp.resolve()), "<tmp>"), (str(tmp), "<tmp>"), (str(FIXTURES), "<fixtures>")):
            value = value.replace(real, mark)
        return value
    return value


def _csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV with numeric cells as numbers."""
    rows = []
    for row in csv.DictReader(path.open(newline="")):
        rows.append({k: _number(v) for k, v in row.items()})
    return rows


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------
# Known-answer task: embeddings in, files out.


def predict_rfm(tmp: Path) -> Any:
    out = {}
    for name, flags in (("geoscore", ["--num-samples", 64]),
                        ("mode", ["--point", "mode", "--num-samples", 32, "--steps", 8]),
                        ("single_published", ["--protocol", "published", "--steps", 20]),
                        ("guided_rk4", ["--num-samples", 16, "--guidance", 1.5, "--steps", 6, "--seed", 7])):
        path = tmp / f"{name}.csv"
        _cli("predict", RFM, KNOWN, "--out", path, *flags)
        out[name] = _csv(path)
    return out


def predict_fm_and_vmf(tmp: Path) -> Any:
    out = {}
    for name, run, flags in (("fm", FM, ["--num-samples", 32]), ("vmf", VMF, ["--num-samples", 32]),
                             ("vmf_mode", VMF, ["--point", "mode"])):
        path = tmp / f"{name}.csv"
        _cli("predict", run, KNOWN, "--out", path, *flags)
        out[name] = _csv(path)
    return out


def log_prob(tmp: Path) -> Any:
    out = {}
    for name, run, flags in (("rk4", RFM, []),
                             ("hutchinson_km2", RFM, ["--steps", 8, "--guidance", 1.0, "--divergence", "hutchinson",
                                                      "--units", "km2"]),
                             ("dopri5", RFM, ["--method", "dopri5"]),
                             ("vmf", VMF, [])):
        path = tmp / f"{name}.csv"
        _cli("log-prob", run, KNOWN, "--out", path, *flags)
        out[name] = _csv(path)
    return out


def evaluate(tmp: Path) -> Any:
    out = {}
    for name, run, flags in (("rfm", RFM, ["--num-samples", 32, "--calibration-samples", 16]),
                             ("fm", FM, ["--num-samples", 32]),
                             ("vmf", VMF, ["--num-samples", 32, "--calibration-samples", 16])):
        path = tmp / f"{name}.json"
        _cli("evaluate", run, KNOWN, "--out", path, *flags)
        report = _json(path)
        report["markdown"] = path.with_suffix(".md").read_text()
        out[name] = report
    return out


def map_rows(tmp: Path) -> Any:
    folder = tmp / "maps"
    # The adaptive solver at a loose tolerance: the default (1e-5) costs minutes on these models.
    _cli("map", RFM, KNOWN, "--out", folder, "--nside", 16, "--start-nside", 4, "--max-cells", 32, "--limit", 3,
         "--num-samples", 64, "--batch-size", 2, "--rtol", 1e-3, "--atol", 1e-3, "--error-check", 4, "--no-progress")
    import numpy as np

    out: dict[str, Any] = {"index": _csv(folder / "index.csv"), "rows": {}}
    settings = _json(folder / "map_settings.json")
    settings["model"].pop("source")  # a temporary path
    out["settings"] = settings
    for path in sorted(folder.glob("*.json")):
        if path.name == "map_settings.json":
            continue
        row = _json(path)
        arrays = np.load(folder / row["files"]["npz"])
        row["npz"] = {"log_density": arrays["log_density"].tolist(), "evaluated_nside": arrays["evaluated_nside"].tolist()}
        # The credible regions: one MultiPolygon each (issue 16), recorded as their properties and
        # the number of polygons and positions, which any change of geometry changes.
        region = _json(folder / row["files"]["geojson"])
        row["geojson"] = [{**f["properties"], "polygons": len(f["geometry"]["coordinates"]),
                           "positions": sum(len(r) for p in f["geometry"]["coordinates"] for r in p)}
                          for f in region["features"]]
        out["rows"][path.stem] = row
    return out


def train_runs(tmp: Path) -> Any:
    """Short runs of the trainer: the logged losses, the saved configs and the EMA weights' statistics."""
    from globeflow.io import load_checkpoint

    out = {}
    for kind, flags in (("rfm", ["--lr", 3e-3, "--cond-drop", 0.2]), ("vmf-mixture", ["--components", 2]),
                        ("diffusion", ["--optimizer", "lamb"])):
        run = tmp / kind
        _cli("train", KNOWN, "--out", run, "--model", kind, "--dim", 16, "--depth", 1, "--steps", 12, "--batch-size", 8,
             "--warmup-steps", 3, "--ckpt-every", 5, "--val", KNOWN, "--val-every", 6, "--seed", 3, "--no-progress",
             *flags)
        ckpt = load_checkpoint(run)
        ema = ckpt.state("ema")
        out[kind] = {"metrics": [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()],
                     "config": _json(run / "config.json"), "step": ckpt.meta["step"],
                     "ema": {k: [float(v.double().sum()), float(v.double().abs().sum()), v.reshape(-1)[:3].tolist()]
                             for k, v in sorted(ema.items())}}
    return out


# ------------------------------------------------------------------------------------------------
# Blue Marble: photos in.


def embed(tmp: Path) -> Any:
    """``globeflow embed`` of the patches: the part's rows and the embeddings' statistics."""
    import pyarrow.parquet as pq

    folder = tmp / "emb"
    _cli("embed", FIXTURES / "blue_patches", "--out", folder, "--encoder", BLUE_ENCODER, "--unlabelled",
         "--shard-rows", 2, "--no-progress")
    parts = {}
    for path in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(path).to_pydict()
        vectors = table.pop("embedding")
        table["embedding"] = [[sum(v), sum(abs(x) for x in v), v[:4]] for v in vectors]
        parts[path.name] = table
    manifest = _json(folder / "embed.json")
    manifest.pop("fingerprint")  # a hash over the photos' absolute paths: differs between checkouts
    return {"manifest": manifest, "parts": parts, "skipped": (folder / "skipped.csv").read_text()}


def photos(tmp: Path) -> Any:
    out = {}
    patches = FIXTURES / "blue_patches"
    csv_path, geojson_path = tmp / "answers.csv", tmp / "answers.geojson"
    _cli("predict", BLUE, patches, "--out", csv_path, "--steps", 8)  # RK4-8: the defaults cost minutes here
    out["csv"] = _csv(csv_path)
    _cli("predict", BLUE, patches / "patch1.png", "--out", geojson_path, "--top-k", 2, "--nside", 8, "--seed", 5,
         "--steps", 8)
    out["geojson"] = _json(geojson_path)
    return out


def server_answer(tmp: Path) -> Any:
    from globeflow.apps.server import Predictor, ServeConfig
    from globeflow.data.encoders import load_encoder
    from globeflow.inference import Geolocator

    locator = Geolocator.load(BLUE, device="cpu")
    import dataclasses

    serve = ServeConfig()  # RK4-8 with a small error check: the default solver costs minutes on this model
    serve = dataclasses.replace(serve, answers=dataclasses.replace(serve.answers, solver="rk4", steps=8, error_check=4))
    predictor = Predictor(locator, load_encoder(BLUE_ENCODER), serve, name="golden")
    out = {}
    for name, patch, guidance, seed in (("patch0", "patch0.png", 0.0, 0), ("patch2_guided", "patch2.png", 2.0, 3)):
        answer = predictor.answer((FIXTURES / "blue_patches" / patch).read_bytes(), patch, guidance, seed)
        out[name] = answer
    return out


CASES: dict[str, Callable[[Path], Any]] = {
    "predict_rfm": predict_rfm,
    "predict_fm_and_vmf": predict_fm_and_vmf,
    "log_prob": log_prob,
    "evaluate": evaluate,
    "map": map_rows,
    "train": train_runs,
    "embed": embed,
    "photos": photos,
    "server_answer": server_answer,
}


def run_case(name: str, tmp: Path) -> Any:
    """The case's output, normalised (JSON round trip included, so it compares like the file)."""
    return json.loads(json.dumps(_normalise(CASES[name](tmp), tmp)))


def assert_matches(actual: Any, expected: Any, where: str = "") -> None:
    """Equal structure and strings; numbers within RTOL/ATOL (bytes of the density raster within 1)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {type(actual).__name__}"
        assert sorted(actual) == sorted(expected), (f"{where}: keys differ: missing {sorted(set(expected) - set(actual))}, "
                                                    f"new {sorted(set(actual) - set(expected))}")
        for k in expected:
            assert_matches(actual[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), \
            f"{where}: expected a list of {len(expected)}, got {actual if not isinstance(actual, list) else len(actual)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, f"{where}[{i}]")
    elif where.endswith("density.data"):
        # A quantised raster: a byte may flip at a rounding boundary.
        a, e = base64.b64decode(actual), base64.b64decode(expected)
        assert len(a) == len(e), f"{where}: {len(a)} bytes, expected {len(e)}"
        worst = max((abs(x - y) for x, y in zip(a, e)), default=0)
        assert worst <= 1, f"{where}: density bytes differ by up to {worst}"
    elif isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{where}: {actual!r} is not a number"
        if math.isnan(expected):
            assert math.isnan(actual), f"{where}: {actual!r} != nan"
        else:
            assert math.isclose(actual, expected, rel_tol=RTOL, abs_tol=ATOL), f"{where}: {actual!r} != {expected!r}"
    else:  # pragma: no cover - JSON has no other types
        raise TypeError(f"{where}: unexpected {type(expected).__name__}")


def write_expected() -> None:
    """Record every case's output (tools/make_golden.py)."""
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            data = run_case(name, Path(tmp))
        text = json.dumps(data, sort_keys=True, allow_nan=True)
        (EXPECTED / f"{name}.json").write_text(text + "\n")
        print(f"{name}: {len(text) / 1024:.0f} KB", flush=True)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    write_expected()
