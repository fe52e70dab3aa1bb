"""The priority matrix: who is affected x what is hit -> P1-P4, as ITIL's impact/urgency table.

Why a matrix and not a severity per keyword: the same words mean different things at
different reach.  "Cannot log in" is a P3 for one person, a P2 for a sales team and a P1
for everyone; "amounts are wrong" is money whoever reports it.  Rules therefore say only
what they can see (a ``hit`` such as ``access`` or ``data``, a ``scope`` such as ``team``),
and this small table, kept in the rules file where an admin can read and change it,
turns the two into a severity.  The service desk world knows the table (ServiceNow, Jira
Service Management), so a support lead can check a verdict against it by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from config import SEVERITIES
from core.errors import HypercareError

SCOPES = ("one", "team", "all")  # one person / a team or site / everyone or customers
MATRIX_KEYS = ("default_scope", "hits")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class MatrixError(HypercareError, ValueError):
    """A mistake in ``[matrix]``; the loader prefixes the file name (and raises a RuleFileError)."""


@dataclass(frozen=True)
class Matrix:
    default_scope: str
    rows: dict[str, tuple[str, ...]]  # hit -> severity for each of SCOPES; insertion order = precedence

    def severity(self, hit: str, scope: str) -> str:
        return self.rows[hit][SCOPES.index(scope)]

    def precedence(self, hit: str) -> int:
        """Earlier rows win ties between hits that give the same severity."""
        return list(self.rows).index(hit)

    def lines(self) -> list[str]:
        """The table as text, for ``rules check`` and the README."""
        width = max((len(h) for h in self.rows), default=4) + 2
        head = " " * width + "".join(f"{s:>6}" for s in SCOPES)
        return [head] + [f"{hit:<{width}}" + "".join(f"{v:>6}" for v in row) for hit, row in self.rows.items()]


EMPTY = Matrix("one", {})


def merge_matrix(base: Matrix, table: Any) -> Matrix:
    """*base* with the ``[matrix]`` *table* of a later file: rows of the same hit replace, new ones append."""
    if not isinstance(table, dict):
        raise MatrixError("[matrix] must be a table with default_scope and [matrix.hits]")
    unknown = sorted(set(table) - set(MATRIX_KEYS))
    if unknown:
        raise MatrixError(f"[matrix]: unknown key {unknown[0]!r}; use {', '.join(MATRIX_KEYS)}")
    default = table.get("default_scope", base.default_scope)
    if default not in SCOPES:
        raise MatrixError(f"[matrix] default_scope {default!r} unknown; use one of {', '.join(SCOPES)}")
    hits = table.get("hits", {})
    if not isinstance(hits, dict):
        raise MatrixError('[matrix.hits] must be a table like access = ["P3", "P2", "P1"]')
    rows = dict(base.rows)
    for hit, row in hits.items():
        if not _NAME.fullmatch(hit):
            raise MatrixError(f"[matrix.hits] {hit!r}: use a lower-case name")
        if (not isinstance(row, list) or len(row) != len(SCOPES)
                or not all(isinstance(v, str) and v in SEVERITIES for v in row)):
            raise MatrixError(
                f"[matrix.hits] {hit}: give {len(SCOPES)} severities for {', '.join(SCOPES)}, like [P3, P2, P1]"
            )
        rows[hit] = tuple(row)
    return Matrix(default, rows)
