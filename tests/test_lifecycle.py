"""End-to-end lifecycle through the real CLI, real PyKMIP servers and real Toxiproxy.

Each test uses a private registry (KMSCHAOS_REGISTRY in a tmp folder), so its
`down --all` reaps only what it started, never a sibling xdist worker's cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runs import kmschaos
from kmip_clients import pykmip

from harness import registry
from harness.toolchain import repo_root
from harness.wait import wait_until

pytestmark = pytest.mark.integration

ONE_SITE = repo_root() / "scenarios" / "topologies" / "one-site.yaml"


@pytest.fixture
def private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(reg), PYTHONWARNINGS="ignore")
    yield env
    # whatever a test leaves behind is reaped, and that must find nothing
    registry.reap(all_runs=True)


def leftovers(run_id: str) -> dict[str, object]:
    return {
        "processes": registry.labelled_processes(run_id),
        "rules": registry.tagged_rules(run_id),
        "leases": [
            p.name for p in registry.leases_dir().iterdir() if p.read_text().split()[:1] == [run_id]
        ],
    }


def test_up_status_inject_heal_down_with_pykmip_own_client(
    private_registry: dict[str, str], tmp_path: Path
) -> None:
    from kmip import enums

    env = private_registry
    out = kmschaos(env, tmp_path, "up", str(ONE_SITE), "--time-scale", "0.05")
    assert "ready in" in out
    status = json.loads(kmschaos(env, tmp_path, "status", "--json"))
    run_id = status["run_id"]
    vc = status["clients"]["vc-a"]
    assert [e["replica"] for e in vc["endpoints"]] == ["kms-a", "kms-b", "kms-c"]
    assert len({e["port"] for e in vc["endpoints"]}) == 1, "one shared port per client"
    assert len({e["host"] for e in vc["endpoints"]}) == 3, "one loopback address per replica"
    for f in ("ca", "cert", "key"):
        assert Path(vc[f]).is_file()
    assert oct(Path(vc["key"]).stat().st_mode & 0o777) == "0o600"
    assert {r["state"] for r in status["replicas"].values()} == {"running"}
    host_of = {e["replica"]: e["host"] for e in vc["endpoints"]}

    # PyKMIP's own client, pointed at the status endpoints: creates and gets via kms-a
    pie = pykmip(status, opened=False)
    pie.open()
    uid = pie.create(enums.CryptographicAlgorithm.AES, 256)
    assert len(pie.get(uid).value) == 32
    assert pie.proxy.host == host_of["kms-a"]
    pie.close()

    fault_id = kmschaos(env, tmp_path, "inject", "refuse", "kms-a").strip()
    assert fault_id.startswith("refuse-kms-a")
    pie = pykmip(status, opened=False)
    pie.open()  # kms-a refuses: PyKMIP moves to kms-b while connecting
    assert pie.proxy.host == host_of["kms-b"]
    uid_b = pie.create(enums.CryptographicAlgorithm.AES, 256)
    assert len(pie.get(uid_b).value) == 32
    pie.close()
    st = json.loads(kmschaos(env, tmp_path, "status", "--json"))
    assert [f["fault_id"] for f in st["faults"]] == [fault_id]

    kmschaos(env, tmp_path, "heal", "--all")
    pie = pykmip(status, opened=False)
    pie.open()
    assert pie.proxy.host == host_of["kms-a"], "kms-a not reachable again after heal"
    pie.close()

    # process faults through the CLI, seen in status
    kmschaos(env, tmp_path, "inject", "stall", "kms-b")
    kmschaos(env, tmp_path, "inject", "kill", "kms-c")
    st = json.loads(kmschaos(env, tmp_path, "status", "--json"))
    assert st["replicas"]["kms-b"]["state"] == "paused"
    assert st["replicas"]["kms-c"]["state"] == "stopped"
    kmschaos(env, tmp_path, "heal", "--all")
    st = json.loads(kmschaos(env, tmp_path, "status", "--json"))
    assert {r["state"] for r in st["replicas"].values()} == {"running"}
    assert st["faults"] == []

    if "firewall" in registry_caps():
        kmschaos(env, tmp_path, "inject", "unreachable", "kms-a")
        assert registry.tagged_rules(run_id), "no firewall rule after inject unreachable"
    kmschaos(env, tmp_path, "inject", "flap", "kms-b", "--down-s", "0.2", "--up-s", "0.2")

    kmschaos(env, tmp_path, "down")  # with faults still active: down removes everything
    assert leftovers(run_id) == {"processes": {}, "rules": [], "leases": []}


def registry_caps() -> set[str]:
    from harness.toolchain import firewall_capability

    return {"firewall"} if firewall_capability() is None else set()


def test_sigkilled_harness_leaves_nothing_after_down_all(
    private_registry: dict[str, str], tmp_path: Path
) -> None:
    """A scenario run killed with SIGKILL mid-fault; `down --all` removes every replica,
    Toxiproxy, firewall rule and lease it left."""
    env = private_registry
    scenario = "test_unreachable.py" if "firewall" in registry_caps() else "test_blackhole.py"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            str(repo_root() / "scenarios" / scenario),
            "-q",
            "-p",
            "no:cacheprovider",
            "--kms-time-scale",
            "1.0",  # long timeouts: the fault is surely active when we kill
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # wait until the scenario's fault is active (a fault record in its state folder)
        wait_until(
            lambda: bool(registry.read_entries()) and _fault_recorded(),
            90,
            "the scenario's cluster to start and its fault to be injected",
        )
        entries = registry.read_entries()
        assert len(entries) == 1
        run_id = entries[0].run_id
        assert registry.labelled_processes(run_id), "scenario started no labelled process"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert registry.labelled_processes(run_id), "replicas should outlive a SIGKILLed harness"
        out = kmschaos(env, tmp_path, "down", "--all")
        assert run_id in out
        assert leftovers(run_id) == {"processes": {}, "rules": [], "leases": []}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _fault_recorded() -> bool:
    for e in registry.read_entries():
        if any((Path(e.state_dir) / "faults").glob("*.json")):
            return True
    return False


def test_stale_runs_are_reaped_by_the_next_run(private_registry: dict[str, str]) -> None:
    """A run whose owner died (not detached) is reaped by the next cluster start."""
    from harness.cluster.local import LocalCluster
    from harness.topology import load_topology

    topo = load_topology(ONE_SITE).with_time_scale(0.05)
    ghost = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env=registry.labelled_env("kcdeadbeef"),
        start_new_session=True,
    )
    try:
        registry.write_entry(
            registry.RunEntry(
                run_id="kcdeadbeef",
                subnet="127.255.255",
                owner_pid=ghost.pid + 10_000_000,  # no such process: the owner is dead
                owner_start=None,
                detached=False,
                state_dir="/nonexistent",
                backend="local",
                created=time.time(),
            )
        )
        # between fork and exec the child still shows our environment: wait for its label
        wait_until(lambda: bool(registry.labelled_processes("kcdeadbeef")), 10, "the ghost's label")
        with LocalCluster.create(topo, Path(private_registry["KMSCHAOS_REGISTRY"]) / "st"):
            assert not registry.labelled_processes("kcdeadbeef"), "stale run was not reaped"
            assert "kcdeadbeef" not in {e.run_id for e in registry.read_entries()}
        wait_until(
            lambda: not registry.process_alive(ghost.pid, None),
            5,
            "the stale run's process to be gone after the reap",
        )
    finally:
        if ghost.poll() is None:
            ghost.kill()


def test_two_clusters_side_by_side_never_collide(private_registry: dict[str, str]) -> None:
    from harness.cluster.local import LocalCluster
    from harness.topology import load_topology

    topo = load_topology(ONE_SITE).with_time_scale(0.05)
    base = Path(private_registry["KMSCHAOS_REGISTRY"])
    with LocalCluster.create(topo, base / "one") as a, LocalCluster.create(topo, base / "two") as b:
        assert a.state.subnet != b.state.subnet
        addrs_a = {link["listen"] for link in a.state.links}
        addrs_b = {link["listen"] for link in b.state.links}
        assert not addrs_a & addrs_b
        assert a.state.toxiproxy_api != b.state.toxiproxy_api
        # a fault in one does not touch the other
        from harness.faults import make_fault
        from harness.history import History
        from harness.scenario import Scenario

        with make_fault("refuse", a, "kms-a"):
            sb = Scenario("b", b, topo, History())
            done = sb.client("vc-a").locate()
            sb.close()
            assert done.outcome == "ok" and done.served_by == "kms-a"
