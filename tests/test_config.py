"""config.py: every section parses, and every mistake is one line naming the key to fix."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from config import ConfigError, find_config_path, load_config, parse_config


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "hypercare.toml"
    path.write_text(text)
    return load_config(path)


def test_embedded_defaults_when_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config_path(None, environ={}) is None
    cfg = load_config(None)
    assert cfg.support.address == "support@localhost" and cfg.smtp_in.port == 2525
    assert cfg.database.url == "sqlite:///var/hypercare.db" and cfg.smtp_out.maildir == "var/outbox"
    assert cfg.dashboard.port == 8025 and cfg.imap is None


def test_config_path_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hypercare.toml").write_text("")
    assert find_config_path("x.toml", environ={"HYPERCARE_CONFIG": "y.toml"}) == Path("x.toml")
    assert find_config_path(None, environ={"HYPERCARE_CONFIG": "y.toml"}) == Path("y.toml")
    assert find_config_path(None, environ={}) == Path("hypercare.toml")


def test_full_design_example_parses(tmp_path):
    cfg = load(tmp_path, """
[support]
address = "support@example.com"
name = "CRM Hypercare Support"
ticket_prefix = "HC"
[hypercare]
go_live = "2026-11-23"
timezone = "Europe/Berlin"
business_hours = "09:00-17:00"
business_days = "Mon-Fri"
holidays = "DE"
sprint_start = "2026-11-23"
sprint_days = 14
digest_time = "08:00"
weekly_summary_day = "Mon"
[database]
url = "sqlite:///var/hypercare.db"
[imap]
host = "imap.example.com"
port = 993
security = "ssl"
username = "support@example.com"
password_env = "IMAP_PW"
folder = "INBOX"
processed_folder = "Processed"
idle = true
poll_seconds = 30
[smtp_in]
host = "127.0.0.1"
port = 2525
[smtp_out]
host = "smtp.example.com"
port = 587
security = "starttls"
username = "u"
password_env = "SMTP_PW"
[dashboard]
host = "127.0.0.1"
port = 8025
[[team]]
name = "Ada"
email = "ada@example.com"
roles = ["crm_admin"]
on_call = true
[stakeholders]
daily = ["cio@example.com"]
weekly = ["sponsor@example.com"]
[rules]
file = "rules.toml"
[sla]
P1 = "1h"
P2 = "4h"
P3 = "1 business day"
P4 = "next sprint"
escalate_at = [0.5, 0.8, 1.0]
[exit]
sla_target = 0.95
no_p1_days = 3
""")
    assert cfg.hypercare.go_live == date(2026, 11, 23) and cfg.hypercare.business_days == frozenset(range(5))
    assert cfg.hypercare.business_start == time(9) and cfg.hypercare.business_end == time(17)
    assert cfg.imap is not None and cfg.imap.host == "imap.example.com" and cfg.imap.idle is True
    assert cfg.team[0].roles == ("crm_admin",) and cfg.team_member("ADA@example.com") is not None
    assert cfg.stakeholders.daily == ("cio@example.com",)
    assert cfg.sla.escalate_at == (0.5, 0.8, 1.0) and cfg.sla.targets["P3"] == "1 business day"
    assert cfg.exit.sla_target == 0.95 and cfg.exit.no_p1_days == 3
    assert cfg.path("var/x") == tmp_path / "var" / "x"


@pytest.mark.parametrize(("text", "needle"), [
    ("[support]\naddress = 'not-an-address'\n", "[support] address: expected an email address"),
    ("[support]\nticket_prefix = 'hc-'\n", "[support] ticket_prefix"),
    ("[hypercare]\nbusiness_hours = '17:00-09:00'\n", "[hypercare] business_hours: start must be before end"),
    ("[hypercare]\nbusiness_days = 'Funday'\n", "[hypercare] business_days: expected a weekday"),
    ("[hypercare]\ngo_live = 'tomorrow'\n", "[hypercare] go_live: expected a date"),
    ("[smtp_in]\nport = 'twenty'\n", "[smtp_in] port: must be a whole number, got 'twenty'"),
    ("[smtp_in]\nenabled = 'yes'\n", "[smtp_in] enabled: must be true or false, got 'yes'"),
    ("[support]\nname = 3\n", "[support] name: must be a text in quotes, got 3"),
    ("[hypercare]\nexit_date = 'friday'\n", "[hypercare] exit_date: expected a date like 2026-11-23"),
    ("[hypercare]\nexit_date = '2026-12-18\\u0000'\n", "[hypercare] exit_date: expected a date"),
    ("[hypercare]\nexit_date = 20261218\n", "[hypercare] exit_date: expected a date"),
    ("[exit]\nsla_min_sample = 0\n", "[exit] sla_min_sample: expected a whole number of responses"),
    ("[exit]\nsla_min_sample = true\n", "[exit] sla_min_sample: expected a whole number"),
    ("[exit]\nsla_min_sample = '20'\n", "[exit] sla_min_sample: expected a whole number"),
    ("[exit]\nsla_min_sample = 99999999999\n", "[exit] sla_min_sample: expected a whole number"),
    ("[imap]\nport = 993\n", "[imap]: missing key host"),
    ("[imap]\nhost = 'x'\nsecurity = 'tls'\n", "[imap] security: must be ssl, starttls or none"),
    ("[stakeholders]\ndaily = ['nobody']\n", "[stakeholders] daily: expected an email address"),
    ("[exit]\nsla_target = 95\n", "[exit] sla_target: expected a fraction"),
    ("[exit]\nblocking_severities = ['P5']\n", "[exit] blocking_severities"),
    ("[rules]\nmode = 'merge'\n", "[rules] mode: must be extend or replace"),
    ("[notifier]\nfeedback = 'weekly'\n", "[notifier] feedback: unknown phase 'weekly'"),
])
def test_mistakes_name_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert needle in message and "\n" not in message


@pytest.mark.parametrize(("value", "needle"), [
    ('"javascript:alert(1)"', "must be an http:// or https:// address"),
    ('"ftp://status.example.com/"', "must be an http:// or https:// address"),
    ('"https://status.example.com/\\r\\nBcc: x@evil.example"', "must not contain spaces, line breaks"),
    ('"https://status.example.com/\\u0000"', "must not contain spaces, line breaks"),
    ('"https://status.example.com/\\u2028x"', "must not contain spaces, line breaks"),
    ('"https://exa mple.com/"', "must not contain spaces"),
    ('"https://status.example.com/<script>"', "must not contain spaces, line breaks, quotes"),
    ('"https://stätus.example.com/"', "must be an http:// or https:// address"),
    ('"//status.example.com/"', "must be an http:// or https:// address"),
    ('"https://"', "must be an http:// or https:// address"),
    ('"https://' + "a" * 3000 + '"', "is longer than 2000 characters"),
    ("42", "must be a text in quotes"),
    ("['https://status.example.com/']", "must be a text in quotes"),
])
def test_public_status_url_hostile_values(tmp_path, value, needle):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[dashboard]\npublic_status_url = {value}\n")
    message = str(info.value)
    assert f"[dashboard] public_status_url: {needle}" in message and "\n" not in message and "\r" not in message
    assert len(message) < 300  # a megabyte value is named, never echoed


@pytest.mark.parametrize("value", ["0", "91", "-1", "true", "'7'", "7.5"])
def test_status_days_is_bounded(tmp_path, value):
    with pytest.raises(ConfigError, match=r"\[dashboard\] status_days: must be a whole number from 1 to 90"):
        load(tmp_path, f"[dashboard]\nstatus_days = {value}\n")


def test_status_page_keys_parse(tmp_path):
    cfg = load(tmp_path, "[dashboard]\nstatus_days = 14\npublic_status_url = 'https://status.example.com/crm?x=1'\n")
    assert cfg.dashboard.status_days == 14 and cfg.dashboard.public_status_url == "https://status.example.com/crm?x=1"
    assert load(tmp_path, "[dashboard]\npublic_status_url = ''\n").dashboard.public_status_url == ""


def test_secrets_are_never_read_from_the_file():
    with pytest.raises(ConfigError, match=r"\[smtp_out\] password: unknown key"):
        parse_config({"smtp_out": {"password": "hunter2"}}, base_dir=Path("."))
