"""Behaviour kept exactly: predict, map, log-prob, evaluate, photo answers and the web server's answer
on committed models and data give the outputs recorded in ``tests/fixtures/golden/expected`` (see
``tests/golden.py``; ``tools/make_golden.py --expected`` re-records them after a deliberate change)."""

from __future__ import annotations

import json

import golden
import pytest


@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_output_equals_the_recorded_one(case, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = json.loads((golden.EXPECTED / f"{case}.json").read_text())
    golden.assert_matches(golden.run_case(case, tmp_path), expected, case)


def test_the_comparison_catches_a_changed_answer():
    expected = {"best_guess": {"lat": 10.0, "method": "m"}, "rows": [1, 2], "density": {"data": "AAEC"}}
    golden.assert_matches({"best_guess": {"lat": 10.0 + 1e-7, "method": "m"}, "rows": [1, 2],
                           "density": {"data": "AAED"}}, expected)  # within tolerance; one byte off by 1
    for changed, message in (({"best_guess": {"lat": 10.001, "method": "m"}}, "best_guess.lat"),
                             ({"best_guess": {"lat": 10.0, "method": "n"}}, "best_guess.method"),
                             ({"rows": [1]}, "rows"), ({"density": {"data": "AAEF"}}, "density bytes"),
                             ({"best_guess": {"lat": 10.0}}, "keys differ")):
        with pytest.raises(AssertionError, match=message):
            golden.assert_matches({**expected, **changed}, expected)
