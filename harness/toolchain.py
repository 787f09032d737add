"""Finding the Toxiproxy server binary, and the facts about the machine faults need.

Search order: ``$TOXIPROXY_SERVER``, then the project's tool folder
(``$KMSCHAOS_TOOLS`` or ``<repo>/.tools/bin``), then ``PATH`` (``toxiproxy-server``).
The server must report version 2.x, at least `MIN_VERSION`; `make setup` installs the
pinned `PINNED_VERSION`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

PINNED_VERSION = "2.12.0"
MIN_VERSION = (2, 5, 0)
SERVER_NAME = "toxiproxy-server"


class ToolchainError(RuntimeError):
    """A required tool is missing or unusable; the message says what to do."""


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def tools_dir() -> Path:
    return Path(os.environ.get("KMSCHAOS_TOOLS") or repo_root() / ".tools" / "bin")


def find_toxiproxy_server() -> tuple[str, str]:
    """Return (path, version) of a usable Toxiproxy server or raise `ToolchainError`."""
    env = os.environ.get("TOXIPROXY_SERVER")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise ToolchainError(
                f"TOXIPROXY_SERVER={env} is not an executable file; "
                "fix the variable or unset it and run `make setup`"
            )
        candidate = env
        origin = "TOXIPROXY_SERVER"
    else:
        local = tools_dir() / SERVER_NAME
        on_path = shutil.which(SERVER_NAME)
        if local.exists():
            candidate, origin = str(local), "tool folder"
        elif on_path:
            candidate, origin = on_path, "PATH"
        else:
            raise ToolchainError(
                f"Toxiproxy server not found (looked at $TOXIPROXY_SERVER, {local}, PATH); "
                f"run `make setup` to install v{PINNED_VERSION}"
            )
    version = toxiproxy_version(candidate)
    parsed = _parse_version(version)
    if parsed is None or parsed[0] != 2 or parsed < MIN_VERSION:
        raise ToolchainError(
            f"{candidate} (from {origin}) reports Toxiproxy version {version!r}; kmschaos needs "
            f"2.x >= {'.'.join(map(str, MIN_VERSION))}: run `make setup` (installs "
            f"v{PINNED_VERSION} into {tools_dir()}) or point TOXIPROXY_SERVER at one"
        )
    return candidate, version


def toxiproxy_version(path: str) -> str:
    try:
        out = subprocess.run(
            [path, "-version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolchainError(f"cannot run {path} -version: {e}; reinstall with `make setup`") from e
    m = re.search(r"version\s+v?(\S+)", out)
    return m.group(1) if m else out or "unknown"


def _parse_version(v: str) -> tuple[int, int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", v)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def firewall_capability() -> str | None:
    """None if iptables rules can be added here, else the reason why not."""
    from harness.registry import iptables_path

    if os.geteuid() != 0:
        return "needs root (or CAP_NET_ADMIN) to add iptables rules; run as root or skip it"
    ipt = iptables_path()
    if ipt is None:
        return "needs iptables (Debian: apt-get install iptables)"
    try:
        r = subprocess.run([ipt, "-w", "5", "-S", "OUTPUT"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"iptables does not run here: {e}"
    if r.returncode != 0:
        return f"iptables cannot list rules here: {r.stderr.decode(errors='replace').strip()}"
    return None
