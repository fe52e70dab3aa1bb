"""The generated support mails every ingest benchmark uses (every one a plausible new request).

Why its own module: ``bench/ingest_imap.py``, ``bench/smtp_intake.py``, ``bench/store_cpu.py`` and
``bench/peers.py`` must feed the same mails, and ``store_cpu`` imports it while another checkout is
first on ``sys.path``, so it imports nothing of the project.
"""

from __future__ import annotations

import random
from email.message import EmailMessage

SUBJECTS = (
    "Cannot save opportunity", "Report export to Excel fails", "Dropdown value missing in Lead form",
    "Login takes very long", "Sync with ERP shows errors", "Please add user to sales team",
    "Quote PDF has wrong logo", "Dashboard numbers look wrong", "Outlook plugin does not load",
    "Email to case not creating cases",
)
BODIES = (
    "Hello support,\n\nsince this morning {what}. I tried twice and logged out and in again.\n"
    "Could you have a look? Record {n} is an example.\n\nThanks\n{name}\n",
    "Hi,\n\n{what} for me and two colleagues. It worked last week.\n\nBest regards\n{name}\n"
    "Sales Operations\n",
)


def generate(count: int, senders: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    mails = []
    for i in range(count):
        who = i % senders
        subject = SUBJECTS[rng.randrange(len(SUBJECTS))]
        message_id = f"bench-{i}-{rng.getrandbits(48):x}"
        body = BODIES[i % 2].format(what=subject.lower(), n=rng.randrange(10**6), name=f"User {who}")
        mails.append(request(who, f"{subject} ({i})", message_id, body))
    return mails


def request(who: int, subject: str, message_id: str, body: str) -> bytes:
    """One mail of sender number *who* to the support address, as every bench mail is addressed and dated."""
    msg = EmailMessage()
    msg["From"] = f"User {who} <user{who}@customer{who % 7}.example>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}@customer{who % 7}.example>"
    msg["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    msg.set_content(body)
    return msg.as_bytes()
