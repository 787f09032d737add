"""`build`: choose the path (``auto`` tries the online pulls and falls back to offline,
saying why), then build the kms, Toxiproxy and HAProxy images along it, keeping the
images already present under their current tags."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.images.base import ensure_base
from harness.images.debs import ensure_debs
from harness.images.names import (
    BASE_OFFLINE,
    BASE_ONLINE,
    HAPROXY_DOCKERFILE,
    KMS_DOCKERFILE,
    TOXIPROXY_DOCKERFILE,
    TOXIPROXY_OFFICIAL,
    TOXIPROXY_OFFLINE,
    cache_dir,
    engine_client,
    haproxy_image,
    image_present,
    kms_context,
    kms_image,
)
from harness.images.online import pull_online_images
from harness.images.progress import BuildReport, ImageBuildError, Log, docker_build, step
from harness.images.toxiproxy import ensure_toxiproxy_binary
from harness.images.wheels import ensure_wheels
from harness.toolchain import repo_root

if TYPE_CHECKING:
    from docker.client import DockerClient

MODES = ("auto", "online", "offline")


def build(
    mode: str = "auto",
    no_cache: bool = False,
    log: Log = print,
    client: DockerClient | None = None,
) -> BuildReport:
    """Build the kms, Toxiproxy and HAProxy images; `mode` is auto, online or offline.

    Images already present under their current tag are kept unless `no_cache`, which
    also turns off Docker's layer cache. The base tarball, the wheels, the Toxiproxy
    binary and the HAProxy packages stay cached in `cache_dir()` either way (each is
    checked before use).
    Raises `ImageBuildError` naming the failed step."""
    if mode not in MODES:
        raise ValueError(f"mode must be auto, online or offline, not {mode!r}")
    client = client or engine_client()
    report = BuildReport(mode=mode, reason="")
    if mode == "offline":
        report.reason = "asked for offline"
    else:
        with step(report, "pull", log):
            failure = pull_online_images(client, log)
        if failure is None:
            report.mode, report.reason = "online", f"pulled {BASE_ONLINE} and {TOXIPROXY_OFFICIAL}"
        elif mode == "online":
            raise ImageBuildError("pull", failure)
        else:
            report.mode, report.reason = "offline", f"online path unavailable: {failure}"
    log(f"build path: {report.mode} ({report.reason})")
    if report.mode == "online":
        _build_online(client, report, no_cache, log)
    else:
        _build_offline(client, report, no_cache, log)
    log(report.summary())
    return report


def _build_online(client: DockerClient, report: BuildReport, no_cache: bool, log: Log) -> None:
    """The kms image on ``python:3.12-slim`` (pip reaches PyPI inside the build); the
    official Toxiproxy image is the one just pulled; HAProxy from apt on the same base."""
    tag = kms_image()
    with step(report, "kms image", log):
        if not no_cache and image_present(client, tag):
            log(f"  {tag} present")
        else:
            with kms_context(None) as ctx:
                docker_build(client, "kms image", ctx, KMS_DOCKERFILE, tag, {}, no_cache, log)
    _build_haproxy(client, report, no_cache, log, None)
    report.images = {"kms": tag, "toxiproxy": TOXIPROXY_OFFICIAL, "haproxy": haproxy_image()}


def _build_offline(client: DockerClient, report: BuildReport, no_cache: bool, log: Log) -> None:
    """The kms image on the debootstrapped base with the host's wheels, built without
    network; Toxiproxy from the static binary ``FROM scratch``; HAProxy on the base."""
    cache = cache_dir()
    tag = kms_image()
    if not no_cache and image_present(client, tag):
        with step(report, "kms image", log):
            log(f"  {tag} present")
    else:
        with step(report, "base", log):
            ensure_base(client, cache, log)
        with step(report, "wheels", log):
            wheels = ensure_wheels(cache, log)
        with step(report, "kms image", log), kms_context(wheels) as ctx:
            docker_build(
                client,
                "kms image",
                ctx,
                KMS_DOCKERFILE,
                tag,
                {"BASE": BASE_OFFLINE},
                no_cache,
                log,
                network_mode="none",
            )
    with step(report, "toxiproxy image", log):
        if not no_cache and image_present(client, TOXIPROXY_OFFLINE):
            log(f"  {TOXIPROXY_OFFLINE} present")
        else:
            server = ensure_toxiproxy_binary(cache, log)
            with tempfile.TemporaryDirectory(prefix="kmschaos-ctx-") as tmp:
                ctx = Path(tmp)
                shutil.copy2(repo_root() / TOXIPROXY_DOCKERFILE, ctx / "Dockerfile")
                shutil.copy2(server, ctx / "server")
                docker_build(
                    client,
                    "toxiproxy image",
                    ctx,
                    "Dockerfile",
                    TOXIPROXY_OFFLINE,
                    {},
                    no_cache,
                    log,
                )
    _build_haproxy(client, report, no_cache, log, cache)
    report.images = {
        "base": BASE_OFFLINE,
        "kms": tag,
        "toxiproxy": TOXIPROXY_OFFLINE,
        "haproxy": haproxy_image(),
    }


def _build_haproxy(
    client: DockerClient, report: BuildReport, no_cache: bool, log: Log, cache: Path | None
) -> None:
    """The HAProxy image (docker/haproxy/Dockerfile). Offline when `cache` is given: on
    the base, from the packages it lacks downloaded on the host, built without network;
    online: on ``python:3.12-slim`` with apt reaching Debian inside the build."""
    tag = haproxy_image()
    with step(report, "haproxy image", log):
        if not no_cache and image_present(client, tag):
            log(f"  {tag} present")
            return
        buildargs: dict[str, str] = {}
        network_mode = None
        with tempfile.TemporaryDirectory(prefix="kmschaos-ctx-") as tmp:
            ctx = Path(tmp)
            shutil.copy2(repo_root() / HAPROXY_DOCKERFILE, ctx / "Dockerfile")
            if cache is not None:
                ensure_base(client, cache, log)
                (ctx / "debs").mkdir()
                for deb in ensure_debs(client, cache, log).glob("*.deb"):
                    shutil.copy2(deb, ctx / "debs" / deb.name)
                buildargs, network_mode = {"BASE": BASE_OFFLINE}, "none"
            docker_build(
                client,
                "haproxy image",
                ctx,
                "Dockerfile",
                tag,
                buildargs,
                no_cache,
                log,
                network_mode,
            )
