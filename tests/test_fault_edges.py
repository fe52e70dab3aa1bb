"""The small faults of issue 11: one quarantine item per message, an uncreatable processed folder,
the parse worker's parent dying, and full disks (retry later, never quarantine or dead)."""

from __future__ import annotations

import errno
import mailbox
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_service
from mailkit import make_mail
from sqlalchemy import func, select

from intake.pipeline import IngestUnavailable, RawMail
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from notifier.transports import MaildirTransport
from tickets.attachments import AttachmentStore
from tickets.models import Message, OutboxItem, QuarantineItem

ROOT = Path(__file__).resolve().parents[1]


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_the_same_mail_failing_again_is_one_quarantine_item(make_app, db_url, monkeypatch):
    app = make_app(db=db_url)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("classifier exploded")

    monkeypatch.setattr(app.opener, "open", broken)
    same = make_mail(message_id="loop@customer.example")
    for _ in range(5):  # re-polled every minute: a crash between commit and MOVE, say
        assert app.pipeline.ingest(same, "imap").action == "quarantined"
    app.pipeline.ingest(make_mail(message_id="other@customer.example"), "imap")
    unparseable = b"\x00\xff" * 10
    for _ in range(3):
        app.pipeline.ingest_batch([RawMail(unparseable, "imap")], prepared=["unparseable: test"])
    with app.store.read() as s:
        items = list(s.scalars(select(QuarantineItem).order_by(QuarantineItem.id)))
        assert [i.repeats for i in items] == [5, 1, 3]
        assert items[0].raw == same and items[0].last_seen_at is not None


def test_a_full_attachments_disk_is_retry_later_not_quarantine(make_app, db_url, monkeypatch):
    app = make_app(db=db_url)

    def full(self, payload, sha256):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(AttachmentStore, "put", full)
    raw = make_mail()
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    msg: EmailMessage = message_from_bytes(raw, policy=policy.default)  # type: ignore[assignment]
    msg.add_attachment(b"%PDF-1.4 quote", maintype="application", subtype="pdf", filename="quote.pdf")
    with pytest.raises(IngestUnavailable, match="No space left"):
        app.pipeline.ingest(msg.as_bytes())
    assert _count(app, QuarantineItem) == 0 and _count(app, Message) == 0
    monkeypatch.undo()
    assert app.pipeline.ingest(msg.as_bytes()).action == "created"  # disk freed: the retry stores it


def test_a_full_outbox_disk_backs_off_and_never_kills_the_mail(make_app, tmp_path, clock, monkeypatch):
    app = make_app()
    with app.store.session() as s:
        enqueue(s, OutgoingMail(kind="ack", to=["a@customer.example"], subject="s", text="t"), key="k",
                support=app.config.support, now=clock.now())

    def full(*args):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mailbox.Maildir, "add", full)  # one mail at a time
    monkeypatch.setattr(MaildirTransport, "_write_file", full)  # a batch (what the outbox uses)
    for _ in range(app.config.notifier.max_attempts + 3):
        app.outbox.flush(app.transport())
        clock.advance(hours=2)
    with app.store.read() as s:
        [item] = s.scalars(select(OutboxItem)).all()
    assert (item.status, item.attempts) == ("pending", 0) and "No space left" in item.last_error
    monkeypatch.undo()
    assert app.outbox.flush(app.transport()).sent == 1


def test_the_parse_worker_dies_with_its_parent(tmp_path):
    """SIGKILL of ``poll --once`` once left its forked parse worker alive (66 MB, for minutes)."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from app import App\n"
        "from config import Config\n"
        "from intake.parse_pool import start_parse_pool\n"
        "from tickets.clock import SystemClock\n"
        f"app = App(Config(base_dir=Path({str(tmp_path)!r})), SystemClock())\n"
        "pool = start_parse_pool(app)\n"
        "assert pool is not None\n"
        "import os\n"
        "print(pool.submit(os.getpid).result(), flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        worker = int(parent.stdout.readline())
        assert worker != parent.pid and _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.05)  # waiting for the kernel to deliver the worker's death signal
        assert not _alive(worker)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_an_uncreatable_processed_folder_is_a_config_error_before_any_mail_is_read(make_app, tmp_path):
    from dovecot import Dovecot, dovecot_binary

    from intake.receive.imap_connect import ImapConfigProblem
    from intake.receive.imap_poller import ImapPoller

    need_service(dovecot_binary() is not None, "dovecot not installed (apt-get install dovecot-imapd)")
    server = Dovecot().start()
    try:
        import dataclasses

        from config import Config, SmtpInSettings

        settings = server.settings(processed_folder="~Processed")  # Dovecot: "Invalid mailbox name: Begins with ~"
        app = make_app(dataclasses.replace(Config(base_dir=tmp_path), imap=settings,
                                           smtp_in=SmtpInSettings(enabled=False)))
        server.append([make_mail(message_id="stays@customer.example")])
        poller = ImapPoller(settings, app.store, app.pipeline, app.clock, server.environ)
        for _ in range(3):
            with pytest.raises(ImapConfigProblem, match="cannot create \\[imap\\] processed_folder"):
                poller.poll()
        poller.close()
        assert _count(app, Message) == 0 and _count(app, QuarantineItem) == 0  # nothing read, nothing looped
        assert len(server.uids()) == 1  # the mail waits in the inbox
    finally:
        server.cleanup()
