"""``hypercare demo``: a walk-through on the embedded defaults, through the real intake.

Why through SMTP and not a function call: the demo should prove the installed
service works end to end (listener, pipeline, classifier, outbox, Maildir), the
way a user's mail client would reach it.
"""

from __future__ import annotations

import smtplib
import socket
import uuid
from email.message import EmailMessage

from sqlalchemy import select

from app import App
from config import SmtpInSettings
from intake.receive.smtp import SmtpReceiver
from tickets.models import OutboxItem, Ticket

SAMPLES = (
    ("maria.keller@example.com", "Maria Keller", "CRM is down for the whole sales team",
     "Since 8:00 nobody in sales can log in to the CRM. The login page shows error 503.\n"
     "This is blocking all customer calls."),
    ("tom.baker@example.com", "Tom Baker", "Cannot save opportunities",
     "When I click Save on an opportunity I get 'unexpected error'. The approval workflow is stuck."),
    ("lena.fischer@example.com", "Lena Fischer", "Typo on the account page",
     "The label says 'Adress' instead of 'Address'. Minor, there is a workaround."),
    ("raj.patel@example.com", "Raj Patel", "Feature request: export to Excel",
     "Would it be possible to add an export of the pipeline report to Excel? Nice to have."),
)


def run_demo(app: App) -> int:
    out = app.out
    port = _free_port()
    receiver = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=port))
    receiver.start()
    keys: list[str] = []
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for address, name, subject, body in SAMPLES:
                msg = EmailMessage()
                msg["From"] = f"{name} <{address}>"
                msg["To"] = app.config.support.address
                msg["Subject"] = subject
                msg["Message-ID"] = f"<demo.{uuid.uuid4().hex}@example.com>"
                msg.set_content(body)
                reply = smtp.send_message(msg)
                print(f"sent  {subject!r} from {address}{' refused: ' + str(reply) if reply else ''}", file=out)
    finally:
        receiver.stop()
    from tickets.views import list_tickets

    report = app.outbox.flush(app.transport())
    with app.store.session() as session:
        rows = list_tickets(session)[-len(SAMPLES):]
    print("\nTickets:", file=out)
    for row in rows:
        keys.append(row["key"])
        print(f"  {row['key']:<8} {row['severity']}  {row['role']:<21} {row['subject']}", file=out)
    where = (f"the relay {app.config.smtp_out.host}" if app.config.smtp_out.host
             else f"the Maildir {app.config.path(app.config.smtp_out.maildir)}")
    print(f"\nAcknowledgements sent: {report.sent} (to {where})", file=out)
    with app.store.read() as session:
        acks = session.execute(
            select(OutboxItem.recipients, OutboxItem.subject, OutboxItem.status)
            .join(Ticket, Ticket.id == OutboxItem.ticket_id)
            .where(OutboxItem.kind == "ack", Ticket.key.in_(keys)).order_by(OutboxItem.id)).all()
    for recipients, subject, status in acks:
        print(f"  {status:<5} to {', '.join(recipients)}: {subject}", file=out)
    print(f"Next: 'hypercare show {keys[0] if keys else 'HC-1'}' for one ticket with its reasons and thread.",
          file=out)
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
