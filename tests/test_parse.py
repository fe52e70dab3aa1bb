"""parse_message: decoding, bodies, attachments, and "only UnparseableMessage ever escapes"."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake.parse.message import UnparseableMessage
from intake.parse.parser import normalize_newlines, parse_message, safe_filename


def mail(headers: str, body: bytes | str = b"Hello\n") -> bytes:
    body_bytes = body.encode() if isinstance(body, str) else body
    return headers.strip("\n").encode() + b"\n\n" + body_bytes


BASIC = mail(
    """
From: "Ada Admin" <Ada.Admin@Example.COM>
To: Support <SUPPORT@example.com>, bob@example.com
Cc: =?utf-8?q?J=C3=BCrgen?= <Juergen@Example.de>
Reply-To: ada+reply@example.com
Subject: =?utf-8?B?TG9naW4gZmFpbHMg4oCTIOKAnENSTeKAnQ==?=
Date: Mon, 23 Nov 2026 10:15:00 +0100
Message-ID: <abc.123@mail.example.com>
In-Reply-To: <hc.ack.x1@example.com>
References: <first@example.com>
 <hc.ack.x1@example.com>
""",
    "Please help.\n\nOn Mon, 23 Nov 2026, Support <support@example.com> wrote:\n> We got your mail.\n",
)


def test_headers_addresses_and_ids_are_decoded() -> None:
    parsed = parse_message(BASIC)
    assert parsed.message_id == "abc.123@mail.example.com"
    assert parsed.has_message_id is True
    assert parsed.subject == "Login fails – “CRM”"
    assert (parsed.from_addr, parsed.from_name) == ("ada.admin@example.com", "Ada Admin")
    assert parsed.to == ["support@example.com", "bob@example.com"]
    assert parsed.cc == ["juergen@example.de"]
    assert parsed.reply_to == ["ada+reply@example.com"]
    assert parsed.date == datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
    assert parsed.in_reply_to == "hc.ack.x1@example.com"
    assert parsed.references == ["first@example.com", "hc.ack.x1@example.com"]
    assert parsed.header("X-Missing") == ""
    assert parsed.raw == BASIC


def test_body_full_keeps_quote_and_body_trims_it() -> None:
    parsed = parse_message(BASIC)
    assert "We got your mail." in parsed.body_full
    assert parsed.body == "Please help."


def test_missing_message_id_is_synthesized_from_line_ending_independent_hash() -> None:
    lf = mail("From: a@example.com\nSubject: no id", "one\ntwo\n")
    crlf = lf.replace(b"\n", b"\r\n")
    cr = lf.replace(b"\n", b"\r")
    ids = {parse_message(raw).message_id for raw in (lf, crlf, cr)}
    digest = hashlib.sha256(lf).hexdigest()
    assert ids == {f"nomid.{digest}@hypercare.invalid"}
    parsed = parse_message(crlf)
    assert parsed.has_message_id is False
    assert parsed.content_hash == digest
    assert parsed.raw == crlf  # raw bytes kept exactly as received
    assert normalize_newlines(cr) == lf


def test_cr_only_mail_parses_headers_and_body() -> None:
    raw = mail("From: a@example.com\nSubject: mac\nMessage-ID: <m@x>", "line1\nline2\n").replace(b"\n", b"\r")
    parsed = parse_message(raw)
    assert parsed.subject == "mac"
    assert parsed.body_full == "line1\nline2"


def test_latin1_that_is_really_windows_1252_keeps_smart_quotes() -> None:
    raw = mail(
        "From: a@example.com\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\n"
        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit",
        b"\x93Gr\xfc\xdfe\x94 \x80 5\n",
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Grüße"
    assert parsed.body_full.strip() == "“Grüße” € 5"


def test_unknown_charset_is_decoded_best_effort_and_noted() -> None:
    raw = mail(
        "From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=x-klingon\n"
        "Content-Transfer-Encoding: 8bit",
        "Größe\n".encode(),
    )
    parsed = parse_message(raw)
    assert parsed.body_full.strip() == "Größe"
    assert any("x-klingon" in note for note in parsed.notes)


def test_lying_utf8_falls_back_and_records_it() -> None:
    raw = mail(
        "From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit",
        b"Caf\xe9 cr\xe8me\n",
    )
    parsed = parse_message(raw)
    assert parsed.body_full.strip() == "Café crème"
    assert any("windows-1252" in note for note in parsed.notes)


def test_undecodable_bytes_end_as_replacement_characters_with_a_note() -> None:
    raw = mail(
        "From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit",
        b"bad \x81\x8d\x8f\x90\x9d bytes\n",
    )
    parsed = parse_message(raw)
    assert "\ufffd" in parsed.body_full
    assert any("replacement" in note for note in parsed.notes)


def test_raw_utf8_headers_rfc6532_and_raw_iso2022jp() -> None:
    raw = mail("From: Jürgen <j@example.de>\nSubject: Überweisung fehlgeschlagen")
    assert parse_message(raw).subject == "Überweisung fehlgeschlagen"
    assert parse_message(raw).from_name == "Jürgen"
    jis = "件名テスト".encode("iso2022_jp")
    raw = b"From: a@example.jp\nSubject: " + jis + b"\n\nbody\n"
    assert parse_message(raw).subject == "件名テスト"


def test_html_only_mail_is_converted_without_scripts_or_styles() -> None:
    raw = mail(
        "From: a@example.com\nSubject: html\nContent-Type: text/html; charset=utf-8",
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head>"
        "<body><p>Login <b>broken</b></p><ul><li>step one</li></ul></body></html>",
    )
    body = parse_message(raw).body_full
    assert "Login broken" in body
    assert "step one" in body
    assert "alert" not in body and "color" not in body


def test_html_text_has_no_markdown_escapes_and_keeps_quotes_and_backslashes() -> None:
    """html2text escapes what Markdown would read as markup ("1\\. Open", "\\- then", a doubled backslash in
    "\\\\server"): the team read those backslashes in tickets.  Quotes still become "> " lines (reply trimming
    reads them) and preformatted text stays as it is."""
    raw = mail(
        "From: a@example.com\nSubject: html\nContent-Type: text/html; charset=utf-8",
        "<p>1. Open the CRM</p><p>- then + this # not a heading</p><p>Path C:\\Users\\maria and \\\\srv\\share_x</p>"
        "<p>*bold* _it_ [x](y) `code`</p><blockquote>1. quoted</blockquote><pre>2. kept</pre>",
    )
    body = parse_message(raw).body_full
    assert "1. Open the CRM" in body and "- then + this # not a heading" in body
    assert "C:\\Users\\maria and \\\\srv\\share_x" in body
    assert "*bold* _it_ [x](y) `code`" in body
    assert "> 1. quoted" in body and "2. kept" in body
    assert "\\." not in body and "\\-" not in body and "\\*" not in body


@pytest.mark.parametrize("html", [
    "<p>" + "1. x</p><p>" * 50_000 + "</p>",  # 50,000 list-like lines: once a regex pass each
    "<b>" * 20_000 + "deep" + "</b>" * 20_000,
    "<p>\x00 NUL \udcff surrogate \u202e bidi</p>" * 1_000,
])
def test_hostile_html_bodies_convert_without_escapes_or_errors(html: str) -> None:
    raw = mail("From: a@example.com\nSubject: html\nContent-Type: text/html; charset=utf-8",
               html.encode("utf-8", "surrogatepass"))
    body = parse_message(raw).body_full
    assert body and "\\." not in body


def test_alternative_prefers_text_plain() -> None:
    raw = mail(
        'From: a@example.com\nSubject: alt\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b"',
        "--b\nContent-Type: text/plain\n\nplain version\n--b\nContent-Type: text/html\n\n"
        "<p>html version</p>\n--b--\n",
    )
    parsed = parse_message(raw)
    assert parsed.body_full == "plain version"
    assert parsed.attachments == []


def _with_attachment(disposition: str, payload: bytes, ctype: str = "application/pdf") -> bytes:
    import base64

    encoded = base64.encodebytes(payload).decode()
    return mail(
        'From: a@example.com\nSubject: att\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"',
        f"--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: {ctype}\n"
        f"Content-Transfer-Encoding: base64\nContent-Disposition: {disposition}\n\n{encoded}\n--b--\n",
    )


def test_attachment_rfc2231_name_size_and_hash() -> None:
    payload = b"%PDF-1.4 fake" * 10
    raw = _with_attachment("attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf", payload)
    parsed = parse_message(raw)
    assert parsed.body_full == "see attached"
    [att] = parsed.attachments
    assert att.filename == "Rechnung März.pdf"
    assert att.content_type == "application/pdf"
    assert att.size == len(payload)
    assert att.sha256 == hashlib.sha256(payload).hexdigest()
    assert att.payload == payload


def test_attachment_rfc2047_name_and_path_traversal_is_neutralised() -> None:
    raw = _with_attachment('attachment; filename="=?utf-8?q?..=2F..=2Fetc=2Fpa=C3=9Fwd?="', b"x")
    assert parse_message(raw).attachments[0].filename == "paßwd"
    raw = _with_attachment('attachment; filename="C:\\\\Users\\\\evil\\\\run.exe"', b"x")
    assert parse_message(raw).attachments[0].filename == "run.exe"


def test_attachment_over_cap_is_recorded_without_payload() -> None:
    payload = b"a" * 5000
    parsed = parse_message(_with_attachment('attachment; filename="big.bin"', payload), max_attachment_bytes=1000)
    [att] = parsed.attachments
    assert att.payload is None
    assert att.size == 5000
    assert att.sha256 == hashlib.sha256(payload).hexdigest()
    assert any("omitted" in note for note in parsed.notes)


@pytest.mark.parametrize(
    ("name", "ctype", "expected"),
    [
        ("../../x.txt", "text/plain", "x.txt"),
        ("a\x00b\x1f.txt", "text/plain", "a_b_.txt"),
        ("...", "image/png", "attachment.png"),
        ("", "message/rfc822", "attachment.eml"),
        ("x" * 300 + ".pdf", "application/pdf", "x" * 190 + ".pdf"),
        ('what?<is>|this*.doc', "application/msword", "what_is_this_.doc"),
    ],
)
def test_safe_filename(name: str, ctype: str, expected: str) -> None:
    assert safe_filename(name, ctype) == expected


def test_bad_date_is_none_with_a_note() -> None:
    parsed = parse_message(mail("From: a@example.com\nDate: yesterday-ish\nSubject: d"))
    assert parsed.date is None
    assert any("Date" in note for note in parsed.notes)


def test_obsolete_header_syntax_bom_and_leading_blank_lines_are_tolerated() -> None:
    raw = b"\xef\xbb\xbf\n\nFrom  : a@example.com\nSubject : spaced\n\nbody\n"
    parsed = parse_message(raw)
    assert (parsed.from_addr, parsed.subject, parsed.body_full.strip()) == ("a@example.com", "spaced", "body")
    assert parsed.notes


def test_deep_nesting_does_not_crash() -> None:
    depth = 300
    parts = "".join(f'--b{i}\nContent-Type: multipart/mixed; boundary="b{i + 1}"\n\n' for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    raw = mail(
        'From: a@example.com\nSubject: deep\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b0"',
        parts + f"--b{depth}\nContent-Type: text/plain\n\ninnermost\n" + closing,
    )
    parsed = parse_message(raw)
    assert parsed.subject == "deep"
    assert any("nesting" in note for note in parsed.notes)  # parts below MAX_DEPTH ignored, noted


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"// Not an RFC-822 Document", b"\x00\x01\x02binary"])
def test_not_a_mail_is_unparseable_with_a_reason(raw: bytes) -> None:
    with pytest.raises(UnparseableMessage) as info:
        parse_message(raw)
    assert str(info.value)


def test_non_bytes_input_is_unparseable() -> None:
    with pytest.raises(UnparseableMessage):
        parse_message("From: a@example.com\n\nx")  # type: ignore[arg-type]


def test_random_garbage_never_raises_anything_else() -> None:
    rng = random.Random(20261123)
    seeds = [BASIC, _with_attachment('attachment; filename="a.pdf"', b"x" * 300)]
    for _ in range(300):
        base = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 30)):
            pos = rng.randrange(len(base))
            base[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            del base[rng.randrange(len(base)):]
        try:
            parsed = parse_message(bytes(base))
        except UnparseableMessage:
            continue
        assert isinstance(parsed.body, str) and isinstance(parsed.subject, str)


def test_corpus_attachment_names(corpus_dir: Path) -> None:
    folder = corpus_dir / "mikel-mail" / "attachment_emails"
    names = {
        f.name: [a.filename for a in parse_message(f.read_bytes()).attachments] for f in folder.iterdir()
    }
    assert names["attachment_nonascii_filename.eml"] == ["ciële.txt"]
    assert names["attachment_with_quoted_filename.eml"] == ["Eelanalüüsi päring.jpg"]
    assert names["attachment_with_unquoted_name.eml"] == ["This is a test.txt"]
    assert names["attachment_with_base64_encoded_name.eml"] == ["This is a test.pdf"]
    assert names["attachment_message_rfc822.eml"] == ["ForwardedMessage.eml"]


def test_corpus_undecodable_utf8_helpdesk_mail(corpus_dir: Path) -> None:
    parsed = parse_message((corpus_dir / "django-helpdesk" / "utf-nondecodable.eml").read_bytes())
    assert parsed.subject.startswith("Fwd: Cyklozaměstnavatel")
    assert parsed.body_full


def test_plain_address_lists_are_read_as_getaddresses_reads_them() -> None:
    """The fast path for plain address headers (intake.parse.parser._plain_addresses) agrees with the stdlib,
    and leaves everything else (quotes, comments, groups, odd dots, encoded words) to it."""
    import random
    from email.utils import getaddresses

    from intake.parse.parser import _plain_addresses

    rng = random.Random(17)
    atoms = ["a", "B0", "x.y", "x..y", "-a", "a-", "_", "+tag", "q", "CamelCase", "9"]
    domains = ["example.com", "b", "c-d.e", "-x.y", "a..b", "x.y.", "EXAMPLE.org"]
    names = ["", "Anna", "Anna Maria", "A  B", "\tA", "Jo 1", '"Quoted"', "(c)", "=?utf-8?q?x?="]
    spaces = ["", " ", "  ", "\t", " \t "]

    def item() -> str:
        address = f"{rng.choice(atoms)}@{rng.choice(domains)}"
        if rng.random() < 0.5:
            return rng.choice(spaces) + address + rng.choice(spaces)
        return f"{rng.choice(spaces)}{rng.choice(names)}{rng.choice(spaces)}<{address}>{rng.choice(spaces)}"

    fast = 0
    cases = [["User 0 <user0@customer0.example>"], ["support@example.com, Ops Team <ops@example.com>"], [""],
             ["a@b.c,"], [",a@b.c"], ["a@b.c,,b@c.d"], ["Name<a@b.c>"], ["<a@b.c>"], ["a@b.c", "D <d@e.f>"]]
    cases += [[", ".join(item() for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 2))]
              for _ in range(20000)]
    for values in cases:
        plain = _plain_addresses(values)
        if plain is None:
            continue
        fast += 1
        expected = [(" ".join(d.split()), a.strip().strip("<>").lower()) for d, a in getaddresses(values)]
        got = [(" ".join(d.split()), a.strip().strip("<>").lower()) for d, a in plain]
        assert [p for p in got if p[1]] == [p for p in expected if p[1]], values
    assert fast > 2000  # the common forms do take the fast path
