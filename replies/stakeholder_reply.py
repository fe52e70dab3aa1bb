"""A stakeholder's reply to a digest (or any mail of ours that belongs to no ticket).

Why not a ticket (issue 14): a CIO answering the status email became a P3 ticket and got an
acknowledgement.  Such a reply is a comment for the people who own the conversation with
stakeholders, the project managers: they get it as one mail (``stakeholder-reply:<id>``)
with Reply-To the sender, so answering it reaches the stakeholder directly; the sender gets
nothing automatic.  The message is kept (disposition ``comment``, no ticket).

The exit report (issue 16) goes to each project manager with their own signed reply address
(``support+EXIT-<day>.<token>@``, signed at send time like team mail).  A reply to it whose new
text starts with ``#decision go|conditional|no-go text`` records the exit decision when, and only
when, the token is valid for its ``From`` (that project manager, not expired) and the sender holds
the project_manager role: an ``exit_decisions`` row (via "mail", the reply's Message-ID) and the
confirmation to the stakeholders.  Anything else (a stakeholder's reply without a token, a forged
From, another project manager's token, an expired one, an unreadable decision) records nothing and
reaches the project managers as a comment that says why it did not act.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from config import Config
from intake.parse.message import ParsedMessage
from intake.parse.quotes import new_text
from intake.thread import DECISION_RECORDED
from notifier.decision_notice import enqueue_decision_notice
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue, short_key
from notifier.render import Renderer
from replies.command_syntax import Command, ReplyCommands, parse_reply_commands
from tickets.decisions import WORDS, DecisionProblem, decider, parse_decision, record_decision
from tickets.models import Message, OutboxItem
from tickets.tokens import SignedCheck

log = logging.getLogger("hypercare.intake")
KIND = "stakeholder_reply"
TRIAGE_DIGEST = "triage_digest"  # notifier.triage_digest: its tickets each have their own address


class StakeholderReplies:
    def __init__(self, config: Config, renderer: Renderer) -> None:
        self.config = config
        self.renderer = renderer

    def __call__(self, session: Session, sent: OutboxItem, message: Message, parsed: ParsedMessage,
                 now: datetime, exit_token: SignedCheck | None = None) -> str:
        if sent.kind == TRIAGE_DIGEST:
            return self._digest_reply(session, sent, parsed, now)
        reply = parse_reply_commands(new_text(parsed.body_full or parsed.body))
        decision = next((c for c in reply.commands if c.name == "decision"), None)
        note = ""
        if decision is not None or any(p.line.lower().startswith("#decision") for p in reply.problems):
            recorded, note = self._decide(session, message, parsed, now, exit_token, reply, decision)
            if recorded:
                return note
            log.warning("#decision from %s on %s not recorded: %s", parsed.from_addr, sent.kind, note)
        return self._forward(session, sent, message, parsed, now, note)

    def _decide(self, session: Session, message: Message, parsed: ParsedMessage, now: datetime,
                exit_token: SignedCheck | None, reply: ReplyCommands, command: Command | None) -> tuple[bool, str]:
        """Record the exit decision of a project manager's signed reply; else (False, why not)."""
        if exit_token is None:
            return False, ("a decision is recorded only from a project manager's reply to their own copy of the "
                           "exit report (its signed reply address) or with 'hypercare exit decide'")
        if not exit_token.valid:
            return False, exit_token.reason(parsed.from_addr)
        if not parsed.authority_address:
            return False, f"the sender is ambiguous ({parsed.from_problem})"
        if not reply.ok or command is None:
            problem = reply.problems[0] if reply.problems else None
            return False, f"{problem.line[:80]!r}: {problem.reason}" if problem else "no #decision line"
        if len(reply.commands) > 1:
            return False, "only #decision acts on the exit report; send other commands about a ticket's mail"
        try:
            member = decider(self.config, parsed.from_addr)
            decided = parse_decision(f"{command.arg}\n{reply.text}".strip())
        except DecisionProblem as problem:
            return False, str(problem)
        row = record_decision(session, decided, member, now, "mail", message.message_id)
        enqueue_decision_notice(session, self.config, self.renderer, row, now)
        log.info("exit decision %s recorded by %s (reply to the exit report %s)", decided.decision, member.email,
                 exit_token.key)
        return True, (f"{DECISION_RECORDED}: {WORDS[decided.decision]} by {member.name}; "
                      "the stakeholders get a confirmation")

    def _forward(self, session: Session, sent: OutboxItem, message: Message, parsed: ParsedMessage, now: datetime,
                 note: str) -> str:
        managers = [m.email for m in self.config.team if "project_manager" in m.roles]
        if not managers:
            log.warning("reply from %s to %s: no project manager in [[team]]; kept as a comment", parsed.from_addr,
                        sent.kind)
            return f"reply to {sent.kind} from {parsed.from_addr}: kept as a comment (no project manager to tell)"
        rendered = self.renderer.render(KIND, sender=parsed.from_addr, sender_name=parsed.from_name, sent=sent,
                                        subject=parsed.subject, body=parsed.body, support=self.config.support,
                                        not_recorded=note)
        mail = OutgoingMail(kind=KIND, to=managers, subject=rendered.subject, text=rendered.text, html=rendered.html,
                            reply_to=parsed.from_addr, in_reply_to=message.message_id,
                            references=[sent.message_id, message.message_id], auto_submitted="auto-generated")
        enqueue(session, mail, key=f"{KIND}:{short_key(message.message_id)}", support=self.config.support, now=now)
        told = f"; #decision not recorded: {note}" if note else ""
        return f"reply to {sent.kind} from {parsed.from_addr}: sent to the project managers as a comment{told}"

    def _digest_reply(self, session: Session, sent: OutboxItem, parsed: ParsedMessage, now: datetime) -> str:
        """A reply to a triage digest acts on no ticket (which one?): the member is told where to write.

        Kept as a comment; a team member gets one short answer per hour (a forger chooses the From), anyone
        else nothing.
        """
        member = self.config.team_member(parsed.authority_address or "")
        if member is None:
            return f"reply to {sent.kind} from {parsed.from_addr}: kept as a comment (not a team member)"
        rendered = self.renderer.render("digest_reply", member_name=member.name, sent=sent, support=self.config.support)
        mail = OutgoingMail(kind="digest_reply", to=[member.email], subject=rendered.subject, text=rendered.text,
                            html=rendered.html, in_reply_to=parsed.message_id or None,
                            references=[sent.message_id], auto_submitted="auto-replied")
        enqueue(session, mail, key=f"digest-reply:{member.email.lower()}:{now:%Y-%m-%dT%H}",
                support=self.config.support, now=now)
        return f"reply to {sent.kind} from {parsed.from_addr}: no ticket named; told to write to a ticket's address"
