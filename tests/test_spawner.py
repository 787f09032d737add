"""The local backend's replicas: forked by the run's spawner (one pre-imported parent),
one process each, sharing the spawner's pages, and still killed, frozen, restarted and
reaped as before; a replica whose clock is moved starts as a program of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import registry
from harness.cluster.controls import ReplicaControls, faketime_library
from harness.cluster.local import LocalCluster
from harness.cluster.local_spawn import REAP_WITHIN_S
from harness.replica import spawner
from harness.store import ReplicaFolder
from harness.toolchain import repo_root
from harness.topology import load_topology
from harness.wait import wait_until

pytestmark = pytest.mark.integration

ONE_SITE = repo_root() / "scenarios" / "topologies" / "one-site.yaml"


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(tmp_path / "registry"))
    topo = load_topology(ONE_SITE).with_time_scale(0.05)
    c = LocalCluster.create(topo, tmp_path / "state")
    with c:
        yield c
    assert registry.labelled_processes(c.state.run_id) == {}, "left running after stop"


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _rollup_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/smaps_rollup")


def test_replicas_are_one_process_each_forked_by_the_spawner(cluster: LocalCluster) -> None:
    st = cluster.state
    assert st.spawner_pid and registry.process_alive(st.spawner_pid, st.spawner_pid_start)
    assert st.spawner_pid in registry.labelled_processes(st.run_id)  # reaped like the rest
    for name, rs in st.replicas.items():
        assert rs.pid is not None
        assert _ppid(rs.pid) == st.spawner_pid, name
        assert os.getpgid(rs.pid) == rs.pid and os.getsid(rs.pid) == rs.pid
        assert os.readlink(f"/proc/{rs.pid}/cwd") == str(ReplicaFolder(Path(rs.data_dir)).control)
        assert Path(f"/proc/{rs.pid}/comm").read_text().strip() == name
        # PyKMIP's manager and policy monitor are gone: the group is the replica alone
        assert set(cluster._replica_processes(name)) == {rs.pid}, name
        # the imports' pages are the spawner's, shared copy-on-write
        shared_kb = _rollup_kb(rs.pid, "Shared_Clean") + _rollup_kb(rs.pid, "Shared_Dirty")
        assert shared_kb > 20 * 1024, f"{name} shares only {shared_kb} kB"
        assert _rollup_kb(rs.pid, "Pss") < _rollup_kb(rs.pid, "Rss") * 0.7


def test_kill_freeze_and_restart_act_on_the_forked_replica(cluster: LocalCluster) -> None:
    st = cluster.state
    old = st.replicas["kms-a"].pid
    cluster.pause_replica("kms-a")
    assert cluster.observe_replica("kms-a").state == "paused"
    cluster.resume_replica("kms-a")
    assert cluster.observe_replica("kms-a").state == "running"
    cluster.kill_replica("kms-a")
    assert cluster.observe_replica("kms-a").state == "stopped"
    # reaped: no zombie. Not at once: a killed process whose threads are still exiting
    # shows its leader as a zombie until the last one is gone (soak run 20/20 saw
    # /proc/PID then), and the spawner's kernel reaps it only after that
    assert old is not None
    wait_until(
        lambda: not Path(f"/proc/{old}").exists(),
        REAP_WITHIN_S,
        f"kms-a's killed process (pid {old}) to be reaped by the spawner",
        poll_s=0.01,
    )
    cluster.start_replica("kms-a")
    new = st.replicas["kms-a"].pid
    assert new is not None and new != old and _ppid(new) == st.spawner_pid
    assert cluster.observe_replica("kms-a").state == "running"


def test_a_replica_starts_again_after_its_spawner_died(cluster: LocalCluster) -> None:
    st = cluster.state
    dead, started = st.spawner_pid, st.spawner_pid_start
    assert dead is not None
    registry.kill_pids([dead], grace_s=0)
    # died: SIGKILL is sent at once, the process and its socket go a moment later (soak
    # runs 11 and 18/20 asked the dying one, whose socket still took the connect, and
    # were reset)
    wait_until(
        lambda: (
            not registry.process_alive(dead, started)
            and not spawner.answers(cluster.launcher.address)
        ),
        REAP_WITHIN_S,
        f"the killed spawner (pid {dead}) to be gone and its socket closed",
        poll_s=0.01,
    )
    cluster.kill_replica("kms-b")
    cluster.start_replica("kms-b")  # a new spawner, then the replica answers KMIP
    assert st.spawner_pid not in (None, dead)
    assert _ppid(st.replicas["kms-b"].pid or 0) == st.spawner_pid


@pytest.mark.skipif(faketime_library() is None, reason="libfaketime is not installed")
def test_a_replica_whose_clock_is_moved_starts_as_its_own_program(cluster: LocalCluster) -> None:
    st = cluster.state
    rs = st.replicas["kms-c"]
    ReplicaControls(rs).set_clock(3600)
    cluster.kill_replica("kms-c")
    cluster.start_replica("kms-c")
    rs = st.replicas["kms-c"]  # the state is read again when a replica changes
    pid = rs.pid
    assert pid is not None and _ppid(pid) != st.spawner_pid
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert spawner.REPLICA_MODULE.encode() in args
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    clock = str(ReplicaFolder(Path(rs.data_dir)).control / "clock").encode()
    assert b"FAKETIME_TIMESTAMP_FILE=" + clock in environ
    assert cluster.observe_replica("kms-c").state == "running"
    ReplicaControls(rs).set_clock(0)
