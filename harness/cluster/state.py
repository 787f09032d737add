"""The persisted cluster state (``state.json``), its lock, and the capability names.

What a started cluster writes to its state folder so that another process (the CLI,
a test, a fault healed later) can attach to it. Kept apart from the cluster classes:
`harness.external` and the faults read a state without starting anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.client.transport import Endpoint
from harness.links import Link
from harness.store import StateFolder

# Abilities a fault may need.
CAP_LINKS = "links"  # Toxiproxy in front of every client -> replica path
CAP_SIGNALS = "signals"  # freeze / resume a replica (SIGSTOP / SIGCONT, docker pause)
CAP_RESTART = "restart"  # kill a replica and start it again on the same data
CAP_FIREWALL = "firewall"  # drop packets to an address (iptables / network disconnect)
CAP_RESETS = "resets"  # a TCP RST from a link reaches the client as a reset
CAP_TLS = "tls"  # the replica program's live TLS and connection controls (control folder)
CAP_CLOCK = "clock"  # libfaketime preloaded into every replica: its clock can be moved


class ClusterError(RuntimeError):
    """The cluster could not be started, found, or acted on; the message says why."""

    bad_input = False  # the user's setup is at fault (the command line exits 2)


@dataclass
class ReplicaState:
    name: str
    site: str
    index: int
    client_host: str  # the address every client link of this replica listens on
    host: str  # the replica's direct address
    port: int = 0
    repl_port: int = 0  # the replication agent's port (async profile), else 0
    pid: int | None = None
    pid_start: int | None = None
    status: str = "stopped"  # running | paused | stopped
    data_dir: str = ""
    cert: str = ""
    key: str = ""
    node: str = ""  # the swarm node that runs it (swarm backend), else ""


@dataclass
class BalancerState:
    """A load balancer (HAProxy): `client_host` is where clients' links to it listen,
    `host:port` its frontend (the VIP); `stats` its stats socket, `config` and `log`
    its files."""

    name: str
    site: str
    index: int
    client_host: str
    host: str
    port: int = 0
    pid: int | None = None
    pid_start: int | None = None
    status: str = "stopped"  # running | paused | stopped
    config: str = ""
    stats: str = ""
    log: str = ""
    client_pem: str = ""


@dataclass
class ClientState:
    name: str
    site: str
    policy: str
    port: int
    endpoints: list[dict[str, Any]]
    pykmip_conf: str = ""


@dataclass
class ClusterState:
    run_id: str
    backend: str
    state_dir: str
    subnet: str
    topology: dict[str, Any]
    topology_source: str
    detached: bool
    tls: dict[str, str]  # ca, cert, key of the shared client identity
    toxiproxy_api: str = ""
    toxiproxy_pid: int | None = None
    toxiproxy_pid_start: int | None = None
    spawner_pid: int | None = None  # the replica spawner (local backend)
    spawner_pid_start: int | None = None
    replicas: dict[str, ReplicaState] = field(default_factory=dict)
    clients: dict[str, ClientState] = field(default_factory=dict)
    links: list[dict[str, str]] = field(default_factory=list)
    replication_links: list[dict[str, str]] = field(default_factory=list)
    balancers: dict[str, BalancerState] = field(default_factory=dict)
    status: str = "starting"  # starting | ready | down
    created: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterState:
        d = dict(d)
        d["replicas"] = {k: ReplicaState(**v) for k, v in d.get("replicas", {}).items()}
        d["clients"] = {k: ClientState(**v) for k, v in d.get("clients", {}).items()}
        d["balancers"] = {k: BalancerState(**v) for k, v in d.get("balancers", {}).items()}
        return cls(**d)

    def client_host(self, server: str) -> str:
        """Where clients' links to `server` (a replica or a balancer) listen."""
        lb = self.balancers.get(server)
        return lb.client_host if lb is not None else self.replicas[server].client_host

    def site_of(self, name: str) -> str:
        """The site of a client, replica or balancer of this cluster."""
        for group in (self.clients, self.replicas, self.balancers):
            if name in group:
                return str(group[name].site)
        raise KeyError(name)

    def endpoints(self, client: str) -> list[Endpoint]:
        c = self.clients[client]
        return [
            Endpoint(e["replica"], e["host"], int(e["port"]), e.get("server_name", ""))
            for e in c.endpoints
        ]

    def link_objects(self) -> list[Link]:
        return [Link(**d) for d in self.links]

    def replication_link_objects(self) -> list[Link]:
        """Replica -> replica links; `client` holds the source replica."""
        return [Link(**d) for d in self.replication_links]

    @property
    def replication(self) -> dict[str, Any]:
        rep: dict[str, Any] = self.topology.get("replication") or {"profile": "none"}
        return rep


def state_path(state_dir: Path) -> Path:
    return StateFolder(state_dir).state


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of a state folder across processes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(StateFolder(state_dir).lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def save_state(state: ClusterState) -> None:
    path = state_path(Path(state.state_dir))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2))
    os.replace(tmp, path)


def load_state(state_dir: Path) -> ClusterState:
    path = state_path(state_dir)
    try:
        return ClusterState.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ClusterError(
            f"no cluster state in {state_dir}/ (state.json missing): start one with "
            "`kmschaos up TOPOLOGY`, or pass the --state-dir it was started with"
        ) from None
    except (ValueError, TypeError) as e:
        raise ClusterError(
            f"{path}: unreadable cluster state ({e}); run `kmschaos down --all`"
        ) from e
