"""Answers of a density known on a map: a fused or constrained density has no sampler of its own.

Its samples are drawn from the map itself: a cell with probability its mass, then a point uniform in
the cell (a random descendant 12 levels down the nested grid, ~0.02% of the cell across), redrawn
until it passes the constraints' exact point test. Each sample's log-density is its cell's value
(the density the map represents is constant over a cell's allowed part). Every answer is then read
as for one photo (:func:`~globeflow.inference.answers.assemble_answer`): the best guess (highest
expected GeoScore among the samples), the places, the country/region/city shares of the samples, the
credible regions of the map and the localizability of the samples' log-densities. So a constraint to
one country puts every sample, and so the best guess, inside it, and its country probability is 1.

The price: the best guess and the places are resolved to the map's cells (``--nside``), not to the
exact samples of a single photo's answer.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ... import geo
from ...geo import healpix as hgrid
from ...geo import places
from ..answers import Answer, AnswerConfig, TopPlace, Truth, assemble_answer
from ..calibration import Recalibration
from ..density import DensityMap
from ..locator import seed_list
from ..points import best_expected_geoscore
from .constraints import EXCLUDED_LOG_DENSITY, AllowedArea, Constraints, constrain_map

__all__ = ["sample_map", "answer_from_map", "constrain_answer", "constrain_answers", "constraint_evidence"]

#: Levels below the map's cells at which a sample's position is drawn.
_SUB_LEVELS = 12
#: Redraws of a sample whose point falls outside the allowed part of its cell.
_REDRAWS = 64


def sample_map(dmap: DensityMap, num: int, rng: np.random.Generator, *, constraints: Constraints | None = None,
               area: AllowedArea | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``num`` draws from the density a map represents: ``(latlon (num, 2) degrees, log-density (num,))``.

    With ``constraints`` (and their ``area`` at the map's nside), every point passes
    :meth:`Constraints.allows`; a cell whose allowed part is missed ``_REDRAWS`` times gives its known
    allowed point instead.
    """
    nside = dmap.nside
    q = dmap.probabilities()
    cells = rng.choice(q.size, size=num, p=q / q.sum())
    sub = min(_SUB_LEVELS, 29 - int(math.log2(nside)))
    fine = nside << sub
    xyz = np.empty((num, 3))
    constrained = constraints is not None and constraints.active
    todo = np.arange(num)
    for _ in range(_REDRAWS if constrained else 1):
        kids = cells[todo] * 4 ** sub + rng.integers(0, 4 ** sub, size=todo.size)
        xyz[todo] = np.stack(hgrid.pix2vec(fine, kids, nest=True), axis=-1)
        todo = todo[~constraints.allows(_latlon(xyz[todo]))] if constrained else todo[:0]
        if not todo.size:
            break
    if todo.size:
        if area is None:
            raise ValueError("sample_map needs the allowed area with constraints")
        xyz[todo] = area.inside_xyz[cells[todo]]
    lp = dmap.log_density[cells]
    if area is not None:
        # The map holds a cell's mean density (its mass over its whole area); inside its allowed
        # part the density is that over the allowed share.
        lp = lp - np.log(np.maximum(area.fraction[cells], 1e-300))
    return _latlon(xyz), lp


def _latlon(xyz: np.ndarray) -> np.ndarray:
    return geo.xyz_to_latlon(torch.from_numpy(np.asarray(xyz, dtype=np.float64))).numpy()


def answer_from_map(dmap: DensityMap, config: AnswerConfig, *, seed: int, settings: dict[str, Any],
                    evidence: dict[str, Any], truth: np.ndarray | None = None, truth_lp: float | None = None,
                    constraints: Constraints | None = None, area: AllowedArea | None = None,
                    recal: Recalibration | None = None, warnings: tuple[str, ...] = ()) -> Answer:
    """The full answer of the normalised density ``dmap`` (see the module docstring); ``truth (2,)``
    with its exact log-density ``truth_lp`` under the same density adds the truth section."""
    rng = np.random.default_rng(seed)
    ll, lp = sample_map(dmap, config.num_samples, rng, constraints=constraints, area=area)
    best = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(torch.from_numpy(ll))[None]))[0].tolist()
    answer = assemble_answer(dmap, ll, lp, (None, None), best, truth, truth_lp, config, settings, recal)
    if constraints is not None and constraints.active and area is not None:
        answer = replace(answer, top_k=_allowed_places(answer.top_k or (), dmap, constraints, area))
    # assemble_answer's "no error check" warning is about a single answer's option; here the
    # measured errors are the per-photo maps' own (in ``map``), and the caller says what applies.
    kept = tuple(w for w in answer.warnings or () if not w.startswith("no numerical error check"))
    return replace(answer, warnings=kept + tuple(warnings), evidence=evidence)


def _allowed_places(top: tuple[TopPlace, ...], dmap: DensityMap, constraints: Constraints,
                    area: AllowedArea) -> tuple[TopPlace, ...]:
    """The places with their peak moved into the allowed area: a mode is a cell, and the centre of a
    cell on the area's border may lie outside it (a place "in Morocco" under ``--within DZ``). The
    peak moves to the cell's known allowed point, with its names and probabilities read there."""
    out = []
    for t in top:
        if bool(constraints.allows(np.array([[t.lat, t.lon]]))[0]):
            out.append(t)
            continue
        cell = int(dmap.latlon_cells(np.array([[t.lat, t.lon]]))[0])
        lat, lon = _latlon(area.inside_xyz[cell][None])[0]
        within = {k: dmap.probability_within(lat, lon, float(k)) for k in t.within_km}
        radius = dmap.probability_within(lat, lon, t.radius_km)
        name = places.reverse_geocode(np.array([[lat, lon]]))[0]
        code = str(places.country_codes(np.array([[lat, lon]]))[0])
        out.append(replace(t, lat=float(lat), lon=float(lon), probability=radius, within_km=within, place=name,
                           country_code=code))
    return tuple(out)


def constraint_evidence(constraints: Constraints, prior_mass: float) -> dict[str, Any]:
    """What an answer says of its constraints."""
    return {"constraints": constraints.describe(), "prior_mass": prior_mass,
            "prior_mass_meaning": "the probability the model gave the allowed area before it was told the "
                                  "constraints (near 0: they contradict the photo)"}


def _constrained_truth(truth: Truth, constraints: Constraints, prior_mass: float) -> tuple[np.ndarray, float]:
    t = np.array([truth.lat, truth.lon])
    if not bool(constraints.allows(t[None])[0]):
        # The truth is outside the allowed area: the constrained density there is 0.
        return t, EXCLUDED_LOG_DENSITY
    return t, truth.log_density - math.log(prior_mass)


def constrain_answer(answer: Answer, constraints: Constraints, config: AnswerConfig, *, seed: int,
                     recal: Recalibration | None = None) -> Answer:
    """A one-photo answer restricted to ``constraints``: its map constrained and renormalised, its
    numbers read off that map (:func:`answer_from_map`), and the prior mass of the allowed area."""
    if answer.density_map is None:
        raise ValueError("constraints need a model with a density (an rfm model): its map is restricted")
    dmap, prior, area = constrain_map(answer.density_map, constraints)
    truth, truth_lp = (None, None)
    if answer.truth is not None:
        truth, truth_lp = _constrained_truth(answer.truth, constraints, prior)
    settings = dict(answer.settings or {})
    evidence = {"photos": 1, **constraint_evidence(constraints, prior)}
    out = answer_from_map(dmap, config, seed=seed, settings=settings, evidence=evidence, truth=truth,
                          truth_lp=truth_lp, constraints=constraints, area=area, recal=recal,
                          warnings=_prior_warning(prior))
    facts = {**(out.map or {}), **{k: v for k, v in (answer.map or {}).items()
                                   if k in ("densest_cells_error_nats", "samples_error_nats", "evaluations", "nfe")}}
    return replace(out, map=facts, source=answer.source, image_size=answer.image_size)


def _prior_warning(prior: float) -> tuple[str, ...]:
    if prior < 1e-3:
        return (f"the model gave the allowed area only {prior:.2g} of its probability before the constraints: "
                "they contradict the photo, and the answer inside them rests on the model's far tail",)
    return ()


def constrain_answers(answers: list[Answer], constraints: Constraints | None, config: AnswerConfig,
                      seed: Any, recal: Recalibration | None = None) -> list[Answer]:
    """:func:`constrain_answer` for a batch (``seed``: one int, or one per answer); unchanged when
    there are no constraints."""
    if constraints is None or not constraints.active:
        return answers
    return [constrain_answer(a, constraints, config, seed=s or 0, recal=recal)
            for a, s in zip(answers, seed_list(seed, len(answers)))]
