"""A user's own toxiproxy-python script drives a running kmschaos cluster's Toxiproxy.

The script is the README's example (section "Drive it with your own toxiproxy-python
script"), run unchanged in its own Python process: toxiproxy-python 0.1.1 keeps the API
address in class attributes, which must not leak into this process. The cluster is
started and stopped through the CLI, as a user does; the harness's own client
(`harness.links.ToxiproxyAPI`) and a vCenter-style client check what the script did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_runs import kmschaos

from harness import registry
from harness.client.operations import empty_client_config
from harness.client.policies import PolicyResult, TlsFiles
from harness.client.transport import Endpoint
from harness.client.walker import VCenterPolicy
from harness.links import ToxiproxyAPI
from harness.toolchain import repo_root
from harness.topology import load_topology
from harness.wait import wait_until

pytestmark = pytest.mark.integration

ONE_SITE = repo_root() / "scenarios" / "topologies" / "one-site.yaml"
README_SECTION = "### Drive it with your own toxiproxy-python script"
LINK = "vc-a->kms-a"  # the proxy the README's script targets


def readme_script() -> str:
    """The first ```python block under the README's toxiproxy-python section."""
    text = (repo_root() / "README.md").read_text()
    _, found, rest = text.partition(f"\n{README_SECTION}\n")
    assert found, f"README.md has no section {README_SECTION!r}"
    block = re.search(r"^```python\n(.*?)^```$", rest, re.S | re.M)
    assert block, f"README.md: no ```python block under {README_SECTION!r}"
    return block.group(1)


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> float:
    """--kms-time-scale, else 0.05 (the README's cluster: a 3 s response timeout)."""
    return float(request.config.getoption("--kms-time-scale") or 0.05)


@pytest.fixture
def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: float
) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """`kmschaos up` one-site in a private registry; (the CLI's env, status --json).
    `down` runs whatever happens; a leftover would be reaped."""
    reg, state = tmp_path / "registry", tmp_path / "state"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(
        os.environ,
        KMSCHAOS_REGISTRY=str(reg),
        KMSCHAOS_STATE_DIR=str(state),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONWARNINGS="ignore",
        PYTHONUNBUFFERED="1",
    )
    try:
        kmschaos(
            env,
            tmp_path,
            "up",
            str(ONE_SITE),
            "--time-scale",
            str(scale),
            "--state-dir",
            str(state),
        )
        yield (
            env,
            json.loads(kmschaos(env, tmp_path, "status", "--json", "--state-dir", str(state))),
        )
    finally:
        try:
            if (state / "state.json").exists():
                kmschaos(env, tmp_path, "down", "--state-dir", str(state))
        finally:
            registry.reap(all_runs=True)  # anything `down` missed


def toxics(api: ToxiproxyAPI) -> dict[str, list[str]]:
    """proxy name -> names of its toxics, for every proxy that has any."""
    return {
        name: sorted(t["name"] for t in p.get("toxics") or [])
        for name, p in api.proxies().items()
        if p.get("toxics")
    }


@dataclass
class UsersScript:
    """The user's script running in its own Python process; its output in files."""

    proc: subprocess.Popen[str]
    out: Path
    err: Path

    def output(self) -> str:
        return self.out.read_text()

    def says(self) -> str:
        return (
            f"the script's exit status: {self.proc.poll()}\n"
            f"stdout:\n{self.output()}\nstderr:\n{self.err.read_text()}"
        )

    def press_enter(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()


@contextmanager
def users_script(source: str, folder: Path, env: dict[str, str]) -> Iterator[UsersScript]:
    """Run `source` as a script file with this interpreter; killed if still running."""
    path = folder / "users_toxiproxy_script.py"
    path.write_text(source)
    out, err = folder / "script.out", folder / "script.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=folder,
            env=env,
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        yield UsersScript(proc, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def served(result: PolicyResult) -> list[tuple[str, str]]:
    return [(a.server, a.outcome) for a in result.attempts]


def test_users_toxiproxy_python_script_blackholes_kms_a_and_vc_a_fails_over(
    cluster: tuple[dict[str, str], dict[str, Any]],
    tmp_path: Path,
    scale: float,
    request: pytest.FixtureRequest,
) -> None:
    env, status = cluster
    topo = load_topology(ONE_SITE).with_time_scale(scale)
    response_s = topo.response_timeout
    vc = status["clients"]["vc-a"]
    assert [e["replica"] for e in vc["endpoints"]] == ["kms-a", "kms-b", "kms-c"]
    client = VCenterPolicy(
        [Endpoint(e["replica"], e["host"], int(e["port"])) for e in vc["endpoints"]],
        TlsFiles(vc["ca"], vc["cert"], vc["key"]),
        topo.connect_timeout,
        response_s,
        empty_client_config(tmp_path / "conf"),
    )
    api = ToxiproxyAPI(status["toxiproxy_api"])
    request.addfinalizer(api.close)
    assert LINK in api.proxies()
    assert toxics(api) == {}

    before = client.execute("create", None)
    assert (before.outcome, served(before)) == ("ok", [("kms-a", "ok")])

    with users_script(readme_script(), tmp_path, env) as script:
        # its first line is printed once its toxics are in place; then it waits for Enter
        wait_until(
            lambda: bool(script.output()) or script.proc.poll() is not None,
            30,
            "the toxiproxy-python script to add its toxics",
        )
        assert script.proc.poll() is None, script.says()

        t0 = time.monotonic()
        during = client.execute("create", None)
        took = time.monotonic() - t0
        assert during.outcome == "ok", (during.error, served(during), script.says())
        assert served(during) == [("kms-a", "timeout"), ("kms-b", "ok")], script.says()
        stalled = during.attempts[0].duration
        # a blackhole costs one response timeout, no less (else the toxic did nothing)
        assert response_s * 0.98 - 0.02 <= stalled <= response_s + 0.5, stalled
        assert took <= response_s + 1.0, took
        assert toxics(api) == {LINK: ["blackhole-downstream", "blackhole-upstream"]}
        live = json.loads(kmschaos(env, tmp_path, "status", "--json"))
        assert live["faults"] == [], "a user's toxic is not a fault kmschaos recorded"

        script.press_enter()
        assert script.proc.wait(30) == 0, script.says()
        assert script.output().splitlines()[-1].endswith(": []"), script.says()

    assert toxics(api) == {}
    after = client.execute("create", None)
    assert (after.outcome, served(after)) == ("ok", [("kms-a", "ok")])
    request.node.user_properties.append(("failover_s", round(took, 3)))
    request.node.user_properties.append(("kms_a_attempt_s", round(stalled, 3)))
