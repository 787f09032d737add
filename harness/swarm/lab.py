"""A two-node swarm on one machine, for the swarm backend's tests and for trying it
without a lab: this host's Docker engine is node 1 (the manager), a second engine in a
network namespace of its own is node 2.

    this host                                    network namespace kmschaos-lab
    dockerd (/var/run/docker.sock)               dockerd (LAB_DIR/docker.sock), its own
      169.254.77.1/24 kmslab0 ══ veth ══ kmslab1 169.254.77.2/24   data root, exec root,
                                                                   containerd, hostname

The addresses are link-local and nothing is routed off the machine: overlay traffic
(VXLAN, UDP 4789), the swarm's gossip (7946) and its control plane (2377) cross the
veth pair only. Node 1 serves the first site, node 2 the second (`LABEL_SITE`); node 2's
engine label names its socket, and the images node 2 runs are loaded into it.

One lab per machine (an engine belongs to one swarm): `up` is idempotent and takes a
lock; `down` removes node 2 from the swarm, stops its engine and every process in its
namespace, removes its state and the namespace, and leaves the swarm if `up` created it.
Needs root, iproute2, util-linux (nsenter, unshare) and dockerd.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.registry import process_alive
from harness.swarm.nodes import LABEL_ENGINE, SwarmError, connect_engine, copy_images, label_node
from harness.wait import WaitTimeout, wait_until

LAB_DIR = Path(os.environ.get("KMSCHAOS_LAB_DIR", "/var/lib/kmschaos-lab"))
NETNS = "kmschaos-lab"
HOST_IF, NODE_IF = "kmslab0", "kmslab1"
HOST_ADDR, NODE_ADDR, PREFIX = "169.254.77.1", "169.254.77.2", 24
NODE_HOSTNAME = "kmschaos-lab-node2"
SWARM_PORT = 2377
ENGINE_READY_S = 60.0
NODE_READY_S = 60.0
ENGINE_STOP_S = 15.0

Log = Callable[[str], None]


@dataclass
class LabState:
    """What `up` made, so that `down` undoes exactly that."""

    socket: str  # node 2's engine
    node_id: str = ""  # node 2 in the swarm
    manager_id: str = ""
    created_swarm: bool = False  # `up` ran `swarm init` on this host's engine

    @property
    def engine_url(self) -> str:
        return f"unix://{self.socket}"


def _paths() -> dict[str, Path]:
    return {
        "state": LAB_DIR / "lab.json",
        "lock": LAB_DIR / "lab.lock",
        "data": LAB_DIR / "data",
        "exec": LAB_DIR / "exec",
        "socket": LAB_DIR / "docker.sock",
        "pid": LAB_DIR / "docker.pid",
        "log": LAB_DIR / "dockerd.log",
    }


def missing_tools() -> list[str]:
    """What the lab needs and this machine lacks (Debian package names)."""
    need = {
        "ip": "iproute2",
        "nsenter": "util-linux",
        "unshare": "util-linux",
        "dockerd": "docker.io",
    }
    return sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})


def unavailable_reason() -> str | None:
    """Why the lab cannot start here (with what to do), or None."""
    if os.geteuid() != 0:
        return "the swarm lab needs root (a network namespace and a second Docker engine)"
    missing = missing_tools()
    if missing:
        return f"the swarm lab needs {', '.join(missing)}: apt-get install {' '.join(missing)}"
    return None


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(_paths()["lock"], "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ip(*args: str, netns: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(("-n", NETNS) if netns else ()), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def read_state() -> LabState | None:
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        return LabState(**json.loads(_paths()["state"].read_text()))
    return None


def _write_state(state: LabState) -> None:
    path = _paths()["state"]
    path.write_text(json.dumps(asdict(state), indent=2))


# ---- up ----------------------------------------------------------------------------


def up(manager: Any, sites: Sequence[str], images: Sequence[str], log: Log = print) -> LabState:
    """The lab, started or found running: node 2 joined, `sites[0]` on this host's
    node, `sites[1]` on node 2, `images` loaded into node 2. `manager` is this host's
    engine. Whatever this call started is removed again if it fails."""
    reason = unavailable_reason()
    if reason:
        raise SwarmError(reason)
    if len(sites) != 2:
        raise SwarmError(f"the swarm lab has two nodes, one per site; asked for {len(sites)} sites")
    with _locked():
        state = read_state() or LabState(socket=str(_paths()["socket"]))
        try:
            _network(log)
            node = _engine(log)
            try:
                _join(manager, node, state, log)
                _write_state(state)
                label_node(manager, state.manager_id, sites[0], "")
                label_node(manager, state.node_id, sites[1], state.engine_url)
                copy_images(manager, node, images, log)
            finally:
                node.close()
        except BaseException:
            _down(manager, state, log)
            raise
        _write_state(state)
        return state


def _network(log: Log) -> None:
    if not Path(f"/run/netns/{NETNS}").exists():
        log(f"network namespace {NETNS}, veth {HOST_IF} {HOST_ADDR} <-> {NODE_IF} {NODE_ADDR}")
        _ip("netns", "add", NETNS)
    if _ip("link", "show", HOST_IF, check=False).returncode != 0:
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NODE_IF)
        _ip("link", "set", NODE_IF, "netns", NETNS)
        _ip("addr", "add", f"{HOST_ADDR}/{PREFIX}", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("addr", "add", f"{NODE_ADDR}/{PREFIX}", "dev", NODE_IF, netns=True)
        _ip("link", "set", NODE_IF, "up", netns=True)
        _ip("link", "set", "lo", "up", netns=True)


def _engine_answers() -> bool:
    try:
        connect_engine(f"unix://{_paths()['socket']}", timeout_s=5).close()
    except Exception:  # noqa: BLE001 - not (yet) answering, whatever the reason
        return False
    return True


def _engine(log: Log) -> Any:
    """Node 2's engine, started in the namespace unless it answers already."""
    p = _paths()
    if not _engine_answers():
        for d in ("data", "exec"):
            p[d].mkdir(parents=True, exist_ok=True)
        log(f"second Docker engine in {NETNS} (log {p['log']})")
        dockerd = [
            "dockerd",
            f"--data-root={p['data']}",
            f"--exec-root={p['exec']}",
            f"--host=unix://{p['socket']}",
            f"--pidfile={p['pid']}",
            f"--cgroup-parent={NETNS}",
            "--userland-proxy=false",
        ]
        # nsenter keeps this host's mounts (/sys/fs/cgroup), unlike `ip netns exec`;
        # its own UTS namespace gives node 2 a hostname of its own
        argv = [
            "nsenter",
            f"--net=/run/netns/{NETNS}",
            "--",
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            f"hostname {NODE_HOSTNAME} && exec {' '.join(dockerd)}",
        ]
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        with p["log"].open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

        def answers() -> bool:
            if proc.poll() is not None:
                raise SwarmError(
                    f"the lab's second engine exited ({proc.returncode}); see {p['log']}"
                )
            return _engine_answers()

        wait_until(
            answers,
            ENGINE_READY_S,
            f"the lab's second engine at {p['socket']}",
            poll_s=0.1,
            logs=[p["log"]],
        )
    return connect_engine(f"unix://{p['socket']}")


def _join(manager: Any, node: Any, state: LabState, log: Log) -> None:
    info = manager.info().get("Swarm") or {}
    if info.get("LocalNodeState") != "active":
        log(f"swarm init on this host's engine (advertised at {HOST_ADDR})")
        manager.swarm.init(advertise_addr=HOST_ADDR, listen_addr=f"{HOST_ADDR}:{SWARM_PORT}")
        state.created_swarm = True
        info = manager.info().get("Swarm") or {}
    elif not info.get("ControlAvailable"):
        raise SwarmError("this host's engine is a swarm worker: the lab needs it to be a manager")
    advertised = {
        str(m.get("Addr", "")).rsplit(":", 1)[0] for m in info.get("RemoteManagers") or []
    }
    if HOST_ADDR not in advertised:
        raise SwarmError(
            f"this host's engine is in a swarm advertised at {', '.join(sorted(advertised))}, "
            f"which node 2 cannot reach: run the swarm backend on that swarm, or leave it "
            "(`docker swarm leave --force`) and run `kmschaos swarm lab up`"
        )
    state.manager_id = str(info.get("NodeID", ""))
    node_info = node.info().get("Swarm") or {}
    if node_info.get("LocalNodeState") == "active" and node_info.get("NodeID"):
        known = {n.id for n in manager.nodes.list()}
        if node_info["NodeID"] in known:
            state.node_id = str(node_info["NodeID"])
            return
        node.swarm.leave(force=True)  # a swarm of an earlier lab
    log("node 2 joins the swarm")
    token = manager.swarm.attrs["JoinTokens"]["Worker"]
    node.swarm.join(
        remote_addrs=[f"{HOST_ADDR}:{SWARM_PORT}"],
        join_token=token,
        listen_addr=f"{NODE_ADDR}:{SWARM_PORT}",
        advertise_addr=NODE_ADDR,
    )
    state.node_id = str((node.info().get("Swarm") or {}).get("NodeID", ""))

    def ready() -> bool:
        n = manager.nodes.get(state.node_id)
        return bool(n.attrs.get("Status", {}).get("State") == "ready")

    wait_until(
        ready,
        NODE_READY_S,
        f"node 2 ({state.node_id[:12]}) to be ready in the swarm",
        poll_s=0.1,
        logs=[_paths()["log"]],
    )


# ---- down --------------------------------------------------------------------------


def down(manager: Any | None, log: Log = print) -> bool:
    """Remove the lab (whatever is left of it); False when there was none."""
    with _locked():
        state = read_state()
        found = state is not None or Path(f"/run/netns/{NETNS}").exists()
        _down(manager, state, log)
        return found


def _down(manager: Any | None, state: LabState | None, log: Log) -> None:
    p = _paths()
    if _engine_answers():
        with contextlib.suppress(Exception):
            node = connect_engine(f"unix://{p['socket']}", timeout_s=10)
            with contextlib.closing(node):
                node.swarm.leave(force=True)
                for c in node.containers.list(all=True):
                    c.remove(force=True)
    if manager is not None and state is not None:
        _forget_nodes(manager, state)
    stopped = _stop_node_processes(p["pid"])
    if stopped:
        log(f"stopped node 2's engine ({stopped} process(es))")
    _unmount_under(LAB_DIR)
    for d in ("data", "exec"):
        shutil.rmtree(p[d], ignore_errors=True)
    if Path(f"/run/netns/{NETNS}").exists():
        _ip("netns", "del", NETNS, check=False)
    _ip("link", "del", HOST_IF, check=False)  # gone with the namespace, unless moved back
    if manager is not None and state is not None and state.created_swarm:
        log("leaving the swarm this lab created")
        with contextlib.suppress(Exception):
            manager.swarm.leave(force=True)
        with contextlib.suppress(Exception):
            manager.networks.get("docker_gwbridge").remove()
    with contextlib.suppress(FileNotFoundError):
        p["state"].unlink()


def _forget_nodes(manager: Any, state: LabState) -> None:
    """Node 2 out of the manager's list, and the labels `up` put on this host's node."""
    with contextlib.suppress(Exception):
        if state.node_id:
            manager.nodes.get(state.node_id).remove(force=True)
    with contextlib.suppress(Exception):
        if state.manager_id and not state.created_swarm:
            label_node(manager, state.manager_id, "", "")


def _node_processes() -> list[int]:
    """Node 2's processes: its engine, containerd and shims (in the lab's network
    namespace) and its containers' (in cgroups under the lab's cgroup parent)."""
    try:
        inode = Path(f"/run/netns/{NETNS}").stat().st_ino
    except FileNotFoundError:
        inode = None
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            in_ns = inode is not None and (proc / "ns" / "net").stat().st_ino == inode
            if in_ns or f"/{NETNS}/" in (proc / "cgroup").read_text():
                pids.append(int(proc.name))
    return [pid for pid in pids if process_alive(pid, None)]


def _stop_node_processes(pidfile: Path) -> int:
    """SIGTERM node 2's engine (it stops its containerd), then SIGKILL whatever of node
    2 is left; how many processes there were."""
    pids = _node_processes()
    with contextlib.suppress(OSError, ValueError):
        engine = int(pidfile.read_text().strip())
        if engine in pids:
            os.kill(engine, signal.SIGTERM)
            with contextlib.suppress(WaitTimeout):
                wait_until(
                    lambda: not process_alive(engine, None),
                    ENGINE_STOP_S,
                    "node 2's engine to stop after SIGTERM",
                    poll_s=0.05,
                )
    for pid in _node_processes():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: not _node_processes(),
        ENGINE_STOP_S,
        "node 2's processes to exit after SIGKILL",
        poll_s=0.05,
    )
    return len(pids)


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


__all__ = ["LABEL_ENGINE", "LabState", "down", "main", "read_state", "unavailable_reason", "up"]


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.swarm.lab check``: exit 0 when the lab can start here (root,
    the tools, an engine answers), else 1 with the reason."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["check"]:
        print("usage: python -m harness.swarm.lab check", file=sys.stderr)
        return 2
    from harness.cluster.docker_engine import docker_client

    reason = unavailable_reason()
    if reason is None:
        try:
            docker_client().close()
        except Exception as e:  # noqa: BLE001 - ClusterError: no engine answers
            reason = str(e)
    if reason:
        print(f"swarm lab: {reason}")
        return 1
    print("swarm lab: can start here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
