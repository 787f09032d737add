"""What a matrix cell measured: its row (`CellResult`), made from the cell's verdicts
(`summarise_cell`) and from what its fault windows cost, read from the history's
operations (`window_facts`). Pure: no process, no cluster, no file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.checkers.failover import client_figures

# What a row's status can be: measured, or why nothing was measured.
MEASURED = ("pass", "finding", "unknown")
STATUSES = (*MEASURED, "unsupported", "crashed", "interrupted", "not run")


def cell_id(fault: str, policy: str) -> str:
    """A cell's name: its folder under ``cells/`` and its key in ``matrix.json``."""
    return f"{fault}-{policy}"


@dataclass
class CellResult:
    """One row of the matrix. Figures are None where they were not measured."""

    policy: str
    fault: str
    target: str
    status: str
    reason: str = ""
    seconds: float | None = None
    failover_s: float | None = None
    detect_s: float | None = None
    expected_wait_s: float | None = None
    failed_ops: int | None = None
    window_ops: int | None = None
    ok_ops: int | None = None  # ok operations started in the fault window
    ok_failing_over: int | None = None  # ... that first failed on the target
    order: str | None = None  # the order verdict's status
    order_violations: int | None = None
    replicated: bool = False
    keys_lost: int | None = None
    keys_acknowledged: int | None = None
    durability: str | None = None  # the durability verdict's status (replicated only)
    first_failed: dict[str, Any] | None = None
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: str | None = None
    error: str = ""

    @property
    def cell_id(self) -> str:
        return cell_id(self.fault, self.policy)

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell_id, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def summarise_cell(
    policy: str,
    fault: str,
    target: str,
    verdicts: dict[str, dict[str, Any]],
    *,
    replicated: bool,
    window: dict[str, Any] | None = None,
    stalled: str = "",
) -> CellResult:
    """A row from the cell's verdicts (as `Verdict.to_dict()`).

    `stalled` says what the workload waited for in vain (no failover or no recovery
    before the deadline); `window` holds `window_facts` of the cell's history. Status:
    `finding` when a verdict failed or the workload stalled, `unknown` when a verdict
    could not judge, else `pass`.
    """
    r = CellResult(policy, fault, target, "pass", replicated=replicated, verdicts=verdicts)
    window = window or {}
    first_failed = window.get("first_failed")
    r.first_failed = first_failed
    r.ok_ops, r.ok_failing_over = window.get("ok_ops"), window.get("ok_failing_over")
    problems: list[str] = []
    unknowns: list[str] = []
    if stalled:
        problems.append(stalled)

    fo = verdicts.get("failover")
    if fo is not None:
        clients = client_figures(fo.get("figures"))
        times = [c["failover_s"] for c in clients if c.get("failover_s") is not None]
        detects = [c["detect_s"] for c in clients if c.get("detect_s") is not None]
        waits = [c["expected_wait_s"] for c in clients if c.get("expected_wait_s") is not None]
        r.failover_s = max(times, default=None)
        mine = window.get("detect_s")
        r.detect_s = mine if mine is not None else max(detects, default=None)
        r.expected_wait_s = max(waits, default=None)
        if fo.get("status") == "fail":
            problems.append(_failover_problem(clients))
        elif fo.get("status") == "unknown":
            unknowns.append(f"failover: {fo.get('summary', '')}")

    lb = verdicts.get("lb_ejection")
    if lb is not None:
        ejected = [
            f["detect_s"]
            for f in (lb.get("figures") or {}).values()
            if isinstance(f, dict) and isinstance(f.get("detect_s"), int | float)
        ]
        if r.detect_s is None and ejected:  # through a balancer: its health check detects
            r.detect_s = max(ejected)
        if lb.get("status") == "fail":
            problems.append(f"balancer: {lb.get('summary', '')}")
        elif lb.get("status") == "unknown":
            unknowns.append(f"lb_ejection: {lb.get('summary', '')}")

    av = verdicts.get("availability")
    if av is not None:
        union = av.get("figures", {}).get("union") or {}
        if union.get("ops") is not None:
            r.window_ops = int(union["ops"])
            r.failed_ops = int(union["ops"]) - int(union.get("ok", 0))
        if av.get("status") == "fail":
            text = f"{r.failed_ops}/{r.window_ops} ops failed"
            if first_failed and first_failed.get("why"):
                text += f" ({first_failed['why']})"
            problems.append(text)
        elif av.get("status") == "unknown":
            unknowns.append(f"availability: {av.get('summary', '')}")

    od = verdicts.get("order")
    if od is not None:
        r.order = od.get("status")
        r.order_violations = od.get("figures", {}).get("violations")
        if r.order == "fail":
            problems.append(f"server order broken in {r.order_violations} op(s)")
        elif r.order == "unknown":
            unknowns.append(f"order: {od.get('summary', '')}")

    du = verdicts.get("durability")
    if replicated and du is not None:
        r.durability = du.get("status")
        figs = du.get("figures", {})
        if r.durability in ("pass", "fail"):  # unknown: counts that cannot be trusted
            r.keys_acknowledged = figs.get("acknowledged")
            r.keys_lost = figs.get("lost_keys", 0 if r.durability == "pass" else None)
        if r.durability == "fail":
            problems.append(f"{r.keys_lost} acknowledged key(s) lost")
        elif r.durability == "unknown":
            unknowns.append(f"durability: {du.get('summary', '')}")

    if problems:
        r.status, r.reason = "finding", "; ".join(problems)
    elif unknowns:
        r.status, r.reason = "unknown", "; ".join(unknowns)
    return r


def _failover_problem(clients: list[dict[str, Any]]) -> str:
    for c in clients:
        if c.get("status") != "fail":
            continue
        took, lo, hi = c.get("failover_s"), c.get("lower_s"), c.get("upper_s")
        if took is None:
            return "never failed over"
        if lo is not None and took < lo:
            return f"failover {took:.3f} s below its bound {lo:.3f} s (fault not applied?)"
        if hi is not None and took > hi:
            return f"failover {took:.3f} s above its bound {hi:.3f} s"
    return "failover outside its bound"


def window_facts(events: list[Any], orders: dict[str, list[str]]) -> dict[str, Any]:
    """What the fault windows of a history cost, read from the operations themselves.

    `detect_s`: fault → the first success on an unaffected replica, counting an
    operation that was in flight when the fault hit, with or without a failed attempt
    first (e.g. a PyKMIP reconnect): the failover checker's `served_elsewhere_after`.
    `ok_ops` / `ok_failing_over`: the ok operations started in a window, and those that
    first failed on an affected replica.
    `first_failed`: the first operation of a window that did not succeed, and why.
    """
    from harness.checkers.failover import served_elsewhere_after
    from harness.checkers.verdict import attempt_trail, completes, fault_windows

    windows = fault_windows(events)
    ops = completes(events)
    facts: dict[str, Any] = {
        "detect_s": None,
        "ok_ops": 0,
        "ok_failing_over": 0,
        "first_failed": None,
    }
    detects = [d for w in windows if (d := served_elsewhere_after(w, ops)) is not None]
    facts["detect_s"] = round(max(detects), 6) if detects else None
    for c in ops:
        mine = [w for w in windows if w.contains(c.start)]
        if c.outcome == "ok" and mine:
            facts["ok_ops"] += 1
            affected = {r for w in mine for r in w.replicas}
            if any(a.server in affected and a.outcome != "ok" for a in c.attempts):
                facts["ok_failing_over"] += 1
    for c in ops:
        if c.outcome == "ok" or not any(w.affects(c) for w in windows):
            continue
        why = ""
        if len(c.attempts) == 1 and c.attempts[0].reused:
            why = f"{c.attempts[0].outcome} on the open connection to {c.attempts[0].server}"
            why += ", no failover"
        elif c.attempts and {a.server for a in c.attempts} >= set(orders.get(c.client, ())):
            why = "every replica failed"
        elif not c.attempts:
            why = c.error
        facts["first_failed"] = {
            "op_id": c.op_id,
            "op": c.op,
            "outcome": c.outcome,
            "trail": attempt_trail(c.attempts),
            "why": why,
        }
        break
    return facts
