"""The offline path's base image, ``kmschaos/base:bookworm``: a minimal Debian made
with debootstrap (root, once), trimmed, tarred into the cache and ``docker import``-ed,
so a new engine re-imports the cached tarball without debootstrap."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.images.names import BASE_DIGEST, BASE_OFFLINE, BASE_PACKAGES, image_present
from harness.images.progress import ImageBuildError, Log, run

if TYPE_CHECKING:
    from docker.client import DockerClient

# What the offline base is: bookworm's python3 and glibc decide which wheels fit it.
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"  # $KMSCHAOS_DEBIAN_MIRROR overrides
BASE_PYTHON = (3, 11)
BASE_GLIBC = (2, 36)
BASE_TARBALL = f"base-bookworm-{BASE_DIGEST}.tar"
BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)


def ensure_base(client: DockerClient, cache: Path, log: Log) -> None:
    """`BASE_OFFLINE` in the engine: present, else imported from the cached tarball,
    else debootstrapped into the cache first."""
    if image_present(client, BASE_OFFLINE):
        log(f"  {BASE_OFFLINE} present")
        return
    tarball = cache / BASE_TARBALL
    if tarball.exists():
        log(f"  importing cached {tarball}")
    else:
        debootstrap_tarball(tarball, log)
    repo, tag = BASE_OFFLINE.rsplit(":", 1)
    from docker.errors import APIError

    try:
        client.api.import_image(
            src=str(tarball), repository=repo, tag=tag, changes=list(BASE_CHANGES)
        )
    except APIError as e:
        raise ImageBuildError(
            "base",
            f"docker import of {tarball} failed: {e}; delete it to debootstrap again",
        ) from e
    log(f"  imported {BASE_OFFLINE} from {tarball}")


def debootstrap_tarball(tarball: Path, log: Log) -> None:
    """Debootstrap a minimal bookworm with `BASE_PACKAGES`, trim what a container
    never reads (apt lists and caches, docs, man pages, locales) and tar it."""
    if os.geteuid() != 0:
        raise ImageBuildError(
            "base",
            f"{BASE_OFFLINE} is missing and debootstrap needs root to make it: run "
            "`sudo .venv/bin/kmschaos images build --offline` once (the result is "
            f"cached in {tarball}), or build online where a registry is reachable",
        )
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.path.exists(p)), None
    )
    if debootstrap is None:
        raise ImageBuildError(
            "base", "debootstrap is not installed (Debian/Ubuntu: apt-get install debootstrap)"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    try:
        log(f"  debootstrap {BASE_SUITE} (minbase + {', '.join(BASE_PACKAGES)}) into {rootfs}")
        run(
            "base",
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                BASE_SUITE,
                str(rootfs),
                os.environ.get("KMSCHAOS_DEBIAN_MIRROR") or BASE_MIRROR,
            ],
            timeout_s=1800,
        )
        _unmount_under(rootfs)
        _trim_rootfs(rootfs)
        tmp = tarball.with_name(tarball.name + ".tmp")
        run(
            "base",
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "-C",
                str(rootfs),
                "-cf",
                str(tmp),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                ".",
            ],
            timeout_s=600,
        )
        os.replace(tmp, tarball)
        log(f"  cached {tarball} ({tarball.stat().st_size / 2**20:.0f} MiB)")
    finally:
        _unmount_under(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)


def _unmount_under(rootfs: Path) -> None:
    """Unmount whatever debootstrap left mounted in `rootfs` (proc, sys, a bind of
    /dev), deepest first, so removing the folder cannot reach the host's files."""
    prefix = str(rootfs.resolve()) + "/"
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    for mnt in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    still = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    if still:
        raise ImageBuildError("base", f"cannot unmount {', '.join(still)}; remove {rootfs} by hand")


def _trim_rootfs(rootfs: Path) -> None:
    for rel in ("var/cache/apt", "var/lib/apt/lists", "usr/share/man", "usr/share/info"):
        d = rootfs / rel
        for child in d.glob("*") if d.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    for child in (rootfs / "usr/share/locale").glob("*"):
        if child.is_dir() and child.name not in ("C.UTF-8", "locale.alias"):
            shutil.rmtree(child)
    for doc in (rootfs / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for f in doc.iterdir():
                if f.name != "copyright":
                    shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
