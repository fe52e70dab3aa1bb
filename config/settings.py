"""The settings objects: what a ``hypercare.toml`` means once it is read.

Why frozen dataclasses with defaults: the embedded defaults are simply ``Config()``,
and no component can change the configuration another one sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

from core.errors import UserError

ROLES = ("crm_admin", "business_analyst", "technical_consultant", "project_manager")
SEVERITIES = ("P1", "P2", "P3", "P4")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(UserError):
    """A problem in the configuration; its message is the one line shown to the user."""


@dataclass(frozen=True)
class SupportSettings:
    address: str = "support@localhost"
    name: str = "CRM Hypercare Support"
    ticket_prefix: str = "HC"

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0].lower()


@dataclass(frozen=True)
class HypercareSettings:
    go_live: date | None = None  # None: the day the database was created
    timezone: str = "UTC"
    business_start: time = time(9, 0)
    business_end: time = time(17, 0)
    business_days: frozenset[int] = frozenset(range(5))  # Monday = 0
    holidays: str = ""  # "DE" or "DE-BY"; empty = no public holidays
    extra_holidays: tuple[date, ...] = ()
    sprint_start: date | None = None  # None: go-live
    sprint_days: int = 14
    digest_time: time = time(8, 0)
    weekly_summary_day: int = 0
    reopen_days: int = 14  # a reply to a resolved ticket within this many days threads into it (reopens)
    exit_date: date | None = None  # None: the last business day of week 4 (tickets.phases.exit_report_day)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///var/hypercare.db"
    busy_timeout: float = 30.0  # seconds a writer waits for SQLite's lock before giving up (exit 75)


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int = 993
    security: str = "ssl"  # ssl | starttls | none
    username: str = ""
    password_env: str = ""
    oauth2_token_env: str = ""
    oauth2_token_command: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    idle: bool = True
    poll_seconds: int = 30
    batch_size: int = 200
    timeout: float = 30.0


@dataclass(frozen=True)
class SmtpInSettings:
    host: str = "127.0.0.1"
    port: int = 2525
    enabled: bool = True
    protocol: str = "smtp"  # smtp | lmtp (an MTA or Dovecot delivering to us over LMTP)
    max_transfers: int = 8  # DATA transfers at once; more get 451 (the sender retries)


@dataclass(frozen=True)
class SmtpOutSettings:
    host: str = ""
    port: int = 25
    security: str = "none"  # ssl | starttls | none
    username: str = ""
    password_env: str = ""
    maildir: str = "var/outbox"  # used when host is empty
    timeout: float = 30.0


@dataclass(frozen=True)
class DashboardSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    token_env: str = ""
    enabled: bool = True
    # Host names the dashboard answers to besides its bound address (behind a reverse proxy: its name);
    # any other Host header is refused (421), so DNS rebinding cannot read it through a browser.
    hostnames: tuple[str, ...] = ()
    # The public status page (/status, issue 16): resolved incidents of the last N days are listed, and
    # where users reach it (a reverse proxy, a wiki page of `dashboard --status-page --out`): the "known
    # issue" acknowledgement links to it.  Empty: no link.
    status_days: int = 7
    public_status_url: str = ""


@dataclass(frozen=True)
class TeamMember:
    name: str
    email: str
    roles: tuple[str, ...] = ()
    on_call: bool = False


@dataclass(frozen=True)
class StakeholderSettings:
    daily: tuple[str, ...] = ()
    weekly: tuple[str, ...] = ()


@dataclass(frozen=True)
class RulesSettings:
    file: str = ""  # empty: the built-in classifier/default_rules.toml
    mode: str = "extend"  # extend | replace
    learned: str = ""  # learned weights: empty = built-in classifier/learned_weights.json, "off", or a JSON file


@dataclass(frozen=True)
class SlaSettings:
    targets: dict[str, str] = field(
        default_factory=lambda: {"P1": "1h", "P2": "4h", "P3": "1 business day", "P4": "next sprint"}
    )
    # Resolution targets (issue 14): the phase goals "all P1 resolved the same day", "P2 within 2 days".
    resolution: dict[str, str] = field(
        default_factory=lambda: {"P1": "same business day", "P2": "2 business days"})
    escalate_at: tuple[float, ...] = (0.5, 0.8, 1.0)
    # The resolution ladder: the lower levels to the owner (assignee, else the role), 100 % also the PMs.
    resolution_escalate_at: tuple[float, ...] = (0.8, 1.0)


@dataclass(frozen=True)
class IntakeSettings:
    """Intake limits: what one mail may cost.  Past a limit the mail is still stored, cut and noted,
    or quarantined with the reason; never a blocked batch (docs/architecture.md, "Limits")."""

    max_attachment_bytes: int = 10 * 1024 * 1024
    attachments_dir: str = "var/attachments"
    flood_per_hour: int = 10
    max_message_bytes: int = 50 * 1024 * 1024  # larger: quarantined (SMTP: 552 at DATA)
    max_header_bytes: int = 256 * 1024  # the whole header block; the rest of the fields is dropped, noted
    max_header_field_bytes: int = 32 * 1024  # one field (the stdlib's header parser is quadratic in it)
    max_headers: int = 1000  # header fields; later ones dropped, noted
    max_encoded_words: int = 100  # RFC 2047 words per header; the rest of that header dropped, noted
    max_mime_depth: int = 20  # nesting below this is not read, noted
    max_mime_parts: int = 1000  # more MIME parts (Content-Type fields) than this: quarantined


@dataclass(frozen=True)
class NotifierSettings:
    templates_dir: str = ""
    max_attempts: int = 8
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    batch_size: int = 100
    feedback: str = "on"  # on | off | phases asking for a rating, e.g. "stabilisation,transition"
    # "Done: ..." mail after a team reply: "problems" (default) only when a line was not done, "all" always.
    confirmations: str = "problems"
    # Page storms: more than page_storm_pages immediate P1 pages to one person within page_storm_minutes
    # are held and sent as one page listing the tickets (notifier.page_storm).
    page_storm_pages: int = 5
    page_storm_minutes: int = 10


@dataclass(frozen=True)
class ReplySettings:
    """``[replies]``: how far a signed reply address reaches (``tickets.tokens``)."""

    token_days: float = 14.0  # a signed Reply-To acts for this long after the mail was sent
    secret_grace_hours: float = 24.0  # after a secret rotation, old tokens still act for this long
    cc_limit: int = 10  # people copied on a new request who hear every answer (reporter's or team's domains)


@dataclass(frozen=True)
class IncidentSettings:
    """``[incidents]``: when several reports are one problem (issue 14; see tickets.incidents)."""

    enabled: bool = True
    window_minutes: int = 60  # a report joins an incident whose latest report is at most this old
    min_shared_terms: int = 2  # significant words of subject and body shared with the earlier report ...
    min_shared_terms_p1: int = 1  # ... and for a P1 (an outage reported in three languages may share only "CRM")


@dataclass(frozen=True)
class TriageSettings:
    """``[triage]``: how the triage notice of a new P3/P4 ticket reaches its role (issue 14; notifier.triage).

    ``immediate``: one notice per ticket when it is opened (as P2).  ``digest``: one mail per member
    at each of ``digest_times`` (local, business days) listing the new P3/P4 tickets since the last one,
    each with its own signed reply address; at most ``digest_max_tickets`` listed, then "and N more".
    """

    low_severity: str = "immediate"  # immediate | digest
    digest_times: tuple[time, ...] = (time(9, 0), time(14, 0))
    digest_max_tickets: int = 50
    dashboard_url: str = ""  # where the digest points for the tickets it does not list; "" = [dashboard] host:port


@dataclass(frozen=True)
class ExitSettings:
    """Thresholds of the go/no-go exit report (``[exit]``); the dashboard's outlook uses the same."""

    criteria: tuple[str, ...] = ("no_open_blocking", "sla_compliance", "backlog_falling", "no_recent_p1")
    blocking_severities: tuple[str, ...] = ("P1", "P2")
    sla_target: float = 0.9  # share of first responses within SLA
    sla_window_days: int = 7
    backlog_window_days: int = 7
    no_p1_days: int = 5
    backlog_severities: tuple[str, ...] = ("P1", "P2", "P3")  # P4 is scheduled for sprints, not backlog
    sla_min_sample: int = 20  # fewer first responses than this: "n too small", the SLA is shown but not judged


@dataclass(frozen=True)
class Config:
    """Everything the service knows about its environment, resolved once at start."""

    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "embedded defaults"
    support: SupportSettings = field(default_factory=SupportSettings)
    hypercare: HypercareSettings = field(default_factory=HypercareSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    imap: ImapSettings | None = None
    smtp_in: SmtpInSettings = field(default_factory=SmtpInSettings)
    smtp_out: SmtpOutSettings = field(default_factory=SmtpOutSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    team: tuple[TeamMember, ...] = ()
    stakeholders: StakeholderSettings = field(default_factory=StakeholderSettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    sla: SlaSettings = field(default_factory=SlaSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    notifier: NotifierSettings = field(default_factory=NotifierSettings)
    replies: ReplySettings = field(default_factory=ReplySettings)
    exit: ExitSettings = field(default_factory=ExitSettings)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    triage: TriageSettings = field(default_factory=TriageSettings)

    def path(self, value: str) -> Path:
        """Resolve a path from the config relative to the config file's folder."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    def team_member(self, address: str) -> TeamMember | None:
        address = address.lower()
        return next((m for m in self.team if m.email.lower() == address), None)
