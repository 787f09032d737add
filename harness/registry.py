"""The machine-wide run registry: address leases, process labels, the reaper.

Every cluster ("run") leases a private loopback /24 (``127.X.Y.0``) so two runs, or
two pytest-xdist workers, never share an address or a port. Every process a run
starts carries the labels ``KMSCHAOS_RUN_ID=<run id>`` and ``KMSCHAOS_REGISTRY_TAG=<tag>``
in its environment, and every firewall rule it adds carries the comment
``kmschaos:<tag>:<run id>:<fault id>``; the tag names the registry folder, so a private
registry (``KMSCHAOS_REGISTRY``, used by tests) never reaps another's runs. The reaper finds
leftovers by those labels, so it works even after the harness was killed with SIGKILL
and its state folder is gone.

A run is *stale* when its owner process is dead and it was not started detached
(``kmschaos up`` starts detached clusters on purpose; only ``down`` removes those).

The registry reaps what it knows itself: labelled processes, firewall rules, leases.
What a backend makes elsewhere (the docker backend's containers, networks and volumes)
is reaped by the backend's own reaper, which it hands over with `register_reaper` when
its module is imported. So a reaper takes part once its backend module is imported:
``harness.backends`` imports every backend, and every command, the pytest plugin and
the matrix import it before they reap.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.toolchain import iptables_path, repo_root

LABEL_ENV = "KMSCHAOS_RUN_ID"
REGISTRY_ENV = "KMSCHAOS_REGISTRY_TAG"
RULE_TAG = "kmschaos:"


def registry_dir() -> Path:
    """The registry folder shared by every run of this user on this machine."""
    base = os.environ.get("KMSCHAOS_REGISTRY") or f"/tmp/kmschaos-{os.getuid()}"
    p = Path(base)
    (p / "runs").mkdir(parents=True, exist_ok=True)
    return p


def registry_tag() -> str:
    """A short name of this registry: labels and rules carry it, so a registry (for
    example a test's private one) only ever reaps what it started."""
    return hashlib.sha1(str(registry_dir().resolve()).encode()).hexdigest()[:8]


def leases_dir() -> Path:
    """Address leases are machine-wide, whatever the registry, so that no two runs
    anywhere on this machine share a subnet."""
    p = Path(f"/tmp/kmschaos-leases-{os.getuid()}")
    p.mkdir(parents=True, exist_ok=True)
    return p


def rule_comment(run_id: str, fault_id: str) -> str:
    return f"{RULE_TAG}{registry_tag()}:{run_id}:{fault_id}"


def new_run_id() -> str:
    return "kc" + secrets.token_hex(4)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    st = process_start_time(pid)
    if st is None:
        return False
    if start_time is not None and st != start_time:
        return False  # the pid was reused
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class RunEntry:
    run_id: str
    subnet: str  # "127.X.Y"
    owner_pid: int
    owner_start: int | None
    detached: bool
    state_dir: str
    backend: str
    created: float

    def owner_alive(self) -> bool:
        return process_alive(self.owner_pid, self.owner_start)


def _entry_path(run_id: str) -> Path:
    return registry_dir() / "runs" / f"{run_id}.json"


def write_entry(entry: RunEntry) -> None:
    path = _entry_path(entry.run_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(entry), indent=2))
    os.replace(tmp, path)


def read_entries() -> list[RunEntry]:
    out = []
    for p in sorted((registry_dir() / "runs").glob("*.json")):
        try:
            out.append(RunEntry(**json.loads(p.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return out


def lease_subnet(run_id: str, rng: random.Random | None = None) -> str:
    """Take an unused 127.X.Y /24 for `run_id` (exclusive-create of a lease file)."""
    rng = rng or random.Random()
    leases = leases_dir()
    for _ in range(500):
        subnet = f"127.{rng.randint(64, 250)}.{rng.randint(0, 255)}"
        try:
            fd = os.open(leases / subnet, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{run_id} {registry_tag()}")
        return subnet
    raise RuntimeError(f"no free loopback subnet left in {leases}; run `kmschaos down --all`")


def _lease_owner(path: Path) -> tuple[str, str]:
    parts = path.read_text().split()
    return (parts[0], parts[1]) if len(parts) >= 2 else (parts[0] if parts else "", "")


def release_subnet(subnet: str, run_id: str) -> None:
    p = leases_dir() / subnet
    with contextlib.suppress(OSError):
        if _lease_owner(p)[0] == run_id:
            p.unlink()


def labelled_env(run_id: str, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[LABEL_ENV] = run_id
    env[REGISTRY_ENV] = registry_tag()
    return env


def labelled_python_env(run_id: str) -> dict[str, str]:
    """`labelled_env` for a Python child that runs a `harness` module."""
    env = labelled_env(run_id)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(repo_root()), env.get("PYTHONPATH", "")) if p
    )
    return env


def labelled_processes(run_id: str | None = None) -> dict[int, str]:
    """pid -> run id for every process labelled by this registry (of `run_id` if given)."""
    found: dict[int, str] = {}
    me = os.getpid()
    needle = f"{LABEL_ENV}=".encode()
    tag = f"{REGISTRY_ENV}={registry_tag()}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        pid = int(d.name)
        if pid == me:
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        items = env.split(b"\0")
        if tag not in items:
            continue
        for item in items:
            if item.startswith(needle):
                rid = item[len(needle) :].decode(errors="replace")
                if run_id is None or rid == run_id:
                    found[pid] = rid
                break
    return found


def kill_pids(pids: list[int], grace_s: float = 0.5) -> None:
    """SIGCONT + SIGTERM each process group, then SIGKILL what is left after `grace_s`
    (grace 0: SIGKILL at once)."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    my_group = os.getpgid(0)
    groups.discard(my_group)
    for sig in (signal.SIGCONT, signal.SIGTERM) if grace_s > 0 else (signal.SIGCONT,):
        for g in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(g, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(process_alive(p, None) for p in pids):
        time.sleep(0.02)  # wait-ok: poll interval; the grace deadline ends in SIGKILL
    for g in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(g, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


# ---- firewall rules -------------------------------------------------------------


def tagged_rules(run_id: str | None = None) -> list[list[str]]:
    """Our rules in the OUTPUT chain, as `iptables -S` argument lists."""
    ipt = iptables_path()
    if ipt is None or os.geteuid() != 0:
        return []
    try:
        out = subprocess.run(
            [ipt, "-w", "5", "-S", "OUTPUT"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rules = []
    tag = f"{RULE_TAG}{registry_tag()}:" + (f"{run_id}:" if run_id else "")
    for line in out.splitlines():
        if line.startswith("-A OUTPUT") and tag in line:
            rules.append(line.split())
    return rules


def delete_rules(run_id: str | None = None) -> int:
    ipt = iptables_path()
    n = 0
    for rule in tagged_rules(run_id):
        args = [a.strip('"') for a in rule]
        args[0] = "-D"
        # `-S` prints a /32 address match bare; deleting by spec needs the mask back
        for i, a in enumerate(args[:-1]):
            if a in ("-d", "--ctorigdst") and "/" not in args[i + 1]:
                args[i + 1] += "/32"
        r = subprocess.run([ipt or "iptables", "-w", "5", *args], capture_output=True, timeout=10)
        n += r.returncode == 0
    return n


# ---- reaping ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reaper:
    """A backend's reaper: `run_ids()` names the runs of this registry that own objects
    of the backend; `reap(run_id)` removes a run's objects and says how many."""

    name: str  # the backend's name, as in `RunEntry.backend`
    run_ids: Callable[[], set[str]]
    reap: Callable[[str], int]


_REAPERS: dict[str, Reaper] = {}


def register_reaper(
    name: str, *, run_ids: Callable[[], set[str]], reap: Callable[[str], int]
) -> None:
    """Let the reaper reap backend `name`'s objects too (called by the backend's module
    when it is imported; registering a name again replaces its reaper)."""
    _REAPERS[name] = Reaper(name, run_ids, reap)


def reapers() -> list[Reaper]:
    """The registered backend reapers, by name."""
    return [_REAPERS[name] for name in sorted(_REAPERS)]


@dataclass
class ReapReport:
    runs: list[str]
    processes: int
    rules: int
    objects: dict[str, int] = field(default_factory=dict)  # backend reaper -> objects

    def __str__(self) -> str:
        counted = {name: n for name, n in self.objects.items() if n}
        if not self.runs and not self.processes and not self.rules and not counted:
            return "nothing to reap"
        backends = "".join(f", {n} {name} object(s)" for name, n in counted.items())
        return (
            f"reaped {len(self.runs)} run(s) {', '.join(self.runs) or '-'}: "
            f"{self.processes} process(es), {self.rules} firewall rule(s){backends}"
        )


def reap_run(run_id: str) -> tuple[int, int, dict[str, int]]:
    """Kill every process labelled `run_id`, let each registered backend reaper remove
    what the run made there (the run's own backend, or all of them for a run nobody
    registered), delete its rules, release its lease."""
    procs = list(labelled_processes(run_id))
    kill_pids(procs)
    path = _entry_path(run_id)
    entry = None
    with contextlib.suppress(OSError, ValueError, TypeError):
        entry = RunEntry(**json.loads(path.read_text()))
    objects = {
        r.name: r.reap(run_id) for r in reapers() if entry is None or entry.backend == r.name
    }
    rules = delete_rules(run_id)
    if entry is not None:
        release_subnet(entry.subnet, run_id)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    for lease in leases_dir().iterdir():
        with contextlib.suppress(OSError):
            if _lease_owner(lease)[0] == run_id:
                lease.unlink()
    return len(procs), rules, objects


def reap(all_runs: bool = False) -> ReapReport:
    """Reap stale runs (or every run with `all_runs`) and unowned leftovers."""
    entries = {e.run_id: e for e in read_entries()}
    victims = [
        rid for rid, e in entries.items() if all_runs or (not e.detached and not e.owner_alive())
    ]
    # labelled processes, backend objects and rules of runs nobody registered (or lost)
    orphans = set(labelled_processes().values())
    for reaper in reapers():
        orphans |= reaper.run_ids()
    prefix = f"{RULE_TAG}{registry_tag()}:"
    orphans |= {
        r.split(prefix, 1)[1].split(":", 1)[0]
        for rule in tagged_rules()
        for r in rule
        if prefix in r
    }
    # a run registers before it starts anything: re-reading the registry after the scan
    # keeps a run that started meanwhile (e.g. another xdist worker's) out of the orphans
    orphans -= set(entries) | {e.run_id for e in read_entries()}
    report = reap_runs(sorted(set(victims) | orphans))
    reaped = report.runs
    # leases whose run has no entry (a run writes its entry right after its lease, so
    # only leases older than a minute can be abandoned ones)
    me = registry_tag()
    for lease in leases_dir().iterdir():
        with contextlib.suppress(OSError):
            rid, tag = _lease_owner(lease)
            old = time.time() - lease.stat().st_mtime > 60
            if tag == me and ((rid not in entries and old) or rid in reaped):
                lease.unlink()
    return report


def reap_runs(run_ids: list[str]) -> ReapReport:
    """`reap_run` each of `run_ids`; what was removed, in all."""
    report = ReapReport(runs=list(run_ids), processes=0, rules=0)
    for rid in run_ids:
        p, r, objects = reap_run(rid)
        report.processes += p
        report.rules += r
        for name, n in objects.items():
            report.objects[name] = report.objects.get(name, 0) + n
    return report


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def reap_owned_by(pid: int) -> ReapReport:
    """Reap every run owned by `pid` or by one of its children (pytest-xdist workers):
    what a forced stop (a second Ctrl-C) leaves no time to stop cleanly."""
    owned = [
        e.run_id for e in read_entries() if e.owner_pid == pid or _parent_pid(e.owner_pid) == pid
    ]
    return reap_runs(owned)


def is_permission_error(e: OSError) -> bool:
    return e.errno in (errno.EPERM, errno.EACCES)
