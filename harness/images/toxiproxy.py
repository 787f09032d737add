"""The offline path's Toxiproxy: the pinned server built with Go (``CGO_ENABLED=0``)
into the cache and checked to be a static binary of that version, for the ``FROM
scratch`` image of docker/toxiproxy/Dockerfile."""

from __future__ import annotations

import os
import platform
import shutil
import struct
import tempfile
from pathlib import Path

from harness.images.names import TOXIPROXY_OFFICIAL, TOXIPROXY_VERSION
from harness.images.progress import ImageBuildError, Log, run


def _find_go() -> str | None:
    return shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.path.exists(p)), None
    )


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (statically linked)."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack("<I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return False
    return True


def ensure_toxiproxy_binary(cache: Path, log: Log) -> Path:
    """A static Toxiproxy server in ``<cache>/toxiproxy-<version>-<arch>/server``."""
    folder = cache / f"toxiproxy-{TOXIPROXY_VERSION}-{platform.machine()}"
    server = folder / "server"
    if server.exists() and is_static_elf(server):
        log(f"  static server cached at {server}")
        return server
    go = _find_go()
    if go is None:
        raise ImageBuildError(
            "toxiproxy image",
            "Go is not installed, so the offline Toxiproxy image cannot be built: install "
            f"Go >= 1.23 (https://go.dev/dl), or build online to pull {TOXIPROXY_OFFICIAL}",
        )
    folder.mkdir(parents=True, exist_ok=True)
    log(f"  go install Toxiproxy v{TOXIPROXY_VERSION} (CGO_ENABLED=0) into {folder}")
    ldflags = f"-s -w -X github.com/Shopify/toxiproxy/v2.Version={TOXIPROXY_VERSION}"
    with tempfile.TemporaryDirectory(prefix="gobin-", dir=folder) as gobin:
        run(
            "toxiproxy image",
            [
                go,
                "install",
                "-trimpath",
                f"-ldflags={ldflags}",
                f"github.com/Shopify/toxiproxy/v2/cmd/server@v{TOXIPROXY_VERSION}",
            ],
            timeout_s=1200,
            env=dict(os.environ, CGO_ENABLED="0", GOBIN=gobin),
        )
        built = Path(gobin) / "server"
        if not is_static_elf(built):
            raise ImageBuildError("toxiproxy image", f"{built} is dynamically linked")
        out = run("toxiproxy image", [str(built), "-version"], timeout_s=30)
        if TOXIPROXY_VERSION not in out:
            raise ImageBuildError(
                "toxiproxy image", f"{built} -version says {out.strip()!r}", out.splitlines()
            )
        os.replace(built, server)
    return server
