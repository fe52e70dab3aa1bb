"""A table of named items in a literal order that refuses two items with one name.

Why one helper: guards, reply commands, their effects, exit criteria and classifier
condition kinds are each "tiny named classes in one explicit table" (GNU Mailman's rules);
five hand-written tables refused duplicates with three different exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from core.errors import DuplicateName

T = TypeVar("T")


def _name(item: Any) -> str:
    return str(item.name)


class Registry(Generic[T]):
    """Items by name (``item.name``, or *name_of*), in the order given; *kind* words the duplicate error."""

    def __init__(self, kind: str, items: Iterable[T], name_of: Callable[[T], str] = _name) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        for item in items:
            name = name_of(item)
            if name in self._items:
                raise DuplicateName(f"{kind} {name!r} registered twice")
            self._items[name] = item

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)
