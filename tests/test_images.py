"""The Docker images: the kms tag follows the replica program, env overrides win, the
offline build's checks (pins, wheel sets, static binaries); and, with a Docker engine,
the built images run what the backend runs.

The image tests are skipped when no Docker engine answers or the images are missing,
unless ``KMSCHAOS_REQUIRE_DOCKER=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_ready import docker_engine_or_skip

from harness import images
from harness.images import base, builder, command, online, wheels
from harness.toolchain import repo_root

LABELS = {"kmschaos.test": "images"}


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the files the kms image is made of."""
    monkeypatch.delenv("KMSCHAOS_KMS_IMAGE", raising=False)
    for rel in images.kms_inputs(repo_root()):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root() / rel, tmp_path / rel)
    return tmp_path


def test_kms_tag_is_a_content_hash_of_the_replica_program(tree: Path) -> None:
    tag = images.kms_image(tree)
    repo, digest = tag.split(":")
    assert repo == images.KMS_REPO and len(digest) == 12 and int(digest, 16) >= 0
    assert images.kms_image(tree) == tag

    replica = tree / "harness" / "replica" / "__main__.py"
    replica.write_text(replica.read_text() + "\n# changed\n")
    changed = images.kms_image(tree)
    assert changed != tag

    agent = tree / "harness" / "replica" / "replication.py"
    agent.write_text(agent.read_text() + "\n# changed\n")
    assert images.kms_image(tree) not in (tag, changed)


def test_kms_tag_ignores_harness_modules_the_replica_does_not_run(tree: Path) -> None:
    tag = images.kms_image(tree)
    (tree / "harness" / "cli.py").write_text("# the CLI is not in the image\n")
    assert images.kms_image(tree) == tag


def test_kms_tag_follows_dockerfile_and_requirements_but_not_bytecode(tree: Path) -> None:
    tag = images.kms_image(tree)
    cache = tree / "harness" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "replica.cpython-311.pyc").write_bytes(b"\0" * 16)
    (cache / "stray.py").write_text("ignored = True\n")
    assert images.kms_image(tree) == tag

    req = tree / images.KMS_REQUIREMENTS
    req.write_text(req.read_text() + "# comment\n")
    after_req = images.kms_image(tree)
    assert after_req != tag
    dockerfile = tree / images.KMS_DOCKERFILE
    dockerfile.write_text(dockerfile.read_text() + "# comment\n")
    assert images.kms_image(tree) not in (tag, after_req)


def test_env_overrides_name_the_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMSCHAOS_KMS_IMAGE", "registry.example/kms:dev")
    monkeypatch.setenv("KMSCHAOS_TOXIPROXY_IMAGE", "registry.example/toxiproxy:dev")
    assert images.kms_image() == "registry.example/kms:dev"
    assert images.toxiproxy_image(FakeClient(set())) == "registry.example/toxiproxy:dev"


class FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, ref: str) -> str:
        from docker.errors import ImageNotFound

        if ref not in self.present:
            raise ImageNotFound(ref)
        return ref


class FakeClient:
    def __init__(self, present: set[str]) -> None:
        self.images = FakeImages(present)


def test_official_toxiproxy_is_preferred_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMSCHAOS_TOXIPROXY_IMAGE", raising=False)
    official: Any = FakeClient({images.TOXIPROXY_OFFICIAL})
    assert images.toxiproxy_image(official) == images.TOXIPROXY_OFFICIAL
    assert images.toxiproxy_image(FakeClient(set())) == images.TOXIPROXY_OFFLINE


def test_missing_images_lists_what_the_engine_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMSCHAOS_KMS_IMAGE", raising=False)
    monkeypatch.delenv("KMSCHAOS_TOXIPROXY_IMAGE", raising=False)
    kms = images.kms_image()
    client: Any = FakeClient({kms})
    assert images.missing_images(client) == [images.TOXIPROXY_OFFLINE]
    client = FakeClient({kms, images.TOXIPROXY_OFFICIAL})
    assert images.missing_images(client) == []
    assert images.missing_images(FakeClient(set())) == [kms, images.TOXIPROXY_OFFLINE]


def test_requirements_must_be_exact_pins(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# runtime\nPyKMIP==0.11.0  # the server\nsix>=1.16\n")
    with pytest.raises(images.ImageBuildError) as e:
        wheels.pins(req)
    assert f"{req}: line 3: 'six>=1.16'" in str(e.value) and e.value.step == "wheels"
    req.write_text("PyKMIP==0.11.0\ntyping-extensions == 4.16.0\n")
    assert wheels.pins(req) == {"pykmip": "0.11.0", "typing_extensions": "4.16.0"}


def test_the_shipped_requirements_are_exact_pins() -> None:
    pins = wheels.pins(repo_root() / images.KMS_REQUIREMENTS)
    assert pins["pykmip"] == "0.11.0" and "cryptography" in pins and "sqlalchemy" in pins


def test_a_wheel_folder_counts_only_when_complete(tmp_path: Path) -> None:
    pins = {"pykmip": "0.11.0", "typing_extensions": "4.16.0"}
    (tmp_path / "PyKMIP-0.11.0-py3-none-any.whl").touch()
    (tmp_path / "typing_extensions-4.16.0-py3-none-any.whl").touch()
    assert not wheels.wheel_folder_complete(tmp_path, pins)  # no marker: interrupted
    (tmp_path / ".complete").touch()
    assert wheels.wheel_folder_complete(tmp_path, pins)
    assert not wheels.wheel_folder_complete(tmp_path, {**pins, "six": "1.17.0"})
    assert not wheels.wheel_folder_complete(tmp_path, {**pins, "pykmip": "0.10.0"})


def elf(tmp_path: Path, segment_types: list[int]) -> Path:
    """A minimal 64-bit little-endian ELF header with the given program headers."""
    phoff, phentsize = 64, 56
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 32, phoff)
    struct.pack_into("<HH", head, 54, phentsize, len(segment_types))
    body = b"".join(struct.pack("<I", t) + bytes(phentsize - 4) for t in segment_types)
    path = tmp_path / "binary"
    path.write_bytes(bytes(head) + body)
    return path


def test_static_binary_check(tmp_path: Path) -> None:
    assert images.is_static_elf(elf(tmp_path, [1, 1, 4]))  # PT_LOAD, PT_LOAD, PT_NOTE
    assert not images.is_static_elf(elf(tmp_path, [6, 3, 1]))  # PT_PHDR, PT_INTERP, ...
    assert not images.is_static_elf(Path(os.path.realpath(sys.executable)))
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="not a 64-bit little-endian ELF"):
        images.is_static_elf(tmp_path / "script")


def test_build_errors_name_the_step_and_show_its_last_lines() -> None:
    err = images.ImageBuildError("wheels", "pip exited 1", [f"line {i}" for i in range(50)])
    msg = str(err)
    assert msg.startswith("step 'wheels' failed: pip exited 1\n")
    assert "line 49" in msg and "line 19" not in msg


class FakeAPI:
    """docker-py's low-level client as far as the online probe uses it."""

    def __init__(self, fail_on: str | None) -> None:
        self.fail_on = fail_on
        self.pulled: list[str] = []

    def pull(self, repo: str, tag: str, stream: bool, decode: bool) -> Iterator[dict[str, str]]:
        from docker.errors import APIError

        ref = f"{repo}:{tag}"
        if ref == self.fail_on:
            raise APIError("500 Server Error", explanation="lookup ghcr.io: no such host")
        self.pulled.append(ref)
        yield {"status": f"Pulled {ref}"}


@pytest.fixture
def no_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []
    monkeypatch.setattr(builder, "_build_online", lambda *a: done.append("online"))
    monkeypatch.setattr(builder, "_build_offline", lambda *a: done.append("offline"))
    return done


def test_auto_falls_back_to_offline_and_says_why(no_builds: list[str]) -> None:
    client: Any = FakeClient(set())
    client.api = FakeAPI(fail_on=images.TOXIPROXY_OFFICIAL)
    lines: list[str] = []
    report = images.build("auto", log=lines.append, client=client)
    assert (report.mode, no_builds) == ("offline", ["offline"])
    assert report.reason.startswith(f"online path unavailable: pull {images.TOXIPROXY_OFFICIAL}")
    assert "no such host" in report.reason
    assert f"build path: offline ({report.reason})" in lines


def test_auto_builds_online_when_the_pulls_succeed(no_builds: list[str]) -> None:
    client: Any = FakeClient(set())
    client.api = FakeAPI(fail_on=None)
    report = images.build("auto", log=lambda _: None, client=client)
    assert (report.mode, no_builds) == ("online", ["online"])
    assert client.api.pulled == [images.BASE_ONLINE, images.TOXIPROXY_OFFICIAL]
    assert set(report.steps) == {"pull"}


def test_online_fails_on_a_failed_pull_and_offline_never_pulls(no_builds: list[str]) -> None:
    client: Any = FakeClient(set())
    client.api = FakeAPI(fail_on=images.BASE_ONLINE)
    with pytest.raises(images.ImageBuildError, match="step 'pull' failed: pull python"):
        images.build("online", log=lambda _: None, client=client)
    report = images.build("offline", log=lambda _: None, client=client)
    assert (report.mode, client.api.pulled, no_builds) == ("offline", [], ["offline"])


def test_a_pull_that_stays_silent_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()

    class SilentAPI:
        def pull(self, repo: str, tag: str, stream: bool, decode: bool) -> Iterator[Any]:
            release.wait(10)
            yield from ()

    client: Any = FakeClient(set())
    client.api = SilentAPI()
    monkeypatch.setattr(online, "PULL_TIMEOUT_S", 0.2)
    try:
        assert online.pull(client, images.BASE_ONLINE) == "no progress for 0.2 s"
    finally:
        release.set()


def test_debootstrap_without_root_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(images.ImageBuildError) as e:
        base.debootstrap_tarball(tmp_path / images.BASE_TARBALL, lambda _: None)
    assert "debootstrap needs root" in str(e.value) and "--offline" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="auto, online or offline"):
        images.build("sideways", client=FakeClient(set()))


def kmschaos_images(*argv: str) -> argparse.Namespace:
    """`kmschaos images ...` parsed by a parser holding only that subcommand."""
    ap = argparse.ArgumentParser(prog="kmschaos")
    images.add_images_parser(ap.add_subparsers(dest="command", required=True))
    return ap.parse_args(["images", *argv])


def test_kmschaos_images_build_passes_the_path_on(monkeypatch: pytest.MonkeyPatch) -> None:
    client: Any = FakeClient(set())
    client.close = lambda: None
    asked: list[tuple[str, bool]] = []
    monkeypatch.setattr(command, "engine_client", lambda: client)
    monkeypatch.setattr(
        command, "build", lambda mode, no_cache, **_: asked.append((mode, no_cache))
    )
    for argv in (["build"], ["build", "--offline"], ["build", "--online", "--no-cache"]):
        args = kmschaos_images(*argv)
        assert args.func(args) == 0
    assert asked == [("auto", False), ("offline", False), ("online", True)]
    with pytest.raises(SystemExit):
        kmschaos_images("build", "--offline", "--online")


def test_kmschaos_images_says_which_step_failed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_engine() -> Any:
        raise images.ImageBuildError("docker engine", "no Docker engine answers")

    monkeypatch.setattr(command, "engine_client", no_engine)
    args = kmschaos_images("status")
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("kmschaos images: step 'docker engine' failed: no Docker engine")


# --- the built images ---------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    client = docker_engine_or_skip()
    yield client
    client.close()


def run_to_exit(client: Any, image: str, command: list[str]) -> tuple[int, str]:
    """Run a labelled container to its exit; return (exit code, output). Always removed."""
    container = client.containers.create(image, command, labels=LABELS)
    try:
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


@pytest.mark.integration
@pytest.mark.docker
def test_kms_image_runs_the_replica_program(engine: Any) -> None:
    image = images.kms_image()
    assert engine.images.get(image).labels.get(images.IMAGE_LABEL) == "kms"
    code, out = run_to_exit(
        engine, image, ["/opt/kms/bin/python", "-m", "harness.replica", "--help"]
    )
    assert code == 0, out
    assert "usage: python -m harness.replica" in out and "--replication" in out
    code, out = run_to_exit(engine, image, ["sh", "-c", "command -v sleep && command -v tail"])
    assert code == 0 and [Path(p).name for p in out.split()] == ["sleep", "tail"], out


@pytest.mark.integration
@pytest.mark.docker
def test_toxiproxy_image_reports_the_pinned_version(engine: Any) -> None:
    image = images.toxiproxy_image(engine)
    if image == images.TOXIPROXY_OFFLINE:
        assert engine.images.get(image).labels.get(images.IMAGE_LABEL) == "toxiproxy"
    code, out = run_to_exit(engine, image, ["-version"])
    assert code == 0, out
    assert f"version {images.TOXIPROXY_VERSION}" in out
