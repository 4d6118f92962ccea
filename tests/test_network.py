import pytest
import torch

from globeflow.flow.network import GeoAdaLNMLP, NetworkConfig, _expected_parameters, positional_embedding


def test_published_sizes_match_the_paper():
    # The paper: 36.0M parameters at dim 512 / depth 12 (OSV-5M), 9.15M at dim 256 / depth 12 (iNat21).
    assert round(GeoAdaLNMLP(NetworkConfig(cond_dim=1024, dim=512, depth=12)).num_parameters() / 1e6, 1) == 36.0
    assert round(GeoAdaLNMLP(NetworkConfig(cond_dim=1024, dim=256, depth=12)).num_parameters() / 1e6, 2) == 9.15


@pytest.mark.parametrize("cfg", [NetworkConfig(cond_dim=7, dim=16, depth=1), NetworkConfig(cond_dim=32, dim=64, depth=3, expansion=2)])
def test_parameter_count_closed_form(cfg):
    assert GeoAdaLNMLP(cfg).num_parameters() == _expected_parameters(cfg)


def test_published_parameter_names_and_shapes():
    cfg = NetworkConfig(cond_dim=10, dim=16, depth=2)
    sd = GeoAdaLNMLP(cfg).state_dict()
    expected = {
        "time_embedder.map_time.0.weight": (16, 4), "time_embedder.map_time.2.weight": (16, 16),
        "cond_mapper.weight": (16, 10), "initial_mapper.weight": (16, 3),
        "blocks.1.mlp.0.weight": (64, 16), "blocks.1.mlp.3.weight": (16, 64),
        "blocks.1.ada_map.1.weight": (48, 16), "final_adaln.1.weight": (32, 16),
        "final_linear.weight": (3, 16), "final_linear.bias": (3,),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert len(sd) == 2 * (2 + 2 + 2 * 3 + 1 + 1)  # weight + bias of every Linear


def test_blocks_start_as_identity():
    torch.manual_seed(0)
    net = GeoAdaLNMLP(NetworkConfig(cond_dim=5, dim=16, depth=3))
    x, g, e = torch.randn(4, 3), torch.rand(4), torch.randn(4, 5)
    h = net.initial_mapper(x)
    c = net.condition(g, e)
    for block in net.blocks:
        assert torch.equal(block(h, c), h)


def test_positional_embedding_closed_form():
    x = torch.tensor([0.0, 1.0, 250.0])
    emb = positional_embedding(x, 8)
    freqs = torch.tensor([1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3), 1e-4])
    assert torch.allclose(emb[:, :4], torch.cos(x[:, None] * freqs), atol=1e-6)
    assert torch.allclose(emb[:, 4:], torch.sin(x[:, None] * freqs), atol=1e-6)


def test_time_embedding_is_standardised_before_the_mlp():
    net = GeoAdaLNMLP(NetworkConfig(cond_dim=3, dim=32, depth=1))
    captured = {}

    def hook(module, inputs, output):
        captured["in"] = inputs[0]

    net.time_embedder.map_time[0].register_forward_hook(hook)
    net.time_embedder(torch.tensor([0.3, 0.9]))
    feats = captured["in"]
    assert torch.allclose(feats.mean(-1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(feats.std(-1), torch.ones(2), atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 8"):
        NetworkConfig(cond_dim=3, dim=12)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        NetworkConfig(cond_dim=3, depth=0)


def test_per_image_broadcast_equals_repeated_rows():
    torch.manual_seed(0)
    net = GeoAdaLNMLP(NetworkConfig(cond_dim=5, dim=16, depth=2))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, g, e = torch.randn(3, 7, 3), torch.rand(3), torch.randn(3, 5)
    shared = net(x, g, e)
    flat = net(x.reshape(21, 3), g.repeat_interleave(7), e.repeat_interleave(7, dim=0))
    assert torch.allclose(shared.reshape(21, 3), flat, atol=1e-6)


def _perturbed(net: GeoAdaLNMLP) -> GeoAdaLNMLP:
    # Zero-initialised last layers would make every block the identity and hide tangent errors.
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


@pytest.mark.parametrize("shape", [(5,), (2, 4)])
def test_hand_propagated_tangents_equal_forward_mode_autodiff(shape):
    from torch.func import jvp

    torch.manual_seed(0)
    net = _perturbed(GeoAdaLNMLP(NetworkConfig(cond_dim=6, dim=16, depth=3))).double()
    b = shape[0]
    x = torch.randn(*shape, 3, dtype=torch.float64)
    gamma, emb = torch.rand(b, dtype=torch.float64), torch.randn(b, 6, dtype=torch.float64)
    dx = torch.randn(3, *shape, 3, dtype=torch.float64)
    out, dout = net.forward_with_tangents(x, gamma, emb, dx)
    torch.testing.assert_close(out, net(x, gamma, emb))
    for k in range(3):
        _, ref = jvp(lambda y: net(y, gamma, emb), (x,), (dx[k],))
        torch.testing.assert_close(dout[k], ref, rtol=1e-10, atol=1e-10)


def test_published_time_frequencies_closed_form_and_legacy_configs_keep_theirs():
    from globeflow.flow import ModelConfig
    from globeflow.flow.network import network_config_from_dict, time_frequencies

    half = 4
    published = torch.tensor([10000.0 ** (-k / half) for k in range(half)])
    assert torch.allclose(time_frequencies(8, endpoint=False), published, rtol=1e-6)
    assert torch.allclose(time_frequencies(8, endpoint=True), torch.tensor([1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3), 1e-4]),
                          rtol=1e-6)
    # New networks use the published frequencies; configs saved before the field existed load as
    # the endpoint variant they were trained with, and a round trip keeps whichever was saved.
    assert NetworkConfig(cond_dim=3).time_frequencies == "published"
    legacy = {"cond_dim": 3, "dim": 32, "depth": 1, "expansion": 4, "input_dim": 3}
    assert network_config_from_dict(legacy).time_frequencies == "endpoint"
    c = ModelConfig(NetworkConfig(cond_dim=3, dim=32, depth=1))
    assert ModelConfig.from_dict(c.to_dict()) == c
    # The choice changes the function: same weights, different outputs.
    torch.manual_seed(0)
    a = GeoAdaLNMLP(NetworkConfig(cond_dim=3, dim=32, depth=1))
    b = GeoAdaLNMLP(network_config_from_dict(legacy))
    b.load_state_dict(a.state_dict())
    x, g, e = torch.randn(5, 3), torch.rand(5), torch.randn(5, 3)
    assert not torch.allclose(a(x, g, e), b(x, g, e), atol=1e-4)
    with pytest.raises(ValueError, match="time_frequencies must be 'published' or 'endpoint'"):
        NetworkConfig(cond_dim=3, time_frequencies="fourier")
