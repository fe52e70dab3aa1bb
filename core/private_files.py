"""Files the desk writes hold every mail and the reply secret: owner-only, whatever the umask says.

Why explicit modes: the SQLite database (and its WAL/SHM, which SQLite creates with the database
file's mode), exports, kb drafts and ``--out`` files were created 0644 under a usual umask, readable
by every local user.  Folders the desk creates are 0700, files 0600; an existing folder chosen by the
operator (``--out /srv/www/``) keeps its mode, only what we create is restricted.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create *path* (and missing parents) as 0700; chmod explicitly, since mkdir's mode obeys the umask."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure *path* exists as an owner-only file (created empty if missing, else chmod 0600).

    An existing file is never opened: closing any descriptor of a file drops every POSIX lock this process
    holds on it, and *path* may be the live SQLite database (``/healthz`` probes it in the running daemon).
    With SQLite's locks gone, another process closing its last connection deleted the WAL the daemon was
    still writing to, and mail answered 250 was lost (tests/test_sqlite_durability.py).
    """
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    restrict(path)
    return path


def restrict(path: Path) -> None:
    """chmod 0600 when we may (a file another user owns, shared on purpose, is left as it is)."""
    try:
        os.chmod(path, FILE_MODE)
    except PermissionError:
        pass


def write_private(path: Path, data: str | bytes) -> Path:
    """Write *data* atomically (temporary file, then rename) as a 0600 file in a 0700-created folder."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
