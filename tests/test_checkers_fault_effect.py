"""The fault_effect checker on hand-built histories: every fault window is judged by the
observation its fault recorded — seen, not seen (fail, naming the probe and what came
back), or not known."""

from __future__ import annotations

import json

from harness.checkers import CHECKERS, CheckContext
from harness.checkers.fault_effect import check_fault_effect
from harness.history import Event, FaultEvent, History, Observation
from harness.topology import parse_topology

T0 = 1000.0
BLACKHOLE_SEEN = (
    "a TLS handshake through vc-a->kms-a (127.0.3.1:40001) got no answer within 300 ms, "
    "while kms-a's direct address (127.0.3.101:40002) answered in 3 ms"
)
BLACKHOLE_UNSEEN = "a TLS handshake through vc-a->kms-a (127.0.3.1:40001) answered in 4 ms"


def window(fid: str, kind: str, target: str, start: float, end: float | None) -> list[Event]:
    out: list[Event] = [FaultEvent(fid, "inject", kind, target, T0 + start, {"replicas": [target]})]
    if end is not None:
        out.append(FaultEvent(fid, "heal", kind, target, T0 + end))
    return out


def seen(fid: str, kind: str, target: str, t: float, effect: bool | None, detail: str) -> Event:
    return Observation(fid, kind, target, T0 + t, effect, detail)


def test_a_fault_whose_effect_was_seen_passes_and_says_what_was_seen() -> None:
    events = [
        *window("bh-1", "blackhole", "kms-a", 1.0, 5.0),
        seen("bh-1", "blackhole", "kms-a", 1.31, True, BLACKHOLE_SEEN),
    ]
    v = check_fault_effect(events)
    assert v.status == "pass", v.summary
    assert v.summary == f"blackhole on kms-a seen: {BLACKHOLE_SEEN}"
    fig = v.figures["faults"]["bh-1"]
    assert (fig["status"], fig["effect"], fig["observed_after_s"]) == ("pass", True, 0.31)
    assert (v.figures["seen"], v.figures["no_effect"], v.figures["unobserved"]) == (1, 0, 0)
    json.dumps(v.to_dict())  # figures are JSON


def test_a_fault_without_effect_fails_naming_the_fault_the_probe_and_the_answer() -> None:
    events = [
        *window("bh-1", "blackhole", "kms-a", 1.0, 5.0),
        seen("bh-1", "blackhole", "kms-a", 1.02, False, BLACKHOLE_UNSEEN),
    ]
    v = check_fault_effect(events)
    assert v.status == "fail"
    assert v.summary == f"blackhole on kms-a had no effect: {BLACKHOLE_UNSEEN}"
    assert v.details == [f"bh-1: blackhole on kms-a had no effect: {BLACKHOLE_UNSEEN}"]
    assert v.figures["no_effect"] == 1


def test_one_fault_without_effect_among_several_fails_and_is_listed_first() -> None:
    events = [
        *window("r-1", "refuse", "kms-a", 1.0, 2.0),
        seen("r-1", "refuse", "kms-a", 1.01, True, "a TCP connect to vc-a->kms-a was refused"),
        *window("s-1", "stall", "kms-b", 3.0, 4.0),
        seen("s-1", "stall", "kms-b", 3.01, False, "kms-b is running: its processes: pid 7 (S)"),
        *window("k-1", "kill", "kms-c", 5.0, 6.0),
        seen("k-1", "kill", "kms-c", 5.01, False, "kms-c is still running: pid 9 (S)"),
    ]
    v = check_fault_effect(events)
    assert v.status == "fail"
    assert v.summary == (
        "stall on kms-b had no effect: kms-b is running: its processes: pid 7 (S) (and 1 more)"
    )
    assert [d.split(":")[0] for d in v.details] == ["s-1", "k-1", "r-1"]
    assert (v.figures["seen"], v.figures["no_effect"]) == (1, 2)


def test_a_fault_never_observed_is_unknown_not_pass() -> None:
    events = [
        *window("r-1", "refuse", "kms-a", 1.0, 2.0),
        seen("r-1", "refuse", "kms-a", 1.01, True, "refused"),
        *window("x-1", "refuse", "kms-b", 3.0, None),  # never healed, never observed
    ]
    v = check_fault_effect(events)
    assert v.status == "unknown"
    assert v.summary == "refuse on kms-b: its effect was never observed"
    assert v.figures["faults"]["x-1"]["effect"] is None
    assert v.figures["unobserved"] == 1


def test_a_probe_that_could_not_tell_is_unknown_with_its_reason() -> None:
    why = "1689 bytes of a handshake at 100000 KB/s take 0 ms: too little to tell from noise"
    events = [
        *window("b-1", "bandwidth", "kms-a", 1.0, 2.0),
        seen("b-1", "bandwidth", "kms-a", 1.01, None, why),
    ]
    v = check_fault_effect(events)
    assert v.status == "unknown"
    assert v.summary == f"bandwidth on kms-a: could not tell whether it had an effect: {why}"


def test_the_last_observation_of_a_fault_counts_and_strays_are_ignored() -> None:
    events = [
        *window("f-1", "flap", "kms-a", 1.0, 9.0),
        seen("f-1", "flap", "kms-a", 1.1, False, "connected (an up phase)"),
        seen("f-1", "flap", "kms-a", 1.5, True, "a TCP connect to vc-a->kms-a was refused"),
        seen("ghost", "refuse", "kms-z", 2.0, False, "an observation of no fault here"),
    ]
    v = check_fault_effect(events)
    assert v.status == "pass", v.summary
    assert list(v.figures["faults"]) == ["f-1"]


def test_a_history_without_faults_is_unknown_and_several_seen_faults_pass() -> None:
    assert check_fault_effect([]).status == "unknown"
    events = [
        *window("a", "refuse", "kms-a", 1.0, 2.0),
        seen("a", "refuse", "kms-a", 1.01, True, "refused"),
        *window("b", "refuse", "kms-b", 3.0, 4.0),
        seen("b", "refuse", "kms-b", 3.01, True, "refused"),
    ]
    v = check_fault_effect(events)
    assert (v.status, v.summary) == ("pass", "the effect of all 2 faults was seen")


def test_the_checker_is_registered_reads_a_context_and_a_saved_history(tmp_path) -> None:  # noqa: ANN001
    topo = parse_topology("sites: {s: {replicas: [kms-a]}}\nclients: {vc-a: {site: s}}\n", "t")
    h = History(tmp_path / "history.jsonl")
    h.extend(
        [
            *window("bh-1", "blackhole", "kms-a", 1.0, 5.0),
            seen("bh-1", "blackhole", "kms-a", 1.02, False, BLACKHOLE_UNSEEN),
        ]
    )
    h.close()
    checker = CHECKERS["fault_effect"]
    assert not checker.judges_operations and not checker.needs_audit
    v = checker.check(CheckContext.of(History.load(tmp_path / "history.jsonl"), topo))
    assert v.status == "fail" and "had no effect" in v.summary
    d = v.to_dict()
    assert checker.headline(d) == "1 of 1 faults without effect"
    assert checker.brief(d) == " 0/1"
