"""The replica program's live controls, from the harness's side (the program's side is
`harness.replica.control`).

    harness ──tls.json, clock──> <replica data>/config ──> the replica program
            <──applied.json─────

Every replica kmschaos runs (local process or container) reads the same folder: the
local backend passes it as ``--control-dir``, the docker backend mounts it at /config.
Faults that act on TLS or the clock write here and wait for the program to say it
applied them, so a fault's window opens when clients can see it.

Several faults may hold controls of one replica at once (an expired certificate and an
idle reaper): each sets its own fields and its heal removes only those.

The clock: libfaketime is preloaded into every replica when it is installed (Debian
``libfaketime``; in the kms image), reading its offset from ``clock``; the `clock`
capability says whether a backend has it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from harness.cluster.state import ReplicaState
from harness.replica.control import APPLIED, CLOCK_FILE, NO_OFFSET, TLS_CONTROL, seed_control_dir
from harness.store import ReplicaFolder
from harness.wait import wait_until

# where Debian's libfaketime lives, on this host and in the kms image (same Debian)
FAKETIME_SO = f"/usr/lib/{platform.machine()}-linux-gnu/faketime/libfaketime.so.1"
APPLY_WITHIN_S = 5.0  # the program polls every 50 ms; slack for a loaded machine


def faketime_library() -> str | None:
    """This host's libfaketime, or None (``apt-get install libfaketime``)."""
    return FAKETIME_SO if os.path.exists(FAKETIME_SO) else None


def faketime_env(library: str, control_dir: str) -> dict[str, str]:
    """What preloads libfaketime into a replica with its offset read from `control_dir`:
    the wall clock only (monotonic time stays real), the file re-read every second, and
    threads as fast as without it."""
    return {
        "LD_PRELOAD": library,
        "FAKETIME_TIMESTAMP_FILE": f"{control_dir}/{CLOCK_FILE}",
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # on by default in 0.9.10, its pthread_cond_timedwait fix makes every Python
        # thread switch slow: two threads contending for the GIL took 10× as long
        # (0.25 s → 2.5 s, measured); with monotonic time real it is not needed
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
    }


def offset_text(seconds: float) -> str:
    """A clock offset as libfaketime reads it: ``+7200s``, ``-3600s``."""
    if seconds == 0:
        return NO_OFFSET
    return f"{seconds:+.0f}s\n"


class ReplicaControls:
    """One replica's control folder."""

    def __init__(self, replica: ReplicaState) -> None:
        self.replica = replica.name
        self.dir = ReplicaFolder(Path(replica.data_dir)).control

    def seed(self) -> None:
        """Before the program starts: the folder, a clock without offset."""
        seed_control_dir(self.dir)

    # ---- TLS and connection controls ---------------------------------------------

    def current(self) -> dict[str, Any]:
        try:
            raw = json.loads((self.dir / TLS_CONTROL).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return raw if isinstance(raw, dict) else {}

    def install(self, source: str | Path, name: str) -> str:
        """Copy a file (certificate, key, CA) into the folder; its name there."""
        dst = self.dir / name
        shutil.copyfile(source, dst)
        if name.endswith(".key"):
            os.chmod(dst, 0o600)
        self.published(name)
        return name

    def set(self, **fields: Any) -> int:
        """Set `fields` (`harness.replica.control.Controls`), keep the others; wait
        until the program applied them. Returns the generation."""
        doc = self.current()
        doc.update(fields)
        return self._write(doc)

    def clear(self, *names: str) -> int:
        """Remove `names` (back to the program's defaults); wait until applied."""
        doc = self.current()
        for n in names:
            doc.pop(n, None)
        return self._write(doc)

    def _write(self, doc: dict[str, Any]) -> int:
        generation = int(doc.get("generation", 0)) + 1
        doc["generation"] = generation
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (TLS_CONTROL + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.dir / TLS_CONTROL)
        self.published(TLS_CONTROL)
        wait_until(
            lambda: self.applied() >= generation,
            APPLY_WITHIN_S,
            f"{self.replica} applying its TLS controls (generation {generation}, "
            f"{self.dir / APPLIED})",
        )
        return generation

    def published(self, name: str) -> None:
        """File `name` of the folder changed: the program reads this folder itself here;
        a replica on another host gets it copied (`harness.cluster.swarm_controls`)."""

    def applied(self) -> int:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            return int(json.loads(self.applied_text())["generation"])
        return -1

    def applied_text(self) -> str:
        """What the program wrote in applied.json (`FileNotFoundError` before)."""
        return (self.dir / APPLIED).read_text()

    # ---- the clock -------------------------------------------------------------------

    def set_clock(self, offset_s: float) -> None:
        """Move the replica's wall clock by `offset_s` (0: the real time). libfaketime
        reads it within a second; callers that need it in effect wait for it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (CLOCK_FILE + ".tmp")
        tmp.write_text(offset_text(offset_s))
        os.replace(tmp, self.dir / CLOCK_FILE)
        self.published(CLOCK_FILE)

    def clock(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.dir / CLOCK_FILE).read_text().strip()
        return NO_OFFSET.strip()
