"""Who sent a mail, and whether that is clear enough to grant any authority.

Why its own module: ``From: ada@example.com <attacker@evil.test>`` was read as Ada although mail clients
and DMARC show (and check) the attacker; source routes, groups, several addresses and an address hidden
in an encoded display name are the same trick.  The rule (docs/architecture.md, "The identity rule"):
the real address is the angle address (the last one, its source route dropped) or else the first one;
anything ambiguous is recorded (``ParsedMessage.from_problem`` and a note) and gets no authority - no
team member's commands, no reporter's rights - while the ticket's reporter is still the real address.
"""

from __future__ import annotations

import re

_ANGLE = re.compile(r"<\s*(@[^<>:]*:)?\s*([^<>\s]+@[^<>\s]+?)\s*>")
# The lookbehind starts a match only where a local part can start: without it a 5,000-letter display
# name cost 0.7 s (every position tried, each scanning to the end for an "@").
_ADDRESS = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_GROUP = re.compile(r'^(?:[^"<>:;@]|"[^"]*")*:[^;]*;\s*$')


def judge_from(values: list[str], pairs: list[tuple[str, str]]) -> tuple[str, str, str]:
    """(display name, real address, problem) from the raw From values and what the address parser read.

    *values*: the unfolded From header values (8-bit already decoded); *pairs*: (decoded display name,
    lower-case address) as parsed.  ``problem`` is "" when the sender is unambiguous.
    """
    if not pairs:
        return "", "", ""
    name, address = pairs[0]
    joined = " ".join(values)
    problems: list[str] = []
    if len(values) > 1:
        problems.append(f"{len(values)} From headers")
    angles = _ANGLE.findall(joined)
    if any(route for route, _ in angles):
        problems.append("a source route")
    if any(_GROUP.match(v.strip()) for v in values):
        problems.append("a group")
    if len({a for _, a in pairs}) > 1:
        problems.append(f"{len({a for _, a in pairs})} addresses")
    if angles:
        real = angles[-1][1].strip().lower()
        if real != address:
            name = next((n for n, a in pairs if a == real), "")
            address = real
    outside = _ANGLE.sub(" ", joined) + " " + " ".join(n for n, _ in pairs)
    others = sorted({a.lower() for a in _ADDRESS.findall(outside)} - {address})
    if others:
        problems.append(f"a display name or comment holding another address ({others[0][:80]})")
    return name, address, "; ".join(problems)
