"""The machine a run measures on, and the memory of a local cluster's processes.

`machine_facts` and `load_and_runs` go into the results' JSON (what the numbers were
measured on, and the noise around them); `memory_snapshot` sums /proc's counters over
each replica's process group and Toxiproxy.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import REPO, BenchError
from harness import registry
from harness.cluster.local import LocalCluster
from harness.toolchain import find_toxiproxy_server


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["mem_total_mb"] = round(int(line.split()[1]) / 1024)
    path, version = find_toxiproxy_server()
    facts["toxiproxy"] = {"path": path, "version": version}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        facts["pykmip"] = importlib.metadata.version("pykmip")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if r.returncode == 0:
            facts["git_commit"] = r.stdout.strip()
    return facts


def load_and_runs() -> dict[str, Any]:
    """What else is running: load averages and other live kmschaos runs (noise)."""
    others = [e.run_id for e in registry.read_entries() if e.owner_alive()]
    return {"loadavg": list(os.getloadavg()), "other_kmschaos_runs": others}


SPAWNER = "spawner"  # the replica spawner's entry in a `memory_snapshot`


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(d.name)] = (int(fields[1]), int(fields[2]))
    return out


def _group(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """`root`, its process group and all their descendants."""
    members = {root} | {p for p, (_, pg) in table.items() if pg == root}
    changed = True
    while changed:
        grown = {p for p, (pp, _) in table.items() if pp in members} - members
        members |= grown
        changed = bool(grown)
    return {p for p in members if p in table}


def process_tree(root: int) -> set[int]:
    """`root`, its process group and all their descendants, as they are now."""
    return _group(root, _proc_table())


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time `pids` have used so far, their ended threads included
    (/proc's stat: clock-tick resolution, so measure over many operations)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size: each page shared by n processes counts 1/n (so a group's
    sum counts its shared pages once, as a container's cgroup does)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def memory_snapshot(cluster: LocalCluster) -> dict[str, Any]:
    """Sum of VmRSS (and VmHWM, Pss, RssAnon) per replica process group and for
    Toxiproxy (under the key "toxiproxy")."""
    table = _proc_table()
    st = cluster.state
    roots = {name: rs.pid for name, rs in st.replicas.items()}
    roots["toxiproxy"] = st.toxiproxy_pid
    if st.spawner_pid:
        roots[SPAWNER] = st.spawner_pid
    out: dict[str, Any] = {}
    for name, pid in roots.items():
        if not pid:
            raise BenchError(f"{name} has no pid in a ready cluster")
        pids = _group(pid, table)
        if name == SPAWNER:
            pids = {pid}  # its children are the replicas, counted on their own
        out[name] = {
            "processes": len(pids),
            "rss_mb": sum(_status_kb(p, "VmRSS") for p in pids) / 1024,
            "hwm_mb": sum(_status_kb(p, "VmHWM") for p in pids) / 1024,
            "pss_mb": sum(_pss_kb(p) for p in pids) / 1024,
            "anon_mb": sum(_status_kb(p, "RssAnon") for p in pids) / 1024,
        }
    return out


def replica_memory(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The replicas' entries of a `memory_snapshot` (every one but Toxiproxy's and the
    spawner's)."""
    return [m for name, m in snapshot.items() if name not in ("toxiproxy", SPAWNER)]


def replica_pss(snapshot: dict[str, Any]) -> list[float]:
    """Each replica's PSS (MB) with its share of the spawner's (the pages they share
    are counted in both, each process's part of them in its own PSS; the spawner's own
    part is split evenly among the replicas it forked)."""
    replicas = replica_memory(snapshot)
    share = snapshot.get(SPAWNER, {}).get("pss_mb", 0.0) / max(1, len(replicas))
    return [m["pss_mb"] + share for m in replicas]
