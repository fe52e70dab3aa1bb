"""One self-overwriting status line on a terminal, and nothing at all when output is not a terminal.

Why: ``ingest`` and ``poll --once`` may run for minutes and should show they are alive,
but their stdout is a contract for scripts (one line per message), so the line is drawn
only on a terminal and is always cleared before a real line is printed.
"""

from __future__ import annotations

from typing import TextIO


class ProgressLine:
    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO = getattr(stream, "raw", stream)  # our own CR/erase codes pass a PrintableStream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write(f"\r{text}\033[K")
            self.stream.flush()

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
