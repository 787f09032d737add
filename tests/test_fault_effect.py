"""Every fault proves its effect, and a fault whose mechanism is broken is caught.

For each fault, on a real local cluster (one per module: one site for the replica and
link faults, two replicated sites for the site and replication faults): injected as
shipped, its own observation sees the effect (`effect=True`) and `fault_effect` passes;
injected with its mechanism broken by a test-only patch (nothing in the product), the
observation says what came back instead and `fault_effect` fails, naming the fault and
the probe. Each sabotage says what it breaks.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.backends import cluster_class
from harness.checkers.fault_effect import check_fault_effect
from harness.cluster.base import Cluster
from harness.cluster.local import LocalCluster
from harness.faults import FAULTS, Fault, make_fault
from harness.faults import flap as flap_module
from harness.faults.balancer import LbDown
from harness.faults.blackhole import Blackhole
from harness.faults.cert_expired import CertExpired
from harness.faults.cert_not_yet_valid import CertNotYetValid
from harness.faults.cert_untrusted import CertUntrusted
from harness.faults.cert_wrong_name import CertWrongName
from harness.faults.certificates import own_ca
from harness.faults.client_cert_rejected import ClientCertRejected
from harness.faults.clock_skew import ClockSkew
from harness.faults.idle_reap import IdleReap
from harness.faults.kill import Kill, Restart
from harness.faults.latency import Bandwidth, Latency
from harness.faults.lost_response import LostResponse
from harness.faults.partition import LinkCut
from harness.faults.refuse import Refuse
from harness.faults.replication_lag import ReplicationLag
from harness.faults.replication_pause import ReplicationPause
from harness.faults.reset import Reset
from harness.faults.site_latency import SiteLatency
from harness.faults.stall import Stall
from harness.faults.tls_stall import TlsStall
from harness.faults.unreachable import Unreachable
from harness.history import History
from harness.lb.local import LocalBalancers
from harness.toolchain import repo_root
from harness.topology import load_topology

pytestmark = pytest.mark.integration

TOPOLOGIES = repo_root() / "scenarios" / "topologies"
SCALE = 0.05
Patch = Callable[[pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Sabotage:
    """A fault as a test injects it, and how its mechanism is broken."""

    kind: str
    target: str
    breaks: str  # what the patch breaks, in words
    patch: Patch
    params: dict[str, Any] = field(default_factory=dict)
    said: str = ""  # what the no-effect detail must contain

    def __str__(self) -> str:
        return self.kind


def _noop(cls: type) -> Patch:
    return lambda mp: mp.setattr(cls, "_inject", lambda self: None)


def _toxics(cls: type, toxics: list[tuple[str, str, dict[str, Any]]]) -> Patch:
    return lambda mp: mp.setattr(cls, "toxics", lambda self: toxics)


def _sigcont(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(Stall, "_inject", lambda self: self.cluster._signal(self.target, signal.SIGCONT))


def _wrong_address(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(Unreachable, "_address", lambda self: f"{self.cluster.state.subnet}.250")


def _flapper_that_never_flaps(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(flap_module, "_cycle", lambda cluster, target, down, up, stop: stop.wait())
    mp.setattr(flap_module, "START_S", 0.2)


def _lb_sigcont(mp: pytest.MonkeyPatch) -> None:
    def pause(self: LocalBalancers, name: str) -> None:
        import os

        os.killpg(self.balancer(name).pid or 0, signal.SIGCONT)

    mp.setattr(LocalBalancers, "pause", pause)


def _wipe_that_deletes_nothing(mp: pytest.MonkeyPatch) -> None:
    def wipe(self: LocalCluster, name: str) -> None:
        self.kill_replica(name)
        self.start_replica(name)

    mp.setattr(LocalCluster, "wipe_replica", wipe)


def _valid_certificate(cls: type) -> Patch:
    """The fault's certificate issued as a good one: right CA, names, validity."""

    def issue(self: Any, stem: str, cn: str, ips: Any, dns: Any) -> Any:
        ca = own_ca(self.cluster.state.state_dir)
        return ca.issue(stem, cn, server=True, addresses=ips, dns_names=dns)

    return lambda mp: mp.setattr(cls, "_issue", issue)


def _trust_the_clients_ca(mp: pytest.MonkeyPatch) -> None:
    def inject(self: ClientCertRejected) -> None:
        ca = own_ca(self.cluster.state.state_dir)
        self.controls.set(ca=self.controls.install(ca.ca_path, "trusted-ca.pem"))

    mp.setattr(ClientCertRejected, "_inject", inject)


ZERO_LATENCY = [("latency", "downstream", {"latency": 0, "jitter": 0})]
ZERO_LAG = [("latency", "upstream", {"latency": 0, "jitter": 0})]

ONE_SITE = [
    Sabotage("refuse", "kms-a", "links left enabled", _noop(Refuse), said="connected in"),
    Sabotage("reset", "kms-a", "no reset_peer toxic", _toxics(Reset, []), said="answered in"),
    Sabotage("blackhole", "kms-a", "no timeout toxic", _toxics(Blackhole, []), said="answered in"),
    Sabotage("stall", "kms-a", "SIGCONT instead of SIGSTOP", _sigcont, said="is running"),
    Sabotage("kill", "kms-a", "nothing killed", _noop(Kill), said="is still running"),
    Sabotage("restart", "kms-a", "nothing restarted", _noop(Restart), said="the same process"),
    Sabotage(
        "unreachable",
        "kms-a",
        "the rule names a wrong address",
        _wrong_address,
        said="connected in",
    ),
    Sabotage(
        "latency",
        "kms-a",
        "a latency toxic of 0 ms",
        _toxics(Latency, ZERO_LATENCY),
        {"ms": 100},
        said="not 100 ms",
    ),
    Sabotage("bandwidth", "kms-a", "no bandwidth toxic", _toxics(Bandwidth, []), {"kbps": 64}),
    Sabotage(
        "flap",
        "kms-a",
        "a flapper that never takes the links down",
        _flapper_that_never_flaps,
        {"down_s": 0.2, "up_s": 0.2},
        said="connected in",
    ),
    Sabotage("isolate", "kms-b", "links left enabled", _noop(LinkCut), said="connected in"),
    Sabotage(
        "cert-expired",
        "kms-a",
        "a valid certificate issued",
        _valid_certificate(CertExpired),
        said="yet a client's handshake passed",
    ),
    Sabotage(
        "cert-not-yet-valid",
        "kms-a",
        "the certificate never swapped",
        _noop(CertNotYetValid),
        said="still serves",
    ),
    Sabotage(
        "cert-wrong-name",
        "kms-a",
        "a certificate for the right names",
        _valid_certificate(CertWrongName),
        said="yet a client's handshake passed",
    ),
    Sabotage(
        "cert-untrusted",
        "kms-a",
        "signed by the trusted CA",
        _valid_certificate(CertUntrusted),
        said="yet a client's handshake passed",
    ),
    Sabotage(
        "client-cert-rejected",
        "kms-a",
        "the clients' CA trusted again",
        _trust_the_clients_ca,
        said="handshake with kms-a passed",
    ),
    Sabotage("tls-stall", "kms-a", "handshakes left alone", _noop(TlsStall), said="answered in"),
    Sabotage(
        "idle-reap",
        "kms-a",
        "idle connections kept",
        _noop(IdleReap),
        {"after": 0.5},
        said="open",
    ),
    Sabotage(
        "lost-response",
        "kms-a",
        "responses left alone",
        _noop(LostResponse),
        {"count": 1},
        said="was answered in",
    ),
    Sabotage(
        "clock-skew",
        "kms-a",
        "the clock left alone",
        _noop(ClockSkew),
        {"offset": "-1h"},
        said="not -1h",
    ),
]
TWO_SITES = [
    Sabotage(
        "partition", "site-a site-b", "links left enabled", _noop(LinkCut), said="connected in"
    ),
    Sabotage("site-down", "site-b", "links left enabled", _noop(LinkCut), said="connected in"),
    Sabotage(
        "site-latency",
        "site-a site-b",
        "a latency toxic of 0 ms",
        _toxics(SiteLatency, ZERO_LATENCY),
        {"ms": 100},
        said="not 100 ms",
    ),
    Sabotage(
        "replication-lag",
        "kms-a",
        "a latency toxic of 0 ms",
        _toxics(ReplicationLag, ZERO_LAG),
        {"ms": 200},
        said="not 200 ms",
    ),
    Sabotage(
        "replication-pause",
        "kms-a",
        "no timeout toxic",
        _toxics(ReplicationPause, []),
        said="answered in",
    ),
    Sabotage(
        "wipe", "kms-f", "kill and start, delete nothing", _wipe_that_deletes_nothing,
        said="still the files it had before",
    ),
]  # fmt: skip


# the faults of a load balancer itself, on one with two replicas behind it
BALANCERS = [
    Sabotage("lb-down", "lb-a", "nothing killed", _noop(LbDown), said="is still running"),
    Sabotage("lb-stall", "lb-a", "SIGCONT instead of SIGSTOP", _lb_sigcont, said="is running"),
]


def test_every_fault_is_proven_and_sabotaged_here() -> None:
    assert sorted(s.kind for s in ONE_SITE + TWO_SITES + BALANCERS) == sorted(FAULTS)
    for kind, cls in FAULTS.items():
        assert cls.proof, f"{kind} does not say how its effect is seen"
        assert cls.observe is not Fault.observe, f"{kind} does not observe its effect"


def _cluster(topology: str, folder: Path) -> Iterator[Cluster]:
    topo = load_topology(TOPOLOGIES / topology).with_time_scale(SCALE)
    with cluster_class("local").create(topo, folder / "cluster") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def one_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster("one-site.yaml", tmp_path_factory.mktemp("one-site"))


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster("two-sites-async.yaml", tmp_path_factory.mktemp("two-sites"))


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster("one-site-balancer-idle.yaml", tmp_path_factory.mktemp("balancer"))


def _inject(cluster: Cluster, s: Sabotage) -> tuple[History, Any, float]:
    """Inject, observe, heal: the history, the observation, inject's seconds."""
    reason = FAULTS[s.kind].unsupported_reason(cluster)
    if reason:
        pytest.skip(reason)
    h = History()
    f = make_fault(s.kind, cluster, s.target, h, **s.params)
    t0 = time.monotonic()
    f.inject()
    took = time.monotonic() - t0
    try:
        assert f.observation is not None
        return h, f.observation, took
    finally:
        f.heal()


def _proven(cluster: Cluster, s: Sabotage) -> None:
    h, obs, took = _inject(cluster, s)
    assert obs.effect is True, f"{s.kind} on {s.target}: {obs.detail}"
    v = check_fault_effect(h)
    assert v.status == "pass", v.summary
    assert v.summary.startswith(f"{s.kind} on {s.target} seen: ")
    print(f"{s.kind}: inject + observe {took:.3f} s: {obs.detail}")


def _caught(cluster: Cluster, s: Sabotage, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as mp:
        s.patch(mp)
        h, obs, took = _inject(cluster, s)
    assert obs.effect is False, f"{s.kind} sabotaged ({s.breaks}): {obs.effect} {obs.detail}"
    assert s.said in obs.detail, obs.detail
    v = check_fault_effect(h)
    assert v.status == "fail"
    assert v.summary.startswith(f"{s.kind} on {s.target} had no effect: "), v.summary
    print(f"{s.kind} ({s.breaks}): caught in {took:.3f} s: {v.summary}")


@pytest.mark.parametrize("s", ONE_SITE, ids=str)
def test_a_fault_on_one_site_proves_its_effect(one_site: Cluster, s: Sabotage) -> None:
    _proven(one_site, s)


@pytest.mark.parametrize("s", ONE_SITE, ids=str)
def test_a_broken_fault_on_one_site_is_caught_by_fault_effect(
    one_site: Cluster, s: Sabotage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _caught(one_site, s, monkeypatch)


@pytest.mark.parametrize("s", TWO_SITES, ids=str)
def test_a_site_or_replication_fault_proves_its_effect(two_sites: Cluster, s: Sabotage) -> None:
    _proven(two_sites, s)


@pytest.mark.parametrize("s", TWO_SITES, ids=str)
def test_a_broken_site_or_replication_fault_is_caught_by_fault_effect(
    two_sites: Cluster, s: Sabotage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _caught(two_sites, s, monkeypatch)


@pytest.mark.parametrize("s", BALANCERS, ids=str)
def test_a_balancer_fault_proves_its_effect(balancer: Cluster, s: Sabotage) -> None:
    _proven(balancer, s)


@pytest.mark.parametrize("s", BALANCERS, ids=str)
def test_a_broken_balancer_fault_is_caught_by_fault_effect(
    balancer: Cluster, s: Sabotage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _caught(balancer, s, monkeypatch)


def test_status_shows_the_observed_state_and_pause_verifies_the_stop(
    one_site: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert one_site.status()["replicas"]["kms-c"]["state"] == "running"
    one_site.pause_replica("kms-c")
    try:
        assert one_site.status()["replicas"]["kms-c"]["state"] == "paused"
        # the recorded intent says running; what is shown is what the processes are in
        one_site._update_replica("kms-c", status="running")
        assert one_site.status()["replicas"]["kms-c"]["state"] == "paused"
    finally:
        one_site.resume_replica("kms-c")
    assert one_site.status()["replicas"]["kms-c"]["state"] == "running"

    # a SIGSTOP that does not stop (sent as SIGCONT) is refused, naming the processes
    real = LocalCluster._signal
    monkeypatch.setattr(
        LocalCluster,
        "_signal",
        lambda self, name, sig: real(self, name, signal.SIGCONT),
    )
    monkeypatch.setattr("harness.cluster.local.PAUSE_DEADLINE_S", 0.2)
    from harness.cluster.state import ClusterError

    with pytest.raises(ClusterError, match=r"kms-c did not stop after SIGSTOP.*pid \d+ \([RS]\)"):
        one_site.pause_replica("kms-c")
    assert one_site.status()["replicas"]["kms-c"]["state"] == "running"


def test_kmschaos_inject_prints_the_id_then_what_it_saw(one_site: Cluster) -> None:
    import subprocess
    import sys

    def kmschaos(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", *args, "--state-dir", one_site.state.state_dir],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = kmschaos("inject", "refuse", "kms-a")
    assert r.returncode == 0, r.stderr
    fault_id = r.stdout.strip()  # stdout is the id alone, for scripts
    assert fault_id.startswith("refuse-kms-a-") and "\n" not in fault_id
    assert r.stderr.startswith("effect seen: a TCP connect to vc-a->kms-a ("), r.stderr
    assert "was refused" in r.stderr
    assert kmschaos("heal", fault_id).returncode == 0


def test_a_fault_without_effect_is_said_loudly_after_inject(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace

    from harness.cli.faults import _print_observation
    from harness.history import Observation

    said = "a TLS handshake through vc-a->kms-a (127.0.3.1:40001) answered in 4 ms"
    obs = Observation("blackhole-kms-a-1", "blackhole", "kms-a", 1.0, False, said)
    _print_observation(SimpleNamespace(observation=obs, fault_id="blackhole-kms-a-1"))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"NO EFFECT SEEN: {said}"
    assert "kmschaos heal blackhole-kms-a-1" in err[1]


@pytest.mark.parametrize("slow", ["replica", "link"])
def test_bandwidth_takes_a_slow_replica_for_no_slow_link(
    one_site: Cluster, slow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A soak run's false "seen" (bandwidth sabotaged, no toxic): kms-a's handshakes were
    122 ms slow for a moment on a loaded machine, the other replica's link quick. A slow
    replica is as slow at its direct address: not seen. A slow link (only through it) is."""
    import dataclasses

    from harness.faults import latency

    through, direct = latency.handshake_through, latency.handshake_direct
    late = 0.122

    def slow_through(cluster: Cluster, link: Any, timeout_s: float) -> Any:
        seen = through(cluster, link, timeout_s)
        return dataclasses.replace(seen, seconds=seen.seconds + late * (link.replica == "kms-a"))

    def slow_direct(cluster: Cluster, replica: str, *args: Any, **kwargs: Any) -> Any:
        seen = direct(cluster, replica, *args, **kwargs)
        hit = replica == "kms-a" and slow == "replica"
        return dataclasses.replace(seen, seconds=seen.seconds + late * hit)

    monkeypatch.setattr(latency, "handshake_through", slow_through)
    monkeypatch.setattr(latency, "handshake_direct", slow_direct)
    fault = make_fault("bandwidth", one_site, "kms-a", History(), kbps=64)
    effect, detail = fault.observe()  # no toxic: only the probes' delays
    assert effect is (slow == "link"), detail
