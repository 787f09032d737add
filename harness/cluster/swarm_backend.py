"""The swarm backend: the docker backend's topology spread over the nodes of a Docker
Swarm, each site on the nodes labelled for it (`harness.swarm.nodes`).

    host client ──> S.i:P ──(published)──> toxiproxy:C ──[toxics]──> kms-b-net ══overlay══╗
    (the harness's host: the manager)                                                      ║
                                            node of site-b: holder task (a swarm service) ◄╝
                                                            └ kms-b (container in its netns)

- One attachable overlay network per site. Toxiproxy runs on the manager the harness
  talks to, as on the docker backend (a container joined to every site's overlay, its
  ports published on the run's loopback /24 only), so clients, checkers and
  ``status --json`` see the same addresses as on the other backends.
- A replica's *holder* is a swarm service (one task, ``sleep infinity``) placed by the
  constraint ``node.labels.kmschaos.site == SITE``, found by DNS round robin (the kernel
  here has no IPVS, so no service VIPs). It owns the replica's overlay address.
- The *replica* (PyKMIP and the replication agent) is a container beside the holder on
  the node that runs the holder's task, started through that node's engine in the
  holder's network namespace, with its volume on that node. Swarm's API cannot pause or
  kill a task's container on another node, and a killed task would come back as a new
  container at a new address; a container in the holder's namespace is killed, frozen,
  restarted and wiped exactly as on the docker backend (connects refused at once while
  it is down, accepted and unanswered while frozen).
- The auditor's direct path to a replica goes through Toxiproxy too (a proxy named
  ``direct:NAME`` that no fault touches): the node may be another host.
- `unreachable` takes every interface of the holder's namespace but ``lo`` down (a
  short-lived helper container with NET_ADMIN in that namespace): the address stays
  known and nothing answers it, as a host that dropped off the network.

Everything carries the docker backend's labels; the reaper removes the run's services
first (Swarm removes their tasks on every node), then its containers and volumes on each
node's engine, then what is on the manager (`reap_swarm`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from harness import registry
from harness.cluster.controls import ReplicaControls
from harness.cluster.docker_backend import KMIP_PORT, DockerCluster
from harness.cluster.docker_engine import LABEL_RUN, docker_client, reap_docker, run_labels
from harness.cluster.docker_replica import CONTROL_MOUNT
from harness.cluster.state import ClusterError, ClusterState
from harness.cluster.swarm_controls import CopiedControls, folder_archive
from harness.swarm.nodes import (
    LABEL_SITE,
    SwarmError,
    SwarmNode,
    list_nodes,
    missing_images,
    node_engine,
    nodes_for_sites,
    require_manager,
)
from harness.wait import WaitTimeout, wait_until

TASK_RUNNING_S = 60.0  # scheduling and starting a task: 0.7-2.8 s on the two-node lab
STOP_GRACE_NS = 1_000_000_000  # a holder stops at once (`sleep` ignores SIGTERM)
ROLE_HOLDER_SERVICE = "holder-service"
TASK_LABEL = "com.docker.swarm.task.id"  # on every container Swarm runs for a task
TASKS_GONE_S = 30.0

# run in a holder's network namespace: every interface but lo down (or up again)
_LINKS_SCRIPT = """
import fcntl, socket, struct, sys
up = sys.argv[1] == "up"
s = socket.socket()
for _, name in socket.if_nameindex():
    if name == "lo":
        continue
    req = struct.pack("16sH", name.encode(), 0)
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, req)[:18])[1]
    flags = flags | 1 if up else flags & ~1
    fcntl.ioctl(s, 0x8914, struct.pack("16sH", name.encode(), flags))
    print(name, "up" if up else "down")
"""


class SwarmCluster(DockerCluster):
    """A running (or starting) swarm cluster; same interface as the other backends."""

    backend = "swarm"

    def __init__(self, state: ClusterState) -> None:
        super().__init__(state)
        self._engines: dict[str, Any] = {}  # node id -> that node's engine
        self._nodes: dict[str, SwarmNode] = {}
        self._holders: dict[str, str] = {}  # replica -> its holder task's container id

    @classmethod
    def unavailable_reason(cls) -> str | None:
        reason = super().unavailable_reason()
        if reason:
            return reason
        client = docker_client()
        try:
            require_manager(client, "DOCKER_HOST")
        except SwarmError as e:
            return str(e)
        finally:
            client.close()
        return None

    # ---- the swarm ---------------------------------------------------------------------

    def _swarm_nodes(self) -> dict[str, SwarmNode]:
        if not self._nodes:
            self._nodes = {n.id: n for n in list_nodes(self.docker)}
        return self._nodes

    def _node_client(self, node_id: str) -> Any:
        if node_id not in self._engines:
            node = self._swarm_nodes().get(node_id)
            if node is None:
                self._nodes = {}
                node = self._swarm_nodes().get(node_id)
            if node is None:
                raise ClusterError(f"swarm node {node_id[:12]} is no longer in the swarm")
            self._engines[node_id] = node_engine(node, self.docker)
        return self._engines[node_id]

    def _check_sites(self, sites: dict[str, list[str]], kms_image: str) -> None:
        """Refuse before anything starts: no swarm, a site with no node, a node whose
        engine does not answer or lacks the kms image (each names what to run)."""
        require_manager(self.docker, "DOCKER_HOST")
        serving = nodes_for_sites(self._swarm_nodes().values(), sites)
        for nodes in serving.values():
            for node in nodes:
                engine = self._node_client(node.id)
                lacking = missing_images(self.docker, engine, [kms_image])
                if lacking:
                    raise SwarmError(
                        f"node {node.name} ({LABEL_SITE}={node.site}) lacks the image(s) "
                        f"{', '.join(lacking)}: run `kmschaos swarm images` (or "
                        f"`docker save {' '.join(lacking)} | docker -H ENGINE load`)"
                    )

    def _create_network(self, site: str) -> None:
        self.docker.networks.create(
            self.network_name(site),
            driver="overlay",
            attachable=True,
            labels=run_labels(self.state.run_id, "network"),
        )

    def _direct_paths(self, first_port: int) -> dict[str, int]:
        from harness.cluster.base import free_port

        out = {}
        for n, (name, rs) in enumerate(self.state.replicas.items()):
            rs.port = free_port([rs.host])
            out[name] = first_port + n
        return out

    # ---- replicas ----------------------------------------------------------------------

    def _start_replica_host(self, name: str, kms_image: str) -> None:
        """The holder service of `name` on a node of its site; once its task runs, the
        replica's volume and container on that node."""
        import docker.types as dt

        st = self.state
        rs = st.replicas[name]
        image_id = self.docker.images.get(kms_image).id  # by id: no registry look-up
        self.docker.services.create(
            image_id,
            ["sleep", "infinity"],
            name=self.holder_name(name),
            hostname=name,
            labels={**run_labels(st.run_id, ROLE_HOLDER_SERVICE), "kmschaos.replica": name},
            container_labels={**run_labels(st.run_id, "holder"), "kmschaos.replica": name},
            constraints=[f"node.labels.{LABEL_SITE}=={rs.site}"],
            networks=[dt.NetworkAttachmentConfig(self.network_name(rs.site))],
            endpoint_spec=dt.EndpointSpec(mode="dnsrr"),
            restart_policy=dt.RestartPolicy(condition="none"),
            stop_grace_period=STOP_GRACE_NS,
        )
        node_id, container_id = self._await_task(name)
        rs.node = node_id
        self._holders[name] = container_id
        engine = self._engine(name)
        engine.volumes.create(self.volume_name(name), labels=run_labels(st.run_id, "data"))
        if self._remote(name):
            engine.volumes.create(self.config_volume(name), labels=run_labels(st.run_id, "config"))
        self._run_replica(name, kms_image)

    def config_volume(self, name: str) -> str:
        return self._name(f"{name}-config")

    def _remote(self, name: str) -> bool:
        """Whether `name` runs on another node than the manager's (its control folder is
        copied there, not bound)."""
        node = self._swarm_nodes().get(self._replica(name).node)
        return node is None or not node.local

    def _control_mount(self, name: str) -> dict[str, dict[str, str]]:
        if not self._remote(name):
            return super()._control_mount(name)
        return {self.config_volume(name): {"bind": CONTROL_MOUNT, "mode": "rw"}}

    def _before_start(self, name: str, container: Any) -> None:
        if self._remote(name):
            if not container.put_archive(CONTROL_MOUNT, folder_archive(self._config_dir(name))):
                raise ClusterError(f"replica {name}: copying its control folder was refused")

    def controls(self, name: str) -> ReplicaControls:
        if not self._remote(name):
            return super().controls(name)
        return CopiedControls(self._replica(name), lambda: self._replica_container(name))

    def _await_task(self, name: str) -> tuple[str, str]:
        """The node and container of the holder service's running task."""
        service = self.docker.services.get(self.holder_name(name))
        found: dict[str, str] = {}

        def running() -> bool:
            for task in service.tasks():
                status = task.get("Status", {})
                if status.get("State") in ("failed", "rejected", "shutdown", "complete"):
                    raise ClusterError(
                        f"replica {name}: the holder's task ended ({status.get('State')}): "
                        f"{status.get('Err') or status.get('Message')}"
                    )
                if status.get("State") == "running":
                    found["node"] = task["NodeID"]
                    found["container"] = status["ContainerStatus"]["ContainerID"]
                    return True
            return False

        wait_until(running, TASK_RUNNING_S, f"the holder task of {name} to run")
        return found["node"], found["container"]

    def _engine(self, replica: str) -> Any:
        node = self._replica(replica).node
        if not node:
            raise ClusterError(f"replica {replica}: no swarm node recorded")
        return self._node_client(node)

    def _engine_of_container(self, container: str) -> Any:
        for name in self.state.replicas:
            if container == self.container_name(name):
                return self._engine(name)
        return self.docker

    def _holder_ref(self, replica: str) -> str:
        if replica not in self._holders:
            self._holders[replica] = self._await_task(replica)[1]
        return self._holders[replica]

    def _upstream(self, server: Any) -> str:
        from harness.cluster.state import BalancerState

        if isinstance(server, BalancerState):
            return super()._upstream(server)
        return f"{self.holder_name(server.name)}:{KMIP_PORT}"

    # ---- unreachable ---------------------------------------------------------------------

    def _holder_links(self, name: str, state: str) -> None:
        from harness import images

        engine = self._engine(name)
        out = engine.containers.run(
            images.kms_image(),
            ["python3", "-c", _LINKS_SCRIPT, state],
            network_mode=f"container:{self._holder_ref(name)}",
            cap_add=["NET_ADMIN"],
            labels=run_labels(self.state.run_id, "helper"),
            remove=True,
        )
        if not out.strip():
            raise ClusterError(f"replica {name}: no interface to set {state} in its holder")

    def take_off_network(self, name: str) -> None:
        """Every interface of the holder's namespace but lo down: the address stays and
        nothing answers it."""
        self._holder_links(name, "down")

    def put_on_network(self, name: str) -> None:
        self._holder_links(name, "up")

    def stop(self) -> None:
        reap_swarm(self.state.run_id)
        for engine in self._engines.values():
            if engine is not self._client:
                with contextlib.suppress(Exception):
                    engine.close()
        self._engines = {}
        super().stop()


# ---- reaping -----------------------------------------------------------------------------


def _manager_if_any() -> Any:
    try:
        client = docker_client()
    except ClusterError:
        return None
    with contextlib.suppress(Exception):
        if (client.info().get("Swarm") or {}).get("ControlAvailable"):
            return client
    client.close()
    return None


def _run_filter(run_id: str | None) -> dict[str, str]:
    from harness.cluster.docker_engine import LABEL_REGISTRY

    if run_id:
        return {"label": f"{LABEL_RUN}={run_id}"}
    return {"label": f"{LABEL_REGISTRY}={registry.registry_tag()}"}


def _other_engines(manager: Any) -> list[Any]:
    engines = []
    for node in list_nodes(manager):
        if node.local or not node.engine:
            continue
        with contextlib.suppress(Exception):
            engines.append(node_engine(node, manager))
    return engines


def swarm_run_ids() -> set[str]:
    """Run ids of this registry that own services, or containers on a node's engine."""
    manager = _manager_if_any()
    if manager is None:
        return set()
    found: set[str] = set()
    flt = _run_filter(None)
    with contextlib.suppress(Exception):
        for s in manager.services.list(filters=flt):
            found.add((s.attrs.get("Spec", {}).get("Labels") or {}).get(LABEL_RUN, ""))
        for engine in _other_engines(manager):
            with contextlib.closing(engine):
                for c in engine.containers.list(all=True, filters=flt):
                    found.add(c.labels.get(LABEL_RUN, ""))
    manager.close()
    found.discard("")
    return found


def reap_swarm(run_id: str) -> int:
    """Remove the run's services (their tasks on every node), its containers and volumes
    on every node's engine, then what the manager holds; how many objects."""
    import docker.errors

    manager = _manager_if_any()
    if manager is None:
        return reap_docker(run_id)
    n = 0
    flt = _run_filter(run_id)
    try:
        for s in manager.services.list(filters=flt):
            with contextlib.suppress(Exception):
                s.remove()
                n += 1
        engines = [manager, *_other_engines(manager)]
        try:
            for engine in engines[1:]:
                n += _reap_engine(engine, flt)
            # Swarm removes the tasks' containers on its own time; a site's overlay can
            # only go once none is attached
            with contextlib.suppress(WaitTimeout):
                wait_until(
                    lambda: not any(_task_containers(e, flt) for e in engines),
                    TASKS_GONE_S,
                    f"the swarm tasks of {run_id} to be removed",
                    poll_s=0.1,
                    transient=(docker.errors.NotFound,),  # removed while listed
                )
        finally:
            for engine in engines[1:]:
                engine.close()
        n += reap_docker(run_id)
        n += _remove_networks(manager, flt, run_id)
    finally:
        manager.close()
    return n


def _remove_networks(manager: Any, flt: dict[str, str], run_id: str) -> int:
    """Remove the run's networks, again until they are gone: a site's overlay is refused
    while a node still holds an endpoint of a task being removed, and a removed one
    leaves the manager's list asynchronously."""
    import docker.errors

    removed: set[str] = set()

    def gone() -> bool:
        for net in manager.networks.list(filters=flt):
            with contextlib.suppress(docker.errors.APIError):
                net.remove()
                removed.add(net.id)
        return not manager.networks.list(filters=flt)

    with contextlib.suppress(WaitTimeout):  # the next reap tries again
        wait_until(
            gone,
            TASKS_GONE_S,
            f"the networks of {run_id} to be removed",
            poll_s=0.2,
            transient=(docker.errors.NotFound,),
        )
    return len(removed)


def _task_containers(engine: Any, flt: dict[str, str]) -> list[Any]:
    return [c for c in engine.containers.list(all=True, filters=flt) if c.labels.get(TASK_LABEL)]


def _reap_engine(engine: Any, flt: dict[str, str]) -> int:
    n = 0
    for c in engine.containers.list(all=True, filters=flt):
        if c.labels.get(TASK_LABEL):
            continue  # Swarm removes its tasks
        with contextlib.suppress(Exception):
            c.remove(force=True, v=True)
            n += 1
    for v in engine.volumes.list(filters=flt):
        with contextlib.suppress(Exception):
            v.remove(force=True)
            n += 1
    return n


registry.register_reaper(SwarmCluster.backend, run_ids=swarm_run_ids, reap=reap_swarm)
