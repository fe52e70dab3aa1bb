"""``hypercare export tickets``: the backlog with its full history, for the ongoing support tool.

Why two formats with one shape: JSON is the lossless form (exactly ``show --json`` per ticket);
CSV is what spreadsheet-driven support tools import, one row per ticket with the contract's
columns, and the nested parts (classification, participants, messages, events) as JSON text in
their own columns.  ``read_export`` turns either back into the same list of dicts, so an export
round-trips and can be checked before the hand-over.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tickets.models import OPEN_STATUSES, Message, Ticket
from tickets.views import ticket_detail

FORMATS = ("csv", "json")


def export_rows(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    """Every ticket (or: ``open`` = every open status, or one status) as ``show --json`` objects."""
    query = select(Ticket).order_by(Ticket.number).options(
        selectinload(Ticket.messages).selectinload(Message.attachments),
        selectinload(Ticket.events), selectinload(Ticket.participants))
    if status == "open":
        query = query.where(Ticket.status.in_(OPEN_STATUSES))
    elif status:
        query = query.where(Ticket.status == status)
    return [ticket_detail(ticket) for ticket in session.scalars(query)]


def columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen) or ["key"]


def to_json_text(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def to_csv_text(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    names = columns(rows)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _cell(row.get(name)) for name in names})
    return out.getvalue()


def read_export(text: str, fmt: str) -> list[dict[str, Any]]:
    """Read an export back (the round-trip check, or an import on the other side)."""
    if fmt == "json":
        return json.loads(text)
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        rows.append({name: _uncell(value) for name, value in raw.items()})
    return rows


def _cell(value: Any) -> str:
    """Every CSV cell is JSON-encoded unless it is a plain string that cannot be mistaken for JSON."""
    if isinstance(value, str) and not _looks_like_json(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _uncell(value: str) -> Any:
    if value == "":
        return ""
    if _looks_like_json(value):
        return json.loads(value)
    return value


def _looks_like_json(text: str) -> bool:
    if text == "" or text in ("null", "true", "false"):
        return True
    if text[0] in '{["-0123456789':
        try:
            json.loads(text)
        except ValueError:
            return False
        return True
    return False
