"""``globeflow serve``'s JSON API on a real server: answers, limits, JSON errors, the queue, assets.

A tiny random model with the real offline encoder answers; every bad request must get a 4xx JSON
error naming the problem, and the server must go on answering good requests afterwards.
"""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")

from server_helpers import jpeg_bytes, tiny_predictor  # noqa: E402

from globeflow.apps.server import density_grid  # noqa: E402
from globeflow.apps.server.run import background_server  # noqa: E402
from globeflow.inference.density import DensityMap  # noqa: E402
from globeflow.viz import DYNAMIC_RANGE_NATS  # noqa: E402

LIMIT = 60_000  # bytes: small, so that the oversized upload stays small too


@pytest.fixture(scope="module")
def url():
    with background_server(tiny_predictor(max_upload_bytes=LIMIT, max_pixels=1_000_000)) as base:
        yield base


def _post(url, data: bytes, name="photo.jpg", **fields):
    return httpx.post(f"{url}/api/predict", files={"image": (name, data, "application/octet-stream")},
                      data={k: str(v) for k, v in fields.items()}, timeout=60)


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]["message"]


def test_health_names_the_model_and_the_limits(url):
    h = httpx.get(f"{url}/api/health").json()
    assert h["status"] == "ok" and h["model"]["kind"] == "rfm" and h["model"]["encoder"] == "efficientnet-lite0@32"
    assert h["limits"]["max_upload_bytes"] == LIMIT and h["queue"]["max_pending"] == 32


def test_predict_answers_with_places_countries_regions_and_the_density_grid(url):
    r = _post(url, jpeg_bytes(), seed=3)
    assert r.status_code == 200, r.text
    a = r.json()
    probabilities = [m["probability"] for m in a["top_k"]]
    assert 1 <= len(probabilities) <= 3 and probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-9
    assert all(m["place"]["country_code"] or m["place"]["name"] for m in a["top_k"])
    assert abs(sum(c["probability"] for c in a["countries"])) <= 1 + 1e-9
    areas = [c["area_km2"] for c in a["credible_regions"]]
    assert areas == sorted(areas) and areas[-1] <= 4 * np.pi * 6371.0 ** 2 * 1.001  # nested regions
    assert a["localizability"]["bits"] > -0.5 and a["settings"]["seed"] == 3 and a["image"]["width"] == 48
    grid = a["density"]
    values = np.frombuffer(base64.b64decode(grid["data"]), dtype=np.uint8)
    assert values.size == grid["width"] * grid["height"] == 72 * 36 and values.max() == 255
    # Same photo and seed: the same answer; another guidance: a re-sampled one, recorded.
    assert _post(url, jpeg_bytes(), seed=3).json()["top_k"] == a["top_k"]
    assert _post(url, jpeg_bytes(), seed=3, guidance=2).json()["settings"]["guidance"] == 2.0


def test_density_grid_quantises_the_top_nats():
    """The top cell is 255, a cell DYNAMIC_RANGE_NATS below it is 1, anything fainter is 0."""
    nside = 2
    logp = np.full(12 * nside ** 2, -50.0)
    logp[0], logp[1], logp[2] = 3.0, 3.0 - DYNAMIC_RANGE_NATS, 3.0 - DYNAMIC_RANGE_NATS / 2
    dmap = DensityMap(logp, np.full_like(logp, nside))
    grid = density_grid(dmap, 720)
    values = set(np.frombuffer(base64.b64decode(grid["data"]), dtype=np.uint8).tolist())
    assert values == {0, 1, 128, 255} and grid["max_log_density"] == 3.0


def test_bad_uploads_get_json_errors_and_the_server_keeps_answering(url):
    good = jpeg_bytes()
    truncated = good[: len(good) // 2]
    assert "cannot decode" in _error(_post(url, truncated), 422, "unreadable_image")
    _error(_post(url, b"this is not an image at all", name="notes.txt"), 415, "not_an_image")
    eps = io.BytesIO()
    Image.new("RGB", (20, 10)).save(eps, format="EPS")  # PostScript: never handed to Ghostscript
    _error(_post(url, eps.getvalue(), name="x.eps"), 415, "not_an_image")
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    big = io.BytesIO()
    Image.fromarray(noise).save(big, format="PNG")  # incompressible: ~120 KB > the 60 KB limit
    assert len(big.getvalue()) > LIMIT
    assert str(LIMIT) in _error(_post(url, big.getvalue()), 413, "upload_too_large")
    bomb = io.BytesIO()
    Image.new("1", (2000, 1000)).save(bomb, format="PNG")  # a few hundred bytes, 2 M pixels > 1 M allowed
    assert len(bomb.getvalue()) < 2000
    assert "decompression bomb" in _error(_post(url, bomb.getvalue()), 413, "image_too_large")
    assert "..." in _error(_post(url, good, guidance="lots" * 100), 422, "bad_parameter")  # not echoed whole
    _error(_post(url, good, guidance=99), 422, "bad_parameter")
    _error(httpx.post(f"{url}/api/predict", data={"x": "1"}), 422, "missing_image")
    _error(_post(url, b""), 422, "empty_image")
    _error(httpx.get(f"{url}/api/nothing-here"), 404, "http_error")
    assert _post(url, good).status_code == 200


def test_a_trickled_upload_times_out_and_frees_its_slot():
    """A client that never finishes its upload gets 408, and its slot is free again."""
    import socket
    import time
    from urllib.parse import urlparse

    with background_server(tiny_predictor(read_timeout_s=0.5, max_pending=1)) as base:
        where = urlparse(base)
        with socket.create_connection((where.hostname, where.port)) as s:
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Content-Length: 5000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; "
                      b"filename=\"a.jpg\"\r\n\r\n\xff\xd8")
            t0, reply = time.monotonic(), ""
            s.settimeout(10)
            while "}}" not in reply and time.monotonic() - t0 < 10:  # headers and the JSON body
                chunk = s.recv(65536).decode("latin-1")
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith("HTTP/1.1 408") and '"upload_timeout"' in reply
        assert httpx.get(f"{base}/api/health").json()["queue"]["pending"] == 0
        assert _post(base, jpeg_bytes()).status_code == 200


def test_responses_carry_the_security_headers(url):
    for response in (httpx.get(url), httpx.get(f"{url}/api/health"), _post(url, b"nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"].startswith("default-src 'self'")


def test_twenty_concurrent_requests_all_complete(url):
    colours = [(10 * i, 200 - 5 * i, 90) for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda c: _post(url, jpeg_bytes(c)), colours))
    assert [r.status_code for r in responses] == [200] * 20
    assert httpx.get(f"{url}/api/health").json()["queue"]["pending"] == 0


def test_a_full_queue_answers_503_and_recovers():
    """With one slot, a request arriving while another is being answered is refused at once."""
    release = threading.Event()
    predictor = tiny_predictor(max_pending=1)
    answer = predictor.answer_photos

    def slow(*args):
        release.wait(30)
        return answer(*args)

    predictor.answer_photos = slow
    with background_server(predictor) as base, ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, base, jpeg_bytes())
        while httpx.get(f"{base}/api/health").json()["queue"]["pending"] == 0:
            pass
        busy = _post(base, jpeg_bytes())
        assert "busy" in _error(busy, 503, "busy") and busy.headers["retry-after"] == "1"
        release.set()
        assert first.result().status_code == 200
        assert _post(base, jpeg_bytes()).status_code == 200


def test_schema_and_assets_are_local(url):
    schema = httpx.get(f"{url}/api/openapi.json").json()
    body = schema["paths"]["/api/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["image"] and {"guidance", "seed"} <= set(body["properties"])
    assert httpx.get(f"{url}/docs").status_code == 404  # Swagger UI would load scripts from a CDN
    page = httpx.get(url)
    assert page.status_code == 200 and "/static/app.js" in page.text
    static = resources.files("globeflow.apps.server") / "static"
    for name in ("index.html", "app.js", "app.css"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text, f"{name} refers to another server"
        assert httpx.get(f"{url}/static/{name}").status_code == 200
    world = httpx.get(f"{url}/assets/world.json").json()
    assert len(world["rings"]) > 200
    lon, lat = np.concatenate([np.asarray(r) for r in world["rings"]]).T
    assert lon.min() >= -180 and lon.max() <= 180 and lat.min() >= -90 and lat.max() <= 90


def test_serve_without_a_model_trains_the_demo_model_first(tmp_path, monkeypatch):
    """No --model and no demo model yet: the Blue Marble demo runs once, then its model is served."""
    import globeflow.apps.demos.blue_marble as demo
    import globeflow.apps.server.run as run

    calls = []

    def fake_demo(out, **kwargs):  # stands in for the 10-minute training: writes a model where it would
        calls.append(out)
        tiny_predictor().locator.save(out / "rfm")

    monkeypatch.setattr(demo, "DEFAULT_MODEL", tmp_path / "demo" / "rfm")
    monkeypatch.setattr(demo, "run_blue_marble_demo", fake_demo)
    predictor = run.load_predictor(demo.demo_model(progress=False))
    assert calls == [tmp_path / "demo"] and predictor.encoder.name == "efficientnet-lite0@32"
    run.load_predictor(demo.demo_model(progress=False))
    assert len(calls) == 1  # the second start finds the model


def test_serve_with_a_missing_model_is_a_clear_cli_error(tmp_path, capsys):
    from globeflow.apps.cli import main

    assert main(["serve", "--model", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err


def test_idle_and_slow_header_connections_are_closed_and_connections_are_capped():
    """Issue 16, defect 11: an idle socket and a slow-header socket each stayed open for over 70 s."""
    import socket
    import time
    from urllib.parse import urlparse

    def closed_within(sock, seconds):
        """Seconds until the server closes ``sock`` (reading what it still sends, e.g. the rest of a
        response that arrived in two segments), or None if it is still open after ``seconds``."""
        t0 = time.monotonic()
        while (left := seconds - (time.monotonic() - t0)) > 0:
            sock.settimeout(left)
            try:
                if sock.recv(65536) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                return None
        return None

    with background_server(tiny_predictor(header_timeout_s=0.5, keep_alive_s=0.5, max_connections=3)) as base:
        where = urlparse(base)
        idle = socket.create_connection((where.hostname, where.port))
        slow = socket.create_connection((where.hostname, where.port))
        slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        assert closed_within(idle, 5) is not None and closed_within(slow, 5) is not None
        idle.close(), slow.close()
        # A prompt client is served, and its kept-alive connection closes once idle.
        with socket.create_connection((where.hostname, where.port)) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            assert closed_within(s, 5) is not None
        # Beyond max_connections open connections, a request gets 503 (and the held ones still work).
        held = [socket.create_connection((where.hostname, where.port)) for _ in range(3)]
        time.sleep(0.1)
        try:
            assert httpx.get(f"{base}/api/health", timeout=10).status_code == 503
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)
        assert httpx.get(f"{base}/api/health", timeout=10).status_code == 200


def test_decoding_memory_is_budgeted_by_mode_and_bit_depth():
    """A float TIFF takes ~13 bytes per pixel to decode and convert, an 8-bit JPEG ~8: the budget is
    of bytes, estimated from the header before decoding, not of pixels alone."""
    from globeflow.data.images import UnreadableImageError
    from globeflow.data.images.records import decode_bytes, decode_image

    def encoded(mode, fmt):
        buf = io.BytesIO()
        Image.new(mode, (1000, 1000), 1.0 if mode == "F" else 0).save(buf, format=fmt)
        return buf.getvalue()

    assert decode_bytes("F", 10**6) == 13 * 10**6 and decode_bytes("RGB", 10**6) == 8 * 10**6
    assert decode_bytes("I;16", 10**6) == 11 * 10**6
    tiff, jpeg = encoded("F", "TIFF"), encoded("RGB", "JPEG")
    budget = 10 * 2**20  # between the two: the JPEG fits, the float TIFF of the same size does not
    assert decode_image(jpeg, "a.jpg", max_bytes=budget).size == (1000, 1000)
    with pytest.raises(UnreadableImageError, match=r"1000x1000 F image would take about 12 MB, over the limit of 10 MB"):
        decode_image(tiff, "b.tif", max_bytes=budget)
    with background_server(tiny_predictor(max_decode_mb=10)) as base:
        r = _post(base, tiff, name="b.tif")
        assert r.status_code in (400, 413, 422) and "would take about 12 MB" in r.text
        assert _post(base, jpeg_bytes()).status_code == 200


def test_several_photos_are_fused_and_constraints_restrict_the_answer(url):
    photos = [("a.jpg", jpeg_bytes((30, 90, 160))), ("b.jpg", jpeg_bytes((200, 170, 90)))]
    files = [("image", (n, d, "image/jpeg")) for n, d in photos]
    r = httpx.post(f"{url}/api/predict", files=files, data={"seed": "1"}, timeout=60)
    assert r.status_code == 200, r.text
    fused = r.json()
    assert [c["source"] for c in fused["evidence"]["contributions"]] == ["a.jpg", "b.jpg"]
    assert [i["name"] for i in fused["images"]] == ["a.jpg", "b.jpg"]
    assert all(c["information_bits"] >= 0 for c in fused["evidence"]["contributions"])
    top = next(c["key"] for c in fused["countries"] if c["key"])  # a country, not the sea
    r = httpx.post(f"{url}/api/predict", files=files, data={"seed": "1", "within": top}, timeout=60)
    assert r.status_code == 200, r.text
    within = r.json()
    assert [(c["key"], c["probability"]) for c in within["countries"]] == [(top, 1.0)]
    assert 0 < within["evidence"]["prior_mass"] <= 1
    assert within["evidence"]["constraints"] == {"within": [top]}


@pytest.mark.parametrize("fields, code, message", [
    ({"within": "QQ"}, "bad_constraints", "no country has the code QQ"),
    ({"within": "France"}, "bad_constraints", "'FRANCE' is not an ISO 3166"),
    ({"on_land": "maybe"}, "bad_parameter", "on_land must be 1 or 0"),
])
def test_bad_constraints_are_422_naming_the_field(url, fields, code, message):
    assert message in _error(_post(url, jpeg_bytes(), **fields), 422, code)


def test_more_photos_than_the_limit_are_refused(url):
    files = [("image", (f"{i}.jpg", jpeg_bytes(), "image/jpeg")) for i in range(9)]
    r = httpx.post(f"{url}/api/predict", files=files, timeout=60)
    assert r.status_code in (400, 413, 422), r.text
    assert "error" in r.json()
