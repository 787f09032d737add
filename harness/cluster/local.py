"""The local backend: replicas as processes on loopback, one Toxiproxy per cluster.

Address plan inside the run's leased /24 ``S = 127.X.Y``:

    replica i (1-based, topology order)   direct   S.(100+i):<kernel-chosen port>
    every client's link to replica i      listen   S.i:<that client's port>
    Toxiproxy API                                  S.254:<free port>

so a client reaches kms-a, kms-b, kms-c at S.1, S.2, S.3 on one shared port (what
PyKMIP's client, which takes a host list and one port, needs), and address S.i always
means replica i. Every process carries the run's label (see `harness.registry`).

An external replica (`harness.external`) is not started: its links lead to the user's
KMS, it is checked directly before anything else starts, and the keys the run made on it
are destroyed at `stop` unless kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from harness import registry
from harness.cluster.base import (
    READY_DEADLINE_S,
    BaseCluster,
    ReplicaObservation,
    StoreWitness,
    free_port,
)
from harness.cluster.controls import ReplicaControls, faketime_library
from harness.cluster.docker_replica import kmip_versions_args
from harness.cluster.local_spawn import ReplicaLauncher
from harness.cluster.state import (
    CAP_CLOCK,
    CAP_FIREWALL,
    CAP_LINKS,
    CAP_RESETS,
    CAP_RESTART,
    CAP_SIGNALS,
    CAP_TLS,
    BalancerState,
    ClusterError,
    ClusterState,
    ReplicaState,
)
from harness.lb.local import LocalBalancers
from harness.lb.runner import Balancers
from harness.links import Link, start_toxiproxy
from harness.replica.peers import write_peers
from harness.replica.spawner import is_replica_process
from harness.store import ReplicaFolder, StateFolder
from harness.toolchain import find_toxiproxy_server, firewall_capability
from harness.wait import WaitTimeout, tail, wait_until

PAUSE_DEADLINE_S = 2.0  # SIGSTOP takes effect in microseconds; this is a generous bound


def _upstream(rs: ReplicaState | BalancerState) -> str:
    """Where a client link to the replica leads (its direct address)."""
    host = f"[{rs.host}]" if ":" in rs.host else rs.host
    return f"{host}:{rs.port}"


class LocalCluster(BaseCluster):
    """A running (or starting) local cluster. Use as a context manager, or `start()`
    / `stop()`; `attach(state_dir)` acts on one started by another process."""

    backend = "local"
    supports_external = True

    def __init__(self, state: ClusterState) -> None:
        super().__init__(state)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.launcher = ReplicaLauncher(state)
        caps = {CAP_LINKS, CAP_SIGNALS, CAP_RESTART, CAP_RESETS, CAP_TLS}
        if faketime_library():
            caps.add(CAP_CLOCK)
        if firewall_capability() is None:
            caps.add(CAP_FIREWALL)
        self.capabilities = frozenset(caps)

    def _balancers(self) -> Balancers:
        return LocalBalancers(self)

    # ---- lifecycle ---------------------------------------------------------------

    def start(self, progress: bool = False) -> LocalCluster:
        st = self.state
        sdir = Path(st.state_dir)
        binary, _version = find_toxiproxy_server()
        if st.topology.get("load_balancers"):
            LocalBalancers.binary()  # haproxy missing: said before anything starts
        self._register()
        self._plan_replicas()
        names = list(st.replicas)
        external = sorted(self.external_replicas())
        own = [n for n in names if n not in external]
        # a real KMS that does not answer (or does not know the client) fails the start
        # before any process runs
        for name in external:
            self.await_direct(name)

        if own:
            self.launcher.start_spawner()  # imports while Toxiproxy starts
            self._save()
        api_host = f"{st.subnet}.254"
        api_port = free_port([api_host])
        proc = start_toxiproxy(
            binary,
            api_host,
            api_port,
            StateFolder(sdir).toxiproxy_log,
            registry.labelled_env(st.run_id),
        )
        st.toxiproxy_api = f"http://{api_host}:{api_port}"
        st.toxiproxy_pid = proc.pid
        st.toxiproxy_pid_start = registry.process_start_time(proc.pid)
        self._save()

        if own:
            self.launcher.await_spawner()
        for name in own:
            self._spawn(name, with_cluster=True)
        self._save()
        if own:
            with ThreadPoolExecutor(max_workers=len(own)) as pool:
                list(pool.map(self._await_replica, own))
        self._save()
        if st.replication.get("profile", "none") != "none":
            self._create_replication_links(names)
        for lb_links in self._plan_balancer_links(_upstream).values():
            self._open_links(lb_links, st.links)
        self._save()
        self.balancers.start_all()

        plans = self._plan_clients(_upstream)
        self._open_links([link for plan in plans for link in plan.links], st.links)
        for plan in plans:
            st.clients[plan.state.name] = plan.state
        self._save()
        # every link answers a real KMIP round trip
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self.await_link, st.link_objects()))
        st.status = "ready"
        self._save()
        return self

    def _open_links(self, links: list[Link], into: list[dict[str, str]]) -> None:
        """Create the links' Toxiproxy proxies (one API call) and record them."""
        self.api.populate(links)
        for link in links:
            self._record_link(link, into)

    def _create_replication_links(self, names: list[str]) -> None:
        """One Toxiproxy link per replica pair and direction; each replica's agent finds
        its peers (through those links) in its ``peers.json``."""
        st = self.state
        host = f"{st.subnet}.253"
        links: list[Link] = []
        peers: dict[str, dict[str, str]] = {src: {} for src in names}
        ports: set[int] = set()  # chosen, not bound until the proxies are created
        for src in names:
            for dst in names:
                if src == dst:
                    continue
                d = st.replicas[dst]
                port = free_port([host], ports)
                ports.add(port)
                link = Link(
                    name=f"{src}=>{dst}",
                    client=src,
                    replica=dst,
                    listen=f"{host}:{port}",
                    upstream=f"{d.host}:{d.repl_port}",
                )
                links.append(link)
                peers[src][dst] = link.listen
        self._open_links(links, st.replication_links)
        for src, addresses in peers.items():
            write_peers(Path(st.replicas[src].data_dir), src, addresses)
        self._save()

    def stop(self) -> None:
        """Heal nothing, keep nothing: destroy the keys made on external replicas
        (unless `keep_keys`), kill every process of the run, delete its firewall
        rules, release its addresses. Safe to call twice and after a partial start."""
        try:
            self.settle_external_keys()
        finally:
            self._stop_processes()

    def _stop_processes(self) -> None:
        st = self.state
        # PyKMIP's server only notices SIGTERM when its accept() times out (10 s), and
        # SQLite survives SIGKILL: replicas get SIGKILL at once, Toxiproxy a SIGTERM.
        replicas = [r.pid for r in st.replicas.values() if r.pid]
        registry.kill_pids(replicas, grace_s=0)
        registry.kill_pids([b.pid for b in st.balancers.values() if b.pid], grace_s=0)
        self.launcher.stop_spawner(replicas)
        if st.toxiproxy_pid:
            registry.kill_pids([st.toxiproxy_pid])
        registry.reap_run(st.run_id)
        self._close_api()
        for r in st.replicas.values():
            r.status = "external" if r.name in self.external_replicas() else "stopped"
            r.pid = None
        for b in st.balancers.values():
            b.status, b.pid = "stopped", None
        st.toxiproxy_pid = None
        st.status = "down"
        with contextlib.suppress(OSError):
            self._save()

    def anything_running(self) -> bool:
        st = self.state
        if st.toxiproxy_pid and registry.process_alive(st.toxiproxy_pid, st.toxiproxy_pid_start):
            return True
        if self.launcher.running():
            return True
        procs: list[ReplicaState | BalancerState] = [*st.replicas.values(), *st.balancers.values()]
        return any(p.pid and registry.process_alive(p.pid, p.pid_start) for p in procs)

    # ---- replicas ----------------------------------------------------------------

    def _spawn(self, name: str, with_cluster: bool = False) -> None:
        """Start the replica program; `with_cluster`: as the cluster starts (no peer
        knows an older epoch of it)."""
        st = self.state
        rs = st.replicas[name]
        data = ReplicaFolder(Path(rs.data_dir))
        data.root.mkdir(parents=True, exist_ok=True)
        port_file = data.port_file
        with contextlib.suppress(FileNotFoundError):
            port_file.unlink()
        controls = ReplicaControls(rs)
        argv = [
            "--name",
            name,
            "--host",
            rs.host,
            "--port",
            str(rs.port),
            "--port-file",
            str(port_file),
            "--data-dir",
            str(data.root),
            "--cert",
            rs.cert,
            "--key",
            rs.key,
            "--ca",
            st.tls["ca"],
            "--index",
            str(rs.index),
            "--replication",
            str(st.replication.get("profile", "none")),
            "--interval-ms",
            str(st.replication.get("interval_ms", 250)),
            "--repl-port",
            str(rs.repl_port),
            "--primary",
            str(st.replication.get("primary", "")),
            "--replicas",
            str(len(st.replicas)),
            "--control-dir",
            str(controls.dir),
            *kmip_versions_args(st.topology, name),
            *(["--no-announce"] if with_cluster else []),
        ]
        pid, proc = self.launcher.launch(rs, argv)
        rs.pid = pid
        rs.pid_start = registry.process_start_time(pid)
        rs.status = "starting"
        if proc is not None:
            self._procs[name] = proc
        else:
            self._procs.pop(name, None)

    def _logs(self, name: str) -> list[Path]:
        data = ReplicaFolder(Path(self.state.replicas[name].data_dir))
        return [data.stdout_log, data.server_log]

    def replica_logs(self, name: str) -> str:
        if name in self.external_replicas():
            return f"(external target {name}: kmschaos has no log of it)"
        return "\n".join(f"--- {p} ---\n{tail(p)}" for p in self._logs(name))

    def _await_replica(self, name: str) -> None:
        rs = self.state.replicas[name]
        port_file = ReplicaFolder(Path(rs.data_dir)).port_file

        def bound() -> bool:
            if not self.replica_running(name):
                raise ClusterError(
                    f"replica {name} exited while starting on {rs.host}; last log lines:\n"
                    + self.replica_logs(name)
                )
            return port_file.exists()

        wait_until(
            bound, READY_DEADLINE_S, f"replica {name} to bind {rs.host}", logs=self._logs(name)
        )
        ports = port_file.read_text().split()
        rs.port = int(ports[0])
        rs.repl_port = int(ports[1]) if len(ports) > 1 else 0
        self.await_direct(name)
        rs.status = "running"

    def pause_replica(self, name: str) -> None:
        """SIGSTOP the replica's process group, then check in the process table that
        every process of it stopped (state T); `ClusterError` naming those that did not."""
        self._own(name, "freeze")
        self._signal(name, signal.SIGSTOP)
        try:
            wait_until(
                lambda: self.observe_replica(name).state == "paused",
                PAUSE_DEADLINE_S,
                f"every process of {name} to stop",
                poll_s=0.005,
            )
        except WaitTimeout:
            seen = self.observe_replica(name)
            raise ClusterError(
                f"replica {name} did not stop after SIGSTOP to its process group: {seen.detail}"
            ) from None
        self._set_status(name, "paused")

    def resume_replica(self, name: str) -> None:
        if name in self.external_replicas():
            return  # never frozen
        self._signal(name, signal.SIGCONT)
        self._set_status(name, "running")

    def kill_replica(self, name: str) -> None:
        self._own(name, "kill")
        rs = self._replica(name)
        if rs.pid and registry.process_alive(rs.pid, rs.pid_start):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rs.pid, signal.SIGKILL)
            wait_until(
                lambda: not registry.process_alive(rs.pid or 0, rs.pid_start),
                10,
                f"replica {name} (pid {rs.pid}) to die after SIGKILL",
            )
            proc = self._procs.get(name)
            if proc is not None:
                proc.wait(timeout=5)
        self._update_replica(name, pid=None, status="stopped")

    def start_replica(self, name: str) -> None:
        """Start a stopped replica again on its data, address and port; wait until it
        answers KMIP."""
        rs = self._replica(name)
        if name in self.external_replicas():
            return  # not ours to start; it runs (or not) on its own
        if rs.pid and registry.process_alive(rs.pid, rs.pid_start):
            return
        self._spawn(name)
        self._save_replica(name)
        self._await_replica(name)
        self._save_replica(name)

    def wipe_replica(self, name: str) -> None:
        """Kill the replica, delete its databases, start it again empty."""
        self._own(name, "wipe")
        self.kill_replica(name)
        for db in ReplicaFolder(Path(self._replica(name).data_dir)).databases:
            with contextlib.suppress(FileNotFoundError):
                db.unlink()
        self.start_replica(name)

    def replica_running(self, name: str) -> bool:
        rs = self._replica(name)
        if name in self.external_replicas():
            return True  # not ours to know; links and checkers see what it does
        return bool(rs.pid) and registry.process_alive(rs.pid or 0, rs.pid_start)

    def replica_pid(self, name: str) -> int | None:
        return self._replica(name).pid

    def _replica_processes(self, name: str) -> dict[int, tuple[str, int]]:
        """pid -> (state letter, start time) of every live process of the replica, found
        in the process table — the replica program on this replica's data folder (by its
        command line, or forked by the spawner and working in its folder), and every
        member of their process groups —
        not from what the state recorded. Zombies are dead and left out."""
        data_dir = os.path.realpath(self._replica(name).data_dir)
        leaders: set[int] = set()
        procs: dict[int, tuple[str, int, int]] = {}  # pid -> (state, pgrp, start)
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                args = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z":
                continue
            pid = int(d.name)
            procs[pid] = (fields[0], int(fields[2]), int(fields[19]))
            if is_replica_process(args, partial(os.readlink, d / "cwd"), data_dir):
                leaders.add(int(fields[2]))
        return {
            pid: (state, start) for pid, (state, pgrp, start) in procs.items() if pgrp in leaders
        }

    def observe_replica(self, name: str) -> ReplicaObservation:
        if name in self.external_replicas():
            return super().observe_replica(name)
        procs = self._replica_processes(name)
        if not procs:
            return ReplicaObservation("stopped", None, f"no process of {name} runs")
        listed = ", ".join(f"pid {pid} ({state})" for pid, (state, _) in sorted(procs.items()))
        leader = min(procs, key=lambda pid: procs[pid][1])  # the first one started
        incarnation = f"pid {leader} started at tick {procs[leader][1]}"
        if all(state in "Tt" for state, _ in procs.values()):
            return ReplicaObservation("paused", incarnation, f"every process stopped: {listed}")
        return ReplicaObservation("running", incarnation, f"its processes: {listed}")

    def store_witness(self, name: str) -> StoreWitness:
        """The replica's database files, held open: a wipe deletes them (they lose their
        last name) and the replica comes back on new, empty ones; holding them open keeps
        their inodes from being reused meanwhile."""
        data = ReplicaFolder(Path(self._replica(name).data_dir))
        return _HeldDatabases(name, [p for p in data.databases if p.exists()])

    def _signal(self, name: str, sig: signal.Signals) -> None:
        rs = self._replica(name)
        if not rs.pid or not registry.process_alive(rs.pid, rs.pid_start):
            raise ClusterError(f"replica {name} is not running (status {rs.status})")
        os.killpg(rs.pid, sig)


class _HeldDatabases(StoreWitness):
    """A local replica's database files, held open across a wipe."""

    def __init__(self, replica: str, paths: list[Path]) -> None:
        self.replica = replica
        self.files = {}
        for p in paths:
            with contextlib.suppress(OSError):
                self.files[p] = p.open("rb")

    def replaced(self) -> tuple[bool | None, str]:
        if not self.files:
            return None, f"{self.replica} had no database file before the wipe"
        kept, fresh = [], []
        for path, held in self.files.items():
            was = os.fstat(held.fileno())
            try:
                now = os.stat(path)
            except FileNotFoundError:
                fresh_name = None
            else:
                fresh_name = path.name
                if was.st_nlink and (now.st_dev, now.st_ino) == (was.st_dev, was.st_ino):
                    kept.append(path.name)
                    continue
            if fresh_name:
                fresh.append(fresh_name)
        if kept:
            return False, f"{self.replica}'s {_named(kept)}: still the files it had before"
        made = f"; it runs on new {_named(fresh)}" if fresh else ""
        old = _named([p.name for p in self.files])
        return True, f"{self.replica}'s {old} deleted (the old files have no name left){made}"

    def close(self) -> None:
        for held in self.files.values():
            held.close()
        self.files = {}


def _named(files: list[str]) -> str:
    """Database files by their main names: "kms.sqlite (and journals)"."""
    main = [f for f in files if not f.endswith(("-journal", "-wal", "-shm"))]
    more = " (and journals)" if len(main) < len(files) else ""
    return ", ".join(main or files) + more
