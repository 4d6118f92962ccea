"""Tests for globeflow.data.images (image dataset readers) and globeflow.data.exif (GPS EXIF)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pickle
import struct
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

import globeflow.data.exif as exif_module
import globeflow.data.images as images_module
from globeflow.data.embeddings import DatasetError
from globeflow.data.exif import GPS_IFD, gps_from_exif, write_gps_exif
from globeflow.data.images import ImageRecord, UnreadableImageError, detect_kind, expand_braces, read_images

# --------------------------------------------------------------------------------------------
# Fixtures: tiny images, each a solid colour so a record can be traced to its file


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color))
    return path


def noisy_jpeg(seed: int = 0, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def jpeg_with_gps(gps: dict) -> bytes:
    exif = Image.Exif()
    exif[GPS_IFD] = gps
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width x height`` grey pixels with only one row of data: a bomb's header."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + tag + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def colour(record: ImageRecord) -> tuple[int, int, int]:
    return record.open().getpixel((0, 0))


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def rational(value: float, denominator: int = 1) -> IFDRational:
    return IFDRational(round(value * denominator), denominator)


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
GREY, YELLOW = (128, 128, 128), (250, 250, 0)


# --------------------------------------------------------------------------------------------
# EXIF GPS


@pytest.mark.parametrize(
    "lat, lon",
    [(48.8567, 2.350833), (-33.856784, 151.215297), (40.689247, -74.044502), (-22.9519, -43.2105)],
)
def test_gps_round_trip_in_every_hemisphere(tmp_path, lat, lon):
    path = tmp_path / "photo.jpg"
    path.write_bytes(write_gps_exif(Image.new("RGB", (8, 8)), lat, lon))
    from_path = gps_from_exif(path)
    with Image.open(path) as image:
        from_image = gps_from_exif(image)
    assert from_path == from_image
    assert from_path == pytest.approx((lat, lon), abs=1e-9)
    with Image.open(path) as image:
        refs = image.getexif().get_ifd(GPS_IFD)
    assert (refs[1], refs[3]) == ("N" if lat > 0 else "S", "E" if lon > 0 else "W")


def test_gps_degrees_minutes_seconds_exact():
    # 48°51'24.12"N 2°21'3.0"E
    gps = {
        1: "N",
        2: (IFDRational(48, 1), IFDRational(51, 1), IFDRational(2412, 100)),
        3: "E",
        4: (IFDRational(2, 1), IFDRational(21, 1), IFDRational(30, 10)),
    }
    lat, lon = gps_from_exif(Image.open(io.BytesIO(jpeg_with_gps(gps))))
    assert lat == pytest.approx(48.856700, abs=1e-6)
    assert lon == pytest.approx(2.350833, abs=1e-6)
    assert lat == pytest.approx(48 + 51 / 60 + 24.12 / 3600, abs=1e-12)


@pytest.mark.parametrize(
    "lat_ref, lon_ref, signs",
    [
        ("s", "w", (-1, -1)),
        (b"S\x00", b"E\x00", (-1, 1)),
        (b"n", "W ", (1, -1)),
        (None, None, (1, 1)),
    ],
)
def test_gps_refs_lowercase_bytes_or_missing(lat_ref, lon_ref, signs):
    image = Image.new("RGB", (4, 4))
    gps = image.getexif().get_ifd(GPS_IFD)
    gps.update({2: (rational(10), rational(30), rational(0)), 4: (rational(20), 0, 0)})
    if lat_ref is not None:
        gps[1], gps[3] = lat_ref, lon_ref
    assert gps_from_exif(image) == (signs[0] * 10.5, signs[1] * 20.0)


def test_gps_decimal_degrees_in_first_rational():
    gps = {1: "S", 2: (rational(33.856784, 10**6), 0, 0), 3: "E", 4: (rational(151.2153, 10**4),)}
    position = gps_from_exif(Image.open(io.BytesIO(jpeg_with_gps(gps))))
    assert position == pytest.approx((-33.856784, 151.2153), abs=1e-9)


@pytest.mark.parametrize(
    "gps",
    [
        {},  # EXIF present, no GPS IFD entries
        {1: "N", 2: (IFDRational(1, 0), 0, 0), 3: "E", 4: (rational(2), 0, 0)},  # zero denominator
        {1: "N", 2: (rational(95), 0, 0), 3: "E", 4: (rational(2), 0, 0)},  # latitude > 90
        {1: "N", 2: (rational(45), 0, 0), 3: "E", 4: (rational(181), 0, 0)},  # longitude > 180
        {1: "N", 2: (rational(45), rational(75), 0), 3: "E", 4: (rational(2), 0, 0)},  # 75 minutes
        {1: "X", 2: (rational(45), 0, 0), 3: "E", 4: (rational(2), 0, 0)},  # unknown ref
        {1: "N", 2: (rational(45), 0, 0), 3: "E"},  # no longitude
        {1: "N", 2: (rational(45), 0, 0), 3: "E", 4: (rational(2), 0, 0), 9: "V"},  # void fix
        {1: "N", 2: (0, 0, 0), 3: "E", 4: (0, 0, 0)},  # (0, 0): camera without a fix
    ],
)
def test_gps_untrustworthy_values_give_none(gps):
    assert gps_from_exif(Image.open(io.BytesIO(jpeg_with_gps(gps)))) is None


def test_gps_missing_gives_none(tmp_path):
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(noisy_jpeg(size=8))
    assert gps_from_exif(plain) is None
    assert gps_from_exif(Image.new("RGB", (2, 2))) is None


def test_write_gps_exif_rejects_bad_positions():
    with pytest.raises(ValueError, match="out of range"):
        write_gps_exif(Image.new("RGB", (2, 2)), 91.0, 0.0)
    with pytest.raises(ValueError, match="out of range"):
        write_gps_exif(Image.new("RGB", (2, 2)), 0.0, math.nan)


# --------------------------------------------------------------------------------------------
# Decoding and unreadable images


def test_folder_with_corrupt_and_truncated_images(tmp_path):
    folder = tmp_path / "photos"
    write_png(folder / "good.png", RED)
    blue = Image.new("RGB", (8, 8), BLUE)
    (folder / "good.jpg").write_bytes(write_gps_exif(blue, -12.5, 130.25))
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(1).bytes(600))
    (folder / "truncated.jpg").write_bytes(noisy_jpeg()[:1500])
    (folder / "notes.txt").write_text("not an image")
    source = read_images(folder)
    assert source.kind == "files"
    ids = [r.id for r in source]
    # good.jpg and good.png share the id "good": the second (by sorted path) is skipped.
    assert ids == ["corrupt", "good", "truncated"]
    duplicate = f"duplicate id 'good' (first seen at {folder / 'good.jpg'})"
    assert source.skipped == [(str(folder / "good.png"), duplicate)]
    by_id = {r.id: r for r in source}
    assert (by_id["good"].lat, by_id["good"].lon) == pytest.approx((-12.5, 130.25))
    assert math.isnan(by_id["corrupt"].lat) and math.isnan(by_id["truncated"].lon)
    image = by_id["good"].open()
    assert image.mode == "RGB" and image.size == (8, 8)
    reasons = {
        "corrupt": "not an image (format not recognised; accepted: JPEG",
        "truncated": "cannot decode image: image file is truncated",
    }
    for name, reason in reasons.items():
        with pytest.raises(UnreadableImageError, match=f"{name}.jpg") as info:
            by_id[name].open()
        assert info.value.source == str(folder / f"{name}.jpg")
        assert info.value.reason.startswith(reason)
        assert isinstance(info.value, DatasetError)


def test_missing_file_and_non_rgb_modes(tmp_path):
    missing = ImageRecord("gone", 1.0, 2.0, {}, str(tmp_path / "gone.jpg"))
    with pytest.raises(UnreadableImageError, match="no such file"):
        missing.open()
    for mode, value in (("L", 77), ("RGBA", (1, 2, 3, 4)), ("P", 5)):
        path = tmp_path / f"{mode}.png"
        Image.new(mode, (3, 3), value).save(path)
        image = ImageRecord(mode, 0.0, 0.0, {}, str(path)).open()
        assert image.mode == "RGB" and image.size == (3, 3)
    grey = ImageRecord("L", 0.0, 0.0, {}, str(tmp_path / "L.png")).open()
    assert grey.getpixel((1, 1)) == (77, 77, 77)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (20, 10), GREY).save(path, exif=exif)
    assert ImageRecord("r", 0.0, 0.0, {}, str(path)).open().size == (10, 20)


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (10_000, 10_000)])
@pytest.mark.parametrize("warning_filter", ["ignore", "error"])
def test_decompression_bomb_is_rejected(tmp_path, width, height, warning_filter):
    # 1e10 pixels trips Pillow's own error; 1e8 only a Pillow warning, which is not enough alone,
    # and which must not escape as a bare warning exception under -W error.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(width, height))
    record = ImageRecord("bomb", 0.0, 0.0, {}, str(path))
    with warnings.catch_warnings():
        warnings.simplefilter(warning_filter)
        with pytest.raises(UnreadableImageError) as info:
            record.open()
    assert info.value.source == str(path)
    assert info.value.reason.startswith("decompression bomb")
    assert Image.MAX_IMAGE_PIXELS == images_module.MAX_PIXELS  # the global is left alone


def test_max_pixels_limit(tmp_path):
    record = ImageRecord("small", 0.0, 0.0, {}, str(write_png(tmp_path / "small.png", RED)))
    with pytest.raises(UnreadableImageError) as info:
        record.open(max_pixels=23)
    assert info.value.reason == "decompression bomb: 6x4 = 24 pixels exceeds the limit of 23"
    assert record.open(max_pixels=24).size == (6, 4)


def test_unreadable_error_pickles():
    error = pickle.loads(pickle.dumps(UnreadableImageError("a.tar:b.jpg", "cannot decode")))
    assert (error.source, error.reason) == ("a.tar:b.jpg", "cannot decode")
    assert str(error) == "a.tar:b.jpg: cannot decode"


# --------------------------------------------------------------------------------------------
# files


def test_folder_order_is_sorted_and_deterministic(tmp_path):
    for name in ("b.png", "a/c.png", "a.png", "A/z.jpeg", ".hidden/x.png", "a/.y.png"):
        write_png(tmp_path / name, GREY)
    first, second = read_images(tmp_path), read_images(tmp_path)
    ids = [r.id for r in first]
    assert ids == ["A/z", "a/c", "a", "b"]  # component by component; hidden names ignored
    assert ids == [r.id for r in second]
    assert first.root == str(tmp_path)


def test_single_file_list_and_glob(tmp_path):
    one = write_png(tmp_path / "x" / "one.png", RED)
    two = write_png(tmp_path / "y" / "two.png", GREEN)
    single = read_images(one)
    assert [r.id for r in single] == ["one"] and single.root == str(one.parent.absolute())
    listed = read_images([two, one])
    assert [r.id for r in listed] == ["y/two", "x/one"]  # given order, ids relative to tmp_path
    assert [colour(r) for r in listed] == [GREEN, RED]
    globbed = read_images(str(tmp_path / "*" / "*.png"))
    assert [r.id for r in globbed] == ["x/one", "y/two"]
    with pytest.raises(DatasetError, match="no such file or folder"):
        read_images(tmp_path / "absent")
    with pytest.raises(DatasetError, match="matches no image files"):
        read_images(str(tmp_path / "*.gif"))


@pytest.mark.parametrize("lat_name, lon_name", [("lat", "lon"), ("latitude", "longitude")])
def test_folder_with_labels_csv(tmp_path, lat_name, lon_name):
    folder = tmp_path / "photos"
    for name in ("a/x.png", "b/y.png", "z.png", "c/1.png", "d/1.png"):
        write_png(folder / name, GREY)
    labels = write_csv(
        tmp_path / "labels.csv",
        f"id,{lat_name},{lon_name},country",
        [
            "a/x,10.5,20.25,FR",  # row 0: relative path
            "y.png,-5,170,",  # row 1: stem with extension, empty country omitted
            "ghost,1,1,XX",  # row 2: no such image
            "z,123.0,5,YY",  # row 3: bad latitude
            "1,0,0,ZZ",  # row 4: stem shared by c/1 and d/1
            "a/x.png,1,1,FR",  # row 5: second label for a/x
        ],
    )
    source = read_images(folder, labels=labels)
    by_id = {r.id: r for r in source}
    assert [r.id for r in source] == ["a/x", "b/y", "c/1", "d/1", "z"]
    x, y = by_id["a/x"], by_id["b/y"]
    assert (x.lat, x.lon, x.metadata) == (10.5, 20.25, {"country": "FR"})
    assert (y.lat, y.lon, y.metadata) == (-5.0, 170.0, {})
    assert math.isnan(by_id["z"].lat)
    where = [w for w, _ in source.skipped]
    assert where == [f"{labels} row {n}" for n in (2, 3, 4, 5)]
    reasons = dict(source.skipped)
    assert reasons[f"{labels} row 3"] == f"{lat_name} 123.0 is out of range [-90, 90]"
    assert "no image file for id 'ghost'" in reasons[f"{labels} row 2"]
    assert "matches 2 images" in reasons[f"{labels} row 4"]
    assert "duplicate label" in reasons[f"{labels} row 5"]

    strict = read_images(folder, labels=labels, require_location=True)
    assert [r.id for r in strict] == ["a/x", "b/y"]
    assert len(strict.skipped) == len(source.skipped) + 3
    assert strict.skipped[-1] == (str(folder / "z.png"), f"no location (no row in {labels})")


def test_labels_missing_column(tmp_path):
    write_png(tmp_path / "photos" / "a.png", RED)
    labels = write_csv(tmp_path / "labels.csv", "id,latitude,country", ["a,1,FR"])
    message = r"labels.csv: missing required column\(s\) lon/lng/longitude"
    with pytest.raises(DatasetError, match=message):
        read_images(tmp_path / "photos", labels=labels)


def test_exif_locations_and_require_location(tmp_path):
    paris = write_gps_exif(Image.new("RGB", (4, 4)), 48.8567, 2.3508)
    (tmp_path / "paris.jpg").write_bytes(paris)
    write_png(tmp_path / "unknown.png", RED)
    source = read_images(tmp_path)
    assert [(r.id, r.has_location) for r in source] == [("paris", True), ("unknown", False)]
    strict = read_images(tmp_path, require_location=True)
    assert [r.id for r in strict] == ["paris"]
    assert strict.skipped == [(str(tmp_path / "unknown.png"), "no location (no EXIF GPS position)")]


# --------------------------------------------------------------------------------------------
# osv5m


def make_osv5m(root: Path) -> Path:
    write_png(root / "images" / "test" / "00" / "101.jpg", RED)
    write_png(root / "images" / "test" / "01" / "102.jpg", GREEN)
    write_png(root / "images" / "test" / "01" / "103.jpg", BLUE)
    write_png(root / "images" / "test" / "01" / "104.jpg", GREY)
    write_png(root / "images" / "train" / "00" / "105.jpg", YELLOW)  # other split: not found
    return write_csv(
        root / "test.csv",
        "id,latitude,longitude,thumb_original_url,country,sequence,region,sub-region,city",
        [
            "103,-33.5,151.25,http://x/3,AU,s,New South Wales,Sydney,Sydney",  # row 0
            "101,48.85,2.35,http://x/1,FR,s,Ile-de-France,Paris,Paris",  # row 1
            "102,40.7,-74.0,http://x/2,US,s,New York,,New York",  # row 2
            "104,123.0,5.0,http://x/4,XX,s,r,s,c",  # row 3: bad latitude
            "105,1.0,1.0,http://x/5,XX,s,r,s,c",  # row 4: image only in the train split
            "101,1.0,1.0,http://x/1,FR,s,r,s,c",  # row 5: duplicate id
        ],
    )


def test_osv5m_layout(tmp_path):
    table = make_osv5m(tmp_path)
    for path in (tmp_path, table):
        source = read_images(path)
        assert source.kind == "osv5m" and source.root == str(tmp_path)
        assert [r.id for r in source] == ["103", "101", "102"]  # CSV order
        assert [colour(r) for r in source] == [BLUE, RED, GREEN]
        first = source.records[0]
        assert (first.lat, first.lon) == (-33.5, 151.25)
        assert first.metadata == {
            "country": "AU", "region": "New South Wales", "sub-region": "Sydney", "city": "Sydney"
        }  # fmt: skip
        assert source.records[2].metadata == {
            "country": "US", "region": "New York", "city": "New York"
        }  # fmt: skip
        assert first.source == str(tmp_path / "images" / "test" / "01" / "103.jpg")
        reasons = dict(source.skipped)
        assert list(reasons) == [f"{table} row {n}" for n in (3, 4, 5)]
        assert reasons[f"{table} row 3"] == "latitude 123.0 is out of range [-90, 90]"
        assert "no image file 105.jpg" in reasons[f"{table} row 4"]
        assert reasons[f"{table} row 5"] == f"duplicate id '101' (first seen at {table} row 1)"


def test_osv5m_root_with_two_tables_needs_the_csv(tmp_path):
    table = make_osv5m(tmp_path)
    (tmp_path / "train.csv").write_text(table.read_text())
    with pytest.raises(DatasetError, match="found test.csv, train.csv; pass the CSV"):
        read_images(tmp_path, kind="osv5m")
    assert len(read_images(table)) == 3


def test_osv5m_missing_columns(tmp_path):
    (tmp_path / "images").mkdir()
    table = write_csv(tmp_path / "test.csv", "id,lat,lon,country", ["1,2,3,FR"])
    message = r"test.csv: missing required column\(s\) latitude, longitude"
    with pytest.raises(DatasetError, match=message):
        read_images(table, kind="osv5m")


# --------------------------------------------------------------------------------------------
# inat21


def make_inat(root: Path) -> Path:
    fox, oak = "train/00001_Animalia_fox", "train/00002_Plantae_oak"
    write_png(root / "train" / "00001_Animalia_fox" / "a.jpg", RED)
    write_png(root / "train" / "00002_Plantae_oak" / "b.jpg", GREEN)
    write_png(root / "train" / "00002_Plantae_oak" / "c.jpg", BLUE)
    data = {
        "images": [
            {"id": 7, "file_name": f"{fox}/a.jpg", "latitude": 51.5, "longitude": -0.12},
            {"id": 8, "file_name": f"{oak}/b.jpg", "latitude": None, "longitude": None},
            {"id": 9, "file_name": f"{oak}/c.jpg", "latitude": -41.3, "longitude": 174.8},
            {"id": 10, "file_name": "train/missing.jpg", "latitude": 1.0, "longitude": 1.0},
            {"id": 11, "latitude": 1.0, "longitude": 1.0},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1},
            {"id": 2, "image_id": 9, "category_id": 2},
        ],
        "categories": [{"id": 1, "name": "Vulpes vulpes"}, {"id": 2, "name": "Quercus robur"}],
    }
    path = root / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_inat21_json(tmp_path):
    path = make_inat(tmp_path)
    source = read_images(path)
    assert source.kind == "inat21" and source.root == str(tmp_path)
    assert [(r.id, r.lat, r.lon, r.metadata) for r in source] == [
        ("7", 51.5, -0.12, {"category": "Vulpes vulpes"}),
        ("9", -41.3, 174.8, {"category": "Quercus robur"}),
    ]
    assert [colour(r) for r in source] == [RED, BLUE]
    assert source.skipped == [
        (f"{path} images[1]", "latitude and longitude are missing"),
        (f"{path} images[3]", f"missing image file {tmp_path / 'train' / 'missing.jpg'}"),
        (f"{path} images[4]", "missing file_name"),
    ]


def test_inat21_image_root_and_errors(tmp_path):
    path = make_inat(tmp_path / "data")
    moved = tmp_path / "json" / "train.json"
    moved.parent.mkdir()
    path.rename(moved)
    assert len(read_images(moved)) == 0  # images are not next to the JSON any more
    assert len(read_images(moved, images=tmp_path / "data")) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json: not a readable JSON file"):
        read_images(bad)
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DatasetError, match="missing 'images' list"):
        read_images(bad)


# --------------------------------------------------------------------------------------------
# yfcc


def test_yfcc_mp16_csv_with_relative_ids(tmp_path):
    write_png(tmp_path / "images" / "9e" / "0d" / "3905128742.jpg", RED)
    write_png(tmp_path / "images" / "17" / "c7" / "2366361917.jpg", GREEN)
    table = write_csv(
        tmp_path / "mp16.csv",
        "IMG_ID,AUTHOR,LAT,LON,city,country",
        [
            "17/c7/2366361917.jpg,someone,35.68,139.69,Tokyo,Japan",
            "9e/0d/3905128742.jpg,other,-1.29,36.82,Nairobi,Kenya",
            "aa/bb/1.jpg,nobody,1.0,1.0,,",
            "9e/0d/3905128742.jpg,other,abc,36.82,,",
        ],
    )
    source = read_images(table)
    assert source.kind == "yfcc" and source.root == str(tmp_path / "images")
    assert [(r.id, r.lat, r.lon) for r in source] == [
        ("17/c7/2366361917.jpg", 35.68, 139.69),
        ("9e/0d/3905128742.jpg", -1.29, 36.82),
    ]
    assert source.records[0].metadata == {"city": "Tokyo", "country": "Japan"}
    assert [colour(r) for r in source] == [GREEN, RED]
    assert source.skipped == [
        (f"{table} row 2", f"missing image file {tmp_path / 'images' / 'aa' / 'bb' / '1.jpg'}"),
        (f"{table} row 3", "LAT 'abc' is not a number"),
    ]


def test_yfcc_plain_ids_probe_extensions(tmp_path):
    write_png(tmp_path / "pics" / "111.png", RED)
    write_png(tmp_path / "pics" / "222.jpg", GREEN)
    rows = ["222,1,2", "111,3,4", "333,5,6"]
    table = write_csv(tmp_path / "yfcc.csv", "photo_id,latitude,longitude", rows)
    source = read_images(table, kind="yfcc", images=tmp_path / "pics")
    assert [(r.id, Path(r.source).name) for r in source] == [("222", "222.jpg"), ("111", "111.png")]
    assert [w for w, _ in source.skipped] == [f"{table} row 2"]
    no_lat = write_csv(tmp_path / "nolat.csv", "photo_id,LON", ["1,2"])
    message = r"nolat.csv: missing required column\(s\) lat/latitude"
    with pytest.raises(DatasetError, match=message):
        read_images(no_lat)


# --------------------------------------------------------------------------------------------
# webdataset


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_shards(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    first, second = root / "shards-000.tar", root / "shards-001.tar"
    with tarfile.open(first, "w") as tar:
        add_member(tar, "s0001.jpg", png_bytes(RED))  # PNG bytes in a .jpg member: still decodes
        values = {"lat": 48.85, "lon": 2.35, "country": "FR", "tags": ["a", 1], "n": None}
        add_member(tar, "s0001.json", json.dumps(values).encode())
        add_member(tar, "s0002.png", png_bytes(GREEN))
        values = {"latitude": -33.9, "longitude": 18.4, "city": "Cape Town"}
        add_member(tar, "s0002.json", json.dumps(values).encode())
        add_member(tar, "s0003.json", json.dumps({"lat": 1.0, "lon": 1.0}).encode())  # no image
    with tarfile.open(second, "w") as tar:
        add_member(tar, "sub/s0004.lat", b"35.68\n")
        add_member(tar, "sub/s0004.lon", b" 139.69")
        add_member(tar, "sub/s0004.webp", png_bytes(BLUE))
        add_member(tar, "s0005.jpg", png_bytes(GREY))  # no location
        add_member(tar, "s0006.jpg", png_bytes(YELLOW))
        add_member(tar, "s0006.json", json.dumps({"lat": 95.0, "lon": 1.0}).encode())
        add_member(tar, "s0001.jpg", png_bytes(GREY))  # key already used in the first shard
    return [first, second]


def test_webdataset_shards(tmp_path):
    first, second = make_shards(tmp_path)
    source = read_images(str(tmp_path / "shards-{000..001}.tar"))
    assert source.kind == "webdataset" and source.root == str(tmp_path.absolute())
    assert [r.id for r in source] == ["s0001", "s0002", "sub/s0004", "s0005"]
    s1, s2, s4, s5 = source.records
    assert (s1.lat, s1.lon, s1.metadata) == (48.85, 2.35, {"country": "FR", "tags": '["a",1]'})
    assert (s2.lat, s2.lon, s2.metadata) == (-33.9, 18.4, {"city": "Cape Town"})
    assert (s4.lat, s4.lon, s4.metadata) == (35.68, 139.69, {})
    assert math.isnan(s5.lat) and math.isnan(s5.lon)
    assert (s4.path, s4.member) == (str(second), "sub/s0004.webp")
    assert s4.source == f"{second}:sub/s0004.webp"
    assert s1.member == "s0001.jpg" and s1.path == str(first)
    assert source.skipped == [
        (f"{first}:s0003", "no image member (has: json)"),
        (f"{second}:s0006", "lat 95.0 is out of range [-90, 90]"),
        (f"{second}:s0001", f"duplicate id 's0001' (first seen at {first}:s0001)"),
    ]
    # Lazy: records hold a byte span, not bytes, and decode after the source is built.
    offset, size = s2.span
    assert first.read_bytes()[offset : offset + size] == png_bytes(GREEN)
    assert [colour(r) for r in source] == [RED, GREEN, BLUE, GREY]
    by_name = ImageRecord("s0002", 0.0, 0.0, {}, "x", str(first), "s0002.png")  # no span: by name
    assert colour(by_name) == GREEN

    strict = read_images([first, second], require_location=True)
    assert [r.id for r in strict] == ["s0001", "s0002", "sub/s0004"]
    assert (f"{second}:s0005", "no location (json lat/lon or .lat/.lon members)") in strict.skipped
    assert [r.id for r in read_images(str(tmp_path / "shards-*.tar"))] == [r.id for r in source]


def test_webdataset_truncated_shard_and_bad_tar(tmp_path):
    first, _ = make_shards(tmp_path)
    source = read_images(first)
    cut = tmp_path / "cut.tar"
    data = first.read_bytes()
    cut.write_bytes(data)
    records = [dataclasses.replace(r, path=str(cut)) for r in source]
    cut.write_bytes(data[: records[1].span[0] + 10])
    assert colour(records[0]) == RED
    with pytest.raises(UnreadableImageError, match="shard truncated"):
        records[1].open()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x00\x01not a tar" * 10)
    with pytest.raises(DatasetError, match="bad.tar: not a readable"):
        read_images(bad)
    with pytest.raises(DatasetError, match="no such shard"):
        read_images(str(tmp_path / "shards-{000..002}.tar"))


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("s-{000..003}.tar", ["s-000.tar", "s-001.tar", "s-002.tar", "s-003.tar"]),
        ("{8..10}", ["8", "9", "10"]),
        ("{3..1}", ["3", "2", "1"]),
        ("{a,b}{1,2}", ["a1", "a2", "b1", "b2"]),
        ("x{a,b{1..2}}y", ["xay", "xb1y", "xb2y"]),
        ("plain.tar", ["plain.tar"]),
        ("{single}.tar", ["{single}.tar"]),
        ("open{1..2", ["open{1..2"]),
    ],
)
def test_expand_braces(pattern, expected):
    assert expand_braces(pattern) == expected


# --------------------------------------------------------------------------------------------
# Auto-detection and arguments


def test_auto_detection_picks_each_layout(tmp_path):
    osv = make_osv5m(tmp_path / "osv")
    inat = make_inat(tmp_path / "inat")
    shards = make_shards(tmp_path / "wds")
    write_png(tmp_path / "yfcc" / "images" / "5.jpg", RED)
    yfcc = write_csv(tmp_path / "yfcc" / "data.csv", "IMG_ID,LAT,LON", ["5,1,2"])
    write_png(tmp_path / "plain" / "a.png", RED)
    write_png(tmp_path / "plain" / "images" / "b.png", RED)  # images/ but no OSV-5M CSV
    cases = [
        (tmp_path / "osv", "osv5m"),
        (osv, "osv5m"),
        (inat, "inat21"),
        (yfcc, "yfcc"),
        (shards[0], "webdataset"),
        (str(tmp_path / "wds" / "shards-{000..001}.tar"), "webdataset"),
        (shards, "webdataset"),
        (tmp_path / "plain", "files"),
        ([tmp_path / "plain" / "a.png", shards[0]], "files"),
    ]
    for path, kind in cases:
        assert detect_kind(path) == kind, path
    for path, kind in cases[:-1]:
        source = read_images(path)
        assert source.kind == kind and len(source) > 0, path


def test_argument_errors(tmp_path):
    write_png(tmp_path / "a.png", RED)
    with pytest.raises(ValueError, match="unknown kind 'coco'"):
        read_images(tmp_path, kind="coco")
    with pytest.raises(ValueError, match="labels is only used with kind='files'"):
        read_images(tmp_path, kind="yfcc", labels=tmp_path / "l.csv")
    with pytest.raises(ValueError, match="images is not used with kind='files'"):
        read_images(tmp_path, images=tmp_path)
    with pytest.raises(DatasetError, match="no path given"):
        read_images([])
    with pytest.raises(DatasetError, match="l.csv: no such file"):
        read_images(tmp_path, labels=tmp_path / "l.csv")


@pytest.mark.parametrize("module", [images_module, exif_module])
def test_all_names_import(module):
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_sixteen_bit_and_float_images_keep_their_tones():
    """convert("RGB") alone clips 16-bit values above 255 (a white image); decoding rescales them."""
    from globeflow.data.images.records import decode_image

    ramp = np.linspace(0, 60000, 64 * 32).reshape(32, 64).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    rgb = np.asarray(decode_image(buf.getvalue(), "ramp16.png"), dtype=np.float64)
    assert rgb.shape == (32, 64, 3)
    np.testing.assert_allclose(rgb[..., 0], ramp / 257.0, atol=0.51)
    floats = io.BytesIO()
    Image.fromarray(np.linspace(-1, 3, 100, dtype=np.float32).reshape(10, 10), mode="F").save(floats, format="TIFF")
    grey = np.asarray(decode_image(floats.getvalue(), "f.tif"))[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and np.all(np.diff(grey.reshape(-1).astype(int)) >= 0)


def test_only_photo_formats_are_decoded():
    """EPS would run Ghostscript on the data; it is refused as 'not an image' before any decoder runs."""
    from globeflow.data.images.records import IMAGE_FORMATS, UnreadableImageError, decode_image

    eps = io.BytesIO()
    Image.new("RGB", (20, 10), (10, 20, 30)).save(eps, format="EPS")
    with pytest.raises(UnreadableImageError, match="not an image") as err:
        decode_image(eps.getvalue(), "drawing.eps")
    assert "drawing.eps" in str(err.value) and all(f in str(err.value) for f in IMAGE_FORMATS)
    for fmt in ("WEBP", "TIFF", "GIF", "BMP"):
        buf = io.BytesIO()
        Image.new("RGB", (20, 10), (10, 20, 30)).save(buf, format=fmt)
        assert decode_image(buf.getvalue(), f"x.{fmt.lower()}").size == (20, 10)
