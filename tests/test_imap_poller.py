"""The IMAP poller against a real Dovecot: poll, move, re-delivery, UIDVALIDITY, crashes, health."""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter

import pytest
from imapclient import SEEN
from mailkit import make_mail
from sqlalchemy import func, select

from config import Config, DatabaseSettings
from dashboard.status import cmd_status
from intake.pipeline import IngestUnavailable
from intake.receive.imap_connect import ImapLoginFailed, ImapUnreachable
from intake.receive.imap_poller import ImapPoller, chunked
from tickets.models import ImapState, OutboxItem, Ticket


@pytest.fixture
def imap_app(make_app, dovecot, tmp_path, db_url):  # type: ignore[no-untyped-def]
    """An App whose [imap] points at the private Dovecot, on SQLite and PostgreSQL."""

    def build(**overrides):  # type: ignore[no-untyped-def]
        cfg = Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url), imap=dovecot.settings(**overrides))
        app = make_app(config=cfg)
        app.environ = dovecot.environ
        return app

    return build


def poller_for(app) -> ImapPoller:  # type: ignore[no-untyped-def]
    return ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)


# Different problems: the same report ten times would be one incident (issue 14), whose later reports
# are stored the per-message way, not by the batched write path some tests here crash.
PROBLEMS = ("Export button does nothing", "Invoice layout shifted", "Calendar sync misses entries",
            "Logo blurry in footer", "Phone field rejects plus sign", "Dashboard tile shows zero",
            "Quote PDF carries wrong date", "Address autocomplete slow", "Lead source list incomplete",
            "Signature image cut off")


def mails(n: int, prefix: str = "m") -> list[bytes]:
    return [make_mail(message_id=f"{prefix}{i}@customer.example", sender=f"user{i}@customer.example",
                      subject=f"{PROBLEMS[i % len(PROBLEMS)]} #{i}", body=f"{PROBLEMS[i % len(PROBLEMS)]}.")
            for i in range(n)]


def counts(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(tickets, acknowledgements queued)."""
    with app.store.read() as s:
        return (s.scalar(select(func.count()).select_from(Ticket)),
                s.scalar(select(func.count()).select_from(OutboxItem)  # "ack_known": a report of an incident
                         .where(OutboxItem.kind.in_(("ack", "ack_known")))))


def state(app) -> ImapState:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return s.scalars(select(ImapState)).one()


def test_poll_ingests_in_batches_then_moves_to_processed(imap_app, dovecot):
    app = imap_app(batch_size=4)
    dovecot.append(mails(10))
    batches = []
    report = poller_for(app).poll(on_batch=lambda r, results: batches.append([x.action for x in results]))
    assert report.fetched == 10 and report.outcomes == {"created": 10}
    assert [len(b) for b in batches] == [4, 4, 2]
    assert counts(app) == (10, 10)
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 10  # folder created on demand
    st = state(app)
    assert st.last_uid == 10 and st.waiting == 0 and st.last_success_at is not None and st.last_error is None


def test_a_long_drain_starts_with_small_batches_then_full_ones(imap_app, dovecot):
    """The store begins after a few mails are parsed, not a whole batch (issue 17); each batch still commits
    before its MOVE, and the mailbox's progress ends at the last UID."""
    app = imap_app(batch_size=128)
    dovecot.append(mails(300))
    batches = []
    report = poller_for(app).poll(on_batch=lambda r, results: batches.append(len(results)))
    assert batches == [16, 32, 64, 128, 60]
    assert report.fetched == 300 and report.outcomes == {"created": 300}
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 300
    assert state(app).last_uid == 300 and state(app).waiting == 0


def test_batches_keep_the_uid_order_and_short_drains_or_small_batches_are_not_split():
    uids = list(range(1, 1001))
    assert [len(c) for c in chunked(uids, 200)] == [25, 50, 100, 200, 200, 200, 200, 25]
    assert [uid for chunk in chunked(uids, 200) for uid in chunk] == uids
    assert [len(c) for c in chunked(uids[:200], 200)] == [200]  # one batch: nothing to overlap
    assert [len(c) for c in chunked(uids[:10], 4)] == [4, 4, 2]  # batch_size / 8 too small to be worth a commit


def test_nothing_is_marked_read_before_commit_and_seen_mode_keeps_mail_in_place(imap_app, dovecot):
    app = imap_app(processed_folder="")
    dovecot.append(mails(3))
    seen_at_ingest = []
    original = app.pipeline.ingest_batch

    def spy(batch, **kw):  # type: ignore[no-untyped-def]
        seen_at_ingest.append(dovecot.flags("INBOX"))  # what another client sees mid-batch
        return original(batch, **kw)

    app.pipeline.ingest_batch = spy
    poller = poller_for(app)
    poller.poll()
    assert all(SEEN not in flags for flags in seen_at_ingest[0].values())  # BODY.PEEK[]: still unread
    assert all(SEEN in flags for flags in dovecot.flags("INBOX").values())  # flagged after commit
    assert dovecot.uids("INBOX") == [1, 2, 3]
    assert poller.poll().fetched == 0  # UID-based: the kept mail is not fetched again
    dovecot.append(mails(1, prefix="late"))
    assert poller.poll().fetched == 1 and counts(app) == (4, 4)


def test_redelivery_of_the_same_mail_is_a_duplicate_and_still_moved(imap_app, dovecot):
    app = imap_app()
    dovecot.append(mails(2))
    poller = poller_for(app)
    poller.poll()
    dovecot.append(mails(2))  # the MTA delivered the same two mails again
    report = poller.poll()
    assert report.outcomes == {"duplicate": 2}
    assert counts(app) == (2, 2) and dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 4


def test_copy_delete_expunge_when_move_is_not_used(imap_app, dovecot):
    app = imap_app()
    dovecot.append(mails(3))
    poller = poller_for(app)
    poller.use_move = False  # as on servers without RFC 6851 MOVE: COPY + \Deleted + UID EXPUNGE
    assert poller.poll().fetched == 3
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 3


def test_changed_uidvalidity_rescans_and_dedup_absorbs(imap_app, dovecot):
    app = imap_app(processed_folder="")
    dovecot.append(mails(3))
    poller = poller_for(app)
    poller.poll()
    old = state(app).uidvalidity
    dovecot.set_uidvalidity(old + 1000)
    dovecot.append(mails(1, prefix="new"))
    report = poller.poll()
    assert report.rescanned and report.fetched == 4
    assert report.outcomes == {"duplicate": 3, "created": 1}
    assert counts(app) == (4, 4) and state(app).uidvalidity == old + 1000 and state(app).last_uid == 4


def test_crash_after_commit_before_move_is_absorbed_on_next_poll(imap_app, dovecot):
    app = imap_app(batch_size=5)
    dovecot.append(mails(5))
    original = app.pipeline.ingest_batch

    class Crash(BaseException):
        """The process dies (kill -9, OOM) right after the batch committed."""

    def commit_then_die(batch, **kw):  # type: ignore[no-untyped-def]
        original(batch, **kw)
        raise Crash

    app.pipeline.ingest_batch = commit_then_die
    with pytest.raises(Crash):
        poller_for(app).poll()
    assert counts(app) == (5, 5) and len(dovecot.uids("INBOX")) == 5  # stored, not moved
    app.pipeline.ingest_batch = original
    report = poller_for(app).poll()  # the restarted service
    assert report.outcomes == {"duplicate": 5}
    assert counts(app) == (5, 5)  # no second ticket, no second acknowledgement
    assert dovecot.uids("INBOX") == []


def test_imap_crash_during_the_batched_write_leaves_the_mail_in_the_mailbox(imap_app, dovecot, monkeypatch):
    class Crash(BaseException):
        """The process dies while the batched write runs: nothing committed, nothing moved."""

    from intake.batch_store import BatchStore

    original = BatchStore._write
    calls = {"n": 0}

    def die_in_second_batch(self, opened):  # type: ignore[no-untyped-def]
        calls["n"] += 1  # mails(n) are plain new requests: each batch goes the batched way
        if calls["n"] == 2:
            raise Crash
        original(self, opened)

    app = imap_app(batch_size=4)
    dovecot.append(mails(10))
    monkeypatch.setattr(BatchStore, "_write", die_in_second_batch)
    with pytest.raises(Crash):
        poller_for(app).poll()
    assert counts(app) == (4, 4) and len(dovecot.uids("INBOX")) == 6  # batch 1 stored and moved, the rest waits
    monkeypatch.setattr(BatchStore, "_write", original)
    report = poller_for(app).poll()  # the restarted service
    assert report.outcomes == {"created": 6}
    assert counts(app) == (10, 10) and dovecot.uids("INBOX") == []


def test_server_killed_mid_batch_and_restarted(imap_app, dovecot):
    app = imap_app(batch_size=4)
    dovecot.append(mails(12))
    original = app.pipeline.ingest_batch
    calls = {"n": 0}

    def kill_during_second_batch(batch, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        results = original(batch, **kw)
        if calls["n"] == 2:
            dovecot.kill()  # after this batch committed, before its MOVE
        return results

    app.pipeline.ingest_batch = kill_during_second_batch
    poller = poller_for(app)
    with pytest.raises(ImapUnreachable):
        poller.poll()
    # Batch 3 is fetched while batch 2 is stored (the drain's I/O thread): when that FETCH got through
    # before the server died, batch 3 is stored too, before the failed MOVE of batch 2 is seen.
    stored = counts(app)
    assert stored in ((8, 8), (12, 12))
    with pytest.raises(ImapUnreachable, match="connection refused"):
        poller.poll()  # still down: a clear error, recorded
    assert "refused" in state(app).last_error
    dovecot.start()
    # Batch 1's MOVE waits in the I/O thread behind the FETCH of batch 3: when batch 2 was stored before
    # that MOVE went out, the server died first and batch 1 is still in the mailbox too.  Either way no
    # mail is lost: everything not moved is stored or waiting, and the next poll absorbs the stored ones.
    waiting = len(dovecot.uids("INBOX"))
    assert waiting in (8, 12)
    app.pipeline.ingest_batch = original
    report = poller.poll()
    stored_waiting = waiting - (12 - stored[0])
    assert report.outcomes == +Counter(duplicate=stored_waiting, created=12 - stored[0])  # + drops a zero
    assert counts(app) == (12, 12)
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 12


def test_database_down_leaves_mail_in_place_for_the_next_poll(imap_app, dovecot):
    app = imap_app()
    dovecot.append(mails(2))
    original = app.pipeline.ingest_batch

    def unavailable(batch, **kw):  # type: ignore[no-untyped-def]
        raise IngestUnavailable("database unavailable: locked")

    app.pipeline.ingest_batch = unavailable
    poller = poller_for(app)
    with pytest.raises(IngestUnavailable):
        poller.poll()
    assert dovecot.uids("INBOX") == [1, 2] and "locked" in state(app).last_error
    app.pipeline.ingest_batch = original
    assert poller.poll().outcomes == {"created": 2}
    assert dovecot.uids("INBOX") == []


def test_login_failure_is_recorded_and_shown_by_status(imap_app, dovecot):
    app = imap_app()
    app.environ = {dovecot.settings().password_env: "wrong-password"}
    with pytest.raises(ImapLoginFailed, match="password_env|HC_TEST_IMAP_PASSWORD"):
        poller_for(app).poll()
    out = io.StringIO()
    app.out = out
    assert cmd_status(app, type("Args", (), {"json": True})()) == 1
    status = json.loads(out.getvalue())
    box = status["mailboxes"][0]
    assert box["ok"] is False and "login" in box["last_error"] and box["last_error_at"]
    assert status["database"]["reachable"] is True and status["ok"] is False
    app.environ = dovecot.environ  # fixed: the next poll succeeds and status is healthy again
    poller_for(app).poll()
    out.seek(0), out.truncate()
    assert cmd_status(app, type("Args", (), {"json": True})()) == 0
    assert json.loads(out.getvalue())["mailboxes"][0]["ok"] is True


def test_xoauth2_token_from_env_and_from_command(imap_app, dovecot, tmp_path):
    app = imap_app(password_env="", oauth2_token_env="HC_TEST_OAUTH_TOKEN")
    dovecot.append(mails(1))
    assert poller_for(app).poll().fetched == 1
    helper = tmp_path / "token.sh"
    helper.write_text("#!/bin/sh\necho ya29.test-oauth2-token\n")
    helper.chmod(0o755)
    app2 = imap_app(password_env="", oauth2_token_command=str(helper))
    app2.config = dataclasses.replace(app2.config, imap=dataclasses.replace(app2.config.imap, folder="INBOX"))
    dovecot.append(mails(1, prefix="oauth"))
    assert poller_for(app2).poll().fetched == 1


def test_protocol_trace_at_debug_never_shows_the_password(imap_app, dovecot, caplog):
    import logging

    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")
    app = imap_app()
    dovecot.append(mails(1))
    poller_for(app).poll()
    assert "LOGIN" in caplog.text and "BODY.PEEK[]" in caplog.text  # the trace is there
    assert dovecot.environ[dovecot.settings().password_env] not in caplog.text


def test_progress_line_on_a_terminal_and_summary_otherwise():
    from intake.poll_cli import Progress
    from intake.receive.imap_poller import PollReport

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    report = PollReport("support@host:993/INBOX", fetched=400, waiting=600, moved=400)
    report.outcomes.update({"created": 390, "duplicate": 10})
    tty, plain = Tty(), io.StringIO()
    for out in (tty, plain):
        progress = Progress(out)
        progress.batch(report, [])
        progress.finish(report)
    assert "\r400/1000 messages" in tty.getvalue() and "created 390 duplicate 10" in tty.getvalue()
    assert plain.getvalue().count("\n") == 1 and "\r" not in plain.getvalue()
    assert "400 fetched" in plain.getvalue() and "390 created, 10 duplicate; moved 400" in plain.getvalue()


def test_processed_folder_equal_to_the_polled_folder_is_refused(imap_app, dovecot):
    from intake.receive.imap_connect import ImapConfigProblem

    app = imap_app(processed_folder="INBOX")
    dovecot.append(mails(1))
    with pytest.raises(ImapConfigProblem, match="processed_folder"):
        poller_for(app).poll()
    assert dovecot.uids("INBOX") == [1] and counts(app) == (0, 0)


@pytest.mark.parametrize("use_move", [True, False])
def test_a_second_poller_moving_the_batch_first_is_no_error(imap_app, dovecot, use_move):
    """Two ``poll --once`` at once: the one that settles second found EXPUNGEISSUED and exited 75 (issue 11)."""
    app = imap_app(batch_size=5)
    dovecot.append(mails(5))
    original = app.pipeline.ingest_batch

    def the_other_poller_was_faster(batch, **kw):  # type: ignore[no-untyped-def]
        results = original(batch, **kw)
        other = dovecot.client()
        other.select_folder("INBOX")
        other.create_folder("Processed") if not other.folder_exists("Processed") else None
        other.move(other.search(["ALL"]), "Processed")
        other.logout()
        return results

    app.pipeline.ingest_batch = the_other_poller_was_faster
    poller = poller_for(app)
    poller.use_move = use_move
    report = poller.poll()
    assert report.fetched == 5 and counts(app) == (5, 5)
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 5
    assert state(app).last_error is None
