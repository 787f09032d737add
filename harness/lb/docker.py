"""Load balancers on the docker backend: per balancer, a *holder* container on its
site's network that owns the address and the published ports, and the HAProxy container
in its network namespace (as a replica is run), next to the Toxiproxy container that
every site network shares.

    host client ──> S.(200+j):P ──(published)──> toxiproxy:C ──[toxics]──> <lb>-haproxy-net:5696
    HAProxy ──> toxiproxy:C' ──[toxics]──> kms-a:5696             (its servers: its links)
    harness ──> S.(220+j):Q ──(published)──> <lb>-haproxy-net:5696    (the VIP, direct)
    harness ──> S.(220+j):R ──(published)──> <lb>-haproxy-net:8404    (stats socket)

The holder keeps the address up while HAProxy is killed, so a connect to it is refused
at once and a client's link closes (EOF), as on the local backend; without it the
address vanished and Toxiproxy's dial hung until the client's timeout (measured: every
operation through the dead VIP took 3 s, the response timeout at time scale 0.05).

So every path through a balancer crosses two links, as on the local backend, and the
balancer's links are published on the host too (the harness awaits each). The container
reads its configuration and client PEM from the balancer's folder and the CA, both
mounted read-only, and logs to stderr (``docker logs``). It carries the run's labels
(role ``balancer``), so `reap_docker` and ``kmschaos down --all`` remove it. A kill is
``docker kill`` (the container stays, stopped; `start` starts it again with the same
configuration), a freeze ``docker pause``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from harness.cluster.base import BaseCluster, free_port
from harness.cluster.docker_engine import kill_container, observe_container, run_labels
from harness.cluster.observed import ReplicaObservation
from harness.cluster.state import BalancerState, ClusterError
from harness.lb.runner import Balancers
from harness.links import Link, ToxiproxyAPI
from harness.store import StateFolder
from harness.wait import WaitTimeout, wait_until

FRONTEND_PORT = 5696  # the VIP inside the container: KMIP's port
STATS_PORT = 8404
BALANCER_MOUNT = "/etc/kmschaos/balancer"  # the balancer's folder, read-only
CA_MOUNT = "/etc/kmschaos/ca.pem"


class DockerRun(Protocol):
    """What the balancers use of the docker cluster they belong to (`DockerCluster`)."""

    @property
    def docker(self) -> Any: ...

    @property
    def api(self) -> ToxiproxyAPI: ...

    @property
    def toxiproxy_name(self) -> str: ...

    def container_name(self, replica: str) -> str: ...

    def network_name(self, site: str) -> str: ...

    def _container(self, name: str) -> Any: ...

    def _tail(self, container: str, lines: int = 40) -> str: ...


class DockerBalancers(Balancers):
    """The HAProxy containers of one docker cluster (`run`: its engine side)."""

    def __init__(self, cluster: BaseCluster, run: DockerRun) -> None:
        super().__init__(cluster)
        self.run = run

    def container_name(self, name: str) -> str:
        return self.run.container_name(f"{name}-haproxy")  # the run's name for `name`

    def holder_name(self, name: str) -> str:
        return self.run.container_name(f"{name}-haproxy-net")

    def upstream(self, b: BalancerState) -> str:
        """Where a client's link to the balancer leads, inside Docker: its holder."""
        return f"{self.holder_name(b.name)}:{FRONTEND_PORT}"

    # ---- the plan ------------------------------------------------------------------

    def _place(self, b: BalancerState) -> None:
        b.port = free_port([b.host])
        b.stats = f"{b.host}:{free_port([b.host], taken=[b.port])}"

    def _bind(self, b: BalancerState) -> str:
        return f"0.0.0.0:{FRONTEND_PORT}"

    def _server_address(self, link: Link) -> str:
        """The Toxiproxy container's name and the port its proxy of `link` listens on
        inside (Toxiproxy's own record of it)."""
        proxy = self.run.api.proxies().get(link.name)
        if proxy is None:
            raise ClusterError(f"link {link.name} has no Toxiproxy proxy (not opened?)")
        return f"{self.run.toxiproxy_name}:{str(proxy['listen']).rsplit(':', 1)[1]}"

    def _stats_bind(self, b: BalancerState) -> str:
        return f"0.0.0.0:{STATS_PORT}"

    def _stats_address(self, b: BalancerState) -> str:
        return b.stats

    def _file(self, path: str) -> str:
        if path == self.state.tls["ca"]:
            return CA_MOUNT
        return f"{BALANCER_MOUNT}/{Path(path).name}"  # a file of the balancer's folder

    # ---- the container -------------------------------------------------------------

    def _container(self, name: str) -> Any:
        return self.run._container(self.container_name(name))

    def _spawn(self, name: str) -> None:
        """Run the balancer's container, or start it again after a kill."""
        from harness import images

        b = self.balancer(name)
        c = self._container(name)
        if c is not None:
            c.start()
        else:
            folder = StateFolder(Path(self.state.state_dir)).balancer(name)
            stats_host, stats_port = b.stats.rsplit(":", 1)
            labels = {**run_labels(self.state.run_id, "balancer"), "kmschaos.balancer": name}
            holder = self.run.docker.containers.run(
                images.haproxy_image(),
                ["sleep", "infinity"],
                name=self.holder_name(name),
                hostname=name,
                labels=labels,
                network=self.run.network_name(b.site),
                ports={
                    f"{FRONTEND_PORT}/tcp": (b.host, b.port),
                    f"{STATS_PORT}/tcp": (stats_host, int(stats_port)),
                },
                detach=True,
            )
            self.run.docker.containers.run(
                images.haproxy_image(),
                ["haproxy", "-db", "-f", f"{BALANCER_MOUNT}/{Path(b.config).name}"],
                name=self.container_name(name),
                labels=labels,
                network_mode=f"container:{holder.id}",
                volumes={
                    str(folder): {"bind": BALANCER_MOUNT, "mode": "ro"},
                    self.state.tls["ca"]: {"bind": CA_MOUNT, "mode": "ro"},
                },
                detach=True,
            )
        b.status = "starting"

    def running(self, name: str) -> bool:
        self.balancer(name)
        c = self._container(name)
        return c is not None and c.status in ("running", "paused")

    def observe(self, name: str) -> ReplicaObservation:
        self.balancer(name)
        return observe_container(self._container(name), self.container_name(name))

    def logs(self, name: str) -> str:
        container = self.container_name(name)
        return f"--- docker logs {container} ---\n{self.run._tail(container)}"

    def _existing(self, name: str) -> Any:
        c = self._container(name)
        if c is None:
            raise ClusterError(f"load balancer {name}: container {self.container_name(name)} gone")
        return c

    def kill(self, name: str) -> None:
        """``docker kill`` (SIGKILL), then wait until the engine says it is not running."""
        kill_container(self._existing(name))
        self._update(name, status="stopped")

    def pause(self, name: str) -> None:
        """``docker pause``, then check the engine reports the container paused."""
        c = self._existing(name)
        if c.status != "running":
            raise ClusterError(f"load balancer {name} is not running (container {c.status})")
        c.pause()
        try:
            wait_until(
                lambda: self.observe(name).state == "paused",
                2.0,
                f"container {c.name} to be paused",
            )
        except WaitTimeout:
            raise ClusterError(
                f"load balancer {name} did not stop after docker pause: {self.observe(name).detail}"
            ) from None
        self._update(name, status="paused")

    def resume(self, name: str) -> None:
        c = self._existing(name)
        if c.status == "paused":
            c.unpause()
        self._update(name, status="running")


@contextlib.contextmanager
def holding(listens: list[str]) -> Iterator[None]:
    """Keep the ``host:port`` addresses bound while other ports are chosen, so no other
    link of the plan picks them (on docker nothing binds them until Toxiproxy's
    container publishes them)."""
    held: list[socket.socket] = []
    try:
        for listen in listens:
            host, port = listen.rsplit(":", 1)
            s = socket.socket()
            held.append(s)
            s.bind((host, int(port)))
        yield
    finally:
        for s in held:
            s.close()
