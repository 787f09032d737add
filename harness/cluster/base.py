"""The cluster interface every backend implements (`BaseCluster`) and what they share.

A backend subclass starts replicas its own way (processes, containers) and implements
the abstract methods; the rest — creating or attaching to a cluster, the start-up plan
(addresses, certificates and links of replicas, balancers and clients:
`harness.cluster.plan`), KMIP readiness checks and ``status --json`` — is the same for all, so
every backend gives the same document. The persisted state and the capability names
live in `harness.cluster.state` (re-exported here); the backends by name in
`harness.backends`, which sits above them.

External targets (`harness.external`) are part of the same plan: a replica state whose
direct address is the user's KMS, links in front of it like any other, and the user's
client identity for the whole run. A backend that can reach them says
`supports_external`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from abc import ABC, abstractmethod
from inspect import isabstract
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from harness import external, registry
from harness.client.operations import empty_client_config
from harness.client.policies import TlsFiles
from harness.client.transport import Endpoint
from harness.client.walker import VCenterPolicy
from harness.cluster.controls import ReplicaControls
from harness.cluster.observed import ReplicaObservation, StoreWitness, status_document
from harness.cluster.plan import ClientPlan, ClusterPlanning, free_port
from harness.cluster.state import (
    CAP_CLOCK,
    CAP_FIREWALL,
    CAP_LINKS,
    CAP_RESETS,
    CAP_RESTART,
    CAP_SIGNALS,
    CAP_TLS,
    ClientState,
    ClusterError,
    ClusterState,
    ReplicaState,
    load_state,
    locked,
    save_state,
    state_path,
)
from harness.lb.runner import Balancers, NoBalancers
from harness.links import Link, ToxiproxyAPI
from harness.store import StateFolder
from harness.topology import Topology
from harness.wait import WaitTimeout, wait_until

__all__ = [
    "CAP_CLOCK",
    "CAP_FIREWALL",
    "CAP_LINKS",
    "CAP_RESETS",
    "CAP_RESTART",
    "CAP_SIGNALS",
    "CAP_TLS",
    "READY_DEADLINE_S",
    "BaseCluster",
    "ClientPlan",
    "ClientState",
    "Cluster",
    "ClusterError",
    "ClusterState",
    "ReplicaObservation",
    "ReplicaState",
    "StoreWitness",
    "backend_classes",
    "free_port",
    "load_state",
    "locked",
    "refuse_running",
    "save_state",
    "state_path",
]

READY_DEADLINE_S = 60.0
EXTERNAL_READY_S = 15.0  # a KMS already running answers at once, or its setup is wrong

C = TypeVar("C", bound="BaseCluster")


class BaseCluster(ClusterPlanning, ABC):
    """A running (or starting) cluster. Use as a context manager, or `start()` /
    `stop()`; `attach(state_dir)` acts on one started by another process.

    What faults, clients and the CLI need from a cluster: a backend implements every
    abstract method; `take_off_network` / `put_on_network` are optional (no-ops here),
    and what a backend cannot do at all is left out of its `capabilities`."""

    backend: ClassVar[str] = ""
    supports_external: ClassVar[bool] = False
    capabilities: frozenset[str] = frozenset()

    def controls(self, name: str) -> ReplicaControls:
        """Replica `name`'s live controls (TLS, connections, clock)."""
        return ReplicaControls(self._replica(name))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot start a cluster on this machine (with what to do), or
        None; asked once before a run, not per scenario."""
        return None

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._api: ToxiproxyAPI | None = None
        self.balancers: Balancers = self._balancers()
        # keys on external replicas at stop: None = as recorded when the cluster started
        self.keep_keys: bool | None = None
        self.key_settlement: external.Settlement | None = None

    # ---- what every backend implements ----------------------------------------------

    @abstractmethod
    def start(self: C, progress: bool = False) -> C:
        """Start every replica, Toxiproxy and the links; wait until each answers KMIP."""

    @abstractmethod
    def stop(self) -> None:
        """Remove everything of the run; safe to call twice and after a partial start."""

    @abstractmethod
    def replica_running(self, name: str) -> bool: ...

    @abstractmethod
    def replica_pid(self, name: str) -> int | None: ...

    @abstractmethod
    def replica_logs(self, name: str) -> str:
        """The last lines of what the replica logged, for error messages."""

    def _balancers(self) -> Balancers:
        """How this backend runs load balancers (`harness.lb.runner`); none by default."""
        return NoBalancers(self)

    def server_running(self, name: str) -> bool:
        """A replica's or a load balancer's process (container) runs."""
        if name in self.state.balancers:
            return self.balancers.running(name)
        return self.replica_running(name)

    def server_logs(self, name: str) -> str:
        if name in self.state.balancers:
            return self.balancers.logs(name)
        return self.replica_logs(name)

    @abstractmethod
    def anything_running(self) -> bool:
        """True if any process or container of this run still runs."""

    @abstractmethod
    def pause_replica(self, name: str) -> None: ...

    @abstractmethod
    def resume_replica(self, name: str) -> None: ...

    @abstractmethod
    def kill_replica(self, name: str) -> None: ...

    @abstractmethod
    def start_replica(self, name: str) -> None: ...

    @abstractmethod
    def wipe_replica(self, name: str) -> None: ...

    # ---- optional abilities ----------------------------------------------------------

    def take_off_network(self, name: str) -> None:  # noqa: B027 - optional, a no-op
        """Make the replica's own address unreachable where the backend can (docker:
        disconnect it from its site network); a no-op where the client-side firewall
        rule is the whole fault (local)."""

    def put_on_network(self, name: str) -> None:  # noqa: B027 - optional, a no-op
        """Undo `take_off_network`."""

    # ---- observation (what faults prove their effect with) -------------------------

    def observe_replica(self, name: str) -> ReplicaObservation:
        """The replica's process (or container) as seen now. Backends look at the
        process table or the engine; this base only knows running from stopped."""
        if name in self.external_replicas():
            return ReplicaObservation("external", None, f"{name} is an external target")
        if not self.replica_running(name):
            return ReplicaObservation("stopped", None, f"{name} does not run")
        pid = self.replica_pid(name)
        return ReplicaObservation("running", f"pid {pid}", f"{name} runs (pid {pid})")

    def store_witness(self, name: str) -> StoreWitness:
        """A witness of the replica's current store (see `StoreWitness`)."""
        return StoreWitness()

    # ---- construction -----------------------------------------------------------

    @classmethod
    def create(
        cls: type[C],
        topology: Topology,
        state_dir: Path,
        *,
        detached: bool = False,
        run_id: str | None = None,
        allow_external: bool = False,
        keep_keys: bool = False,
    ) -> C:
        """A cluster for `topology`, not started. A topology with external targets is
        refused here (`external.ExternalRefused`) unless it says ``allow_external:
        true`` and `allow_external` (the command-line flag) is set; `keep_keys` keeps
        the keys the run makes on them."""
        external.require_consent(topology, allow_external, cls.backend, cls.supports_external)
        state_dir = state_dir.resolve()
        refuse_running(state_dir)
        state = ClusterState(
            run_id=run_id or registry.new_run_id(),
            backend=cls.backend,
            state_dir=str(state_dir),
            subnet="",
            topology=topology.to_dict(),
            topology_source=topology.source,
            detached=detached,
            tls={},
            created=time.time(),
        )
        cluster = cls(state)
        cluster.keep_keys = keep_keys
        return cluster

    @classmethod
    def attach(cls: type[C], state_dir: Path) -> C:
        state = load_state(state_dir.resolve())
        if state.status == "down":
            raise ClusterError(
                f"the cluster in {state_dir}/ ({state.run_id}) is down; "
                "start one with `kmschaos up`"
            )
        if state.backend != cls.backend:
            raise ClusterError(
                f"the cluster in {state_dir}/ runs on the {state.backend} backend, not "
                f"{cls.backend}"
            )
        return cls(state)

    def __enter__(self: C) -> C:
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

    # ---- start-up steps shared by the backends -------------------------------------

    def _register(self) -> None:
        """Reap leftovers of killed runs, lease the run's loopback /24, register."""
        st = self.state
        Path(st.state_dir).mkdir(parents=True, exist_ok=True)
        registry.reap()
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
                backend=self.backend,
                created=time.time(),
            )
        )

    # ---- readiness ---------------------------------------------------------------

    def await_link(self, link: Link) -> None:
        name = external.tls_name(self.state, link.replica)
        ep = Endpoint(link.replica, link.host, link.port, name)
        self.kmip_round_trip(ep, f"link {link.name} at {link.listen}", link.replica)

    def await_direct(self, name: str) -> None:
        rs = self.state.replicas[name]
        server_name = external.tls_name(self.state, name)
        ep = Endpoint(name, rs.host, rs.port, server_name)
        what = f"{'external ' if server_name else ''}replica {name} at {rs.host}:{rs.port}"
        deadline = EXTERNAL_READY_S if server_name else READY_DEADLINE_S
        self.kmip_round_trip(ep, what, name, deadline)

    def kmip_round_trip(
        self, ep: Endpoint, what: str, replica: str, deadline_s: float = READY_DEADLINE_S
    ) -> None:
        """Wait until `ep` answers a KMIP Locate (or refuses its KMIP version); fail fast,
        with the replica's log, if the replica stops running meanwhile."""
        st = self.state
        tls = TlsFiles(st.tls["ca"], st.tls["cert"], st.tls["key"])
        conf = empty_client_config(StateFolder(Path(st.state_dir)).clients)
        policy = VCenterPolicy([ep], tls, 2.0, 5.0, conf)
        last = {"error": ""}

        def answered() -> bool:
            if not self.server_running(replica):
                raise ClusterError(
                    f"replica {replica} stopped before {what} answered; last log lines:\n"
                    + self.server_logs(replica)
                )
            r = policy.execute("locate", None)
            detail = r.attempts[-1].detail if r.attempts else ""
            last["error"] = f"{r.error}: {detail}" if detail else r.error
            # a refusal of the probe's KMIP version (a replica's kmip_versions) is a KMIP
            # answer too: the server is up
            return r.outcome == "ok" or any(a.outcome == "version-refused" for a in r.attempts)

        try:
            wait_until(answered, deadline_s, f"a KMIP Locate answer from {what}", poll_s=0.05)
        except WaitTimeout as e:
            if replica in self.external_replicas():
                raise ClusterError(
                    f"{e} (last attempt: {last['error']}); check the external target's "
                    "address, that it runs, and the topology's tls files"
                ) from None
            raise ClusterError(
                f"{e} (last attempt: {last['error']}); last log lines of {replica}:\n"
                + self.server_logs(replica)
            ) from None

    # ---- state -------------------------------------------------------------------

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
                self.state.balancers = fresh.balancers

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

    def _close_api(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def links_into(self, replica: str) -> list[Link]:
        """The client links into a replica, or into a load balancer."""
        if replica not in self.state.balancers:
            self._replica(replica)
        return [link for link in self.state.link_objects() if link.replica == replica]

    def client_tls(self) -> TlsFiles:
        t = self.state.tls
        return TlsFiles(t["ca"], t["cert"], t["key"])

    # ---- external targets ----------------------------------------------------------

    def external_replicas(self) -> frozenset[str]:
        """Replicas kmschaos does not run (the topology's `external:` entries)."""
        return external.external_names(self.state)

    def _own(self, name: str, action: str) -> None:
        """Refuse `action` on an external replica (faults refuse earlier, by name)."""
        if name in self.external_replicas():
            raise ClusterError(
                f"cannot {action} {name}: it is an external target, kmschaos does not run it"
            )

    def settle_external_keys(self) -> external.Settlement | None:
        """Destroy the keys the run made on external replicas (unless `keep_keys`);
        what happened is kept in `key_settlement` and ``external-keys.json``."""
        if not self.external_replicas():
            return None
        self.key_settlement = external.settle_keys(self.state, self.keep_keys)
        return self.key_settlement

    # ---- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `status --json` document (the same shape on every backend), each replica
        as observed now, not as recorded (`observe_replica`)."""
        ext = self.external_replicas()
        replicas = {}
        for name, rs in self.state.replicas.items():
            seen = self.observe_replica(name)
            alive = seen.state in ("running", "paused")
            replicas[name] = {
                "site": rs.site,
                "host": rs.host,
                "port": rs.port,
                "client_host": rs.client_host,
                "replication_port": rs.repl_port or None,
                "pid": self.replica_pid(name) if alive else None,
                "state": seen.state,
                "external": name in ext,
            }
        return status_document(self.state, replicas, bool(ext), self._balancer_status())

    def _balancer_status(self) -> dict[str, dict[str, Any]]:
        """Each load balancer as observed now: where clients' links to it listen, its
        frontend (VIP), its replicas and check, its process or container state."""
        out = {}
        lbs = self.state.topology.get("load_balancers") or {}
        for name, b in self.state.balancers.items():
            seen = self.balancers.observe(name)
            out[name] = {
                "site": b.site,
                "replicas": list(lbs.get(name, {}).get("replicas", [])),
                "check": lbs.get(name, {}).get("check"),
                "client_host": b.client_host,
                "host": b.host,
                "port": b.port,
                "stats": b.stats,
                "config": b.config,
                "state": seen.state,
            }
        return out


def backend_classes() -> dict[str, type[BaseCluster]]:
    """The backends whose module is imported, by name (`harness.backends` imports them
    all): Python's own record of the subclasses, so no backend is listed here."""
    found: dict[str, type[BaseCluster]] = {}
    todo = list(BaseCluster.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.backend and not isabstract(cls):
            found.setdefault(cls.backend, cls)
        todo.extend(cls.__subclasses__())
    return found


def refuse_running(state_dir: Path) -> None:
    """`ClusterError` if the cluster last started from `state_dir` was not taken down
    and its backend says something of it still runs. A state that cannot say (unreadable,
    a backend not imported or unknown, a backend that cannot look) is replaced."""
    if not state_path(state_dir).exists():
        return
    try:
        old = load_state(state_dir)
        backend = backend_classes().get(old.backend)
        if old.status == "down" or backend is None or not backend(old).anything_running():
            return
    except ClusterError:
        return
    raise ClusterError(
        f"a cluster ({old.run_id}, {old.topology.get('name')}) is already running from "
        f"{state_dir}/; run `kmschaos down --state-dir {state_dir}` first or choose "
        "another --state-dir"
    )


Cluster = BaseCluster  # the name faults, scenarios and the auditor use for the interface
