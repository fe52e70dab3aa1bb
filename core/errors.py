"""One root for every error the desk raises, with the two branches the command line cares about.

Why a tree: ``service.main`` turns a ``UserError`` into one line and exit 2 (the user can fix
it: a config key, a path, an unknown ticket) and a ``TryLater`` into one line and exit 75
(EX_TEMPFAIL: nothing is wrong with the request, try again; an MTA keeps the mail queued).
Before the tree, ``service.py`` listed thirteen classes by hand and a new one was easily
forgotten, which turned a user's typo into a traceback.  Everything else derives from
``HypercareError`` directly: an outcome a caller catches (a relay failure, an unparseable
mail), never shown to the user as such.
"""

from __future__ import annotations

EX_USAGE = 2
EX_TEMPFAIL = 75


class HypercareError(Exception):
    """Root of every exception the desk defines."""


class UserError(HypercareError):
    """The user can fix this; the message is one line naming what to fix (exit 2)."""


class TryLater(HypercareError):
    """Nothing to fix, a resource is busy or away (database locked, mailbox unreachable): exit 75."""


class DuplicateName(HypercareError):
    """Two items registered under one name in a table: a programming error, raised at import."""


class OutputNotWritable(UserError):
    """``--out PATH`` cannot be written; the message names the path."""
