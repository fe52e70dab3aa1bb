"""Quoted history and signatures removed from a reply, for the ticket view (full text is kept).

Why our own code: the reply-parsing libraries on PyPI (mail-parser-reply 1.36,
email-reply-parser 0.5.12, quotequail 0.5.4) were compared on the discourse
email_reply_trimmer corpus (64 replies, 12 languages; see docs/corpus.md) and matched
only 8-28 of 64 expected results: they leave "On ... wrote:" headers that wrap over
several lines, Outlook "From:/Sent:/To:" blocks, localized headers and mobile
signatures in place. This module classifies each line (empty, delimiter, signature,
embedded-mail marker, mail header, quote, text) and cuts by the shape of that line
sequence, which handles all of those and inline (interleaved) answers.
"""

from __future__ import annotations

import re

_WROTE = (
    r"wrote|writes|schrieb|geschrieben|a écrit|escribió|escreveu|ha scritto|scrisse|schreef|"
    r"het volgende geschreven|skrev|kirjoitti|pisze|napisał(?:\(a\))?|napsal(?:\(a\))?|написал(?:\(а\))?|"
    r"написав(?:\(ла\))?|писал|пише|пишет|yazdı|írta|写道|寫道|のメッセージ"
)
_MARKER_START = (
    r"(?:on|le|am|el|il|op|den|dnia|w dniu|em|dne|в|у|在|at|"
    r"понедельник|вторник|среда|четверг|пятница|суббота|воскресенье)\b|"
    r"[-*\s]*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b|\d{1,2}\.? \w{2,9}\.? \d{4}\b|"
    r"\S+(?: \S+){0,4} <[^>\s]+@[^>\s]+>"
)
# What ends such a header line: "wrote:" (and translations, maybe followed by a date and a colon).
_MARKER_END = rf"(?:{_WROTE})\b(?:[^\n]{{0,120}}(?:\n[^\n]{{0,60}})?:)?[\s:-]*"
# "On <date>, <someone> wrote:" wrapped over up to six lines (joined before classifying).
_WRAPPED_MARKER = re.compile(
    rf"^[ \t>]*(?:{_MARKER_START})[^\n]{{0,200}}(?:\n[^\n]{{0,200}}){{0,6}}?(?:{_MARKER_END}|"
    rf"<?\s*[^\s<>]+@[^\s<>]+>:\s*)$",
    re.I | re.M,
)
# Cheap substring pre-check before the (slow, case-insensitive, many-branched) marker patterns.
_WROTE_WORDS = tuple(w.split("(")[0].split("\\")[0] for w in _WROTE.split("|"))


def _has_wrote(text: str) -> bool:
    low = text.lower()
    return any(word in low for word in _WROTE_WORDS)


_MARKERS = (
    re.compile(rf"^[\s>*-]*(?:{_MARKER_START}).{{0,400}}{_MARKER_END}$", re.I),
    re.compile(r"^[\s>*_-]*-{2,}\s*(?:original message|forwarded message|message d'origine|"
               r"mensaje original|ursprüngliche nachricht|weitergeleitete nachricht|messaggio originale|"
               r"oorspronkelijk bericht|originalmeddelande|исходное сообщение|wiadomość oryginalna)",
               re.I),
    re.compile(r"^[\s>]*(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
               r"début du message réexpédié)\s*:", re.I),
    re.compile(r"^\s*\d{4}[-/]\d{1,2}[-/]\d{1,2} \d{1,2}:\d{2}(?: GMT[+-]\d{1,2}:?\d{2})?\s+\S.*$"),
    re.compile(r"^\s*\d{4}[-/]\d{1,2}[-/]\d{1,2}\b.{0,200}<[^\s<>]+@[^\s<>]+>:?\s*$"),
)
_HEADER = re.compile(
    r"^[\s>]*\*?(?:from|to|cc|bcc|sent|date|subject|reply-to|von|an|gesendet|betreff|datum|de|para|"
    r"enviado|asunto|fecha|à|envoyé|objet|da|a|inviato|oggetto|data|risposta|van|aan|verzonden|"
    r"onderwerp|från|till|skickat|ämne|fra|til|sendt|emne|od|do|wysłano|temat|от|кому|отправлено|"
    r"тема|дата|发件人|收件人|主题|日期)\s*\*?\s*:\*?(?:\s|$)",
    re.I,
)
_DEVICE = (
    r"iphone|ipad|ipod|android|mobile|phone|handy|mobilgerät|mobiltelefon|blackberry|galaxy|samsung|"
    r"htc|nokia|alcatel|outlook|airmail|mailbox|windows|yahoo|gmail|k-9|ti-85|cell|device|tablet"
)
_SIGNATURE = re.compile(
    rf"^[\s(<]*(?:sent|envoyé|enviado|inviato|verzonden|gesendet|sendt|skickat|wysłane|отправлено|"
    rf"von meinem|diese nachricht wurde|from my|get|someone from)\b[^\n]{{0,120}}?(?:{_DEVICE})",
    re.I,
)
_SIGNATURE_CJK = re.compile(r"^\s*(?:從我的|从我的|发自我的).{0,30}(?:傳送|发送)?\s*$")
_DELIMITER = re.compile(r"^\s*(?:[-_=*#~+—–]\s*){2,}\s*$|^\s*[ᐧ\u200b\ufeff]\s*$")
_SIG_DASHES = re.compile(r"^--\s?$|^\s*_{4,}\s*$")  # "-- " (RFC 3676) or an Outlook-style rule
_QUOTE = re.compile(r"^\s*[A-Za-z]{0,3}>")  # "> " and supercite-style "AB> "
_FENCE = re.compile(r"^\s*```")


def _join_wrapped_markers(text: str) -> str:
    def join(match: re.Match[str]) -> str:
        block = match.group(0)
        if "\n" not in block or any(_MARKERS[0].match(line) for line in block.split("\n")[1:]):
            return block  # a later line is a complete marker by itself: not one wrapped marker
        return re.sub(r"\n[\s>-]*", " ", block)

    return _WRAPPED_MARKER.sub(join, text) if _has_wrote(text) or ">:" in text else text


def _kind(line: str, wrote: bool = True) -> str:
    """One letter per line: e(mpty) d(elimiter) s(ignature) b(embedded marker) h(eader) q(uote) t(ext).

    *wrote*: False when the whole text holds no "wrote" word, so no line does (see ``_lines_and_kinds``)."""
    if not line.strip() or not line.strip(" \t>"):
        return "e"  # empty, or an empty quote line: carries nothing
    if _SIG_DASHES.match(line):
        return "-"
    if _DELIMITER.match(line):
        return "d"
    if len(line) <= 160 and (_SIGNATURE.match(line) or _SIGNATURE_CJK.match(line)):
        return "s"
    if (wrote and _has_wrote(line) and _MARKERS[0].match(line)) or any(m.match(line) for m in _MARKERS[1:]):
        return "b"
    if _HEADER.match(line):
        return "h"
    if _QUOTE.match(line):
        return "q"
    return "t"


def _classify(lines: list[str], wrote: bool = True) -> str:
    kinds: list[str] = []
    in_code = False
    for line in lines:
        if _FENCE.match(line):
            in_code = not in_code
            kinds.append("t")
            continue
        kinds.append("t" if in_code else _kind(line, wrote))
    return "".join(kinds)


def _lines_and_kinds(text: str) -> tuple[list[str], str]:
    """The lines of *text* (any line ends, wrapped "On ... wrote:" joined) and one kind letter per line."""
    joined = _join_wrapped_markers(text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = joined.split("\n")
    # A line holds a "wrote" word only if the whole text does (``str.lower`` maps a character alike in a line and
    # in the text: its one context rule, the final sigma, stops at a line end): one search of the text instead
    # of one per line, which was a fifth of ``trim_reply`` on a mail without a quote.
    return lines, _classify(lines, _has_wrote(joined))


def trim_reply(text: str) -> str:
    """The new part of a reply: quoted history, forwarded/embedded mail and signatures removed.

    Mail that is nothing but a quote is returned as it is (there is nothing else to show)."""
    if not text or not text.strip():
        return ""
    lines, kinds = _lines_and_kinds(text)

    # A forwarded mail's header block at the very top (From:/Date:/Subject:/To:) goes.
    head = re.match(r"e*(?:be*)?(h[hte]*h)e", kinds)
    if head and head.group(1).count("h") >= 3:
        lines, kinds = lines[head.end():], kinds[head.end():]
    # "-- " signature separator after some text: the rest is signature (and whatever it quotes).
    cut = kinds.find("-", kinds.find("t") + 1) if "t" in kinds else -1
    if cut > 0:
        lines, kinds = lines[:cut], kinds[:cut]
    # Delimiter and mobile-signature lines go, wherever they are.
    keep = [i for i, k in enumerate(kinds) if k not in "ds-"]
    lines, kinds = [lines[i] for i in keep], "".join(kinds[i] for i in keep)

    # An embedded mail (marker or a block of >= 3 header lines) after text: cut there unless
    # what follows is an inline answer (text between quotes).
    cut_at = re.search(r"te*(b|h[eh]*h[eh]*h)", kinds)
    if cut_at:
        start = cut_at.start(1)
        rest = kinds[start + 1:]
        if kinds[start] == "h" or re.fullmatch(r"[^q]*|[eqbh]*[te]*", rest):
            lines, kinds = lines[:start], kinds[:start]
    # A reply under a quoted message ("On ... wrote:" / quote / answer): the answer.
    lead = re.match(r"e*b[eqbh]*(?=t)", kinds)
    if lead and "q" in lead.group(0):
        lines, kinds = lines[lead.end():], kinds[lead.end():]
    # Leftover markers (e.g. "On ... wrote:" above an inline answer) are dropped.
    keep = [i for i, k in enumerate(kinds) if k != "b"]
    lines, kinds = [lines[i] for i in keep], "".join(kinds[i] for i in keep)
    # Trailing quote block after the answer.
    if "t" in kinds:
        tail = re.search(r"[eqh]+$", kinds)
        if tail:
            lines = lines[: tail.start()]
    elif "q" not in kinds:
        return ""  # nothing but markers and empty quote lines
    return "\n".join(lines).strip("\n").rstrip()


def new_text(text: str) -> str:
    """Only what the sender wrote in this reply: the text above the quoted mail, or below a leading quote.

    Why apart from ``trim_reply``: the ticket view may show a quote when it is all there is, but a
    team member's reply is *sent* to the reporter, so a reply that is nothing but the quoted
    escalation (a ``>`` quote, an Outlook reply with nothing typed above ``From:/Sent:``, a
    forwarded block) must give "" and send nothing.  Quoted lines inside the answer are dropped
    too: the reporter gets the member's words, never our internal mail.
    """
    if not text or not text.strip():
        return ""
    lines, kinds = _lines_and_kinds(text)
    # Unquoted history (an Outlook "From:/Sent:" block, "-----Original Message-----", a signature) ends
    # the answer for good; a quoted block with its "On ... wrote:" line is skipped, since bottom-posted
    # and inline answers go on below it (Thunderbird, Apple Mail).
    end = re.search(r"-|h[et]{0,2}h|b(?![eb]*q)", kinds)
    if end:
        lines, kinds = lines[:end.start()], kinds[:end.start()]
    kept = [(line, kind) for line, kind in zip(lines, kinds, strict=True) if kind not in "qbds"]
    if not any(kind == "t" for _line, kind in kept):
        return ""
    text = "\n".join("" if kind == "e" else line for line, kind in kept)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n").rstrip()
