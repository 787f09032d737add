"""A catalog of things that describe themselves: faults, checkers, client policies.

Each kind of thing has one `Catalog`; a thing enters it when its class is defined (the
base class's ``__init_subclass__`` registers it), so adding one is writing it. The
catalog lists them by their `position`, then name: the order of every table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Catalog(Mapping[str, T], Generic[T]):
    """Things of one kind by name, in `position` order."""

    def __init__(self, what: str, name: Callable[[T], str], position: Callable[[T], int]) -> None:
        self.what = what
        self._name = name
        self._position = position
        self._by_name: dict[str, T] = {}

    def register(self, item: T) -> None:
        """Add `item`; the same definition again (a module imported twice) replaces it,
        another one under a taken name is an error."""
        name = self._name(item)
        known = self._by_name.get(name)
        if known is not None and _qualname(known) != _qualname(item):
            raise ValueError(f"{self.what} {name!r} is defined twice ({known!r} and {item!r})")
        self._by_name[name] = item

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that define one of their own)."""
        self._by_name.pop(name, None)

    def __getitem__(self, name: str) -> T:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        ordered = sorted(self._by_name.items(), key=lambda kv: (self._position(kv[1]), kv[0]))
        return iter([name for name, _ in ordered])

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name

    def known(self, name: str) -> T:
        """`name`'s entry, or `KeyError` whose message names the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r} (known: {', '.join(self)})") from None


def _qualname(item: object) -> str:
    return getattr(item, "__qualname__", type(item).__qualname__)


__all__ = ["Catalog"]
