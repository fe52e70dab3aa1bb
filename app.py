"""The composition root: builds every component from one Config and one Clock.

Why lazily: ``hypercare tickets`` should not compile templates or rule files, and
``hypercare classify`` should not touch the database; each command pays only for
the parts it uses.  Nothing here is global: tests build an App per case.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TextIO

from classifier import Classifier
from config import Config
from core.errors import OutputNotWritable
from core.private_files import write_private
from intake.opening import BatchForm, TicketOpener
from intake.pipeline import IngestPipeline
from notifier.acknowledgement import Acknowledger
from notifier.escalation import Escalator
from notifier.flood_alert import FloodAlert
from notifier.language import detect_language
from notifier.notices import Notices
from notifier.outbox import Outbox
from notifier.page_storm import PageStorm
from notifier.render import Renderer
from notifier.reporter_update import ReporterUpdates
from notifier.resolution_ladder import ResolutionLadder
from notifier.send_time import SendTimeFill
from notifier.team_notice import TeamNotices
from notifier.transports import Transport, transport_for
from notifier.triage import TriageNotices
from notifier.triage_digest import TriageDigest
from replies.command_syntax import COMMANDS
from replies.ratings import FeedbackDesk
from replies.reporter_reply import ReporterReplies
from replies.router import ReplyRouter
from replies.stakeholder_reply import StakeholderReplies
from replies.team_reply import TeamReplyHandler
from tickets.bouncing import protected_addresses
from tickets.business_calendar import BusinessCalendar
from tickets.clock import Clock
from tickets.health import relay_key
from tickets.incidents import IncidentGrouper
from tickets.reply_secret import ReplySecretStore
from tickets.sla import SlaPolicy
from tickets.store import Store, ensure_identity
from tickets.tokens import ReplyTokens

MAIL_TEMPLATES = ("ack", "ack_known", "de/ack", "de/ack_known", "fr/ack", "fr/ack_known", "escalation",
                  "confirmation", "resolved", "answer", "reporter_update", "member_notice", "exit_decision",
                  "stakeholder_reply", "triage_digest", "digest_reply")


class App:
    def __init__(self, config: Config, clock: Clock, out: TextIO | None = None, err: TextIO | None = None,
                 environ: Mapping[str, str] | None = None, one_shot: bool = False) -> None:
        """*one_shot*: a drain that ends after its work (``poll --once``, ``ingest``; ``service.make_app``): it
        need not watch template files for edits."""
        self.config = config
        self.one_shot = one_shot
        self.clock = clock
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.environ = os.environ if environ is None else environ

    # --- persistence -------------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        store = Store(self.config.database.url, self.config.base_dir, self.config.database.busy_timeout)
        store.upgrade()
        return store

    @cached_property
    def _identity(self) -> tuple[datetime, str]:
        return ensure_identity(self.store, self.clock.now(), self.environ.get("HYPERCARE_REPLY_SECRET"))

    @property
    def go_live(self) -> date:
        """Configured go-live, else the day the database was created (local time)."""
        if self.config.hypercare.go_live is not None:
            return self.config.hypercare.go_live
        return self._identity[0].astimezone(self.config.hypercare.tz).date()

    # --- domain ------------------------------------------------------------------------------
    @cached_property
    def reply_secrets(self) -> ReplySecretStore:
        return ReplySecretStore(self.store, dict(self.environ), self.config.replies.secret_grace_hours)

    @cached_property
    def tokens(self) -> ReplyTokens:
        """Reply tokens; the secrets are re-read now and then, so a rotation reaches a running daemon."""
        self._identity  # noqa: B018 - the database's birth is recorded on first start, before any token
        tokens = ReplyTokens(lambda: self.reply_secrets.load(self.clock.now()), self.config.support,
                             token_days=self.config.replies.token_days)
        tokens.secrets()  # the first load may write (a new secret, the environment's fingerprint): never inside
        return tokens     # a transaction of the pipeline, which would wait for its own write lock

    @cached_property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar.from_settings(self.config.hypercare)

    @cached_property
    def sla(self) -> SlaPolicy:
        return SlaPolicy.from_config(self.config, self.go_live)

    @cached_property
    def classifier(self) -> Classifier:
        return Classifier.from_config(self.config)

    # --- mail out ----------------------------------------------------------------------------
    @cached_property
    def renderer(self) -> Renderer:
        override = self.config.notifier.templates_dir
        renderer = Renderer(self.config.path(override) if override else None,
                            cache_dir=self.config.path("var/cache/templates"), watch_files=not self.one_shot)
        renderer.check(MAIL_TEMPLATES)
        return renderer

    @cached_property
    def outbox(self) -> Outbox:
        # At send time: the incident's reports filled in, reply addresses signed (notifier.send_time).
        fill = SendTimeFill(self.config, self.store, self.tokens)
        return Outbox(self.store, self.clock, self.config.notifier, sign=fill,
                      relay=relay_key(self.config), protected=protected_addresses(self.config))

    def transport(self) -> Transport:
        return transport_for(self.config.smtp_out, self.config.path(self.config.smtp_out.maildir), self.environ)

    @cached_property
    def acknowledger(self) -> Acknowledger:
        return Acknowledger(self.config, self.renderer, self.sla.target_label)

    @cached_property
    def escalator(self) -> Escalator:
        """The escalation ladder (``sla sweep``) and the immediate P1 escalation."""
        notices = TeamNotices(self.config, self.renderer, self.tokens, self.sla, COMMANDS.help_lines())
        storm = PageStorm(self.config, self.store, self.clock, notices)
        return Escalator(self.config, self.store, self.clock, self.sla, notices, storm=storm)

    @cached_property
    def resolution_ladder(self) -> ResolutionLadder:
        """Chases open tickets towards their ``[sla.resolution]`` target (owner, then the PMs)."""
        return ResolutionLadder(self.config, self.store, self.clock, self.sla, self.escalator)

    @cached_property
    def notices(self) -> Notices:
        """Mail caused by a team reply: public answer, resolution notice (with rating request), confirmation."""
        return Notices(self.config, self.renderer, self.tokens, self.feedback.request_for, COMMANDS.help_lines())

    # --- mail in -----------------------------------------------------------------------------
    @cached_property
    def opener(self) -> TicketOpener:
        # The incident first (a later report of a known problem is acknowledged as such and pages nobody),
        # then the acknowledgement: the reporter hears from us before the team is paged or notified.
        ack, escalator, grouper, triage = self.acknowledger, self.escalator, self.incidents, self.triage
        # Each hook's batch form (intake.batch_store): the acknowledgements as rows for a whole batch;
        # a ticket that pages at once (P1) or joins an incident is left to the per-message path, where
        # on_new_ticket runs; the triage notices of a batch go out on the next beat (TriageNotices.sweep).
        batch_forms = {
            grouper.on_new_ticket: BatchForm(accepts=grouper.batch_accepts, rows=grouper.batch_rows),
            ack.enqueue: BatchForm(accepts=lambda _s, opened: True, rows=ack.batch_rows),
            escalator.on_new_ticket: BatchForm(accepts=lambda _s, opened: not escalator.pages_at_once(opened.severity),
                                               rows=lambda session, opened, now: ()),
            triage.on_new_ticket: BatchForm(accepts=lambda _s, opened: True, rows=lambda session, opened, now: ()),
        }
        return TicketOpener(self.config, self.classifier, self.sla,
                            on_opened=(grouper.on_new_ticket, ack.enqueue, escalator.on_new_ticket,
                                       triage.on_new_ticket), batch_forms=batch_forms,
                            language_of=detect_language)

    @cached_property
    def incidents(self) -> IncidentGrouper:
        return IncidentGrouper(self.config, self.sla, self.store)

    @cached_property
    def triage(self) -> TriageNotices:
        """The triage notice of every new P2-P4 ticket to its role (issue 14)."""
        return TriageNotices(self.config, self.escalator.notices, self.sla, self.store, self.clock,
                             batches=self.triage_digest.batches)

    @cached_property
    def triage_digest(self) -> TriageDigest:
        """``[triage] low_severity = "digest"``: new P3/P4 tickets listed per member at fixed times."""
        return TriageDigest(self.config, self.store, self.clock, self.renderer, self.tokens, self.sla, self.calendar)

    @cached_property
    def replies(self) -> ReplyRouter:
        team_reply = TeamReplyHandler(self.config, self.sla, self.notices, self.escalator)
        # The team hears when the reporter (or a cc) replies or reopens (notifier.reporter_update).
        updates = ReporterUpdates(self.config, self.renderer, self.tokens, self.escalator.notices)
        reporter = ReporterReplies(self.config, self.opener, self.sla, notify_team=updates)
        return ReplyRouter(self.config, self.feedback, team_reply, reporter,
                           StakeholderReplies(self.config, self.renderer))

    @cached_property
    def feedback(self) -> FeedbackDesk:
        return FeedbackDesk(self.config, self.tokens, lambda: self.go_live)

    @cached_property
    def pipeline(self) -> IngestPipeline:
        flood_alert = FloodAlert(self.config, self.escalator.notices)
        return IngestPipeline(self.config, self.store, self.clock, self.opener, self.replies, self.tokens,
                              on_flood=flood_alert.enqueue)

    def write_output(self, target: str | None, text: str) -> Path | None:
        """``--out``: print *text* (no target or ``-``), else write the file atomically and return its path.

        Why here: every command with ``--out`` means the same thing by it, and a reader (a web server
        serving the dashboard file, a sync job picking up an export) must never see half a file.
        """
        if not target or target == "-":
            self.out.write(text)
            return None
        out = Path(target)
        try:
            write_private(out, text)  # 0600 in a 0700-created folder: it holds mail text
        except OSError as exc:
            raise OutputNotWritable(
                f"--out {out}: cannot write ({exc.strerror or exc}); choose a writable path") from None
        return out
