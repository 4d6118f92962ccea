"""The experiments report (``benchmarks/experiments.py``) on its tiny configuration: every table has its
rows, the guided RFM densities are normalised at every guidance scale, a rerun from nothing gives
the same numbers, and a work folder belongs to one configuration."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from globeflow.apps.experiments import EXPERIMENTS, TINY, run_experiments
from globeflow.apps.experiments.stats import geoscores, mean_se, measurable, paired
from globeflow.apps.experiments.steps import SOLVERS

FLOWS = ("rfm", "fm", "diffusion")
SPLITS = ("known-answer/test", "blue-marble/unseen", "blue-marble/random")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("experiments")
    out = run_experiments(TINY, work / "work", report=work / "report.md", progress=False,
                          command="python benchmarks/experiments.py --config tiny")
    return work, out


def test_every_table_has_its_rows(tiny):
    work, out = tiny
    r = out["results"]
    assert list(r) == list(EXPERIMENTS)
    geometry = r["geometry"]["splits"]
    assert tuple(geometry) == SPLITS
    for s in geometry.values():
        assert tuple(s["rows"]) == FLOWS and s["rows"]["rfm"]["nll"] is not None
        assert s["rows"]["fm"]["nll"] is None and s["rows"]["diffusion"]["calibration_gap"] is None
    classes = geometry["known-answer/test"]["classes"]
    assert [c["class"] for c in classes] == list(range(8)) and sum(c["n"] for c in classes) == TINY.known_answer.test_rows
    for s in r["guidance"]["splits"].values():
        for kind in FLOWS:
            assert [row["w"] for row in s["models"][kind]["rows"]] == list(TINY.guidance)
    for s in r["projection"]["splits"].values():
        assert {k: list(v) for k, v in s["models"].items()} == {k: ["as they land", "projected every step"]
                                                                for k in ("fm", "diffusion")}
        for modes in s["models"].values():
            assert modes["projected every step"]["off_sphere_max"] < 1e-6  # on the sphere at every step
    for s in r["mixtures"]["splits"].values():
        assert sorted(int(k) for k in s["rows"]) == list(TINY.components)
    for kind, m in r["steps"]["models"].items():
        assert [(x["method"], x["steps"]) for x in m["rows"]] == [(s, n) for s in SOLVERS[kind] for n in TINY.steps]
        # The reference solve is the sweep's most accurate: zero distance from itself.
        ref = [x for x in m["rows"] if f"{x['method']} {x['steps']} steps" == m["reference"]]
        assert len(ref) == 1 and ref[0]["km_from_converged"] < 1e-6

    # The per-row numbers behind the tables are the evaluation harness's own.
    for kind in FLOWS:
        ev = json.loads((work / "work" / "results" / "evaluations" / f"known-answer-test-{kind}.json").read_text())
        ev = ev["value"]
        assert np.mean(geoscores(ev["errors_km"])) == pytest.approx(ev["metrics"]["geoscore"], rel=1e-9)
        assert len(ev["errors_km"]) == TINY.known_answer.test_rows
        if kind == "rfm":
            assert -np.mean(ev["log_prob"]) == pytest.approx(ev["metrics"]["nll"], rel=1e-12)

    md = (work / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "[C" in line]
    expected = (3 * 3 + 1 + 8  # geometry: three splits of three models, the truth row, eight classes
                + 3 * 3 * len(TINY.guidance) + 3 * 2 * 2 + 3 * (len(TINY.components) + 1)
                + sum(len(SOLVERS[k]) * len(TINY.steps) for k in FLOWS))
    assert len(rows) == expected
    # Every row names its command, and every command is listed.
    listed = dict(re.findall(r"^- (C\d+): `(.+)`$", md, flags=re.M))
    assert {k for line in rows for k in re.findall(r"\[(C\d+)\]", line)} == set(listed)
    assert all(c.startswith("python benchmarks/experiments.py --config tiny --only ") for c in listed.values())
    answers = md[md.index("## Answers"):md.index("## 1.")]
    assert len(re.findall(r"^\d\. \*\*", answers, flags=re.M)) == 5
    for picture in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (work / picture).stat().st_size > 1000
    assert json.loads((work / "report.json").read_text())["results"] == json.loads(json.dumps(r))


def test_guided_rfm_densities_integrate_to_one_at_every_scale(tiny):
    _, out = tiny
    for s in out["results"]["guidance"]["splits"].values():
        rows = s["models"]["rfm"]["rows"]
        assert len(rows) == len(TINY.guidance)
        for row in rows:
            # On the equal-area grid (the tiny model's densities are smooth at its cells' size) ...
            assert len(row["mass"]) == TINY.mass_rows
            assert all(abs(m - 1) < 0.01 for m in row["mass"]), (row["w"], row["mass"])
            # ... and by importance sampling, which needs no grid: 1 within 4 standard errors.
            assert all(abs(z - 1) < 4 * se and se < 0.1 for z, se in row["mass_is"]), (row["w"], row["mass_is"])
            assert math.isfinite(row["nll"])


def test_a_rerun_from_nothing_gives_the_same_numbers(tiny, tmp_path):
    _, out = tiny
    again = run_experiments(TINY, tmp_path / "work", report=tmp_path / "report.md", only=("guidance", "steps"),
                            tasks=("known-answer",), progress=False)
    first = out["results"]["guidance"]["splits"]["known-answer/test"]
    assert again["results"]["guidance"]["splits"]["known-answer/test"] == first
    def strip(m):  # times differ between runs; every number does not
        return [{k: v for k, v in x.items() if k != "seconds_per_1000"} for x in m["rows"]]

    for kind in FLOWS:
        assert strip(again["results"]["steps"]["models"][kind]) == strip(out["results"]["steps"]["models"][kind])


def test_a_work_folder_belongs_to_one_configuration(tiny):
    work, _ = tiny
    other = dataclasses.replace(TINY, seed=1)
    with pytest.raises(ValueError, match=r"holds the experiments of another configuration"):
        run_experiments(other, work / "work", report=work / "other.md", progress=False)
    with pytest.raises(ValueError, match=r"unknown experiment or task 'gudiance'"):
        run_experiments(TINY, work / "work", report=work / "other.md", only=("gudiance",), progress=False)


def test_statistics_of_the_answers():
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)  # std (ddof 1) sqrt(2), over sqrt(2)
    x = np.arange(10.0)
    assert paired(x + 5, x) == (5.0, 0.0)  # a constant shift is measured exactly
    assert measurable(0.3, 0.1) and not measurable(0.2, 0.1)
    with pytest.raises(ValueError, match="same rows"):
        paired([1.0], [1.0, 2.0])
