"""The slowdown checker on hand-built histories: a slowing fault slowed what it should,
by what it declares, and nobody failed over because of it."""

from __future__ import annotations

from harness.checkers.slowdown import check_slowdown
from harness.history import Attempt, Complete, Event, FaultEvent
from harness.topology import parse_topology

TOPO = parse_topology(
    """
sites:
  site-a: {replicas: [kms-a, kms-b]}
  site-b: {replicas: [kms-c]}
clients:
  vc-a: {site: site-a}
  vc-c: {site: site-b, order: [kms-c, kms-a]}
""",
    "t.yaml",
).with_time_scale(0.05)  # response timeout 3 s

T0 = 1000.0


def op(i: int, client: str, start: float, took: float, *servers: str) -> Complete:
    """An ok op: failed timeouts on every server but the last, which answered."""
    attempts, t = [], start
    for s in servers[:-1]:
        attempts.append(Attempt(s, "h:1", t, t + 0.01, "timeout"))
        t += 0.01
    attempts.append(Attempt(servers[-1], "h:2", t, start + took, "ok"))
    return Complete(
        f"{client}#0:{i}", client, "vcenter", "locate", start, start + took, "ok", servers[-1],
        attempts=attempts,
    )  # fmt: skip


def window(kind: str, target: str, **params: object) -> list[Event]:
    return [
        FaultEvent("f1", "inject", kind, target, T0 + 1.0, {**params}),
        FaultEvent("f1", "heal", kind, target, T0 + 5.0),
    ]


def test_latency_that_slowed_every_affected_operation_passes() -> None:
    events = [
        *window("latency", "kms-a", ms=200, replicas=["kms-a"]),
        op(1, "vc-a", T0 + 1.1, 0.41, "kms-a"),
        op(2, "vc-a", T0 + 2.0, 0.21, "kms-a"),
        op(3, "vc-a", T0 + 6.0, 0.01, "kms-a"),  # after heal: fast is fine
    ]
    v = check_slowdown(events, TOPO)
    assert v.status == "pass", v.summary
    assert v.figures["f1"]["affected_ops"] == 2
    assert "all 2 affected operations took at least 0.195 s" in v.summary


def test_an_operation_faster_than_the_delay_means_the_delay_was_not_applied() -> None:
    events = [
        *window("latency", "kms-a", ms=200, replicas=["kms-a"]),
        op(1, "vc-a", T0 + 1.1, 0.41, "kms-a"),
        op(2, "vc-a", T0 + 2.0, 0.004, "kms-a"),
    ]
    v = check_slowdown(events, TOPO)
    assert v.status == "fail"
    assert "1 of 2 affected operations took less than 0.195 s (fastest 0.004 s)" in v.summary
    assert "the delay was not applied?" in v.summary
    assert any("vc-a#0:2" in d for d in v.details)


def test_jitter_lowers_the_bound() -> None:
    events = [
        *window("latency", "kms-a", ms=200, jitter=50, replicas=["kms-a"]),
        op(1, "vc-a", T0 + 1.1, 0.16, "kms-a"),
    ]
    assert check_slowdown(events, TOPO).status == "pass"


def test_failing_over_under_a_mere_slowdown_fails() -> None:
    events = [
        *window("latency", "kms-a", ms=100, replicas=["kms-a"]),
        op(1, "vc-a", T0 + 1.1, 0.2, "kms-a"),
        op(2, "vc-a", T0 + 2.0, 0.05, "kms-a", "kms-b"),
    ]
    v = check_slowdown(events, TOPO)
    assert v.status == "fail"
    assert "1 operation(s) failed over under a mere slowdown" in v.summary


def test_failing_over_is_fine_when_the_delay_is_near_the_timeout() -> None:
    events = [
        *window("latency", "kms-a", ms=2000, replicas=["kms-a"]),
        op(1, "vc-a", T0 + 1.1, 2.2, "kms-a"),
        op(2, "vc-a", T0 + 2.0, 3.05, "kms-a", "kms-b"),
    ]
    assert check_slowdown(events, TOPO).status == "pass"


def test_site_latency_slows_only_operations_across_the_groups() -> None:
    groups = [["kms-a", "kms-b"], ["kms-c"]]
    events = [
        *window("site-latency", "site-a site-b", ms=150, groups=groups, replicas=[]),
        op(1, "vc-a", T0 + 1.1, 0.01, "kms-a"),  # local: untouched
        op(2, "vc-c", T0 + 1.2, 0.01, "kms-c"),  # local: untouched
        op(3, "vc-c", T0 + 1.3, 0.31, "kms-c", "kms-a"),  # across, after kms-c failed
    ]
    v = check_slowdown(events, TOPO)
    assert v.figures["f1"]["affected_ops"] == 1
    assert v.status == "pass", v.summary
    fast_across = [*events[:2], op(4, "vc-c", T0 + 1.4, 0.02, "kms-a")]
    v = check_slowdown(fast_across, TOPO)
    assert v.status == "fail" and "took less than 0.145 s" in v.summary


def test_nothing_to_judge_is_unknown() -> None:
    assert check_slowdown([], TOPO).status == "unknown"
    blackhole = [*window("blackhole", "kms-a", replicas=["kms-a"])]
    assert check_slowdown(blackhole, TOPO).status == "unknown"
    idle = [*window("latency", "kms-a", ms=100, replicas=["kms-a"])]
    v = check_slowdown(idle, TOPO)
    assert v.status == "unknown" and v.figures["f1"]["note"].startswith("no operation")
