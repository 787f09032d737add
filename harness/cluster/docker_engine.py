"""The Docker engine as the docker backend meets it: the client (`docker_client`),
whether the backend can run here (`unavailable_reason`), how the engine publishes ports
(`userland_proxy`), the labels every object of a run carries, what a container is seen
to be (`observe_container`), and the reaper that finds and removes what a run left
(`docker_run_ids`, `reap_docker`; `docker_backend` registers them with
`harness.registry`)."""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import registry
from harness.cluster.observed import ReplicaObservation
from harness.cluster.state import ClusterError

LABEL_RUN = "kmschaos.run"
LABEL_REGISTRY = "kmschaos.registry"
LABEL_ROLE = "kmschaos.role"
DOCKER_TIMEOUT_S = 60


def docker_client() -> Any:
    """A docker-py client that answered a ping, or `ClusterError` saying what to do."""
    from docker.client import DockerClient

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = DockerClient.from_env(timeout=DOCKER_TIMEOUT_S)
        client.ping()
    except Exception as e:  # noqa: BLE001 - docker-py raises several kinds here
        raise ClusterError(
            f"no Docker engine answers at {where} ({type(e).__name__}: {e}); start one "
            "(Debian: `apt-get install docker.io && dockerd &`), or use --backend local"
        ) from None
    return client


def unavailable_reason() -> str | None:
    """None when the docker backend can run here (an engine answers and the images of
    this checkout are built), else why not, with what to do."""
    from harness import images

    try:
        client = docker_client()
    except ClusterError as e:
        return str(e)
    try:
        missing = images.missing_images(client)
    finally:
        client.close()
    if missing:
        return f"image(s) {', '.join(missing)} not built: run `make images`"
    return None


def userland_proxy() -> bool:
    """Does the engine publish ports through docker-proxy (its default)? Read from the
    local dockerd's command line and /etc/docker/daemon.json; a remote engine counts
    as default."""
    flag: bool | None = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"dockerd"):
            for a in args:
                if a.startswith(b"--userland-proxy"):
                    flag = not a.endswith(b"=false")
            break
    if flag is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            conf = json.loads(Path("/etc/docker/daemon.json").read_text())
            if "userland-proxy" in conf:
                flag = bool(conf["userland-proxy"])
    return True if flag is None else flag


def run_labels(run_id: str, role: str) -> dict[str, str]:
    """The labels of an object of run `run_id` (the reaper finds it by them)."""
    return {LABEL_RUN: run_id, LABEL_REGISTRY: registry.registry_tag(), LABEL_ROLE: role}


def observe_container(c: Any, name: str) -> ReplicaObservation:
    """Container `c` (named `name`; None when gone) as the engine reports it now:
    running, paused, or stopped (any other engine state)."""
    if c is None:
        return ReplicaObservation("stopped", None, f"container {name} gone")
    st = c.attrs.get("State", {})
    status = str(st.get("Status", "unknown"))
    state = {"running": "running", "paused": "paused"}.get(status, "stopped")
    incarnation = None
    if state != "stopped":
        incarnation = f"container {c.id[:12]} started {st.get('StartedAt', '?')}"
    return ReplicaObservation(state, incarnation, f"container {c.name} {status}")


# ---- reaping ---------------------------------------------------------------------------


KILL_DEADLINE_S = 10.0


def kill_container(c: Any) -> None:
    """``docker kill`` (SIGKILL; a paused container is unpaused first), then wait until
    the engine says it no longer runs."""
    from harness.wait import wait_until

    if c.status == "paused":
        c.unpause()
        c.reload()
    if c.status != "running":
        return
    c.kill()

    def dead() -> bool:
        c.reload()
        return bool(c.status not in ("running", "paused"))

    wait_until(dead, KILL_DEADLINE_S, f"container {c.name} to stop after docker kill")


def _run_filter(run_id: str | None) -> dict[str, str]:
    if run_id:
        return {"label": f"{LABEL_RUN}={run_id}"}
    return {"label": f"{LABEL_REGISTRY}={registry.registry_tag()}"}


def _engine_if_any() -> Any:
    """A client when an engine answers, else None (the reaper's cheap question: no socket,
    no ping)."""
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return None
    try:
        return docker_client()
    except ClusterError:
        return None


def docker_run_ids() -> set[str]:
    """Run ids of this registry that own containers, networks or volumes."""
    client = _engine_if_any()
    if client is None:
        return set()
    found: set[str] = set()
    with contextlib.suppress(Exception):
        flt = _run_filter(None)
        for c in client.containers.list(all=True, filters=flt):
            found.add(c.labels.get(LABEL_RUN, ""))
        for n in client.networks.list(filters=flt):
            found.add((n.attrs.get("Labels") or {}).get(LABEL_RUN, ""))
        for v in client.volumes.list(filters=flt):
            found.add((v.attrs.get("Labels") or {}).get(LABEL_RUN, ""))
    client.close()
    found.discard("")
    return found


def reap_docker(run_id: str) -> int:
    """Remove every container, network and volume labelled with `run_id`; how many."""
    client = _engine_if_any()
    if client is None:
        return 0
    n = 0
    flt = _run_filter(run_id)

    def removed(remove: Any, **kwargs: Any) -> int:
        try:
            remove(**kwargs)
            return 1
        except Exception:  # noqa: BLE001 - gone already, or in use: the next reap retries
            return 0

    try:
        containers = client.containers.list(all=True, filters=flt)
        # replicas before the holders whose network namespace they use; each group at once
        holders = [c for c in containers if c.labels.get(LABEL_ROLE) == "holder"]
        others = [c for c in containers if c.labels.get(LABEL_ROLE) != "holder"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for group in (others, holders):
                n += sum(pool.map(lambda c: removed(c.remove, force=True, v=True), group))
            networks = client.networks.list(filters=flt)
            n += sum(pool.map(lambda net: removed(net.remove), networks))
            volumes = client.volumes.list(filters=flt)
            n += sum(pool.map(lambda v: removed(v.remove, force=True), volumes))
    finally:
        client.close()
    return n
