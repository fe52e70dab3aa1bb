"""Content-addressed attachment storage: the same bytes are stored once, whoever sends them.

Why content addressing: a customer re-sending the same screenshot, or the same mail
arriving twice, costs no disk; the sha256 in the database is the file name, so a row
can never point at the wrong content. Writes are atomic (temp file + rename) so a crash
never leaves a half-written file under a valid name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from core.errors import HypercareError
from core.private_files import private_dir

_SHA256 = re.compile(r"[0-9a-f]{64}")


class AttachmentIntegrityError(HypercareError):
    """The payload does not hash to the sha256 it was stored under."""


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """``<root>/ab/cd/<sha256>``: two fan-out levels keep directories small."""
        sha256 = sha256.lower()
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, payload: bytes, sha256: str) -> Path:
        """Store *payload* under *sha256* (verified) and return its path; idempotent."""
        actual = hashlib.sha256(payload).hexdigest()
        if actual != sha256.lower():
            raise AttachmentIntegrityError(f"payload hashes to {actual}, not {sha256}")
        target = self.path_for(actual)
        if target.exists() and target.stat().st_size == len(payload):
            return target
        private_dir(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")  # 0600 by mkstemp
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def get(self, sha256: str) -> bytes | None:
        path = self.path_for(sha256)
        return path.read_bytes() if path.exists() else None
