"""Ctrl-C during `kmschaos run`: the first heals, stops and still writes the partial
report (exit 130); a second one, while that runs, forces — and nothing is left either way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from harness import registry
from harness.toolchain import repo_root
from harness.wait import wait_until

pytestmark = pytest.mark.integration

SCENARIO = str(repo_root() / "scenarios" / "test_blackhole.py")


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(tmp_path / "registry"), PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            SCENARIO,
            "--time-scale",
            "0.05",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, env


def await_active_fault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Wait until the run's cluster has an injected fault; its run ids."""
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(tmp_path / "registry"))

    def faulted() -> bool:
        return any(
            list((Path(e.state_dir) / "faults").glob("*.json")) for e in registry.read_entries()
        )

    wait_until(faulted, 60, "the scenario to inject its blackhole")
    return [e.run_id for e in registry.read_entries()]


def read_until(stream: IO[str], text: str) -> str:
    seen = []
    for line in stream:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"stderr ended without {text!r}:\n{''.join(seen)}")


def assert_nothing_left(run_ids: list[str]) -> None:
    for rid in run_ids:
        assert registry.labelled_processes(rid) == {}, f"processes of {rid} left"
        assert registry.tagged_rules(rid) == [], f"firewall rules of {rid} left"
    assert registry.read_entries() == [], "runs still registered"


def test_first_ctrl_c_heals_stops_and_writes_a_partial_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, _ = start_run(tmp_path)
    try:
        runs = await_active_fault(monkeypatch, tmp_path)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "healing faults" in err
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["totals"]["interrupted"] + summary["totals"]["failed"] >= 1, summary
    assert_nothing_left(runs)


def test_second_ctrl_c_forces_and_still_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, _ = start_run(tmp_path)
    try:
        runs = await_active_fault(monkeypatch, tmp_path)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        read_until(proc.stderr, "Ctrl-C again to force")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "forced" in err, err
    assert_nothing_left(runs)
