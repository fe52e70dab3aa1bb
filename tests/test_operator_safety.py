"""Operator safety (issue #12): escape codes never reach the terminal or the log, files are owner-only,
ignored mail is not kept whole, and raw bytes have a retention command."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime

from mailkit import make_mail
from sqlalchemy import func, select
from test_cli import hypercare

from app import App
from config import Config
from core.untrusted_text import printable
from tickets.clock import FrozenClock
from tickets.models import Message, Ticket

ESC_BODY = "Login fails.\x1b]0;owned\x07 \x1b[2J\x9bcleared\rfake line"


def mode(path) -> int:  # type: ignore[no-untyped-def]
    return stat.S_IMODE(os.stat(path).st_mode)


def test_printable_shows_control_characters_and_keeps_paragraphs():
    assert printable("a\x1b[31mb\x07\nc\td\r") == "a\\u001b[31mb\\u0007\nc\td\\u000d"
    assert printable("x\ny", one_line=True) == "x\\u000ay"
    assert printable("caf\udcc3") == "caf\ufffd"


def test_cli_output_and_logs_never_carry_escape_codes(tmp_path):
    (tmp_path / "m.eml").write_bytes(make_mail(subject="Login \x1b[31mred", body=ESC_BODY,
                                               message_id="esc\x1b[2J@customer.example"))
    ingested = hypercare("ingest", "m.eml", cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    outputs = [ingested, hypercare("tickets", cwd=tmp_path), hypercare("show", "HC-1", cwd=tmp_path),
               hypercare("show", "HC-1", "--json", cwd=tmp_path), hypercare("quarantine", "list", cwd=tmp_path)]
    for result in outputs:
        for stream in (result.stdout, result.stderr):
            text = stream.decode("utf-8", "replace")
            assert not any(c in text for c in "\x1b\x07\x9b\r"), text[:500]
    shown = hypercare("show", "HC-1", cwd=tmp_path).stdout.decode()
    assert "\\u001b]0;owned\\u0007" in shown
    detail = json.loads(hypercare("show", "HC-1", "--json", cwd=tmp_path).stdout)  # still valid JSON
    assert "\x1b" in detail["messages"][0]["body"]  # the data is intact; only the terminal is protected


def test_database_wal_outputs_and_drafts_are_owner_only_whatever_the_umask(tmp_path):
    (tmp_path / "m.eml").write_bytes(make_mail())
    old = os.umask(0o000)  # the worst case: everything would be world-writable
    try:
        assert hypercare("ingest", "m.eml", cwd=tmp_path).returncode == 0
        assert hypercare("dashboard", "--out", "out/dash/index.html", cwd=tmp_path).returncode == 0
        assert hypercare("export", "tickets", "--format", "csv", "--out", "out/x/t.csv", cwd=tmp_path).returncode == 0
        assert hypercare("kb", "draft", "--out", "out/kb", cwd=tmp_path).returncode == 0
    finally:
        os.umask(old)
    var = tmp_path / "var"
    assert mode(var) == 0o700 and mode(var / "hypercare.db") == 0o600
    for sidecar in ("hypercare.db-wal", "hypercare.db-shm"):
        if (var / sidecar).exists():
            assert mode(var / sidecar) == 0o600, sidecar
    assert mode(tmp_path / "out") == 0o700 and mode(tmp_path / "out" / "dash") == 0o700
    assert mode(tmp_path / "out" / "dash" / "index.html") == 0o600
    assert mode(tmp_path / "out" / "x" / "t.csv") == 0o600
    assert mode(tmp_path / "out" / "kb") == 0o700
    assert all(mode(p) == 0o600 for p in (tmp_path / "out" / "kb").iterdir())
    attachments = var / "attachments"
    if attachments.exists():
        assert mode(attachments) == 0o700


def test_ignored_mail_keeps_headers_and_an_excerpt_not_megabytes(make_app):
    app = make_app()
    big = make_mail(subject="Automatic reply: out of office", body="x" * 3_000_000, message_id="ooo@customer.example",
                    headers={"Auto-Submitted": "auto-replied"})
    assert app.pipeline.ingest(big).action == "ignored"
    with app.store.read() as s:
        message = s.scalar(select(Message).where(Message.message_id == "ooo@customer.example"))
        raw = message.raw
        assert b"Auto-Submitted: auto-replied" in raw and len(raw) < 70 * 1024
        assert any("excerpt" in n for n in message.notes)


def test_purge_removes_raw_bytes_of_closed_tickets_and_ignored_mail_with_a_dry_run(tmp_path):
    (tmp_path / "a.eml").write_bytes(make_mail(message_id="closed@customer.example", sender="a@customer.example"))
    (tmp_path / "b.eml").write_bytes(make_mail(message_id="open@customer.example", sender="b@customer.example"))
    (tmp_path / "c.eml").write_bytes(make_mail(message_id="auto@customer.example", sender="c@customer.example",
                                               headers={"Auto-Submitted": "auto-replied"}))
    assert hypercare("ingest", ".", "--now", "2026-11-23T09:00:00+00:00", cwd=tmp_path).returncode == 0
    app = App(Config(base_dir=tmp_path), FrozenClock(datetime.fromisoformat("2026-11-23T10:00:00+00:00")))
    with app.store.session() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.reporter == "a@customer.example"))
        ticket.status, ticket.updated_at = "closed", datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    app.store.dispose()

    def raw_sizes() -> dict[str, int]:
        with app.store.read() as s:
            return dict(s.execute(select(Message.message_id, func.length(Message.raw))
                                  .where(Message.direction == "in")).all())

    before = raw_sizes()
    dry = hypercare("purge", "--before", "2026-12-01", "--dry-run", "--now", "2026-12-02T00:00:00+00:00", cwd=tmp_path)
    assert dry.returncode == 0 and "would remove the raw bytes of 2 message(s)" in dry.stdout.decode()
    assert raw_sizes() == before
    real = hypercare("purge", "--before", "2026-12-01", "--now", "2026-12-02T00:00:00+00:00", cwd=tmp_path)
    assert real.returncode == 0 and "removed the raw bytes of 2 message(s)" in real.stdout.decode()
    after = raw_sizes()
    assert after["closed@customer.example"] == 0 and after["auto@customer.example"] == 0
    assert after["open@customer.example"] == before["open@customer.example"] > 0
    bad = hypercare("purge", "--before", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and "expected an ISO date" in bad.stderr.decode()
    future = hypercare("purge", "--before", "2999-01-01", cwd=tmp_path)
    assert future.returncode == 2 and "future" in future.stderr.decode()
