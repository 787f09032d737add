"""The checker interface and the registry every checker describes itself in.

A checker is one module in `harness.checkers` with one class: its `name`, `check(ctx)`
over one `CheckContext` (the history, the topology, the bounds asked for), its headline
for tables, its plain-language explanation, the expectation keys a rehearsal may give it
and whether it needs an audit of the replicas first. Defining the class registers it
(`CHECKERS`); `scenario.py`, the report, the terminal verdict table, rehearsals and the
matrix read the registry. `run_checkers` runs a set of them, each `guarded` (a checker
that crashes gives `unknown`), and the worst verdict wins (`worst`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from harness.catalog import Catalog
from harness.checkers.verdict import Verdict, as_events, guarded
from harness.history import Event, History
from harness.topology import Topology

# what a rehearsal's expectation value is: how the validator reads it
BoundKind = Literal["duration", "share", "client", "site", "replica", "fault"]


@dataclass(frozen=True)
class Bound:
    """One key a rehearsal's ``expect: {<checker>: {...}}`` may give (besides `status`):
    `key` as written in the file, `kind` how it is read, `into` the name the checker
    receives it under in `CheckContext.bounds` (and the rehearsal model's field)."""

    key: str
    kind: BoundKind
    into: str
    help: str


# the bound of every checker that reads the audit: how long the audit may take
AUDIT_WITHIN = Bound("within", "duration", "within_s", "the audit may take this long")


@dataclass(frozen=True)
class CheckContext:
    """Everything a checker may judge: the events so far, the topology (orders, sites,
    timeouts) and the bounds asked for (`Bound.into` → value; absent: the checker's own
    default)."""

    events: list[Event]
    topology: Topology
    bounds: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, history: History | Iterable[Event], topology: Topology, **bounds: Any
    ) -> CheckContext:
        given = {k: v for k, v in bounds.items() if v is not None}
        return cls(as_events(history), topology, given)

    def bound(self, name: str, default: Any = None) -> Any:
        return self.bounds.get(name, default)

    @property
    def orders(self) -> dict[str, list[str]]:
        return {n: list(c.order) for n, c in self.topology.clients.items()}

    @property
    def replicas(self) -> list[str]:
        return list(self.topology.replicas)

    @property
    def behind(self) -> dict[str, tuple[str, ...]]:
        """Each load balancer's replicas: whose identity its answers may show."""
        return {n: b.replicas for n, b in self.topology.load_balancers.items()}


class Checker:
    """A checker; subclasses set the class attributes and implement `check`."""

    name: ClassVar[str] = ""
    position: ClassVar[int] = 0  # column order in verdict tables
    what: ClassVar[str] = ""  # what it judges, in plain language
    failure_means: ClassVar[str] = ""  # what a failure means to a user
    expectations: ClassVar[tuple[Bound, ...]] = ()  # rehearsal keys besides `status`
    needs_audit: ClassVar[bool] = False  # judges audit snapshots: audit (workload paused) first
    audit_grace_s: ClassVar[float] = 0.0  # the audit goes on this long past a `within` bound
    judges_operations: ClassVar[bool] = True  # needs a workload's operations
    awaits_failover: ClassVar[bool] = False  # a rehearsal waits for clients to move first

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.name:
            CHECKERS.register(cls())

    def check(self, ctx: CheckContext) -> Verdict:
        raise NotImplementedError

    def headline(self, v: dict[str, Any]) -> str:
        """The verdict's key figure in a few words (report tables); `v` as
        `Verdict.to_dict()` gives it."""
        f = v.get("figures") or {}
        if not isinstance(f, dict):
            return ""
        scalars = [f"{k}={val}" for k, val in f.items() if isinstance(val, int | float | str)]
        return ", ".join(scalars[:3])

    def brief(self, v: dict[str, Any]) -> str:
        """The shortest form of the key figure (a cell of the terminal verdict table, with
        a leading space), or ""."""
        return ""

    def explain(self, v: dict[str, Any]) -> str:
        """What the verdict means, in plain language, given its status and expectation."""
        return _explain(self.what, self.failure_means, v)


def _explain(what: str, failure_means: str, v: dict[str, Any]) -> str:
    status, expected = v.get("status"), v.get("expected")
    if status == "unknown":
        said = (
            "Unknown: the checker could not judge (no audit, nothing to measure, or it "
            "crashed); the evidence says which."
        )
    elif status == "pass":
        said = (
            "It passed, so the behaviour the scenario documents did not happen (was the "
            "fault in effect?)."
        )
    else:
        said = failure_means
    if expected is not None and status != expected:
        said += f" The scenario expected {expected}: this is a regression."
    elif expected == status == "fail":
        said += " The scenario expected this failure: it is a finding, not a regression."
    return f"{what} {said}".strip()


class CheckerRegistry(Catalog[Checker]):
    """Every checker by name, in `position` order."""

    def __init__(self) -> None:
        super().__init__("checker", lambda c: c.name, lambda c: c.position)

    def ordered(self, names: Iterable[str]) -> list[str]:
        """`names` in table order: registered ones first, others (e.g. rehearsal step
        verdicts) after them, sorted."""
        given = set(names)
        return [n for n in self if n in given] + sorted(given - set(self))


CHECKERS = CheckerRegistry()


def run_checkers(names: Sequence[str], ctx: CheckContext) -> dict[str, Verdict]:
    """Each named checker over `ctx`, guarded: a checker that crashes gives `unknown`."""
    out: dict[str, Verdict] = {}
    for name in names:
        try:
            checker = CHECKERS.known(name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        out[name] = guarded(name, checker.check, ctx)
    return out


def explain(v: dict[str, Any]) -> str:
    """Plain language for any verdict dict (as `Verdict.to_dict()` gives it)."""
    name = str(v.get("name"))
    checker = CHECKERS.get(name)
    if checker is None:
        return _explain(f"{name}: a checker over the history.", "", v)
    return checker.explain(v)


def headline(v: dict[str, Any]) -> str:
    """The verdict's key figure in a few words, by its checker."""
    return (CHECKERS.get(str(v.get("name"))) or _PLAIN).headline(v)


def brief(v: dict[str, Any]) -> str:
    """The shortest form of the key figure, by its checker ("" when unknown)."""
    return (CHECKERS.get(str(v.get("name"))) or _PLAIN).brief(v)


_PLAIN = Checker()

__all__ = [
    "AUDIT_WITHIN",
    "CHECKERS",
    "Bound",
    "BoundKind",
    "CheckContext",
    "Checker",
    "CheckerRegistry",
    "brief",
    "explain",
    "headline",
    "run_checkers",
]
