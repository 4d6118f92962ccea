"""The published network's layout and function, against outputs recorded with the published package.

``tests/fixtures/plonk_tiny`` was written by ``tools/plonk_fixture.py`` with ``diff-plonk`` 0.4: a tiny
randomly initialised published ``GeoAdaLNMLP`` saved by ``save_pretrained`` and its outputs on fixed
inputs. globeflow must load it without any key or shape mismatch and compute the same function.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from globeflow.inference import load_published_network, read_published_config
from globeflow.io import CheckpointError

FIXTURE = Path(__file__).parent / "fixtures" / "plonk_tiny"


def test_published_network_outputs_match_the_published_package():
    net = load_published_network(FIXTURE)
    io = load_file(str(FIXTURE / "reference_io.safetensors"))
    with torch.no_grad():
        out = net(io["x"], io["gamma"], io["emb"])
    assert out.shape == io["output"].shape
    assert torch.allclose(out, io["output"], atol=1e-5, rtol=0)
    # The fixture is not trivially zero: its outputs vary across rows.
    assert io["output"].std() > 0.1


def test_config_is_read_from_the_published_fields():
    c = read_published_config(FIXTURE)
    raw = json.loads((FIXTURE / "config.json").read_text())
    assert (c.input_dim, c.dim, c.depth, c.expansion, c.cond_dim) == tuple(
        raw[k] for k in ("input_dim", "dim", "depth", "expansion", "cond_dim"))


@pytest.fixture
def copy(tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(FIXTURE, dst)
    return dst


def test_wrong_dim_names_the_shape_mismatch(copy):
    raw = json.loads((copy / "config.json").read_text())
    raw["dim"] = 64
    (copy / "config.json").write_text(json.dumps(raw))
    # ada_map.1 maps dim -> 3 dim: 96 values at the saved dim 32, 192 at the configured 64.
    with pytest.raises(CheckpointError, match=r"blocks.0.ada_map.1.bias has shape \(96,\), the config .*implies \(192,\)"):
        load_published_network(copy)


def test_missing_key_is_named(copy):
    w = load_file(str(copy / "model.safetensors"))
    del w["final_linear.bias"]
    save_file(w, str(copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing final_linear.bias"):
        load_published_network(copy)


def test_truncated_weights_name_the_file(copy):
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        load_published_network(copy)


def test_missing_config_field_is_named(copy):
    raw = json.loads((copy / "config.json").read_text())
    del raw["cond_dim"]
    (copy / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="config.json: missing cond_dim"):
        load_published_network(copy)


@pytest.mark.parametrize("steps", [16, 32])
@pytest.mark.parametrize("cfg", [0.0, 2.0])
def test_published_euler_samples_are_reproduced(steps, cfg):
    from globeflow.flow import GeoFlowModel, ModelConfig, SamplerConfig

    net = load_published_network(FIXTURE)
    model = GeoFlowModel(ModelConfig(net.config, kind="rfm"))
    model.network.load_state_dict(net.state_dict())
    io = load_file(str(FIXTURE / "reference_io.safetensors"))
    expected = io[f"samples_euler{steps}_cfg{cfg:g}"]
    x0 = io["x0"].unsqueeze(1)  # one sample per embedding
    ours = model.sample(io["emb"], 1, SamplerConfig(method="euler", steps=steps, guidance=cfg, step="published"),
                        x_init=x0)[:, 0]
    assert (ours - expected).abs().max() < 1e-4
    # Our own step (tangent-projected output, exact exponential map) is a different integrator.
    exp = model.sample(io["emb"], 1, SamplerConfig(method="euler", steps=steps, guidance=cfg), x_init=x0)[:, 0]
    assert (exp - expected).abs().max() > 1e-3


def test_published_step_needs_euler_or_ddim():
    from globeflow.flow import SamplerConfig

    with pytest.raises(ValueError, match="published step is the published Euler or DDIM step"):
        SamplerConfig(method="rk4", step="published")


def test_missing_weights_file_is_named(copy):
    (copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing; a hub-layout model folder holds"):
        load_published_network(copy)


def test_published_ddim_protocol_reproduces_the_published_sampler():
    # Issue 16, defect 13: the published DDIM clamps each coordinate of the clean estimate to [-1, 1];
    # globeflow's clipped its norm, and the samples differed by thousands of km. Reference samples:
    # the published ddim_sampler, 250 steps, on this fixture's network (tools/plonk_ddim_fixture.py).
    from globeflow.flow import GeoFlowModel, ModelConfig, SamplerConfig

    ref = load_file(str(FIXTURE / "ddim_reference.safetensors"))
    net = load_published_network(FIXTURE)
    model = GeoFlowModel(ModelConfig(net.config, kind="diffusion")).eval()
    model.network.load_state_dict(net.state_dict())
    rows, samples = ref["x0"].shape[:2]
    expected = ref["samples"] / ref["samples"].norm(dim=-1, keepdim=True)
    with torch.no_grad():
        ours = model.sample(ref["emb"], samples, model.path.published_sampler, x_init=ref["x0"])
        own_clip = model.sample(ref["emb"], samples, SamplerConfig(method="ddim", steps=250), x_init=ref["x0"])
    assert torch.allclose(ours, expected, atol=1e-4), (ours - expected).abs().max()
    # The clip is not a detail on this network: globeflow's own DDIM lands elsewhere.
    assert (own_clip - expected).norm(dim=-1).max() > 0.05
