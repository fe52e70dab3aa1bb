"""AttachmentStore: content-addressed, verified, atomic, idempotent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tickets.attachments import AttachmentIntegrityError, AttachmentStore


def test_put_stores_under_the_hash_and_is_idempotent(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path / "attachments")
    payload = b"%PDF screenshot bytes"
    digest = hashlib.sha256(payload).hexdigest()
    path = store.put(payload, digest)
    assert path == tmp_path / "attachments" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == payload
    mtime = path.stat().st_mtime_ns
    assert store.put(payload, digest.upper()) == path
    assert path.stat().st_mtime_ns == mtime
    assert store.get(digest) == payload
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temp files left behind


def test_put_refuses_a_payload_that_does_not_match_its_hash(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    with pytest.raises(AttachmentIntegrityError):
        store.put(b"one", hashlib.sha256(b"two").hexdigest())
    assert list(tmp_path.rglob("*")) == []


def test_bad_digest_cannot_escape_the_root(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")
    assert store.get("0" * 64) is None


def test_a_truncated_file_is_rewritten(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    payload = b"x" * 100
    digest = hashlib.sha256(payload).hexdigest()
    path = store.path_for(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 10)  # a crash in an older, non-atomic writer
    assert store.put(payload, digest).read_bytes() == payload
