"""OSV-5M administrative accuracy: nearest GeoNames city keys on known places, NaN and masking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from globeflow.evaluation import admin as metrics_admin
from globeflow.evaluation.admin import ADMIN_LEVELS, admin_accuracy, admin_keys

PARIS = (48.8566, 2.3522)
PARIS_WEST = (48.8566, 2.3044)  # 3.5 km west, near the Champ de Mars; still nearest to Paris itself
NEUILLY = (48.8566, 2.2840)  # 5 km west, inside the Bois de Boulogne: nearest town is Neuilly-sur-Seine
LYON = (45.7640, 4.8357)
SYDNEY = (-33.8688, 151.2093)
MELBOURNE = (-37.8136, 144.9631)
STRASBOURG = (48.5734, 7.7521)
KEHL = (48.5722, 7.8155)  # 4.7 km east, across the Rhine


def _acc(pred, true):
    return admin_accuracy(np.array([pred]), np.array([true]))


def test_all_names_importable():
    for name in metrics_admin.__all__:
        assert hasattr(metrics_admin, name)


def test_keys_follow_osv5m_format():
    keys = admin_keys(np.array([PARIS, KEHL]))
    assert set(keys) == set(ADMIN_LEVELS)
    assert list(keys["country"]) == ["FR", "DE"]
    assert keys["region"][0] == "Ile-de-France, FR"
    assert keys["sub_region"][0] == "Paris, Ile-de-France, FR"
    assert keys["city"][0] == "Paris, Paris, Ile-de-France, FR"
    assert keys["city"][1] == "Kehl, Freiburg Region, Baden-Wuerttemberg, DE"


def test_same_city():
    out = _acc(PARIS_WEST, PARIS)
    assert [out[f"acc_{lv}"] for lv in ADMIN_LEVELS] == [1.0, 1.0, 1.0, 1.0]


def test_five_km_away_is_another_town_of_the_same_region():
    # cities1000 lists every suburb, so 5 km from the centre is already another "city" and département.
    out = _acc(NEUILLY, PARIS)
    assert [out[f"acc_{lv}"] for lv in ADMIN_LEVELS] == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("a, b", [(LYON, PARIS), (MELBOURNE, SYDNEY)])
def test_same_country_other_region(a, b):
    out = _acc(a, b)
    assert [out[f"acc_{lv}"] for lv in ADMIN_LEVELS] == [1.0, 0.0, 0.0, 0.0]


def test_across_the_rhine_is_another_country():
    out = _acc(KEHL, STRASBOURG)
    assert [out[f"acc_{lv}"] for lv in ADMIN_LEVELS] == [0.0, 0.0, 0.0, 0.0]


def test_batch_fractions():
    true = np.array([PARIS, PARIS, SYDNEY, STRASBOURG])
    pred = np.array([PARIS_WEST, LYON, MELBOURNE, KEHL])
    out = admin_accuracy(pred, true)
    # country: Paris, Lyon, Melbourne right, Kehl wrong; region and below: only the Paris pair.
    assert out["acc_country"] == pytest.approx(3 / 4)
    assert out["acc_region"] == out["acc_sub_region"] == out["acc_city"] == pytest.approx(1 / 4)
    assert out["n"] == 4 and out["n_invalid"] == 0
    assert all(out[f"n_{lv}"] == 4 for lv in ADMIN_LEVELS)


def test_nan_prediction_is_a_miss_not_dropped():
    true = np.array([PARIS, SYDNEY])
    pred = np.array([PARIS_WEST, [math.nan, math.nan]])
    out = admin_accuracy(pred, true)
    assert out["n"] == 2 and out["n_invalid"] == 1
    for lv in ADMIN_LEVELS:
        assert out[f"acc_{lv}"] == pytest.approx(0.5)
        assert out[f"n_{lv}"] == 2
    keys = admin_keys(pred)
    assert all(keys[lv][1] == "" for lv in ADMIN_LEVELS)


def test_out_of_range_prediction_is_a_miss():
    out = admin_accuracy(np.array([[91.0, 0.0]]), np.array([PARIS]))
    assert out["acc_country"] == 0.0 and out["n_invalid"] == 1


def test_masked_ground_truth_leaves_the_denominator():
    pred = np.array([PARIS_WEST, LYON, MELBOURNE])
    true_keys = {
        "country": ["FR", "FR", None],  # third row unknown: not a hit although Melbourne is in AU
        "region": ["Ile-de-France, FR", "", "Victoria, AU"],
        "sub_region": [float("nan"), "Departement du Rhone, Rhone-Alpes, FR", None],
        "city": ["Paris, Paris, Ile-de-France, FR", "Lyon, Departement du Rhone, Rhone-Alpes, FR",
                 "Sydney, City of Sydney, New South Wales, AU"],
    }
    out = admin_accuracy(pred, true_keys=true_keys)
    assert (out["n_country"], out["n_region"], out["n_sub_region"], out["n_city"]) == (2, 2, 1, 3)
    assert out["acc_country"] == 1.0
    assert out["acc_region"] == 1.0  # Paris and Melbourne rows
    assert out["acc_sub_region"] == 1.0  # only the Lyon row has a sub-region, and it matches
    assert out["acc_city"] == pytest.approx(2 / 3)


def test_true_keys_override_some_levels_and_coordinates_fill_the_rest():
    pred = np.array([PARIS_WEST, LYON])
    out = admin_accuracy(pred, np.array([PARIS, PARIS]), true_keys={"country": ["FR", None]})
    assert out["n_country"] == 1 and out["acc_country"] == 1.0
    assert out["n_region"] == 2 and out["acc_region"] == 0.5


def test_all_masked_level_is_nan():
    out = admin_accuracy(np.array([PARIS]), np.array([PARIS]), true_keys={"city": [None]})
    assert out["n_city"] == 0 and math.isnan(out["acc_city"])
    assert out["acc_country"] == 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"true": None}, "true coordinates are needed"),
    ({"true": np.array([[math.nan, 0.0]])}, "invalid"),
    ({"true": np.array([PARIS, PARIS])}, "same shape"),
    ({"true": np.array([PARIS]), "true_keys": {"town": ["x"]}}, "levels"),
    ({"true": np.array([PARIS]), "true_keys": {"city": ["a", "b"]}}, "entries"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        admin_accuracy(np.array([PARIS]), **kwargs)


def test_keys_from_dataset_columns_match_the_geocoded_keys():
    from globeflow.evaluation.admin import admin_keys, keys_from_columns
    from globeflow.geo.places import reverse_geocode

    pts = np.array([[48.8566, 2.3522], [-33.8688, 151.2093], [40.7128, -74.0060]])
    places = reverse_geocode(pts)
    columns = {"country": [p.country_code for p in places], "region": [p.admin1 for p in places],
               "sub-region": [p.admin2 for p in places], "city": [p.name for p in places]}
    keys = keys_from_columns(columns)
    geocoded = admin_keys(pts)
    for level in ("country", "region", "sub_region", "city"):
        assert keys[level] == list(geocoded[level])
    # A missing part masks that row at its level and every finer one; a missing column stops the levels.
    columns["region"][1] = None
    keys = keys_from_columns(columns)
    assert keys["country"][1] == "AU" and keys["region"][1] is None and keys["city"][1] is None
    assert set(keys_from_columns({"country": ["FR"], "city": ["Paris"]})) == {"country"}
