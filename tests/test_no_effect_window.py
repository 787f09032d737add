"""A fault without effect ends its scenario fast, and with verdicts.

The fault's mechanism is neutralised by a test-only patch (`Blackhole.toxics` returns
nothing: the clients never leave kms-a). Before, the scenario waited out its failover
deadline (tens of seconds) and wrote ``verdicts: {}``. Now the window stops as soon as
the evidence is clear — the fault's own observation, or the clients still served by
kms-a — and the checkers run before the `ScenarioError`: outcome.json carries
`fault_effect: fail` and `failover: fail` naming the cause, and so does the error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.cluster.base import Cluster
from harness.faults.blackhole import Blackhole
from harness.faults.partition import LinkCut
from harness.history import History
from harness.scenario import Scenario, ScenarioError
from harness.store import ScenarioFolder
from harness.topology import Topology

pytestmark = [pytest.mark.integration, pytest.mark.kms_topology("one-site.yaml")]

# the whole window, baseline included; the wait it replaces is op_deadline(2) ≈ 36 s
# at time scale 0.05 (measured: 1.0–1.5 s on 2 cores)
FAST_S = 6.0


def _run(
    cluster: Cluster, topology: Topology, history: History, folder: Path, **kw: object
) -> tuple[str, dict[str, dict[str, object]], float]:
    """The window's error, outcome.json's verdicts, and the seconds it took."""
    sc = Scenario("no-effect", cluster, topology, history, folder)
    t0 = time.monotonic()
    try:
        with pytest.raises(ScenarioError) as e:
            sc.fault_window("blackhole", "kms-a", failovers=2, **kw)  # type: ignore[arg-type]
        took = time.monotonic() - t0
    finally:
        sc.close()
    outcome = json.loads(ScenarioFolder(folder).outcome.read_text())
    print(f"ended in {took:.2f} s:\n{e.value}")
    return str(e.value), outcome["verdicts"], took


@pytest.mark.kms_needs("blackhole")
def test_a_blackhole_that_swallows_nothing_ends_fast_by_its_observation(
    kms_cluster: Cluster,
    kms_topology: Topology,
    kms_history: History,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Blackhole, "toxics", lambda self: [])
    error, verdicts, took = _run(kms_cluster, kms_topology, kms_history, tmp_path / "report")
    assert took < FAST_S, f"the no-effect window took {took:.1f} s"
    effect, failover = verdicts["fault_effect"], verdicts["failover"]
    assert effect["status"] == "fail"
    assert str(effect["summary"]).startswith(
        "blackhole on kms-a had no effect: a TLS handshake through vc-a->kms-a"
    )
    assert "answered in" in str(effect["summary"])
    assert failover["status"] == "fail"
    assert "still served by kms-a" in str(failover["summary"])
    assert "fault not applied?" in str(failover["summary"])
    assert {"order", "availability"} <= set(verdicts)
    # the error says why, then the failing verdicts, then the last operations
    first = error.splitlines()[0]
    assert first.startswith("blackhole on kms-a had no effect: a TLS handshake"), first
    assert "stopped waiting" in first
    failing = error.split("failing verdicts:\n")[1].splitlines()
    assert failing[0].startswith("  fault_effect: fail: blackhole on kms-a had no effect")
    assert failing[1].startswith("  failover: fail: vc-a never reached another replica")


@pytest.mark.kms_needs("blackhole")
def test_clients_still_served_by_the_faulted_replica_end_the_window_fast(
    kms_cluster: Cluster,
    kms_topology: Topology,
    kms_history: History,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the probe cannot tell either: only the clients' evidence is left
    monkeypatch.setattr(Blackhole, "toxics", lambda self: [])
    monkeypatch.setattr(Blackhole, "observe", lambda self: (None, "probe disabled by the test"))
    error, verdicts, took = _run(kms_cluster, kms_topology, kms_history, tmp_path / "report")
    assert took < FAST_S, f"the no-effect window took {took:.1f} s"
    first = error.splitlines()[0]
    assert first.startswith("blackhole on kms-a: no effect seen by the clients"), first
    assert "vc-a still served by kms-a at least 3 times each without one failed attempt" in first
    assert verdicts["fault_effect"]["status"] == "unknown"
    assert verdicts["failover"]["status"] == "fail"
    assert "fault not applied?" in str(verdicts["failover"]["summary"])


@pytest.mark.kms_needs("partition")
def test_a_partition_that_cuts_nothing_ends_reads_and_writes_during_fast(
    kms_cluster: Cluster,
    kms_topology: Topology,
    kms_history: History,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LinkCut, "_inject", lambda self: None)
    folder = tmp_path / "report"
    sc = Scenario("no-effect", kms_cluster, kms_topology, kms_history, folder)
    t0 = time.monotonic()
    try:
        with pytest.raises(ScenarioError) as e:
            sc.reads_and_writes_during("partition", "kms-a kms-b,kms-c", ["vc-a"], per_op=2)
        took = time.monotonic() - t0
    finally:
        sc.close()
    verdicts = json.loads(ScenarioFolder(folder).outcome.read_text())["verdicts"]
    print(f"ended in {took:.2f} s:\n{e.value}")
    assert took < FAST_S
    assert str(e.value).startswith("partition on kms-a kms-b,kms-c had no effect: a TCP connect")
    assert verdicts["fault_effect"]["status"] == "fail"
    assert {"order", "availability", "site_availability"} <= set(verdicts)


@pytest.mark.kms_needs("refuse")
def test_a_scenario_that_injected_a_fault_is_judged_by_fault_effect_whatever_it_includes(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.faults.refuse import Refuse

    monkeypatch.setattr(Refuse, "_inject", lambda self: None)  # the links stay up
    client = kms_scenario.client("vc-a")
    with kms_scenario.fault("refuse", "kms-a"):
        assert client.locate().served_by == "kms-a"
    verdicts = kms_scenario.check(include=("order",))
    assert set(verdicts) == {"order", "fault_effect"}
    with pytest.raises(ScenarioError) as e:
        kms_scenario.expect(order="pass")  # fault_effect is expected to pass unless said
    assert str(e.value).startswith("fault_effect: expected pass, got fail: refuse on kms-a had")
    kms_scenario.expect(order="pass", fault_effect="fail")  # said: a finding, not an error
