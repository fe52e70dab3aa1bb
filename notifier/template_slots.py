"""A template rendered once per shape, then filled with each row's printed values.

Why: the batched write path renders an acknowledgement for every new ticket, two Jinja
templates each, although from one ticket to the next only a few printed values differ (the
key, the subject, the reporter's name) and the rest (severity, owner, due time) takes a
handful of values per batch.  Here a template is rendered with a placeholder for each value
it only prints, once per combination of everything else it reads, and split at the
placeholders; each ticket's text is then the pieces joined with its own values, escaped as
Jinja escapes them.  The bytes are Jinja's own (``tests/test_template_slots.py``).

Only where that is provably the same: the template (read from its AST) may use a row's
attribute in any way, but only an attribute that is printed as it is (``{{ ticket.key }}``,
or ``{{ a or b or "const" }}`` of such attributes) gets a placeholder; every other value the
template reads keys the cache.  A template that includes, imports, extends, defines macros,
calls anything but a pure method (``dict.get``, ``str.upper``) or uses ``random`` is never
cached, nor is a row value that is not a string: those are rendered by Jinja every time.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, Template, nodes
from markupsafe import escape

# A slot is private-use characters around a nonce drawn per build and its index: never escaped, never in a
# template's own text, and not forgeable by a value rendered into the pieces (a look-alike there keeps its
# private-use characters outside any slot, and such a build is refused).
_SLOT = "\ue000{}:{}\ue001"
_SLOT_PATTERN = re.compile("\ue000([0-9a-f]{16}):(\\d+)\ue001")  # compiled once: a nonce per build is a group
_MAX_ENTRIES = 512
_FORBIDDEN = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport, nodes.Macro, nodes.CallBlock,
              nodes.FilterBlock, nodes.Scope, nodes.ScopedEvalContextModifier)
# Methods a template may call (on a value that keys the cache): pure on dicts and strings.
_PURE_METHODS = frozenset({"get", "upper", "lower", "strip", "title", "capitalize", "startswith", "endswith",
                           "replace", "split", "items", "keys", "values"})


# Filters whose text depends on nothing but their arguments (ours: notifier.render); a name the template
# only prints through one of them keys the cache by that text, not by its value (see ``Shape.formatted``).
_TEXT_FILTERS = frozenset({"when"})

# How a formatted name is printed: the filter and its arguments, each a constant or another name's value.
Printing = tuple[str, tuple[tuple[bool, object], ...]]


@dataclass(frozen=True)
class Shape:
    """What a template reads: plain names, row attributes that key the cache, row attributes it only prints.

    *formatted*: names the template only prints through a text filter or tests for truth, with each way
    it prints them. A due time differs by the second from one SMTP group to the next; keyed by its value
    every group would render both templates afresh, keyed by the text ("Mon 30 Nov 2026 13:45") they do not.
    """

    names: tuple[str, ...]
    read: tuple[tuple[str, str], ...]
    printed: tuple[tuple[str, str], ...]
    formatted: tuple[tuple[str, tuple[Printing, ...]], ...] = ()


def shape_of(env: Environment, template: Template, rows: tuple[str, ...]) -> Shape | None:
    """The template's shape, or None when it cannot be filled by slots safely."""
    name = template.name
    if name is None or env.loader is None:
        return None
    try:
        source = env.loader.get_source(env, name)[0]
        tree = env.parse(source)
    except Exception:  # noqa: BLE001 - anything unexpected: render it the ordinary way
        return None
    names: set[str] = set()
    read: set[tuple[str, str]] = set()
    printed: set[tuple[str, str]] = set()
    uses: dict[str, list[Printing | bool | None]] = {}
    assigned: set[str] = set()
    ok = True

    def visit(node: nodes.Node, parents: tuple[nodes.Node, ...]) -> None:
        nonlocal ok
        if not ok:
            return
        if isinstance(node, _FORBIDDEN) or (isinstance(node, nodes.Filter) and node.name == "random") or (
                isinstance(node, nodes.Call) and not (isinstance(node.node, nodes.Getattr)
                                                      and node.node.attr in _PURE_METHODS)):
            ok = False  # another template, a macro, a global function (``lipsum`` is random): Jinja's to render
            return
        if isinstance(node, nodes.Name):
            if node.name in rows:
                parent = parents[-1] if parents else None
                if node.ctx != "load" or not (isinstance(parent, nodes.Getattr) and parent.node is node):
                    ok = False  # the row itself used (printed whole, subscripted, assigned): not ours to slot
                    return
            elif node.ctx == "load":
                names.add(node.name)
                uses.setdefault(node.name, []).append(_use_of(node, parents[-1] if parents else None, rows))
            else:
                assigned.add(node.name)  # ``set``, ``for``: the template's own value, not the context's
        if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name in rows:
            if hasattr(dict, node.attr):
                ok = False  # ``ticket.keys`` is the dict's method to Jinja, not a column
                return
            attr = (node.node.name, node.attr)
            (printed if _only_printed(node, parents, rows) else read).add(attr)
        for child in node.iter_child_nodes():
            visit(child, (*parents, node))

    visit(tree, ())
    if not ok:
        return None
    formatted = _formatted(uses, assigned)
    return Shape(tuple(sorted(names - set(formatted))), tuple(sorted(read)), tuple(sorted(printed - read)),
                 tuple(sorted(formatted.items(), key=lambda item: item[0])))


def _formatted(uses: dict[str, list[Printing | bool | None]], assigned: set[str]) -> dict[str, tuple[Printing, ...]]:
    """The names printed only through a text filter (or tested for truth), each with its ways of printing;
    not a name the template assigns itself, nor one printed with such a name as an argument."""
    out: dict[str, tuple[Printing, ...]] = {}
    for name, found in uses.items():
        ways = tuple(dict.fromkeys(u for u in found if isinstance(u, tuple)))
        if not ways or None in found or name in assigned:
            continue
        if any(is_name and arg in assigned for _, args in ways for is_name, arg in args):
            continue
        out[name] = ways
    return out


def _use_of(node: nodes.Name, parent: nodes.Node | None, rows: tuple[str, ...]) -> Printing | bool | None:
    """How the template uses a plain name here: printed through a text filter (its filter and arguments),
    tested for truth (True), or anything else (None: then its value keys the cache)."""
    if isinstance(parent, nodes.If | nodes.CondExpr) and parent.test is node:
        return True
    if (isinstance(parent, nodes.Filter) and parent.node is node and parent.name in _TEXT_FILTERS
            and not parent.kwargs and parent.dyn_args is None and parent.dyn_kwargs is None):
        args: list[tuple[bool, object]] = []
        for arg in parent.args:
            if isinstance(arg, nodes.Const):
                args.append((False, arg.value))
            elif isinstance(arg, nodes.Name) and arg.name not in rows:
                args.append((True, arg.name))
            else:
                return None
        return parent.name, tuple(args)
    return None


def _only_printed(node: nodes.Node, parents: tuple[nodes.Node, ...], rows: tuple[str, ...]) -> bool:
    """*node* is an output expression itself, or an operand of an ``or`` chain that is one, whose operands
    are all row attributes or constants (then only their truth decides which one is printed)."""
    index = len(parents) - 1
    while index >= 0 and isinstance(parents[index], nodes.Or):
        chain = parents[index]
        for operand in (chain.left, chain.right):
            plain = isinstance(operand, nodes.Const | nodes.Or) or (
                isinstance(operand, nodes.Getattr) and isinstance(operand.node, nodes.Name)
                and operand.node.name in rows)
            if not plain:
                return False
        index -= 1
    return index >= 0 and isinstance(parents[index], nodes.Output)


class SlotCache:
    """Filled renderings of templates, keyed by everything each one reads but its printed row values."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._shapes: dict[int, tuple[Template, Shape | None]] = {}
        self._pieces: dict[tuple[Any, ...], tuple[Template, list[str | int], tuple[tuple[str, str], ...]] | None] = {}
        self._lock = threading.Lock()

    def render(self, template: Template, rows: Mapping[str, Mapping[str, Any]], context: dict[str, Any]) -> str:
        """``template.render(**context, **rows)``, from the cache when the template's shape allows."""
        filled = self._fill(template, rows, context)
        return template.render(**context, **rows) if filled is None else filled

    def _fill(self, template: Template, rows: Mapping[str, Mapping[str, Any]], context: dict[str, Any]) -> str | None:
        shape = self._shape(template, tuple(rows))
        if shape is None:
            return None
        try:
            key = (id(template), tuple(sorted(rows)),
                   tuple(context.get(name, _MISSING) for name in shape.names),
                   tuple(self._printed_as(name, ways, context) for name, ways in shape.formatted),
                   tuple(rows[row][attr] for row, attr in shape.read),
                   tuple(_truth(rows[row][attr]) for row, attr in shape.printed))
            hash(key)
        except (KeyError, TypeError):
            return None  # a missing attribute (Jinja says which) or a value that cannot key a cache
        if any(isinstance(k, _Unsloted) for k in key[5]) or any(k is _UNKEYABLE for k in key[3]):
            return None
        entry = self._pieces.get(key, _MISSING)
        if entry is _MISSING:
            entry = self._build(template, shape, rows, context)
            with self._lock:
                if len(self._pieces) >= _MAX_ENTRIES:
                    self._pieces.clear()
                self._pieces[key] = entry
        if entry is None or entry[0] is not template:
            return None
        _template, pieces, slots = entry
        quote = _autoescape(self.env, template)
        values = [str(escape(rows[row][attr]) if quote else rows[row][attr]) for row, attr in slots]
        return "".join(piece if isinstance(piece, str) else values[piece] for piece in pieces)

    def _printed_as(self, name: str, ways: tuple[Printing, ...], context: dict[str, Any]) -> Any:
        """A formatted name's part of the key: its truth and its text in each way it is printed (when the
        filter fails on the value, ``_UNKEYABLE``: Jinja renders the template and says what is wrong)."""
        value = context.get(name, _MISSING)
        if value is _MISSING:
            return _MISSING
        try:
            texts = tuple(self.env.filters[f](value, *(context[a] if is_name else a for is_name, a in args))
                          for f, args in ways)
        except Exception:  # noqa: BLE001 - any failure of a filter: Jinja renders the template and reports it
            return _UNKEYABLE
        return bool(value), texts

    def _shape(self, template: Template, rows: tuple[str, ...]) -> Shape | None:
        known = self._shapes.get(id(template))
        if known is not None and known[0] is template:
            return known[1]
        shape = shape_of(self.env, template, rows)
        with self._lock:
            self._shapes[id(template)] = (template, shape)
        return shape

    def _build(self, template: Template, shape: Shape, rows: Mapping[str, Mapping[str, Any]],
               context: dict[str, Any]) -> tuple[Template, list[str | int], tuple[tuple[str, str], ...]] | None:
        """Render once with a placeholder for each truthy printed value; None if the output is not splittable."""
        slots = tuple((row, attr) for row, attr in shape.printed if rows[row][attr])
        stand_ins = {row: dict(values) for row, values in rows.items()}
        nonce = secrets.token_hex(8)
        for index, (row, attr) in enumerate(slots):
            stand_ins[row][attr] = _SLOT.format(nonce, index)
        text = template.render(**context, **stand_ins)
        pieces: list[str | int] = []
        position = 0
        for match in _SLOT_PATTERN.finditer(text):
            if match.group(1) != nonce:
                continue  # another build's marker rendered from a value: text, refused below
            pieces.append(text[position:match.start()])
            pieces.append(int(match.group(2)))
            position = match.end()
        pieces.append(text[position:])
        if any(isinstance(p, str) and ("\ue000" in p or "\ue001" in p) for p in pieces):
            return None
        if any(isinstance(p, int) and p >= len(slots) for p in pieces):
            return None
        return template, [p for p in pieces if p != ""], slots


class _Missing:
    pass


class _Unkeyable:
    """A formatted name whose filter failed on its value: not a key, Jinja renders (and reports) it."""


class _Unsloted:
    """A truthy printed value that is not a string: Jinja's str() of it is its business, not the cache's."""


_MISSING: Any = _Missing()
_UNSLOTED = _Unsloted()
_UNKEYABLE: Any = _Unkeyable()


def _truth(value: Any) -> Any:
    """The printed value's part of the key: the falsy value itself (Jinja prints "" and None apart), or True."""
    if not value:
        return value
    return True if isinstance(value, str) else _UNSLOTED


def _autoescape(env: Environment, template: Template) -> bool:
    setting = env.autoescape
    return bool(setting(template.name) if callable(setting) else setting)
