"""The order and failover checkers follow each client's policy (hand-built histories):
retries, skip windows, open-connection errors, a server chosen at start, restarts."""

from __future__ import annotations

import itertools

from harness.checkers.failover import check_failover
from harness.checkers.order import check_order
from harness.client.policies import POLICIES
from harness.client.policy_spec import adjusted
from harness.history import Attempt, ClientEvent, Complete, Event, FaultEvent

T0 = 1000.0
ORDER = ["kms-a", "kms-b", "kms-c"]
Try = tuple[str, str, float] | tuple[str, str, float, bool]


class History:
    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.events: list[Event] = []
        self.seq = itertools.count(1)

    def op(self, start: float, *tries: Try, sent: bool = False) -> Complete:
        t = T0 + start
        attempts = []
        for tr in tries:
            server, result, secs = tr[0], tr[1], tr[2]
            reused = bool(tr[3]) if len(tr) > 3 else False
            was_sent = sent or result == "ok"
            attempts.append(Attempt(server, server, t, t + secs, result, "", reused, sent=was_sent))
            t += secs
        ok = attempts[-1].outcome == "ok"
        c = Complete(
            op_id=f"c#0:{next(self.seq)}",
            client="c",
            policy=self.policy,
            op="get",
            start=T0 + start,
            end=t,
            outcome="ok" if ok else "fail",
            served_by=attempts[-1].server if ok else None,
            attempts=attempts,
        )
        self.events.append(c)
        return c

    def restart(self, at: float) -> None:
        self.events.append(ClientEvent(T0 + at, "c", 0, "restart"))

    def fault(self, kind: str, target: str, start: float, end: float) -> None:
        params = {"replicas": [target]}
        self.events.append(FaultEvent("f1", "inject", kind, target, T0 + start, params))
        self.events.append(FaultEvent("f1", "heal", kind, target, T0 + end, params))

    def order(self, time_scale: float = 1.0) -> tuple[str, list[str]]:
        v = check_order(
            self.events,
            orders={"c": ORDER},
            policies={"c": POLICIES[self.policy]},
            time_scale=time_scale,
        )
        return v.status, list(v.details)


def test_kmip_go_skips_a_server_that_failed_to_connect_within_its_window() -> None:
    h = History("kmip-go")
    h.op(0.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))
    h.op(1.0, ("kms-b", "ok", 0.01))  # kms-a failed 1 s ago: skipped (window 5 s)
    assert h.order() == ("pass", [])


def test_kmip_go_trying_a_server_inside_its_skip_window_is_a_violation() -> None:
    h = History("kmip-go")
    h.op(0.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))
    h.op(1.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))
    status, details = h.order()
    assert status == "fail"
    assert "failed to connect" in details[0] and "skips such a server" in details[0]


def test_a_skip_outside_the_window_is_a_violation() -> None:
    h = History("kmip-go")
    h.op(0.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))
    h.op(6.0, ("kms-b", "ok", 0.01))  # 6 s later: kms-a must be tried again
    status, details = h.order()
    assert status == "fail"
    assert "skipped kms-a" in details[0]


def test_the_skip_window_scales_with_the_time_scale() -> None:
    h = History("kmip-go")
    h.op(0.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))
    h.op(1.0, ("kms-b", "ok", 0.01))
    assert h.order(time_scale=0.05)[0] == "fail"  # window 0.25 s


def test_retries_follow_retry_on_and_their_count() -> None:
    ok = History("kmip-go")  # eof retried ×3 on the same server
    ok.op(0.0, ("kms-a", "eof", 0.01, True), ("kms-a", "eof", 0.01), ("kms-a", "ok", 0.01))
    assert ok.order() == ("pass", [])
    too_many = History("retrying")  # ×1
    too_many.op(0.0, ("kms-a", "eof", 0.01), ("kms-a", "eof", 0.01), ("kms-a", "ok", 0.01))
    status, details = too_many.order()
    assert status == "fail" and "3 times in a row" in details[0]
    not_retried = History("kmip-go")  # a timeout is not retried
    not_retried.op(0.0, ("kms-a", "timeout", 0.01), ("kms-a", "ok", 0.01))
    assert not_retried.order()[0] == "fail"


def test_at_start_tries_only_the_server_it_chose_until_restarted() -> None:
    h = History("mongodb")
    h.op(0.0, ("kms-a", "ok", 0.01))
    h.op(1.0, ("kms-a", "refused", 0.01))  # kms-a down: no failover
    h.restart(1.5)
    h.op(2.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))  # restarted: walks
    h.op(3.0, ("kms-b", "ok", 0.01))
    assert h.order() == ("pass", [])
    bad = History("mongodb")
    bad.op(0.0, ("kms-a", "ok", 0.01))
    bad.op(1.0, ("kms-a", "refused", 0.01), ("kms-b", "ok", 0.01))  # no restart
    status, details = bad.order()
    assert status == "fail" and "chose kms-a at start" in details[0]


def test_an_at_start_client_that_is_not_restarted_is_a_finding_that_says_so() -> None:
    h = History("mongodb")
    for i in range(5):
        h.op(i * 0.1, ("kms-a", "ok", 0.01))
    h.fault("kill", "kms-a", 1.0, 3.0)
    for i in range(5):
        h.op(1.1 + i * 0.1, ("kms-a", "refused", 0.01))
    v = check_failover(
        h.events,
        response_timeout=1.0,
        connect_timeout=0.5,
        orders={"c": ORDER},
        policies={"c": POLICIES["mongodb"]},
    )
    assert v.status == "fail"
    assert "chooses its server only when it starts" in v.summary
    assert "5 of 5 ops failed" in v.summary


def test_failover_bound_comes_from_the_clients_own_timeouts() -> None:
    # a policy with a 2 s response timeout of its own under a stall: the bound is ~2 s,
    # not the topology's 1 s
    spec = adjusted(POLICIES["vcenter"], response_timeout_s=2.0)
    h = History("vcenter")
    for i in range(5):
        h.op(i * 0.1, ("kms-a", "ok", 0.01))
    h.fault("stall", "kms-a", 1.0, 5.0)
    h.op(1.1, ("kms-a", "timeout", 2.0), ("kms-b", "ok", 0.01))
    v = check_failover(
        h.events,
        response_timeout=1.0,
        connect_timeout=0.5,
        orders={"c": ORDER},
        policies={"c": spec},
        client_timeouts={"c": (0.5, 2.0)},
    )
    assert v.status == "pass", v.summary
    fig = v.figures["f1"]["clients"]["c"]
    assert fig["expected_wait_s"] == 2.0
    short = check_failover(h.events, response_timeout=1.0, connect_timeout=0.5, orders={"c": ORDER})
    assert short.status == "fail"  # judged with the topology's 1 s it is too slow


def test_an_open_connection_under_unreachable_costs_a_response_timeout() -> None:
    # a sticky client's request on its open connection to a replica whose packets are
    # dropped waits out its response timeout, not a connect timeout
    h = History("retrying")
    for i in range(5):
        h.op(i * 0.1, ("kms-a", "ok", 0.01, True))
    h.fault("unreachable", "kms-a", 1.0, 9.0)
    h.op(
        1.1,
        ("kms-a", "timeout", 3.0, True),
        ("kms-a", "connect-timeout", 0.25),
        ("kms-b", "ok", 0.01),
    )
    v = check_failover(
        h.events,
        response_timeout=3.0,
        connect_timeout=0.25,
        orders={"c": ORDER},
        policies={"c": POLICIES["retrying"]},
        client_timeouts={"c": (0.25, 3.0)},
    )
    assert v.status == "pass", v.summary
    assert v.figures["f1"]["clients"]["c"]["expected_wait_s"] == 3.25


def _in_flight_history(first_try_at: float) -> History:
    """A retrying client: the request in flight on its open connection to kms-a when a
    stall begins (at 1.0 s) times out, it walks on to kms-b; kms-a is then avoided, so
    no later op tries it."""
    h = History("retrying")
    for i in range(5):
        h.op(i * 0.1, ("kms-a", "ok", 0.01, True))
    h.fault("stall", "kms-a", 1.0, 9.0)
    end = first_try_at + 3.0
    h.events.append(
        Complete(
            "c#0:99",
            "c",
            "retrying",
            "get",
            T0 + 0.95,
            T0 + end + 0.01,
            "ok",
            "kms-b",
            None,
            [
                Attempt("kms-a", "kms-a", T0 + first_try_at, T0 + end, "timeout", "", True),
                Attempt("kms-b", "kms-b", T0 + end, T0 + end + 0.01, "ok", "", False),
            ],
        )
    )
    for i in range(3):
        h.op(4.2 + i * 0.1, ("kms-b", "ok", 0.01, True))
    return h


def _judge_retrying(h: History) -> tuple[str, dict[str, object]]:
    v = check_failover(
        h.events,
        response_timeout=3.0,
        connect_timeout=0.25,
        orders={"c": ORDER},
        policies={"c": POLICIES["retrying"]},
        client_timeouts={"c": (0.25, 3.0)},
    )
    return v.status, v.figures["f1"]["clients"]["c"]


def test_the_op_in_flight_is_judged_when_no_later_op_meets_the_fault() -> None:
    status, fig = _judge_retrying(_in_flight_history(first_try_at=1.05))
    assert status == "pass", fig
    assert fig["carried"]
    assert fig["failover_s"] == 3.01  # from its first failed attempt, not from the op's start
    assert fig["expected_wait_s"] == 3.0


def test_an_op_in_flight_that_failed_before_the_fault_is_not_a_failover() -> None:
    # its attempt on kms-a began before the fault: nothing in the window met the fault
    status, fig = _judge_retrying(_in_flight_history(first_try_at=0.96))
    assert status == "unknown", fig
    assert fig["status"] == "not-exercised"


def test_an_operators_operation_is_no_client_walking_its_list() -> None:
    h = History("vcenter")
    h.op(0.0, ("kms-a", "ok", 0.01))
    h.events.append(
        Complete(
            "admin#0:1",
            "admin",
            "admin",
            "revoke",
            T0 + 0.5,
            T0 + 0.51,
            "ok",
            "kms-c",
            "k",
            [Attempt("kms-c", "kms-c", T0 + 0.5, T0 + 0.51, "ok", "", False, sent=True)],
        )
    )
    assert h.order() == ("pass", [])


def test_an_op_that_met_the_fault_while_it_was_being_applied_is_judged() -> None:
    # refuse: the harness began applying it at 0.9 s, the window opened at 1.0 s; the op
    # in flight met the closed connection at 0.95 s and was served by kms-b; later ops
    # skip kms-a
    h = History("retrying")
    for i in range(5):
        h.op(i * 0.1, ("kms-a", "ok", 0.01, True))
    params = {"replicas": ["kms-a"], "injecting_from": T0 + 0.9}
    h.events.append(FaultEvent("f1", "inject", "refuse", "kms-a", T0 + 1.0, params))
    h.events.append(FaultEvent("f1", "heal", "refuse", "kms-a", T0 + 5.0, params))
    h.events.append(
        Complete(
            "c#0:99",
            "c",
            "retrying",
            "get",
            T0 + 0.94,
            T0 + 0.97,
            "ok",
            "kms-b",
            None,
            [
                Attempt("kms-a", "kms-a", T0 + 0.95, T0 + 0.951, "eof", "", True, sent=True),
                Attempt("kms-a", "kms-a", T0 + 0.951, T0 + 0.952, "refused", "", False),
                Attempt("kms-b", "kms-b", T0 + 0.952, T0 + 0.97, "ok", "", False, sent=True),
            ],
        )
    )
    for i in range(3):
        h.op(1.2 + i * 0.1, ("kms-b", "ok", 0.01, True))
    status, fig = _judge_retrying(h)
    assert status == "pass", fig
    assert fig["carried"] and fig["failover_s"] == 0.02
