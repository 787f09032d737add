"""Finding the Toxiproxy server binary, and the facts about the machine faults need
(`iptables_path`, `firewall_capability`); it imports no harness module, so any
module may use it.

The server's search order: ``$TOXIPROXY_SERVER``, then the project's tool folder
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


def source_commit() -> str | None:
    """The commit the harness runs from (``git describe --always --dirty``: a short hash,
    ``-dirty`` when the work tree has changes); None outside a git checkout."""
    try:
        r = subprocess.run(
            ["git", "-C", str(repo_root()), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


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


def iptables_path() -> str | None:
    """The iptables binary (PATH, then the sbin folders PATH may lack), or None."""
    return shutil.which("iptables") or next(
        (p for p in ("/usr/sbin/iptables", "/sbin/iptables") if os.path.exists(p)), None
    )


def firewall_capability() -> str | None:
    """None if iptables rules can be added here, else the reason why not."""
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


def install_toxiproxy() -> int:
    """`make setup`'s Toxiproxy step: keep a usable server, else build the pinned one
    with `go install` into the tool folder, else say exactly what the alternatives are."""
    import sys

    try:
        path, version = find_toxiproxy_server()
        print(f"toxiproxy-server {version} found at {path}")
        return 0
    except ToolchainError as e:
        reason = str(e)
    go = shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.path.exists(p)), None
    )
    dest = tools_dir()
    if go is None:
        print(
            f"kmschaos: {reason}\n"
            "Go is not installed, so `make setup` cannot build Toxiproxy. Choose one:\n"
            "  1. the official release binary: download toxiproxy-server-linux-amd64 "
            f"v{PINNED_VERSION} from the Shopify/toxiproxy GitHub releases page,\n"
            f"     then: install -m 0755 toxiproxy-server-linux-amd64 {dest}/{SERVER_NAME}\n"
            "  2. a package manager: `brew install toxiproxy` (macOS/Linuxbrew), or your distro's\n"
            "     package, then make sure `toxiproxy-server` is on PATH\n"
            "  3. install Go >= 1.23 and run `make setup` again\n"
            "  (the docker backend runs Toxiproxy in a container: the official image\n"
            f"   ghcr.io/shopify/toxiproxy:{PINNED_VERSION} where a registry answers; the local\n"
            "   backend and the tests still need a server here)\n"
            "Or point TOXIPROXY_SERVER at an existing binary.",
            file=sys.stderr,
        )
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    print(f"building Toxiproxy v{PINNED_VERSION} with {go} into {dest}/ ...", flush=True)
    env = dict(os.environ, GOBIN=str(dest), CGO_ENABLED="0")
    ldflags = f"-s -w -X github.com/Shopify/toxiproxy/v2.Version={PINNED_VERSION}"
    r = subprocess.run(
        [
            go,
            "install",
            "-trimpath",
            f"-ldflags={ldflags}",
            f"github.com/Shopify/toxiproxy/v2/cmd/server@v{PINNED_VERSION}",
        ],
        env=env,
    )
    if r.returncode != 0:
        print(f"kmschaos: `go install` of Toxiproxy failed (exit {r.returncode})", file=sys.stderr)
        return 1
    os.replace(dest / "server", dest / SERVER_NAME)
    path, version = find_toxiproxy_server()
    print(f"toxiproxy-server {version} installed at {path}")
    return 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["install-toxiproxy"]:
        print("usage: python -m harness.toolchain install-toxiproxy", file=sys.stderr)
        sys.exit(2)
    sys.exit(install_toxiproxy())
