"""The swarm as the swarm backend meets it: the manager the harness talks to, the nodes
and the site each serves, the engine of each node (faults act there), and the images
each node holds.

A node serves site S when it carries the node label ``kmschaos.site=S``; the swarm's
scheduler places S's replicas on those nodes. Swarm's API cannot pause or kill a task's
container on another node, so every node other than the manager the harness talks to
names its own engine in the label ``kmschaos.engine`` (``ssh://user@host``,
``tcp://host:2376`` or, for a node on this machine, ``unix:///path.sock``); the harness
reaches it there for stalls, kills, restarts, wipes and to load images.

    kmschaos swarm label NODE SITE [--engine URL]

Every refusal here is a `SwarmError`: one line naming the node or site and the command
that fixes it (the command line exits 2, nothing started).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.cluster.state import ClusterError

LABEL_SITE = "kmschaos.site"
LABEL_ENGINE = "kmschaos.engine"
ENGINE_TIMEOUT_S = 60
LAB_HINT = "`kmschaos swarm lab up` starts a two-node swarm on this machine"

Log = Callable[[str], None]


class SwarmError(ClusterError):
    """The swarm cannot run this topology as it is (bad input, not a fault of ours)."""

    bad_input = True


@dataclass(frozen=True)
class SwarmNode:
    id: str
    hostname: str
    address: str  # the node's address in the swarm (Status.Addr)
    site: str | None  # LABEL_SITE
    engine: str | None  # LABEL_ENGINE
    ready: bool  # state ready and availability active
    local: bool  # the manager the harness talks to

    @property
    def name(self) -> str:
        return self.hostname or self.id[:12]

    def engine_url(self) -> str:
        return "the manager's engine" if self.local else (self.engine or "(no engine label)")


def _node(attrs: dict[str, Any], local_id: str) -> SwarmNode:
    spec = attrs.get("Spec", {})
    status = attrs.get("Status", {})
    labels = spec.get("Labels") or {}
    return SwarmNode(
        id=attrs["ID"],
        hostname=attrs.get("Description", {}).get("Hostname", ""),
        address=status.get("Addr", ""),
        site=labels.get(LABEL_SITE) or None,
        engine=labels.get(LABEL_ENGINE) or None,
        ready=status.get("State") == "ready" and spec.get("Availability") == "active",
        local=attrs["ID"] == local_id,
    )


def swarm_info(client: Any) -> dict[str, Any]:
    info: dict[str, Any] = client.info().get("Swarm") or {}
    return info


def require_manager(client: Any, where: str) -> str:
    """The node id of the manager at `client` (`where`: its address, for messages);
    `SwarmError` when that engine is in no swarm or is a worker."""
    info = swarm_info(client)
    if info.get("LocalNodeState") != "active":
        raise SwarmError(
            f"the Docker engine at {where} is not in a swarm: run `docker swarm init` "
            f"there (and `docker swarm join` on the other hosts), or {LAB_HINT}"
        )
    if not info.get("ControlAvailable"):
        raise SwarmError(
            f"the Docker engine at {where} is a swarm worker: point DOCKER_HOST at a "
            "manager (`docker node ls` on a manager lists them)"
        )
    return str(info.get("NodeID", ""))


def list_nodes(client: Any) -> list[SwarmNode]:
    """Every node of the swarm whose manager `client` talks to."""
    local = str(swarm_info(client).get("NodeID", ""))
    return [_node(n.attrs, local) for n in client.nodes.list()]


def find_node(nodes: Iterable[SwarmNode], ref: str) -> SwarmNode:
    """The node named `ref` (hostname, id or id prefix); `SwarmError` otherwise."""
    nodes = list(nodes)
    for n in nodes:
        if ref in (n.hostname, n.id):
            return n
    prefixed = [n for n in nodes if n.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    known = ", ".join(f"{n.name} ({n.id[:12]})" for n in nodes) or "none"
    raise SwarmError(f"no swarm node {ref!r} (nodes: {known}; `docker node ls` lists them)")


def nodes_for_sites(nodes: Iterable[SwarmNode], sites: Iterable[str]) -> dict[str, list[SwarmNode]]:
    """The ready nodes labelled for each of `sites`; `SwarmError` naming the first site
    that has none (and what to run)."""
    nodes = list(nodes)
    out: dict[str, list[SwarmNode]] = {}
    for site in sites:
        serving = [n for n in nodes if n.site == site and n.ready]
        if not serving:
            labelled = [n.name for n in nodes if n.site == site]
            why = (
                f"its node(s) {', '.join(labelled)} are not ready and active (`docker node ls`)"
                if labelled
                else f"no node is labelled {LABEL_SITE}={site}"
            )
            raise SwarmError(
                f"site {site} has no swarm node to run on: {why}; run "
                f"`kmschaos swarm label NODE {site}` for a node of that site"
            )
        out[site] = serving
    return out


def connect_engine(url: str, timeout_s: float = ENGINE_TIMEOUT_S) -> Any:
    """A docker-py client of the engine at `url` that answered a ping (ssh:// goes through
    the system's ssh client, so its keys and config apply)."""
    from docker.client import DockerClient

    client = DockerClient(
        base_url=url, timeout=int(timeout_s), use_ssh_client=url.startswith("ssh://")
    )
    try:
        client.ping()
    except BaseException:
        client.close()
        raise
    return client


def node_engine(node: SwarmNode, manager: Any) -> Any:
    """The engine that runs `node`'s containers: the manager's own client for the local
    node, else the one its engine label names; `SwarmError` when it has none or it does
    not answer."""
    if node.local:
        return manager
    if not node.engine:
        raise SwarmError(
            f"node {node.name}: no engine address to stall or kill its replicas with: run "
            f"`kmschaos swarm label {node.name} {node.site or 'SITE'} --engine ssh://USER@HOST`"
        )
    try:
        return connect_engine(node.engine)
    except Exception as e:  # noqa: BLE001 - docker-py raises several kinds here
        raise SwarmError(
            f"node {node.name}: its engine at {node.engine} does not answer "
            f"({type(e).__name__}: {e}); open it to this host (SSH key, or the engine's "
            f"TLS port) or relabel it: `kmschaos swarm label {node.name} "
            f"{node.site or 'SITE'} --engine URL`"
        ) from None


def label_node(client: Any, ref: str, site: str | None, engine: str | None) -> SwarmNode:
    """Set (or with "" remove) a node's site and engine labels; the node as it is now."""
    require_manager(client, "DOCKER_HOST")
    node = find_node(list_nodes(client), ref)
    obj = client.nodes.get(node.id)
    spec = dict(obj.attrs["Spec"])
    labels = dict(spec.get("Labels") or {})
    for key, value in ((LABEL_SITE, site), (LABEL_ENGINE, engine)):
        if value is None:
            continue
        if value:
            labels[key] = value
        else:
            labels.pop(key, None)
    spec["Labels"] = labels
    obj.update(spec)
    return find_node(list_nodes(client), node.id)


# ---- images -----------------------------------------------------------------------


def image_id(client: Any, ref: str) -> str | None:
    """The id of image `ref` in an engine, or None."""
    import docker.errors

    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def missing_images(manager: Any, node_client: Any, refs: Iterable[str]) -> list[str]:
    """The images of `refs` (as the manager holds them) that the node lacks or holds
    under another id."""
    return [r for r in refs if image_id(node_client, r) != image_id(manager, r)]


def copy_images(manager: Any, node_client: Any, refs: Iterable[str], log: Log) -> list[str]:
    """``docker save | docker load`` of `refs` from the manager's engine into a node's,
    streamed (no registry, nothing held in memory); the refs copied."""
    copied = []
    for ref in missing_images(manager, node_client, refs):
        log(f"loading {ref} into the node's engine")
        saved = manager.images.get(ref).save(named=ref)
        for message in node_client.api.load_image(saved, quiet=True):
            if isinstance(message, dict) and message.get("error"):
                raise SwarmError(f"loading {ref} into a node's engine: {message['error']}")
        copied.append(ref)
    return copied
