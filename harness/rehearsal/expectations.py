"""Checking a rehearsal's ``expect`` steps: per checker a status, or the bounds the
checker declares (`Checker.expectations`), each read by its kind — a duration, a share,
a client of the workload, a site or replica the clients can reach, the `as` name of a
fault injected before. Adding a checker or a bound needs no edit here.

`ExpectationReader` is the part of the rehearsal validator that knows expectations; it
holds what the steps before have established (topology, workload, injected names).
"""

from __future__ import annotations

from typing import Any

from harness.checkers import CHECKERS, Bound
from harness.rehearsal.fileformat import BOUND_SHAPES, STATUS, STATUSES
from harness.rehearsal.model import EXPECTATION_FIELDS, Expectation, ExpectStep, WorkloadSpec
from harness.topology import Topology
from harness.yamlfile import SHOW_VALUES, Reader, Y, describe


class ExpectationReader(Reader):
    def __init__(self) -> None:
        super().__init__(SHOW_VALUES)
        self.topology: Topology | None = None
        self.workload: WorkloadSpec | None = None
        self.named_steps: dict[str, int] = {}  # `as` name -> its (last) inject step
        self.last_inject: int | None = None

    @property
    def topo(self) -> Topology:
        assert self.topology is not None
        return self.topology

    def status(self, y: Y) -> str:
        if not isinstance(y.value, str) or y.value not in STATUS.values:
            raise self.problem(
                y, f"expected status must be pass, fail or unknown, got {describe(y.plain())}"
            )
        return y.value

    def expect(self, index: int, line: int, y: Y) -> ExpectStep:
        checkers = tuple(CHECKERS)
        if not isinstance(y.value, dict) or not y.value:
            raise self.problem(
                y,
                "must map checkers to what you expect, e.g. {order: pass}, "
                f"got {describe(y.plain())} "
                f"(checkers: {', '.join(checkers)})",
            )
        body = self.mapping(y, checkers)
        out = []
        for checker, spec in body.items():
            if CHECKERS[checker].judges_operations and self.workload is None:
                raise self.problem(
                    spec,
                    f"{checker} judges the workload's operations: add a `workload:`",
                    at_key=True,
                )
            out.append(self.expectation(checker, spec))
        return ExpectStep(index=index, line=line, expectations=tuple(out))

    def expectation(self, checker: str, y: Y) -> Expectation:
        """An expectation: a status, or a mapping of the bounds the checker declares
        (`Checker.expectations`), each read by its kind."""
        line = y.key_line
        declared = CHECKERS[checker].expectations
        judges_fault = any(b.kind == "fault" for b in declared)
        if isinstance(y.value, str):
            return Expectation(
                checker=checker,
                want=self.status(y),
                line=line,
                path=y.path,
                fault_step=self.last_inject if judges_fault else None,
            )
        keys = (*(b.key for b in declared), "status")
        if not isinstance(y.value, dict):
            raise self.problem(
                y,
                f"must be {', '.join(STATUSES)} or a mapping of bounds "
                f"({', '.join(keys)}), got {describe(y.plain())}",
            )
        body = self.mapping(y, keys)
        want = self.status(body["status"]) if "status" in body else "pass"
        values: dict[str, Any] = {}
        for b in declared:
            if b.key in body:
                values.update(self.bound(b, body[b.key]))
        self.check_destination(declared, body, values)
        if judges_fault and "fault_step" not in values:
            if self.last_inject is None:
                raise self.problem(
                    y, f"{checker}: no inject step before this one: inject a fault first"
                )
            values["fault_step"] = self.last_inject
        kw = {k: v for k, v in values.items() if k in EXPECTATION_FIELDS or k == "fault_step"}
        others = {k: v for k, v in values.items() if k not in kw}
        return Expectation(checker=checker, want=want, line=line, path=y.path, others=others, **kw)

    def bound(self, b: Bound, y: Y) -> dict[str, Any]:
        """One bound's value (and, for a fault, the step that injected it)."""
        if b.kind in ("duration", "share"):
            return {b.into: self.take(y, BOUND_SHAPES[b.kind])}
        if b.kind == "site":
            return {b.into: self.choice(y, list(self.topo.sites), "site")}
        if b.kind == "replica":
            return {b.into: self.choice(y, list(self.topo.replicas), "replica")}
        if b.kind == "client":
            assert self.workload is not None
            c = self.choice(y, list(self.topo.clients), "client")
            if c not in self.workload.clients:
                raise self.problem(
                    y,
                    f"client '{c}' is not in the workload (workload clients: "
                    f"{', '.join(self.workload.clients)})",
                )
            return {b.into: c}
        n = y.value
        if not isinstance(n, str) or n not in self.named_steps:
            named = ", ".join(self.named_steps) or "none"
            raise self.problem(
                y,
                f"no injected fault named {describe(y.plain())} before this step (named: {named})",
            )
        return {b.into: n, "fault_step": self.named_steps[n]}

    def check_destination(
        self, declared: tuple[Bound, ...], body: dict[str, Y], values: dict[str, Any]
    ) -> None:
        """A site or replica bound is where clients must end up: one of them at most,
        and in the order of every client judged."""
        dests = [b for b in declared if b.kind in ("site", "replica") and b.key in body]
        if len(dests) > 1:
            keys = " or ".join(b.key for b in dests)
            raise self.problem(body[dests[-1].key], f"give {keys}, not both", at_key=True)
        if not dests:
            return
        dest_bound = dests[0]
        dest = values[dest_bound.into]
        wanted = set(self.topo.sites[dest]) if dest_bound.kind == "site" else {dest}
        if dest_bound.kind == "site":  # a balancer of that site leads there too
            wanted |= {n for n, b in self.topo.load_balancers.items() if b.site == dest}
        client = next(
            (values[b.into] for b in declared if b.kind == "client" and b.into in values), None
        )
        assert self.workload is not None
        for c in [client] if client else list(self.workload.clients):
            if not wanted & set(self.topo.clients[c].order):
                raise self.problem(
                    body[dest_bound.key],
                    f"client '{c}' never tries {dest}: it is not in its order",
                )
