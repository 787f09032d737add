"""docker/compose.yaml: the checked-in file is what the plan renders, the plan is the
docker backend's (replica command, names, links), and end to end ``docker-compose up``
gives a cluster that ``kmschaos inject`` / ``heal`` act on and ``down -v`` removes.

The end-to-end test is skipped when docker-compose, the engine or the images are
missing, unless ``KMSCHAOS_REQUIRE_DOCKER=1``. Its names are fixed (one compose cluster
per machine), so it holds an exclusive lock: xdist workers take turns.
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from docker_ready import docker_engine_or_skip, unavailable
from kmip_clients import pykmip

from harness import compose, registry
from harness.cluster.base import ClusterState
from harness.cluster.docker_backend import LABEL_REGISTRY, DockerCluster
from harness.toolchain import repo_root

LOCK = Path("/tmp/kmschaos-compose.lock")
STALL_TIMEOUT_S = 2.0


@pytest.fixture
def planned(tmp_path: Path) -> ClusterState:
    return compose.plan_state(compose.seed_topology(), tmp_path / "compose")


def test_the_checked_in_compose_file_is_the_rendered_plan(planned: ClusterState) -> None:
    checked_in = (repo_root() / compose.COMPOSE_FILE).read_text()
    expected = compose.compose_text(planned)
    diff = "".join(
        difflib.unified_diff(
            checked_in.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            compose.COMPOSE_FILE,
            "rendered",
        )
    )
    assert not diff, f"run `kmschaos compose render --write`:\n{diff[:3000]}"


def kmschaos_compose(*argv: str) -> argparse.Namespace:
    """`kmschaos compose ...` parsed by a parser holding only that subcommand."""
    ap = argparse.ArgumentParser(prog="kmschaos")
    compose.add_compose_parser(ap.add_subparsers(dest="command", required=True))
    return ap.parse_args(["compose", *argv])


def test_kmschaos_compose_render_prints_the_checked_in_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = kmschaos_compose("render")
    assert args.func(args) == 0
    assert capsys.readouterr().out == (repo_root() / compose.COMPOSE_FILE).read_text()


def test_kmschaos_compose_takes_the_state_folder_as_state_dir_or_dir() -> None:
    default = str(repo_root() / compose.DEFAULT_DIR)
    assert kmschaos_compose("prepare").dir == default
    assert kmschaos_compose("wait", "--state-dir", "x").dir == "x"
    assert kmschaos_compose("prepare", "--dir", "y").dir == "y"
    with pytest.raises(SystemExit):
        kmschaos_compose("up")


def test_replica_containers_are_those_the_docker_backend_runs(planned: ClusterState) -> None:
    doc = compose.render(planned)
    backend = DockerCluster(planned)
    runs: list[tuple[list[str], dict[str, Any]]] = []
    started: list[str] = []

    def create(image: str, cmd: list[str], **kw: Any) -> Any:
        runs.append((cmd, kw))
        return SimpleNamespace(start=lambda: started.append(kw["name"]))

    backend._client = SimpleNamespace(containers=SimpleNamespace(create=create))
    for name in planned.replicas:
        backend._run_replica(name, "kmschaos/kms:test")
    assert started == [kw["name"] for _, kw in runs]  # created, then started: each of them
    sdir = Path(planned.state_dir)
    for name, (cmd, kw) in zip(planned.replicas, runs, strict=True):
        svc, holder = doc["services"][name], doc["services"][f"{name}-net"]
        assert svc["command"] == cmd
        assert svc["container_name"] == kw["name"]
        assert kw["network_mode"] == f"container:{holder['container_name']}"
        assert svc["network_mode"] == f"service:{name}-net"
        assert svc["environment"] == kw["environment"]
        assert svc["labels"] == {k: v for k, v in kw["labels"].items() if k != LABEL_REGISTRY}
        binds = {v["bind"]: (k, v["mode"]) for k, v in kw["volumes"].items()}
        data, conf = svc["volumes"]
        assert doc["volumes"][data.split(":")[0]]["name"] == binds["/data"][0]
        config_dir = Path(binds["/config"][0]).relative_to(sdir).as_posix()
        assert conf == f"${{{compose.DIR_VAR}:?{compose.HINT}}}/{config_dir}:/config:ro"


def test_state_compose_file_and_toxiproxy_proxies_agree(planned: ClusterState) -> None:
    doc = compose.render(planned)
    toxi = doc["services"]["toxiproxy"]
    published = {p.rsplit(":", 1)[0]: int(p.rsplit(":", 1)[1]) for p in toxi["ports"]}
    proxies = {p["name"]: p for p in compose.toxiproxy_config(planned)}
    names = DockerCluster(planned)
    for link in planned.link_objects():
        inner = published[link.listen]  # the host side of the link is published ...
        assert proxies[link.name]["listen"] == f"0.0.0.0:{inner}"  # ... onto its proxy
        assert link.upstream == f"{names.holder_name(link.replica)}:5696"
        assert proxies[link.name]["upstream"] == link.upstream
    assert published[planned.toxiproxy_api.removeprefix("http://")] == 8474
    for name, rs in planned.replicas.items():
        assert doc["services"][f"{name}-net"]["ports"] == [f"{rs.host}:{rs.port}:5696"]
    for client in planned.clients.values():
        conf = Path(client.pykmip_conf).read_text()
        assert f"\nport={client.port}\n" in conf
        assert {e["port"] for e in client.endpoints} == {client.port}
    text = yaml.safe_dump(doc)
    assert LABEL_REGISTRY not in text  # the reaper of a harness run never sees compose's
    assert planned.state_dir not in text and str(repo_root()) not in text  # no local path


def test_the_compose_subnet_is_never_leased_to_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry draws 127.X.Y with X from one range; the compose /24 lies outside."""
    asked: list[tuple[int, int]] = []

    class Lowest(random.Random):
        def randint(self, a: int, b: int) -> int:
            asked.append((a, b))
            return a

    monkeypatch.setattr(registry, "leases_dir", lambda: tmp_path)
    registry.lease_subnet("probe", Lowest())
    low, high = asked[0]
    assert not low <= int(compose.SUBNET.split(".")[1]) <= high


# ---- end to end ------------------------------------------------------------------------


@pytest.fixture
def compose_turn() -> Iterator[None]:
    """One compose cluster per machine: wait for the other test runs' turns to end."""
    with open(LOCK, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def engine(compose_turn: None) -> Iterator[Any]:
    client = docker_engine_or_skip()
    try:
        existing = compose.compose_objects(client)
        if existing:
            unavailable(
                f"a compose cluster exists ({', '.join(existing[:3])}, ...) and this test would "
                "take it down; remove it first (docker/README.md, docker compose)"
            )
        yield client
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.docker
def test_compose_up_serves_kmip_stall_fails_over_heal_and_down_leave_nothing(
    engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmip import enums

    program = compose.compose_program()
    if program is None:
        unavailable("docker-compose is not installed (Debian: apt-get install docker-compose)")
    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(reg), PYTHONWARNINGS="ignore")
    sdir = tmp_path / "compose"
    argv = compose.compose_argv(sdir, program)

    def run(*args: str) -> str:
        r = subprocess.run(
            args, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=180
        )
        assert r.returncode == 0, f"{' '.join(args)}: exit {r.returncode}\n{r.stderr}"
        return r.stdout

    def kmschaos(*args: str) -> str:
        return run(sys.executable, "-m", "harness.cli", *args, "--state-dir", str(sdir))

    kmschaos("compose", "prepare")
    try:
        t0 = time.monotonic()
        run(*argv, "up", "-d")
        up_s = time.monotonic() - t0
        kmschaos("compose", "wait")
        print(f"compose: up -d {up_s:.1f} s, every link answering {time.monotonic() - t0:.1f} s")

        status = json.loads(kmschaos("status", "--json"))
        assert (status["run_id"], status["backend"]) == ("compose", "docker")
        assert {r["state"] for r in status["replicas"].values()} == {"running"}
        hosts = [e["host"] for e in status["clients"]["vc-a"]["endpoints"]]

        kmschaos("inject", "stall", "kms-a")
        assert engine.containers.get("kmschaos-compose-kms-a").status == "paused"
        assert json.loads(kmschaos("status", "--json"))["replicas"]["kms-a"]["state"] == "paused"
        p = pykmip(status, timeout_s=STALL_TIMEOUT_S)
        try:
            # kms-a accepts TCP but never answers the handshake: PyKMIP moves on to kms-b
            assert p.proxy.host == hosts[1], f"served by {p.proxy.host}, not kms-b"
            uid = p.create(enums.CryptographicAlgorithm.AES, 256)
            assert len(p.get(uid).value) == 32
        finally:
            p.close()

        kmschaos("heal", "--all")
        assert engine.containers.get("kmschaos-compose-kms-a").status == "running"
        p = pykmip(status, hosts=hosts[:1], timeout_s=STALL_TIMEOUT_S)
        try:
            assert p.proxy.host == hosts[0]
            p.locate()
        finally:
            p.close()
    finally:
        down = subprocess.run(
            [*argv, "down", "-v"],
            cwd=repo_root(),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        left = compose.compose_objects(engine)
        if left:
            from harness.cluster.docker_backend import reap_docker

            reap_docker(compose.RUN_ID)
        assert down.returncode == 0, f"docker-compose down -v: {down.stderr}"
        assert left == [], f"docker-compose down -v left {left}"
