"""What to probe: a `Target` from a HOST[:PORT] argument, from the replicas of a running
cluster (through the first client link into each, or directly), or from the external
replicas of a topology file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harness.pki import CertFiles
from harness.topology import KMIP_PORT, Topology

if TYPE_CHECKING:
    from harness.cluster.state import ClusterState


@dataclass(frozen=True)
class Target:
    """One server to probe: `name` as shown (a replica, or HOST:PORT), where to connect,
    the TLS files, the name its certificate must carry (default `host`), and how it is
    reached (``link vc-a->kms-a``, ``direct``, ``external``; "" for a HOST argument)."""

    name: str
    host: str
    port: int
    tls: CertFiles
    server_name: str = ""
    via: str = ""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def check_name(self) -> str:
        return self.server_name or self.host


def parse_target(text: str, tls: CertFiles, server_name: str = "") -> Target:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT`` (port default 5696); `ValueError` naming
    the argument otherwise."""
    host, port = text, KMIP_PORT
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text}: expected [ADDRESS]:PORT")
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, raw = text.split(":")
        port = _port(text, raw)
    if not host:
        raise ValueError(f"{text!r}: no host name")
    target = Target("", host, port, tls, server_name)
    return replace(target, name=target.address)


def _port(text: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{text}: port {raw!r} is not a TCP port (1-65535)")
    return int(raw)


def cluster_targets(state: ClusterState, direct: bool = False) -> list[Target]:
    """Every replica of a running cluster, through the first client link into it (what
    a client reaches), or its direct address when `direct` or no client lists it; with
    the cluster's client TLS files. External replicas are checked against their
    `server_name` (else their host), own ones against the address used."""
    from harness.external import tls_name

    tls = CertFiles(state.tls["ca"], state.tls["cert"], state.tls["key"])
    links = state.link_objects()
    out = []
    for name, rs in state.replicas.items():
        link = next((lk for lk in links if lk.replica == name), None)
        ext_name = tls_name(state, name)
        if link is None or direct:
            out.append(Target(name, rs.host, rs.port, tls, ext_name, "direct"))
        else:
            out.append(Target(name, link.host, link.port, tls, ext_name, f"link {link.name}"))
    return out


def topology_targets(topo: Topology) -> tuple[list[Target], list[str]]:
    """The external replicas of a topology file, directly at their address with their
    TLS files; and the replicas kmschaos starts (not running before `up`, so not probed)."""
    out = []
    for r in topo.external_replicas:
        ext = topo.info_of(r).external
        files = topo.external_tls(r)
        assert ext is not None and files.ca and files.cert and files.key  # the loader checked
        out.append(
            Target(
                r,
                ext.host,
                ext.port,
                CertFiles(files.ca, files.cert, files.key),
                ext.server_name or "",
                "external",
            )
        )
    own = [r for r in topo.replicas if r not in topo.external_replicas]
    return out, own
