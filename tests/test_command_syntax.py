"""Reading reply commands from the top of a team member's reply (pure parsing, no database)."""

from __future__ import annotations

import pytest

from core.errors import DuplicateName
from replies.command_effects import ACTIONS, AckAction, ActionTable
from replies.command_syntax import COMMANDS, Ack, CommandTable, parse_reply_commands


def test_several_commands_case_insensitive_then_text():
    reply = parse_reply_commands("#ACK\n#Severity p2\n\n#assign CRM Admin\nHello Maria,\nwe are on it.\n#resolve")
    assert [(c.name, c.arg) for c in reply.commands] == [("ack", ""), ("severity", "P2"), ("assign", "crm_admin")]
    assert reply.text == "Hello Maria,\nwe are on it.\n#resolve"  # a command below the text is text
    assert reply.ok


def test_leading_blank_lines_and_arguments_kept():
    reply = parse_reply_commands("\n\n  #resolve Restarted the ERP connector; orders flow again.  \n")
    assert [(c.name, c.arg) for c in reply.commands] == [("resolve", "Restarted the ERP connector; orders flow again.")]
    assert reply.text == ""


def test_plain_text_has_no_commands():
    reply = parse_reply_commands("Hello Maria,\n\n#ack is what I would type, but this is text.")
    assert reply.commands == () and reply.ok and reply.text.startswith("Hello Maria")


@pytest.mark.parametrize("line", ["# Heading", "#1 priority for us", "#", "#!important"])
def test_hash_followed_by_space_digit_or_symbol_is_text(line):
    reply = parse_reply_commands(f"{line}\nmore")
    assert reply.commands == () and reply.problems == () and reply.text == f"{line}\nmore"


@pytest.mark.parametrize("body, reason", [
    ("#close", "unknown command #close"),
    ("#severity P7", "#severity needs one of P1, P2, P3, P4, got 'P7'"),
    ("#severity", "#severity needs one of P1, P2, P3, P4"),
    ("#assign", "#assign needs a role or a team member's email"),
    ("#assign janitor", "unknown role 'janitor'"),
    ("#ack\n#ack", "#ack given twice"),
    ("#resolve done\n#wait", "#resolve and #wait contradict each other"),
    ("#note", "#note needs text"),
])
def test_problems_say_what_is_wrong(body, reason):
    reply = parse_reply_commands(body)
    assert not reply.ok
    assert any(reason in p.reason for p in reply.problems), reply.problems


def test_severity_and_assign_normalisation():
    reply = parse_reply_commands("#severity 1\n#assign <Tim@Example.com>")
    assert [(c.name, c.arg) for c in reply.commands] == [("severity", "P1"), ("assign", "tim@example.com")]
    assert parse_reply_commands("#assign pm").commands[0].arg == "project_manager"
    assert parse_reply_commands("#assign technical-consultant").commands[0].arg == "technical_consultant"


def test_note_takes_text_from_its_line_or_below():
    assert parse_reply_commands("#note customer is on holiday").ok
    reply = parse_reply_commands("#note\nThe customer is on holiday until Monday.")
    assert reply.ok and reply.text == "The customer is on holiday until Monday."
    assert len(parse_reply_commands("#note one\n#note two").commands) == 2  # repeatable


def test_command_separator_colon_allowed():
    assert parse_reply_commands("#severity: P3").commands[0].arg == "P3"


def test_tables_refuse_duplicates_and_must_match():
    with pytest.raises(DuplicateName, match="reply command 'ack' registered twice"):
        CommandTable((Ack(), Ack()))
    with pytest.raises(DuplicateName, match="command action 'ack' registered twice"):
        ActionTable((AckAction(), AckAction()), ["ack"])
    with pytest.raises(DuplicateName, match="differ: resolve"):
        ActionTable((AckAction(),), ["ack", "resolve"])
    assert set(COMMANDS.names()) == {"ack", "resolve", "severity", "assign", "wait", "note", "cc", "decision", "link",
                                     "merge", "unlink", "update"}
    assert [c.name for c in ACTIONS.in_order(parse_reply_commands("#resolve\n#severity P2\n#ack").commands)] == [
        "severity", "ack", "resolve"]


def test_help_lines_list_every_command():
    lines = COMMANDS.help_lines()
    assert len(lines) == 12 and all(line.startswith("#") for line in lines)
