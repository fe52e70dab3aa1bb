"""``hypercare demo``: a walk-through on the embedded defaults, through the real intake.

Why through SMTP and not a function call: the demo should prove the installed
service works end to end (listener, pipeline, classifier, outbox, Maildir), the
way a user's mail client would reach it.  It sends to the configured intake
(``[smtp_in] host:port``): when ``hypercare run`` is listening there, the samples
go to the running service, which acknowledges them on its next beat; when nothing
listens, the demo starts the intake on that port for the walk-through and sends the
acknowledgements itself.  Either way it says which one it did.
"""

from __future__ import annotations

import smtplib
import socket
import uuid
from email.message import EmailMessage

from sqlalchemy import select

from app import App
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
    settings = app.config.smtp_in
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    running = _listening(host, settings.port)
    own: SmtpReceiver | None = None
    if running:
        print(f"Sending {len(SAMPLES)} sample mails to the running service's intake at {host}:{settings.port} "
              "([smtp_in] port); it acknowledges them on its next beat.", file=out)
    else:
        print(f"Nothing listens on {host}:{settings.port} ([smtp_in] port): starting the intake there for this "
              f"demo, sending {len(SAMPLES)} sample mails, then the acknowledgements.", file=out)
        own = SmtpReceiver(app.pipeline, app.config.support, settings)
        own.start()
    keys: list[str] = []
    client = smtplib.LMTP if settings.protocol == "lmtp" else smtplib.SMTP
    try:
        with client(host, settings.port, timeout=30) as smtp:
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
        if own is not None:
            own.stop()
    from tickets.views import list_tickets

    report = app.outbox.flush(app.transport()) if own is not None else None
    with app.store.session() as session:
        rows = list_tickets(session)[-len(SAMPLES):]
    print("\nTickets:", file=out)
    for row in rows:
        keys.append(row["key"])
        print(f"  {row['key']:<8} {row['severity']}  {row['role']:<21} {row['subject']}", file=out)
    where = (f"the relay {app.config.smtp_out.host}" if app.config.smtp_out.host
             else f"the Maildir {app.config.path(app.config.smtp_out.maildir)}")
    if report is not None:
        print(f"\nAcknowledgements sent: {report.sent} (to {where})", file=out)
    else:
        print(f"\nAcknowledgements: queued; the running service sends them on its next beat (to {where})",
              file=out)
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


def _listening(host: str, port: int) -> bool:
    """Something accepts connections on host:port (the running service's intake, we assume)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
