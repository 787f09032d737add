"""How a file's values are read and shown in messages: durations, `describe` (a value as
a message shows it), `kind_of` (what kind of value it is) and the two wordings the file
formats use.

Topology and rehearsal messages have been worded differently since they were written, and
users and tests rely on the exact text: a topology message names the kind of a wrong value
(``must be a number, got a string``) and the repr of an unknown name, a rehearsal message
shows the value (``got 'sixty'``) and suggests the closest known key. `Wording` is that
difference, in one place; every check is shared.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from typing import Any

MAX_DURATION_S = 24 * 3600.0
DURATION_HINT = "use a number of seconds or a number with a unit: 500ms, 5s, 2m, 1h"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)"
_DURATION_RE = re.compile(rf"(?:{_PART}\s*)+")
# the same as a JSON Schema (ECMA-262) pattern: a plain number, or numbers with units
DURATION_PATTERN = (
    r"^\s*(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$"
    r"|^\s*(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:ms|s|m|h)\s*)+$"
)
# a clock offset: a sign, then numbers with units (s, m, h, d, y = 365 d); no bare number
OFFSET_HINT = "a signed duration with a unit, e.g. +2h, -90s, -1d, +2y"
MAX_OFFSET_S = 100 * 365 * 86400.0
_OFFSET_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "y": 365 * 86400.0}
_OFFSET_PART = r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdy])"
_OFFSET_RE = re.compile(rf"([+-])\s*((?:{_OFFSET_PART}\s*)+)")
OFFSET_PATTERN = r"^\s*[+-]\s*(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*[smhdy]\s*)+$"
SHARE_PATTERN = r"^\s*(?:100(?:\.0*)?|[0-9]{1,2}(?:\.[0-9]*)?)\s*%\s*$"


def parse_duration(value: Any) -> float:
    """Seconds from ``5s``, ``500ms``, ``2m``, ``1h``, ``1m30s`` or a plain number of
    seconds (``5``, ``0.5``). Raises ValueError with a message for users."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration, got {describe(value)} ({DURATION_HINT})")
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _DURATION_RE.fullmatch(text):
                raise ValueError(f"bad duration {describe(value)}: {DURATION_HINT}") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(_PART, text))
    else:
        seconds = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"bad duration {describe(value)}: must be finite")
    if seconds < 0:
        raise ValueError(f"bad duration {describe(value)}: must not be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"bad duration {describe(value)}: longer than 24 h")
    return seconds


def parse_offset(value: Any) -> float:
    """Signed seconds from a clock offset: ``+2h``, ``-90s``, ``-1d12h``, ``+2y``. A
    sign and a unit are required (``3600`` alone is refused: which way, how long?).
    Raises ValueError with a message for users."""
    if not isinstance(value, str):
        raise ValueError(f"bad offset {describe(value)}: {OFFSET_HINT}")
    m = _OFFSET_RE.fullmatch(value.strip())
    if not m:
        raise ValueError(f"bad offset {describe(value)}: {OFFSET_HINT}")
    seconds = sum(float(n) * _OFFSET_UNITS[u] for n, u in re.findall(_OFFSET_PART, m[2]))
    if seconds == 0 or seconds > MAX_OFFSET_S:
        raise ValueError(f"bad offset {describe(value)}: must be more than 0 and at most 100y")
    return -seconds if m[1] == "-" else seconds


def format_offset(seconds: float) -> str:
    """``+2h``, ``-90s``, ``+1d``: the largest whole unit that fits."""
    sign = "-" if seconds < 0 else "+"
    left = abs(seconds)
    for unit in ("y", "d", "h", "m"):
        size = _OFFSET_UNITS[unit]
        if left >= size and (left / size).is_integer():
            return f"{sign}{left / size:g}{unit}"
    return f"{sign}{left:g}s"


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def describe(value: Any) -> str:
    """A value as a message shows it, on one line."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 42 else text[:39] + "...'"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."
    return f"a {type(value).__name__}"


def kind_of(value: Any) -> str:
    """What kind of value it is: ``a string``, ``a list``, ``nothing``, ``int``."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def unknown(message: str, word: str, known: Sequence[str]) -> str:
    """``<message> (known: a, b); did you mean 'a'?`` — the hint only for a close match."""
    close = difflib.get_close_matches(word, list(known), n=1) if word else []
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{message} (known: {', '.join(known)}){hint}"


class Wording:
    """How a file format words a wrong value (values are plain data: no `Y`)."""

    def kind(self, value: Any) -> str:
        """After ``must be a number, got``."""
        raise NotImplementedError

    def value(self, value: Any) -> str:
        """An unknown name or choice: ``unknown replica <value>``."""
        raise NotImplementedError

    def number(self, value: float) -> str:
        """A number out of range: ``must be > 0 and <= 10, got <value>``."""
        raise NotImplementedError

    def unknown_key(self, key: str, known: Sequence[str]) -> str:
        raise NotImplementedError

    def not_a_list(self, what: str, value: Any) -> str:
        """A list that must hold at least one `what`, given `value` instead."""
        raise NotImplementedError


class ShowValues(Wording):
    """Rehearsal files: every wrong value shown (`describe`), keys suggested."""

    def kind(self, value: Any) -> str:
        return describe(value)

    def value(self, value: Any) -> str:
        return describe(value)

    def number(self, value: float) -> str:
        return describe(value)

    def unknown_key(self, key: str, known: Sequence[str]) -> str:
        return unknown(f"unknown key {key!r}", key, known)

    def not_a_list(self, what: str, value: Any) -> str:
        got = "an empty list" if isinstance(value, list) else describe(value)
        return f"must be a non-empty list of {what}, got {got}"


class NameKinds(Wording):
    """Topology files: a wrong value's kind, an unknown name's repr, the known keys."""

    def kind(self, value: Any) -> str:
        return kind_of(value)

    def value(self, value: Any) -> str:
        return repr(value)

    def number(self, value: float) -> str:
        return f"{value:g}"

    def unknown_key(self, key: str, known: Sequence[str]) -> str:
        return f"unknown key (known: {', '.join(known)})"

    def not_a_list(self, what: str, value: Any) -> str:
        return f"must be a non-empty list of {what}"


SHOW_VALUES = ShowValues()
NAME_KINDS = NameKinds()
