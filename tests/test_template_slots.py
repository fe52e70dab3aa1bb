"""Templates filled by slots (notifier.template_slots): Jinja's own text, every time, for any value."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Template

from config import SupportSettings
from notifier.render import Renderer
from service import build_parser, make_app

HOSTILE = ["Report export broken", "", "<script>alert('x')</script> & \"quotes\"", "caf\u00e9 \u65e5\u672c",
           "\ue000" + "0" + "\ue001 slot look-alike", "line\r\nBcc: evil@example.com", "nul \x00 byte",
           "{{ 7 * 7 }} {% raw %}", "x" * 1_000_000, "\ufffd\udcff surrogate", "   ", "0"]


def _rows(i: int, subject: str, name: Any) -> dict[str, dict[str, Any]]:
    ticket = {"key": f"HC-{i}", "subject": subject, "reporter": f"user{i}@customer.example",
              "reporter_name": name, "severity": "P3", "role": "developer"}
    request = {"message_id": f"m{i}@x", "subject": subject, "body": "b", "references": []}
    return {"ticket": ticket, "request": request}


def _context(due: datetime | None) -> dict[str, Any]:
    return dict(incident=None, incident_title="", reports=0, update=None, severity="P3 Minor",
                role="Developer", response_target="1 business day", response_due=due,
                support=SupportSettings(), tz=UTC, status_url="")


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_the_acknowledgement_by_slots_is_jinjas_text_for_any_value(lang: str) -> None:
    renderer = Renderer()
    due = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for i, subject in enumerate(HOSTILE):
        for name in (subject, "", None, "Anna <b>Ö</b>"):
            for when in (due, None):
                rows = _rows(i, subject, name)
                slotted = renderer.render_rows("ack", lang, rows, **_context(when))
                plain = renderer.render("ack", lang, **rows, **_context(when))
                assert slotted == plain, (lang, subject[:40], name)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The name of every template Jinja renders from now on."""
    calls: list[str | None] = []
    original = Template.render

    def counting(self: Template, *args: Any, **kwargs: Any) -> str:
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Template, "render", counting)
    return calls


def test_a_batch_renders_each_template_shape_once(renders: list[str | None]) -> None:
    renderer = Renderer()
    due = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    texts = [renderer.render_rows("ack", "en", _rows(i, f"Export broken #{i}", f"User {i}"), **_context(due))
             for i in range(200)]
    assert len(renders) == 2  # ack.txt.j2 and ack.html.j2, once each for the whole batch
    assert "HC-199" in texts[-1].subject and "User 199" in texts[-1].text and "User 199" in (texts[-1].html or "")


def _site(tmp_path: Path, text: str) -> Renderer:
    (tmp_path / "ack.txt.j2").write_text(text, encoding="utf-8")
    (tmp_path / "ack.html.j2").write_text("<p>{{ ticket.subject }}</p>\n", encoding="utf-8")
    return Renderer(tmp_path)


@pytest.mark.parametrize("text", [
    # a value that decides something keys the cache instead of being slotted
    'Subject: {{ ticket.key }}\n{% if ticket.subject.startswith("Re") %}re{% endif %} {{ ticket.subject }}\n',
    'Subject: {{ ticket.key }}\n{{ ticket.subject | upper }} {{ ticket.subject|length }}\n',
    'Subject: {{ ticket.key }}\n{{ ticket.subject[:5] }}|{{ ticket.reporter_name or "-" }}\n',
    # never slotted: the row itself, a call, a random pick, a dict method
    'Subject: {{ ticket.key }}\n{{ ticket }}\n',
    'Subject: {{ ticket.key }}\n{{ ticket.subject.upper() }}\n',
    'Subject: {{ ticket.key }}\n{{ [1, 2, 3] | random }}{{ ticket.subject }}\n',
    'Subject: {{ ticket.key }}\n{{ ticket.keys }}\n',
    'Subject: {{ ticket["key"] }}\n{% set s = ticket.subject %}{{ s }}\n',
])
def test_a_site_template_that_uses_values_otherwise_is_still_rendered_right(tmp_path: Path, text: str) -> None:
    renderer = _site(tmp_path, text)
    for i, subject in enumerate(["Re: broken", "new & broken", "", "Reply <b>", "R"]):
        rows = _rows(i, subject, None if i % 2 else "Name")
        slotted = renderer.render_rows("ack", "en", rows, **_context(None))
        if "random" in text:
            assert slotted.subject == f"HC-{i}"
            continue
        assert slotted == renderer.render("ack", "en", **rows, **_context(None)), subject


def test_a_slot_look_alike_in_a_value_that_keys_the_cache_is_printed_as_it_is() -> None:
    """Values that key the cache (the owner's label, the severity) are rendered into the pieces; a look-alike
    of a slot marker there must stay text, not become another row's subject."""
    renderer = Renderer()
    due = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for marker in ("\ue000" + "0" + "\ue001", "\ue000" + "1" + "\ue001 and \ue000" + "2" + "\ue001"):
        context = {**_context(due), "role": marker, "severity": f"P3 {marker}"}
        for i in range(3):
            rows = _rows(i, f"Export broken #{i}", f"User {i}")
            assert renderer.render_rows("ack", "en", rows, **context) == renderer.render("ack", "en", **rows, **context)


def test_due_times_printed_alike_share_one_rendering(renders: list[str | None]) -> None:
    """SMTP groups are stored seconds apart, so each has its own due time; printed to the minute, the
    acknowledgement's text is the same shape, and is rendered by Jinja once, not once per group."""
    renderer = Renderer()
    dues = [datetime(2026, 11, 30, 9, 0, second, 1000 * second, tzinfo=UTC) for second in range(0, 60, 3)]
    for lang in ("en", "de", "fr"):
        texts = {renderer.render_rows("ack", lang, _rows(i, f"Export #{i}", None), **_context(due)).text
                 .replace(f"HC-{i}", "HC-n").replace(f"user{i}@", "user@") for i, due in enumerate(dues)}
        assert len(texts) == 1
    # once each: ack.txt.j2 and ack.html.j2, de/ack.txt.j2, fr/ack.txt.j2 (no HTML there)
    assert len(renders) == 4
    later = renderer.render_rows("ack", "en", _rows(1, "x", None), **_context(datetime(2026, 11, 30, 9, 1, tzinfo=UTC)))
    assert "09:01" in later.text and len(renders) == 6


@pytest.mark.parametrize("text", [
    # the due time used otherwise than printed through ``when`` keys the cache by its value
    'Subject: {{ ticket.key }}\n{{ response_due | when }} {{ response_due.second }}\n',
    'Subject: {{ ticket.key }}\n{{ response_due }}\n',
    'Subject: {{ ticket.key }}\n{{ response_due | when(tz, "%H:%M:%S") }}\n',
    'Subject: {{ ticket.key }}\n{{ response_due | when(tz, fmt) }}\n',
    'Subject: {{ ticket.key }}\n{{ response_due | when(tz, ticket.subject) }}\n',
    'Subject: {{ ticket.key }}\n{{ response_due | when(tz=tz) }}\n',
    'Subject: {{ ticket.key }}\n{{ (response_due or reports) | when }}\n',
    'Subject: {{ ticket.key }}\n{% if response_due %}{{ response_due | when }}{% else %}none{% endif %}\n',
    'Subject: {{ ticket.key }}\n{{ "a" if response_due else "b" }}{% for d in [response_due] %}{{ d | when }}'
    '{% endfor %}\n',
    # a name the template assigns itself is not the context's value
    'Subject: {{ ticket.key }}\n{% set fmt = "%S" %}{{ response_due | when(tz, fmt) }}\n',
    'Subject: {{ ticket.key }}\n{% for fmt in ["%f"] %}{{ response_due | when(tz, fmt) }}{% endfor %}\n',
    'Subject: {{ ticket.key }}\n{% set response_due = reports %}{{ response_due | when }}\n',
])
def test_a_site_template_reading_the_due_time_otherwise_is_still_rendered_right(tmp_path: Path,
                                                                                text: str) -> None:
    renderer = _site(tmp_path, text)
    for fmt in ("%H:%M", "%Y", "%S\x00\r\n", "%f" * 1000):
        for i, second in enumerate((0, 1, 59, None)):
            due = None if second is None else datetime(2026, 11, 30, 9, 0, second, 7 * i, tzinfo=UTC)
            rows = _rows(i, "%H:%M:%S", None)
            context = {**_context(due), "fmt": fmt}
            assert _outcome(renderer.render_rows, "ack", "en", rows, **context) == _outcome(
                renderer.render, "ack", "en", **rows, **context)


def _outcome(render: Any, *args: Any, **kwargs: Any) -> Any:
    """What a rendering gives: its text, or the kind and words of its error (a template may fail on None)."""
    try:
        return render(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc), str(exc)


@pytest.mark.parametrize("due", ["not a time", b"\xff\xfe", 12, "\x00" * 10_000])
def test_a_due_time_the_filter_cannot_print_fails_as_jinja_fails(due: Any) -> None:
    renderer = Renderer()
    rows = _rows(1, "x", None)
    slotted = _outcome(renderer.render_rows, "ack", "en", rows, **_context(due))
    assert isinstance(slotted, tuple) and issubclass(slotted[0], Exception)
    assert slotted == _outcome(renderer.render, "ack", "en", **rows, **_context(due))


def test_a_daemon_sees_an_edited_template_and_a_one_shot_drain_does_not_look(tmp_path: Path) -> None:
    """``run`` picks up an edited template; ``poll --once`` and ``ingest`` skip the two stats per mail."""
    template = tmp_path / "ack.txt.j2"
    template.write_text("first {{ 1 }}")
    watching, once = Renderer(tmp_path), Renderer(tmp_path, watch_files=False)
    assert watching.env.get_template("ack.txt.j2").render() == once.env.get_template("ack.txt.j2").render() == "first 1"
    template.write_text("second")
    later = template.stat().st_mtime + 10
    os.utime(template, (later, later))
    assert watching.env.get_template("ack.txt.j2").render() == "second"
    assert once.env.get_template("ack.txt.j2").render() == "first 1"


@pytest.mark.parametrize(("argv", "one_shot"), [
    (["poll", "--once"], True), (["ingest", "-"], True), (["poll"], False), (["run"], False), (["tick"], False),
])
def test_only_a_drain_that_ends_is_one_shot(argv: list[str], one_shot: bool, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPERCARE_CONFIG", raising=False)
    args = build_parser(argv).parse_args(argv)
    app = make_app(args, daemon=argv == ["run"])
    assert app.one_shot is one_shot
    assert app.renderer.env.auto_reload is not one_shot
