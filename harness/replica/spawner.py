"""One pre-imported parent per local cluster that forks its replicas.

A replica's Python heap is mostly what importing PyKMIP costs (about 40 MiB: its KMIP
types, SQLAlchemy, cryptography), the same in every replica. Started as programs, every
replica holds its own copy and pays the import in CPU (about half a second each, which
40 replicas on 2 cores feel). Here one process per cluster, the spawner, imports it all
once, freezes its objects out of the garbage collector's reach, and forks a replica on
request: the children share those pages copy-on-write, so each replica's proportional
set size counts its own pages and a share of the common ones.

A child is what ``python -m harness.replica ARGS`` would be: its own session and process
group (so the harness's SIGKILL, SIGSTOP and SIGCONT of the group reach it and nothing
else), its output in its log, its working folder its control folder, the run's label in
its environment (inherited from the spawner, which carries it), and then the replica
program's `main`. Its command line stays the spawner's; the harness finds a replica's
processes by the working folder (`is_replica_process`).

libfaketime, when present, is preloaded into the spawner with a relative timestamp file
(``clock``), so each child reads its own control folder's clock. A child inherits the
spawner's cached offset for up to a second, so `LocalCluster` forks only replicas whose
clock has no offset (the cache holds none) and starts the others as programs.

The harness talks to the spawner over a Unix socket in the abstract namespace (no path
to outgrow, nothing to clean up): one JSON line asks, one answers with the pid once the
child runs in its own session. The spawner reaps its children at once (SIGCHLD
ignored), so a dead replica leaves no zombie behind that would look alive.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the command-line marks of a replica program and of the spawner (and its children)
REPLICA_MODULE = "harness.replica"
SPAWNER_MODULE = "harness.replica.spawner"
CHILD_READY_S = 30.0  # fork + setsid + redirections: milliseconds (a deadline, under load)


class SpawnError(Exception):
    """The spawner did not answer or could not fork."""


def address(tag: str, run_id: str) -> str:
    """The spawner's abstract socket name for a run (unique per registry and run)."""
    return f"\0kmschaos-spawner-{tag}-{run_id}"


def is_replica_process(args: list[bytes], cwd: Callable[[], str], data_dir: str) -> bool:
    """Whether a process (its command line split at NULs; `cwd` reads its working
    folder) runs the replica of `data_dir` (a real path): a program started with
    ``-m harness.replica`` on it, or a child of the spawner working in its folder."""
    if REPLICA_MODULE.encode() in args and data_dir.encode() in args:
        return True
    if SPAWNER_MODULE.encode() not in args:
        return False
    try:
        where = cwd()
    except OSError:  # gone, or not ours to read
        return False
    return where == data_dir or where.startswith(data_dir + "/")


# ---- the spawner process ---------------------------------------------------------------


def _preload() -> Any:
    """Import what every replica runs, then keep the collector off those objects."""
    import kmip.services.server  # noqa: F401  (the bulk: KMIP types, SQLAlchemy, crypto)

    import harness.replica.__main__ as replica_main
    import harness.replica.control  # noqa: F401
    import harness.replica.inprocess  # noqa: F401
    import harness.replica.replication  # noqa: F401
    import harness.replica.store  # noqa: F401

    gc.collect()
    gc.freeze()
    return replica_main


def _child(req: dict[str, Any], ready_w: int, replica_main: Any) -> None:
    """In the forked child: become the replica; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        log = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(req["cwd"])
        os.environ.update(req.get("env", {}))
        with contextlib.suppress(OSError):
            Path("/proc/self/comm").write_text(str(req.get("comm", "kms-replica"))[:15])
        os.write(ready_w, b"1")
        os.close(ready_w)
        code = replica_main.main(req["argv"]) or 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _fork(req: dict[str, Any], listener: socket.socket, replica_main: Any) -> int:
    """Fork a replica; its pid once it runs in its own session."""
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        listener.close()
        _child(req, ready_w, replica_main)
    os.close(ready_w)
    try:
        with os.fdopen(ready_r, "rb") as r:
            if r.read(1) != b"1":
                raise SpawnError(f"the child (pid {pid}) exited before its session began")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise
    return pid


def serve(name: str) -> None:
    replica_main = _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps children: no zombies
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(64)
    print(f"spawner ready (pid {os.getpid()})", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                line = conn.makefile("rb").readline()
                if not line.strip():
                    continue  # a probe (`answers`)
                req = json.loads(line)
                answer: dict[str, Any] = {"pid": _fork(req, listener, replica_main)}
            except Exception as e:  # one bad request never ends the spawner
                answer = {"error": f"{type(e).__name__}: {e}"}
                print(f"spawn failed: {answer['error']}", flush=True)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")


# ---- the harness's side -----------------------------------------------------------------


def spawn(
    name: str,
    argv: list[str],
    log: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    comm: str = "",
    timeout_s: float = CHILD_READY_S,
) -> int:
    """Ask the spawner at `name` to fork a replica running ``main(argv)``; its pid."""
    req = {
        "argv": argv,
        "log": str(log),
        "cwd": str(cwd),
        "env": env or {},
        "comm": comm,
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(name)
            s.sendall(json.dumps(req).encode() + b"\n")
            line = s.makefile("rb").readline()
    except OSError as e:
        raise SpawnError(f"the replica spawner did not answer: {e}") from None
    try:
        answer = json.loads(line)
    except ValueError:
        raise SpawnError(f"the replica spawner answered {line[:200]!r}") from None
    if "pid" not in answer:
        raise SpawnError(f"the replica spawner could not fork: {answer.get('error')}")
    return int(answer["pid"])


def answers(name: str) -> bool:
    """Whether a spawner listens at `name`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(name)
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {SPAWNER_MODULE}")
    ap.add_argument("--address", required=True, help="abstract socket name (without NUL)")
    args = ap.parse_args(argv)
    serve("\0" + args.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
