"""The local backend: replicas as processes on loopback, one Toxiproxy per cluster.

Address plan inside the run's leased /24 ``S = 127.X.Y``:

    replica i (1-based, topology order)   direct   S.(100+i):<kernel-chosen port>
    every client's link to replica i      listen   S.i:<that client's port>
    Toxiproxy API                                  S.254:<free port>

so a client reaches kms-a, kms-b, kms-c at S.1, S.2, S.3 on one shared port (what
PyKMIP's client, which takes a host list and one port, needs), and address S.i always
means replica i. Every process carries the run's label (see `harness.registry`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from harness import registry
from harness.client.operations import empty_client_config
from harness.client.policies import TlsFiles, VCenterPolicy
from harness.client.transport import Endpoint
from harness.cluster.base import (
    CAP_FIREWALL,
    CAP_LINKS,
    CAP_RESTART,
    CAP_SIGNALS,
    ClientState,
    ClusterError,
    ClusterState,
    ReplicaState,
    load_state,
    locked,
    save_state,
)
from harness.links import Link, ToxiproxyAPI, start_toxiproxy
from harness.pki import CLIENT_IDENTITY, CertificateAuthority
from harness.toolchain import find_toxiproxy_server, firewall_capability
from harness.topology import Topology, replica_names
from harness.wait import WaitTimeout, tail, wait_until

READY_DEADLINE_S = 60.0


def _free_port(hosts: list[str]) -> int:
    """A port free on every one of `hosts` (probed by binding, then released)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        held = []
        try:
            for h in hosts:
                s = socket.socket()
                held.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise ClusterError(f"no common free port on {hosts}")


class LocalCluster:
    """A running (or starting) local cluster. Use as a context manager, or `start()`
    / `stop()`; `attach(state_dir)` acts on one started by another process."""

    backend = "local"

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._api: ToxiproxyAPI | None = None
        caps = {CAP_LINKS, CAP_SIGNALS, CAP_RESTART}
        if firewall_capability() is None:
            caps.add(CAP_FIREWALL)
        self.capabilities = frozenset(caps)

    # ---- construction -----------------------------------------------------------

    @classmethod
    def create(
        cls,
        topology: Topology,
        state_dir: Path,
        *,
        detached: bool = False,
        run_id: str | None = None,
    ) -> LocalCluster:
        if not topology.replication_implemented:
            raise ClusterError(
                f"{topology.source}: replication.profile: '{topology.replication_profile}' "
                "is not implemented yet (available: none, async)"
            )
        state_dir = state_dir.resolve()
        existing = state_dir / "state.json"
        if existing.exists():
            with contextlib.suppress(ClusterError):
                old = load_state(state_dir)
                if old.status != "down" and _run_alive(old):
                    raise ClusterError(
                        f"a cluster ({old.run_id}, {old.topology.get('name')}) is already "
                        f"running from {state_dir}/; run `kmschaos down --state-dir {state_dir}` "
                        "first or choose another --state-dir"
                    )
        state = ClusterState(
            run_id=run_id or registry.new_run_id(),
            backend="local",
            state_dir=str(state_dir),
            subnet="",
            topology=topology.to_dict(),
            topology_source=topology.source,
            detached=detached,
            tls={},
            created=time.time(),
        )
        return cls(state)

    @classmethod
    def attach(cls, state_dir: Path) -> LocalCluster:
        state = load_state(state_dir.resolve())
        if state.status == "down":
            raise ClusterError(
                f"the cluster in {state_dir}/ ({state.run_id}) is down; "
                "start one with `kmschaos up`"
            )
        return cls(state)

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- lifecycle ---------------------------------------------------------------

    def start(self, progress: bool = False) -> LocalCluster:
        st = self.state
        sdir = Path(st.state_dir)
        sdir.mkdir(parents=True, exist_ok=True)
        binary, _version = find_toxiproxy_server()
        registry.reap()  # leftovers of killed runs go first
        st.subnet = registry.lease_subnet(st.run_id)
        me = os.getpid()
        registry.write_entry(
            registry.RunEntry(
                run_id=st.run_id,
                subnet=st.subnet,
                owner_pid=me,
                owner_start=registry.process_start_time(me),
                detached=st.detached,
                state_dir=st.state_dir,
                backend="local",
                created=time.time(),
            )
        )
        topo = st.topology
        sites = {s: replica_names(v["replicas"]) for s, v in topo["sites"].items()}
        names = [r for reps in sites.values() for r in reps]
        site_of = {r: s for s, reps in sites.items() for r in reps}
        subnet = st.subnet

        ca = CertificateAuthority(sdir / "pki", st.run_id)
        client_tls = ca.issue("client", CLIENT_IDENTITY, server=False)
        st.tls = client_tls.to_dict()
        for i, name in enumerate(names, 1):
            rs = ReplicaState(
                name=name,
                site=site_of[name],
                index=i,
                client_host=f"{subnet}.{i}",
                host=f"{subnet}.{100 + i}",
                data_dir=str(sdir / "replicas" / name),
            )
            cert = ca.issue(
                name,
                name,
                server=True,
                addresses=(rs.client_host, rs.host, "127.0.0.1"),
                dns_names=(name, "localhost"),
            )
            rs.cert, rs.key = cert.cert, cert.key
            st.replicas[name] = rs
        self._save()

        api_host = f"{subnet}.254"
        api_port = _free_port([api_host])
        proc = start_toxiproxy(
            binary, api_host, api_port, sdir / "toxiproxy.log", registry.labelled_env(st.run_id)
        )
        st.toxiproxy_api = f"http://{api_host}:{api_port}"
        st.toxiproxy_pid = proc.pid
        st.toxiproxy_pid_start = registry.process_start_time(proc.pid)
        self._save()

        for name in names:
            self._spawn(name)
        self._save()
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(self._await_replica, names))
        self._save()
        if st.replication.get("profile", "none") != "none":
            self._create_replication_links(names)

        conf_dir = sdir / "clients"
        conf_dir.mkdir(exist_ok=True)
        for cname, c in topo["clients"].items():
            order: list[str] = c["order"]
            hosts = [st.replicas[r].client_host for r in order]
            port = _free_port(hosts)
            endpoints = [
                {"replica": r, "host": st.replicas[r].client_host, "port": port} for r in order
            ]
            for r in order:
                rs = st.replicas[r]
                link = Link(
                    name=f"{cname}->{r}",
                    client=cname,
                    replica=r,
                    listen=f"{rs.client_host}:{port}",
                    upstream=f"{rs.host}:{rs.port}",
                )
                self._open_link(link, st.links)
            conf = conf_dir / f"{cname}.pykmip.conf"
            conf.write_text(
                "[client]\n"
                f"host={','.join(hosts)}\n"
                f"port={port}\n"
                f"certfile={client_tls.cert}\n"
                f"keyfile={client_tls.key}\n"
                f"ca_certs={client_tls.ca}\n"
                "cert_reqs=CERT_REQUIRED\n"
                "ssl_version=PROTOCOL_SSLv23\n"
                "do_handshake_on_connect=True\n"
                "suppress_ragged_eofs=True\n"
            )
            st.clients[cname] = ClientState(
                name=cname,
                site=c["site"],
                policy=c["policy"],
                port=port,
                endpoints=endpoints,
                pykmip_conf=str(conf),
            )
        self._save()
        # every link answers a real KMIP round trip
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self._await_link, st.link_objects()))
        st.status = "ready"
        self._save()
        return self

    def _open_link(self, link: Link, into: list[dict[str, str]]) -> None:
        """Create the link's Toxiproxy proxy and record it in the state."""
        self.api.create_proxy(link.name, link.listen, link.upstream)
        into.append(dataclasses.asdict(link))

    def _create_replication_links(self, names: list[str]) -> None:
        """One Toxiproxy link per replica pair and direction; each replica's agent finds
        its peers (through those links) in its ``peers.json``."""
        st = self.state
        host = f"{st.subnet}.253"
        for src in names:
            peers = {}
            for dst in names:
                if src == dst:
                    continue
                d = st.replicas[dst]
                link = Link(
                    name=f"{src}=>{dst}",
                    client=src,
                    replica=dst,
                    listen=f"{host}:{_free_port([host])}",
                    upstream=f"{d.host}:{d.repl_port}",
                )
                self._open_link(link, st.replication_links)
                peers[dst] = link.listen
            peers_file = Path(st.replicas[src].data_dir) / "peers.json"
            tmp = peers_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"me": src, "peers": peers}, indent=2))
            os.replace(tmp, peers_file)
        self._save()

    def stop(self) -> None:
        """Heal nothing, keep nothing: kill every process of the run, delete its
        firewall rules, release its addresses. Safe to call twice and after a
        partial start."""
        st = self.state
        # PyKMIP's server only notices SIGTERM when its accept() times out (10 s), and
        # SQLite survives SIGKILL: replicas get SIGKILL at once, Toxiproxy a SIGTERM.
        registry.kill_pids([r.pid for r in st.replicas.values() if r.pid], grace_s=0)
        if st.toxiproxy_pid:
            registry.kill_pids([st.toxiproxy_pid])
        registry.reap_run(st.run_id)
        if self._api is not None:
            self._api.close()
            self._api = None
        for r in st.replicas.values():
            r.status = "stopped"
            r.pid = None
        st.toxiproxy_pid = None
        st.status = "down"
        with contextlib.suppress(OSError):
            self._save()

    # ---- replicas ----------------------------------------------------------------

    def _spawn(self, name: str) -> None:
        st = self.state
        rs = st.replicas[name]
        data = Path(rs.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        port_file = data / "port"
        with contextlib.suppress(FileNotFoundError):
            port_file.unlink()
        log = (data / "stdout.log").open("ab")
        env = registry.labelled_python_env(st.run_id)
        env["PYTHONWARNINGS"] = "ignore"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.replica",
                "--name",
                name,
                "--host",
                rs.host,
                "--port",
                str(rs.port),
                "--port-file",
                str(port_file),
                "--data-dir",
                str(data),
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
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        rs.pid = proc.pid
        rs.pid_start = registry.process_start_time(proc.pid)
        rs.status = "starting"
        self._procs = getattr(self, "_procs", {})
        self._procs[name] = proc

    def _logs(self, name: str) -> list[Path]:
        data = Path(self.state.replicas[name].data_dir)
        return [data / "stdout.log", data / "pykmip-server.log"]

    def _await_replica(self, name: str) -> None:
        rs = self.state.replicas[name]
        data = Path(rs.data_dir)
        port_file = data / "port"

        def bound() -> bool:
            if not registry.process_alive(rs.pid or 0, rs.pid_start):
                raise ClusterError(
                    f"replica {name} exited while starting on {rs.host}; last log lines:\n"
                    + "\n".join(f"--- {p} ---\n{tail(p)}" for p in self._logs(name))
                )
            return port_file.exists()

        wait_until(
            bound, READY_DEADLINE_S, f"replica {name} to bind {rs.host}", logs=self._logs(name)
        )
        ports = port_file.read_text().split()
        rs.port = int(ports[0])
        rs.repl_port = int(ports[1]) if len(ports) > 1 else 0
        ep = Endpoint(name, rs.host, rs.port)
        self._kmip_round_trip(ep, f"replica {name} at {rs.host}:{rs.port}", name)
        rs.status = "running"

    def _await_link(self, link: Link) -> None:
        ep = Endpoint(link.replica, link.host, link.port)
        self._kmip_round_trip(ep, f"link {link.name} at {link.listen}", link.replica)

    def _kmip_round_trip(self, ep: Endpoint, what: str, replica: str) -> None:
        st = self.state
        tls = TlsFiles(st.tls["ca"], st.tls["cert"], st.tls["key"])
        conf = empty_client_config(Path(st.state_dir) / "clients")
        policy = VCenterPolicy([ep], tls, 2.0, 5.0, conf)
        last = {"error": ""}
        rs = st.replicas[replica]

        def answered() -> bool:
            if not registry.process_alive(rs.pid or 0, rs.pid_start):
                raise ClusterError(
                    f"replica {replica} died before {what} answered; last log lines:\n"
                    + "\n".join(f"--- {p} ---\n{tail(p)}" for p in self._logs(replica))
                )
            r = policy.execute("locate", None)
            last["error"] = r.error
            return r.outcome == "ok"

        try:
            wait_until(
                answered,
                READY_DEADLINE_S,
                f"a KMIP Locate answer from {what}",
                poll_s=0.05,
                logs=self._logs(replica),
            )
        except WaitTimeout as e:
            raise ClusterError(f"{e} (last attempt: {last['error']})") from None

    def pause_replica(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP)
        self._set_status(name, "paused")

    def resume_replica(self, name: str) -> None:
        self._signal(name, signal.SIGCONT)
        self._set_status(name, "running")

    def kill_replica(self, name: str) -> None:
        rs = self._replica(name)
        if rs.pid and registry.process_alive(rs.pid, rs.pid_start):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rs.pid, signal.SIGKILL)
            wait_until(
                lambda: not registry.process_alive(rs.pid or 0, rs.pid_start),
                10,
                f"replica {name} (pid {rs.pid}) to die after SIGKILL",
            )
            proc = getattr(self, "_procs", {}).get(name)
            if proc is not None:
                proc.wait(timeout=5)
        self._update_replica(name, pid=None, status="stopped")

    def start_replica(self, name: str) -> None:
        """Start a stopped replica again on its data, address and port; wait until it
        answers KMIP."""
        rs = self._replica(name)
        if rs.pid and registry.process_alive(rs.pid, rs.pid_start):
            return
        self._spawn(name)
        self._save_replica(name)
        self._await_replica(name)
        self._save_replica(name)

    def replica_running(self, name: str) -> bool:
        rs = self._replica(name)
        return bool(rs.pid) and registry.process_alive(rs.pid or 0, rs.pid_start)

    def _signal(self, name: str, sig: signal.Signals) -> None:
        rs = self._replica(name)
        if not rs.pid or not registry.process_alive(rs.pid, rs.pid_start):
            raise ClusterError(f"replica {name} is not running (status {rs.status})")
        os.killpg(rs.pid, sig)

    def _replica(self, name: str) -> ReplicaState:
        try:
            return self.state.replicas[name]
        except KeyError:
            known = ", ".join(self.state.replicas)
            raise ClusterError(f"unknown replica {name!r} (known: {known})") from None

    def _set_status(self, name: str, status: str) -> None:
        self._update_replica(name, status=status)

    def _save_replica(self, name: str) -> None:
        self._update_replica(name, **dataclasses.asdict(self.state.replicas[name]))

    def _update_replica(self, replica_name: str, /, **fields: object) -> None:
        """Set fields of one replica's state under the state folder's lock, on top of
        what other processes (CLI, tests) wrote meanwhile."""
        with locked(Path(self.state.state_dir)):
            self._reload()
            replica = self.state.replicas[replica_name]
            for key, value in fields.items():
                setattr(replica, key, value)
            self._save()

    def _reload(self) -> None:
        with contextlib.suppress(ClusterError):
            fresh = load_state(Path(self.state.state_dir))
            if fresh.run_id == self.state.run_id:
                self.state.replicas = fresh.replicas

    def _save(self) -> None:
        save_state(self.state)

    # ---- links -------------------------------------------------------------------

    @property
    def api(self) -> ToxiproxyAPI:
        if self._api is None:
            if not self.state.toxiproxy_api:
                raise ClusterError("Toxiproxy is not running for this cluster")
            self._api = ToxiproxyAPI(self.state.toxiproxy_api)
        return self._api

    def links_into(self, replica: str) -> list[Link]:
        self._replica(replica)
        return [link for link in self.state.link_objects() if link.replica == replica]

    def client_tls(self) -> TlsFiles:
        t = self.state.tls
        return TlsFiles(t["ca"], t["cert"], t["key"])

    def status(self) -> dict[str, object]:
        """The `status --json` document."""
        st = self.state
        replicas = {}
        for name, rs in st.replicas.items():
            alive = bool(rs.pid) and registry.process_alive(rs.pid or 0, rs.pid_start)
            state = rs.status if alive else "stopped"
            replicas[name] = {
                "site": rs.site,
                "host": rs.host,
                "port": rs.port,
                "client_host": rs.client_host,
                "replication_port": rs.repl_port or None,
                "pid": rs.pid if alive else None,
                "state": state,
            }
        return {
            "run_id": st.run_id,
            "backend": st.backend,
            "topology": st.topology.get("name"),
            "topology_file": st.topology_source,
            "state_dir": st.state_dir,
            "status": st.status,
            "toxiproxy_api": st.toxiproxy_api,
            "tls": dict(st.tls),
            "tls_identity": CLIENT_IDENTITY,
            "replication": {
                **st.replication,
                "links": [
                    {
                        "name": d["name"],
                        "from": d["client"],
                        "to": d["replica"],
                        "listen": d["listen"],
                    }
                    for d in st.replication_links
                ],
            },
            "clients": {
                name: {
                    "site": c.site,
                    "policy": c.policy,
                    "port": c.port,
                    "endpoints": c.endpoints,
                    "hosts": ",".join(e["host"] for e in c.endpoints),
                    "pykmip_conf": c.pykmip_conf,
                    **st.tls,
                }
                for name, c in st.clients.items()
            },
            "replicas": replicas,
        }


def _run_alive(state: ClusterState) -> bool:
    if state.toxiproxy_pid and registry.process_alive(
        state.toxiproxy_pid, state.toxiproxy_pid_start
    ):
        return True
    return any(
        r.pid and registry.process_alive(r.pid, r.pid_start) for r in state.replicas.values()
    )
