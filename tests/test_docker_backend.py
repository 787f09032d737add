"""The docker backend end to end, through the CLI, PyKMIP's own client and a vCenter-like
client: the same `status --json` as local; container faults with their meaning (pause =
stall, kill = refused at once and restart on the same volume, unreachable = network
disconnect + connect timeout, wipe = new volume refilled by peers), each proving its
effect by its own probe (the container's state, the link, the volume) and caught when its
mechanism is broken; `down` and the reaper leave no container, network or volume.

Skipped when no Docker engine answers or the images are missing, unless
``KMSCHAOS_REQUIRE_DOCKER=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runs import json_shape
from docker_ready import docker_engine_or_skip
from kmip_clients import holdings, pykmip

from harness import registry
from harness.backends import attach_cluster
from harness.checkers.failover import wait_bounds
from harness.client.operations import empty_client_config
from harness.client.policies import TlsFiles
from harness.client.transport import Endpoint
from harness.client.walker import VCenterPolicy
from harness.cluster.docker_backend import DockerCluster
from harness.faults import make_fault
from harness.faults.stall import Stall
from harness.history import History, Observation
from harness.store import StateFolder
from harness.toolchain import repo_root
from harness.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TOPOLOGIES = repo_root() / "scenarios" / "topologies"
SCALE = 0.05


@pytest.fixture(scope="module")
def docker_engine() -> Any:
    client = docker_engine_or_skip()
    yield client
    client.close()


def objects(client: Any, run_id: str) -> dict[str, list[str]]:
    flt = {"label": f"kmschaos.run={run_id}"}
    return {
        "containers": sorted(c.name for c in client.containers.list(all=True, filters=flt)),
        "networks": sorted(n.name for n in client.networks.list(filters=flt)),
        "volumes": sorted(v.name for v in client.volumes.list(filters=flt)),
    }


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_engine: Any) -> Iterator[Any]:
    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(reg), PYTHONWARNINGS="ignore")

    def run(*args: str, check: bool = True) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert r.returncode == 0, f"kmschaos {' '.join(args)}: {r.returncode}\n{r.stderr}"
        return r.stdout

    yield run
    run("down", check=False)
    registry.reap(all_runs=True)


def vcenter(status: dict[str, Any], client: str, tmp_path: Path) -> VCenterPolicy:
    c = status["clients"][client]
    eps = [Endpoint(e["replica"], e["host"], int(e["port"])) for e in c["endpoints"]]
    timeouts = {"connect": 5 * SCALE, "response": 60 * SCALE}
    return VCenterPolicy(
        eps,
        TlsFiles(c["ca"], c["cert"], c["key"]),
        timeouts["connect"],
        timeouts["response"],
        empty_client_config(tmp_path / "conf"),
    )


def baseline_p99(policy: VCenterPolicy, n: int = 20) -> float:
    durations = []
    for _ in range(n):
        t0 = time.monotonic()
        r = policy.execute("locate", None)
        durations.append(time.monotonic() - t0)
        assert r.outcome == "ok", r.error
    return sorted(durations)[int(0.99 * (n - 1))]


def observed(status: dict[str, Any], kind: str) -> Observation:
    """The last observation of a `kind` fault in the cluster's history (the CLI's)."""
    history = History.load(StateFolder(Path(status["state_dir"])).history)
    seen = [e for e in history.events() if isinstance(e, Observation) and e.kind == kind]
    assert seen, f"no observation of {kind} in the history"
    return seen[-1]


def injected(status: dict[str, Any], kind: str, target: str, **params: Any) -> Observation:
    """Inject `kind` in this process on the running cluster, heal it; what it saw."""
    cluster = attach_cluster(Path(status["state_dir"]))
    fault = make_fault(kind, cluster, target, History(), **params)
    fault.inject()
    try:
        assert fault.observation is not None
        return fault.observation
    finally:
        fault.heal()


def timed(policy: VCenterPolicy, op: str = "create") -> tuple[Any, float]:
    t0 = time.monotonic()
    r = policy.execute(op, None)
    return r, time.monotonic() - t0


def test_two_sites_on_docker_same_status_pykmip_works_pause_fails_over_down_is_clean(
    cli: Any, docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmip import enums

    topo = str(TOPOLOGIES / "two-sites.yaml")
    cli("up", topo, "--time-scale", str(SCALE), "--backend", "docker")
    status = json.loads(cli("status", "--json"))
    run_id = status["run_id"]
    assert status["backend"] == "docker"
    assert {r["state"] for r in status["replicas"].values()} == {"running"}

    # the same document as the local backend's, key for key
    local_dir = tmp_path / "local-state"
    cli("up", topo, "--time-scale", str(SCALE), "--state-dir", str(local_dir))
    local = json.loads(cli("status", "--json", "--state-dir", str(local_dir)))
    cli("down", "--state-dir", str(local_dir))
    assert json_shape(status) == json_shape(local)

    # everything labelled and published on the run's loopback /24 only
    objs = objects(docker_engine, run_id)
    assert len(objs["containers"]) == 13, objs  # 6 holders, 6 replicas, Toxiproxy
    assert len(objs["networks"]) == 2 and len(objs["volumes"]) == 6, objs
    for c in docker_engine.containers.list(filters={"label": f"kmschaos.run={run_id}"}):
        for bindings in (c.attrs["NetworkSettings"]["Ports"] or {}).values():
            for b in bindings or []:
                assert b["HostIp"].startswith("127."), f"{c.name} publishes on {b['HostIp']}"

    # PyKMIP's own client creates and gets keys through the links
    p = pykmip(status)
    uid = p.create(enums.CryptographicAlgorithm.AES, 256)
    assert len(p.get(uid).value) == 32
    p.close()

    # stall = docker pause: a vCenter-like client waits its response timeout, then kms-b
    vc = vcenter(status, "vc-a", tmp_path)
    p99 = baseline_p99(vc)
    cli("inject", "stall", "kms-a")
    assert docker_engine.containers.get(f"kmschaos-{run_id}-kms-a").status == "paused"
    st = json.loads(cli("status", "--json"))
    assert st["replicas"]["kms-a"]["state"] == "paused"
    stall = observed(status, "stall")
    assert stall.effect is True and f"kmschaos-{run_id}-kms-a paused" in stall.detail, stall
    r, took = timed(vc)
    assert r.outcome == "ok" and r.served_by == "kms-b", r
    lower, upper = wait_bounds(vc.response_timeout, baseline_p99=p99, min_upper_slack=0.25)
    assert lower <= took <= upper, f"failover took {took:.3f} s, expected [{lower}, {upper}]"
    assert r.attempts[0].server == "kms-a" and r.attempts[0].outcome != "ok"
    cli("heal", "--all")
    assert docker_engine.containers.get(f"kmschaos-{run_id}-kms-a").status == "running"
    r, _ = timed(vc, "locate")
    assert r.served_by == "kms-a"

    # a stall that pauses nothing is caught by its own observation (the engine's state)
    with monkeypatch.context() as mp:
        mp.setattr(Stall, "_inject", lambda self: None)
        unpaused = injected(status, "stall", "kms-b")
    assert unpaused.effect is False and "kms-b is running" in unpaused.detail, unpaused
    # status shows the engine's state, not the recorded intent
    docker_engine.containers.get(f"kmschaos-{run_id}-kms-c").pause()
    try:
        assert json.loads(cli("status", "--json"))["replicas"]["kms-c"]["state"] == "paused"
    finally:
        docker_engine.containers.get(f"kmschaos-{run_id}-kms-c").unpause()

    cli("down")
    assert objects(docker_engine, run_id) == {"containers": [], "networks": [], "volumes": []}


def test_kill_refuses_at_once_restart_keeps_the_volume_unreachable_times_out(
    cli: Any, docker_engine: Any, tmp_path: Path
) -> None:
    from kmip import enums

    from harness.toolchain import firewall_capability

    cli("up", str(TOPOLOGIES / "one-site.yaml"), "--time-scale", str(SCALE), "--backend", "docker")
    status = json.loads(cli("status", "--json"))
    run_id = status["run_id"]
    direct = pykmip(status, replica="kms-a")
    uid = direct.create(enums.CryptographicAlgorithm.AES, 256)
    before = bytes(direct.get(uid).value)
    direct.close()
    vc = vcenter(status, "vc-a", tmp_path)
    p99 = baseline_p99(vc)

    # kill: the holder keeps the address up, so connects are refused, as a crashed process
    cli("inject", "kill", "kms-a")
    assert docker_engine.containers.get(f"kmschaos-{run_id}-kms-a").status == "exited"
    kill = observed(status, "kill")
    # Toxiproxy closes the client's connection when the upstream refuses: EOF, or a
    # reset when the client's hello was still unread
    assert kill.effect is True and ("closed (EOF)" in kill.detail or "reset" in kill.detail)
    r, took = timed(vc, "locate")
    assert r.served_by == "kms-b", r
    _, upper = wait_bounds(0.0, baseline_p99=p99, min_upper_slack=0.25)
    assert took <= upper, f"failover after kill took {took:.3f} s (bound {upper:.3f} s)"
    cli("heal", "--all")
    again = pykmip(status, replica="kms-a")
    assert bytes(again.get(uid).value) == before, "kms-a lost its key across docker kill/start"
    again.close()

    if firewall_capability() is not None:
        pytest.skip(f"unreachable part: {firewall_capability()}")
    # unreachable: kms-a leaves its network; the client's SYNs go unanswered
    cli("inject", "unreachable", "kms-a")
    unreachable = observed(status, "unreachable")
    assert unreachable.effect is True and "no answer to its SYN" in unreachable.detail
    net = docker_engine.networks.get(f"kmschaos-{run_id}-site-a")
    net.reload()
    attached = {c["Name"] for c in net.attrs["Containers"].values()}
    assert f"kmschaos-{run_id}-kms-a-net" not in attached
    r, took = timed(vc, "locate")
    assert r.served_by == "kms-b", r
    lower, upper = wait_bounds(vc.connect_timeout, baseline_p99=p99, min_upper_slack=0.25)
    assert lower <= took <= upper, f"unreachable failover {took:.3f} s, not [{lower}, {upper}]"
    assert r.attempts[0].outcome == "connect-timeout", r.attempts[0]
    cli("heal", "--all")
    net.reload()
    attached = {c["Name"] for c in net.attrs["Containers"].values()}
    assert f"kmschaos-{run_id}-kms-a-net" in attached
    r, _ = timed(vc, "locate")
    assert r.served_by == "kms-a", "kms-a not reachable through its link after heal"
    direct = pykmip(status, replica="kms-a")
    assert bytes(direct.get(uid).value) == before, "direct address lost after reconnect"
    direct.close()


def test_wipe_gives_a_new_volume_refilled_by_peers(
    cli: Any, docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmip import enums

    cli(
        "up",
        str(TOPOLOGIES / "two-sites-async.yaml"),
        "--time-scale",
        str(SCALE),
        "--backend",
        "docker",
    )
    status = json.loads(cli("status", "--json"))
    run_id = status["run_id"]
    assert len(status["replication"]["links"]) == 30
    interval = status["replication"]["interval_ms"] / 1000
    p = pykmip(status)
    made = {p.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(10)}
    p.close()
    wait_until(
        lambda: made <= set(holdings(status, "kms-f")),
        100 * interval + 10,
        "10 keys made on site-a to replicate to kms-f (across the sites' networks)",
        poll_s=interval,
    )
    replica = f"kmschaos-{run_id}-kms-f"
    assert docker_engine.containers.get(replica).exec_run(["touch", "/data/marker"]).exit_code == 0
    # isolated, no peer refills kms-f: what it holds after the wipe is what the wipe left
    isolated = cli("inject", "isolate", "kms-f").strip()
    assert observed(status, "isolate").effect is True  # its replication links, on S.253
    cli("inject", "wipe", "kms-f")
    probe = docker_engine.containers.get(replica).exec_run(["test", "-e", "/data/marker"])
    assert probe.exit_code == 1, "kms-f's volume survived the wipe (marker still there)"
    assert holdings(status, "kms-f") == {}, "kms-f still held keys after the wipe"
    wipe = observed(status, "wipe")
    assert wipe.effect is True and "runs on a new volume" in wipe.detail, wipe
    cli("heal", isolated)
    wait_until(
        lambda: made <= set(holdings(status, "kms-f")),
        100 * interval + 10,
        "the wiped kms-f to be refilled from its peers",
        poll_s=interval,
    )

    # replication faults are seen on the replication links themselves, from the host
    pause = injected(status, "replication-pause", "kms-a")
    assert pause.effect is True and "got no answer" in pause.detail, pause
    lag = injected(status, "replication-lag", "kms-a", ms=200)
    assert lag.effect is True, lag

    # a wipe that keeps the volume is caught: the mark left in it is still there
    def keep_the_volume(self: DockerCluster, name: str) -> None:
        self.kill_replica(name)
        self.start_replica(name)

    with monkeypatch.context() as mp:
        mp.setattr(DockerCluster, "wipe_replica", keep_the_volume)
        kept = injected(status, "wipe", "kms-e")
    assert kept.effect is False and "is still there" in kept.detail, kept


def test_sigkilled_owner_leaves_nothing_after_the_next_reap(
    docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(reg), PYTHONWARNINGS="ignore")
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness.cluster.docker_backend import DockerCluster\n"
        "from harness.topology import load_topology\n"
        f"t = load_topology({str(TOPOLOGIES / 'one-site.yaml')!r})\n"
        f"c = DockerCluster.create(t, Path({str(tmp_path / 'st')!r}))\n"
        "c.start()\n"
        "print(c.state.run_id, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=repo_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        run_id = owner.stdout.readline().strip()
        assert run_id.startswith("kc"), owner.stderr.read() if owner.stderr else ""
        assert objects(docker_engine, run_id)["containers"], "nothing started"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    report = registry.reap()
    assert run_id in report.runs
    assert objects(docker_engine, run_id) == {"containers": [], "networks": [], "volumes": []}
