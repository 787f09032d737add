"""What one replica container is: its ports inside Docker, where its control folder is
mounted, and its command (also what docker/compose.yaml runs; its KMIP versions option
the local backend passes too); free host ports for a run's published links."""

from __future__ import annotations

import secrets
import socket
from typing import Any

from harness.cluster.controls import FAKETIME_SO, faketime_env
from harness.cluster.observed import StoreWitness
from harness.cluster.state import ClusterState
from harness.replica import versions
from harness.topology.model import replica_kmip_versions

KMIP_PORT = 5696
REPL_PORT = 5697
CONTROL_MOUNT = "/config"  # the replica's control folder: certificates, peers, controls


def distinct_free_ports(host: str, n: int) -> list[int]:
    """`n` different ports free on `host`: bound together, then released (the run's
    leased /24 is nobody else's, so they stay free until the engine publishes them)."""
    held: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            held.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def replica_command(state: ClusterState, name: str) -> list[str]:
    """The replica container's command (also what docker/compose.yaml runs)."""
    rs = state.replicas[name]
    rep = state.replication
    return [
        "/opt/kms/bin/python",
        "-m",
        "harness.replica",
        "--name",
        name,
        "--host",
        "0.0.0.0",
        "--port",
        str(KMIP_PORT),
        "--port-file",
        "/tmp/port",
        "--data-dir",
        "/data",
        "--cert",
        "/config/cert.pem",
        "--key",
        "/config/key.pem",
        "--ca",
        "/config/ca.pem",
        "--index",
        str(rs.index),
        "--replication",
        str(rep.get("profile", "none")),
        "--interval-ms",
        str(rep.get("interval_ms", 250)),
        "--repl-port",
        str(REPL_PORT),
        "--primary",
        str(rep.get("primary", "")),
        "--replicas",
        str(len(state.replicas)),
        "--peers-file",
        "/config/peers.json",
        "--control-dir",
        CONTROL_MOUNT,
        *kmip_versions_args(state.topology, name),
    ]


def kmip_versions_args(topology: dict[str, Any], name: str) -> list[str]:
    """The replica program's option for the KMIP versions the topology says `name`
    speaks (none: it speaks all PyKMIP's server does); both backends pass it."""
    spoken = replica_kmip_versions(topology, name)
    return [versions.FLAG, ",".join(spoken)] if spoken else []


def replica_environment() -> dict[str, str]:
    """The replica container's environment (also docker/compose.yaml's): libfaketime,
    which the kms image has, reading its offset from the mounted control folder."""
    return {"PYTHONWARNINGS": "ignore", **faketime_env(FAKETIME_SO, CONTROL_MOUNT)}


class VolumeMark(StoreWitness):
    """A file left in a replica container's ``/data`` before a wipe."""

    def __init__(self, cluster: Any, replica: str) -> None:
        self.cluster = cluster
        self.replica = replica
        self.path = f"/data/.kmschaos-witness-{secrets.token_hex(4)}"
        c = cluster._replica_container(replica)
        self.left = c.status == "running" and c.exec_run(["touch", self.path]).exit_code == 0

    def replaced(self) -> tuple[bool | None, str]:
        if not self.left:
            return None, f"no mark could be left in {self.replica}'s volume before the wipe"
        c = self.cluster._container(self.cluster.container_name(self.replica))
        if c is None or c.status != "running":
            return None, f"{self.replica}'s container does not run: its volume cannot be read"
        found = c.exec_run(["test", "-e", self.path]).exit_code
        mark = f"the mark {self.path} left in {self.replica}'s volume before the wipe"
        if found == 0:
            return False, f"{mark} is still there"
        if found == 1:
            return True, f"{mark} is gone: it runs on a new volume"
        return None, f"`test -e {self.path}` in {self.replica}'s container exited {found}"
