"""How the desk recognises itself: its own addresses and the marks on the mail it sends.

Why in the domain: the receivers must not accept our own mail as a request, the opener must
not make us a participant of our own tickets, bounce handling must not count our own address
as a failed recipient, and the notifier must set exactly the marks the guards look for.  One
definition keeps all of them agreeing.
"""

from __future__ import annotations

from config import SupportSettings

# Every mail we send carries "X-Hypercare-Loop: <support address>" and a Message-ID <hc.<kind>.<random>@domain>.
LOOP_HEADER = "X-Hypercare-Loop"
MESSAGE_ID_PREFIX = "hc."


def is_our_address(support: SupportSettings, address: str) -> bool:
    """The support address itself or any of its plus-addresses (``support+HC-12.<token>@...``)."""
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != support.domain.lower():
        return False
    ours = support.local_part.lower()
    return local == ours or local.startswith(ours + "+")
