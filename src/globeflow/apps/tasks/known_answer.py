"""Known-answer benchmark: a conditional data set on the sphere whose density is known exactly.

Each class ``c`` has locations distributed as a mixture of von Mises-Fisher components,
``p(x | c) = sum_k w_ck vMF(x; mu_ck, kappa_ck)``, and an embedding ``e = v_c + noise * z`` with a
fixed random class vector ``v_c`` and ``z ~ N(0, I)``. Because ``p(x | c)`` is closed form, a trained
model can be scored against the truth: its log-likelihood against the true entropy, its GeoScore
against the Bayes-optimal point prediction.

Conventions: locations are unit vectors ``(..., 3)`` (see :mod:`globeflow.geo`) or degrees
``(..., 2)`` as (lat, lon); densities are in nats per steradian; reference computations are float64.

GeoScore of a prediction at great-circle distance ``d`` km from the truth is
``5000 exp(-d / 1492.7)`` (haversine, R = 6371 km).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ...checks import require_finite
from ... import geo
from ...geo import healpix
from .bayes import GEOSCORE_MAX, bayes_point, geoscore_from_angle

__all__ = ["Component", "KnownAnswerTask", "default_task"]

#: Added to ``seed`` for the Monte Carlo sample that *scores* the Bayes predictor, so that it never
#: reuses the sample the predictor was fitted on (that would bias the score upwards).
_EVAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class Component:
    """One von Mises-Fisher component: mean direction in degrees, concentration, mixture weight.

    The angular standard deviation is about ``1 / sqrt(kappa)`` radians, i.e. ``6371 / sqrt(kappa)``
    km: kappa 20 ~ 1400 km, 300 ~ 370 km, 2000 ~ 140 km.
    """

    lat: float
    lon: float
    kappa: float
    weight: float

    def __post_init__(self) -> None:
        require_finite(self)
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"component lat must be in [-90, 90], got {self.lat}")
        if not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"component lon must be in [-180, 180], got {self.lon}")
        if not self.kappa > 0.0:
            raise ValueError(f"component kappa must be > 0, got {self.kappa}")
        if not self.weight > 0.0:
            raise ValueError(f"component weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class KnownAnswerTask:
    """Classes of vMF mixtures on the sphere with noisy class-vector embeddings.

    Embeddings: the class vectors are ``v_c ~ N(0, I / embed_dim)`` (norm ~ 1, like normalised image
    embeddings), so two classes are ``|v_c - v_c'| ~ sqrt(2)`` apart whatever ``embed_dim``. With
    ``noise = 0.1`` the Bayes classifier's pairwise error is ``Phi(-|v_c - v_c'| / (2 noise)) ~ Phi(-7)
    ~ 1e-12`` and the log posterior odds are ~ 100 nats: the class posterior given an embedding is
    one-hot for all practical purposes, so ``p(x | embedding) = p(x | class)`` (see
    :meth:`log_prob_given_embedding` for the exact mixture).

    Attributes:
        classes: one tuple of :class:`Component` per class; weights sum to 1 within a class.
        embed_dim: dimension ``D`` of the embeddings.
        noise: standard deviation of the isotropic Gaussian noise added to the class vector.
        seed: fixes the class vectors.
    """

    classes: tuple[tuple[Component, ...], ...]
    embed_dim: int = 32
    noise: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        require_finite(self)
        if len(self.classes) == 0:
            raise ValueError("a task needs at least one class")
        for c, comps in enumerate(self.classes):
            if len(comps) == 0:
                raise ValueError(f"class {c} has no components")
            total = sum(comp.weight for comp in comps)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"class {c}: component weights sum to {total}, expected 1")
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        if not self.noise > 0.0:
            raise ValueError(f"noise must be > 0, got {self.noise}")

    # ------------------------------------------------------------------ parameters

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return len(self.classes)

    def _params(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
        """Padded float64 mixture parameters: ``mu (C, K, 3)``, ``kappa (C, K)``, ``log_w (C, K)``.

        ``K`` is the largest number of components; padding slots get weight 0 (``log_w = -inf``) so
        they are never sampled and vanish from every logsumexp.
        """
        return tuple(t.to(device) for t in _padded_params(self.classes))  # type: ignore[return-value]

    def class_vectors(self) -> Tensor:
        """The class vectors ``(C, embed_dim)`` float32, ``N(0, I / embed_dim)``, fixed by ``seed``."""
        gen = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.num_classes, self.embed_dim, generator=gen, dtype=torch.float64)
        return (z / math.sqrt(self.embed_dim)).to(torch.float32)

    # ------------------------------------------------------------------ sampling

    def sample_locations(self, labels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``x ~ p(. | labels)``: ``labels (n,)`` long -> unit vectors ``(n, 3)`` float64."""
        return self._sample_with_means(labels, generator)[0]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Draw ``n`` examples with classes uniform over the ``C`` classes.

        Returns:
            latlon ``(n, 2)`` float64 degrees, embedding ``(n, embed_dim)`` float32, labels ``(n,)`` long.
        """
        labels = torch.randint(self.num_classes, (n,), generator=generator)
        x = self.sample_locations(labels, generator=generator)
        z = torch.randn(n, self.embed_dim, generator=generator, dtype=torch.float32)
        embedding = self.class_vectors()[labels] + self.noise * z
        return geo.xyz_to_latlon(x), embedding, labels

    def embedding_dataset(self, n: int, *, seed: int) -> dict[str, Tensor]:
        """:meth:`sample` with a fresh generator: ``{'latlon', 'embedding', 'labels'}``."""
        latlon, embedding, labels = self.sample(n, generator=torch.Generator().manual_seed(seed))
        return {"latlon": latlon, "embedding": embedding, "labels": labels}

    # ------------------------------------------------------------------ densities

    def log_prob(self, x: Tensor, labels: Tensor) -> Tensor:
        """Exact ``log p(x | label)`` in nats per steradian, float64.

        Args:
            x: unit vectors ``(..., 3)``.
            labels: ``(...)`` or a leading part of it, e.g. ``x (n, S, 3)`` with ``labels (n,)``;
                the labels broadcast over the trailing sample axes.
        Returns:
            ``x.shape[:-1]``.
        """
        x = x.to(torch.float64)
        labels = _align_labels(labels.to(x.device), x.shape[:-1])
        mu, kappa, log_w = self._params(x.device)
        return _mixture_log_prob(x.unsqueeze(-2), mu[labels], kappa[labels], log_w[labels])

    def log_prob_all(self, x: Tensor) -> Tensor:
        """``log p(x | c)`` for every class: ``x (..., 3) -> (..., C)`` float64.

        Builds ``(..., C, K, 3)`` temporaries: chunk very large inputs.
        """
        mu, kappa, log_w = self._params(x.device)
        x = x.to(torch.float64)[..., None, None, :]
        return _mixture_log_prob(x, mu, kappa, log_w)

    def true_log_prob_latlon(self, latlon: Tensor, labels: Tensor) -> Tensor:
        """:meth:`log_prob` for degrees: ``latlon (n, 2)`` or ``(n, S, 2)``, ``labels (n,)`` -> ``(n,)`` / ``(n, S)``."""
        return self.log_prob(geo.latlon_to_xyz(latlon.to(torch.float64)), labels)

    def class_log_posterior(self, embedding: Tensor) -> Tensor:
        """``log p(c | embedding)`` under the uniform class prior: ``(n, D) -> (n, C)`` float64."""
        e = embedding.to(torch.float64)
        v = self.class_vectors().to(device=e.device, dtype=torch.float64)
        sq = torch.cdist(e, v).square()
        return torch.log_softmax(-sq / (2.0 * self.noise**2), dim=-1)

    def log_prob_given_embedding(self, x: Tensor, embedding: Tensor) -> Tensor:
        """The true conditional ``log p(x | embedding) = log sum_c p(c | e) p(x | c)``, float64.

        Args:
            x: ``(n, 3)`` or ``(n, S, 3)`` unit vectors.
            embedding: ``(n, D)``.
        Returns:
            ``(n,)`` or ``(n, S)``.
        """
        log_post = self.class_log_posterior(embedding)  # (n, C)
        log_post = log_post.reshape(log_post.shape[0], *([1] * (x.dim() - 2)), log_post.shape[1])
        return torch.logsumexp(self.log_prob_all(x) + log_post, dim=-1)

    # ------------------------------------------------------------------ entropy

    def entropy_with_stderr(self, num_samples: int = 200_000, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Monte Carlo differential entropy ``H_c = -E log p(x | c)`` in nats, and its standard error.

        Mixtures have no closed-form entropy, so this averages ``-log p`` over ``num_samples`` exact
        samples per class. Returns ``(H, se)``, both ``(C,)`` float64.
        """
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 for a standard error, got {num_samples}")
        x = self._class_samples(num_samples, torch.Generator().manual_seed(seed))  # (C, N, 3)
        # One class at a time: (N, K, 3) temporaries, a few tens of MB at the default N.
        neg_log_p = -torch.stack([self.log_prob(x[c], torch.tensor(c)) for c in range(self.num_classes)])
        return neg_log_p.mean(dim=1), neg_log_p.std(dim=1) / math.sqrt(num_samples)

    def entropy(self, num_samples: int = 200_000, seed: int = 0) -> Tensor:
        """Monte Carlo entropy ``(C,)`` in nats; see :meth:`entropy_with_stderr`."""
        return self.entropy_with_stderr(num_samples, seed)[0]

    # ------------------------------------------------------------------ Bayes predictor

    def bayes_predictor(self, nside: int = 64, num_mc: int = 20_000, seed: int = 0, beam: int = 32) -> Tensor:
        """Bayes-optimal point prediction for GeoScore: ``argmax_y E_{x ~ p(.|c)} GeoScore(y, x)``.

        The expectation is a Monte Carlo average over ``num_mc`` exact samples per class (rounded up
        to even: they come in antithetic pairs, mirrored about their component's mean, which removes
        most of the Monte Carlo error of the argmax). The argmax is found in two stages:

        1. A beam search down the nested HEALPix hierarchy, from ``nside=4`` (all 192 cells) to
           ``nside``: at each level the ``beam`` best cells are split into their 4 children. An
           exhaustive scan of all ``12 nside^2`` cells costs ~20 s per class on a 2-core CPU at
           ``nside=64``; the GeoScore kernel (scale ~13 degrees) is smooth at the coarse cell size,
           so the best fine cell lies under one of the best coarse cells. ``beam >= 12 nside^2``
           makes every level exhaustive.
        2. A compass search from the best cell's centre: a 5 x 5 tangent-plane stencil of step ``h``
           (initially the cell size); move to its best point, or halve ``h`` when the centre is
           best, until ``h < 0.01`` km. The centre is always a candidate, so the score never drops.

        Results are cached per (task, arguments). Returns ``(C, 3)`` float64 unit vectors.
        """
        if not healpix.is_nside(nside):
            raise ValueError(f"nside must be a power of 2, got {nside}")
        if num_mc < 1 or beam < 1:
            raise ValueError(f"num_mc and beam must be >= 1, got {num_mc} and {beam}")
        return _bayes_predictor_cached(self, nside, num_mc, seed, beam).clone()

    def bayes_geoscore_with_stderr(self, nside: int = 64, num_mc: int = 20_000, seed: int = 0,
                                   num_samples: int = 200_000) -> tuple[Tensor, Tensor]:
        """Expected GeoScore of :meth:`bayes_predictor` per class and its standard error, ``(C,)`` each.

        Scored on ``num_samples`` fresh samples per class drawn with a seed distinct from the one the
        predictor was fitted on, so the estimate is unbiased.
        """
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 for a standard error, got {num_samples}")
        y = self.bayes_predictor(nside, num_mc, seed)
        x = self._class_samples(num_samples, torch.Generator().manual_seed(seed + _EVAL_SEED_OFFSET))
        score = geoscore_from_angle(geo.dist(y.unsqueeze(1), x))  # (C, N)
        return score.mean(dim=1), score.std(dim=1) / math.sqrt(num_samples)

    def bayes_geoscore(self, nside: int = 64, num_mc: int = 20_000, seed: int = 0,
                       num_samples: int = 200_000) -> Tensor:
        """Expected GeoScore ``(C,)`` of the Bayes predictor; see :meth:`bayes_geoscore_with_stderr`."""
        return self.bayes_geoscore_with_stderr(nside, num_mc, seed, num_samples)[0]

    def bayes_geoscore_for(self, latlon_true: Tensor, labels: Tensor, *, nside: int = 64,
                           num_mc: int = 20_000, seed: int = 0) -> Tensor:
        """GeoScore the Bayes predictor earns on given test points: ``(n, 2) degrees, (n,) -> (n,)`` float64.

        Lets a benchmark compare a model and the Bayes predictor on the same test points.
        """
        pred = geo.xyz_to_latlon(self.bayes_predictor(nside, num_mc, seed))[labels.long()]
        d_km = geo.haversine_km(pred, latlon_true.to(torch.float64))
        return GEOSCORE_MAX * torch.exp(-d_km / geo.GEOSCORE_SCALE_KM)

    # ------------------------------------------------------------------ helpers

    def _sample_with_means(self, labels: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Samples ``x (n, 3)`` for ``labels (n,)`` and the mean direction ``(n, 3)`` of each one's component."""
        mu, kappa, log_w = self._params()
        labels = labels.long()
        if labels.numel() == 0:
            empty = torch.empty(*labels.shape, 3, dtype=torch.float64)
            return empty, empty.clone()
        # Pick the component first (padding has probability exactly 0), then sample that vMF.
        comp = torch.multinomial(log_w.exp()[labels.reshape(-1)], 1, replacement=True, generator=generator)
        comp = comp.squeeze(-1).reshape(labels.shape)
        mean = mu[labels, comp]
        return geo.vmf_sample(mean, kappa[labels, comp], generator=generator), mean

    def _class_samples(self, num: int, generator: torch.Generator) -> Tensor:
        """``num`` exact i.i.d. samples of every class: ``(C, num, 3)`` float64."""
        labels = torch.arange(self.num_classes).repeat_interleave(num)
        return self.sample_locations(labels, generator=generator).reshape(self.num_classes, num, 3)

    def _antithetic_class_samples(self, num: int, generator: torch.Generator) -> Tensor:
        """``2 ceil(num / 2)`` samples of every class in antithetic pairs: ``(C, 2 ceil(num / 2), 3)``.

        A vMF is invariant under the half-turn about its mean ``mu``, ``x -> 2 (mu.x) mu - x``, so each
        sample's half-turn about its own component's mean is another exact sample of the class. The
        pairs cancel the sampling noise of every component's first moment: for a single vMF the Monte
        Carlo objective is exactly symmetric about ``mu``, and the predictor lands on it.
        """
        half = (num + 1) // 2
        labels = torch.arange(self.num_classes).repeat_interleave(half)
        x, mean = self._sample_with_means(labels, generator)
        mirrored = geo.projx(2.0 * geo.inner(mean, x, keepdim=True) * mean - x)
        return torch.stack((x, mirrored), dim=1).reshape(self.num_classes, 2 * half, 3)


# ---------------------------------------------------------------------- module-level helpers


@functools.lru_cache(maxsize=16)
def _padded_params(classes: tuple[tuple[Component, ...], ...]) -> tuple[Tensor, Tensor, Tensor]:
    """See :meth:`KnownAnswerTask._params`; cached because every density call needs it."""
    num_k = max(len(c) for c in classes)
    latlon = torch.zeros(len(classes), num_k, 2, dtype=torch.float64)
    kappa = torch.ones(len(classes), num_k, dtype=torch.float64)
    log_w = torch.full((len(classes), num_k), -math.inf, dtype=torch.float64)
    for i, comps in enumerate(classes):
        # Renormalise: the task accepts weights summing to 1 within 1e-6, the density must be exact.
        total = sum(comp.weight for comp in comps)
        for k, comp in enumerate(comps):
            latlon[i, k] = torch.tensor([comp.lat, comp.lon], dtype=torch.float64)
            kappa[i, k] = comp.kappa
            log_w[i, k] = math.log(comp.weight / total)
    return geo.latlon_to_xyz(latlon), kappa, log_w


def _mixture_log_prob(x: Tensor, mu: Tensor, kappa: Tensor, log_w: Tensor) -> Tensor:
    """``logsumexp_k [log_w_k + log vMF(x; mu_k, kappa_k)]``: ``x (..., 1, 3)`` vs ``mu (..., K, 3)`` -> ``(...)``."""
    return torch.logsumexp(log_w + geo.vmf_log_prob(x, mu, kappa), dim=-1)


def _align_labels(labels: Tensor, batch_shape: torch.Size) -> Tensor:
    """Broadcast ``labels`` whose shape is a leading part of ``batch_shape`` to ``batch_shape``."""
    labels = labels.long()
    extra = len(batch_shape) - labels.dim()
    if extra < 0 or tuple(labels.shape) != tuple(batch_shape[: labels.dim()]):
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not lead locations of shape {tuple(batch_shape)}")
    return labels.reshape(*labels.shape, *([1] * extra)).expand(batch_shape)


@functools.lru_cache(maxsize=16)
def _bayes_predictor_cached(task: KnownAnswerTask, nside: int, num_mc: int, seed: int, beam: int) -> Tensor:
    """Uncached body of :meth:`KnownAnswerTask.bayes_predictor` (the task is frozen, hence hashable)."""
    x = task._antithetic_class_samples(num_mc, torch.Generator().manual_seed(seed))
    return bayes_point(x, nside, beam)


# ---------------------------------------------------------------------- the default task


def default_task(embed_dim: int = 32, noise: float = 0.1, seed: int = 0) -> KnownAnswerTask:
    """Eight classes designed as a fair but hard test of a conditional density on the sphere.

    Spreads are ``6371 / sqrt(kappa)`` km (the angular standard deviation of one component).

    ===  ============================  ===============================  =======  ======  ==========
    c    what it tests                 component (lat, lon)             kappa    weight  spread km
    ===  ============================  ===============================  =======  ======  ==========
    0    one tight mode                Paris (48.86, 2.35)              2000     1.0     ~140
    1    one continent-wide mode       Central Africa (2.0, 21.0)       20       1.0     ~1420
    2    two equal, distant modes      Sydney (-33.87, 151.21)          300      0.5     ~370
                                       Santiago (-33.45, -70.67)        300      0.5     ~370
    3    three unequal modes           Tokyo (35.68, 139.69)            600      0.6     ~260
                                       Mumbai (19.08, 72.88)            300      0.3     ~370
                                       Cairo (30.04, 31.24)             300      0.1     ~370
    4    continent of medium modes     Seattle (47.61, -122.33)         80       0.2     ~710
                                       Denver (39.74, -104.99)          50       0.25    ~900
                                       Chicago (41.88, -87.63)          100      0.3     ~640
                                       Mexico City (19.43, -99.13)      60       0.25    ~820
    5    mass across the north pole    Arctic Ocean (85.0, 30.0)        200      1.0     ~450
    6    across the antimeridian       Vanua Levu, Fiji (-16.6, 179.2)  500      0.6     ~285
                                       Lau Islands, Fiji (-18.2,-178.8) 500      0.4     ~285
    7    broad + tight, one continent  Brazil (-10.0, -55.0)            10       0.6     ~2010
                                       Sao Paulo (-23.55, -46.63)       1000     0.4     ~200
    ===  ============================  ===============================  =======  ======  ==========
    """
    C = Component
    classes = (
        (C(48.86, 2.35, 2000.0, 1.0),),
        (C(2.0, 21.0, 20.0, 1.0),),
        (C(-33.87, 151.21, 300.0, 0.5), C(-33.45, -70.67, 300.0, 0.5)),
        (C(35.68, 139.69, 600.0, 0.6), C(19.08, 72.88, 300.0, 0.3), C(30.04, 31.24, 300.0, 0.1)),
        (C(47.61, -122.33, 80.0, 0.2), C(39.74, -104.99, 50.0, 0.25), C(41.88, -87.63, 100.0, 0.3),
         C(19.43, -99.13, 60.0, 0.25)),
        (C(85.0, 30.0, 200.0, 1.0),),
        (C(-16.6, 179.2, 500.0, 0.6), C(-18.2, -178.8, 500.0, 0.4)),
        (C(-10.0, -55.0, 10.0, 0.6), C(-23.55, -46.63, 1000.0, 0.4)),
    )
    return KnownAnswerTask(classes=classes, embed_dim=embed_dim, noise=noise, seed=seed)
