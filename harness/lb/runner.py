"""Running a cluster's load balancers: what every backend shares (configuration, stats,
readiness, state) in `Balancers`; how a backend starts, kills, freezes and watches an
HAProxy in its subclass (`harness.lb.local`, `harness.lb.docker`).

A cluster has one `Balancers` (``cluster.balancers``) even when its topology has none.
Start order, in each backend's `start`: replicas, then each balancer's links to its
replicas, then the HAProxies (awaited: every server checked and in rotation), then the
clients' links, some of which lead to a balancer.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from harness.cluster.observed import ReplicaObservation
from harness.cluster.state import BalancerState, ClusterError, ClusterState, locked
from harness.lb.haproxy import (
    BalancerPlan,
    HaproxyError,
    ServerStatus,
    read_stats,
    render_config,
    write_client_pem,
)
from harness.links import Link
from harness.store import StateFolder
from harness.topology.model import BalancerSpec
from harness.wait import WaitTimeout, wait_until


class _Cluster(Protocol):
    """What balancers need of their cluster (`harness.cluster.base.BaseCluster`)."""

    state: ClusterState

    def _save(self) -> None: ...

    def _reload(self) -> None: ...


READY_DEADLINE_S = 60.0
# a check that has not run yet: HAProxy's status before the first check completes
UNCHECKED = ("", "INI")


def spec_of(state: ClusterState, name: str) -> BalancerSpec:
    """A balancer's `BalancerSpec` from a cluster's recorded topology."""
    lbs = state.topology.get("load_balancers") or {}
    if name not in lbs:
        known = ", ".join(lbs) or "none in this topology"
        raise ClusterError(f"unknown load balancer {name!r} (known: {known})")
    d = dict(lbs[name])
    d["replicas"] = tuple(d["replicas"])
    return BalancerSpec(name=name, **d)


class Balancers(ABC):
    """The HAProxies of one cluster."""

    def __init__(self, cluster: _Cluster) -> None:
        self.cluster = cluster

    @property
    def state(self) -> ClusterState:
        return self.cluster.state

    def names(self) -> list[str]:
        return list(self.state.balancers)

    def balancer(self, name: str) -> BalancerState:
        try:
            return self.state.balancers[name]
        except KeyError:
            spec_of(self.state, name)  # the error naming the known ones
            raise ClusterError(f"load balancer {name!r} was not started") from None

    def links(self, name: str) -> list[Link]:
        """The balancer's links to its replicas (its servers), in order."""
        return [lk for lk in self.state.link_objects() if lk.client == name]

    # ---- starting ------------------------------------------------------------------

    def start_all(self) -> None:
        """Configure and start every balancer (its links must be open), then wait until
        each has checked every server and put it in rotation."""
        names = self.names()
        if not names:
            return
        for name in names:
            self._configure(name)
        self.cluster._save()
        for name in names:
            self._spawn(name)
        self.cluster._save()
        for name in names:
            self.await_ready(name)

    def _configure(self, name: str) -> None:
        b = self.balancer(name)
        folder = StateFolder(Path(self.state.state_dir)).balancer(name)
        folder.mkdir(parents=True, exist_ok=True)
        self._place(b)
        tls = self.state.tls
        b.client_pem = write_client_pem(tls["cert"], tls["key"], folder / "client-identity.pem")
        config = folder / "haproxy.cfg"
        config.write_text(render_config(self.plan(name)))
        b.config = str(config)
        b.log = str(folder / "haproxy.log")
        self._validate(b)

    def plan(self, name: str) -> BalancerPlan:
        """The balancer's HAProxy plan as this backend runs it."""
        b = self.balancer(name)
        return BalancerPlan(
            spec=spec_of(self.state, name),
            bind=self._bind(b),
            servers=tuple((lk.replica, self._server_address(lk)) for lk in self.links(name)),
            ca=self._file(self.state.tls["ca"]),
            client_pem=self._file(b.client_pem),
            stats=self._stats_bind(b),
            time_scale=float(self.state.topology.get("time_scale", 1.0)),
        )

    def await_ready(self, name: str, deadline_s: float = READY_DEADLINE_S) -> None:
        """Wait until the balancer runs and has checked every server and found it up."""
        last: dict[str, str] = {"seen": "no stats yet"}

        def ready() -> bool:
            if not self.running(name):
                raise ClusterError(
                    f"load balancer {name} exited while starting; its log:\n{self.logs(name)}"
                )
            try:
                servers = self.stats(name)
            except HaproxyError as e:
                last["seen"] = str(e)
                return False
            last["seen"] = ", ".join(
                f"{s}={v.status} ({v.check_status or 'unchecked'})" for s, v in servers.items()
            )
            return all(v.in_rotation and v.check_status not in UNCHECKED for v in servers.values())

        try:
            wait_until(ready, deadline_s, f"load balancer {name} to check every server as up")
        except WaitTimeout as e:
            raise ClusterError(
                f"{e} (last seen: {last['seen']}); its log:\n{self.logs(name)}"
            ) from None
        self._update(name, status="running")

    # ---- what HAProxy says -----------------------------------------------------------

    def stats(self, name: str) -> dict[str, ServerStatus]:
        """Each server of the balancer as its stats socket says now."""
        return read_stats(self._stats_address(self.balancer(name)))

    # ---- state ---------------------------------------------------------------------------

    def _update(self, name: str, **fields: object) -> None:
        """Set fields of one balancer's state under the state folder's lock."""
        st = self.state
        with locked(Path(st.state_dir)):
            self.cluster._reload()
            b = st.balancers[name]
            for key, value in fields.items():
                setattr(b, key, value)
            self.cluster._save()

    def record(self, name: str) -> dict[str, object]:
        return dataclasses.asdict(self.balancer(name))

    # ---- what a backend implements -------------------------------------------------------

    @abstractmethod
    def _place(self, b: BalancerState) -> None:
        """Choose the balancer's frontend port (and anything else placement needs)."""

    def _validate(self, b: BalancerState) -> None:  # noqa: B027 - optional
        """Check the written configuration before anything starts (haproxy -c)."""

    def _file(self, path: str) -> str:
        """A host file's path as the HAProxy process sees it."""
        return path

    @abstractmethod
    def _bind(self, b: BalancerState) -> str:
        """Where the HAProxy frontend listens ("host:port", as HAProxy sees it)."""

    @abstractmethod
    def _server_address(self, link: Link) -> str:
        """Where HAProxy reaches the link to a replica ("host:port", as it sees it)."""

    @abstractmethod
    def _stats_bind(self, b: BalancerState) -> str:
        """Where the stats socket listens, as HAProxy sees it."""

    @abstractmethod
    def _stats_address(self, b: BalancerState) -> str:
        """Where the harness reaches the stats socket."""

    @abstractmethod
    def _spawn(self, name: str) -> None:
        """Start the balancer's HAProxy (not awaited)."""

    @abstractmethod
    def running(self, name: str) -> bool: ...

    @abstractmethod
    def observe(self, name: str) -> ReplicaObservation:
        """running, paused or stopped, as seen in the process table or the engine."""

    @abstractmethod
    def logs(self, name: str) -> str: ...

    @abstractmethod
    def kill(self, name: str) -> None:
        """Kill the HAProxy at once (SIGKILL; docker: stop the container)."""

    @abstractmethod
    def pause(self, name: str) -> None:
        """Freeze the HAProxy (SIGSTOP; docker: pause), checked."""

    @abstractmethod
    def resume(self, name: str) -> None: ...

    def start(self, name: str) -> None:
        """Start a stopped balancer again with its configuration; awaited."""
        if self.running(name):
            return
        self._spawn(name)
        self.cluster._save()
        self.await_ready(name)


class NoBalancers(Balancers):
    """A backend that cannot run load balancers: a topology with any is refused."""

    def start_all(self) -> None:
        if self.names():
            raise ClusterError(
                f"the {self.state.backend} backend cannot run load balancers yet "
                f"({', '.join(self.names())}); use --backend local"
            )

    def _refuse(self, *_: object) -> None:
        raise ClusterError(f"the {self.state.backend} backend runs no load balancers")

    _place = _spawn = kill = pause = resume = _refuse  # type: ignore[assignment]

    def _bind(self, b: BalancerState) -> str:
        return ""

    _server_address = _stats_bind = _stats_address = _bind  # type: ignore[assignment]

    def running(self, name: str) -> bool:
        return False

    def observe(self, name: str) -> ReplicaObservation:
        return ReplicaObservation("stopped", None, "this backend runs no load balancers")

    def logs(self, name: str) -> str:
        return ""
