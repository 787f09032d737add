"""The field checks both file formats make on located values, each failure a `Problem`
at the value's line (at its key's line for an unknown key), worded by the format.

A loader subclasses `Reader` (or keeps one) and walks its file: `mapping` with the known
keys of a `Keys` declaration, `required`/`missing`, `take` a leaf declaration
(numbers, names, choices, durations...), `items` of a list, `key` for a mapping key that
is a name (a site, a client).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from harness.yamlfile.located import Problem, Y, join
from harness.yamlfile.shapes import Choice, Invalid, Keys, Shape
from harness.yamlfile.values import Wording


class Reader:
    def __init__(self, wording: Wording) -> None:
        self.wording = wording

    def problem(self, y: Y, message: str, *, at_key: bool = False) -> Problem:
        return Problem(y.path, message, y.key_line if at_key else y.line)

    def take(self, y: Y, shape: Shape) -> Any:
        """`y`'s value converted by `shape`; a `Problem` at `y` when it does not fit."""
        try:
            return shape.convert(y.plain(), self.wording)
        except Invalid as e:
            raise self.problem(y, str(e)) from None

    def key(self, y: Y, key: str, shape: Shape) -> str:
        """A mapping key that is a name (`y` is its value): checked at the key's line."""
        try:
            return str(shape.convert(key, self.wording))
        except Invalid as e:
            raise self.problem(y, str(e), at_key=True) from None

    def choice(self, y: Y, known: Collection[str], what: str) -> str:
        return str(self.take(y, Choice(values=known, what=what)))

    def mapping(self, y: Y, known: Keys | Sequence[str] | None = None) -> dict[str, Y]:
        """`y`'s entries; every key must be one of `known` (when given)."""
        if not isinstance(y.value, dict):
            raise self.problem(y, f"must be a mapping, got {self.wording.kind(y.plain())}")
        keys = known.keys if isinstance(known, Keys) else known
        if keys is not None:
            for key, child in y.value.items():
                if key not in keys:
                    raise self.problem(child, self.wording.unknown_key(key, keys), at_key=True)
        return dict(y.value)

    def missing(self, parent: Y, key: str, hint: str) -> Problem:
        return Problem(join(parent.path, key), f"missing; {hint}", parent.line)

    def required(self, body: dict[str, Y], parent: Y, key: str, hint: str) -> Y:
        if key not in body:
            raise self.missing(parent, key, hint)
        return body[key]

    def items(self, y: Y, *, what: str) -> list[Y]:
        """A non-empty list of `what`."""
        if not isinstance(y.value, list) or not y.value:
            raise self.problem(y, self.wording.not_a_list(what, y.plain()))
        return list(y.value)
