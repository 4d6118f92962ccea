"""GPS positions in EXIF: read them from photos, write them into JPEG fixtures.

EXIF stores a position in the GPS IFD (tag ``0x8825``) as ``GPSLatitude`` / ``GPSLongitude``,
each three unsigned rationals (degrees, minutes, seconds), with the hemisphere in
``GPSLatitudeRef`` (``N``/``S``) and ``GPSLongitudeRef`` (``E``/``W``). Writers in the wild differ:
refs come as ``str`` or ``bytes``, in either case, NUL-padded or absent, and some writers put
decimal degrees (or decimal minutes) in the first rational with zeros after it. All of those read
correctly here; anything that cannot be trusted gives ``None`` rather than a wrong position.
"""

from __future__ import annotations

import io
import math
import os
from fractions import Fraction
from typing import Any, Union

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

__all__ = ["GPS_IFD", "gps_from_exif", "gps_ifd", "write_gps_exif"]

GPS_IFD = 0x8825
_LAT_REF, _LAT, _LON_REF, _LON, _STATUS = 1, 2, 3, 4, 9
_MICRO = 10**6  # seconds are written as multiples of a micro-arcsecond (3e-11 degrees)

PathLike = Union[str, "os.PathLike[str]"]


def gps_from_exif(image: Image.Image | PathLike) -> tuple[float, float] | None:
    """``(lat, lon)`` in degrees from an image's EXIF GPS IFD, or ``None``.

    ``image`` is an opened PIL image or a path; a path is opened here (only the header and EXIF
    are read), and Pillow's errors for unreadable files (and decompression bombs) propagate.

    ``None`` when there is no GPS IFD or no latitude/longitude, when a rational has a zero
    denominator or a value is negative, NaN or of the wrong type, when a ref is neither of its two
    letters, when minutes or seconds fall outside [0, 60], when the result is out of range
    (``|lat| > 90``, ``|lon| > 180``), when ``GPSStatus`` is ``V`` (void: no fix), and for exactly
    ``(0, 0)``, which cameras without a fix write and no photo is taken at.
    """
    if isinstance(image, Image.Image):
        return _position(image.getexif().get_ifd(GPS_IFD))
    with Image.open(image) as opened:
        return _position(opened.getexif().get_ifd(GPS_IFD))


def _position(gps: dict[int, Any]) -> tuple[float, float] | None:
    if _text(gps.get(_STATUS)) == "V":
        return None
    lat = _coordinate(gps.get(_LAT), gps.get(_LAT_REF), "NS", 90.0)
    lon = _coordinate(gps.get(_LON), gps.get(_LON_REF), "EW", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None
    return lat, lon


def _text(value: Any) -> str | None:
    """A ref or status value as upper-case text without NUL padding; None when absent."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return "?"  # present but not text: never a valid ref
    return value.strip("\x00 ").upper()


def _number(part: Any) -> float | None:
    """One EXIF rational (IFDRational, ``(num, den)`` pair, int or float) as a float."""
    if isinstance(part, tuple) and len(part) == 2:
        numerator, denominator = part
        if denominator == 0:
            return None
        part = Fraction(numerator, denominator)
    elif isinstance(part, IFDRational) and part.denominator == 0:
        return None
    try:
        number = float(part)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0.0 else None


def _coordinate(value: Any, ref: Any, letters: str, bound: float) -> float | None:
    """Signed degrees from ``(degrees, minutes, seconds)`` and a ref; ``letters`` is positive
    then negative (``"NS"`` or ``"EW"``)."""
    if isinstance(value, (int, float, IFDRational)):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 3:
        return None
    parts = [_number(p) for p in value]
    if any(p is None for p in parts):
        return None
    degrees, minutes, seconds = (*parts, 0.0, 0.0)[:3]
    if minutes > 60.0 or seconds > 60.0:
        return None
    magnitude = degrees + minutes / 60.0 + seconds / 3600.0
    hemisphere = _text(ref)
    if magnitude > bound or hemisphere not in (None, "", *letters):
        return None
    return -magnitude if hemisphere == letters[1] else magnitude


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """``|value|`` as whole degrees, whole minutes and seconds in micro-arcseconds, exactly."""
    micro = round(abs(value) * 3600 * _MICRO)
    degrees, rest = divmod(micro, 3600 * _MICRO)
    minutes, seconds = divmod(rest, 60 * _MICRO)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, _MICRO)


def gps_ifd(lat: float, lon: float) -> dict[int, Any]:
    """The GPS IFD entries (tag -> value) for a position in degrees, as Pillow writes them."""
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"position out of range: lat={lat}, lon={lon}")
    return {
        0: b"\x02\x02\x00\x00",  # GPSVersionID 2.2.0.0
        _LAT_REF: "S" if lat < 0 else "N",
        _LAT: _dms(lat),
        _LON_REF: "W" if lon < 0 else "E",
        _LON: _dms(lon),
    }


def write_gps_exif(image: Image.Image, lat: float, lon: float, *, quality: int = 95) -> bytes:
    """``image`` encoded as JPEG bytes whose EXIF holds only a GPS IFD for ``(lat, lon)``.

    Seconds are stored to a micro-arcsecond, so :func:`gps_from_exif` reads the position back
    to within 1e-10 degrees. The image's own EXIF is not carried over and ``image`` is not
    modified. Raises ``ValueError`` for a non-finite or out-of-range position.
    """
    exif = Image.Exif()
    exif[GPS_IFD] = gps_ifd(lat, lon)
    rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", exif=exif, quality=quality)
    return buffer.getvalue()
