"""A rehearsal's client lifecycle steps: a workload client restarted, stopped or started
while the rehearsal runs (every instance of it: ``per_client`` workers).

    - restart-client: mongo    # forgets its connection and the server it chose at start
    - stop-client: vc-a        # issues no operation until started
    - start-client: vc-a       # a fresh process again

`ClientStepReader` is the part of the rehearsal validator that knows these steps, in file
order: the client must be one of the workload's, a `start-client` must follow a
`stop-client` of the same client, a stopped client is neither stopped nor restarted
again. Every error names file, line and field.

`ClientLifecycle` performs the steps on a `Scenario` (`restart_client`, `stop_client`,
`start_client`: each takes effect from the client's next operation) and measures what
followed from the history: how many operations had failed in a row before a restart,
how long until the client's first success after it and who served it, whether a stopped
client stayed quiet.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from harness.history import Complete
from harness.rehearsal.expectations import ExpectationReader
from harness.rehearsal.model import (
    CLIENT_STEP_TYPES,
    ClientStep,
    RestartClientStep,
    StartClientStep,
    StopClientStep,
)
from harness.scenario import Scenario
from harness.yamlfile import Y, describe


class ClientStepError(ValueError):
    """A client step found no running instance of its client."""


class ClientStepReader:
    """Reads client steps with `reader` (which knows the topology and the workload);
    remembers which clients are stopped, and by which step."""

    def __init__(self, reader: ExpectationReader) -> None:
        self.r = reader
        self.stopped: dict[str, int] = {}  # client -> the stop-client step

    def step(self, kind: str, index: int, line: int, y: Y) -> ClientStep:
        r = self.r
        known = list(r.topo.clients)
        if not isinstance(y.value, str):
            raise r.problem(
                y, f"must be a client name, got {describe(y.plain())} (clients: {', '.join(known)})"
            )
        client = r.choice(y, known, "client")
        workload = r.workload
        if workload is None:
            raise r.problem(
                y, f"{kind} acts on a client of the workload: add a `workload:`", at_key=True
            )
        if client not in workload.clients:
            raise r.problem(
                y,
                f"client '{client}' is not in the workload (workload clients: "
                f"{', '.join(workload.clients)})",
            )
        stopped_by = self.stopped.get(client)
        if kind == "start-client":
            if stopped_by is None:
                raise r.problem(
                    y,
                    f"client '{client}' is not stopped: start-client follows a stop-client "
                    "of the same client",
                )
            del self.stopped[client]
        elif stopped_by is not None:
            again = "already stopped" if kind == "stop-client" else "stopped"
            raise r.problem(
                y,
                f"client '{client}' is {again} by steps[{stopped_by}]: start it first with "
                "start-client",
            )
        elif kind == "stop-client":
            self.stopped[client] = index
        return CLIENT_STEP_TYPES[kind](index=index, line=line, client=client)


class ClientLifecycle:
    """Performs client steps on `scenario`. `stopped` (shared with the rehearsal's
    traffic) holds the clients stopped now: a workload started again after a pause
    stops its instances of them too."""

    def __init__(self, scenario: Scenario, stopped: set[str]) -> None:
        self.sc = scenario
        self.stopped = stopped
        self.done: list[tuple[ClientStep, float]] = []  # each step, when it was performed

    def perform(self, step: ClientStep) -> None:
        """`ClientStepError` when no instance of the client runs."""
        t = time.monotonic()
        try:
            if isinstance(step, RestartClientStep):
                self.sc.restart_client(step.client)
            elif isinstance(step, StopClientStep):
                self.sc.stop_client(step.client)
                self.stopped.add(step.client)
            elif isinstance(step, StartClientStep):
                self.sc.start_client(step.client)
                self.stopped.discard(step.client)
            else:  # pragma: no cover - the reader makes only the kinds above
                raise TypeError(f"unknown client step {step!r}")
        except ValueError as e:
            raise ClientStepError(str(e)) from e
        self.done.append((step, t))

    def figures(self) -> list[dict[str, Any]]:
        """Per step performed, what the history shows around it (also noted)."""
        ops = self.sc.history.completes()
        out = []
        for i, (step, t) in enumerate(self.done):
            mine = sorted((c for c in ops if c.client == step.client), key=lambda c: c.start)
            fig: dict[str, Any] = {
                "step": step.path,
                "line": step.line,
                "action": step.kind,
                "client": step.client,
            }
            if isinstance(step, StopClientStep):
                later = [t2 for s2, t2 in self.done[i + 1 :] if s2.client == step.client]
                until = later[0] if later else float("inf")
                fig["ops_started_while_stopped"] = sum(1 for c in mine if t <= c.start < until)
            else:
                fig.update(_before(mine, t))
                fig.update(_after(mine, t))
            out.append(fig)
            self.sc.note(f"{step.path} {step.kind} {step.client}: {_describe(fig)}")
        return out


def _before(ops: Sequence[Complete], t: float) -> dict[str, Any]:
    """The failures in a row that ended before `t`, and who served the last success."""
    streak: list[Complete] = []
    last_ok: Complete | None = None
    for c in reversed([c for c in ops if c.end <= t]):
        if c.outcome == "ok":
            last_ok = c
            break
        streak.append(c)
    fig: dict[str, Any] = {"failed_in_a_row_before": len(streak)}
    if streak:
        fig["failing_for_s"] = round(t - streak[-1].start, 3)
    if last_ok is not None:
        fig["last_ok_served_by"] = last_ok.served_by
    return fig


def _after(ops: Sequence[Complete], t: float) -> dict[str, Any]:
    """The first success of an operation started at or after `t`: how long after `t` it
    ended, who served it, what it tried first, and the failures before it."""
    after = [c for c in ops if c.start >= t]
    oks = [c for c in after if c.outcome == "ok"]
    if not oks:
        return {"ops_after": len(after), "first_ok_s": None}
    first = min(oks, key=lambda c: c.end)
    return {
        "ops_after": len(after),
        "first_ok_s": round(first.end - t, 3),
        "first_ok_op": first.op_id,
        "first_ok_served_by": first.served_by,
        "first_ok_tried": [f"{a.server} {a.outcome}" for a in first.attempts],
        "failed_after": sum(1 for c in after if c.outcome != "ok" and c.end <= first.end),
    }


def _describe(fig: dict[str, Any]) -> str:
    if "ops_started_while_stopped" in fig:
        return f"{fig['ops_started_while_stopped']} ops started while stopped"
    before = f"{fig['failed_in_a_row_before']} ops had failed in a row before"
    if fig.get("first_ok_s") is None:
        return f"{before}; no success after it ({fig['ops_after']} ops)"
    return (
        f"{before}; first success {fig['first_ok_s']:.3f} s after, served by "
        f"{fig['first_ok_served_by']} ({fig['failed_after']} failed in between)"
    )
