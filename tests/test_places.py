"""Offline reverse geocoding, country look-up and area probabilities (no network)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from globeflow.geo import places

PARIS = (48.8566, 2.3522)
SYDNEY = (-33.8688, 151.2093)
MID_PACIFIC = (0.0, -140.0)
STRASBOURG = (48.58, 7.75)  # west bank of the Rhine
KEHL = (48.57, 7.82)  # east bank, 5 km away


def test_reverse_geocode_paris_and_sydney():
    paris, sydney = places.reverse_geocode(np.array([PARIS, SYDNEY]))
    assert (paris.name, paris.country_code, paris.country) == ("Paris", "FR", "France")
    assert paris.admin1 == "Ile-de-France"
    assert paris.distance_km < 2.0
    assert (sydney.name, sydney.country_code, sydney.country) == ("Sydney", "AU", "Australia")
    d = paris.to_dict()
    assert set(d) == {"lat", "lon", "name", "admin1", "admin2", "country_code", "country", "distance_km"}
    assert d["name"] == "Paris"


def test_reverse_geocode_distance_is_haversine():
    (place,) = places.reverse_geocode(np.array([[48.0, 2.0]]))
    lat1, lon1, lat2, lon2 = map(math.radians, (48.0, 2.0, place.lat, place.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    assert place.distance_km == pytest.approx(2 * 6371.0 * math.asin(math.sqrt(h)), rel=1e-9)


def test_reverse_geocode_is_nearest_across_the_antimeridian():
    # Just east of 180 in Fiji: a lat/lon-degree tree would look for a town near lon -179.9.
    (place,) = places.reverse_geocode(np.array([[-16.7, 179.99]]))
    assert place.country_code == "FJ"
    assert place.distance_km < 100.0


def test_country_codes_cities_sea_and_border():
    codes = places.country_codes(np.array([PARIS, SYDNEY, MID_PACIFIC, STRASBOURG, KEHL]))
    assert codes.tolist() == ["FR", "AU", "", "FR", "DE"]
    assert codes.dtype.kind == "U"


def test_border_pair_lies_on_either_side_of_the_rhine():
    # Both towns' GeoNames entries agree with the polygons, so the pair really straddles the border.
    stras, kehl = places.reverse_geocode(np.array([STRASBOURG, KEHL]))
    assert (stras.name, stras.country_code) == ("Strasbourg", "FR")
    assert (kehl.name, kehl.country_code) == ("Kehl", "DE")


@pytest.mark.parametrize("lat, code", [(71.2, "RU"), (-16.85, "FJ")])  # Wrangel Island, Taveuni
def test_antimeridian_both_signs(lat, code):
    codes = places.country_codes(np.array([[lat, 180.0], [lat, -180.0]]))
    assert codes.tolist() == [code, code]
    keys = places.area_keys(np.array([[lat, 180.0], [lat, -180.0]]), "region")
    assert keys[0] == keys[1] and keys[0].endswith(code)


def test_overseas_departments_take_their_iso_code():
    # Natural Earth draws French Guiana as part of France; GeoNames and ISO call it GF.
    assert places.country_codes(np.array([[4.93, -52.33]])).tolist() == ["GF"]


def test_area_keys_levels():
    pts = np.array([PARIS, MID_PACIFIC])
    assert places.area_keys(pts, "country").tolist() == ["FR", ""]
    assert places.area_keys(pts, "region").tolist() == ["Ile-de-France, FR", ""]
    assert places.area_keys(pts, "city").tolist() == ["Paris, Ile-de-France, FR", ""]


def test_regions_nest_in_countries():
    # East of the Rhine south of Kehl, the nearest town overall is French; the region stays German.
    pt = np.array([[48.46, 7.78]])
    assert places.country_codes(pt).tolist() == ["DE"]
    assert places.reverse_geocode(pt)[0].country_code == "FR"
    assert places.area_keys(pt, "region").tolist() == ["Baden-Wuerttemberg, DE"]


def test_area_probabilities_hand_counted():
    pts = np.array([PARIS, PARIS, PARIS, SYDNEY])
    probs = places.area_probabilities(pts)
    assert [(e["key"], e["country_code"]) for e in probs] == [("FR", "FR"), ("AU", "AU")]
    assert [e["probability"] for e in probs] == pytest.approx([0.75, 0.25])
    assert [e["name"] for e in probs] == ["France", "Australia"]


def test_area_probabilities_keeps_the_sea_and_sums_to_one():
    pts = np.array([PARIS, MID_PACIFIC, MID_PACIFIC, SYDNEY, KEHL])
    probs = places.area_probabilities(pts, "city", top=None)
    assert sum(e["probability"] for e in probs) == pytest.approx(1.0)
    assert probs[0] == {"key": "", "name": "(sea)", "country_code": "", "probability": pytest.approx(0.4)}
    # Ties (0.2 each) are ordered by key.
    assert [e["key"] for e in probs[1:]] == sorted(e["key"] for e in probs[1:])
    assert len(places.area_probabilities(pts, "city", top=2)) == 2


def test_area_probabilities_weights():
    pts = np.array([PARIS, SYDNEY, MID_PACIFIC])
    probs = places.area_probabilities(pts, weights=np.array([2.0, 6.0, 0.0]), top=None)
    assert {e["key"]: e["probability"] for e in probs} == pytest.approx({"AU": 0.75, "FR": 0.25, "": 0.0})
    with pytest.raises(ValueError, match="non-negative"):
        places.area_probabilities(pts, weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        places.area_probabilities(pts, weights=np.ones(2))
    with pytest.raises(ValueError, match="sum to 0"):
        places.area_probabilities(pts, weights=np.zeros(3))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 3)), "shape"),
    (np.zeros(2), "shape"),
    (np.array([[np.nan, 0.0]]), "non-finite"),
    (np.array([[91.0, 0.0]]), "latitude"),
    (np.array([[0.0, -180.5]]), "longitude"),
])
def test_bad_input_names_the_problem(bad, match):
    for fn in (places.reverse_geocode, places.country_codes, places.area_keys):
        with pytest.raises(ValueError, match=match):
            fn(bad)


def test_bad_level():
    with pytest.raises(ValueError, match="level"):
        places.area_keys(np.array([PARIS]), "continent")


def test_empty_input():
    empty = np.zeros((0, 2))
    assert places.reverse_geocode(empty) == []
    assert places.country_codes(empty).shape == (0,)
    assert places.area_keys(empty, "city").shape == (0,)
    with pytest.raises(ValueError, match="no points"):
        places.area_probabilities(empty)


def test_country_codes_sea_fraction():
    # Uniform points: about 71% of the sphere is sea. (Speed is measured by benchmarks/places.py.)
    rng = np.random.default_rng(0)
    n = 20_000
    pts = np.stack((np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)), axis=-1)
    codes = places.country_codes(pts)
    assert 0.65 < (codes == "").mean() < 0.77


def test_country_name():
    assert places.country_name("FR") == "France"
    assert places.country_name("XK") == "Kosovo"
    assert places.country_name("") == ""
