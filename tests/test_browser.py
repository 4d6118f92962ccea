"""The web page in a real browser: Debian's chromium, headless, driven by chromedriver (selenium).

The page is loaded from a server started here; a photo is uploaded through the file input; the test
waits for the map to be drawn and checks that the top places and the country chart show the API's
values for the same photo, then moves the guidance slider and checks that the page re-samples. The
screenshots are kept as test artifacts (``$GLOBEFLOW_ARTIFACTS``, default ``test-artifacts/``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from server_helpers import tiny_predictor, write_jpeg  # noqa: E402

from globeflow.apps.server.run import background_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (tools/install_browser.sh installs them where apt-get "
           "runs as root); none found on PATH")

ARTIFACTS = Path(os.environ.get("GLOBEFLOW_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _api(url: str, photo: Path, guidance: float) -> dict:
    r = httpx.post(f"{url}/api/predict", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                   data={"guidance": str(guidance), "seed": "0"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _shown(driver) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    places = [(li.find_element(By.CLASS_NAME, "name").text, float(li.get_attribute("data-probability")))
              for li in driver.find_elements(By.CSS_SELECTOR, "#topk li")]
    bars = [(b.get_attribute("data-code"), float(b.get_attribute("data-probability")))
            for b in driver.find_elements(By.CSS_SELECTOR, "#countries .bar")]
    return places, bars


def _expected(answer: dict) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    def name(m):
        p = m["place"]
        return ", ".join(x for x in (p["name"], p["admin1"], p["country_code"]) if x)

    return ([(name(m), m["probability"]) for m in answer["top_k"]],
            [(c["key"], c["probability"]) for c in answer["countries"]])


def test_upload_a_photo_and_see_the_answer(browser, tmp_path):
    photo = write_jpeg(tmp_path / "harbour.jpg", (40, 110, 170))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with background_server(tiny_predictor()) as url:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: "tiny-test-model" in d.find_element(By.ID, "model-info").text)
        browser.find_element(By.ID, "file").send_keys(str(photo))
        canvas = browser.find_element(By.ID, "map")
        WebDriverWait(browser, 120).until(lambda d: canvas.get_attribute("data-ready") == "1")
        places, bars = _shown(browser)
        expected_places, expected_bars = _expected(_api(url, photo, 0.0))
        assert places and bars
        assert places == expected_places and bars == expected_bars
        # The bar widths are the probabilities; the percentages are printed next to them.
        first = browser.find_element(By.CSS_SELECTOR, "#countries .bar .pct").text
        assert first == f"{100 * expected_bars[0][1]:.1f}%"
        # The map was drawn: the density raster and outlines give many distinct colours.
        colours = browser.execute_script(
            "const c = document.getElementById('map'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "const s = new Set(); for (let i = 0; i < d.length; i += 4 * 97) s.add(d[i] * 65536 + d[i+1] * 256 + d[i+2]);"
            "return s.size;")
        assert colours > 20
        assert "bits" in browser.find_element(By.ID, "localizability").text
        browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))
        # The guidance slider re-samples: the page shows the API's answer at guidance 2.
        browser.execute_script("const g = document.getElementById('guidance'); g.value = '2';"
                               "g.dispatchEvent(new Event('input')); g.dispatchEvent(new Event('change'));")
        WebDriverWait(browser, 120).until(lambda d: canvas.get_attribute("data-renders") == "2")
        assert _shown(browser) == _expected(_api(url, photo, 2.0))
        assert "guidance 2" in browser.find_element(By.ID, "status").text
        browser.save_screenshot(str(ARTIFACTS / "serve_page_guidance2.png"))
    assert (ARTIFACTS / "serve_page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_file_shows_the_servers_message(browser, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not really a jpeg")
    with background_server(tiny_predictor()) as url:
        browser.get(url)
        browser.find_element(By.ID, "file").send_keys(str(bad))
        error = browser.find_element(By.ID, "error")
        WebDriverWait(browser, 30).until(lambda d: error.is_displayed())
        assert "not an image" in error.text


def _api_many(url: str, photos: list[Path], **fields) -> dict:
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    r = httpx.post(f"{url}/api/predict", files=files, data={"guidance": "0", "seed": "0", **fields}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_several_photos_of_one_place_and_the_country_control(browser, tmp_path):
    photos = [write_jpeg(tmp_path / "street.jpg", (40, 110, 170)), write_jpeg(tmp_path / "church.jpg", (200, 160, 90))]
    with background_server(tiny_predictor()) as url:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: "tiny-test-model" in d.find_element(By.ID, "model-info").text)
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#country-list option"))
        canvas = browser.find_element(By.ID, "map")
        browser.find_element(By.ID, "file").send_keys("\n".join(str(p) for p in photos))
        WebDriverWait(browser, 120).until(lambda d: canvas.get_attribute("data-ready") == "1")
        fused = _api_many(url, photos)
        assert _shown(browser) == _expected(fused)
        shown = [(li.get_attribute("data-source"), float(li.get_attribute("data-bits")))
                 for li in browser.find_elements(By.CSS_SELECTOR, "#contributions li")]
        assert shown == [(c["source"], c["information_bits"]) for c in fused["evidence"]["contributions"]]
        assert "2 photos fused" in browser.find_element(By.ID, "status").text
        # The country control: restrict to the fused answer's top country; map and answers update.
        top = next(c for c in fused["countries"] if c["key"])  # a country, not the sea
        browser.find_element(By.ID, "country-input").send_keys(top["name"])
        browser.find_element(By.ID, "country-add").click()
        WebDriverWait(browser, 120).until(lambda d: canvas.get_attribute("data-renders") == "2")
        within = _api_many(url, photos, within=top["key"])
        assert _shown(browser) == _expected(within)
        assert [(b, p) for b, p in _shown(browser)[1]] == [(top["key"], 1.0)]
        prior = float(browser.find_element(By.ID, "prior-mass").get_attribute("data-prior-mass"))
        assert prior == pytest.approx(within["evidence"]["prior_mass"])
        assert [c.get_attribute("data-code") for c in browser.find_elements(By.CSS_SELECTOR, "#constraint-chips li")] \
            == [top["key"]]
        browser.save_screenshot(str(ARTIFACTS / "serve_page_fused.png"))
        # Not the same place: the first photo's own answer, constrained, and no contributions.
        browser.find_element(By.ID, "same-place").click()
        WebDriverWait(browser, 120).until(lambda d: canvas.get_attribute("data-renders") == "3")
        own = _api_many(url, photos[:1], within=top["key"])
        assert _shown(browser) == _expected(own)
        assert not browser.find_element(By.ID, "evidence").is_displayed()
