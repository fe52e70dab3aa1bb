"""What each reply command does to a ticket, once the reply is known to be authorised.

Why a table of tiny classes, one per command, with the same names as the syntax table
(``replies.command_syntax.COMMANDS``): each command's effect (state change, audit
event with actor, time and message, notification) is readable on its own, and the
registry refuses a duplicate or a command without an action.  An action never
raises for something the team member got wrong: it adds a line to ``not_done``
saying why, so the confirmation mail can tell them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config import Config, TeamMember
from core.errors import DuplicateName
from core.registry import Registry
from notifier.escalation import Escalator
from notifier.labels import role_label
from notifier.notices import Notices
from notifier.outbox import short_key
from notifier.team_notice import team_members_for
from replies.command_syntax import COMMANDS, Command, ReplyCommands
from tickets.corrections import record_correction
from tickets.decisions import WORDS, DecisionProblem, decider, parse_decision, record_decision
from tickets.incidents import (
    LinkReason,
    add_update,
    deciding_rule,
    join,
    open_reports,
    start_incident,
    terms_of,
    unlink,
)
from tickets.lifecycle import add_participant, find_by_key, record_event
from tickets.models import CLOSED_STATUSES, Message, Ticket
from tickets.our_mail import is_our_address
from tickets.response_clock import cycle_of, pauses_from, recompute_due, record_first_response
from tickets.sla import SlaPolicy


@dataclass
class ActContext:
    """One authorised reply being acted on: the ticket, who, when, which message, and the outcome lines."""

    session: Session
    config: Config
    sla: SlaPolicy
    escalator: Escalator
    notices: Notices
    ticket: Ticket
    member: TeamMember
    message: Message
    now: datetime
    reply: ReplyCommands
    done: list[str] = field(default_factory=list)
    not_done: list[tuple[str, str]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)

    def event(self, kind: str, detail: str, data: dict[str, Any] | None = None) -> None:
        record_event(self.session, self.ticket, kind, self.now, actor=self.member.email, detail=detail,
                     data=data, message_row_id=self.message.id)

    def first_response(self) -> None:
        """A person on the team responded (an answer, ``#ack``, ``#wait``, ``#resolve``): stop the response
        clock (met or breached), which ends the response ladder (issue 14: "the ladder listens")."""
        if record_first_response(self.sla, self.ticket, pauses_from(self.ticket.events), self.now):
            verdict = "met" if self.ticket.response_met else "breached"
            self.event("first_response", f"first response {verdict}",
                       {"met": self.ticket.response_met, "elapsed_seconds": self.ticket.response_elapsed_seconds})
            self.done.append(f"first response recorded: SLA {verdict}")
        incident = self.ticket.incident
        if incident is not None:
            # The team answering one report of an incident answers all of them (their ladders end too).
            for other in open_reports(incident):
                if other is not self.ticket and record_first_response(self.sla, other, pauses_from(other.events),
                                                                      self.now):
                    record_event(self.session, other, "first_response", self.now, actor=self.member.email,
                                 detail=f"first response with incident {incident.key} (by {self.ticket.key})",
                                 data={"met": other.response_met, "incident": incident.key})


class Action:
    name = ""

    def apply(self, ctx: ActContext, command: Command) -> None:
        raise NotImplementedError


class AckAction(Action):
    name = "ack"

    def apply(self, ctx: ActContext, command: Command) -> None:
        ticket = ctx.ticket
        if ticket.status in CLOSED_STATUSES:
            ctx.not_done.append((command.line, f"the ticket is {ticket.status}"))
            return
        changes = []
        if ticket.status == "new":
            ticket.status = "acknowledged"
            changes.append("status acknowledged")
        if not ticket.assignee:
            ticket.assignee = ctx.member.email
            changes.append(f"assignee {ctx.member.email}")
        if not changes:
            ctx.not_done.append((command.line, f"already acknowledged (status {ticket.status}, "
                                               f"assignee {ticket.assignee})"))
            return
        ctx.event("acknowledged", f"acknowledged by {ctx.member.name}: {', '.join(changes)}",
                  {"assignee": ticket.assignee})
        ctx.done.append(f"acknowledged ({', '.join(changes)})")
        ctx.first_response()


class WaitAction(Action):
    name = "wait"

    def apply(self, ctx: ActContext, command: Command) -> None:
        ticket = ctx.ticket
        if ticket.status in CLOSED_STATUSES:
            ctx.not_done.append((command.line, f"the ticket is {ticket.status}"))
            return
        if ticket.status == "waiting_on_customer":
            ctx.not_done.append((command.line, "already waiting on the reporter"))
            return
        ctx.first_response()  # before the pause: the clock stops at now, not at paused_at
        ticket.status = "waiting_on_customer"
        ticket.paused_at = ctx.now
        ctx.event("paused", f"waiting on the reporter (by {ctx.member.name}); SLA clock paused")
        ctx.done.append("waiting on the reporter: the SLA clock is paused until the reporter replies")


class SeverityAction(Action):
    name = "severity"

    def apply(self, ctx: ActContext, command: Command) -> None:
        ticket, new = ctx.ticket, command.arg
        old = ticket.severity
        if new == old and ticket.uncertain:
            # The notice of an uncertain verdict asks for exactly this: the owner confirms it.
            ticket.uncertain = False
            ctx.event("severity_confirmed", f"severity {old} confirmed by {ctx.member.name}", {"severity": old})
            ctx.done.append(f"severity {old} confirmed; the ticket is no longer marked uncertain")
            return
        if new == old:
            ctx.not_done.append((command.line, f"the ticket is already {old}"))
            return
        ticket.uncertain = False
        cycle = cycle_of(ticket.events) + 1
        ticket.severity = new
        if ticket.first_response_at is None:
            ticket.response_due = recompute_due(ctx.sla, new, ticket.created_at, pauses_from(ticket.events))
        ticket.resolution_due = ctx.sla.resolution_due(new, ticket.created_at)
        due = ticket.response_due.astimezone(ctx.config.hypercare.tz).strftime("%a %d %b %H:%M %Z") \
            if ticket.response_due else "-"
        ctx.event("severity_changed", f"severity {old} -> {new} by {ctx.member.name}; response due {due}",
                  {"from": old, "to": new, "original": ticket.original_severity, "cycle": cycle})
        record_correction(ctx.session, ticket, "severity", old, new, actor=ctx.member.email, at=ctx.now)
        ctx.done.append(f"severity {old} -> {new}; first response due {due}")
        if new == "P1" and ticket.first_response_at is None:
            ctx.after.append(lambda: self._escalate_p1(ctx, cycle))

    @staticmethod
    def _escalate_p1(ctx: ActContext, cycle: int) -> None:
        if ctx.ticket.status in CLOSED_STATUSES or ctx.ticket.first_response_at is not None:
            return  # answered in the same reply: the response clock the page is about has stopped
        sent = ctx.escalator.escalate_p1(ctx.session, ctx.ticket, ctx.now, cycle=cycle)
        if sent is not None:
            ctx.done.append(f"P1 escalation sent to {', '.join(sent.recipients) or 'nobody'}")


class AssignAction(Action):
    name = "assign"

    def apply(self, ctx: ActContext, command: Command) -> None:
        if "@" in command.arg:
            self._to_member(ctx, command)
        else:
            self._to_role(ctx, command)

    def _to_role(self, ctx: ActContext, command: Command) -> None:
        ticket, role = ctx.ticket, command.arg
        if ticket.role == role:
            ctx.not_done.append((command.line, f"the ticket is already with {role}"))
            return
        old = ticket.role
        ticket.role = role
        ticket.uncertain = False
        to = team_members_for(ctx.config, ticket, role=role)
        ctx.event("role_changed", f"role {old} -> {role} by {ctx.member.name}",
                  {"from": old, "to": role, "original": ticket.original_role, "notified": to})
        record_correction(ctx.session, ticket, "role", old, role, actor=ctx.member.email, at=ctx.now)
        ctx.escalator.notify_assignment(ctx.session, ticket, to, actor=ctx.member, what=role_label(role),
                                        key=f"assignment:{ticket.key}:{role}:{short_key(ctx.message.message_id)}",
                                        now=ctx.now)
        who = ", ".join(to) if to else f"nobody: no [[team]] member holds {role}"
        ctx.done.append(f"assigned to {role_label(role)} ({role}); notified {who}")

    def _to_member(self, ctx: ActContext, command: Command) -> None:
        ticket = ctx.ticket
        target = ctx.config.team_member(command.arg)
        if target is None:
            ctx.not_done.append((command.line, f"{command.arg} is not a team member in [[team]]; "
                                               "give a role or a team member's email"))
            return
        if (ticket.assignee or "").lower() == target.email.lower():
            ctx.not_done.append((command.line, f"{target.email} is already the assignee"))
            return
        old = ticket.assignee
        ticket.assignee = target.email.lower()
        ctx.event("assigned", f"assignee {old or '-'} -> {target.email} by {ctx.member.name}",
                  {"from": old, "to": target.email.lower()})
        ctx.escalator.notify_assignment(
            ctx.session, ticket, [target.email], actor=ctx.member, what=f"{target.name} <{target.email}>",
            key=f"assignment:{ticket.key}:{target.email.lower()}:{short_key(ctx.message.message_id)}", now=ctx.now)
        ctx.done.append(f"assigned to {target.name} <{target.email}> (notified)")


class NoteAction(Action):
    name = "note"

    def apply(self, ctx: ActContext, command: Command) -> None:
        # A reply with #note is internal as a whole: text below it belongs to the note, never to the reporter.
        notes = [c.arg for c in ctx.reply.commands if c.name == "note" and c.arg]
        if command is not next(c for c in ctx.reply.commands if c.name == "note"):
            return  # all #note lines become one note, recorded once
        text = "\n".join([*notes, ctx.reply.text]).strip()
        ctx.event("note", text, {"internal": True})
        ctx.done.append("internal note recorded (nothing was sent to the reporter)")


class ResolveAction(Action):
    name = "resolve"

    def apply(self, ctx: ActContext, command: Command) -> None:
        ticket = ctx.ticket
        if ticket.status in CLOSED_STATUSES:
            ctx.not_done.append((command.line, f"the ticket is already {ticket.status}"))
            return
        internal = ctx.reply.named("note") is not None
        text = "" if internal else ctx.reply.text
        resolution = command.arg or text
        was_paused = ticket.paused_at is not None
        ctx.first_response()
        if was_paused:
            ctx.event("resumed", "resolved while waiting on the reporter; SLA clock stopped")
        ticket.status = "resolved"
        ticket.resolved_at = ctx.now
        ticket.paused_at = None
        ticket.resolution = resolution
        ctx.event("resolved", resolution[:500] or f"resolved by {ctx.member.name}", {"resolution": resolution})
        ctx.notices.resolution(ctx.session, ticket, ctx.member, resolution, text, ctx.message, ctx.now)
        ctx.done.append(f"resolved; the reporter ({ticket.reporter}) was sent the resolution and can reopen "
                        f"by replying within {ctx.config.hypercare.reopen_days} days")
        if ticket.incident is not None and ticket.incident.status == "open":
            self._resolve_incident(ctx, resolution, text)

    @staticmethod
    def _resolve_incident(ctx: ActContext, resolution: str, text: str) -> None:
        """Every open report of the incident is resolved; each reporter is told in their own thread."""
        incident = ctx.ticket.incident
        assert incident is not None
        incident.status = "resolved"
        incident.resolved_at = ctx.now
        incident.resolution = resolution
        add_update(ctx.session, incident, resolution or f"resolved by {ctx.member.name}", ctx.member.name, ctx.now,
                   kind="resolved")
        others = [t for t in open_reports(incident) if t is not ctx.ticket]
        for other in others:
            record_first_response(ctx.sla, other, pauses_from(other.events), ctx.now)
            other.status, other.resolved_at, other.paused_at, other.resolution = "resolved", ctx.now, None, resolution
            record_event(ctx.session, other, "resolved", ctx.now, actor=ctx.member.email,
                         detail=f"resolved with incident {incident.key}: {resolution[:400]}",
                         data={"resolution": resolution, "incident": incident.key}, message_row_id=ctx.message.id)
            ctx.notices.resolution(ctx.session, other, ctx.member, resolution, text, ctx.message, ctx.now,
                                   key=f"resolved:{other.key}:{short_key(ctx.message.message_id)}")
        ctx.done.append(f"incident {incident.key} resolved: {len(others)} more reports resolved and their "
                        "reporters told")


class LinkAction(Action):
    """``#link HC-n`` / ``#merge HC-n``: this ticket joins HC-n's incident (one is started if it has none)."""

    name = "link"

    def apply(self, ctx: ActContext, command: Command) -> None:
        ticket = ctx.ticket
        target = find_by_key(ctx.session, command.arg)
        if target is None or target is ticket:
            why = "that is this ticket" if target is ticket else f"there is no ticket {command.arg}"
            ctx.not_done.append((command.line, why))
            return
        if target.incident is not None and target.incident is ticket.incident:
            ctx.not_done.append((command.line, f"already in incident {target.incident.key} with {target.key}"))
            return
        if ticket.incident is not None:
            unlink(ctx.session, ticket, ctx.now, ctx.member.email)
        incident = target.incident or start_incident(ctx.session, target, ctx.now,
                                                     rule=deciding_rule(target) or "", terms=terms_of(target))
        reason = LinkReason(rule=incident.rule, role=ticket.role, shared_terms=(), minutes_after=0.0,
                            earlier=target.key, by=f"#{command.name}")
        join(ctx.session, incident, ticket, reason, ctx.now, actor=ctx.member.email)
        ctx.done.append(f"linked to incident {incident.key} with {target.key} ({len(incident.tickets)} reports)")


class MergeAction(LinkAction):
    name = "merge"


class UnlinkAction(Action):
    name = "unlink"

    def apply(self, ctx: ActContext, command: Command) -> None:
        incident = unlink(ctx.session, ctx.ticket, ctx.now, ctx.member.email)
        if incident is None:
            ctx.not_done.append((command.line, f"{ctx.ticket.key} is not part of an incident"))
            return
        ctx.done.append(f"taken out of incident {incident.key}; {ctx.ticket.key} has its own ladder again")


class UpdateAction(Action):
    """``#update text``: the incident's latest status (a lone ticket becomes an incident of one)."""

    name = "update"

    def apply(self, ctx: ActContext, command: Command) -> None:
        text = "\n".join(part for part in (command.arg, ctx.reply.text) if part).strip()
        ticket = ctx.ticket
        if ticket.status in CLOSED_STATUSES:
            ctx.not_done.append((command.line, f"the ticket is {ticket.status}"))
            return
        incident = ticket.incident or start_incident(ctx.session, ticket, ctx.now,
                                                     rule=deciding_rule(ticket) or "", terms=terms_of(ticket))
        add_update(ctx.session, incident, text, ctx.member.name, ctx.now)
        ctx.event("incident_update", text[:500], {"incident": incident.key})
        ctx.done.append(f"incident {incident.key} updated; later reports are told: {text[:200]}")


class CcAction(Action):
    """``#cc add|remove``: a team member decides who beyond the reporter's colleagues hears the answers.

    Why a command: automatic participants are bounded (``tickets.lifecycle.choose_cc``); anyone
    else (the customer's contractor, a second company) is added by a person who read the request.
    """

    name = "cc"

    def apply(self, ctx: ActContext, command: Command) -> None:
        verb, address = command.arg.split(" ", 1)
        ticket = ctx.ticket
        current = next((p for p in ticket.participants if p.email == address), None)
        if verb == "remove":
            if current is None or current.kind != "cc":
                ctx.not_done.append((command.line, f"{address} is not copied on {ticket.key}"))
                return
            ticket.participants.remove(current)
            ctx.session.delete(current)
            ctx.event("participant_removed", f"{address} no longer copied (by {ctx.member.name})", {"email": address})
            ctx.done.append(f"{address} no longer gets the answers")
            return
        if ctx.config.team_member(address) is not None or is_our_address(ctx.config.support, address):
            ctx.not_done.append((command.line, f"{address} is the team or this desk: never copied on answers"))
            return
        if current is not None:
            ctx.not_done.append((command.line, f"{address} already takes part in {ticket.key} ({current.kind})"))
            return
        add_participant(ctx.session, ticket, address, "cc")
        ctx.event("participant_added", f"{address} copied on answers (by {ctx.member.name})",
                  {"email": address, "kind": "cc"})
        ctx.done.append(f"{address} now gets every answer on {ticket.key}")


class DecisionAction(Action):
    """A project manager records the exit decision through a signed reply (any ticket's thread carries it).

    The decision is the desk's, not the ticket's: it becomes an ``exit_decisions`` row (shown by the
    exit report and the dashboard) and an ``exit_decision`` audit event on the ticket whose signed
    address carried it; the stakeholders get the confirmation mail.
    """

    name = "decision"

    def apply(self, ctx: ActContext, command: Command) -> None:
        try:
            member = decider(ctx.config, ctx.member.email)
            parsed = parse_decision(f"{command.arg}\n{ctx.reply.text}".strip())
        except DecisionProblem as problem:
            ctx.not_done.append((command.line, str(problem)))
            return
        row = record_decision(ctx.session, parsed, member, ctx.now, "mail", ctx.message.message_id)
        ctx.event("exit_decision", f"exit decision {WORDS[parsed.decision]} by {member.name}"
                                   f"{': ' + parsed.text[:300] if parsed.text else ''}",
                  {"decision": parsed.decision, "text": parsed.text, "decision_id": row.id})
        ctx.notices.exit_decision(ctx.session, row, ctx.now)
        ctx.done.append(f"exit decision recorded: {WORDS[parsed.decision]}; the stakeholders get a confirmation")


class ActionTable(Registry[Action]):
    """The explicit table of command actions; refuses duplicates and must match the syntax table."""

    def __init__(self, actions: Iterable[Action], names: Iterable[str]) -> None:
        super().__init__("command action", actions)
        missing = set(names) ^ set(self.names())
        if missing:
            raise DuplicateName(f"reply commands and actions differ: {', '.join(sorted(missing))}")

    def in_order(self, commands: Iterable[Command]) -> list[Command]:
        """The commands sorted by the table's order (not the mail's)."""
        rank = {name: i for i, name in enumerate(self.names())}
        return sorted(commands, key=lambda c: rank[c.name])


# Applied in this order whatever the order in the mail: the severity and role first (so an
# acknowledgement or a resolution sees the final ones), the resolution last.
ACTIONS = ActionTable(
    (SeverityAction(), AssignAction(), CcAction(), LinkAction(), MergeAction(), UnlinkAction(), AckAction(),
     WaitAction(), NoteAction(), UpdateAction(), ResolveAction(), DecisionAction()),
    COMMANDS.names(),
)
