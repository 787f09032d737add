"""The Docker images the Docker backend runs, and how they are built.

Three images: the replica image (``kmschaos/kms:<content hash>``: a venv at /opt/kms
with PyKMIP and the replica program), Toxiproxy, and HAProxy for the load balancers
(``kmschaos/haproxy:<hash>``: Debian's package on the same base, its own image so the
replica image's tag does not change with it). Two ways to build them:

- online: the kms image on ``python:3.12-slim`` with pip reaching PyPI inside the
  build, and the official Toxiproxy image pulled from ghcr.io;
- offline, for an engine that reaches no registry and containers that must not reach
  PyPI: a Debian bookworm base made with debootstrap and ``docker import``-ed (its
  tarball is cached, so a new engine re-imports it without debootstrap), the
  requirements downloaded as wheels on the host and installed with ``--no-index`` in a
  build without network, Toxiproxy built with Go into a ``FROM scratch`` image, and
  HAProxy's .deb files (what the base lacks) downloaded on the host by apt and
  installed with dpkg in a build without network.

``auto`` tries the pulls the online path needs and otherwise builds offline, and says
which path it took and why. The kms tag is a hash of everything that goes into the
image (its Dockerfile, its requirements, the replica program's sources), so a changed
replica program gets a new tag and a stale image is never run silently.

One module per job: `names` (names, inputs, tags, what is missing), `progress` (errors,
step timing, running a build), `online` (the pulls), `base`, `wheels`, `toxiproxy` and
`debs` (the offline path's four inputs), `builder` (`build`: the path, then the images) and
`command` (``kmschaos images build [--offline | --online] [--no-cache]`` and
``kmschaos images status``).
"""

from harness.images.base import BASE_TARBALL
from harness.images.builder import build
from harness.images.command import add_images_parser, cmd_images, status
from harness.images.names import (
    BASE_OFFLINE,
    BASE_ONLINE,
    HAPROXY_DOCKERFILE,
    HAPROXY_PACKAGE,
    HAPROXY_REPO,
    HARNESS_INIT,
    IMAGE_LABEL,
    KMS_DOCKERFILE,
    KMS_REPO,
    KMS_REQUIREMENTS,
    REPLICA_PACKAGE,
    TOXIPROXY_DOCKERFILE,
    TOXIPROXY_OFFICIAL,
    TOXIPROXY_OFFLINE,
    TOXIPROXY_VERSION,
    cache_dir,
    content_hash,
    haproxy_image,
    image_present,
    kms_image,
    kms_inputs,
    missing_images,
    replica_sources,
    toxiproxy_image,
)
from harness.images.progress import BuildReport, ImageBuildError
from harness.images.toxiproxy import is_static_elf

__all__ = [
    "BASE_OFFLINE",
    "BASE_ONLINE",
    "BASE_TARBALL",
    "HAPROXY_DOCKERFILE",
    "HAPROXY_PACKAGE",
    "HAPROXY_REPO",
    "HARNESS_INIT",
    "IMAGE_LABEL",
    "KMS_DOCKERFILE",
    "KMS_REPO",
    "KMS_REQUIREMENTS",
    "REPLICA_PACKAGE",
    "TOXIPROXY_DOCKERFILE",
    "TOXIPROXY_OFFICIAL",
    "TOXIPROXY_OFFLINE",
    "TOXIPROXY_VERSION",
    "BuildReport",
    "ImageBuildError",
    "add_images_parser",
    "build",
    "cache_dir",
    "cmd_images",
    "content_hash",
    "haproxy_image",
    "image_present",
    "is_static_elf",
    "kms_image",
    "kms_inputs",
    "missing_images",
    "replica_sources",
    "status",
    "toxiproxy_image",
]
