"""The Docker images the Docker backend runs, and how they are built.

Two images: the replica image (``kmschaos/kms:<content hash>``: a venv at /opt/kms with
PyKMIP and the harness package) and Toxiproxy. Two ways to build them:

- online: the kms image on ``python:3.12-slim`` with pip reaching PyPI inside the
  build, and the official Toxiproxy image pulled from ghcr.io;
- offline, for an engine that reaches no registry and containers that must not reach
  PyPI: a Debian bookworm base made with debootstrap and ``docker import``-ed (its
  tarball is cached, so a new engine re-imports it without debootstrap), the
  requirements downloaded as wheels on the host and installed with ``--no-index`` in a
  build without network, and Toxiproxy built with Go into a ``FROM scratch`` image.

``auto`` tries the pulls the online path needs and otherwise builds offline, and says
which path it took and why. The kms tag is a hash of everything that goes into the
image (its Dockerfile, its requirements, the replica program's sources), so a changed
replica program gets a new tag and a stale image is never run silently.

Run ``python -m harness.images build [--offline | --online] [--no-cache]`` or
``python -m harness.images status``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import queue
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.toolchain import PINNED_VERSION, repo_root

if TYPE_CHECKING:
    from docker.client import DockerClient

KMS_REPO = "kmschaos/kms"
TOXIPROXY_VERSION = PINNED_VERSION
TOXIPROXY_OFFLINE = f"kmschaos/toxiproxy:{TOXIPROXY_VERSION}"
TOXIPROXY_OFFICIAL = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
BASE_OFFLINE = "kmschaos/base:bookworm"
BASE_ONLINE = "python:3.12-slim"
IMAGE_LABEL = "org.kmschaos.image"

KMS_DOCKERFILE = "docker/kms/Dockerfile"
KMS_REQUIREMENTS = "docker/kms/requirements.txt"
TOXIPROXY_DOCKERFILE = "docker/toxiproxy/Dockerfile"

# What the offline base is: bookworm's python3 and glibc decide which wheels fit it.
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"  # $KMSCHAOS_DEBIAN_MIRROR overrides
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_PYTHON = (3, 11)
BASE_GLIBC = (2, 36)
BASE_TARBALL = "base-bookworm.tar"
BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)

PULL_TIMEOUT_S = 30
TAIL_LINES = 30
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and ends with its last output."""

    def __init__(self, step: str, what: str, tail: Iterable[str] = ()) -> None:
        lines = [line for line in tail if line.strip()]
        msg = f"step {step!r} failed: {what}"
        if lines:
            msg += "\nlast lines of its output:\n" + "\n".join(
                "  " + line for line in lines[-TAIL_LINES:]
            )
        super().__init__(msg)
        self.step = step


@dataclass
class BuildReport:
    """What `build` did: the path taken and why, seconds per step, the image tags."""

    mode: str
    reason: str
    steps: dict[str, float] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        took = ", ".join(f"{name} {s:.1f} s" for name, s in self.steps.items())
        total = sum(self.steps.values())
        tags = ", ".join(f"{role}={tag}" for role, tag in self.images.items())
        return f"{self.mode} build in {total:.1f} s ({took}); images: {tags}"


# --- names -------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where the base tarball, the wheels and the Toxiproxy binary are kept."""
    env = os.environ.get("KMSCHAOS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kmschaos"


# The replica program is a subpackage that imports nothing else of the harness
# (tests/test_imports.py checks it): only its files and the harness package's __init__
# (which Python runs first) go into the image, so an edit elsewhere in the harness (CLI,
# checkers...) needs no new image.
HARNESS_INIT = "harness/__init__.py"
REPLICA_PACKAGE = "harness/replica"


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
    """12 hex digits over the kms image's inputs: their relative paths and bytes."""
    root = root or repo_root()
    h = hashlib.sha256()
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
    engine = _client() if client is None else client
    try:
        official = image_present(engine, TOXIPROXY_OFFICIAL)
    finally:
        if own:
            engine.close()
    return TOXIPROXY_OFFICIAL if official else TOXIPROXY_OFFLINE


def missing_images(client: DockerClient) -> list[str]:
    """The images the Docker backend needs that the engine does not have."""
    wanted = [kms_image(), toxiproxy_image(client)]
    return [ref for ref in wanted if not image_present(client, ref)]


def image_present(client: DockerClient, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def _client() -> DockerClient:
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


# --- build -------------------------------------------------------------------------


def build(
    mode: str = "auto",
    no_cache: bool = False,
    log: Callable[[str], None] = print,
    client: DockerClient | None = None,
) -> BuildReport:
    """Build the kms and Toxiproxy images; `mode` is auto, online or offline.

    Images already present under their current tag are kept unless `no_cache`, which
    also turns off Docker's layer cache. The base tarball, the wheels and the Toxiproxy
    binary stay cached in `cache_dir()` either way (each is checked before use).
    Raises `ImageBuildError` naming the failed step."""
    if mode not in ("auto", "online", "offline"):
        raise ValueError(f"mode must be auto, online or offline, not {mode!r}")
    client = client or _client()
    report = BuildReport(mode=mode, reason="")
    if mode == "offline":
        report.reason = "asked for offline"
    else:
        with _step(report, "pull", log):
            failure = _pull_online_images(client, log)
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


def _build_online(
    client: DockerClient, report: BuildReport, no_cache: bool, log: Callable[[str], None]
) -> None:
    tag = kms_image()
    with _step(report, "kms image", log):
        if not no_cache and image_present(client, tag):
            log(f"  {tag} present")
        else:
            with _kms_context(None) as ctx:
                _docker_build(client, "kms image", ctx, KMS_DOCKERFILE, tag, {}, no_cache, log)
    report.images = {"kms": tag, "toxiproxy": TOXIPROXY_OFFICIAL}


def _build_offline(
    client: DockerClient, report: BuildReport, no_cache: bool, log: Callable[[str], None]
) -> None:
    cache = cache_dir()
    tag = kms_image()
    if not no_cache and image_present(client, tag):
        with _step(report, "kms image", log):
            log(f"  {tag} present")
    else:
        with _step(report, "base", log):
            _ensure_base(client, cache, log)
        with _step(report, "wheels", log):
            wheels = _ensure_wheels(cache, log)
        with _step(report, "kms image", log), _kms_context(wheels) as ctx:
            _docker_build(
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
    with _step(report, "toxiproxy image", log):
        if not no_cache and image_present(client, TOXIPROXY_OFFLINE):
            log(f"  {TOXIPROXY_OFFLINE} present")
        else:
            server = _ensure_toxiproxy_binary(cache, log)
            with tempfile.TemporaryDirectory(prefix="kmschaos-ctx-") as tmp:
                ctx = Path(tmp)
                shutil.copy2(repo_root() / TOXIPROXY_DOCKERFILE, ctx / "Dockerfile")
                shutil.copy2(server, ctx / "server")
                _docker_build(
                    client,
                    "toxiproxy image",
                    ctx,
                    "Dockerfile",
                    TOXIPROXY_OFFLINE,
                    {},
                    no_cache,
                    log,
                )
    report.images = {"base": BASE_OFFLINE, "kms": tag, "toxiproxy": TOXIPROXY_OFFLINE}


@contextmanager
def _step(report: BuildReport, name: str, log: Callable[[str], None]) -> Iterator[None]:
    log(f"[{name}] ...")
    start = time.monotonic()
    try:
        yield
    finally:
        report.steps[name] = time.monotonic() - start
    log(f"[{name}] done in {report.steps[name]:.1f} s")


def _pull_online_images(client: DockerClient, log: Callable[[str], None]) -> str | None:
    """Pull what the online path needs; None on success, else why it failed."""
    for ref in (BASE_ONLINE, TOXIPROXY_OFFICIAL):
        log(f"  pull {ref} (gives up after {PULL_TIMEOUT_S} s without progress)")
        failure = _pull(client, ref)
        if failure is not None:
            return f"pull {ref} failed: {failure}"
    return None


def _pull(client: DockerClient, ref: str) -> str | None:
    """Pull `ref`; None on success, else why not. docker-py pulls without a timeout,
    so the pull streams its progress from a thread and a silence of `PULL_TIMEOUT_S`
    ends the wait (the thread is a daemon and dies with the process)."""
    from docker.errors import APIError

    repo, tag = ref.rsplit(":", 1)
    events: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for event in client.api.pull(repo, tag=tag, stream=True, decode=True):
                events.put(event)
            events.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
            events.put(e)

    threading.Thread(target=pump, name=f"pull {ref}", daemon=True).start()
    while True:
        try:
            event = events.get(timeout=PULL_TIMEOUT_S)
        except queue.Empty:
            return f"no progress for {PULL_TIMEOUT_S} s"
        if event is None:
            return None
        if isinstance(event, APIError):
            return _one_line(str(event.explanation or event))
        if isinstance(event, BaseException):
            return _one_line(f"{type(event).__name__}: {event}")
        if "error" in event:
            return _one_line(str(event["error"]))


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def _kms_context(wheels: Path | None) -> Iterator[Path]:
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


def _docker_build(
    client: DockerClient,
    step: str,
    ctx: Path,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    no_cache: bool,
    log: Callable[[str], None],
    network_mode: str | None = None,
) -> None:
    from docker.errors import APIError, DockerException

    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        events = client.api.build(
            path=str(ctx),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            nocache=no_cache,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode=network_mode,
            labels={"org.kmschaos.base": buildargs["BASE"]} if "BASE" in buildargs else None,
        )
        for event in events:
            for line in _ANSI.sub("", str(event.get("stream", ""))).splitlines():
                tail.append(line)
                if line.startswith("Step "):
                    log("  " + _one_line(line, 110))
            if "error" in event:
                raise ImageBuildError(step, f"docker build of {tag}: {event['error']}", tail)
    except (APIError, DockerException) as e:
        raise ImageBuildError(step, f"docker build of {tag}: {e}", tail) from e
    log(f"  built {tag}")


def _run(step: str, argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> str:
    try:
        r = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else e.output or ""
        raise ImageBuildError(
            step, f"{argv[0]} did not finish in {timeout_s:g} s", out.splitlines()
        ) from e
    except OSError as e:
        raise ImageBuildError(step, f"cannot run {argv[0]}: {e}") from e
    if r.returncode != 0:
        raise ImageBuildError(
            step, f"{' '.join(argv[:3])} ... exited {r.returncode}", r.stdout.splitlines()
        )
    return r.stdout


# --- offline: base image -----------------------------------------------------------


def _ensure_base(client: DockerClient, cache: Path, log: Callable[[str], None]) -> None:
    if image_present(client, BASE_OFFLINE):
        log(f"  {BASE_OFFLINE} present")
        return
    tarball = cache / BASE_TARBALL
    if tarball.exists():
        log(f"  importing cached {tarball}")
    else:
        _debootstrap_tarball(tarball, log)
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


def _debootstrap_tarball(tarball: Path, log: Callable[[str], None]) -> None:
    """Debootstrap a minimal bookworm with `BASE_PACKAGES`, trim what a container
    never reads (apt lists and caches, docs, man pages, locales) and tar it."""
    if os.geteuid() != 0:
        raise ImageBuildError(
            "base",
            f"{BASE_OFFLINE} is missing and debootstrap needs root to make it: run "
            "`sudo .venv/bin/python -m harness.images build --offline` once (the result is "
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
        _run(
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
        _run(
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


# --- offline: wheels ---------------------------------------------------------------


def _pins(requirements: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by normalised name."""
    pins: dict[str, str] = {}
    for n, raw in enumerate(requirements.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if m is None:
            raise ImageBuildError(
                "wheels",
                f"{requirements}: line {n}: {line!r} is not `name==version` "
                "(the offline build installs exact pins only)",
            )
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_folder_complete(folder: Path, pins: dict[str, str]) -> bool:
    if not (folder / ".complete").exists():
        return False
    have = set()
    for whl in folder.glob("*.whl"):
        name, version = whl.name.split("-")[:2]
        have.add((_norm(name), version))
    return all((name, version) in have for name, version in pins.items())


def _target_platforms() -> list[str]:
    arch = platform.machine()
    if arch not in ("x86_64", "aarch64"):
        raise ImageBuildError(
            "wheels", f"no offline wheel set for {arch} (x86_64 and aarch64 only); build online"
        )
    major, minor = BASE_GLIBC
    return [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)] + [
        f"manylinux2014_{arch}"
    ]


def _ensure_wheels(cache: Path, log: Callable[[str], None]) -> Path:
    """Wheels for every pin in the kms requirements, for the base's python and glibc,
    in ``<cache>/wheels-<hash of the requirements and the target>``."""
    requirements = repo_root() / KMS_REQUIREMENTS
    pins = _pins(requirements)
    platforms = _target_platforms()
    key = hashlib.sha256(
        requirements.read_bytes() + repr((BASE_PYTHON, platforms)).encode()
    ).hexdigest()[:12]
    folder = cache / f"wheels-{key}"
    if _wheel_folder_complete(folder, pins):
        log(f"  {len(pins)} wheels cached in {folder}")
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"wheels-{key}-", dir=cache))
    try:
        py = f"{BASE_PYTHON[0]}{BASE_PYTHON[1]}"
        # --no-deps lets pip take an sdist where a pin has no wheel for the target.
        argv = [sys.executable, "-m", "pip", "download", "--no-deps"]
        for plat in platforms:
            argv += ["--platform", plat]
        argv += ["--python-version", ".".join(map(str, BASE_PYTHON)), "--implementation", "cp"]
        argv += ["--abi", f"cp{py}", "--abi", "abi3", "--abi", "none"]
        argv += ["-r", str(requirements), "-d", str(tmp)]
        glibc = ".".join(map(str, BASE_GLIBC))
        log(f"  pip download {len(pins)} pins for cp{py}, glibc <= {glibc} into {folder}")
        _run("wheels", argv, timeout_s=900)
        _wheels_from_sdists(tmp, log)
        (tmp / ".complete").write_text(requirements.read_text())
        if not _wheel_folder_complete(tmp, pins):
            got = sorted(p.name for p in tmp.glob("*.whl"))
            raise ImageBuildError("wheels", f"pip left an incomplete wheel set: {got}")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _wheels_from_sdists(folder: Path, log: Callable[[str], None]) -> None:
    """Replace each sdist in `folder` by a wheel built on the host; only a pure-Python
    wheel fits the base whatever the host runs, so any other is refused."""
    sdists = [p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".zip"))]
    for sdist in sdists:
        log(f"  {sdist.name} has no wheel on the index; building one on the host")
        before = set(folder.glob("*.whl"))
        _run(
            "wheels",
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(folder), str(sdist)],
            timeout_s=900,
        )
        for whl in set(folder.glob("*.whl")) - before:
            if not whl.name.endswith("-none-any.whl"):
                raise ImageBuildError(
                    "wheels",
                    f"{sdist.name} builds {whl.name}, a wheel for the host's platform, not "
                    "the base's; pin a version with a manylinux wheel or build online",
                )
        sdist.unlink()


# --- offline: Toxiproxy ------------------------------------------------------------


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


def _ensure_toxiproxy_binary(cache: Path, log: Callable[[str], None]) -> Path:
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
        _run(
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
        out = _run("toxiproxy image", [str(built), "-version"], timeout_s=30)
        if TOXIPROXY_VERSION not in out:
            raise ImageBuildError(
                "toxiproxy image", f"{built} -version says {out.strip()!r}", out.splitlines()
            )
        os.replace(built, server)
    return server


# --- command line ------------------------------------------------------------------


def status(client: DockerClient, out: Callable[[str], None] = print) -> int:
    """Print which images exist; 0 when the Docker backend has all it needs."""
    kms, toxiproxy = kms_image(), toxiproxy_image(client)
    for role, ref in (("kms", kms), ("toxiproxy", toxiproxy), ("base", BASE_OFFLINE)):
        mark = "present" if image_present(client, ref) else "missing"
        out(f"{role:10} {ref:40} {mark}")
    stale = [
        t
        for img in client.images.list(name=KMS_REPO)
        for t in img.tags
        if t.startswith(KMS_REPO + ":") and t != kms
    ]
    if stale:
        out(f"{len(stale)} older kms image(s) (remove: docker rmi {' '.join(sorted(stale))})")
    tarball = cache_dir() / BASE_TARBALL
    out(f"cache      {cache_dir()} (base tarball {'present' if tarball.exists() else 'absent'})")
    missing = missing_images(client)
    if missing:
        out(f"missing: {', '.join(missing)}; run `make images` (or `make images-offline`)")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m harness.images", description="Build the Docker backend's images."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build", help="build the kms and Toxiproxy images")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--offline", dest="mode", action="store_const", const="offline", help="no registry"
    )
    how.add_argument(
        "--online", dest="mode", action="store_const", const="online", help="pull and use PyPI"
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="rebuild present images without Docker's layer cache (the cached base "
        "tarball, wheels and Toxiproxy binary are still used)",
    )
    sub.add_parser("status", help="show which images exist")
    args = ap.parse_args(argv)
    try:
        client = _client()
        if args.cmd == "status":
            return status(client)
        build(args.mode or "auto", no_cache=args.no_cache, log=_log, client=client)
    except ImageBuildError as e:
        print(f"kmschaos images: {e}", file=sys.stderr)
        return 1
    return 0


def _log(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
