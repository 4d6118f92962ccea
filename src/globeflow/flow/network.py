"""The denoiser: an AdaLN-modulated residual MLP on raw xyz, conditioned on an image embedding.

Structure, initialisation and parameter names follow the published GeoAdaLNMLP, so that a
published ``model.safetensors`` loads into :class:`GeoAdaLNMLP` with ``load_state_dict`` unchanged:

    time_embedder.map_time.{0,2}     Linear(dim/4, dim) -> SiLU -> Linear(dim, dim)
    cond_mapper                      Linear(cond_dim, dim)
    initial_mapper                   Linear(input_dim, dim)
    blocks.{i}.ada_map.1             Linear(dim, 3 dim)   (after SiLU): scale, shift, gate
    blocks.{i}.mlp.{0,3}             Linear(dim, e dim) -> GELU -> Dropout(0) -> Linear(e dim, dim)
    final_adaln.1                    Linear(dim, 2 dim)   (after SiLU): scale, shift
    final_linear                     Linear(dim, input_dim)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..checks import require_finite

__all__ = ["NetworkConfig", "GeoAdaLNMLP", "positional_embedding", "time_frequencies", "frequency_variant",
           "network_config_from_dict", "TIME_FREQUENCIES"]

#: The two time-embedding frequency variants (see :class:`NetworkConfig`).
TIME_FREQUENCIES = ("published", "endpoint")


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of :class:`GeoAdaLNMLP`. Published: dim 512 / depth 12 (OSV-5M, YFCC), 256 / 12 (iNat21)."""

    cond_dim: int = field(metadata={"help": "embedding dimension (set by the data)", "cli": False})
    dim: int = field(default=256, metadata={"help": "network width"})
    depth: int = field(default=6, metadata={"help": "number of residual blocks"})
    expansion: int = field(default=4, metadata={"help": "MLP expansion factor of each block"})
    input_dim: int = field(default=3, metadata={"cli": False})
    #: Time-embedding frequencies (see :func:`positional_embedding`): ``"published"`` computes them as
    #: the published package does (``f_k = 10000^(-k / half)``: its ``endpoint=True`` flag never
    #: reaches the frequency formula, as its saved ``freqs`` buffers show); ``"endpoint"``
    #: (``10000^(-k / (half - 1))``) is what globeflow checkpoints written before this field used, and
    #: what they load as.
    time_frequencies: str = field(default="published", metadata={"cli": False})

    def __post_init__(self) -> None:
        require_finite(self)
        if self.time_frequencies not in TIME_FREQUENCIES:
            raise ValueError(f"network time_frequencies must be 'published' or 'endpoint', got {self.time_frequencies!r}")
        for name in ("cond_dim", "dim", "depth", "expansion", "input_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"network {name} must be >= 1, got {getattr(self, name)}")
        if self.dim % 8:
            raise ValueError(f"network dim must be a multiple of 8 (time embedding uses dim/4 even channels), got {self.dim}")


def network_config_from_dict(d: dict) -> NetworkConfig:
    """A saved network config; one written before ``time_frequencies`` existed used ``"endpoint"``."""
    return NetworkConfig(**{"time_frequencies": "endpoint", **d})


def time_frequencies(channels: int, endpoint: bool, max_positions: float = 10000.0,
                     device: torch.device | str | None = None) -> Tensor:
    """``(channels/2,)`` frequencies ``f_k = max_positions^(-k / m)``, ``k = 0 .. channels/2 - 1``, with
    ``m = channels/2 - 1`` (``endpoint``: the lowest is exactly ``1 / max_positions``) or
    ``m = channels/2`` (the published network's)."""
    half = channels // 2
    k = torch.arange(half, dtype=torch.float32, device=device)
    return (1.0 / max_positions) ** (k / (max(half - 1, 1) if endpoint else half))


def frequency_variant(freqs: Tensor, dim: int) -> str | None:
    """Which variant of :data:`TIME_FREQUENCIES` a saved frequency buffer ``(dim/8,)`` holds, or None."""
    for variant in TIME_FREQUENCIES:
        ours = time_frequencies(dim // 4, endpoint=variant == "endpoint")
        if freqs.shape == ours.shape and torch.allclose(freqs.float(), ours, rtol=1e-6):
            return variant
    return None


def positional_embedding(x: Tensor, channels: int, max_positions: float = 10000.0, endpoint: bool = True) -> Tensor:
    """Sinusoidal embedding ``(N,) -> (N, channels)``: cosines then sines of ``x * f_k`` with the
    frequencies of :func:`time_frequencies`."""
    freqs = time_frequencies(channels, endpoint, max_positions, device=x.device)
    angles = torch.outer(x.float(), freqs)
    return torch.cat((angles.cos(), angles.sin()), dim=1).to(x.dtype)


class TimeEmbedder(nn.Module):
    """``gamma -> (N, dim)``: sinusoidal features of ``1000 gamma``, standardised per row, then an MLP."""

    def __init__(self, channels: int, out_dim: int, scaling: float = 1000.0, endpoint: bool = False):
        super().__init__()
        self.channels = channels
        self.scaling = scaling
        self.endpoint = endpoint
        self.map_time = nn.Sequential(nn.Linear(channels, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, gamma: Tensor) -> Tensor:
        feats = positional_embedding(gamma * self.scaling, self.channels, endpoint=self.endpoint)
        # Standardising makes the features' scale independent of the channel count.
        feats = (feats - feats.mean(dim=-1, keepdim=True)) / feats.std(dim=-1, keepdim=True)
        return self.map_time(feats)


class AdaLNBlock(nn.Module):
    """``x + gate * MLP((1 + scale) * LN(x) + shift)`` with ``(scale, shift, gate)`` from the condition."""

    def __init__(self, dim: int, expansion: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * expansion), nn.GELU(), nn.Dropout(0.0), nn.Linear(dim * expansion, dim)
        )
        self.ada_map = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 3))
        self.ln = nn.LayerNorm(dim, elementwise_affine=False)
        # Zero last layer: every block starts as the identity, so depth does not hurt early training.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        scale, shift, gate = self.ada_map(c).chunk(3, dim=-1)
        return x + self.mlp((1 + scale) * self.ln(x) + shift) * gate

    def forward_with_tangents(self, x: Tensor, dx: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """The block and its directional derivatives: ``dx (K, *x.shape)`` -> ``(y, dy (K, ...))``.
        The condition ``c`` does not depend on the input point, so it carries no tangent."""
        scale, shift, gate = self.ada_map(c).chunk(3, dim=-1)
        n, dn = _layer_norm_with_tangents(x, dx, self.ln.eps)
        u = self.mlp[0]((1 + scale) * n + shift)
        du = (1 + scale) * dn @ self.mlp[0].weight.T
        a, da = self.mlp[1](u), _gelu_derivative(u) * du
        return x + self.mlp[3](a) * gate, dx + (da @ self.mlp[3].weight.T) * gate


class GeoAdaLNMLP(nn.Module):
    """Velocity / noise network ``f(x, gamma, emb)``.

    Args:
        config: sizes; see :class:`NetworkConfig`.
    Shapes:
        ``x (N, input_dim)``, ``gamma (N,)``, ``emb (N, cond_dim)`` -> ``(N, input_dim)``; or, to share
        the per-image work between many samples of one image, ``x (N, S, input_dim)`` with ``gamma
        (N,)`` and ``emb (N, cond_dim)``: the condition vector and every block's modulation are then
        computed once per image and broadcast over the ``S`` samples.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        dim = config.dim
        self.time_embedder = TimeEmbedder(dim // 4, dim, endpoint=config.time_frequencies == "endpoint")
        self.cond_mapper = nn.Linear(config.cond_dim, dim)
        self.initial_mapper = nn.Linear(config.input_dim, dim)
        self.blocks = nn.ModuleList(AdaLNBlock(dim, config.expansion) for _ in range(config.depth))
        self.final_adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 2))
        self.final_ln = nn.LayerNorm(dim, elementwise_affine=False)
        self.final_linear = nn.Linear(dim, config.input_dim)

    def condition(self, gamma: Tensor, emb: Tensor) -> Tensor:
        """The vector ``c (N, dim)`` that modulates every block: mapped embedding + time embedding."""
        return self.cond_mapper(emb) + self.time_embedder(gamma)

    def forward(self, x: Tensor, gamma: Tensor, emb: Tensor) -> Tensor:
        c = self.condition(gamma, emb)
        if x.dim() == c.dim() + 1:
            c = c.unsqueeze(-2)
        h = self.initial_mapper(x)
        for block in self.blocks:
            h = block(h, c)
        scale, shift = self.final_adaln(c).chunk(2, dim=-1)
        return self.final_linear((1 + scale) * self.final_ln(h) + shift)

    def forward_with_tangents(self, x: Tensor, gamma: Tensor, emb: Tensor, dx: Tensor) -> tuple[Tensor, Tensor]:
        """``forward`` and its Jacobian-vector products in ``K`` input directions at once.

        Args:
            dx: ``(K, *x.shape)`` tangent directions of ``x``.
        Returns:
            ``(out, dout)`` with ``dout (K, *out.shape)``, equal to ``torch.func.jvp`` per direction.
            Propagating the tangents by hand costs one matmul per layer and direction on top of the
            forward pass (forward-mode AD costs ~3x that on a CPU), and the forward pass is shared
            by all directions: the exact divergence needs two.
        """
        c = self.condition(gamma, emb)
        if x.dim() == c.dim() + 1:
            c = c.unsqueeze(-2)
        h = self.initial_mapper(x)
        dh = dx @ self.initial_mapper.weight.T
        for block in self.blocks:
            h, dh = block.forward_with_tangents(h, dh, c)
        scale, shift = self.final_adaln(c).chunk(2, dim=-1)
        n, dn = _layer_norm_with_tangents(h, dh, self.final_ln.eps)
        out = self.final_linear((1 + scale) * n + shift)
        return out, ((1 + scale) * dn) @ self.final_linear.weight.T

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _layer_norm_with_tangents(x: Tensor, dx: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Affine-free layer norm over the last axis, and its derivative along each ``dx[k]``:
    ``d n = (dx - mean(dx) - n mean(n dx)) / sigma``."""
    mu = x.mean(dim=-1, keepdim=True)
    sigma = (x.var(dim=-1, unbiased=False, keepdim=True) + eps).sqrt()
    n = (x - mu) / sigma
    dn = (dx - dx.mean(dim=-1, keepdim=True) - n * (n * dx).mean(dim=-1, keepdim=True)) / sigma
    return n, dn


def _gelu_derivative(u: Tensor) -> Tensor:
    """d/du of the exact (erf) GELU ``u Phi(u)``: ``Phi(u) + u phi(u)``."""
    cdf = 0.5 * (1.0 + torch.erf(u / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    return cdf + u * pdf


def _expected_parameters(config: NetworkConfig) -> int:
    """Closed-form parameter count (used by tests to pin the layout)."""
    d, e, q = config.dim, config.expansion, config.dim // 4
    time = (q * d + d) + (d * d + d)
    block = (d * e * d + e * d) + (e * d * d + d) + (d * 3 * d + 3 * d)
    return (time + (config.cond_dim * d + d) + (config.input_dim * d + d) + config.depth * block
            + (d * 2 * d + 2 * d) + (d * config.input_dim + config.input_dim))

