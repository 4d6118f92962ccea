"""The README's picture of the web page: the demo model answering one Blue Marble test patch.

Needs the demo model and its maps (``globeflow demo``) and Debian's chromium + chromium-driver:

    python tools/serve_screenshot.py --out docs/serve_page.png
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from globeflow.apps.demos.blue_marble import DEFAULT_MODEL
from globeflow.apps.server.run import background_server, load_predictor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", default="runs/demo/maps/unseen-00000-patch.png")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--out", default="docs/serve_page.png")
    a = p.parse_args(argv)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    try:
        with background_server(load_predictor(a.model)) as url:
            driver.get(url)
            driver.find_element(By.ID, "file").send_keys(str(Path(a.photo).resolve()))
            canvas = driver.find_element(By.ID, "map")
            WebDriverWait(driver, 300).until(lambda d: canvas.get_attribute("data-ready") == "1")
            time.sleep(0.5)  # let the photo preview finish painting
            driver.save_screenshot(a.out)
    finally:
        driver.quit()
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
