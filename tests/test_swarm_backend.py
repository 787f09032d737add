"""The swarm backend on a real two-node swarm (`make test-swarm` starts one on this
machine: `kmschaos swarm lab up`): site-b's replicas run on node 2, reached through its
own engine; `status --json` has the other backends' shape; `down`, and a SIGKILLed owner
followed by `down --all`, leave no service, container, network or volume on either
engine; bad set-ups (a site without a node, a node whose engine does not answer, a node
without the image) are refused with exit 2, one line naming the node or site and the
command that fixes it, and nothing left.

Skipped when no swarm manager with a node for site-a and for site-b answers, unless
``KMSCHAOS_REQUIRE_SWARM=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runs import json_shape

from harness import images, registry
from harness.swarm.nodes import SwarmError, connect_engine, label_node, list_nodes
from harness.toolchain import repo_root

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

TOPOLOGIES = repo_root() / "scenarios" / "topologies"


def unavailable(reason: str) -> None:
    if os.environ.get("KMSCHAOS_REQUIRE_SWARM") == "1":
        pytest.fail(f"KMSCHAOS_REQUIRE_SWARM=1 but: {reason}")
    pytest.skip(f"swarm backend not available here: {reason}")


@pytest.fixture(scope="module")
def swarm() -> Iterator[dict[str, Any]]:
    """The manager's engine and node 2's (site-b), for looking behind the backend."""
    from harness.cluster.swarm_backend import SwarmCluster

    reason = SwarmCluster.unavailable_reason()
    if reason:
        unavailable(reason)
    from harness.cluster.docker_engine import docker_client

    manager = docker_client()
    nodes = {n.site: n for n in list_nodes(manager) if n.site}
    if not {"site-a", "site-b"} <= set(nodes) or not nodes["site-b"].engine:
        unavailable("no node labelled site-a and one for site-b with an engine label")
    node2 = connect_engine(nodes["site-b"].engine or "")
    yield {"manager": manager, "node2": node2, "site_b": nodes["site-b"]}
    node2.close()
    manager.close()


def objects(engine: Any, run_id: str) -> dict[str, list[str]]:
    flt = {"label": f"kmschaos.run={run_id}"}
    out = {
        "containers": sorted(c.name for c in engine.containers.list(all=True, filters=flt)),
        "networks": sorted(n.name for n in engine.networks.list(filters=flt)),
        "volumes": sorted(v.name for v in engine.volumes.list(filters=flt)),
    }
    with_services = engine.info().get("Swarm", {}).get("ControlAvailable")
    if with_services:
        out["services"] = sorted(s.name for s in engine.services.list(filters=flt))
    return out


def nothing(engine: Any, run_id: str) -> bool:
    return not any(objects(engine, run_id).values())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swarm: Any) -> Iterator[Any]:
    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(reg), PYTHONWARNINGS="ignore")

    def run(*args: str, check: bool = True, state: str = "state") -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "harness.cli", *args]
        if args[0] in ("up", "status", "down", "inject", "heal"):
            argv += ["--state-dir", str(tmp_path / state)]
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        if check:
            assert r.returncode == 0, f"kmschaos {' '.join(args)}: {r.returncode}\n{r.stderr}"
        return r

    yield run
    run("down", check=False)
    registry.reap(all_runs=True)


def test_status_has_the_shape_of_the_local_backends_and_site_b_runs_on_node_2(
    cli: Any, swarm: dict[str, Any]
) -> None:
    topo = str(TOPOLOGIES / "two-sites.yaml")
    cli("up", topo, "--backend", "swarm", "--time-scale", "0.05")
    cli("up", topo, "--backend", "local", "--time-scale", "0.05", state="local")
    on_swarm = json.loads(cli("status", "--json").stdout)
    on_local = json.loads(cli("status", "--json", state="local").stdout)
    cli("down", state="local")
    assert on_swarm["backend"] == "swarm"
    on_local["backend"] = "swarm"
    assert json_shape(on_swarm) == json_shape(on_local)
    run_id = on_swarm["run_id"]
    remote = objects(swarm["node2"], run_id)["containers"]
    for name in ("kms-d", "kms-e", "kms-f"):
        assert f"kmschaos-{run_id}-{name}" in remote, remote
    for name in ("kms-a", "kms-b", "kms-c"):
        assert f"kmschaos-{run_id}-{name}" not in remote, remote
    assert all(r["state"] == "running" for r in on_swarm["replicas"].values())


def test_down_leaves_nothing_on_either_engine(cli: Any, swarm: dict[str, Any]) -> None:
    cli("up", str(TOPOLOGIES / "two-sites-async.yaml"), "--backend", "swarm",
        "--time-scale", "0.05")  # fmt: skip
    run_id = json.loads(cli("status", "--json").stdout)["run_id"]
    assert objects(swarm["manager"], run_id)["services"], "no service started"
    assert objects(swarm["node2"], run_id)["volumes"], "no volume on node 2"
    cli("down")
    assert objects(swarm["manager"], run_id) == {
        "containers": [], "networks": [], "volumes": [], "services": []
    }  # fmt: skip
    assert nothing(swarm["node2"], run_id), objects(swarm["node2"], run_id)


def test_sigkilled_owner_leaves_nothing_after_down_all(
    cli: Any, swarm: dict[str, Any], tmp_path: Path
) -> None:
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from harness.cluster.swarm_backend import SwarmCluster\n"
        "from harness.topology import load_topology\n"
        f"t = load_topology({str(TOPOLOGIES / 'two-sites.yaml')!r}).with_time_scale(0.05)\n"
        f"c = SwarmCluster.create(t, Path({str(tmp_path / 'owned')!r}))\n"
        "c.start()\n"
        "print(c.state.run_id, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = dict(os.environ, KMSCHAOS_REGISTRY=os.environ["KMSCHAOS_REGISTRY"])
    owner = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=repo_root(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert owner.stdout is not None
        run_id = owner.stdout.readline().strip()
        assert run_id.startswith("kc"), owner.stderr.read() if owner.stderr else ""
        assert objects(swarm["node2"], run_id)["containers"], "nothing on node 2"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    cli("down", "--all")
    assert nothing(swarm["manager"], run_id), objects(swarm["manager"], run_id)
    assert nothing(swarm["node2"], run_id), objects(swarm["node2"], run_id)


def refused(cli: Any, topology: str, *names: str) -> str:
    """`up` on swarm exits 2 with one line naming each of `names`; nothing is left."""
    r = cli("up", topology, "--backend", "swarm", check=False)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    # (a topology's lint warnings may come first)
    lines = [line for line in r.stderr.splitlines() if line.startswith("kmschaos: ")]
    assert len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert "`kmschaos swarm " in lines[0], lines[0]
    return lines[0]


def test_a_site_without_a_node_is_refused_naming_the_site(
    cli: Any, swarm: dict[str, Any], tmp_path: Path
) -> None:
    text = (TOPOLOGIES / "two-sites.yaml").read_text().replace("site-b", "site-z")
    topo = tmp_path / "site-z.yaml"
    topo.write_text(text)
    refused(cli, str(topo), "site-z", "kmschaos swarm label NODE site-z")
    services = swarm["manager"].services.list(filters={"label": "kmschaos.role=holder-service"})
    assert not [s for s in services if "site-z" in str(s.attrs)], "a holder was left"


def test_a_node_whose_engine_does_not_answer_is_refused_naming_it(
    cli: Any, swarm: dict[str, Any], tmp_path: Path
) -> None:
    node = swarm["site_b"]
    label_node(swarm["manager"], node.id, None, f"unix://{tmp_path}/no-engine.sock")
    try:
        refused(cli, str(TOPOLOGIES / "two-sites.yaml"), node.name, "--engine")
    finally:
        label_node(swarm["manager"], node.id, None, node.engine)


def test_a_node_without_the_image_is_refused_naming_it(cli: Any, swarm: dict[str, Any]) -> None:
    node2, ref = swarm["node2"], images.kms_image()
    keep = "kmschaos/kms:kept-by-test"
    node2.images.get(ref).tag(keep)  # the image stays, only its name goes
    node2.images.remove(ref)
    try:
        refused(cli, str(TOPOLOGIES / "two-sites.yaml"), swarm["site_b"].name, ref,
                "kmschaos swarm images")  # fmt: skip
    finally:
        node2.images.get(keep).tag(ref)
        node2.images.remove(keep)


def test_label_refuses_an_unknown_node(swarm: dict[str, Any]) -> None:
    with pytest.raises(SwarmError, match="no swarm node 'no-such-node'"):
        label_node(swarm["manager"], "no-such-node", "site-a", None)


# ---- verdicts on node 2: each fault's effect seen there, and its sabotage caught --------


@pytest.fixture(scope="module")
def remote(swarm: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The seed two-site layout on swarm, in process (kms-d runs on node 2)."""
    from harness.cluster.swarm_backend import SwarmCluster
    from harness.topology import load_topology

    folder = tmp_path_factory.mktemp("remote")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KMSCHAOS_REGISTRY", str(folder / "registry"))
        topo = load_topology(TOPOLOGIES / "two-sites.yaml").with_time_scale(0.05)
        with SwarmCluster.create(topo, folder / "cluster") as cluster:
            assert cluster.state.replicas["kms-d"].node == swarm["site_b"].id
            yield cluster


def _bookkeeping_only(cluster: Any, name: str, status: str) -> None:
    """What a fault that reached no engine would leave: the state file says it acted."""
    cluster._update_replica(name, status=status)


REMOTE_SABOTAGE = {
    # fault: (the replica method that acts on node 2's engine, the status it records,
    #         what the fault's probe says when nothing happened there)
    "stall": ("pause_replica", "paused", "kms-d is running"),
    "kill": ("kill_replica", "stopped", "kms-d is still running"),
}


@pytest.mark.parametrize("kind", sorted(REMOTE_SABOTAGE))
def test_a_fault_on_node_2_is_seen_there_and_its_sabotage_caught(
    remote: Any, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault acts through node 2's engine and its probe asks that engine and the
    network (seen); a fault that only wrote down that it acted is caught by the
    fault-effect verdict, naming the replica that still runs."""
    from harness.checkers.fault_effect import check_fault_effect
    from harness.faults import make_fault
    from harness.history import History

    def window(h: History) -> Any:
        f = make_fault(kind, remote, "kms-d", h)
        f.inject()
        try:
            assert f.observation is not None
            return f.observation
        finally:
            f.heal()

    h = History()
    seen = window(h)
    assert seen.effect is True, seen.detail
    assert check_fault_effect(h).status == "pass"
    method, status, said = REMOTE_SABOTAGE[kind]
    with monkeypatch.context() as mp:
        mp.setattr(type(remote), method, lambda self, name: _bookkeeping_only(self, name, status))
        h = History()
        caught = window(h)
    assert caught.effect is False, caught.detail
    assert said in caught.detail, caught.detail
    v = check_fault_effect(h)
    assert v.status == "fail"
    assert v.summary.startswith(f"{kind} on kms-d had no effect: "), v.summary
    assert remote.observe_replica("kms-d").state == "running"
