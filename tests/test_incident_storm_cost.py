"""Issue 17 (second pass): a storm's later report costs the same whatever the incident's size.

Not timed: the cost of one more report of an incident with 10 reports and of one with 300 is counted in
SQL statements and in ORM objects loaded, and must be equal. Before, ``IncidentGrouper.find_match`` loaded
up to 200 candidate tickets and their first mails, and "first report?", "answered?", the report count and
the reporters' names walked every report of the incident, for every report (O(n²) over a storm).
Speed itself is shown by ``bench/storm.py``. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from email import message_from_bytes
from email.policy import default

from desk_kit import desk_config, outbox, report, ticket
from hostile_mails import _mail
from sqlalchemy import event, insert, select

from tickets.incidents import add_update
from tickets.models import Base, Incident, Ticket
from tickets.store import next_number

MAIL = ("CRM is down", "Nobody can log in to the CRM since 8:00, error 503 for the whole sales team.")


def _cost(app, clock, n: int) -> tuple[int, Counter[str], int]:  # type: ignore[no-untyped-def]
    """Statements, loaded objects and reporters' rows read for the names of report n+1 (after a warm-up
    report n)."""
    report(app, MAIL, sender=f"warm{n}@customer.example")
    clock.advance(seconds=20)
    statements = [0]
    loaded: Counter[str] = Counter()

    def count(*_args: object) -> None:
        statements[0] += 1

    def load(target: object, _context: object) -> None:
        loaded[type(target).__name__] += 1

    rows_before = app.acknowledger.people.rows_read
    event.listen(app.store.engine, "before_cursor_execute", count)
    event.listen(Base, "load", load, propagate=True)
    try:
        key = report(app, MAIL, sender=f"measured{n}@customer.example")
    finally:
        event.remove(app.store.engine, "before_cursor_execute", count)
        event.remove(Base, "load", load)
    clock.advance(seconds=20)
    assert ticket(app, key).incident_id is not None
    return statements[0], loaded, app.acknowledger.people.rows_read - rows_before


def _grow(app, size: int) -> None:  # type: ignore[no-untyped-def]
    """The incident's reports up to *size*: copies of its second report from other reporters (rows only)."""
    with app.store.session() as s:
        incident = s.scalar(select(Incident))
        reports = list(s.scalars(select(Ticket).where(Ticket.incident_id == incident.id).order_by(Ticket.id)))
        top = max(t.number for t in s.scalars(select(Ticket)))
        template = {c.key: getattr(reports[1], c.key) for c in Ticket.__table__.columns if c.key != "id"}
        rows = [{**template, "number": top + i + 1, "key": f"HC-{top + i + 1}",
                 "reporter": f"copy{i}@customer.example", "reporter_name": f"Copy Person{i}"}
                for i in range(size - len(reports))]
        s.execute(insert(Ticket), rows)
        for _ in rows:  # the ticket counter follows the copies
            next_number(s, "ticket")


def test_one_more_report_costs_the_same_at_10_and_300_reports(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    for i in range(8):
        report(app, MAIL, sender=f"user{i}@customer.example")
        clock.advance(seconds=20)
    small = _cost(app, clock, 10)
    _grow(app, 300)
    large = _cost(app, clock, 300)
    assert small == large, (small, large)
    with app.store.read() as s:
        assert s.scalar(select(Incident).where(Incident.key == "INC-1")) is not None
        assert len(list(s.scalars(select(Ticket).where(Ticket.incident_id.is_not(None))))) == 302


def test_the_known_issue_acknowledgement_counts_and_redacts_every_reporter_of_a_grown_incident(
        make_app, clock, tmp_path, db_url):
    """The names and the count come from the kept facts of the incident, extended by each report: a name of
    a report stored by someone else (here: rows written directly) is still kept out of the #update quoted."""
    app = make_app(desk_config(tmp_path, db_url=db_url))
    for i in range(3):
        report(app, MAIL, sender=f"user{i}@customer.example")
        clock.advance(seconds=20)
    report(app, MAIL, sender="early@customer.example")  # the kept facts now know 4 reports
    _grow(app, 40)
    with app.store.session() as s:
        add_update(s, s.scalar(select(Incident)), "Person30 saw it first; the SSO proxy is being restarted.",
                   "Tim Tech", clock.now())
    report(app, MAIL, sender="late@customer.example")
    [ack] = [i for i in outbox(app, "ack_known") if "late@customer.example" in i.recipients]
    text = message_from_bytes(ack.mime, policy=default).get_body(("plain",)).get_content()
    assert "41 reports so far" in text and "Person30" not in text and "SSO proxy" in text, text


def test_hostile_reports_of_a_storm_store_bounded_terms_and_are_grouped_and_acknowledged(
        make_app, clock, tmp_path, db_url):
    """The stored grouping facts come from mail text: NUL, invalid UTF-8, CR/LF in encoded words, a megabyte
    of repeats and a 78,000-character subject give at most 60 plain words each, and the storm stays one."""
    app = make_app(desk_config(tmp_path, db_url=db_url))
    report(app, MAIL, sender="first@customer.example")
    repeats = ("The CRM is down, error 503. " * 40_000).encode()  # ~1 MB, thousands of repeats
    raws = [
        _mail([], b"Nobody can log in to the CRM, error 503 \x00 again.\r\n", mid="h1@customer.example",
              sender=b"=?utf-8?q?Nul=00Name?= <nul@customer.example>", subject=b"CRM is down\x00 NUL"),
        _mail([], b"The CRM \xff\xfe is down, error 503.\r\n", mid="h2@customer.example",
              sender=b"Bj\xc3\xb6rn \xff <bjorn@customer.example>", subject=b"CRM is down \xc3\x28"),
        _mail([], repeats, mid="h3@customer.example", sender=b"Rep <rep@customer.example>", subject=b"CRM is down"),
        _mail([], b"The CRM is down, error 503.\r\n", mid="h4@customer.example",
              sender=b"=?utf-8?q?Evil=0D=0AName?= <evil@customer.example>",
              subject=b"CRM is down =?utf-8?q?a=0D=0Ab?= " + b"x" * 78_000),
    ]
    for raw in raws:
        assert app.pipeline.ingest(raw).action == "created"
        clock.advance(seconds=20)
    with app.store.read() as s:
        tickets = list(s.scalars(select(Ticket).order_by(Ticket.id)))
    assert len(tickets) == 5 and len({t.incident_id for t in tickets}) == 1 and tickets[0].incident_id
    for t in tickets:
        terms = (t.incident_terms or "").split()
        assert t.incident_rule and 0 < len(terms) <= 60, (t.key, t.incident_rule, terms[:5])
        assert all(len(w) <= 40 and w.isalnum() for w in terms), terms
    assert len(outbox(app, "ack_known")) == 4
