"""The suite sabotages its own harness: one mechanism broken at a time, with a test-only
patch (nothing in the product), and a verdict must fail and name the cause — not a wait
timing out, not a hand-written assert in a scenario.

Each test says what it breaks and which verdict catches it. Patches of the harness's own
process use `monkeypatch`; patches of the replica program (which runs in processes of
its own) go in through a ``sitecustomize.py`` on the replicas' PYTHONPATH (`in_replicas`),
so they exist only for the cluster of that test. `SABOTAGES` lists them all; the README's
count comes from it.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.client.policies import POLICIES
from harness.client.policy_spec import adjusted
from harness.client.walker import WalkingPolicy
from harness.faults.blackhole import Blackhole
from harness.faults.latency import Latency
from harness.faults.stall import Stall
from harness.history import Complete
from harness.rehearsal import RehearsalFailure, parse_rehearsal, run_rehearsal
from harness.scenario import Scenario, ScenarioError
from harness.toolchain import repo_root

pytestmark = pytest.mark.integration

TOPOLOGIES = Path(__file__).resolve().parent / "topologies"
REHEARSALS = repo_root() / "scenarios" / "rehearsals"


@pytest.fixture
def in_replicas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Patch the replica program: `code` runs in every replica process of this test's
    cluster before the program starts (request this fixture before `kms_scenario`)."""

    def apply(code: str) -> None:
        folder = tmp_path / "sabotage"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(textwrap.dedent(code))
        path = os.environ.get("PYTHONPATH", "")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), path) if p))

    return apply


@pytest.fixture
def timed() -> Iterator[dict[str, float]]:
    """How long the sabotaged run took until its verdict (printed with -s, and in the
    test's JUnit properties through the returned dict)."""
    box = {"t0": time.monotonic()}
    yield box
    box["took_s"] = time.monotonic() - box["t0"]


def _failed(sc: Scenario, name: str, *fragments: str) -> str:
    """The named verdict failed and its summary or evidence names every fragment."""
    v = sc.outcome.verdicts[name]
    text = " ".join([v.summary, *v.details])
    assert v.status == "fail", f"{name} {v.status}: {v.summary}"
    for f in fragments:
        assert f in text, f"{name} does not name {f!r}: {v.summary}"
    return v.summary


# ---- the client policy --------------------------------------------------------------------


@pytest.mark.kms_topology("one-site.yaml")
def test_vcenter_walking_its_list_backwards_is_caught_by_order(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float]
) -> None:
    original = WalkingPolicy.__init__

    def backwards(self: WalkingPolicy, endpoints: list[Any], *args: Any, **kw: Any) -> None:
        original(self, list(reversed(endpoints)), *args, **kw)

    monkeypatch.setattr(WalkingPolicy, "__init__", backwards)
    client = kms_scenario.client("vc-a")
    for _ in range(3):
        assert client.locate().outcome == "ok"
    kms_scenario.check(include=("order",))
    _failed(kms_scenario, "order", "kms-c")


@pytest.mark.kms_topology("one-site.yaml")
@pytest.mark.kms_needs("blackhole")
def test_vcenter_giving_up_after_its_first_server_is_caught_by_failover_fast(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float]
) -> None:
    original = WalkingPolicy.execute

    def gives_up(self: WalkingPolicy, op: str, key: str | None) -> Any:
        every = self.endpoints
        self.endpoints = every[:1]  # sabotage: no next server after the first fails
        try:
            return original(self, op, key)
        finally:
            self.endpoints = every

    monkeypatch.setattr(WalkingPolicy, "execute", gives_up)
    t0 = time.monotonic()
    with pytest.raises(ScenarioError, match="vc-a does not fail over") as e:
        kms_scenario.fault_window("blackhole", "kms-a", failovers=2)
    took = time.monotonic() - t0
    summary = _failed(kms_scenario, "failover", "never reached another replica")
    assert "failover" in str(e.value) and summary in str(e.value)
    # three failed operations of one response timeout each, not the window's deadline
    rt = kms_scenario.topology.response_timeout
    assert took < kms_scenario.op_deadline(2), f"{took:.1f} s: the window waited it out"
    timed["to_verdict_s"] = took
    assert took < 6 * rt + 5, f"{took:.1f} s to a verdict"


@pytest.mark.kms_topology("one-site.yaml")
@pytest.mark.kms_needs("refuse")
def test_a_skip_window_the_walker_ignores_is_caught_by_order(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float]
) -> None:
    original = WalkingPolicy.__init__

    def no_skip(self: WalkingPolicy, *args: Any, **kw: Any) -> None:
        original(self, *args, **kw)
        self.skip_s = 0.0  # sabotage: a server that just failed is dialled again

    monkeypatch.setattr(WalkingPolicy, "__init__", no_skip)
    # a connection per operation, so every operation walks the list
    client = kms_scenario.client("vc-a", adjusted(POLICIES["vcenter"], skip_failed_s=60.0))
    with kms_scenario.fault("refuse", "kms-a"):
        for _ in range(3):
            assert client.locate().served_by == "kms-b"
    client.close()
    kms_scenario.check(include=("order",))
    _failed(kms_scenario, "order", "failed to connect", "skips such a server")


@pytest.mark.kms_topology("one-site.yaml")
@pytest.mark.kms_needs("refuse")
def test_an_at_start_client_that_walks_on_is_caught_by_order(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float]
) -> None:
    original = WalkingPolicy.execute

    def walks_on(self: WalkingPolicy, op: str, key: str | None) -> Any:
        self._chosen = None  # sabotage: MongoDB chooses again at every operation
        return original(self, op, key)

    monkeypatch.setattr(WalkingPolicy, "execute", walks_on)
    client = kms_scenario.client("vc-a", "mongodb")
    assert client.locate().served_by == "kms-a"
    with kms_scenario.fault("refuse", "kms-a"):
        assert client.locate().served_by == "kms-b"
    kms_scenario.check(include=("order",))
    _failed(kms_scenario, "order", "chose kms-a at start")


@pytest.mark.kms_topology("one-site.yaml")
@pytest.mark.kms_needs("stall")
def test_a_stall_that_resumes_instead_is_caught_by_fault_effect_fast(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float]
) -> None:
    monkeypatch.setattr(
        Stall, "_inject", lambda self: self.cluster._signal(self.target, signal.SIGCONT)
    )
    t0 = time.monotonic()
    with pytest.raises(ScenarioError, match="stall on kms-a had no effect"):
        kms_scenario.fault_window("stall", "kms-a", failovers=2)
    timed["to_verdict_s"] = time.monotonic() - t0
    _failed(kms_scenario, "fault_effect", "stall", "kms-a")
    _failed(kms_scenario, "failover", "still served by kms-a")
    assert time.monotonic() - t0 < 10, "the window waited it out"


# ---- the fault mechanisms -----------------------------------------------------------------


@pytest.mark.kms_topology("one-site.yaml")
@pytest.mark.kms_needs("latency")
def test_a_latency_toxic_of_0_ms_is_caught_by_slowdown(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float]
) -> None:
    monkeypatch.setattr(
        Latency, "toxics", lambda self: [("latency", "downstream", {"latency": 0, "jitter": 0})]
    )
    kms_scenario.fault_window("latency", "kms-a", ms=100, expect_served=False, failovers=5)
    kms_scenario.check(include=("slowdown",))
    _failed(kms_scenario, "slowdown", "latency kms-a (+100 ms)", "the delay was not applied?")


@pytest.mark.kms_topology("one-site.yaml")
@pytest.mark.kms_needs("blackhole")
def test_a_rehearsal_whose_fault_had_no_effect_fails_naming_it(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Blackhole, "toxics", lambda self: [])  # sabotage: swallows nothing
    r = parse_rehearsal(
        "topology: one-site.yaml\nworkload: {clients: [vc-a]}\n"
        "steps:\n  - wait: 0.3s\n  - inject: {fault: blackhole, target: kms-a}\n"
        "  - wait: 0.3s\n  - heal: all\n",
        "r.yaml",
        base_dir=REHEARSALS,
    )
    with pytest.raises(RehearsalFailure, match="fault_effect: expected pass, got fail: blackhole"):
        run_rehearsal(r, kms_scenario, seed=1)
    effect = kms_scenario.outcome.verdicts["fault_effect"]
    assert kms_scenario.outcome.regressions() == [
        f"fault_effect: expected pass, got fail: {effect.summary}"
    ]


# ---- replication --------------------------------------------------------------------------

NEVER_PUSHES = """
    import harness.replica.replication as replication
    replication.Agent.loop = lambda self: self.stop.wait()  # sabotage: the agent never pushes
"""

ACKS_BEFORE_COPYING = """
    import harness.replica.replication as replication

    def primary_write(self, request, credential):  # sabotage: answer, leave the copy to
        result = self._process(request, credential)  # the background push
        return result, [self.agent.name]

    replication.WriteGate._primary_write = primary_write
"""


@pytest.mark.kms_topology("two-sites-async.yaml")
@pytest.mark.kms_needs("wipe")
def test_an_async_agent_that_never_pushes_is_caught_by_durability_and_convergence(
    in_replicas: Callable[[str], None], request: pytest.FixtureRequest, timed: dict[str, float]
) -> None:
    in_replicas(NEVER_PUSHES)
    sc: Scenario = request.getfixturevalue("kms_scenario")
    made = [sc.client("vc-a").create() for _ in range(3)]  # on kms-a, wiped below
    other = [sc.client("vc-b").create() for _ in range(2)]  # on kms-d: never leave it
    assert all(c.outcome == "ok" for c in made + other)
    with sc.fault("wipe", "kms-a"):
        pass
    interval = float(sc.cluster.state.replication.get("interval_ms", 250)) / 1000
    sc.audit_until_converged(deadline_s=20 * interval)
    sc.check(include=("durability", "convergence"))
    _failed(sc, "durability", *(c.key or "" for c in made))
    _failed(sc, "convergence", "kms-d")


@pytest.mark.kms_topology(str(TOPOLOGIES / "sync-quiet-background.yaml"))
def test_sync_acknowledging_before_copying_is_caught_by_durability(
    in_replicas: Callable[[str], None], request: pytest.FixtureRequest, timed: dict[str, float]
) -> None:
    in_replicas(ACKS_BEFORE_COPYING)
    sc: Scenario = request.getfixturevalue("kms_scenario")
    client = sc.client("vc-a")
    made: list[Complete] = [client.create() for _ in range(3)]
    assert all(c.outcome == "ok" and c.served_by == "kms-a" for c in made)
    for c in made:
        assert client.get(c.key or "").outcome == "ok"
    # one audit round at once: a write `sync` acknowledged is on every replica already
    sc.audit_until_converged(deadline_s=0.0)
    sc.check(include=("durability",))
    _failed(sc, "durability", *(c.key or "" for c in made[:1]))


def test_the_sync_topology_without_sabotage_keeps_every_write_on_every_replica(
    request: pytest.FixtureRequest,
) -> None:
    """The control: the same run, unsabotaged, passes (so the test above judges the
    sabotage, not the set-up)."""
    request.node.add_marker(
        pytest.mark.kms_topology(str(TOPOLOGIES / "sync-quiet-background.yaml"))
    )
    sc: Scenario = request.getfixturevalue("kms_scenario")
    client = sc.client("vc-a")
    made = [client.create() for _ in range(3)]
    assert all(c.outcome == "ok" for c in made)
    for c in made:
        assert client.get(c.key or "").outcome == "ok"
    sc.audit_until_converged(deadline_s=0.0)
    sc.check(include=("durability",))
    assert sc.outcome.verdicts["durability"].status == "pass", sc.outcome.verdicts["durability"]


# ---- every sabotage, and the verdict that catches it --------------------------------------

# (what is broken, the verdict that says so, the test that breaks it). Each fault is also
# broken once in tests/test_fault_effect.py (`ONE_SITE`, `TWO_SITES`): fault_effect.
HARNESS_SABOTAGES = [
    (
        "blackhole adds no toxic",
        "fault_effect, failover",
        "test_no_effect_window.py::test_a_blackhole_that_swallows_nothing_ends_fast_by_its_observation",
    ),
    (
        "a client dials a server inside its skip window",
        "order",
        "test_sabotage.py::test_a_skip_window_the_walker_ignores_is_caught_by_order",
    ),
    (
        "an at-start client chooses again at every operation",
        "order",
        "test_sabotage.py::test_an_at_start_client_that_walks_on_is_caught_by_order",
    ),
    (
        "stall sends SIGCONT",
        "fault_effect, failover",
        "test_sabotage.py::test_a_stall_that_resumes_instead_is_caught_by_fault_effect_fast",
    ),
    (
        "vcenter gives up after its first server",
        "failover",
        "test_sabotage.py::test_vcenter_giving_up_after_its_first_server_is_caught_by_failover_fast",
    ),
    (
        "vcenter walks its list backwards",
        "order",
        "test_sabotage.py::test_vcenter_walking_its_list_backwards_is_caught_by_order",
    ),
    (
        "a latency toxic of 0 ms",
        "slowdown",
        "test_sabotage.py::test_a_latency_toxic_of_0_ms_is_caught_by_slowdown",
    ),
    (
        "the async agent never pushes",
        "durability, convergence",
        "test_sabotage.py::test_an_async_agent_that_never_pushes_is_caught_by_durability_and_convergence",
    ),
    (
        "sync acknowledges before copying",
        "durability",
        "test_sabotage.py::test_sync_acknowledging_before_copying_is_caught_by_durability",
    ),
    (
        "a balancer's kmip check configured as a TCP connect",
        "lb_ejection",
        "test_lb_sabotage.py::test_a_kmip_check_configured_as_tcp_is_caught_by_lb_ejection",
    ),
    (
        "HAProxy ejecting after 9 failed checks where the topology says 3",
        "lb_ejection",
        "test_lb_sabotage.py::test_haproxy_failing_slower_than_configured_is_caught_by_lb_ejection",
    ),
    (
        "the auditor reads kms-a and labels it as every replica",
        "durability, convergence (unknown: who answered)",
        "test_identity.py::test_sabotaged_auditor_reading_kms_a_for_every_replica_gives_unknown_audit_verdicts",
    ),
]  # fmt: skip


def sabotage_count() -> int:
    from test_fault_effect import BALANCERS, ONE_SITE, TWO_SITES

    return len(HARNESS_SABOTAGES) + len(ONE_SITE) + len(TWO_SITES) + len(BALANCERS)


def test_every_sabotage_names_an_existing_test_and_the_readme_counts_them() -> None:
    here = Path(__file__).resolve().parent
    for what, verdict, node in HARNESS_SABOTAGES:
        file, _, name = node.partition("::")
        assert f"def {name}(" in (here / file).read_text(), f"{what}: no test {node}"
        assert verdict, what
    n = sabotage_count()
    readme = (here.parent / "README.md").read_text(encoding="utf-8")
    assert f"{n} of {n} sabotages" in readme, f"README.md should say '{n} of {n} sabotages'"
