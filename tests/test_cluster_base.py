"""The one cluster interface and the pieces that replaced the import cycle: `BaseCluster`
is abstract, the backend factory sits above the backends, a state folder whose cluster
still runs is refused, and backends hand their reapers to the registry. No server runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import backends, registry
from harness.cluster.base import BaseCluster, Cluster, backend_classes
from harness.cluster.docker_backend import DockerCluster, docker_run_ids, reap_docker
from harness.cluster.local import LocalCluster
from harness.cluster.state import ClusterError, load_state, save_state
from harness.cluster.swarm_backend import SwarmCluster, reap_swarm, swarm_run_ids
from harness.toolchain import repo_root
from harness.topology import load_topology

ONE_SITE = repo_root() / "scenarios" / "topologies" / "one-site.yaml"


class Stub(BaseCluster):
    """A backend that runs nothing; `running` says what `anything_running` answers."""

    backend = "stub-for-tests"
    running = False

    def start(self, progress: bool = False) -> Stub:
        return self

    def stop(self) -> None:
        self.state.status = "down"

    def replica_running(self, name: str) -> bool:
        return False

    def replica_pid(self, name: str) -> int | None:
        return None

    def replica_logs(self, name: str) -> str:
        return ""

    def anything_running(self) -> bool:
        return self.running

    def pause_replica(self, name: str) -> None: ...

    def resume_replica(self, name: str) -> None: ...

    def kill_replica(self, name: str) -> None: ...

    def start_replica(self, name: str) -> None: ...

    def wipe_replica(self, name: str) -> None: ...


def test_the_interface_is_one_abstract_class() -> None:
    assert Cluster is BaseCluster
    with pytest.raises(TypeError, match="abstract"):
        BaseCluster(None)  # type: ignore[abstract,arg-type]

    class Incomplete(Stub):
        wipe_replica = BaseCluster.wipe_replica  # back to the abstract declaration

    with pytest.raises(TypeError, match="wipe_replica"):
        Incomplete(None)  # type: ignore[abstract,arg-type]
    for cls in (LocalCluster, DockerCluster):
        assert not getattr(cls, "__abstractmethods__", None), cls
    # optional abilities keep the base's no-op unless the backend can do them
    assert LocalCluster.take_off_network is BaseCluster.take_off_network
    assert DockerCluster.take_off_network is not BaseCluster.take_off_network


def test_the_factory_names_every_backend() -> None:
    assert backends.BACKENDS == ("local", "docker", "swarm")
    assert backends.cluster_class("local") is LocalCluster
    assert backends.cluster_class("docker") is DockerCluster
    assert backends.cluster_class("swarm") is SwarmCluster
    with pytest.raises(ClusterError, match=r"unknown backend 'podman' \(available: local, docker"):
        backends.cluster_class("podman")
    found = backend_classes()
    assert found["local"] is LocalCluster and found["docker"] is DockerCluster
    assert found["swarm"] is SwarmCluster


def test_importing_the_backends_registers_their_reapers() -> None:
    found = {r.name: r for r in registry.reapers()}
    assert found["docker"].run_ids is docker_run_ids and found["docker"].reap is reap_docker
    assert found["swarm"].run_ids is swarm_run_ids and found["swarm"].reap is reap_swarm


def _old_state(state_dir: Path, backend: str, status: str = "ready") -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    old = Stub.create(load_topology(ONE_SITE), state_dir, run_id="kcold0001").state
    old.backend, old.status = backend, status
    save_state(old)


def test_a_state_folder_whose_cluster_still_runs_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = load_topology(ONE_SITE)
    _old_state(tmp_path, Stub.backend)
    monkeypatch.setattr(Stub, "running", True)
    with pytest.raises(ClusterError, match=r"a cluster \(kcold0001, one-site\) is already running"):
        LocalCluster.create(topo, tmp_path)
    assert load_state(tmp_path).run_id == "kcold0001"  # untouched

    monkeypatch.setattr(Stub, "running", False)  # killed: nothing of it runs
    assert LocalCluster.create(topo, tmp_path).state.run_id != "kcold0001"


def test_a_state_that_cannot_say_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = load_topology(ONE_SITE)
    monkeypatch.setattr(Stub, "running", True)
    _old_state(tmp_path / "down", Stub.backend, status="down")
    assert LocalCluster.create(topo, tmp_path / "down").state.backend == "local"
    _old_state(tmp_path / "unknown", "no-such-backend")
    assert LocalCluster.create(topo, tmp_path / "unknown").state.backend == "local"
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "state.json").write_text("{")
    assert LocalCluster.create(topo, tmp_path / "unreadable").state.backend == "local"

    def cannot_look(self: Stub) -> bool:
        raise ClusterError("no engine answers")

    monkeypatch.setattr(Stub, "anything_running", cannot_look)
    _old_state(tmp_path / "blind", Stub.backend)
    assert LocalCluster.create(topo, tmp_path / "blind").state.backend == "local"


def test_a_registered_reaper_finds_and_reaps_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setattr(registry, "_REAPERS", {})  # only the fake one below
    reaped: list[str] = []
    objects = {"kcorphan1": 3}

    def reap(run_id: str) -> int:
        reaped.append(run_id)
        return objects.pop(run_id, 0)

    registry.register_reaper("fake", run_ids=lambda: set(objects), reap=reap)
    report = registry.reap()
    assert report.runs == ["kcorphan1"] and reaped == ["kcorphan1"]
    assert str(report) == (
        "reaped 1 run(s) kcorphan1: 0 process(es), 0 firewall rule(s), 3 fake object(s)"
    )
    # a registered run of another backend is not the fake reaper's business
    entry: dict[str, Any] = {
        "run_id": "kcother01",
        "subnet": "127.251.1",
        "owner_pid": 1,
        "owner_start": 0,
        "detached": False,
        "state_dir": str(tmp_path),
        "backend": "local",
        "created": 0.0,
    }
    registry.write_entry(registry.RunEntry(**entry))
    reaped.clear()
    assert registry.reap_run("kcother01")[2] == {}
    assert reaped == []
