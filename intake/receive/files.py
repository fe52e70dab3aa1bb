"""Where ``hypercare ingest`` reads mail from: .eml files, folders, mbox, Maildir, stdin.

Why generators: a 100,000-message mbox must stream through the pipeline in batches
with flat memory, never load whole.
"""

from __future__ import annotations

import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path

from core.errors import UserError

MAIL_SUFFIXES = {".eml", ".mbox", ".msg", ""}  # in folders; a file named on the command line is always read


class SourceError(UserError):
    """A path given to ingest cannot be read; the message names it."""


def iter_sources(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """Yield (label, raw bytes) for every message found under *paths* ("-" = stdin)."""
    if not paths:
        paths = ["-"]
    for path in paths:
        if path == "-":
            yield "stdin", sys.stdin.buffer.read()
            continue
        yield from _iter_path(Path(path))


def _iter_path(path: Path) -> Iterator[tuple[str, bytes]]:
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        if _is_maildir(path):
            yield from _iter_maildir(path)
            return
        for child in sorted(path.rglob("*")):
            if child.is_file() and not child.name.startswith(".") and child.suffix.lower() in MAIL_SUFFIXES:
                yield from _iter_file(child)
        return
    yield from _iter_file(path)


def _iter_file(path: Path) -> Iterator[tuple[str, bytes]]:
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box = mailbox.mbox(str(path), create=False)
        try:
            for index, key in enumerate(box.iterkeys()):
                yield f"{path}#{index + 1}", box.get_bytes(key, from_=False)
        finally:
            box.close()
        return
    yield str(path), path.read_bytes()


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _iter_maildir(path: Path) -> Iterator[tuple[str, bytes]]:
    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield f"{path}/{key}", box.get_bytes(key)
