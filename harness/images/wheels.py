"""The offline path's Python packages: every exact pin of the kms requirements as a
wheel for the base's python and glibc, downloaded (or, for a pure-Python sdist, built)
on the host into the cache, so the kms image installs them without a network."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import sys
import tempfile
from pathlib import Path

from harness.images.base import BASE_GLIBC, BASE_PYTHON
from harness.images.names import KMS_REQUIREMENTS
from harness.images.progress import ImageBuildError, Log, run
from harness.toolchain import repo_root


def pins(requirements: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by normalised name."""
    found: dict[str, str] = {}
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
        found[_norm(m.group(1))] = m.group(2)
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_folder_complete(folder: Path, wanted: dict[str, str]) -> bool:
    """Does `folder` hold a finished download (its marker) with a wheel per pin?"""
    if not (folder / ".complete").exists():
        return False
    have = set()
    for whl in folder.glob("*.whl"):
        name, version = whl.name.split("-")[:2]
        have.add((_norm(name), version))
    return all((name, version) in have for name, version in wanted.items())


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


def ensure_wheels(cache: Path, log: Log) -> Path:
    """Wheels for every pin in the kms requirements, for the base's python and glibc,
    in ``<cache>/wheels-<hash of the requirements and the target>``."""
    requirements = repo_root() / KMS_REQUIREMENTS
    wanted = pins(requirements)
    platforms = _target_platforms()
    key = hashlib.sha256(
        requirements.read_bytes() + repr((BASE_PYTHON, platforms)).encode()
    ).hexdigest()[:12]
    folder = cache / f"wheels-{key}"
    if wheel_folder_complete(folder, wanted):
        log(f"  {len(wanted)} wheels cached in {folder}")
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
        log(f"  pip download {len(wanted)} pins for cp{py}, glibc <= {glibc} into {folder}")
        run("wheels", argv, timeout_s=900)
        _wheels_from_sdists(tmp, log)
        (tmp / ".complete").write_text(requirements.read_text())
        if not wheel_folder_complete(tmp, wanted):
            got = sorted(p.name for p in tmp.glob("*.whl"))
            raise ImageBuildError("wheels", f"pip left an incomplete wheel set: {got}")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _wheels_from_sdists(folder: Path, log: Log) -> None:
    """Replace each sdist in `folder` by a wheel built on the host; only a pure-Python
    wheel fits the base whatever the host runs, so any other is refused."""
    sdists = [p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".zip"))]
    for sdist in sdists:
        log(f"  {sdist.name} has no wheel on the index; building one on the host")
        before = set(folder.glob("*.whl"))
        run(
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
