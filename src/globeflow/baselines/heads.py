"""Output heads of the trained baselines: how a network output becomes a distribution or a point.

Each head turns the backbone's output ``out (N, out_dim)`` into

- a training loss per row (``loss``);
- for the density heads, an exact log-density on the sphere in nats per steradian (``log_prob``),
  exact samples (``sample``) and a few good point candidates (``candidates``), so that the point
  prediction, the NLL and the calibration of a baseline are computed exactly as for a flow model;
- for :class:`RegressionHead`, one point (``point``) and no density.

Heads:

- :class:`VMFMixtureHead`: a mixture of ``K`` von Mises-Fisher distributions (``K = 1`` is vMF
  regression); loss: negative log-likelihood.
- :class:`GeocellHead`: classification over the equal-area cells of a HEALPix grid (nested order)
  with haversine-smoothed labels ``q_c ∝ exp(-d(x, centre_c) / tau)`` (the PIGEON recipe); the density
  is ``P(cell) / area(cell)``, uniform within each cell.
- :class:`RegressionHead`: a unit vector; loss: the great-circle distance in km (its minimiser is the
  spherical median of the conditional distribution).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .. import geo
from ..geo import healpix as grid

__all__ = ["Head", "VMFMixtureHead", "GeocellHead", "RegressionHead"]

#: log-concentration range: kappa in [e^-8, e^12], i.e. from nearly uniform to ~50 km spreads.
_LOG_KAPPA_MID, _LOG_KAPPA_HALF = 2.0, 10.0
#: Finer HEALPix levels used to draw uniform points inside a cell (4^10 children per cell).
_SUBLEVELS = 10


class Head(nn.Module):
    """Interface. Shapes: ``out (N, out_dim)``; points ``x (N, ..., 3)`` unit vectors."""

    out_dim: int
    has_density: bool = True

    def loss(self, out: Tensor, x1: Tensor) -> Tensor:
        """Per-row training loss ``(N,)`` for true locations ``x1 (N, 3)``."""
        raise NotImplementedError

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        """Log-density in nats/sr at ``x (N, P, 3)``: ``(N, P)``."""
        raise NotImplementedError

    def sample(self, out: Tensor, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``(N, S, 3)``."""
        raise NotImplementedError

    def candidates(self, out: Tensor) -> Tensor:
        """A few points worth considering as the answer (modes, refined cells): ``(N, C, 3)``; the
        densest comes first."""
        raise NotImplementedError


class VMFMixtureHead(Head):
    """``p(x) = sum_k w_k vMF(x; mu_k, kappa_k)``. Output layout: ``K`` raw mean vectors (3 each),
    ``K`` raw log-concentrations, ``K`` mixture logits (absent for ``K = 1``)."""

    def __init__(self, components: int):
        super().__init__()
        if components < 1:
            raise ValueError(f"a vMF mixture needs >= 1 components, got {components}")
        self.k = components
        self.out_dim = 4 * components + (components if components > 1 else 0)

    def params(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(mu (N, K, 3), kappa (N, K), log_w (N, K))``."""
        n, k = out.shape[0], self.k
        mu = geo.projx(out[:, :3 * k].reshape(n, k, 3))
        # A bounded log-concentration: no overflow in exp, and gradients everywhere (a clamp has none).
        log_kappa = _LOG_KAPPA_MID + _LOG_KAPPA_HALF * torch.tanh(out[:, 3 * k:4 * k] / _LOG_KAPPA_HALF)
        log_w = torch.log_softmax(out[:, 4 * k:], dim=-1) if k > 1 else out.new_zeros(n, 1)
        return mu, log_kappa.exp(), log_w

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        mu, kappa, log_w = self.params(out)
        # (N, P, 1, 3) against (N, 1, K, 3): every point against every component.
        lp = geo.vmf_log_prob(x.unsqueeze(-2), mu.unsqueeze(1), kappa.unsqueeze(1))
        return torch.logsumexp(lp + log_w.unsqueeze(1), dim=-1)

    def loss(self, out: Tensor, x1: Tensor) -> Tensor:
        return -self.log_prob(out, x1.unsqueeze(1)).squeeze(1)

    def sample(self, out: Tensor, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        mu, kappa, log_w = self.params(out.double())
        comp = torch.multinomial(log_w.exp(), num_samples, replacement=True, generator=generator)  # (N, S)
        rows = torch.arange(out.shape[0], device=out.device).unsqueeze(1)
        return geo.vmf_sample(mu[rows, comp], kappa[rows, comp], generator=generator).to(out.dtype)

    def candidates(self, out: Tensor) -> Tensor:
        mu, _, _ = self.params(out)
        # The component means ordered by the density there (a mixture's mode is near one of them).
        order = self.log_prob(out, mu).argsort(dim=1, descending=True)
        return torch.gather(mu, 1, order.unsqueeze(-1).expand(-1, -1, 3))


class GeocellHead(Head):
    """Classification over the ``12 nside^2`` cells of a HEALPix grid (nested order).

    Args:
        nside: grid resolution (16: 3,072 cells of ~407 km; 32: 12,288 of ~204 km).
        tau_km: label smoothing length; ``q_c ∝ exp(-d(x, centre_c) / tau_km)``.
    """

    def __init__(self, nside: int, tau_km: float):
        super().__init__()
        if tau_km <= 0:
            raise ValueError(f"geocell label smoothing tau_km must be positive, got {tau_km}")
        self.nside, self.tau_km = grid.check_nside(nside), float(tau_km)
        self.out_dim = grid.num_cells(nside)
        self.log_area = math.log(grid.cell_area(nside))
        # Recomputed from the config on load, so not saved in checkpoints.
        self.register_buffer("centres", grid.cell_centers(nside, nest=True, dtype=torch.float32), persistent=False)

    def soft_labels(self, x1: Tensor) -> Tensor:
        """``(N, cells)`` haversine-smoothed label distribution of true locations ``x1 (N, 3)``."""
        # arccos of one matmul: 5x cheaper than the cross-product form, and its ~km error near 0 is
        # immaterial at smoothing lengths of hundreds of km.
        cos = (x1 @ self.centres.to(x1.dtype).T).clamp(-1.0, 1.0)
        d_km = torch.arccos(cos) * geo.EARTH_RADIUS_KM
        return torch.softmax(-d_km / self.tau_km, dim=-1)

    def loss(self, out: Tensor, x1: Tensor) -> Tensor:
        return -(self.soft_labels(x1) * torch.log_softmax(out, dim=-1)).sum(dim=-1)

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        cells = grid.cell_of(x, self.nside, nest=True).to(out.device)
        return torch.gather(torch.log_softmax(out.double(), dim=-1), 1, cells).to(out.dtype) - self.log_area

    def sample(self, out: Tensor, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        cells = torch.multinomial(torch.softmax(out.double(), dim=-1), num_samples, replacement=True,
                                  generator=generator)
        # A uniform point of a cell: the centre of a uniformly chosen descendant 10 levels down (all
        # descendants have equal area), i.e. uniform up to ~1/1000 of the cell's size.
        per = 4 ** _SUBLEVELS
        child = torch.randint(0, per, cells.shape, generator=generator, device=cells.device)
        fine = (cells * per + child).cpu().numpy().ravel()
        v = np.stack(grid.pix2vec(self.nside * 2 ** _SUBLEVELS, fine, nest=True), -1)
        return torch.from_numpy(v).reshape(*cells.shape, 3).to(out.device, out.dtype)

    def candidates(self, out: Tensor, top: int = 5) -> Tensor:
        """The ``top`` most probable cells' centres, then the probability-weighted spherical mean of
        the best cell and its (up to 8) neighbours: the refinement that places the answer between
        cells when the mass straddles a border."""
        prob = torch.softmax(out.double(), dim=-1)
        best = prob.topk(min(top, prob.shape[1]), dim=1).indices  # (N, top)
        centres = self.centres.double().to(out.device)
        neigh = grid.neighbours(self.nside, best[:, 0].cpu().numpy(), nest=True).T  # (N, 8), -1: none
        group = torch.from_numpy(np.concatenate((best[:, :1].cpu().numpy(), neigh), 1)).to(out.device)
        valid = group >= 0
        group = group.clamp_min(0)
        w = torch.gather(prob, 1, group) * valid
        refined = geo.projx((w.unsqueeze(-1) * centres[group]).sum(dim=1))
        return torch.cat((centres[best], refined.unsqueeze(1)), dim=1).to(out.dtype)


class RegressionHead(Head):
    """Direct regression of a unit vector; trained on the great-circle distance in km."""

    out_dim = 3
    has_density = False

    def point(self, out: Tensor) -> Tensor:
        return geo.projx(out)

    def loss(self, out: Tensor, x1: Tensor) -> Tensor:
        return geo.dist(self.point(out), x1) * geo.EARTH_RADIUS_KM
