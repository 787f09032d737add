"""Checkers over hand-built histories: each test names a behaviour and asserts it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from harness.checkers import Verdict, guarded, worst
from harness.checkers.availability import check_availability
from harness.checkers.failover import check_failover
from harness.checkers.order import check_order
from harness.history import Attempt, Complete, Event, FaultEvent, History, Invoke

T0 = 1000.0  # monotonic-looking origin
ORDERS = {
    "vc-a": ["kms-a", "kms-b", "kms-c"],
    "vc-b": ["kms-b", "kms-c", "kms-a"],
    "py-a": ["kms-a", "kms-b", "kms-c"],
}
RESPONSE = 1.0
CONNECT = 0.5

Try = tuple[str, str, float] | tuple[str, str, float, bool]  # server, outcome, seconds, reused


@dataclass
class Builder:
    """Builds histories: ops as attempt trails laid end to end, faults as inject/heal pairs."""

    events: list[Event] = field(default_factory=list)
    n: int = 0

    def op(
        self,
        client: str,
        start: float,
        *tries: Try,
        policy: str = "vcenter",
        outcome: str | None = None,
    ) -> Complete:
        """An op starting at T0 + start; its outcome is ok iff the last attempt was ok."""
        self.n += 1
        t = T0 + start
        attempts = []
        for tr in tries:
            server, result, secs = tr[0], tr[1], tr[2]
            reused = bool(tr[3]) if len(tr) > 3 else False
            attempts.append(Attempt(server, f"{server}:5696", t, t + secs, result, "", reused))
            t += secs
        last = attempts[-1] if attempts else None
        if outcome is None:
            if last is not None and last.outcome == "ok":
                outcome = "ok"
            elif last is not None and last.outcome == "timeout":
                outcome = "info"
            else:
                outcome = "fail"
        c = Complete(
            op_id=f"op-{self.n}",
            client=client,
            policy=policy,
            op="get",
            start=T0 + start,
            end=t,
            outcome=outcome,  # type: ignore[arg-type]
            served_by=last.server if last is not None and outcome == "ok" else None,
            attempts=attempts,
        )
        self.events.append(Invoke(c.op_id, client, "get", c.start))
        self.events.append(c)
        return c

    def fault(
        self,
        fault_id: str,
        kind: str,
        target: str,
        inject: float,
        heal: float | None = None,
        replicas: list[str] | None = None,
    ) -> None:
        params = {"replicas": replicas} if replicas is not None else {}
        self.events.append(FaultEvent(fault_id, "inject", kind, target, T0 + inject, params))
        if heal is not None:
            self.events.append(FaultEvent(fault_id, "heal", kind, target, T0 + heal, params))

    def baseline(self, client: str = "vc-a", server: str = "kms-a", n: int = 5) -> None:
        """n quick ok ops (5 ms each) before t = 1 s."""
        for i in range(n):
            self.op(client, i * 0.1, (server, "ok", 0.005))


def failover(b: Builder, orders: dict[str, list[str]] | None = None) -> Verdict:
    v = check_failover(b.events, response_timeout=RESPONSE, connect_timeout=CONNECT, orders=orders)
    json.dumps(v.to_dict())  # figures must be JSON-serialisable
    return v


# --- failover -------------------------------------------------------------------------


def test_detect_counts_the_op_in_flight_when_the_fault_hit() -> None:
    # blackhole at t=2.0: the op sent at 1.9 waits its 1 s on kms-a, then kms-b answers at
    # 2.91; the first op started in the window is only served at 3.02
    b = Builder()
    b.baseline()
    b.fault("f1", "blackhole", "kms-a", 2.0, 10.0)
    b.op("vc-a", 1.9, ("kms-a", "timeout", RESPONSE), ("kms-b", "ok", 0.01))
    b.op("vc-a", 2.01, ("kms-a", "timeout", RESPONSE), ("kms-b", "ok", 0.01))
    v = failover(b)
    assert v.status == "pass", v.summary
    fig = v.figures["f1"]["clients"]["vc-a"]
    assert fig["failover_s"] == pytest.approx(1.01)  # judged on the op started in the window
    assert fig["detect_s"] == pytest.approx(0.91)  # 1.9 + 1.01 - 2.0: the op in flight


def test_failover_is_judged_from_when_the_whole_effect_is_in_place() -> None:
    # tls-stall's window opens when its injection begins (open sessions are closed at
    # once) and its handshakes stall once injection has returned (t = 2.2): an op that
    # started in between met a closed session (EOF, at once), not the stall; the stall's
    # failover is judged on the op started after, which paid the response timeout
    b = Builder()
    b.baseline()
    b.events.append(
        FaultEvent("f1", "inject", "tls-stall", "kms-a", T0 + 2.0, {"in_effect_at": T0 + 2.2})
    )
    b.events.append(FaultEvent("f1", "heal", "tls-stall", "kms-a", T0 + 10.0))
    b.op("vc-a", 2.1, ("kms-a", "eof", 0.005), ("kms-b", "ok", 0.01))
    b.op("vc-a", 2.3, ("kms-a", "timeout", RESPONSE), ("kms-b", "ok", 0.01))
    v = failover(b)
    assert v.status == "pass", v.summary
    fig = v.figures["f1"]["clients"]["vc-a"]
    assert fig["failover_s"] == pytest.approx(1.01)
    assert fig["detect_s"] == pytest.approx(0.115)  # the EOF'd op still served elsewhere first
    # without the mark, the EOF'd op would be taken for a stall's failover: too fast
    b.events[-6] = FaultEvent("f1", "inject", "tls-stall", "kms-a", T0 + 2.0)
    assert failover(b).status == "fail"


def test_failover_vcenter_refuse_passes_with_figures() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.010))
    b.op("vc-a", 4.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.010))
    v = failover(b)
    assert v.status == "pass", v.summary
    fig = v.figures["f1"]["clients"]["vc-a"]
    assert fig["status"] == "pass"
    assert fig["failover_s"] == pytest.approx(0.011)
    assert fig["detect_s"] == pytest.approx(1.011)
    assert fig["expected_wait_s"] == 0.0
    assert fig["lower_s"] == 0.0
    assert fig["upper_s"] == pytest.approx(0.25 + 4 * 0.005)
    assert fig["failed_ops_before"] == 0
    assert v.figures["baseline_p50_s"] == pytest.approx(0.005)
    assert v.figures["baseline_p99_s"] == pytest.approx(0.005)
    assert v.summary.startswith("vc-a failed over from kms-a in 0.011 s")
    assert any("op-6" in d and "kms-a refused" in d for d in v.details)


def test_failover_blackhole_taking_the_response_timeout_passes() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "blackhole", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "timeout", 1.0), ("kms-b", "ok", 0.01))
    v = failover(b)
    assert v.status == "pass", v.summary
    fig = v.figures["f1"]["clients"]["vc-a"]
    assert fig["expected_wait_s"] == RESPONSE
    assert fig["lower_s"] == pytest.approx(1.0 - 0.02 - 0.02)
    assert fig["upper_s"] == pytest.approx(1.0 + 0.25 + 4 * 0.005)


def test_failover_blackhole_in_10ms_fails_below_lower_bound() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "blackhole", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "timeout", 0.005), ("kms-b", "ok", 0.005))
    v = failover(b)
    assert v.status == "fail"
    assert "below the lower bound" in v.summary
    assert v.figures["f1"]["clients"]["vc-a"]["status"] == "fail"
    assert any("kms-a timeout 0.005s" in d for d in v.details)


def test_failover_far_too_slow_fails_above_upper_bound() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 3.0))
    v = failover(b)
    assert v.status == "fail"
    assert "above the upper bound" in v.summary
    assert v.figures["f1"]["clients"]["vc-a"]["failover_s"] == pytest.approx(3.001)


def test_failover_client_that_never_reached_another_replica_fails() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "blackhole", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "timeout", 1.0))
    b.op("vc-a", 5.0, ("kms-a", "timeout", 1.0))
    v = failover(b)
    assert v.status == "fail"
    assert v.summary.startswith("vc-a never reached another replica during blackhole on kms-a")
    assert v.figures["f1"]["clients"]["vc-a"]["failed_ops"] == 2


def test_failover_still_served_by_the_faulted_replica_fails_as_not_applied() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "ok", 0.005))
    v = failover(b)
    assert v.status == "fail"
    assert "fault not applied?" in v.summary


def test_failover_latency_fault_is_not_applicable() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "latency", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "ok", 0.3))
    v = failover(b)
    assert v.status == "unknown"
    assert v.figures["f1"]["applicable"] is False
    assert "no failover expected" in v.figures["f1"]["note"]
    assert "clients" not in v.figures["f1"]


def test_failover_client_served_elsewhere_is_not_exercised() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0)
    b.op("vc-b", 3.0, ("kms-b", "ok", 0.005))
    b.op("vc-a", 3.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.005))
    v = failover(b)
    assert v.status == "pass", v.summary
    assert v.figures["f1"]["clients"]["vc-b"]["status"] == "not-exercised"
    only_unexercised = Builder(events=[e for e in b.events if getattr(e, "client", "") != "vc-a"])
    assert failover(only_unexercised).status == "unknown"


def test_failover_unreachable_costs_connect_for_vcenter_but_response_for_pykmip() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "unreachable", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "connect-timeout", CONNECT), ("kms-b", "ok", 0.01))
    assert failover(b).status == "pass"

    p = Builder()
    p.baseline("py-a")
    p.fault("f1", "unreachable", "kms-a", 2.0, 10.0)
    p.op("py-a", 3.0, ("kms-a", "connect-timeout", CONNECT), ("kms-b", "ok", 0.01), policy="pykmip")
    v = failover(p)
    assert v.status == "fail"
    assert v.figures["f1"]["clients"]["py-a"]["expected_wait_s"] == RESPONSE


def test_failover_pykmip_counts_failed_ops_before_reconnecting() -> None:
    b = Builder()
    b.baseline("py-a")
    b.fault("f1", "reset", "kms-a", 2.0, 10.0)
    b.op("py-a", 3.0, ("kms-a", "reset", 0.001, True), policy="pykmip")
    b.op("py-a", 3.5, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.01), policy="pykmip")
    v = failover(b)
    assert v.status == "pass", v.summary
    fig = v.figures["f1"]["clients"]["py-a"]
    assert fig["failed_ops_before"] == 1
    assert fig["op_id"] == "op-7"
    assert fig["detect_s"] == pytest.approx(1.511)


def test_failover_over_several_replicas_multiplies_the_wait() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "stall", "kms-a", 2.0, 10.0, replicas=["kms-a", "kms-b"])
    b.op("vc-a", 3.0, ("kms-a", "timeout", 1.0), ("kms-b", "timeout", 1.0), ("kms-c", "ok", 0.01))
    v = failover(b)
    assert v.status == "pass", v.summary
    assert v.figures["f1"]["clients"]["vc-a"]["expected_wait_s"] == 2 * RESPONSE


def test_failover_unhealed_fault_lasts_to_end_and_no_baseline_is_noted() -> None:
    b = Builder()
    b.fault("f1", "kill", "kms-a", 0.0)
    b.op("vc-a", 3.0, ("kms-a", "eof", 0.001), ("kms-b", "ok", 0.01))
    v = failover(b)
    assert v.status == "pass", v.summary
    assert v.figures["baseline_p99_s"] == 0.0
    assert v.figures["f1"]["healed"] is False
    assert any("no baseline" in d for d in v.details)


def test_failover_with_every_replica_affected_is_not_applicable_given_orders() -> None:
    b = Builder()
    b.baseline()
    all_three = ["kms-a", "kms-b", "kms-c"]
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0, replicas=all_three)
    b.op("vc-a", 3.0, *((s, "refused", 0.001) for s in all_three))
    assert failover(b).status == "fail"
    v = failover(b, orders=ORDERS)
    assert v.status == "unknown"
    assert v.figures["f1"]["clients"]["vc-a"]["status"] == "not-applicable"


def test_failover_without_faults_is_unknown() -> None:
    b = Builder()
    b.baseline()
    v = failover(b)
    assert v.status == "unknown"
    assert "no faults" in v.summary


def test_failover_accepts_a_history() -> None:
    b = Builder()
    b.baseline()
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.010))
    h = History()
    h.extend(b.events)
    assert failover(Builder(events=list(h))).status == "pass"
    v = check_failover(h, response_timeout=RESPONSE, connect_timeout=CONNECT)
    assert v.status == "pass"


# --- order ----------------------------------------------------------------------------


def order(b: Builder) -> Verdict:
    v = check_order(b.events, orders=ORDERS)
    json.dumps(v.to_dict())
    return v


def test_order_prefix_walks_pass() -> None:
    b = Builder()
    b.op("vc-a", 0.0, ("kms-a", "ok", 0.01))
    b.op("vc-a", 1.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))
    b.op("vc-b", 1.0, ("kms-b", "timeout", 1.0), ("kms-c", "eof", 0.01), ("kms-a", "ok", 0.01))
    v = order(b)
    assert v.status == "pass", v.details
    assert v.figures["ops_checked"] == 3
    assert v.figures["violations"] == 0
    assert v.figures["clients"]["vc-a"] == {"ops": 2, "violations": 0}


def test_order_skipped_server_fails() -> None:
    b = Builder()
    b.op("vc-a", 0.0, ("kms-a", "refused", 0.01), ("kms-c", "ok", 0.01))
    v = order(b)
    assert v.status == "fail"
    assert v.figures["violations"] == 1
    assert "skipped kms-b" in v.details[0]
    assert "op-1 vc-a" in v.details[0]


def test_order_starting_past_the_first_server_fails() -> None:
    b = Builder()
    b.op("vc-a", 0.0, ("kms-b", "ok", 0.01))
    v = order(b)
    assert v.status == "fail"
    assert "skipped kms-a" in v.details[0]


def test_order_going_backwards_fails() -> None:
    b = Builder()
    b.op("vc-a", 0.0, ("kms-a", "refused", 0.01), ("kms-b", "reset", 0.01), ("kms-a", "ok", 0.01))
    v = order(b)
    assert v.status == "fail"
    assert "went back to kms-a" in v.details[0]


def test_order_reused_attempt_first_is_allowed_anywhere_in_the_order() -> None:
    b = Builder()
    b.op("py-a", 0.0, ("kms-c", "ok", 0.01, True), policy="pykmip")
    b.op("py-a", 1.0, ("kms-b", "eof", 0.01, True), policy="pykmip")
    b.op("py-a", 2.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01), policy="pykmip")
    assert order(b).status == "pass"


def test_order_pykmip_walking_on_after_an_open_connection_error_fails() -> None:
    # PyKMIP raises an error on its open connection: the op must end there
    b = Builder()
    b.op(
        "py-a",
        1.0,
        ("kms-b", "eof", 0.01, True),
        ("kms-a", "refused", 0.01),
        ("kms-b", "ok", 0.01),
        policy="pykmip",
    )
    v = order(b)
    assert v.status == "fail"
    assert "open_connection_error fail" in v.details[0]


def test_order_reused_attempt_after_a_fresh_one_fails() -> None:
    b = Builder()
    b.op("py-a", 0.0, ("kms-a", "refused", 0.01), ("kms-c", "ok", 0.01, True), policy="pykmip")
    v = order(b)
    assert v.status == "fail"
    assert "not first" in v.details[0]


def test_order_unknown_server_and_unknown_client_fail() -> None:
    b = Builder()
    b.op("vc-a", 0.0, ("kms-x", "ok", 0.01))
    b.op("vc-z", 0.0, ("kms-a", "ok", 0.01))
    v = order(b)
    assert v.status == "fail"
    assert v.figures["violations"] == 2
    assert any("unknown server 'kms-x'" in d for d in v.details)
    assert any("vc-z: unknown client" in d for d in v.details)


def test_order_with_no_ops_is_unknown() -> None:
    assert order(Builder()).status == "unknown"


# --- availability ---------------------------------------------------------------------


def availability(b: Builder, min_ok_share: float = 1.0, max_gap_s: float | None = None) -> Verdict:
    v = check_availability(b.events, min_ok_share=min_ok_share, max_gap_s=max_gap_s)
    json.dumps(v.to_dict())
    return v


def steady_ops(b: Builder, client: str, start: float, stop: float, step: float = 0.5) -> None:
    t = start
    while t < stop - 1e-9:
        b.op(client, t, ("kms-b", "ok", 0.01))
        t += step


def test_availability_all_ok_during_fault_passes() -> None:
    b = Builder()
    b.fault("f1", "refuse", "kms-a", 1.0, 5.0)
    steady_ops(b, "vc-a", 0.0, 8.0)
    v = availability(b, max_gap_s=1.0)
    assert v.status == "pass", v.summary
    f1 = v.figures["faults"]["f1"]
    assert f1["ops"] == 8  # starts at 1.0, 1.5, ..., 4.5
    assert f1["ok_share"] == 1.0
    assert f1["longest_gap_s"]["vc-a"] == pytest.approx(0.5)
    assert v.figures["union"]["ok_share"] == 1.0


def test_availability_fails_on_ok_share() -> None:
    b = Builder()
    b.fault("f1", "reset", "kms-a", 1.0, 5.0)
    steady_ops(b, "vc-a", 0.0, 8.0)
    b.op("py-a", 2.0, ("kms-a", "reset", 0.01, True), policy="pykmip")
    v = availability(b)
    assert v.status == "fail"
    assert v.figures["union"]["ok"] == 8
    assert v.figures["union"]["ops"] == 9
    assert "8/9 ops ok during faults" in v.summary
    assert availability(b, min_ok_share=0.8).status == "pass"


def test_availability_fails_on_gap() -> None:
    b = Builder()
    b.fault("f1", "blackhole", "kms-a", 1.0, 5.0)
    b.op("vc-a", 1.1, ("kms-b", "ok", 0.01))  # ok end 1.11
    b.op("vc-a", 2.0, ("kms-a", "timeout", 1.0), ("kms-b", "ok", 1.0))  # ok end 4.0
    b.op("vc-a", 4.5, ("kms-b", "ok", 0.01))  # ok end 4.51
    v = availability(b, max_gap_s=2.5)
    assert v.status == "fail"
    assert v.figures["faults"]["f1"]["longest_gap_s"]["vc-a"] == pytest.approx(2.89)
    assert "vc-a went 2.890 s without an ok op" in v.summary
    assert availability(b, max_gap_s=3.0).status == "pass"


def test_availability_gap_counts_a_client_stuck_in_one_op() -> None:
    b = Builder()
    b.fault("f1", "stall", "kms-a", 1.0, 5.0)
    b.op("vc-a", 1.5, ("kms-b", "ok", 0.01))
    b.op("vc-b", 0.5, ("kms-a", "timeout", 6.0))  # started before, running through
    v = availability(b)
    assert v.figures["faults"]["f1"]["longest_gap_s"]["vc-b"] == pytest.approx(4.0)


def test_availability_gap_ignores_time_a_client_was_idle() -> None:
    b = Builder()
    b.fault("f1", "refuse", "kms-a", 1.0, 5.0)
    steady_ops(b, "vc-a", 0.0, 8.0)
    b.op("vc-b", 3.0, ("kms-b", "ok", 0.01))  # the only op vc-b ever ran
    v = availability(b, max_gap_s=1.0)
    assert v.status == "pass", v.summary
    assert v.figures["faults"]["f1"]["longest_gap_s"]["vc-b"] == pytest.approx(0.01)


def test_availability_recovery_measured_from_heal() -> None:
    b = Builder()
    b.fault("f1", "kill", "kms-a", 1.0, 5.0)
    b.op("vc-a", 2.0, ("kms-a", "eof", 0.01), ("kms-b", "ok", 0.01))
    b.op("vc-a", 5.2, ("kms-a", "ok", 0.05))  # end 5.25
    b.op("vc-b", 5.1, ("kms-b", "ok", 0.5))  # starts first, ends later (5.6)
    v = availability(b)
    assert v.status == "pass", v.summary
    assert v.figures["faults"]["f1"]["recovery_s"] == pytest.approx(0.25)


def test_availability_unhealed_fault_has_no_recovery_and_runs_to_end() -> None:
    b = Builder()
    b.fault("f1", "kill", "kms-a", 1.0)
    b.op("vc-a", 2.0, ("kms-a", "eof", 0.01), ("kms-b", "ok", 0.01))
    v = availability(b)
    f1 = v.figures["faults"]["f1"]
    assert f1["healed"] is False
    assert f1["recovery_s"] is None
    assert f1["ops"] == 1


def test_availability_union_counts_overlapping_windows_once() -> None:
    b = Builder()
    b.fault("f1", "refuse", "kms-a", 1.0, 4.0)
    b.fault("f2", "latency", "kms-b", 3.0, 6.0)
    steady_ops(b, "vc-a", 0.0, 8.0)
    v = availability(b)
    assert v.figures["faults"]["f1"]["ops"] == 6
    assert v.figures["faults"]["f2"]["ops"] == 6
    assert v.figures["union"]["ops"] == 10  # 1.0 .. 5.5
    assert v.figures["union"]["windows"] == 1


def test_availability_no_ops_in_fault_window_is_unknown() -> None:
    b = Builder()
    steady_ops(b, "vc-a", 0.0, 1.0)
    b.fault("f1", "refuse", "kms-a", 5.0, 6.0)
    assert availability(b).status == "unknown"


def test_availability_without_faults_uses_steady_share() -> None:
    b = Builder()
    steady_ops(b, "vc-a", 0.0, 2.0)
    v = availability(b)
    assert v.status == "pass"
    assert v.figures["steady"] == {"ops": 4, "ok": 4, "ok_share": 1.0}
    b.op("vc-a", 3.0, ("kms-a", "refused", 0.01))
    assert availability(b).status == "fail"
    assert availability(b, min_ok_share=0.75).status == "pass"
    assert availability(Builder()).status == "unknown"


# --- verdict composition --------------------------------------------------------------


def _v(status: str) -> Verdict:
    return Verdict("x", status, "s", {}, [])  # type: ignore[arg-type]


def test_worst_composes_fail_over_unknown_over_pass() -> None:
    assert worst([_v("pass"), _v("pass")]) == "pass"
    assert worst([_v("pass"), _v("unknown")]) == "unknown"
    assert worst([_v("unknown"), _v("fail"), _v("pass")]) == "fail"
    assert worst(["pass", "fail"]) == "fail"
    assert worst([]) == "unknown"
    with pytest.raises(ValueError, match="unknown verdict status 'ok'"):
        worst(["ok"])


def test_guarded_turns_a_crash_into_unknown() -> None:
    def boom(events: list[Event]) -> Verdict:
        raise ValueError("boom")

    v = guarded("order", boom, [])
    assert v.status == "unknown"
    assert v.name == "order"
    assert v.summary == "checker crashed: ValueError('boom')"
    assert any("ValueError: boom" in d for d in v.details)

    crashed = guarded(
        "failover", check_failover, [object()], response_timeout=1.0, connect_timeout=1.0
    )
    assert crashed.status == "unknown"
    assert crashed.summary.startswith("checker crashed: TypeError")


def test_guarded_passes_a_verdict_through() -> None:
    b = Builder()
    b.op("vc-a", 0.0, ("kms-a", "ok", 0.01))
    v = guarded("order", check_order, b.events, orders=ORDERS)
    assert v.status == "pass"
    assert v.to_dict()["name"] == "order"


def test_availability_counts_an_op_in_flight_that_the_fault_broke() -> None:
    """An op that started just before the fault and failed because of it is counted;
    one that started before and succeeded (served before the fault) is not."""
    from harness.checkers.availability import check_availability
    from harness.history import Attempt, Complete, FaultEvent

    def op(i: int, start: float, end: float, outcome: str) -> Complete:
        a = Attempt("kms-a", "h:1", start, end, "ok" if outcome == "ok" else "timeout")
        return Complete(
            f"c#0:{i}",
            "vc-a",
            "pykmip",
            "locate",
            start,
            end,
            outcome,
            "kms-a" if outcome == "ok" else None,
            None,
            [a],
        )

    events = [
        op(1, 0.0, 0.1, "ok"),
        op(2, 0.9, 1.05, "ok"),  # served before the fault took hold
        op(3, 0.95, 4.0, "fail"),  # in flight when the blackhole hit
        FaultEvent("f1", "inject", "blackhole", "kms-a", 1.0),
        op(4, 4.1, 4.2, "ok"),
        FaultEvent("f1", "heal", "blackhole", "kms-a", 5.0),
    ]
    v = check_availability(events)
    window = v.figures["faults"]["f1"]
    assert (window["ops"], window["ok"]) == (2, 1)
    assert v.status == "fail"
