"""`kmschaos run -n 2` (what `make demo` runs): scenarios go to two pytest-xdist workers,
the controller prints a line per finished scenario, the verdict table and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.toolchain import repo_root

pytestmark = pytest.mark.integration


def test_run_with_two_workers_reports_every_scenario(tmp_path: Path) -> None:
    report = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(KMSCHAOS_REGISTRY=str(tmp_path / "registry"), PYTHONWARNINGS="ignore")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "-n",
            "2",
            str(repo_root() / "scenarios" / "test_refuse.py"),
            str(repo_root() / "scenarios" / "test_two_of_three_down.py"),
            "--time-scale",
            "0.05",
            "--report-dir",
            str(report),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "INTERNALERROR" not in r.stdout + r.stderr
    assert "[ 1] PASSED" in r.stdout and "[ 2] PASSED" in r.stdout, r.stdout
    summary = json.loads((report / "summary.json").read_text())
    assert summary["totals"]["passed"] == 2, summary["totals"]
    assert (report / "report.html").is_file()
