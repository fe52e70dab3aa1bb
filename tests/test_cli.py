"""The command line contract: ingest sources, JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from mailkit import make_mail

ROOT = Path(__file__).resolve().parents[1]


def hypercare(*args: str, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Run the installed CLI as a user would, in its own process."""
    full_env = {k: v for k, v in os.environ.items() if k != "HYPERCARE_CONFIG"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "service.py"), *args], cwd=cwd, input=stdin,
                          capture_output=True, env=full_env, timeout=120)


def out(result) -> str:  # type: ignore[no-untyped-def]
    return result.stdout.decode()


def test_ingest_files_folders_mbox_maildir_and_stdin(tmp_path):
    (tmp_path / "one.eml").write_bytes(make_mail(message_id="f1@x", sender="a@customer.example"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "two.eml").write_bytes(make_mail(message_id="f2@x", sender="b@customer.example"))
    (folder / "labels.csv").write_text("not,a,mail\n")
    box = mailbox.mbox(str(tmp_path / "box.mbox"))
    for i in (3, 4):
        box.add(make_mail(message_id=f"f{i}@x", sender=f"c{i}@customer.example"))
    box.close()
    md = mailbox.Maildir(str(tmp_path / "md"))
    md.add(make_mail(message_id="f5@x", sender="d@customer.example"))
    result = hypercare("ingest", "one.eml", "folder", "box.mbox", "md", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = out(result).splitlines()
    assert [line.split(": ", 1)[1].split()[:2] for line in lines[:5]] == [
        ["HC-1", "created"], ["HC-2", "created"], ["HC-3", "created"], ["HC-4", "created"], ["HC-5", "created"]]
    assert lines[-1].startswith("total: 5 created (5 messages in ") and "msg/s)" in lines[-1]
    piped = hypercare("ingest", "-", cwd=tmp_path, stdin=make_mail(message_id="f6@x", sender="e@customer.example"))
    assert piped.returncode == 0 and "HC-6 created" in out(piped)
    again = hypercare("ingest", "one.eml", cwd=tmp_path)
    assert "HC-1 duplicate" in out(again)


def test_tickets_and_show_json_shapes(tmp_path):
    (tmp_path / "m.eml").write_bytes(make_mail(message_id="j1@x"))
    hypercare("ingest", "m.eml", cwd=tmp_path)
    rows = json.loads(out(hypercare("tickets", "--json", cwd=tmp_path)))
    assert len(rows) == 1
    for key in ("key", "subject", "reporter", "severity", "role", "status", "created_at", "response_due",
                "message_count"):
        assert key in rows[0]
    assert rows[0]["created_at"].endswith("+00:00") and rows[0]["message_count"] == 2  # request + ack
    detail = json.loads(out(hypercare("show", "hc-1", "--json", cwd=tmp_path)))
    assert detail["key"] == "HC-1"
    assert {"message_id", "from", "direction", "subject", "body"} <= set(detail["messages"][0])
    assert {"at", "kind", "detail"} <= set(detail["events"][0])
    text = out(hypercare("show", "HC-1", cwd=tmp_path))
    assert "why:" in text and "response due" in text


def test_now_sets_the_clock(tmp_path):
    (tmp_path / "m.eml").write_bytes(make_mail())
    hypercare("ingest", "m.eml", "--now", "2026-12-01T10:00:00+01:00", cwd=tmp_path)
    rows = json.loads(out(hypercare("tickets", "--json", cwd=tmp_path)))
    assert rows[0]["created_at"] == "2026-12-01T09:00:00+00:00"


def test_outbox_list_and_flush(tmp_path):
    (tmp_path / "m.eml").write_bytes(make_mail())
    hypercare("ingest", "m.eml", cwd=tmp_path)
    assert "pending" in out(hypercare("outbox", "list", cwd=tmp_path))
    assert "sent 1" in out(hypercare("outbox", "flush", cwd=tmp_path))
    listed = json.loads(out(hypercare("outbox", "list", "--json", cwd=tmp_path)))
    assert listed[0]["status"] == "sent" and listed[0]["attempts"] == 1
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 1


def test_ingest_exits_75_when_the_database_cannot_store(tmp_path):
    (tmp_path / "hypercare.toml").write_text('[database]\nurl = "sqlite:///db/h.db"\nbusy_timeout = 1\n')
    (tmp_path / "m.eml").write_bytes(make_mail())
    assert hypercare("db", "upgrade", cwd=tmp_path).returncode == 0
    db = tmp_path / "db" / "h.db"
    import sqlite3

    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        result = hypercare("ingest", "m.eml", cwd=tmp_path)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert result.returncode == 75, result.stderr
    assert "try again" in result.stderr.decode()
    assert hypercare("ingest", "m.eml", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(("content", "needle"), [
    ("[imap\nhost=1", "invalid TOML"),
    ("[support]\nadress = 'x@y'\n", "[support] adress: unknown key"),
    ("[colour]\nx = 1\n", "unknown section [colour]"),
    ("[hypercare]\ntimezone = 'Mars/Base'\n", "[hypercare] timezone"),
    ("[sla]\nescalate_at = 'soon'\n", "[sla] escalate_at"),
    ("[[team]]\nname = 'Ada'\nemail = 'ada@example.com'\nroles = ['boss']\n", "unknown role 'boss'"),
    ("[dashboard]\npublic_status_url = \"https://status.example.com/\\r\\nBcc: all@example.com\"\n",
     "[dashboard] public_status_url: must not contain spaces, line breaks"),
    ("[dashboard]\npublic_status_url = \"javascript:alert(1)//" + "x" * 1_000_000 + "\"\n",
     "[dashboard] public_status_url: is longer than 2000 characters"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, content, needle):
    (tmp_path / "bad.toml").write_text(content)
    result = hypercare("tickets", "--config", "bad.toml", cwd=tmp_path)
    err = result.stderr.decode().strip()
    assert result.returncode == 2
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_config_file_is_one_line(tmp_path):
    result = hypercare("tickets", "--config", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2 and "nope.toml: config file not found" in result.stderr.decode()


def test_unknown_ticket_is_one_line(tmp_path):
    result = hypercare("show", "HC-99", cwd=tmp_path)
    assert result.returncode == 2 and "no ticket HC-99" in result.stderr.decode()


def test_help_everywhere(tmp_path):
    for command in (["--help"], ["ingest", "--help"], ["tickets", "--help"], ["show", "--help"],
                    ["outbox", "list", "--help"], ["db", "upgrade", "--help"], ["run", "--help"],
                    ["demo", "--help"], ["classify", "--help"]):
        result = hypercare(*command, cwd=tmp_path)
        assert result.returncode == 0 and "--config" in out(result) and "--now" in out(result), command


def _demo_config(tmp_path, port: int) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "hypercare.toml").write_text(f'[smtp_in]\nport = {port}\n[dashboard]\nenabled = false\n')


def test_demo_without_a_running_service_starts_the_intake_on_the_configured_port(tmp_path):
    from mailkit import free_port

    port = free_port()
    _demo_config(tmp_path, port)
    result = hypercare("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = out(result)
    assert text.startswith(f"Nothing listens on 127.0.0.1:{port} ([smtp_in] port): starting the intake there")
    assert "HC-1" in text and "HC-4" in text and "Acknowledgements sent: 4" in text
    assert "sent  to maria.keller@example.com: [HC-1] CRM is down for the whole sales team" in text
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 4


def test_demo_sends_to_the_running_service(tmp_path):
    from mailkit import free_port

    from app import App
    from config import load_config
    from intake.receive.smtp import SmtpReceiver
    from tickets.clock import SystemClock

    port = free_port()
    _demo_config(tmp_path, port)
    config = load_config(tmp_path / "hypercare.toml")
    import dataclasses

    service = App(dataclasses.replace(config, base_dir=tmp_path), SystemClock())  # what 'hypercare run' would be
    receiver = SmtpReceiver(service.pipeline, config.support, config.smtp_in)
    receiver.start()
    try:
        result = hypercare("demo", cwd=tmp_path)
    finally:
        receiver.stop()
    assert result.returncode == 0, result.stderr
    text = out(result)
    assert text.startswith(f"Sending 4 sample mails to the running service's intake at 127.0.0.1:{port}")
    assert "Acknowledgements: queued; the running service sends them on its next beat" in text
    assert "HC-4" in text and not (tmp_path / "var" / "outbox" / "new").exists()  # the service sends, not the demo


def test_now_without_offset_is_local_time_and_tables_show_the_zone(tmp_path):
    (tmp_path / "hypercare.toml").write_text(
        '[hypercare]\ngo_live = "2026-11-23"\ntimezone = "Europe/Berlin"\n')
    # 23:30 in Berlin is still Monday; read as UTC it would be Tuesday 00:30 in Berlin.
    daily = hypercare("digest", "daily", "--now", "2026-11-23T23:30", cwd=tmp_path)
    assert daily.returncode == 0 and "Status Mon 23 Nov" in out(daily), daily.stderr
    hypercare("ingest", "-", cwd=tmp_path, stdin=make_mail(message_id="tz@x", sender="a@customer.example"))
    table = out(hypercare("tickets", cwd=tmp_path))
    assert "DUE" in table and (" CET " in table or " CEST " in table)
    from tickets.clock import parse_instant

    assert parse_instant("2026-07-01T09:00", ZoneInfo("Europe/Berlin")).isoformat() == "2026-07-01T07:00:00+00:00"
    assert parse_instant("2026-07-01T09:00Z", ZoneInfo("Europe/Berlin")).isoformat() == "2026-07-01T09:00:00+00:00"


def test_make_says_what_it_does_while_installing(tmp_path):
    dry = subprocess.run(["make", "-n", "run", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                         timeout=30)
    text = dry.stdout.decode()
    assert dry.returncode == 0, dry.stderr
    for step in ("1/3 creating the virtual environment", "2/3 updating pip", "3/3 installing Hypercare Desk",
                 "starting the service"):
        assert step in text
    assert "pip install --disable-pip-version-check --progress-bar on -e" in text  # pip's own progress, not --quiet


def test_ingest_progress_line_only_on_a_terminal():
    import io

    from intake.cli import IngestProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = IngestProgress(stream)
        progress.outcomes.update(created=3, ignored=1)
        progress.draw()
        progress.clear()
    assert "ingesting: 3 created, 1 ignored (4 messages in " in tty.getvalue() and "msg/s" in tty.getvalue()
    assert tty.getvalue().endswith("\r\x1b[K") and pipe.getvalue() == ""


def test_out_writes_atomically_or_fails_in_one_line(tmp_path):
    (tmp_path / "m.eml").write_bytes(make_mail())
    hypercare("ingest", "m.eml", cwd=tmp_path)
    ok = hypercare("export", "tickets", "--format", "json", "--out", "deep/backlog.json", cwd=tmp_path)
    assert ok.returncode == 0 and json.loads((tmp_path / "deep" / "backlog.json").read_text())[0]["key"] == "HC-1"
    assert not (tmp_path / "deep" / "backlog.json.tmp").exists()
    (tmp_path / "blocker").write_text("a file, not a folder")
    for command in (["export", "tickets", "--format", "csv"], ["dashboard"]):
        bad = hypercare(*command, "--out", "blocker/x.out", cwd=tmp_path)
        err = bad.stderr.decode().strip().splitlines()
        assert bad.returncode == 2 and err[-1].startswith("hypercare: --out blocker/x.out: cannot write")
        assert "Traceback" not in bad.stderr.decode()
