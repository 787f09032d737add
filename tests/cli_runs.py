"""Running the `kmschaos` command line in a subprocess, as a user does (shared by tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def kmschaos(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> str:
    """`kmschaos ARGS` in `cwd` with `env`; its stdout, asserting it exited 0."""
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"kmschaos {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def json_shape(doc: Any) -> Any:
    """The keys of a JSON document, recursively (lists by their first item): what two
    backends' `status --json` must share."""
    if isinstance(doc, dict):
        return {k: json_shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [json_shape(doc[0])] if doc else []
    return type(doc).__name__ if doc is not None else "null"
