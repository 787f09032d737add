"""A fault's parameters, declared once: name, unit, default, help.

The command line (`kmschaos inject --ms N`), `kmschaos faults`, rehearsal files
(``inject: {fault: latency, ms: 100ms}``) and `make_fault` all read these declarations;
`Param.check` is the one check of a value given in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.yamlfile.values import OFFSET_HINT, parse_offset

ParamUnit = Literal["ms", "s", "kbps", "bool", "offset", "count"]

# what a value of each unit must be, as messages say it
UNIT_RULE: dict[str, str] = {
    "ms": "milliseconds, >= 0",
    "s": "a number of seconds > 0",
    "kbps": "KB/s, > 0",
    "bool": "true or false",
    "offset": OFFSET_HINT,
    "count": "a whole number >= 1",
}
# the same, with an example, as rehearsal messages say it
UNIT_HINT: dict[str, str] = {
    "ms": "milliseconds, e.g. 100 or 100ms",
    "s": "a duration, e.g. 1s",
    "kbps": "KB/s, e.g. 64",
    "bool": "true or false",
    "offset": OFFSET_HINT,
    "count": "a whole number, e.g. 2",
}
METAVAR: dict[str, str] = {
    "ms": "N",
    "s": "S",
    "kbps": "N",
    "bool": "",
    "offset": "±DURATION",
    "count": "N",
}


@dataclass(frozen=True)
class Param:
    """One parameter of a fault: `name` as Python and rehearsal files spell it
    (``after_ms``), `flag` as the command line does (``--after-ms``)."""

    name: str
    unit: ParamUnit
    help: str
    default: Any = None
    required: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str:
        return METAVAR[self.unit]

    @property
    def python_type(self) -> type:
        """What argparse converts the flag's value to (bool: a switch)."""
        return {"ms": int, "kbps": int, "s": float, "bool": bool, "offset": str, "count": int}[
            self.unit
        ]

    def usage(self) -> str:
        """``--ms N``, or ``[--jitter N]`` when optional."""
        text = f"{self.flag} {self.metavar}".strip()
        return text if self.required else f"[{text}]"

    def check(self, kind: str, value: Any) -> str | None:
        """Why `value` is not a valid value of this parameter of fault `kind` (None: it is)."""
        if self.unit == "bool":
            ok = isinstance(value, bool)
        elif self.unit == "offset":
            try:
                parse_offset(value)
                ok = True
            except ValueError:
                ok = False
        elif self.unit == "count":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif isinstance(value, bool) or not isinstance(value, int | float):
            ok = False
        elif self.unit == "ms":
            ok = value >= 0
        else:
            ok = value > 0
        if ok:
            return None
        return f"{kind}: {self.name} must be {UNIT_RULE[self.unit]}, got {value!r}"

    def missing(self, kind: str) -> str:
        return f"{kind}: needs {self.flag} {self.metavar} ({UNIT_RULE[self.unit]})"


__all__ = ["METAVAR", "UNIT_HINT", "UNIT_RULE", "Param", "ParamUnit"]
