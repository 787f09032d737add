"""How an image build reports: the error that names the failed step and ends with its
last output lines, the summary of the path taken and the seconds per step, and the two
ways a step runs something (a program, a ``docker build``) keeping that output."""

from __future__ import annotations

import re
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker.client import DockerClient

TAIL_LINES = 30
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

Log = Callable[[str], None]


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


@contextmanager
def step(report: BuildReport, name: str, log: Log) -> Iterator[None]:
    """Log the step's start and end and record its seconds in `report`."""
    log(f"[{name}] ...")
    start = time.monotonic()
    try:
        yield
    finally:
        report.steps[name] = time.monotonic() - start
    log(f"[{name}] done in {report.steps[name]:.1f} s")


def one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def docker_build(
    client: DockerClient,
    step: str,
    ctx: Path,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    no_cache: bool,
    log: Log,
    network_mode: str | None = None,
) -> None:
    """``docker build`` of `ctx` as `tag`, logging each Dockerfile step; a failure is
    an `ImageBuildError` of `step` with the build's last lines."""
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
                    log("  " + one_line(line, 110))
            if "error" in event:
                raise ImageBuildError(step, f"docker build of {tag}: {event['error']}", tail)
    except (APIError, DockerException) as e:
        raise ImageBuildError(step, f"docker build of {tag}: {e}", tail) from e
    log(f"  built {tag}")


def run(step: str, argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Run `argv` to its end and return its output (stderr merged); a failure, a
    timeout or a missing program is an `ImageBuildError` of `step`."""
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
