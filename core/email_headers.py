"""Memoised ``email`` header machinery shared by the parser (mail in) and the MIME builder (mail out).

Why its own module: parsing, guards, threading and the classifier all read headers
from the same parsed tree, and the pipeline re-attaches this policy to trees parsed
in a worker process; keeping it apart from the parser keeps both readable.
"""

from __future__ import annotations

from email.headerregistry import BaseHeader, HeaderRegistry
from email.policy import EmailPolicy
from typing import Any


class HeaderClasses(HeaderRegistry):
    """``HeaderRegistry`` that makes each header class once, not on every header set, fetched or counted.

    Why: the stdlib builds a fresh class with ``type()`` per lookup (about 10 µs), and setting
    one header looks it up twice (``header_max_count`` and the factory).
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getstate__(self) -> dict[str, Any]:  # made classes do not pickle (a parse worker's result does)
        return {**self.__dict__, "_classes": {}}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        self._classes.clear()
        super().map_to_type(name, cls)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


class CachingPolicy(EmailPolicy):
    """``policy.default`` that parses each distinct header value once, while parsing and after.

    Why: parsing, guards, threading and the classifier ask one message for the same headers 20-30 times,
    and ``email.headerregistry`` parses the raw value on every ``get``.  Cached per message (header objects
    keep parse trees); MIME headers that repeat across mails share a bounded cache."""

    SHARED = frozenset({"content-type", "content-transfer-encoding", "mime-version", "content-disposition"})
    HEADERS = HeaderClasses()
    SHARED_CACHE: dict[tuple[str, str], object] = {}  # MIME header objects (immutable), for this process

    def __init__(self, shared: dict[tuple[str, str], object] | None = None, **kw: object) -> None:
        super().__init__(**{"header_factory": self.HEADERS, **kw})
        self.__dict__.update(_cache={}, _shared={} if shared is None else shared)

    def __getstate__(self) -> dict[str, object]:  # a worker's parse result pickles without the caches
        return {**self.__dict__, "_cache": {}, "_shared": {}}

    def header_fetch_parse(self, name: str, value: object) -> object:
        cache: dict[tuple[str, str], object] = self._shared if name.lower() in self.SHARED else self._cache  # type: ignore[attr-defined]
        header = value if hasattr(value, "name") else cache.get((name, value))
        if header is None:
            if len(cache) > 512:
                cache.clear()
            header = cache[(name, value)] = super().header_fetch_parse(name, value)
        return header
