"""Evidence beyond one photo: fusing photos of one place (exact against the product formula on the
known-answer task's true densities) and constraints (masses, polygon tests, closed-form areas)."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
import torch
from helpers import random_geolocator

from globeflow import geo
from globeflow.apps.cli import main
from globeflow.apps.tasks.known_answer import default_task
from globeflow.apps.tasks.true_locator import TrueLocator
from globeflow.data import write_embeddings
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.geo import EARTH_RADIUS_KM, healpix, places
from globeflow.inference import Geolocator
from globeflow.inference.answers import AnswerConfig, answer_embeddings
from globeflow.inference.density import DensityMap, MapConfig
from globeflow.inference.evidence import (Constraints, allowed_area, constrain_map, fuse, fused_map,
                                          photo_weight, sample_map)

TASK = default_task()
TRUE = TrueLocator(TASK)
FAST = AnswerConfig(num_samples=128, map=MapConfig(nside=32))


def _rows(cls: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return TASK.class_vectors()[cls] + TASK.noise * torch.randn(n, TASK.embed_dim, generator=g)


def _product(points: np.ndarray, emb: torch.Tensor) -> np.ndarray:
    """``sum_i log p(x | e_i) - (n - 1) log p(x)`` with the task's closed-form densities."""
    n = len(emb)
    cond = torch.cat((emb, torch.zeros(1, TASK.embed_dim)))
    v = TRUE._log_density(torch.from_numpy(np.broadcast_to(points, (n + 1, *points.shape)).copy()), cond)
    return (v[:n].sum(0) - (n - 1) * v[n]).numpy()


@pytest.mark.parametrize("cls, n", [(3, 2), (2, 4), (0, 3)])
def test_fused_map_is_the_product_formula_renormalised(cls, n):
    emb = _rows(cls, n)
    dmap, components, log_z = fused_map(TRUE, emb, AnswerConfig(map=MapConfig(nside=64)))
    fine = 128
    xyz = np.stack(healpix.pix2vec(fine, np.arange(healpix.num_cells(fine)), nest=True), -1)
    raw = _product(xyz, emb)
    ref_z = float(torch.logsumexp(torch.from_numpy(raw), 0)) + math.log(healpix.cell_area(fine))
    cells = np.argsort(-dmap.log_density, kind="stable")[:1000]
    ref = _product(np.stack(healpix.pix2vec(64, cells, nest=True), -1), emb) - ref_z
    assert np.abs(dmap.log_density[cells] - ref).mean() < 0.05
    assert (dmap.evaluated_nside[cells] == 64).all()  # the densest cells are exact, none interpolated
    assert dmap.mass() == pytest.approx(1.0, abs=1e-9)
    assert log_z == pytest.approx(ref_z, abs=0.05)
    # Each photo's exact log-density is kept on the grid: the components give the map back.
    assert np.allclose(components[:, :n].sum(1) - (n - 1) * components[:, n] - log_z, dmap.log_density)


def test_fully_redundant_photos_fuse_to_their_geometric_mean():
    one = _rows(7, 1)
    copies = one.repeat(3, 1)
    dmap, _, _ = fused_map(TRUE, copies, FAST, redundancy=1.0)  # w = 1/3, prior weight 0: the photo itself
    xyz = np.stack(healpix.pix2vec(32, np.arange(healpix.num_cells(32)), nest=True), -1)
    own = TRUE._log_density(torch.from_numpy(xyz[None]), one).numpy()[0]
    own -= float(torch.logsumexp(torch.from_numpy(own), 0)) + math.log(healpix.cell_area(32))
    exact = dmap.evaluated_nside == 32
    diff = dmap.log_density[exact] - own[exact]
    # Exact cells: the photo's own density, up to the grid normaliser (interpolated cells elsewhere).
    assert np.ptp(diff) < 1e-9 and abs(diff.mean()) < 0.02
    assert photo_weight(4, 0.0) == 1.0 and photo_weight(4, 1.0) == 0.25 and photo_weight(3, 0.5) == 0.5
    with pytest.raises(ValueError, match="redundancy of the photos must be in"):
        photo_weight(2, 1.5)


def test_photos_that_point_to_different_places_contradict_each_other():
    paris, tokyo = _rows(0, 1), _rows(3, 1, seed=1)
    agree = fuse(TRUE, torch.cat((_rows(2, 1), _rows(2, 1, seed=2))), config=FAST)
    disagree = fuse(TRUE, torch.cat((paris, tokyo)), config=FAST, sources=["paris.jpg", "tokyo.jpg"])
    assert not any(c["contradicts"] for c in agree.evidence["contributions"])
    assert all(c["contradicts"] for c in disagree.evidence["contributions"])
    assert any("paris.jpg contradicts" in w for w in disagree.warnings)
    assert disagree.source == "paris.jpg + tokyo.jpg"


def test_a_photos_information_is_the_divergence_from_the_fusion_without_it():
    emb = torch.cat((_rows(3, 1), _rows(2, 1)))  # Tokyo/Mumbai/Cairo, Sydney/Santiago: overlap only in tails
    one = torch.cat((_rows(3, 1), _rows(3, 1, seed=5)))
    answer = fuse(TRUE, one, config=FAST)
    dmap = answer.density_map
    # Without photo 0, the fusion of two is photo 1's own density: KL(fused || q_1) on the grid.
    xyz = np.stack(healpix.pix2vec(dmap.nside, np.arange(dmap.log_density.size), nest=True), -1)
    q1 = TRUE._log_density(torch.from_numpy(xyz[None]), one[1:]).numpy()[0]
    q1 -= float(torch.logsumexp(torch.from_numpy(q1), 0)) + math.log(dmap.cell_area)
    p = dmap.probabilities()
    kl = float((p * (dmap.log_density - q1)).sum()) / math.log(2)
    assert answer.evidence["contributions"][0]["information_bits"] == pytest.approx(kl, rel=1e-6, abs=1e-9)
    assert fuse(TRUE, emb, config=FAST).evidence["photos"] == 2


def test_fused_truth_is_the_exact_density_at_the_place():
    emb = _rows(2, 3)
    t = np.array([-33.87, 151.21])
    answer = fuse(TRUE, emb, config=FAST, truth=t)
    _, _, log_z = fused_map(TRUE, emb, FAST)
    expected = _product(geo.latlon_to_xyz(torch.tensor(t)).numpy()[None], emb)[0] - log_z
    assert answer.truth.log_density == pytest.approx(expected, abs=1e-9)
    assert 0.0 <= answer.truth.credible_level <= 1.0


@pytest.fixture(scope="module")
def geolocator():
    return random_geolocator()


SMALL = AnswerConfig(num_samples=64, steps=4, solver="rk4", error_check=4,
                     map=MapConfig(nside=16, start_nside=4, max_cells=32))


def test_fusing_one_photo_is_exactly_its_own_answer(geolocator):
    emb = np.array([[0.5, -1.0, 0.3]], dtype=np.float32)
    alone = answer_embeddings(geolocator, emb, truth=np.array([[10.0, 20.0]]), config=SMALL, seed=3)[0]
    fused = fuse(geolocator, emb, config=SMALL, seed=3, truth=np.array([10.0, 20.0]))
    assert fused.to_dict() == alone.to_dict()
    assert np.array_equal(fused.density_map.log_density, alone.density_map.log_density)


def test_fusing_refuses_embeddings_of_the_wrong_size_or_with_nan(geolocator):
    with pytest.raises(ValueError, match=r"shape \(n, 3\) for this model, got \(2, 6\)"):
        fuse(geolocator, np.zeros((2, 6), dtype=np.float32), config=SMALL)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fuse(geolocator, np.array([[0.1, 0.2, np.nan], [0.0, 0.1, 0.2]], dtype=np.float32), config=SMALL)


def test_a_model_without_guidance_dropout_has_no_prior_to_divide_out():
    m = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=3, dim=8, depth=1), cond_drop=0.0))
    with pytest.raises(ValueError, match="cond_drop 0"):
        fuse(Geolocator(m, device="cpu"), np.zeros((2, 3), dtype=np.float32), config=SMALL)


# --- constraints ---------------------------------------------------------------------------------------


def _fused_north_america() -> object:
    return fuse(TRUE, _rows(4, 2), config=AnswerConfig(num_samples=256, map=MapConfig(nside=32)),
                constraints=Constraints(within=("MX",)))


def test_a_constraint_to_one_country_keeps_every_sample_inside_it():
    answer = _fused_north_america()
    assert answer.density_map.mass() == pytest.approx(1.0, abs=0.01)
    assert set(places.country_codes(answer.samples)) == {"MX"}
    assert places.country_codes(np.array([[answer.best_guess.lat, answer.best_guess.lon]]))[0] == "MX"
    assert [(c.key, c.probability) for c in answer.countries] == [("MX", 1.0)]
    # Every place is inside too (a border cell's centre may not be), and none sits where the density is 0.
    assert answer.top_k and {t.country_code for t in answer.top_k} == {"MX"}
    assert all(t.probability > 0 for t in answer.top_k)
    prior = answer.evidence["prior_mass"]
    unconstrained = fuse(TRUE, _rows(4, 2), config=AnswerConfig(num_samples=256, map=MapConfig(nside=32)))
    # The prior mass is what the unconstrained map gave the allowed area (its samples' share, roughly).
    share = float(np.mean(places.country_codes(unconstrained.samples) == "MX"))
    assert prior == pytest.approx(share, abs=0.06)


def test_a_constraint_with_zero_prior_mass_is_a_clear_error():
    dmap = DensityMap(np.where(np.arange(768) == 0, 0.0, -1e6), np.full(768, 8))
    with pytest.raises(ValueError, match="leave no probability"):
        constrain_map(dmap, Constraints(within=("AU",)))
    with pytest.raises(ValueError, match="exclude each other"):
        Constraints(on_land=True, at_sea=True)
    with pytest.raises(ValueError, match="no country has the code QQ"):
        allowed_area(Constraints(within=("QQ",)), 8)


def test_allowed_areas_match_closed_forms():
    s, w, n, e = 30.0, -10.0, 50.0, 25.0
    box = allowed_area(Constraints(bbox=(s, w, n, e)), 32)
    expected = math.radians(e - w) * (math.sin(math.radians(n)) - math.sin(math.radians(s)))
    assert box.fraction.sum() * healpix.cell_area(32) == pytest.approx(expected, rel=0.01)
    lat0, lon0, lo, hi = 10.0, 170.0, 300.0, 800.0  # a ring across the antimeridian
    ring = allowed_area(Constraints(distance_band=(lat0, lon0, lo, hi)), 32)
    cap = 2 * math.pi * (math.cos(lo / EARTH_RADIUS_KM) - math.cos(hi / EARTH_RADIUS_KM))
    assert ring.fraction.sum() * healpix.cell_area(32) == pytest.approx(cap, rel=0.01)
    # A tiny country (Luxembourg, ~2,600 km^2) lies inside one ~200 km cell: still found.
    lux = allowed_area(Constraints(within=("LU",)), 32)
    assert 0 < lux.fraction.sum() * healpix.cell_area_km2(32) < 6000


def test_samples_of_a_map_follow_its_cell_probabilities():
    rng = np.random.default_rng(0)
    logp = rng.normal(size=768) * 2
    dmap = DensityMap(logp - math.log(np.exp(logp).sum() * healpix.cell_area(8)), np.full(768, 8))
    ll, lp = sample_map(dmap, 20000, rng)
    counts = np.bincount(dmap.latlon_cells(ll), minlength=768)
    p = dmap.probabilities()
    assert np.abs(counts / 20000 - p).max() < 4 * np.sqrt(p.max() / 20000)
    assert np.allclose(lp, dmap.log_density[dmap.latlon_cells(ll)])


def test_geojson_and_region_constraints(tmp_path):
    area = tmp_path / "area.geojson"
    ring = [[0.0, 40.0], [10.0, 40.0], [10.0, 50.0], [0.0, 50.0], [0.0, 40.0]]
    area.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    c = Constraints(within_geojson=str(area))
    assert c.allows(np.array([[45.0, 5.0], [45.0, 15.0]])).tolist() == [True, False]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "Point", "coordinates": [0, 0]}))
    with pytest.raises(ValueError, match="bad.geojson: feature 0 is a Point"):
        Constraints(within_geojson=str(bad))
    with pytest.raises(ValueError, match="--within-region: no region has the key 'Bavria, DE'"):
        Constraints(within_regions=("Bavria, DE",)).check_known()
    key = places.area_keys(np.array([[48.14, 11.58]]), "region")[0]  # Munich
    Constraints(within_regions=(key,)).check_known()
    assert Constraints(within_regions=(key,)).allows(np.array([[48.14, 11.58], [52.52, 13.40]])).tolist() == [
        True, False]


# --- the command line ----------------------------------------------------------------------------------


def _run_and_data(tmp_path):
    torch.manual_seed(0)
    model = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=3, dim=16, depth=1)))
    run = tmp_path / "run"
    Geolocator(model, device="cpu").save(run)
    rng = np.random.default_rng(0)
    latlon = np.array([[48.0, 2.0]] * 3 + [[-33.0, 151.0]] * 2) + rng.normal(scale=0.1, size=(5, 2))
    emb = rng.normal(size=(5, 3)).astype(np.float32)
    data = write_embeddings(tmp_path / "rows.parquet", latlon, emb, ids=[f"r{i}" for i in range(5)],
                            metadata={"place": ["paris", "paris", "paris", "sydney", "sydney"]})
    return run, data


FAST_CLI = ["--num-samples", "32", "--steps", "4", "--nside", "8"]


def test_predict_group_by_gives_one_fused_answer_per_place(tmp_path, capsys):
    run, data = _run_and_data(tmp_path)
    out = tmp_path / "groups.csv"
    assert main(["predict", str(run), str(data), "--out", str(out), "--group-by", "place", "--within", "FR,AU",
                 *FAST_CLI]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["groups"] == 2 and summary["rows"] == 5
    rows = list(csv.DictReader(out.open()))
    assert [(r["group"], r["photos"]) for r in rows] == [("paris", "3"), ("sydney", "2")]
    for r in rows:
        assert places.country_codes(np.array([[float(r["lat"]), float(r["lon"])]]))[0] in ("FR", "AU")
        assert 0 < float(r["prior_mass"]) <= 1
        assert float(r["true_lat"]) == pytest.approx(48.0 if r["group"] == "paris" else -33.0, abs=0.5)


@pytest.mark.parametrize("args, message", [
    (["--group-by", "nope"], "--group-by nope: .* has no such column"),
    (["--fuse", "--group-by", "place"], "exclude each other"),
    (["--within", "France"], "'FRANCE' is not an ISO 3166 alpha-2 country code"),
    (["--bbox", "1,2,3"], "--bbox needs SOUTH,WEST,NORTH,EAST"),
    (["--within", "QQ"], "--within: no country has the code QQ"),
])
def test_predict_evidence_options_refuse_bad_input_in_one_line(tmp_path, capsys, args, message):
    run, data = _run_and_data(tmp_path)
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "o.csv"), *args, *FAST_CLI]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "o.csv").exists()


def test_a_list_option_that_does_not_parse_names_the_option(tmp_path, capsys):
    run, data = _run_and_data(tmp_path)
    with pytest.raises(SystemExit):
        main(["predict", str(run), str(data), "--out", str(tmp_path / "o.csv"), "--bbox", "a,b"])
    assert "argument --bbox: expected comma-separated numbers, got 'a,b'" in capsys.readouterr().err


def test_map_with_constraints_records_them_and_refuses_a_resume_without(tmp_path, capsys):
    run, data = _run_and_data(tmp_path)
    out = tmp_path / "maps"
    common = ["map", str(run), str(data), "--out", str(out), "--num-samples", "32", "--steps", "4",
              "--solver", "rk4", "--nside", "8", "--start-nside", "4", "--error-check", "2", "--limit", "2"]
    assert main([*common, "--on-land"]) == 0
    report = json.loads((out / "r0.json").read_text())
    assert report["evidence"]["constraints"] == {"on_land": True}
    assert places.SEA_KEY not in {c["key"] for c in report["countries"]}
    capsys.readouterr()
    assert main(common) == 2
    assert "constraints differ" in capsys.readouterr().err


def test_predict_fuse_over_a_folder_of_photos_and_group_by_a_labels_column(tmp_path, photos, capsys):
    torch.manual_seed(0)
    run = tmp_path / "photo-run"
    Geolocator(GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=1280, dim=16, depth=1))), device="cpu",
               encoder="efficientnet-lite0@32").save(run)
    out = tmp_path / "fused.geojson"
    assert main(["predict", str(run), str(photos), "--out", str(out), "--fuse", *FAST_CLI]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["groups"] == 1 and summary["photos"] == 4 and summary["skipped_images"] == 1
    feature, = json.loads(out.read_text())["features"]
    contributions = feature["properties"]["evidence"]["contributions"]
    assert sorted(c["source"].split("/")[-1] for c in contributions) == ["gps.jpg", "img0.jpg", "img1.jpg", "img2.jpg"]
    labels = tmp_path / "labels.csv"
    labels.write_text("id,lat,lon,scene\nimg0,48.85,2.35,paris\nimg1,48.86,2.34,paris\nimg2,-33.9,151.2,sydney\n")
    table = tmp_path / "scenes.csv"
    assert main(["predict", str(run), str(photos / "img0.jpg"), str(photos / "img1.jpg"), str(photos / "img2.jpg"),
                 "--labels", str(labels), "--group-by", "scene", "--out", str(table), *FAST_CLI]) == 0
    rows = list(csv.DictReader(table.open()))
    assert [(r["group"], r["photos"]) for r in rows] == [("paris", "2"), ("sydney", "1")]
    assert float(rows[0]["true_lat"]) == pytest.approx(48.855, abs=0.01)
