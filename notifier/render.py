"""Render mail templates addressed by key (``ack``, ``escalation``, ``status_daily``).

Why ``StrictUndefined`` and a start-up check: a typo in a template must fail when the
service starts, not as a blank line in a P1 escalation at 3 a.m.  Each key has a
``<key>.txt.j2`` and optionally ``<key>.html.j2`` (autoescaped); the subject is the
first line of the text template, prefixed ``Subject:``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.bccache import Bucket

from core.errors import UserError
from core.private_files import private_dir
from notifier.template_slots import SlotCache

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class TemplateProblem(UserError):
    """A template is missing or broken; the message names the template file to fix."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


# Compiled templates of this process, by jinja's key (template name and file) and the source's checksum.
_COMPILED: dict[tuple[str, str], CodeType] = {}


class ForgivingBytecodeCache(FileSystemBytecodeCache):
    """Jinja's file cache, but a damaged entry is compiled afresh instead of stopping the start; and
    what this process compiled or read once is kept in memory for its next Renderer.

    Why forgiving: jinja reads an entry's checksum with ``pickle.load`` before its own error handling,
    so a truncated or overwritten file raised ``UnpicklingError`` out of ``get_template``.  Why in memory
    too: each ``App`` checks every template at its start, and a process that builds several (the test
    suite, one desk per test in a fresh folder) compiled the same sources again each time.  A code object
    is immutable, and the key holds the source's checksum, so an edited template still recompiles.
    """

    def load_bytecode(self, bucket: Bucket) -> None:
        code = _COMPILED.get((bucket.key, bucket.checksum))
        if code is not None:
            bucket.code = code
            if not os.path.exists(self._get_cache_filename(bucket)):  # the next process reads it there
                super().dump_bytecode(bucket)
            return
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - whatever a broken entry raises, it is only a lost speed-up
            bucket.reset()
        if bucket.code is not None:
            _COMPILED[bucket.key, bucket.checksum] = bucket.code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is not None:
            _COMPILED[bucket.key, bucket.checksum] = bucket.code
        super().dump_bytecode(bucket)


def _bytecode_cache(folder: Path | None) -> ForgivingBytecodeCache | None:
    """The cache in *folder*, or none where the folder cannot be made (a read-only working folder)."""
    if folder is None:
        return None
    try:
        return ForgivingBytecodeCache(str(private_dir(folder)))
    except OSError:
        return None


class Renderer:
    def __init__(self, override_dir: Path | None = None, cache_dir: Path | None = None,
                 watch_files: bool = True) -> None:
        """*cache_dir*: where compiled templates are kept between runs (a private folder).

        Why a cache: compiling the ~30 templates costs a one-shot command such as ``hypercare ingest -``
        (one process per mail when the mail server pipes to it) about a third of a second; jinja keys each
        entry by the template's name and the checksum of its source, so an edited template recompiles.

        *watch_files*: look at a template file's time stamp on every use, so an edited template reaches a
        running daemon.  A one-shot command (``poll --once``, ``ingest``) ends before anyone edits one, and
        the two ``stat`` calls per acknowledgement were ~1.3 % of a drain (docs/performance.md).
        """
        loaders = [FileSystemLoader(str(override_dir))] if override_dir else []
        loaders.append(FileSystemLoader(str(BUILTIN_TEMPLATES)))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            bytecode_cache=_bytecode_cache(cache_dir),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=watch_files,
        )
        self.env.filters["when"] = _format_when
        self.slots = SlotCache(self.env)

    def check(self, keys: tuple[str, ...]) -> None:
        """Compile every template now so a syntax error stops the start, naming the file."""
        for key in keys:
            for name in (f"{key}.txt.j2", f"{key}.html.j2"):
                try:
                    self.env.get_template(name)
                except TemplateNotFound:
                    if name.endswith(".txt.j2"):
                        raise TemplateProblem(f"template {name} not found; add it to the templates folder") from None
                except TemplateError as exc:
                    raise TemplateProblem(f"template {name}: {exc}; fix the template") from None

    def localized(self, key: str, lang: str | None) -> str:
        """``de/ack`` when a German ``ack`` exists (built in or in the site's folder), else ``ack``.

        Why a folder per language: a site translates or rewords one file without touching the
        others, and a language without its own file falls back to the English one.
        """
        if lang and lang != "en":
            try:
                self.env.get_template(f"{lang}/{key}.txt.j2")
                return f"{lang}/{key}"
            except TemplateNotFound:
                pass
        return key

    def render(self, key: str, lang: str | None = None, **context: Any) -> Rendered:
        key = self.localized(key, lang)
        try:
            text = self.env.get_template(f"{key}.txt.j2").render(**context)
            html = self._render_optional(f"{key}.html.j2", context)
        except TemplateError as exc:
            raise TemplateProblem(f"template {key}: {exc}; fix the template or its data") from None
        return self._rendered(key, text, html)

    def render_rows(self, key: str, lang: str | None, rows: dict[str, dict[str, Any]], **context: Any) -> Rendered:
        """``render(key, lang, **rows, **context)`` for rows given as column values (dicts): the same text,
        through ``notifier.template_slots`` (a batch of acknowledgements renders each template shape once)."""
        key = self.localized(key, lang)
        try:
            text = self.slots.render(self.env.get_template(f"{key}.txt.j2"), rows, context)
            try:
                template = self.env.get_template(f"{key}.html.j2")
            except TemplateNotFound:
                html = None
            else:
                html = self.slots.render(template, rows, context)
        except TemplateError as exc:
            raise TemplateProblem(f"template {key}: {exc}; fix the template or its data") from None
        return self._rendered(key, text, html)

    def _rendered(self, key: str, text: str, html: str | None) -> Rendered:
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise TemplateProblem(f"template {key}.txt.j2 must start with a 'Subject:' line")
        return Rendered(subject=first[len("Subject:"):].strip(), text=body.lstrip("\n"), html=html)

    def render_page(self, name: str, **context: Any) -> str:
        """Render a whole page (the dashboard) rather than a mail."""
        try:
            return self.env.get_template(name).render(**context)
        except TemplateError as exc:
            raise TemplateProblem(f"template {name}: {exc}; fix the template or its data") from None

    def _render_optional(self, name: str, context: dict[str, Any]) -> str | None:
        try:
            template = self.env.get_template(name)
        except TemplateNotFound:
            return None
        return template.render(**context)


def _format_when(value: Any, tz: Any = None, fmt: str = "%a %d %b %Y %H:%M %Z") -> str:
    if value is None:
        return "—"
    if tz is not None:
        value = value.astimezone(tz)
    return value.strftime(fmt)
