"""Text that came from a stranger's mail, made safe for the two places it must never break.

Why in core: every room shows or stores mail text.  A database refuses some strings outright
(PostgreSQL: NUL; every UTF-8 driver: lone surrogates left by ``surrogateescape`` decoding), and a
terminal or a log file obeys escape sequences (ESC ... rewrites the screen, CR/LF forges log lines).
Both rules live here once, so the pipeline, the CLI and the logging filter cannot drift apart.
"""

from __future__ import annotations

import logging
import re
from typing import TextIO

_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 and C1 controls and DEL; TAB and LF are kept where multi-line output is wanted.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROLS_AND_NEWLINES = re.compile("[\x00-\x1f\x7f-\x9f]")
_KEEP_IN_ONE_LINE = {"\t": " "}


def storable(text: str) -> tuple[str, list[str]]:
    """*text* without NUL and with lone surrogates replaced by U+FFFD, plus what was changed (for notes)."""
    changed: list[str] = []
    if "\x00" in text:
        changed.append(f"{text.count(chr(0))} NUL character(s) removed")
        text = text.replace("\x00", "")
    surrogates = len(_SURROGATES.findall(text))
    if surrogates:
        changed.append(f"{surrogates} unencodable character(s) replaced")
        text = _SURROGATES.sub("\ufffd", text)
    return text, changed


def storable_text(text: str, limit: int | None = None) -> str:
    """``storable`` without the report, cut to *limit* characters: for reasons, details, log records."""
    text = storable(text)[0]
    return text if limit is None or len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    # \u00XX rather than \xXX: inside a JSON string (``--json`` output) it stays valid JSON.
    return _KEEP_IN_ONE_LINE.get(char) or f"\\u{ord(char):04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """*text* with control characters shown as ``\\u00NN`` (ESC, BEL, CR, NUL ...), surrogates replaced.

    ``one_line`` also neutralises line breaks (a subject in a table row, a log line); otherwise LF and
    TAB stay, so ``show`` keeps a body's paragraphs.
    """
    pattern = _CONTROLS_AND_NEWLINES if one_line else _CONTROLS
    text = _SURROGATES.sub("\ufffd", text)
    return pattern.sub(_visible, text) if pattern.search(text) else text


class PrintableStream:
    """A text stream (the CLI's stdout/stderr) that shows control characters instead of obeying them.

    Why at the stream: every command prints mail text (subjects, names, bodies, reasons); one wrapper
    around ``App.out``/``App.err`` covers them all, present and future.  LF and TAB pass (``show``
    keeps paragraphs); ``raw`` is the real stream, for the progress line's own CR and erase codes.
    """

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(printable(text))
        return len(text)

    def __getattr__(self, name: str) -> object:  # flush, isatty, fileno, encoding ...
        return getattr(self.raw, name)


class PrintableLogFilter(logging.Filter):
    """Neutralise control characters in every log record's final message (mail text reaches logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logging's own business
            return True
        safe = printable(message, one_line=True)
        if safe != message:
            record.msg, record.args = safe, None
        return True
