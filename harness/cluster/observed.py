"""What a cluster is seen to be, not what it recorded: a replica's process or container
as observed now (`ReplicaObservation`, from `BaseCluster.observe_replica`), a witness of
a replica's store across a wipe (`StoreWitness`), and the ``status --json`` document
(`status_document`: the state, with the replicas as observed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness import external
from harness.cluster.state import ClusterState
from harness.pki import CLIENT_IDENTITY


@dataclasses.dataclass(frozen=True)
class ReplicaObservation:
    """What the harness saw of a replica's process or container just now — not what it
    recorded: `state` is running, paused (every process stopped, the container paused),
    stopped (no process, the container not running) or external; `incarnation` names
    this run of the replica (pid and start time, container id and start), None when it
    does not run; `detail` says what was looked at."""

    state: str
    incarnation: str | None = None
    detail: str = ""


class StoreWitness:
    """Something of a replica's store that only a wipe takes away, taken just before
    the wipe: `replaced()` says whether the store the replica runs on now is another
    (new, so empty when the replica came back) one. This base cannot tell."""

    def replaced(self) -> tuple[bool | None, str]:
        return None, "this backend cannot tell whether a replica's store was replaced"

    def close(self) -> None:
        """Let go of what the witness holds (files, marks)."""


def status_document(
    st: ClusterState,
    replicas: dict[str, dict[str, Any]],
    has_external: bool,
    balancers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `status --json` document of `st`, with `replicas` (and `balancers`) as the
    backend observed them (the same shape on every backend)."""
    return {
        "run_id": st.run_id,
        "backend": st.backend,
        "topology": st.topology.get("name"),
        "topology_file": st.topology_source,
        "state_dir": st.state_dir,
        "status": st.status,
        "toxiproxy_api": st.toxiproxy_api,
        "tls": dict(st.tls),
        "tls_identity": external.identity_of(st.tls.get("cert", ""))
        if has_external
        else CLIENT_IDENTITY,
        "replication": {
            **st.replication,
            "links": [
                {"name": d["name"], "from": d["client"], "to": d["replica"], "listen": d["listen"]}
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
        "balancers": balancers or {},
    }


__all__ = ["ReplicaObservation", "StoreWitness", "status_document"]
