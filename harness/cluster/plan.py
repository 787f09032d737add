"""The start-up plan every backend shares: each replica's and load balancer's addresses
and certificates, the balancers' links to their replicas, and each client's links and
PyKMIP config on one shared port (what PyKMIP's host list needs). `ClusterPlanning` is a
base of `harness.cluster.base.BaseCluster`; a backend calls these steps from its
`start` and says where a link leads (`upstream`)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Collection
from pathlib import Path

from harness import external
from harness.client.policy_spec import policy_label
from harness.cluster.state import (
    BalancerState,
    ClientState,
    ClusterError,
    ClusterState,
    ReplicaState,
)
from harness.links import Link
from harness.pki import CLIENT_IDENTITY, CertificateAuthority
from harness.store import StateFolder
from harness.topology import replica_names, topology_from_dict


def free_port(hosts: list[str], taken: Collection[int] = ()) -> int:
    """A port free on every one of `hosts` (probed by binding, then released), and not
    one of `taken` (ports chosen already but not bound yet)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        if port in taken:
            continue
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


@dataclasses.dataclass
class ClientPlan:
    """One client's links (in its order) on one port shared by its replica addresses."""

    state: ClientState
    links: list[Link]


class ClusterPlanning:
    """The plan's steps, on the cluster's `state` (see the module docstring)."""

    state: ClusterState
    keep_keys: bool | None

    def external_replicas(self) -> frozenset[str]:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def _sites(self) -> dict[str, list[str]]:
        return {s: replica_names(v["replicas"]) for s, v in self.state.topology["sites"].items()}

    def _plan_replicas(self, extra_addresses: tuple[str, ...] = ()) -> CertificateAuthority:
        """Replica states (addresses, data folder) and certificates for every replica;
        the client identity. Replica i is at S.(100+i) directly and S.i for clients;
        an external replica's direct address is the user's KMS."""
        st = self.state
        sdir = Path(st.state_dir)
        folder = StateFolder(sdir)
        ca = CertificateAuthority(folder.pki, st.run_id)
        ext = self.external_replicas()
        if ext:
            topo = topology_from_dict(st.topology, st.topology_source)
            external.init_ledger(sdir, st.run_id, bool(self.keep_keys))
            st.tls = external.client_tls(topo, folder.pki, str(ca.ca_path))
        else:
            st.tls = ca.issue("client", CLIENT_IDENTITY, server=False).to_dict()
        lbs = self.state.topology.get("load_balancers") or {}
        for j, (lb_name, lb) in enumerate(lbs.items(), start=1):
            st.balancers[lb_name] = BalancerState(
                name=lb_name,
                site=lb["site"],
                index=j,
                client_host=f"{st.subnet}.{200 + j}",
                host=f"{st.subnet}.{220 + j}",
            )
        # a replica behind a balancer also answers as the balancer (the VIP's name and
        # addresses in its certificate, as a real deployment behind a VIP needs)
        vip: dict[str, list[str]] = {}
        for lb_name, lb in lbs.items():
            for r in lb["replicas"]:
                b = st.balancers[lb_name]
                vip.setdefault(r, []).extend([lb_name, b.client_host, b.host])
        i = 0
        for site, names in self._sites().items():
            for name in names:
                i += 1
                if name in ext:
                    target = topo.info_of(name).external
                    assert target is not None
                    st.replicas[name] = ReplicaState(
                        name=name,
                        site=site,
                        index=i,
                        client_host=f"{st.subnet}.{i}",
                        host=target.host,
                        port=target.port,
                        status="external",
                    )
                    continue
                rs = ReplicaState(
                    name=name,
                    site=site,
                    index=i,
                    client_host=f"{st.subnet}.{i}",
                    host=f"{st.subnet}.{100 + i}",
                    data_dir=str(folder.replica(name).root),
                )
                as_vip = vip.get(name, [])
                cert = ca.issue(
                    name,
                    name,
                    server=True,
                    addresses=(rs.client_host, rs.host, "127.0.0.1", *as_vip[1::3], *as_vip[2::3]),
                    dns_names=(name, "localhost", *extra_addresses, *as_vip[0::3]),
                )
                rs.cert, rs.key = cert.cert, cert.key
                st.replicas[name] = rs
        self._save()
        return ca

    def _plan_balancer_links(
        self, upstream: Callable[[ReplicaState], str]
    ) -> dict[str, list[Link]]:
        """Each balancer's links to its replicas (its HAProxy servers), in order: one
        port per balancer, free on every replica's client address, like a client's."""
        st = self.state
        lbs = st.topology.get("load_balancers") or {}
        out: dict[str, list[Link]] = {}
        taken: list[int] = []
        for lb_name, lb in lbs.items():
            hosts = [st.replicas[r].client_host for r in lb["replicas"]]
            port = free_port(hosts, taken=taken)
            taken.append(port)
            out[lb_name] = [
                Link(
                    name=f"{lb_name}->{r}",
                    client=lb_name,
                    replica=r,
                    listen=f"{st.replicas[r].client_host}:{port}",
                    upstream=upstream(st.replicas[r]),
                )
                for r in lb["replicas"]
            ]
        return out

    def _server(self, name: str) -> ReplicaState | BalancerState:
        st = self.state
        return st.balancers[name] if name in st.balancers else st.replicas[name]

    def _plan_clients(
        self, upstream: Callable[[ReplicaState | BalancerState], str]
    ) -> list[ClientPlan]:
        """Each client's links and PyKMIP config: one port per client, free on every
        client address it uses; `upstream` says where a link to a replica (or a
        balancer) leads."""
        st = self.state
        folder = StateFolder(Path(st.state_dir))
        folder.clients.mkdir(parents=True, exist_ok=True)
        tls = st.tls
        plans: list[ClientPlan] = []
        for cname, c in st.topology["clients"].items():
            order: list[str] = c["order"]
            hosts = [st.client_host(r) for r in order]
            port = free_port(hosts, taken=[p.state.port for p in plans])
            links = [
                Link(
                    name=f"{cname}->{r}",
                    client=cname,
                    replica=r,
                    listen=f"{st.client_host(r)}:{port}",
                    upstream=upstream(self._server(r)),
                )
                for r in order
            ]
            tls_names = {r: external.tls_name(st, r) for r in order}
            conf = folder.client_conf(cname)
            conf.write_text(
                "[client]\n"
                f"host={','.join(hosts)}\n"
                f"port={port}\n"
                f"certfile={tls['cert']}\n"
                f"keyfile={tls['key']}\n"
                f"ca_certs={tls['ca']}\n"
                "cert_reqs=CERT_REQUIRED\n"
                "ssl_version=PROTOCOL_SSLv23\n"
                "do_handshake_on_connect=True\n"
                "suppress_ragged_eofs=True\n"
            )
            state = ClientState(
                name=cname,
                site=c["site"],
                policy=policy_label(c["policy"]),
                port=port,
                endpoints=[
                    {"replica": lk.replica, "host": lk.host, "port": port}
                    | ({"server_name": tls_names[lk.replica]} if tls_names[lk.replica] else {})
                    for lk in links
                ],
                pykmip_conf=str(conf),
            )
            plans.append(ClientPlan(state, links))
        return plans

    def _record_link(self, link: Link, into: list[dict[str, str]]) -> None:
        into.append(dataclasses.asdict(link))
