"""The dashboard in a real headless browser: Debian's chromium driven by selenium through /usr/bin/chromedriver.

Selenium Manager is never asked for anything (the driver path and the browser binary are given), so
nothing is downloaded.  The page is served by the real waitress server on a free port.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import need_service
from test_dashboard_seed import XSS_SUBJECT, build_seeded_app

from config import DashboardSettings
from dashboard.server import DashboardServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def start_chromium(tmp_path: Path, *extra_flags: str):  # type: ignore[no-untyped-def]
    """Headless chromium through chromedriver; *extra_flags* e.g. a host-resolver rule (DNS rebinding)."""
    need_service(Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(),
                 "chromium/chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1400,1400", *extra_flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = start_chromium(tmp_path)
    yield driver
    driver.quit()


def test_dashboard_in_chromium(browser, make_app, tmp_path):
    from selenium.webdriver.common.by import By

    app, keys = build_seeded_app(make_app, tmp_path)
    server = DashboardServer(app, DashboardSettings(port=0)).start()
    try:
        browser.get(server.url)
        assert browser.title.startswith("Hypercare dashboard")  # the injected script did not rename it
        table = browser.find_element(By.ID, "attention")
        assert keys["breached"] in table.text and keys["at_risk"] in table.text
        subjects = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#attention td.subject")]
        assert XSS_SUBJECT in subjects  # shown as text, exactly as the reporter typed it
        assert browser.find_elements(By.CSS_SELECTOR, "#attention script") == []
        chart = browser.find_element(By.ID, "trend-chart")
        assert chart.size["width"] > 200 and chart.size["height"] > 50
        bars = browser.find_elements(By.CSS_SELECTOR, "#trend-chart rect.bar")
        assert len(bars) == 28 and any(float(b.get_attribute("height")) > 0 for b in bars)
        assert browser.find_element(By.ID, "outlook").text == "NO-GO"

        browser.find_element(By.LINK_TEXT, keys[XSS_SUBJECT]).click()
        assert browser.find_element(By.TAG_NAME, "h1").text == keys[XSS_SUBJECT]
        assert "<img src=x onerror=alert(1)>" in browser.find_element(By.ID, "thread").text
        assert browser.title.startswith(keys[XSS_SUBJECT])
    finally:
        server.stop()
