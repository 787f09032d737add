"""What the Docker backend's images are: their names, the kms image's inputs and its
content-hash tag, the build context made of those inputs, and which images the engine
lacks. Reads the engine; builds nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from harness.images.progress import ImageBuildError
from harness.toolchain import PINNED_VERSION, repo_root

if TYPE_CHECKING:
    from docker.client import DockerClient

KMS_REPO = "kmschaos/kms"
TOXIPROXY_VERSION = PINNED_VERSION
TOXIPROXY_OFFLINE = f"kmschaos/toxiproxy:{TOXIPROXY_VERSION}"
TOXIPROXY_OFFICIAL = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
HAPROXY_REPO = "kmschaos/haproxy"
HAPROXY_PACKAGE = "haproxy"  # Debian's (bookworm: 2.6), for the load balancers
# The offline base's Debian packages (libfaketime: the `clock-skew` fault). Its tag and
# cached tarball carry a digest of them, so a new package list makes a new base.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libfaketime")
BASE_DIGEST = hashlib.sha256(" ".join(BASE_PACKAGES).encode()).hexdigest()[:8]
BASE_OFFLINE = f"kmschaos/base:bookworm-{BASE_DIGEST}"
BASE_ONLINE = "python:3.12-slim"
IMAGE_LABEL = "org.kmschaos.image"

KMS_DOCKERFILE = "docker/kms/Dockerfile"
KMS_REQUIREMENTS = "docker/kms/requirements.txt"
TOXIPROXY_DOCKERFILE = "docker/toxiproxy/Dockerfile"
HAPROXY_DOCKERFILE = "docker/haproxy/Dockerfile"

# The replica program is a subpackage that imports nothing else of the harness
# (tests/test_imports.py checks it): only its files and the harness package's __init__
# (which Python runs first) go into the image, so an edit elsewhere in the harness (CLI,
# checkers...) needs no new image.
HARNESS_INIT = "harness/__init__.py"
REPLICA_PACKAGE = "harness/replica"


def cache_dir() -> Path:
    """Where the base tarball, the wheels and the Toxiproxy binary are kept."""
    env = os.environ.get("KMSCHAOS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kmschaos"


def replica_sources(root: Path | None = None) -> list[Path]:
    """The replica program's sources relative to `root`: `HARNESS_INIT`, then every .py
    file of `REPLICA_PACKAGE` (bytecode caches left out), in path order."""
    root = root or repo_root()
    package = sorted(
        p.relative_to(root)
        for p in (root / REPLICA_PACKAGE).rglob("*.py")
        if "__pycache__" not in p.relative_to(root).parts
    )
    return [Path(HARNESS_INIT), *package]


def kms_inputs(root: Path | None = None) -> list[Path]:
    """The files the kms image is made of, relative to `root`: its Dockerfile, its
    requirements, then the replica program's sources (`replica_sources`)."""
    return [Path(KMS_DOCKERFILE), Path(KMS_REQUIREMENTS), *replica_sources(root)]


def content_hash(root: Path | None = None) -> str:
    """12 hex digits over the kms image's inputs (their relative paths and bytes) and
    the offline base it is built on."""
    root = root or repo_root()
    h = hashlib.sha256(BASE_OFFLINE.encode())
    for rel in kms_inputs(root):
        data = (root / rel).read_bytes()
        h.update(rel.as_posix().encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()[:12]


def kms_image(root: Path | None = None) -> str:
    """`$KMSCHAOS_KMS_IMAGE`, else ``kmschaos/kms:<content hash>``."""
    return os.environ.get("KMSCHAOS_KMS_IMAGE") or f"{KMS_REPO}:{content_hash(root)}"


def toxiproxy_image(client: DockerClient | None = None) -> str:
    """`$KMSCHAOS_TOXIPROXY_IMAGE`, else the official image when the engine has it,
    else the offline one."""
    env = os.environ.get("KMSCHAOS_TOXIPROXY_IMAGE")
    if env:
        return env
    own = client is None
    engine = engine_client() if client is None else client
    try:
        official = image_present(engine, TOXIPROXY_OFFICIAL)
    finally:
        if own:
            engine.close()
    return TOXIPROXY_OFFICIAL if official else TOXIPROXY_OFFLINE


def haproxy_image(root: Path | None = None) -> str:
    """`$KMSCHAOS_HAPROXY_IMAGE`, else ``kmschaos/haproxy:<hash>``: a hash of its
    Dockerfile, the package and the offline base it is built on."""
    env = os.environ.get("KMSCHAOS_HAPROXY_IMAGE")
    if env:
        return env
    root = root or repo_root()
    h = hashlib.sha256(f"{BASE_OFFLINE}\0{HAPROXY_PACKAGE}\0".encode())
    h.update((root / HAPROXY_DOCKERFILE).read_bytes())
    return f"{HAPROXY_REPO}:{h.hexdigest()[:12]}"


def missing_images(client: DockerClient, *, balancers: bool = False) -> list[str]:
    """The images the Docker backend needs that the engine does not have; with
    `balancers`, the HAProxy image too (only a topology with load balancers runs it)."""
    wanted = [kms_image(), toxiproxy_image(client)]
    if balancers:
        wanted.append(haproxy_image())
    return [ref for ref in wanted if not image_present(client, ref)]


def image_present(client: DockerClient, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def engine_client() -> DockerClient:
    """A docker-py client that answered a ping, or `ImageBuildError` saying what to do."""
    from docker.client import DockerClient
    from docker.errors import DockerException

    try:
        client = DockerClient.from_env()
        client.ping()
    except DockerException as e:
        raise ImageBuildError(
            "docker engine",
            f"no Docker engine answers ({e}); start dockerd or set DOCKER_HOST",
        ) from e
    return client


@contextmanager
def kms_context(wheels: Path | None) -> Iterator[Path]:
    """A build context laid out like the repository: the kms Dockerfile and
    requirements, the replica program's sources and, offline, the wheels."""
    root = repo_root()
    with tempfile.TemporaryDirectory(prefix="kmschaos-ctx-") as tmp:
        ctx = Path(tmp)
        for rel in kms_inputs(root):
            (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, ctx / rel)
        if wheels is not None:
            dest = ctx / "docker" / "kms" / "wheels"
            dest.mkdir()
            for whl in wheels.glob("*.whl"):
                shutil.copy2(whl, dest / whl.name)
        yield ctx
