"""The docker backend: replicas as containers on one network per site, one Toxiproxy
container joined to every site network, ports published only on the run's loopback /24.

    host client ──> S.i:P_client ──(published)──> toxiproxy:C ──[toxics]──> kms-a:5696
    kms-a agent ──> toxiproxy:C' ──[toxics]──> kms-b:5697           (replication links)
    auditor ──> S.(100+i):P ──(published)──> kms-a:5696              (direct, no link)

The address plan on the host is the local backend's (replica i's client links at S.i,
its direct port at S.(100+i), the Toxiproxy API at S.254), so clients, checkers and
``status --json`` do not know which backend runs. Inside Docker, containers find each
other by name on their site network.

Each replica is two containers: a *holder* (``sleep infinity``) that owns the network
namespace, its address and published port, and the *replica* (PyKMIP + the replication
agent) that joins it, with its database in a named volume. So ``docker kill`` of the
replica is a crash on a live host (connects refused at once, as on the local backend),
``docker pause`` freezes it (connects accepted, no answer), and taking the holder off its
network makes the address itself unreachable. Everything carries the labels
``kmschaos.run`` and ``kmschaos.registry``; `reap_docker` removes what a killed run left
(this module registers it with `harness.registry` when it is imported).

A topology's load balancers are HAProxy containers (`harness.lb.docker`), started once
the replicas answer, behind the clients' links and in front of their own links.

The engine itself (client, readiness, port publishing, labels, the reaper) is
`harness.cluster.docker_engine`; its names are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import registry
from harness.cluster.base import BaseCluster, ReplicaObservation, StoreWitness, free_port
from harness.cluster.controls import ReplicaControls
from harness.cluster.docker_engine import (
    LABEL_REGISTRY,
    LABEL_ROLE,
    LABEL_RUN,
    docker_client,
    docker_run_ids,
    kill_container,
    observe_container,
    reap_docker,
    run_labels,
    unavailable_reason,
    userland_proxy,
)
from harness.cluster.docker_replica import (
    CONTROL_MOUNT,
    KMIP_PORT,
    REPL_PORT,
    VolumeMark,
    distinct_free_ports,
    replica_command,
    replica_environment,
)
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
from harness.lb.docker import DockerBalancers, holding
from harness.links import Link, ToxiproxyError, await_api
from harness.replica.peers import write_peers
from harness.store import ReplicaFolder
from harness.toolchain import firewall_capability
from harness.wait import WaitTimeout

TOXIPROXY_API_PORT = 8474
FIRST_LINK_PORT = 20000


class DockerCluster(BaseCluster):
    """A running (or starting) docker cluster; same interface as `LocalCluster`."""

    backend = "docker"
    balancers: DockerBalancers

    def __init__(self, state: ClusterState) -> None:
        super().__init__(state)
        self._client: Any = None
        # the kms image has libfaketime (harness.images: the base's packages)
        caps = {CAP_LINKS, CAP_SIGNALS, CAP_RESTART, CAP_TLS, CAP_CLOCK}
        # `unreachable` also drops the host client's SYNs (see take_off_network)
        if firewall_capability() is None:
            caps.add(CAP_FIREWALL)
        if not userland_proxy():
            caps.add(CAP_RESETS)
        self.capabilities = frozenset(caps)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return unavailable_reason()

    def _balancers(self) -> DockerBalancers:
        return DockerBalancers(self, self)

    @property
    def docker(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    # ---- names -----------------------------------------------------------------------

    def _name(self, what: str) -> str:
        return f"kmschaos-{self.state.run_id}-{what}"

    def holder_name(self, replica: str) -> str:
        return self._name(f"{replica}-net")

    def container_name(self, replica: str) -> str:
        return self._name(replica)

    def volume_name(self, replica: str) -> str:
        return self._name(f"{replica}-data")

    def network_name(self, site: str) -> str:
        return self._name(site)

    @property
    def toxiproxy_name(self) -> str:
        return self._name("toxiproxy")

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, progress: bool = False) -> DockerCluster:
        from docker.errors import DockerException

        try:
            return self._start()
        except DockerException as e:
            raise ClusterError(
                f"the Docker engine refused a step of starting {self.state.run_id}: "
                f"{type(e).__name__}: {e}"
            ) from e

    def _start(self) -> DockerCluster:
        from harness import images

        st = self.state
        client = self.docker
        missing = images.missing_images(client, balancers=bool(st.topology.get("load_balancers")))
        if missing:
            raise ClusterError(
                f"docker image(s) {', '.join(missing)} not found in the local engine: run "
                "`make images` (or `kmschaos images build`) first"
            )
        kms_image, toxi_image = images.kms_image(), images.toxiproxy_image()
        self._register()
        self._plan_replicas(extra_addresses=())
        sites = self._sites()
        self._check_sites(sites, kms_image)
        names = list(st.replicas)
        for site in sites:
            self._create_network(site)
        profile = str(st.replication.get("profile", "none"))

        # links: the host side is the local plan; inside, Toxiproxy listens on port C
        # (balancers' links first, held while the clients' ports are chosen beside them)
        lb_links = [lk for lks in self._plan_balancer_links(self._upstream).values() for lk in lks]
        with holding([lk.listen for lk in lb_links]):
            plans = self._plan_clients(self._upstream)
        links = [*lb_links, *(lk for plan in plans for lk in plan.links)]
        # link name -> Toxiproxy's port inside the container
        inner = {lk.name: FIRST_LINK_PORT + n for n, lk in enumerate(links)}
        next_port = FIRST_LINK_PORT + len(links)
        # replication links: the agents reach them inside Docker (peers.json names
        # Toxiproxy's container); the state records where the host reaches the same
        # listener, S.253:P as on the local backend, so a probe can try the link itself
        repl_links: list[Link] = []
        repl_host = f"{st.subnet}.253"
        if profile != "none":
            pairs = [(src, dst) for src in names for dst in names if src != dst]
            # chosen together: ports picked one by one and released may repeat
            host_ports = distinct_free_ports(repl_host, len(pairs))
            for (src, dst), host_port in zip(pairs, host_ports, strict=True):
                link = Link(
                    name=f"{src}=>{dst}",
                    client=src,
                    replica=dst,
                    listen=f"{repl_host}:{host_port}",
                    upstream=f"{self.holder_name(dst)}:{REPL_PORT}",
                )
                inner[link.name] = next_port
                next_port += 1
                repl_links.append(link)

        # the replicas' control folders: certificates, peers.json, live controls
        for name, rs in st.replicas.items():
            conf = self._config_dir(name)
            ReplicaControls(rs).seed()
            shutil.copyfile(rs.cert, conf / "cert.pem")
            shutil.copyfile(rs.key, conf / "key.pem")
            os.chmod(conf / "key.pem", 0o600)
            shutil.copyfile(st.tls["ca"], conf / "ca.pem")
            peers = {
                lk.replica: f"{self.toxiproxy_name}:{inner[lk.name]}"
                for lk in repl_links
                if lk.client == name
            }
            write_peers(conf, name, peers)

        # Toxiproxy: every client link port and the API published on the run's /24
        api_host = f"{st.subnet}.254"
        api_port = free_port([api_host])
        ports: dict[str, tuple[str, int]] = {f"{TOXIPROXY_API_PORT}/tcp": (api_host, api_port)}
        for link in [*links, *repl_links]:
            ports[f"{inner[link.name]}/tcp"] = (link.host, link.port)
        direct = self._direct_paths(next_port)
        for name, inner_port in direct.items():
            rs = st.replicas[name]
            ports[f"{inner_port}/tcp"] = (rs.host, rs.port)
        site_list = list(sites)
        toxi = client.containers.run(
            toxi_image,
            ["-host=0.0.0.0", f"-port={TOXIPROXY_API_PORT}"],
            name=self.toxiproxy_name,
            labels=run_labels(st.run_id, "toxiproxy"),
            network=self.network_name(site_list[0]),
            ports=ports,
            detach=True,
        )
        for site in site_list[1:]:
            client.networks.get(self.network_name(site)).connect(toxi)
        st.toxiproxy_api = f"http://{api_host}:{api_port}"
        self._save()

        # holders first (they own the addresses), then the replicas in them
        for rs in st.replicas.values():
            rs.repl_port = REPL_PORT if profile != "none" else 0
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            list(pool.map(lambda name: self._start_replica_host(name, kms_image), names))
        self._save()
        self._await_toxiproxy()
        for name, inner_port in direct.items():
            self.api.create_proxy(
                f"direct:{name}", f"0.0.0.0:{inner_port}", self._upstream(st.replicas[name])
            )
        for link in lb_links:
            self._open_link(link, inner[link.name], st.links)
        for plan in plans:
            for link in plan.links:
                self._open_link(link, inner[link.name], st.links)
            st.clients[plan.state.name] = plan.state
        for link in repl_links:
            self._open_link(link, inner[link.name], st.replication_links)
        self._save()
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            list(pool.map(self._await_replica, names))
        self._save()
        self.balancers.start_all()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self.await_link, st.link_objects()))
        st.status = "ready"
        self._save()
        return self

    # ---- what the swarm backend does otherwise ----------------------------------------

    def _check_sites(self, sites: dict[str, list[str]], kms_image: str) -> None:
        """Before anything starts: can every site run here (one engine: yes)."""

    def _create_network(self, site: str) -> None:
        self.docker.networks.create(
            self.network_name(site),
            driver="bridge",
            labels=run_labels(self.state.run_id, "network"),
        )

    def _direct_paths(self, first_port: int) -> dict[str, int]:
        """Replicas whose direct address Toxiproxy serves (no link, never a fault), with
        its port inside: none here, each holder publishes its own."""
        return {}

    def _start_replica_host(self, name: str, kms_image: str) -> None:
        """The holder of `name` (its address), its volume, then the replica in it."""
        st = self.state
        rs = st.replicas[name]
        rs.port = free_port([rs.host])
        self.docker.containers.run(
            kms_image,
            ["sleep", "infinity"],
            name=self.holder_name(name),
            hostname=name,
            labels={**run_labels(st.run_id, "holder"), "kmschaos.replica": name},
            network=self.network_name(rs.site),
            ports={f"{KMIP_PORT}/tcp": (rs.host, rs.port)},
            detach=True,
        )
        self.docker.volumes.create(self.volume_name(name), labels=run_labels(st.run_id, "data"))
        self._run_replica(name, kms_image)

    def _engine(self, replica: str) -> Any:
        """The engine that runs `replica`'s containers and holds its volume."""
        return self.docker

    def _engine_of_container(self, container: str) -> Any:
        """The engine that runs the container named `container` (of this run)."""
        return self.docker

    def _holder_ref(self, replica: str) -> str:
        """The container whose network namespace `replica` joins (name or id)."""
        return self.holder_name(replica)

    def _upstream(self, server: ReplicaState | BalancerState) -> str:
        """Where a link to a replica or a balancer leads, inside Docker."""
        if isinstance(server, BalancerState):
            return self.balancers.upstream(server)
        return f"{self.holder_name(server.name)}:{KMIP_PORT}"

    def _config_dir(self, name: str) -> Path:
        return ReplicaFolder(Path(self.state.replicas[name].data_dir)).control

    def _run_replica(self, name: str, image: str) -> None:
        st = self.state
        rs = st.replicas[name]
        cmd = replica_command(st, name)
        container = self._engine(name).containers.create(
            image,
            cmd,
            name=self.container_name(name),
            labels={**run_labels(st.run_id, "replica"), "kmschaos.replica": name},
            network_mode=f"container:{self._holder_ref(name)}",
            volumes={
                self.volume_name(name): {"bind": "/data", "mode": "rw"},
                **self._control_mount(name),
            },
            environment=replica_environment(),
            detach=True,
        )
        self._before_start(name, container)
        container.start()
        rs.status = "starting"

    def _control_mount(self, name: str) -> dict[str, dict[str, str]]:
        """The replica's control folder at /config: this host's folder, bound (rw: the
        program acknowledges live controls there, applied.json)."""
        return {str(self._config_dir(name)): {"bind": CONTROL_MOUNT, "mode": "rw"}}

    def _before_start(self, name: str, container: Any) -> None:
        """The replica's container exists and has not started."""

    def _open_link(self, link: Link, inner_port: int, into: list[dict[str, str]]) -> None:
        self.api.create_proxy(link.name, f"0.0.0.0:{inner_port}", link.upstream)
        self._record_link(link, into)

    def _await_toxiproxy(self) -> None:
        def stopped() -> str | None:
            c = self._container(self.toxiproxy_name)
            if c is not None and c.status in ("running", "created"):
                return None
            return f"the Toxiproxy container {self.toxiproxy_name} stopped while starting"

        try:
            await_api(self.state.toxiproxy_api, 30, stopped)
        except (WaitTimeout, ToxiproxyError) as e:
            raise ClusterError(f"{e}; last log lines:\n{self._tail(self.toxiproxy_name)}") from None

    def _await_replica(self, name: str) -> None:
        self.await_direct(name)
        self.state.replicas[name].status = "running"

    def stop(self) -> None:
        """Remove every container, network and volume of the run, its firewall rules
        and its lease. Safe to call twice and after a partial start."""
        st = self.state
        reap_docker(st.run_id)
        registry.reap_run(st.run_id)
        self._close_api()
        for r in st.replicas.values():
            r.status = "stopped"
            r.pid = None
        for b in st.balancers.values():
            b.status = "stopped"
        st.status = "down"
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        with contextlib.suppress(OSError):
            self._save()

    # ---- replicas --------------------------------------------------------------------

    def _container(self, name: str) -> Any:
        import docker.errors

        try:
            return self._engine_of_container(name).containers.get(name)
        except docker.errors.NotFound:
            return None

    def _replica_container(self, name: str) -> Any:
        self._replica(name)
        c = self._container(self.container_name(name))
        if c is None:
            raise ClusterError(f"replica {name}: container {self.container_name(name)} is gone")
        return c

    def _tail(self, container: str, lines: int = 40) -> str:
        c = self._container(container)
        if c is None:
            return f"(container {container} is gone)"
        try:
            out: bytes = c.logs(tail=lines)
        except Exception as e:  # noqa: BLE001 - logs are best effort in an error message
            return f"(no logs of {container}: {e})"
        return out.decode(errors="replace").rstrip() or f"(container {container} logged nothing)"

    def replica_logs(self, name: str) -> str:
        return f"--- docker logs {self.container_name(name)} ---\n" + self._tail(
            self.container_name(name)
        )

    def replica_running(self, name: str) -> bool:
        self._replica(name)
        c = self._container(self.container_name(name))
        return c is not None and c.status in ("running", "paused")

    def replica_pid(self, name: str) -> int | None:
        c = self._container(self.container_name(name))
        pid = c.attrs.get("State", {}).get("Pid") if c is not None else None
        return int(pid) if pid else None

    def anything_running(self) -> bool:
        try:
            found = self.docker.containers.list(
                filters={"label": f"{LABEL_RUN}={self.state.run_id}"}
            )
        except ClusterError:
            return False
        return bool(found)

    def observe_replica(self, name: str) -> ReplicaObservation:
        """The replica container's state as the engine reports it now (`docker inspect`)."""
        self._replica(name)
        container = self.container_name(name)
        return observe_container(self._container(container), container)

    def store_witness(self, name: str) -> StoreWitness:
        """A mark left in the replica's volume (``/data``): a wipe gives the replica a
        new volume, without it."""
        return VolumeMark(self, name)

    def pause_replica(self, name: str) -> None:
        """`docker pause`, then check that the engine reports the container paused;
        `ClusterError` otherwise."""
        c = self._replica_container(name)
        if c.status != "running":
            raise ClusterError(f"replica {name} is not running (container {c.status})")
        c.pause()
        seen = self.observe_replica(name)
        if seen.state != "paused":
            raise ClusterError(f"replica {name} did not stop after docker pause: {seen.detail}")
        self._set_status(name, "paused")

    def resume_replica(self, name: str) -> None:
        c = self._replica_container(name)
        if c.status == "paused":
            c.unpause()
        self._set_status(name, "running")

    def kill_replica(self, name: str) -> None:
        kill_container(self._replica_container(name))
        self._update_replica(name, pid=None, status="stopped")

    def start_replica(self, name: str) -> None:
        """Start the stopped replica container again (same volume, same address) and
        wait until it answers KMIP."""
        c = self._replica_container(name)
        if c.status in ("running", "paused"):
            return
        c.start()
        self._set_status(name, "starting")
        self._await_replica(name)
        self._set_status(name, "running")

    def wipe_replica(self, name: str) -> None:
        """Kill the replica, remove its volume, start it again on a new, empty one."""
        from harness import images

        self.kill_replica(name)
        self._replica_container(name).remove(force=True)
        engine = self._engine(name)
        with contextlib.suppress(Exception):
            engine.volumes.get(self.volume_name(name)).remove(force=True)
        engine.volumes.create(self.volume_name(name), labels=run_labels(self.state.run_id, "data"))
        self._run_replica(name, images.kms_image())
        self._await_replica(name)
        self._set_status(name, "running")

    def take_off_network(self, name: str) -> None:
        """Disconnect the replica (its holder) from its site network: Toxiproxy and the
        peers can no longer reach it, its name stops resolving."""
        rs = self._replica(name)
        net = self.docker.networks.get(self.network_name(rs.site))
        net.disconnect(self.holder_name(name), force=True)

    def put_on_network(self, name: str) -> None:
        import docker.errors

        rs = self._replica(name)
        net = self.docker.networks.get(self.network_name(rs.site))
        with contextlib.suppress(docker.errors.APIError):  # already connected: fine
            net.connect(self.holder_name(name))


# importing the backend registers its reaper (the registry imports no backend)
registry.register_reaper(DockerCluster.backend, run_ids=docker_run_ids, reap=reap_docker)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.cluster.docker_backend check``: exit 0 if the docker backend
    can run here (engine answers, images built), else 1 with the reason; ``engine``:
    only whether an engine answers."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args not in (["check"], ["engine"]):
        print("usage: python -m harness.cluster.docker_backend check|engine", file=sys.stderr)
        return 2
    from harness import images

    if args == ["engine"]:
        try:
            client = docker_client()
        except ClusterError as e:
            print(f"docker backend: {e}")
            return 1
        print(f"docker backend: engine {client.version().get('Version', '?')} answers")
        client.close()
        return 0
    reason = unavailable_reason()
    if reason:
        print(f"docker backend: {reason}")
        return 1
    print(f"docker backend: images {images.kms_image()} and {images.toxiproxy_image()} ready")
    return 0


__all__ = [
    "FIRST_LINK_PORT",
    "KMIP_PORT",
    "LABEL_REGISTRY",
    "LABEL_ROLE",
    "LABEL_RUN",
    "REPL_PORT",
    "TOXIPROXY_API_PORT",
    "DockerCluster",
    "docker_client",
    "docker_run_ids",
    "main",
    "reap_docker",
    "replica_command",
    "unavailable_reason",
    "userland_proxy",
]


if __name__ == "__main__":
    raise SystemExit(main())
