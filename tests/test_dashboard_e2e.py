"""The dashboard in a real browser: headless Chromium (Debian `chromium` + `chromium-driver`, driven by
Selenium) opens the page while `edge-app run --dashboard` counts a rendered sim video, checks that the counts
appear and then change without a reload (server-sent events), opens the ROI editor on a frozen frame and
saves the polygon through it, and saves a screenshot for the README (`docs/img/dashboard.png`).

The detector is the tiny slot detector of `app_fixtures` (it "sees" bright cells, so on a sim video its
counts are arbitrary but they move); the video loops, so the app keeps counting until the test stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CACHE, REPO, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_helpers import EDGE_APP, running_app, write_app_config  # noqa: E402

CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The README picture is refreshed only on request, so a test run never dirties the work tree.
SCREENSHOT = (REPO / "docs" / "img" / "dashboard.png" if os.environ.get("EDGE_APP_UPDATE_SCREENSHOTS")
              else CACHE / "dashboard-e2e.png")
BIN_ROI = [[40, 20], [280, 20], [280, 225], [40, 225]]  # roughly the bin and its rim in the 320x240 sim frame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None or not CHROMEDRIVER.exists(),
                       reason="headless Chromium is not installed (apt-get install chromium chromium-driver, "
                              "or bash scripts/install-system-deps.sh)"),
]


@pytest.fixture(scope="module")
def sim_video() -> Path:
    """A small rendered packaging-line video (2 bins, 320x240, 10 fps), built once into tests/.cache."""
    out = CACHE / "dashboard" / "sim_320x240"
    video = out / "video.mp4"
    if not video.is_file():
        subprocess.run(["nice", "-n", "10", str(EDGE_APP), "sim", "generate", "--out", str(out), "--width", "320",
                        "--height", "240", "--fps", "10", "--bins", "2", "--sample-every", "0", "--seed", "3"],
                       check=True, capture_output=True, timeout=180)
    return video


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1360,1280",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def number(driver: object, css: str) -> int | None:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)  # type: ignore[attr-defined]
    text = found[0].text.strip() if found else ""
    return int(text) if text.isdigit() else None


def wait_until(predicate, timeout: float = 20.0):  # noqa: ANN001, ANN201 - test helper
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not met within {timeout} s")


def test_the_page_shows_live_counts_and_edits_the_roi(tmp_path: Path, sim_video: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    config = write_app_config(tmp_path, sim_video, roi=BIN_ROI, site="demo-plant", score_threshold=0.55)
    with running_app(config, free_port()) as url:
        driver.get(url)
        card = '.card[data-line="line-1"]'
        first = wait_until(lambda: number(driver, f"{card} .global") is not None and
                           (number(driver, f"{card} .global"), number(driver, f"{card} .local")))
        # the page never reloads: only server-sent events can change what it shows
        wait_until(lambda: (number(driver, f"{card} .global"), number(driver, f"{card} .local")) != first)
        assert wait_until(lambda: number(driver, f"{card} .bins"), timeout=30) >= 1
        assert wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#bins tbody tr"))
        assert driver.find_element(By.ID, "link").text == "live"
        # health is cached for 1 s and may predate the pipeline: wait for the model version to show
        assert wait_until(lambda: "test-slot-detector-1" in driver.find_element(By.ID, "health").text)
        frame = driver.find_element(By.CSS_SELECTOR, f"{card} .frame img")
        assert wait_until(lambda: driver.execute_script("return arguments[0].naturalWidth", frame)) == 320

        # trays per hour needs 10 s of counting; by then the chart has a few points too
        assert wait_until(lambda: number(driver, f"{card} .rate"), timeout=30) > 0
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))

        driver.find_element(By.CSS_SELECTOR, f"{card} .frame button").click()  # Edit ROI
        canvas = driver.find_element(By.ID, "roi-canvas")
        wait_until(lambda: driver.find_element(By.ID, "roi-message").text == "" and canvas.size["width"] >= 300)
        driver.find_element(By.ID, "roi-save").click()
        message = wait_until(lambda: (m := driver.find_element(By.ID, "roi-message")).get_attribute("class")
                             .endswith("saved") and m.text)
        assert "counter uses the new ROI" in message and "config.yaml.bak-" in message
    assert len(list(tmp_path.glob("config.yaml.bak-*"))) == 1
    assert SCREENSHOT.stat().st_size > 20_000
