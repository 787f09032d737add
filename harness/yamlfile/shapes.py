"""What a file may contain, declared once: each key with its shape, limits and help.

A file format is a tree of shapes — `Keys` (a mapping with known keys), `MapOf` (names
to values), `ListOf`, `AnyOf` and leaves (`Text`, `Name`, `Number`, `Integer`, `Boolean`,
`Choice`, `Duration`, `Share`, `Millis`). The same declaration serves twice: a loader
checks a value with the leaf's `convert` and takes a mapping's known keys from its
`Keys`, and `schema_of` renders the tree as JSON Schema (draft 2020-12) for editors, with
the help texts as descriptions. A `Lazy` shape is built when asked for, so a format that
lists the faults or checkers reads their registries as they are then.

`convert` raises `Invalid` with the message alone; `harness.yamlfile.Reader` adds the
place. Values given to `convert` are plain data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from harness.yamlfile.values import (
    DURATION_PATTERN,
    MAX_DURATION_S,
    OFFSET_PATTERN,
    SHARE_PATTERN,
    Wording,
    describe,
    parse_duration,
    parse_offset,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Schema = dict[str, Any]


class Invalid(ValueError):
    """A value does not fit its shape; the message says why (without the place)."""


@dataclass(frozen=True, kw_only=True)
class Shape:
    """`help` describes the value; `ref` names a shape used in many places, rendered once
    under the schema's ``$defs``."""

    help: str = ""
    ref: str = ""

    def convert(self, value: Any, wording: Wording) -> Any:
        """The value as the loader keeps it; `Invalid` when it does not fit."""
        raise NotImplementedError(f"{type(self).__name__} is checked by its loader")

    def schema(self, defs: Schema) -> Schema:
        """This shape as JSON Schema (without its description); named shapes go into
        `defs` once and are referred to."""
        name = self.ref_name()
        if not name:
            return self.body(defs)
        if name not in defs:
            defs[name] = {}  # taken: a shape that contains itself refers to itself
            defs[name] = self.body(defs)
        return {"$ref": f"#/$defs/{name}"}

    def ref_name(self) -> str:
        return self.ref

    def body(self, defs: Schema) -> Schema:
        raise NotImplementedError


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


# ---- leaves ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Text(Shape):
    """A non-empty string."""

    def convert(self, value: Any, wording: Wording) -> str:
        if not isinstance(value, str) or not value.strip():
            got = "an empty string" if isinstance(value, str) else wording.kind(value)
            raise Invalid(f"must be a non-empty string, got {got}")
        return value

    def body(self, defs: Schema) -> Schema:
        return {"type": "string", "pattern": r"\S"}


@dataclass(frozen=True, kw_only=True)
class Name(Shape):
    """A name matching `pattern`; `rule` says it in words, `what` names it in messages."""

    pattern: re.Pattern[str]
    rule: str
    what: str

    def convert(self, value: Any, wording: Wording) -> str:
        if not isinstance(value, str) or not self.pattern.match(value):
            raise Invalid(f"invalid {self.what} {wording.value(value)}: {self.rule}")
        return value

    def body(self, defs: Schema) -> Schema:
        return {"type": "string", "pattern": self.pattern.pattern}


@dataclass(frozen=True, kw_only=True)
class Number(Shape):
    """A number in [lo, hi], or (lo, hi] when `lo_open`."""

    lo: float
    hi: float
    lo_open: bool = False

    def convert(self, value: Any, wording: Wording) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be a number, got {wording.kind(value)}")
        if not ((self.lo < value if self.lo_open else self.lo <= value) and value <= self.hi):
            low = f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}"
            raise Invalid(f"must be {low} and <= {self.hi:g}, got {wording.number(value)}")
        return float(value)

    def body(self, defs: Schema) -> Schema:
        low = "exclusiveMinimum" if self.lo_open else "minimum"
        return {"type": "number", low: _num(self.lo), "maximum": _num(self.hi)}


@dataclass(frozen=True, kw_only=True)
class Integer(Shape):
    """A whole number in [lo, hi]."""

    lo: int
    hi: int

    def convert(self, value: Any, wording: Wording) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be a whole number, got {wording.kind(value)}")
        if not self.lo <= value <= self.hi:
            raise Invalid(f"must be between {self.lo} and {self.hi}, got {value}")
        return value

    def body(self, defs: Schema) -> Schema:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True, kw_only=True)
class Boolean(Shape):
    def convert(self, value: Any, wording: Wording) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"must be true or false, got {wording.kind(value)}")
        return value

    def body(self, defs: Schema) -> Schema:
        return {"type": "boolean"}


@dataclass(frozen=True, kw_only=True)
class Choice(Shape):
    """One of `values` (a registry is read when checked); `explain` gives each value's
    one-line documentation for the schema."""

    values: Collection[str]
    what: str
    explain: Callable[[str], str] | None = field(default=None, compare=False)

    def convert(self, value: Any, wording: Wording) -> str:
        known = tuple(self.values)
        if not isinstance(value, str) or value not in known:
            raise Invalid(f"unknown {self.what} {wording.value(value)} (known: {', '.join(known)})")
        return value

    def body(self, defs: Schema) -> Schema:
        known = list(self.values)
        out: Schema = {"const": known[0]} if len(known) == 1 else {"enum": known}
        if self.explain is not None:
            out["description"] = "\n".join(f"- `{v}`: {self.explain(v)}" for v in known)
        return out


@dataclass(frozen=True, kw_only=True)
class Duration(Shape):
    """``500ms``, ``5s``, ``2m``, ``1h``, ``1m30s`` or a number of seconds, at most 24 h;
    longer than 0 when `positive`."""

    positive: bool = False

    def ref_name(self) -> str:
        return self.ref or ("positive-duration" if self.positive else "duration")

    def convert(self, value: Any, wording: Wording) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise Invalid(str(e)) from None
        if self.positive and seconds <= 0:
            raise Invalid(f"must be longer than 0, got {describe(value)}")
        return seconds

    def body(self, defs: Schema) -> Schema:
        low = "exclusiveMinimum" if self.positive else "minimum"
        seconds = {"type": "number", low: 0, "maximum": _num(MAX_DURATION_S)}
        return {"anyOf": [seconds, {"type": "string", "pattern": DURATION_PATTERN}]}


@dataclass(frozen=True, kw_only=True)
class Offset(Shape):
    """A clock offset: ``+2h``, ``-90s``, ``-1d``, ``+2y`` (kept as written: faults
    parse it, and show it as the user wrote it)."""

    def ref_name(self) -> str:
        return self.ref or "offset"

    def convert(self, value: Any, wording: Wording) -> str:
        try:
            parse_offset(value)
        except ValueError as e:
            raise Invalid(str(e)) from None
        return str(value).strip()

    def body(self, defs: Schema) -> Schema:
        return {"type": "string", "pattern": OFFSET_PATTERN}


@dataclass(frozen=True, kw_only=True)
class Share(Shape):
    """A share of 1: ``0.9`` or ``90%``."""

    def ref_name(self) -> str:
        return self.ref or "share"

    def convert(self, value: Any, wording: Wording) -> float:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                value = float(value.strip()[:-1]) / 100
            except ValueError:
                raise Invalid(f"must be a share like 0.9 or 90%, got {describe(value)}") from None
        return Number(lo=0, hi=1).convert(value, wording)

    def body(self, defs: Schema) -> Schema:
        share = {"type": "number", "minimum": 0, "maximum": 1}
        return {"anyOf": [share, {"type": "string", "pattern": SHARE_PATTERN}]}


@dataclass(frozen=True, kw_only=True)
class Millis(Shape):
    """Whole milliseconds: a number (``100``) or a duration with its unit (``100ms``)."""

    def ref_name(self) -> str:
        return self.ref or "milliseconds"

    def convert(self, value: Any, wording: Wording) -> int:
        if isinstance(value, str):
            return round(Duration().convert(value, wording) * 1000)
        return round(Number(lo=0, hi=MAX_DURATION_S * 1000).convert(value, wording))

    def body(self, defs: Schema) -> Schema:
        ms = {"type": "number", "minimum": 0, "maximum": _num(MAX_DURATION_S * 1000)}
        return {"anyOf": [ms, {"type": "string", "pattern": DURATION_PATTERN}]}


# ---- structure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One key of a `Keys` mapping."""

    key: str
    shape: Shape
    help: str = ""
    required: bool = False
    default: Any = None


@dataclass(frozen=True, kw_only=True)
class Keys(Shape):
    """A mapping with known keys. `min_keys`/`max_keys` bound how many are given
    (a step: exactly one); `one_of`: exactly one of these keys must be given."""

    fields: tuple[Field, ...]
    min_keys: int = 0
    max_keys: int | None = None
    one_of: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

    def __getitem__(self, key: str) -> Field:
        return next(f for f in self.fields if f.key == key)

    def shape(self, key: str) -> Shape:
        return self[key].shape

    def body(self, defs: Schema) -> Schema:
        out: Schema = {
            "type": "object",
            "properties": {f.key: field_schema(f, defs) for f in self.fields},
            "additionalProperties": False,
        }
        required = [f.key for f in self.fields if f.required]
        if required:
            out["required"] = required
        if self.min_keys:
            out["minProperties"] = self.min_keys
        if self.max_keys is not None:
            out["maxProperties"] = self.max_keys
        if self.one_of:
            out["oneOf"] = [{"required": [k]} for k in self.one_of]
        return out


@dataclass(frozen=True, kw_only=True)
class MapOf(Shape):
    """A mapping from names (`names`) to values of one shape; at least `min_keys`."""

    names: Shape
    values: Shape
    min_keys: int = 1

    def body(self, defs: Schema) -> Schema:
        return {
            "type": "object",
            "propertyNames": self.names.schema(defs),
            "additionalProperties": described(self.values, defs),
            "minProperties": self.min_keys,
        }


@dataclass(frozen=True, kw_only=True)
class ListOf(Shape):
    items: Shape
    min_items: int = 1
    max_items: int | None = None
    unique: bool = False

    def body(self, defs: Schema) -> Schema:
        out: Schema = {"type": "array", "items": described(self.items, defs)}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        if self.unique:
            out["uniqueItems"] = True
        return out


@dataclass(frozen=True, kw_only=True)
class AnyOf(Shape):
    """One of several forms (a name or a mapping; a duration or a range)."""

    options: tuple[Shape, ...]

    def body(self, defs: Schema) -> Schema:
        return {"anyOf": [described(o, defs) for o in self.options]}


@dataclass(frozen=True, kw_only=True)
class Lazy(Shape):
    """A shape built when asked for: one that lists a registry's entries."""

    build: Callable[[], Shape] = field(compare=False)

    def body(self, defs: Schema) -> Schema:
        return described(self.build(), defs)


# ---- JSON Schema -------------------------------------------------------------------------


def described(shape: Shape, defs: Schema, help: str = "") -> Schema:
    """`shape`'s schema with its description (`help`, else the shape's own)."""
    out = shape.schema(defs)
    text = help or shape.help
    own = out.pop("description", "")
    if text or own:
        out = {"description": f"{text}\n{own}" if text and own else text or own, **out}
    return out


def field_schema(f: Field, defs: Schema) -> Schema:
    out = described(f.shape, defs, f.help)
    if f.default is not None:
        out["default"] = f.default
    return out


def schema_of(shape: Keys, name: str) -> Schema:
    """A whole file's JSON Schema document (draft 2020-12): `shape` is the file's top
    level, its help the schema's description."""
    defs: Schema = {}
    body = shape.body(defs)
    head = {"$schema": JSON_SCHEMA_DIALECT, "title": f"kmschaos {name}"}
    return {**head, "description": shape.help, **body, **({"$defs": defs} if defs else {})}
