"""The dashboard in a real headless browser: Debian's chromium driven by selenium through /usr/bin/chromedriver.

Selenium Manager is never asked for anything (the driver path and the browser binary are given), so
nothing is downloaded.  The page is served by the real waitress server on a free port.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
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


def test_status_page_incident_filter_and_exit_decision_by_reply_in_chromium(browser, make_app, tmp_path):
    """Issue 16: /status for every user (no token), the incident filter on the page, and the exit decision a
    project manager recorded by replying '#decision' to their own copy of the exit report, in Chromium."""
    from email import message_from_bytes, policy

    from mailkit import make_mail
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from test_dashboard_seed import NOW
    from test_handover import run
    from test_status_page import storm

    from tickets.lifecycle import find_by_key

    app, _ = build_seeded_app(make_app, tmp_path)
    app.clock.set(NOW - timedelta(minutes=30))
    reports = storm(app, app.clock, "outage")
    app.clock.set(NOW - timedelta(minutes=5))
    signed = app.tokens.reply_address(reports[0], "cleo@example.com", app.clock.now())
    assert app.pipeline.ingest(make_mail(subject=f"Re: [{reports[0]}]", sender="cleo@example.com", to=signed,
                                         body="#update Proxy restart for user4@customer.example, ETA 15:30")).action \
        == "command"
    app.clock.set(NOW)
    run(app, "digest", "exit", "--send")  # Pia (project manager) gets her own copy with a signed Reply-To
    app.outbox.flush(app.transport())
    copies = [message_from_bytes(p.read_bytes(), policy=policy.default)
              for p in app.config.path(app.config.smtp_out.maildir).glob("new/*")]
    [own] = [m for m in copies if m["To"] == "pia@example.com" and "Exit report" in m["Subject"]]
    result = app.pipeline.ingest(make_mail(subject=f"Re: {own['Subject']}", sender="pia@example.com", name="Pia",
                                           to=str(own["Reply-To"]), in_reply_to=own["Message-ID"].strip("<>"),
                                           body="#decision go\nReady for the hand-over <b>now</b>.\n\n> quoted"))
    assert result.action == "command", result
    with app.store.read() as s:
        assert find_by_key(s, reports[0]).incident.key == "INC-1"

    token = "browser-token-0123456789"
    app.environ = {"HC_DASHBOARD_TOKEN": token}
    server = DashboardServer(app, DashboardSettings(port=0, token_env="HC_DASHBOARD_TOKEN")).start()
    try:
        for width, height in ((1366, 768), (390, 844)):
            browser.set_window_size(width, height)
            browser.get(server.url + "status")  # no token: the public page
            assert browser.title.startswith("Service status")
            current = browser.find_element(By.ID, "current").text
            assert "CRM down" in current and "8 reports" in current
            assert "Proxy restart for [email], ETA 15:30" in current
            source = browser.page_source
            assert "customer.example" not in source and "Maria" not in source and reports[0] not in source
            page, sections = browser.execute_script(OVERFLOW)
            assert page <= 0 and all(right <= 1 and inner <= 1 for _, inner, right in sections), (width, sections)
            browser.save_screenshot(str(tmp_path / f"status-{width}.png"))
        browser.get(server.url)
        assert "token required" in browser.find_element(By.TAG_NAME, "body").text  # the dashboard is not public
        browser.get(server.url + f"?token={token}")
        decision = browser.find_element(By.ID, "decision").text
        assert decision.startswith("Exit decision: GO by Pia") and "<b>now</b>" in decision
        Select(browser.find_element(By.NAME, "incident")).select_by_value("INC-1")
        browser.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
        WebDriverWait(browser, 10).until(lambda b: "incident=INC-1" in b.current_url)
        rows = browser.find_elements(By.CSS_SELECTOR, "#found tr td a")
        assert sorted(r.text for r in rows) == sorted(reports)
        assert browser.find_element(By.ID, "found-count").text == "8 tickets found."
    finally:
        server.stop()
