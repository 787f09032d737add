"""The offline path's Debian packages for the HAProxy image: what the offline base
lacks to run `HAPROXY_PACKAGE`, as .deb files downloaded on the host into the cache,
so the image installs them with dpkg in a build without network.

apt on the host decides what to fetch, with a private configuration: the base's suite
and mirror (as debootstrap made it), and the base's own dpkg status read from the image,
so it downloads exactly the missing packages in the versions that fit the base. The
host needs apt and Debian's archive keyring (a debootstrap host has both)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.images.base import BASE_MIRROR, BASE_SUITE
from harness.images.names import BASE_DIGEST, BASE_OFFLINE, HAPROXY_PACKAGE
from harness.images.progress import ImageBuildError, Log, run

if TYPE_CHECKING:
    from docker.client import DockerClient

STEP = "haproxy image"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def ensure_debs(client: DockerClient, cache: Path, log: Log) -> Path:
    """The .deb files `BASE_OFFLINE` lacks for `HAPROXY_PACKAGE`, in
    ``<cache>/debs-<base digest>-<package>`` (a marker says the download finished)."""
    folder = cache / f"debs-{BASE_DIGEST}-{HAPROXY_PACKAGE}"
    if (folder / ".complete").exists() and any(folder.glob(f"{HAPROXY_PACKAGE}_*.deb")):
        log(f"  {len(list(folder.glob('*.deb')))} packages cached in {folder}")
        return folder
    apt = shutil.which("apt-get")
    if apt is None or not KEYRING.exists():
        raise ImageBuildError(
            STEP,
            f"the offline HAProxy image needs apt-get and {KEYRING} on the host to download "
            f"{HAPROXY_PACKAGE} for {BASE_OFFLINE} (Debian/Ubuntu: apt-get install "
            "debian-archive-keyring), or build online",
        )
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="apt-", dir=cache))
    try:
        options = _private_apt(root, _base_status(client))
        mirror = os.environ.get("KMSCHAOS_DEBIAN_MIRROR") or BASE_MIRROR
        log(f"  apt-get download {HAPROXY_PACKAGE} and what {BASE_OFFLINE} lacks ({mirror})")
        run(STEP, [apt, *options, "-q", "update"], timeout_s=600)
        run(
            STEP,
            [apt, *options, "-q", "-y", "install", "--download-only", HAPROXY_PACKAGE],
            timeout_s=600,
        )
        debs = root / "debs"
        if not any(debs.glob(f"{HAPROXY_PACKAGE}_*.deb")):
            raise ImageBuildError(STEP, f"apt downloaded no {HAPROXY_PACKAGE} package into {debs}")
        shutil.rmtree(debs / "partial", ignore_errors=True)
        (debs / ".complete").write_text(
            "\n".join(sorted(p.name for p in debs.glob("*.deb"))) + "\n"
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(debs, folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    log(f"  {len(list(folder.glob('*.deb')))} packages downloaded into {folder}")
    return folder


def _base_status(client: DockerClient) -> bytes:
    """The base image's /var/lib/dpkg/status (what it has installed)."""
    from docker.errors import DockerException

    try:
        out: bytes = client.containers.run(
            BASE_OFFLINE,
            ["cat", "/var/lib/dpkg/status"],
            network_mode="none",
            remove=True,
            stdout=True,
            stderr=False,
        )
    except DockerException as e:
        raise ImageBuildError(STEP, f"cannot read {BASE_OFFLINE}'s dpkg status: {e}") from e
    return out


def _private_apt(root: Path, status: bytes) -> list[str]:
    """apt-get options for an apt of its own under `root`: the base's suite and
    mirror only, the base's dpkg status, downloads into ``root/debs``."""
    for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial", "debs/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "status").write_bytes(status)
    mirror = os.environ.get("KMSCHAOS_DEBIAN_MIRROR") or BASE_MIRROR
    (root / "etc/sources.list").write_text(
        f"deb [signed-by={KEYRING}] {mirror} {BASE_SUITE} main\n"
    )
    settings = {
        "Dir::Etc::SourceList": root / "etc/sources.list",
        "Dir::Etc::SourceParts": root / "etc/sources.list.d",
        "Dir::Etc::Preferences": root / "etc/preferences",
        "Dir::Etc::PreferencesParts": root / "etc/preferences.d",
        "Dir::State": root,
        "Dir::State::Lists": root / "lists",
        "Dir::State::status": root / "status",
        "Dir::Cache": root,
        "Dir::Cache::archives": root / "debs",
        "APT::Install-Recommends": "false",
        "Debug::NoLocking": "1",
        # files in a root-owned temporary folder: apt's _apt user could not write them
        "APT::Sandbox::User": "root",
    }
    return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]
