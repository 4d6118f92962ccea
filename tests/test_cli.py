"""The command line end to end on tiny data: outputs, reports, and one clear line per bad input."""

import json

import pyarrow.parquet as pq
import pytest
import torch
from helpers import make_rows, write_dataset

from globeflow.apps.cli import main
from globeflow.data import write_embeddings

TRAIN_ARGS = ["--dim", "32", "--depth", "2", "--steps", "30", "--batch-size", "64", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_dataset(d / "train.parquet", 2000, 0)
    write_dataset(d / "test.parquet", 50, 1)
    assert main(["train", str(d / "train.parquet"), "--out", str(d / "run"), *TRAIN_ARGS]) == 0
    return d


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_predict_writes_one_row_per_input(run, capsys):
    out = run / "pred.parquet"
    assert main(["predict", str(run / "run"), str(run / "test.parquet"), "--out", str(out),
                 "--num-samples", "8", "--steps", "4"]) == 0
    table = pq.read_table(out).to_pydict()
    assert len(table["id"]) == 50
    assert set(table) >= {"id", "lat_pred", "lon_pred", "lat", "lon", "error_km"}
    assert all(-90 <= v <= 90 for v in table["lat_pred"])
    csv = run / "pred.csv"
    assert main(["predict", str(run / "run"), str(run / "test.parquet"), "--out", str(csv), "--point", "single",
                 "--steps", "4"]) == 0
    assert len(csv.read_text().strip().splitlines()) == 51


def test_evaluate_report_keys(run):
    out = run / "report.json"
    assert main(["evaluate", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--num-samples", "8",
                 "--steps", "4"]) == 0
    report = json.loads(out.read_text())
    m = report["metrics"]
    for key in ("n", "geoscore", "mean_km", "median_km", "acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km"):
        assert key in m
    assert m["n"] == 50 and 0 <= m["geoscore"] <= 5000
    assert len(report["checkpoint"]["sha256"]) == 64 and report["data"]["num_valid"] == 50


def test_missing_data_file(run, capsys):
    assert main(["evaluate", str(run / "run"), str(run / "nope.parquet"), "--out", str(run / "r.json")]) == 2
    line = error_line(capsys)
    assert "nope.parquet" in line and line.startswith("globeflow: error:")


def test_missing_checkpoint(run, capsys):
    assert main(["predict", str(run / "norun"), str(run / "test.parquet"), "--out", str(run / "p.csv")]) == 2
    assert "no checkpoint found" in error_line(capsys)


def test_wrong_embedding_size(run, capsys):
    latlon, emb, _ = make_rows(10, 3)
    write_embeddings(run / "wide.parquet", latlon, torch.cat((emb, emb), 1))
    assert main(["predict", str(run / "run"), str(run / "wide.parquet"), "--out", str(run / "p.csv")]) == 2
    line = error_line(capsys)
    assert "wide.parquet" in line and "16" in line and "8" in line


def test_nan_coordinates_fail_or_are_skipped(run, capsys):
    latlon, emb, _ = make_rows(10, 4)
    latlon[3, 0] = float("nan")
    write_embeddings(run / "nan.parquet", latlon, emb)
    out = run / "nan.csv"
    assert main(["predict", str(run / "run"), str(run / "nan.parquet"), "--out", str(out)]) == 2
    assert "nan.parquet row 3" in error_line(capsys)
    assert not out.exists()  # nothing half-written
    assert main(["predict", str(run / "run"), str(run / "nan.parquet"), "--out", str(out), "--skip-invalid",
                 "--num-samples", "4", "--steps", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 9 and summary["skipped_rows"] == 1


def test_wrong_columns_and_empty_dataset(run, capsys):
    import pyarrow as pa
    pq.write_table(pa.table({"latitude": [1.0], "lon": [2.0]}), run / "cols.parquet")
    assert main(["train", str(run / "cols.parquet"), "--out", str(run / "x"), *TRAIN_ARGS]) == 2
    line = error_line(capsys)
    assert "cols.parquet" in line and "lat" in line and "embedding" in line
    latlon, emb, _ = make_rows(0, 0)
    write_embeddings(run / "empty.parquet", latlon, emb.reshape(0, 8))
    assert main(["train", str(run / "empty.parquet"), "--out", str(run / "y"), *TRAIN_ARGS]) == 2
    assert "no valid rows" in error_line(capsys)


def test_corrupt_checkpoint(run, capsys, tmp_path):
    bad = tmp_path / "checkpoint.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(bad), str(run / "test.parquet"), "--out", str(tmp_path / "r.json")]) == 2
    assert "corrupt" in error_line(capsys)


def test_unsupported_output_format(run, capsys):
    assert main(["predict", str(run / "run"), str(run / "test.parquet"), "--out", str(run / "p.xlsx")]) == 2
    assert "unsupported output format .xlsx" in error_line(capsys)


def test_log_prob_units_and_rows(run, capsys):
    sr, km = run / "lp.parquet", run / "lp_km.csv"
    assert main(["log-prob", str(run / "run"), str(run / "test.parquet"), "--out", str(sr), "--steps", "4"]) == 0
    assert main(["log-prob", str(run / "run"), str(run / "test.parquet"), "--out", str(km), "--steps", "4",
                 "--units", "km2"]) == 0
    a = pq.read_table(sr).to_pydict()
    assert len(a["log_prob"]) == 50 and set(a["units"]) == {"nats/sr"}
    import math

    import pyarrow.csv as pacsv
    b = pacsv.read_csv(km).to_pydict()
    assert set(b["units"]) == {"nats/km2"}
    for x, y in zip(a["log_prob"], b["log_prob"]):
        assert y == pytest.approx(x - 2 * math.log(6371.0), abs=1e-9)


def test_evaluate_reports_nll_and_refuses_it_for_r3_models(run, capsys):
    out = run / "report_nll.json"
    assert main(["evaluate", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--num-samples", "4",
                 "--steps", "4"]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["nll_units"] == "nats/sr" and m["nll"] is not None and abs(m["nll"]) < 20
    assert main(["train", str(run / "train.parquet"), "--out", str(run / "fm"), "--model", "fm", *TRAIN_ARGS]) == 0
    capsys.readouterr()
    assert main(["log-prob", str(run / "fm"), str(run / "test.parquet"), "--out", str(run / "fm.csv")]) == 2
    assert "need an rfm model" in error_line(capsys)
    assert main(["evaluate", str(run / "fm"), str(run / "test.parquet"), "--out", str(out), "--num-samples", "4",
                 "--steps", "4"]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["nll"] is None and "no normalised density" in m["nll_note"]
    assert "no normalised density" in m["calibration"]["note"]
    capsys.readouterr()
    assert main(["map", str(run / "fm"), str(run / "test.parquet"), "--out", str(run / "fm_maps")]) == 2
    assert "need an rfm model" in error_line(capsys)


def test_evaluate_reports_calibration_with_a_reliability_picture(run):
    out = run / "report_cal.json"
    assert main(["evaluate", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--num-samples", "4",
                 "--steps", "4", "--calibration-samples", "16"]) == 0
    cal = json.loads(out.read_text())["metrics"]["calibration"]
    assert cal["levels"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] and cal["n"] == 50
    assert cal["coverage"] == sorted(cal["coverage"]) and all(0 <= c <= 1 for c in cal["coverage"])
    assert (run / "report_cal.reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--num-samples", "4",
                 "--steps", "4", "--calibration-samples", "0"]) == 0
    assert "not computed" in json.loads(out.read_text())["metrics"]["calibration"]["note"]


MAP_ARGS = ["--nside", "8", "--start-nside", "4", "--max-cells", "16", "--num-samples", "16", "--steps", "4",
            "--solver", "rk4", "--error-check", "4", "--no-progress"]


def test_map_writes_answers_per_row_and_resumes(run, capsys):
    out = run / "maps"
    assert main(["map", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--limit", "3",
                 *MAP_ARGS]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["written"], summary["resumed"]) == (3, 3, 0)
    reports = sorted(p for p in out.glob("*.json") if p.name != "map_settings.json")
    assert len(reports) == 3
    for path in reports:
        r = json.loads(path.read_text())
        for key in ("best_guess", "mode", "grid_max", "top_k", "countries", "credible_regions", "localizability",
                    "truth", "map"):
            assert key in r, key
        for ext in ("png", "npz", "geojson"):
            assert (out / r["files"][ext]).exists()
        assert r["map"]["nside"] == 8 and r["units"] == "nats/sr"
    lines = (out / "index.csv").read_text().strip().splitlines()
    bits = [float(line.split(",")[1]) for line in lines[1:]]
    assert len(bits) == 3 and bits == sorted(bits, reverse=True)
    # A second run skips finished rows; a row whose JSON is gone is redone.
    reports[0].unlink()
    assert main(["map", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--limit", "3",
                 *MAP_ARGS]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["written"], summary["resumed"]) == (1, 2)
    assert [p.name for p in out.glob(".*")] == [".lock"]  # no temporary files left behind, only the lock


def test_map_refuses_models_without_a_density_and_bad_settings(run, capsys):
    assert main(["map", str(run / "run"), str(run / "test.parquet"), "--out", str(run / "m2"), "--nside", "12"]) == 2
    assert "power of 2" in error_line(capsys)
    f = run / "file.txt"
    f.write_text("x")
    assert main(["map", str(run / "run"), str(run / "test.parquet"), "--out", str(f)]) == 2
    assert "not a folder" in error_line(capsys)
    for bad, message in ((["--num-samples", "1"], "num_samples must be >= 2"), (["--top-k", "0"], "top_k must be >= 1"),
                         (["--limit", "0"], "--limit must be >= 1"), (["--steps", "0"], "steps must be >= 1")):
        assert main(["map", str(run / "run"), str(run / "test.parquet"), "--out", str(run / "m3"), *bad]) == 2
        assert message in error_line(capsys)
    assert not (run / "m3").exists() or not list((run / "m3").iterdir())
    assert main(["map", str(run / "run"), str(run / "nope.parquet"), "--out", str(run / "m4"), *MAP_ARGS]) == 2
    assert "nope.parquet" in error_line(capsys)
    assert not (run / "m4").exists()
    assert main(["evaluate", str(run / "run"), str(run / "test.parquet"), "--out", str(run / "r.json"),
                 "--calibration-samples", "-1"]) == 2
    assert "--calibration-samples must be >= 0" in error_line(capsys)


def test_evaluate_writes_place_metrics_a_table_and_error_pictures_and_compare_joins_reports(run, capsys, tmp_path):
    reports = []
    for name, point in (("geoscore", "geoscore"), ("single", "single")):
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", str(run / "run"), str(run / "test.parquet"), "--out", str(out), "--no-nll",
                     "--num-samples", "8", "--steps", "4", "--point", point]) == 0
        reports.append(out)
    capsys.readouterr()
    report = json.loads(reports[0].read_text())
    m = report["metrics"]
    assert 0 <= m["acc_city"] <= m["acc_region"] <= m["acc_country"] <= 1  # nested areas
    assert 0 <= m["precision_k3"] <= 1 and 0 <= m["coverage_k3"] <= 1
    assert m["n_country"] == 50
    for picture in report["pictures"].values():
        assert open(picture, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    md = reports[0].with_suffix(".md").read_text().splitlines()
    assert md[0].startswith("| model | GeoScore |") and len(md) == 3 and f"{m['geoscore']:.0f}" in md[2]
    table_path = tmp_path / "table.md"
    assert main(["compare", str(reports[0]), str(reports[1]), "--out", str(table_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == table_path.read_text().strip()
    rows = printed.strip().splitlines()
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["geoscore", "single"]
    assert "different datasets" not in printed  # both evaluated test.parquet


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert main(["compare", str(bad)]) == 2
    assert "not a globeflow evaluate report" in error_line(capsys)


def test_evaluate_takes_administrative_truth_from_dataset_columns(run, tmp_path):
    latlon, emb, _ = make_rows(20, seed=3)
    data = tmp_path / "osv.parquet"
    write_embeddings(data, latlon, emb, metadata={"country": ["ZZ"] * 20})  # a country no prediction can have
    out = tmp_path / "r.json"
    assert main(["evaluate", str(run / "run"), str(data), "--out", str(out), "--no-nll", "--num-samples", "8",
                 "--steps", "4"]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["acc_country"] == 0.0 and m["n_country"] == 20
    assert m["admin_truth"] == {"country": "dataset columns", "region": "geocoded", "sub_region": "geocoded",
                                "city": "geocoded"}


def test_baselines_share_the_report_format_and_have_closed_form_answers(run, tmp_path, capsys):
    import math

    # Retrieving from the evaluation set itself: every row finds itself, error 0.
    own = tmp_path / "self.json"
    assert main(["baseline", "knn", str(run / "test.parquet"), "--train", str(run / "test.parquet"),
                 "--out", str(own)]) == 0
    m = json.loads(own.read_text())["metrics"]
    assert m["geoscore"] == pytest.approx(5000.0) and m["acc_1km"] == 1.0 and m["acc_city"] == 1.0
    assert m["nll"] is None and "no density" in m["nll_note"]
    # Uniform guessing: E[5000 exp(-d/s)] over uniform d on the sphere = 2500 (1 + e^{-pi a}) / (1 + a^2),
    # a = R / s (about 130); 2,000 rows give a standard error of ~8.
    uni = tmp_path / "uniform.json"
    assert main(["baseline", "uniform", str(run / "train.parquet"), "--out", str(uni)]) == 0
    a = 6371.0 / 1492.7
    expected = 2500 * (1 + math.exp(-math.pi * a)) / (1 + a * a)
    assert json.loads(uni.read_text())["metrics"]["geoscore"] == pytest.approx(expected, abs=32)
    knn10 = tmp_path / "knn10.json"
    assert main(["baseline", "knn", str(run / "test.parquet"), "--train", str(run / "train.parquet"), "--k", "10",
                 "--out", str(knn10)]) == 0
    capsys.readouterr()
    assert main(["compare", str(own), str(knn10), str(uni)]) == 0
    table = capsys.readouterr().out
    assert "different datasets" in table  # uniform was scored on train.parquet
    assert main(["baseline", "knn", str(run / "test.parquet"), "--out", str(knn10)]) == 2
    assert "needs --train" in error_line(capsys)


def test_calibrate_writes_a_run_that_every_command_uses(run, capsys, tmp_path):
    new = tmp_path / "calibrated"
    assert main(["calibrate", str(run / "run"), str(run / "test.parquet"), "--out", str(new),
                 "--calibration-samples", "16", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 50 and set(summary["levels"]) == {"0.5", "0.9", "0.95"}
    assert (new / "checkpoint.safetensors").read_bytes() == (run / "run" / "checkpoint.safetensors").read_bytes()
    saved = json.loads((new / "calibration.json").read_text())
    assert saved["method"] == "conformal-hpd" and len(saved["ranks"]) == 50
    # evaluate reports the model's own coverage and the recalibrated one.
    out = tmp_path / "report.json"
    assert main(["evaluate", str(new), str(run / "test.parquet"), "--out", str(out), "--num-samples", "4",
                 "--steps", "4", "--calibration-samples", "16"]) == 0
    cal = json.loads(out.read_text())["metrics"]["calibration"]
    after = cal["after_recalibration"]
    assert after["recalibration"]["rows"] == 50 and len(after["map_levels"]) == 9
    # map answers: each region reported at p is the model's region at the recalibrated level.
    assert main(["map", str(new), str(run / "test.parquet"), "--out", str(tmp_path / "maps"), "--limit", "1",
                 *MAP_ARGS]) == 0
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "maps").glob("*.json")
                 if p.name != "map_settings.json"]
    levels = {r["level"]: r for r in report["credible_regions"]}
    assert all(r["calibrated"] for r in levels.values())
    assert levels[0.9]["map_level"] == summary["levels"]["0.9"]
    assert report["settings"]["calibration"]["rows"] == 50
    # export carries the recalibration over to the hub folder, bound to the exported weights.
    assert main(["export", str(new), str(tmp_path / "hub")]) == 0
    from globeflow.inference import Geolocator

    hub = Geolocator.load(tmp_path / "hub", device="cpu")
    assert hub.calibration is not None and hub.calibration.ranks == tuple(sorted(saved["ranks"]))
    # The run itself is not a new run; weights changed under the file are refused.
    capsys.readouterr()
    assert main(["calibrate", str(new), str(run / "test.parquet"), "--out", str(new)]) == 2
    assert "is the model input" in error_line(capsys)
    (new / "calibration.json").write_text(json.dumps({**saved, "weights_sha256": "0" * 64}))
    assert main(["map", str(new), str(run / "test.parquet"), "--out", str(tmp_path / "m2"), *MAP_ARGS]) == 2
    assert "fitted on other weights" in error_line(capsys)
