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
        assert len(bars) == 20 and any(float(b.get_attribute("height")) > 0 for b in bars)
        assert browser.find_element(By.ID, "outlook").text == "NO-GO"  # day 9: the exit outlook is shown
        assert browser.find_element(By.ID, "standing").text == "Off track"  # the verdict of the digests

        browser.find_element(By.LINK_TEXT, keys[XSS_SUBJECT]).click()
        assert browser.find_element(By.TAG_NAME, "h1").text == keys[XSS_SUBJECT]
        assert "<img src=x onerror=alert(1)>" in browser.find_element(By.ID, "thread").text
        assert browser.title.startswith(keys[XSS_SUBJECT])
    finally:
        server.stop()


def _record_decision(app) -> None:  # type: ignore[no-untyped-def]
    """A project manager records the exit decision (the effect of '#decision' or 'exit decide')."""
    import dataclasses

    from config import TeamMember
    from notifier.decision_notice import enqueue_decision_notice
    from tickets.decisions import parse_decision, record_decision

    pm = TeamMember("Pam Manager", "pam@example.com", ("project_manager",))
    app.config = dataclasses.replace(app.config, team=(*app.config.team, pm))
    with app.store.session() as session:
        row = record_decision(session, parse_decision("conditional HC-7 fixed by Friday <b>bold</b>"), pm,
                              app.clock.now(), "cli")
        enqueue_decision_notice(session, app.config, app.renderer, row, app.clock.now())


OVERFLOW = """
const page = document.documentElement.scrollWidth - window.innerWidth;
const sections = Array.from(document.querySelectorAll('section')).map(
    s => [s.id, s.scrollWidth - s.clientWidth, s.getBoundingClientRect().right - window.innerWidth]);
return [page, sections];
"""


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_layout_search_and_decision_at_laptop_and_phone_width(browser, make_app, tmp_path, width, height):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app, keys = build_seeded_app(make_app, tmp_path)
    _record_decision(app)
    server = DashboardServer(app, DashboardSettings(port=0)).start()
    try:
        browser.set_window_size(width, height)
        browser.get(server.url)
        # The exit decision is on the page, escaped.
        decision = browser.find_element(By.ID, "decision").text
        assert decision.startswith("Exit decision: CONDITIONAL GO by Pam Manager") and "<b>bold</b>" in decision
        page, sections = browser.execute_script(OVERFLOW)
        assert page <= 0, f"the page scrolls sideways by {page}px at {width}px"
        for name, inner, right in sections:
            assert right <= 1, f"section {name} sticks out by {right}px at {width}px"
            if width >= 1366 or name not in ("attention", "open-matrix", "search"):
                assert inner <= 1, f"section {name} overflows by {inner}px at {width}px"
        shot = tmp_path / f"dashboard-{width}.png"
        browser.save_screenshot(str(shot))
        assert _png_width(shot.read_bytes()) <= width  # the screenshot is the viewport: nothing cut off to the right
        # Search through the page's own form (the CSP allows a GET form to the page itself).
        box = browser.find_element(By.NAME, "q")
        box.send_keys("vip accounts")
        box.submit()  # as pressing Enter in the field
        WebDriverWait(browser, 10).until(lambda b: "q=vip+accounts" in b.current_url)
        rows = browser.find_elements(By.CSS_SELECTOR, "#found tr td a")
        assert [r.text for r in rows] == [keys["Feature request: colour for VIP accounts"]]
        assert "q=vip+accounts" in browser.current_url
        browser.get(server.url + "?q=%3Cscript%3Ealert(1)%3C/script%3E&status=open")
        assert browser.find_element(By.ID, "found-count").text == "0 tickets found."
        assert browser.find_element(By.NAME, "q").get_attribute("value") == "<script>alert(1)</script>"
    finally:
        server.stop()


def _png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big")
