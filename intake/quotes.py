"""Quoted history and signatures removed from a reply, for the ticket view (full text is kept)."""

from __future__ import annotations

import re

_QUOTE_HEADER = re.compile(r"^\s*(On .{4,200} wrote:|-{2,} ?Original Message ?-{2,}|From: .+)$", re.I)


def trim_reply(text: str) -> str:
    """Cut at the first quote header, "> " block or "-- " signature delimiter; never returns ""
    for a non-empty input that is not purely quoted."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for line in lines:
        if line.rstrip() == "--" or _QUOTE_HEADER.match(line) or line.startswith(">"):
            break
        kept.append(line)
    return "\n".join(kept).strip()
