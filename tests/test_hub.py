"""Hub models by name, from the Hugging Face cache or local copies, offline; export and round trips.

Nothing is downloaded: a Hugging Face cache is laid out by hand (``refs/main`` -> ``snapshots/<commit>``)
with the published-layout fixture (``tests/fixtures/plonk_tiny``, written by the published package) and
a tiny CLIP tower standing in for StreetCLIP, and ``HF_HUB_OFFLINE=1`` makes ``huggingface_hub`` and
``transformers`` read that cache as they would after a real download.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from globeflow import geo
from globeflow.apps.cli import main
from globeflow.apps.export import export_model
from globeflow.data import write_embeddings
from globeflow.flow import GeoFlowModel, ModelConfig, SamplerConfig
from globeflow.flow.network import NetworkConfig, time_frequencies
from globeflow.inference import Geolocator, load_locator
from globeflow.io import CheckpointError
from globeflow.io.hub import PUBLISHED_MODELS, is_hub_spec
from globeflow.io.hub_layout import CONFIG_NAME, FREQS_KEY, GLOBEFLOW_NAME, PUBLISHED_CONFIG_KEYS, WEIGHTS_NAME

FIXTURE = Path(__file__).parent / "fixtures" / "plonk_tiny"
COND = 16  # the fixture's embedding dimension


def _cache_repo(cache: Path, repo_id: str, files: Path, commit: str = "0123abcd") -> Path:
    """Lay out ``files`` as huggingface_hub caches a downloaded repository; returns the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(files, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def _published_copy(tmp_path: Path, name: str = "copy") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copy(FIXTURE / f, folder / f)
    return folder


def test_published_names_map_to_repositories_types_and_encoders():
    assert len(PUBLISHED_MODELS) == 9
    for alias, m in PUBLISHED_MODELS.items():
        suffix = {"rfm": "", "fm": "_flow", "diffusion": "_diffusion"}[m.kind]
        assert m.repo_id.startswith("nicolas-dufour/PLONK_") and m.repo_id.endswith(suffix)
        assert alias.endswith(suffix.replace("_", "-")) and alias.startswith("plonk-")
        # StreetCLIP for OSV-5M, DINOv2 with registers for YFCC and iNat (the published pipeline's choice).
        assert m.encoder == ("streetclip" if "OSV_5M" in m.repo_id else "dinov2-vitl14-reg")
        assert is_hub_spec(alias) and is_hub_spec(f"{alias}:somewhere")
    assert not is_hub_spec("runs/demo") and not is_hub_spec("plonk-mars")


def test_published_name_loads_from_the_hub_cache_offline(hub_cache):
    snapshot = _cache_repo(hub_cache, "nicolas-dufour/PLONK_OSV_5M", FIXTURE)
    locator = load_locator("plonk-osv5m")
    assert isinstance(locator, Geolocator)
    assert (locator.config.kind, locator.encoder) == ("rfm", "streetclip")
    assert locator.source["commit"] == "0123abcd" and locator.source["repo_id"] == "nicolas-dufour/PLONK_OSV_5M"
    assert Path(locator.source["path"]) == snapshot / WEIGHTS_NAME
    io = load_file(str(FIXTURE / "reference_io.safetensors"))
    with torch.no_grad():
        out = locator.model.network(io["x"], io["gamma"], io["emb"])
    assert torch.allclose(out, io["output"], atol=1e-5, rtol=0)


def test_a_model_missing_offline_names_the_repository_the_cache_and_the_remedy(hub_cache):
    with pytest.raises(CheckpointError) as err:
        load_locator("plonk-yfcc")
    message = str(err.value)
    assert "nicolas-dufour/PLONK_YFCC" in message and "offline" in message and str(hub_cache) in message
    assert "plonk-yfcc:DIR" in message
    with pytest.raises(CheckpointError, match="hf:owner/name"):
        load_locator("hf:no-slash")


def test_local_copies_take_their_type_from_the_name_given_or_the_folder_name(tmp_path):
    flow = load_locator(f"plonk-inat-flow:{_published_copy(tmp_path)}")
    assert (flow.config.kind, flow.encoder) == ("fm", "dinov2-vitl14-reg")
    named = load_locator(_published_copy(tmp_path, "PLONK_OSV_5M_diffusion"))
    assert (named.config.kind, named.encoder) == ("diffusion", "streetclip")
    with pytest.raises(CheckpointError) as err:
        load_locator(_published_copy(tmp_path, "anonymous"))
    assert "model type" in str(err.value) and "plonk-osv5m:" in str(err.value)
    with pytest.raises(CheckpointError, match="absent: no such folder"):
        load_locator(f"plonk-osv5m:{tmp_path / 'absent'}")
    with pytest.raises(CheckpointError, match="not a model name; published models: plonk-osv5m"):
        load_locator("plonk-osv")


def test_published_folder_mistakes_each_get_their_own_message(tmp_path, monkeypatch):
    # Issue 16, defect 14: a typo, "~", a missing folder / config.json / model.safetensors, a
    # pytorch_model.bin-only folder and a _flow folder under the rfm name all failed alike or not at all.
    with pytest.raises(CheckpointError, match=r"plonk-osv: not a published model name \(did you mean plonk-osv5m\?\)"):
        load_locator(f"plonk-osv:{FIXTURE}")
    monkeypatch.setenv("HOME", str(tmp_path))
    home_copy = _published_copy(tmp_path, "mine")
    assert load_locator(f"plonk-osv5m:~/{home_copy.name}").config.kind == "rfm"
    no_config, no_weights, pickle_only = (_published_copy(tmp_path, n) for n in ("nc", "nw", "pk"))
    (no_config / "config.json").unlink()
    (no_weights / "model.safetensors").unlink()
    (pickle_only / "model.safetensors").rename(pickle_only / "pytorch_model.bin")
    for folder, message in ((no_config, "no config.json"), (no_weights, "no model.safetensors"),
                            (pickle_only, "holds pytorch_model.bin but no model.safetensors: a pickle")):
        with pytest.raises(CheckpointError, match=message):
            load_locator(f"plonk-osv5m:{folder}")
    flow = _published_copy(tmp_path, "PLONK_OSV_5M_flow")
    with pytest.raises(CheckpointError, match="a copy of nicolas-dufour/PLONK_OSV_5M_flow \\(a fm model\\), not of "
                                              "nicolas-dufour/PLONK_OSV_5M \\(rfm\\): pass --model plonk-osv5m-flow:"):
        load_locator(f"plonk-osv5m:{flow}")
    # A network that does not take the named encoder's embeddings is flagged when it loads.
    with pytest.warns(UserWarning, match="takes 16-d embeddings, but plonk-osv5m's encoder \\(streetclip\\) gives 1024-d"):
        load_locator(f"plonk-osv5m:{FIXTURE}")


def _tiny_streetclip(folder: Path) -> None:
    """A tiny full CLIPModel (StreetCLIP ships as one) with a COND-wide vision tower."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    text = transformers.CLIPTextConfig(hidden_size=COND, intermediate_size=24, num_hidden_layers=1,
                                       num_attention_heads=2, vocab_size=50)
    vision = transformers.CLIPVisionConfig(hidden_size=COND, intermediate_size=24, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=32, patch_size=8)
    config = transformers.CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict())
    transformers.CLIPModel(config).save_pretrained(folder)


def test_predict_photos_with_a_published_name_end_to_end(hub_cache, tmp_path, photos, capsys):
    """``globeflow predict --model plonk-osv5m photos/``: the model and its encoder (StreetCLIP) both come
    from the hub cache; the answers equal those of the same files passed as local folders."""
    clip = tmp_path / "streetclip"
    _tiny_streetclip(clip)
    snapshot = _cache_repo(hub_cache, "nicolas-dufour/PLONK_OSV_5M", FIXTURE)
    _cache_repo(hub_cache, "geolocal/StreetCLIP", clip)
    settings = ["--num-samples", "16", "--steps", "2", "--top-k", "1"]
    by_name, local = tmp_path / "by_name.csv", tmp_path / "local.csv"
    assert main(["predict", "--model", "plonk-osv5m", str(photos), "--out", str(by_name), *settings]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["photos"] == 4 and summary["skipped_images"] == 1 and summary["encoder"] == "streetclip"
    assert main(["predict", f"plonk-osv5m:{snapshot}", str(photos), "--out", str(local), "--encoder-path", str(clip),
                 *settings]) == 0
    rows, expected = list(csv.DictReader(by_name.open())), list(csv.DictReader(local.open()))
    assert [r["id"] for r in rows] == ["gps", "img0", "img1", "img2"] and rows == expected


def test_evaluate_with_the_published_protocol(tmp_path, capsys):
    """``--protocol published``: one sample at guidance 2 with the published Euler sampler (250 steps)."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(12, COND, generator=g)
    latlon = torch.stack((torch.rand(12, generator=g) * 120 - 60, torch.rand(12, generator=g) * 360 - 180), -1)
    data = write_embeddings(tmp_path / "test.parquet", latlon, emb)
    spec = f"plonk-osv5m:{FIXTURE}"
    out = tmp_path / "report.json"
    assert main(["evaluate", "--model", spec, str(data), "--out", str(out), "--protocol", "published",
                 "--no-nll"]) == 0
    report = json.loads(out.read_text())
    assert report["sampler"] == {"method": "euler", "steps": 250, "guidance": 2.0, "step": "published"}
    assert report["predict"]["strategy"] == "single" and report["checkpoint"]["alias"] == "plonk-osv5m"
    # The same predictions as the published sampler's settings spelled out by hand.
    locator = load_locator(spec)
    model: GeoFlowModel = locator.model
    xyz = model.sample(emb, 1, SamplerConfig(method="euler", steps=250, guidance=2.0, step="published"),
                       generator=torch.Generator().manual_seed(0))
    expected = geo.xyz_to_latlon(xyz[:, 0].double())
    got = locator.predict(emb, strategy="single", protocol="published", seed=0)
    assert torch.allclose(got, expected, atol=1e-9)
    assert report["metrics"]["n"] == 12
    with pytest.raises(ValueError, match="unknown sampling protocol"):
        locator.sampler(protocol="paper")


def _own_model(tmp_path: Path, kind: str = "fm") -> Path:
    torch.manual_seed(5)
    # A legacy time embedding ("endpoint"): the export must carry it to the published class too.
    net = NetworkConfig(cond_dim=COND, dim=24, depth=2, time_frequencies="endpoint")
    model = GeoFlowModel(ModelConfig(net, kind=kind))
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(0.05 * torch.randn_like(p))  # zero-initialised layers too, so outputs differ by weight
    run = tmp_path / f"run-{kind}"
    Geolocator(model, device="cpu", encoder="streetclip").save(run)
    return run


def test_export_writes_the_published_layout_and_round_trips(tmp_path, hub_cache, capsys):
    run = _own_model(tmp_path)
    g = torch.Generator().manual_seed(1)
    data = write_embeddings(tmp_path / "val.parquet", torch.tensor([[48.0, 2.0], [-33.0, 151.0], [40.0, -74.0]]),
                            torch.randn(3, COND, generator=g))
    report = tmp_path / "val-report.json"
    assert main(["evaluate", str(run), str(data), "--out", str(report), "--num-samples", "8", "--steps", "2"]) == 0
    out = tmp_path / "export" / "my-model"
    assert main(["export", str(run), str(out), "--report", str(report)]) == 0
    files = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"]
    assert files == ["README.md", CONFIG_NAME, GLOBEFLOW_NAME, WEIGHTS_NAME]
    # config.json holds exactly the published constructor arguments (the published class takes them all).
    config = json.loads((out / CONFIG_NAME).read_text())
    assert sorted(config) == sorted(PUBLISHED_CONFIG_KEYS) and config["cond_dim"] == COND
    weights = load_file(str(out / WEIGHTS_NAME))
    assert torch.equal(weights[FREQS_KEY], time_frequencies(24 // 4, endpoint=True))
    # The card: hub metadata and the evaluation table with the report's GeoScore.
    card = (out / "README.md").read_text()
    geoscore = json.loads(report.read_text())["metrics"]["geoscore"]
    assert card.startswith("---\nlibrary_name: globeflow") and f"| val-report | {geoscore:.0f} |" in card
    from globeflow.io import file_sha256
    meta = json.loads((out / GLOBEFLOW_NAME).read_text())
    assert meta["source"]["sha256"] == file_sha256(run / "checkpoint.safetensors") and meta["encoder"] == "streetclip"
    # Pulled back as a folder and from the hub cache: same type, encoder and function.
    original = load_locator(run)
    emb, gamma = torch.randn(5, COND, generator=g), torch.rand(5, generator=g)
    x = torch.nn.functional.normalize(torch.randn(5, 3, generator=g), dim=-1)
    _cache_repo(hub_cache, "me/my-model", out)
    for spec in (out, "hf:me/my-model"):
        loaded = load_locator(spec)
        assert loaded.config == original.config and loaded.encoder == "streetclip"
        with torch.no_grad():
            assert torch.equal(loaded.model.network(x, gamma, emb), original.model.network(x, gamma, emb))
    assert load_locator("hf:me/my-model").source["revision"] == "main"


def test_export_refuses_a_report_of_other_weights(tmp_path):
    run = _own_model(tmp_path)
    report = tmp_path / "other.json"
    report.write_text(json.dumps({"metrics": {"geoscore": 4000.0, "n": 10}, "checkpoint": {"sha256": "ab" * 32}}))
    with pytest.raises(ValueError, match="other.json: evaluated weights with sha256 ababab"):
        export_model(run, tmp_path / "exp", reports=[report])
    assert "| other | 4000 |" in (export_model(run, tmp_path / "exp", reports=[report], any_report=True)
                                  / "README.md").read_text()


def test_mode_and_grid_refuse_a_sampler_protocol():
    locator = load_locator(f"plonk-osv5m:{FIXTURE}")
    for strategy in ("mode", "grid"):
        with pytest.raises(ValueError, match="likelihood ODE"):
            locator.predict(torch.zeros(1, COND), strategy=strategy, protocol="published")


def test_export_inconsistent_folder_is_an_error(tmp_path):
    out = tmp_path / "exp"
    export_model(_own_model(tmp_path), out)
    config = json.loads((out / CONFIG_NAME).read_text())
    (out / CONFIG_NAME).write_text(json.dumps({**config, "dim": 32}))
    with pytest.raises(CheckpointError) as err:
        load_locator(out)
    assert GLOBEFLOW_NAME in str(err.value) and CONFIG_NAME in str(err.value)


def test_cli_model_argument_errors(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "data.parquet"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "give the model and the data" in capsys.readouterr().err
