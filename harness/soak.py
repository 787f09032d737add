"""``python -m harness.soak``: run the local test suite N times and report its flakes.

    python -m harness.soak [--runs N] [--out DIR] [-- PYTEST ARGS]

Each run is a fresh pytest process, ``python -m pytest PYTEST_ARGS --junitxml
DIR/run-K.xml`` (its output in ``DIR/run-K.log``); without ``--``, PYTEST_ARGS are those of
``make test``'s local part (`DEFAULT_PYTEST_ARGS`). After the runs, ``DIR/flakes.md`` and
``DIR/flakes.json``: every test that failed at least once (failures / runs, the first
failure's message from the JUnit XML), and the totals (runs, tests per run, failures,
wall time per run).

Why plain reruns rather than pytest-repeat or pytest-flakefinder: those plugins repeat the
tests inside one pytest session (one process, one xdist schedule, module state and
session fixtures kept between repetitions). Our flakes come from what a run shares with its
surroundings: fresh clusters on fresh ports and loopback subnets, what the other xdist
worker runs at the same moment, a cold start under load. A fresh process per run varies all
of that, as CI does.

A run that wrote no (readable) JUnit XML crashed: it is counted as an error, with pytest's
exit status. Ctrl-C stops the running pytest (one SIGINT to its process group: teardown
heals faults and stops clusters), then the report is written for the runs completed, and
says so. Exit status: 0 no failure, 1 a test failed (or a run crashed) in some run, 2 bad
input (this command's options, or pytest refused its arguments / collected nothing),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# pytest's own exit statuses that mean its arguments are wrong: repeating would not help
PYTEST_USAGE_ERROR, PYTEST_NO_TESTS = 4, 5

DEFAULT_RUNS = 20
DEFAULT_OUT = "reports/soak"
# make test's local part (Makefile: WORKERS=2, TIME_SCALE=0.05)
DEFAULT_PYTEST_ARGS = (
    "tests",
    "scenarios",
    "-n",
    "2",
    "--kms-time-scale",
    "0.05",
    "-m",
    "not docker",
)
MESSAGE_CHARS = 300  # of a failure's message in flakes.md (flakes.json keeps it whole)


@dataclass(frozen=True)
class SoakFolder:
    """Every path a soak writes below its folder."""

    root: Path

    def xml(self, k: int) -> Path:
        return self.root / f"run-{k}.xml"

    def log(self, k: int) -> Path:
        return self.root / f"run-{k}.log"

    @property
    def markdown(self) -> Path:
        return self.root / "flakes.md"

    @property
    def json(self) -> Path:
        return self.root / "flakes.json"

    def clear(self) -> None:
        """Remove what an earlier soak wrote here (only that: the folder may hold more)."""
        for pattern in ("run-*.xml", "run-*.log", self.markdown.name, self.json.name):
            for path in self.root.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


@dataclass
class SoakRun:
    """One completed pytest run: its tests, the failed ones with their message (a
    failure or an error in the JUnit XML), or why it has no results (`error`)."""

    run: int
    exit_status: int
    seconds: float
    tests: int = 0
    skipped: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # test id -> first message
    ran: list[str] = field(default_factory=list)  # test ids, skipped ones left out
    error: str = ""  # the run crashed: no readable JUnit XML

    @property
    def crashed(self) -> bool:
        return bool(self.error)

    def words(self) -> str:
        """The run in a few words, for the progress line and the report."""
        if self.crashed:
            return f"crashed: {self.error}"
        tests = f"{self.tests} test{'' if self.tests == 1 else 's'}"
        if self.failures:
            return f"{len(self.failures)} failed of {tests}"
        return f"passed, {tests}"


def test_id(case: ET.Element) -> str:
    """A JUnit test case as ``classname::name`` (pytest's module path in dots, then the
    test's name with its parameters)."""
    classname, name = case.get("classname", ""), case.get("name", "")
    return f"{classname}::{name}" if classname else name


def _message(problem: ET.Element) -> str:
    """A failure's message: its ``message`` attribute, else the first line of its text."""
    message = (problem.get("message") or "").strip()
    if message:
        return message
    for line in (problem.text or "").splitlines():
        if line.strip():
            return line.strip()
    return problem.tag


def read_junit(run: int, exit_status: int, seconds: float, xml: Path) -> SoakRun:
    """A run's results from its JUnit XML; a crash when there is none or it cannot be
    read (pytest died before writing it, or while writing it)."""
    result = SoakRun(run, exit_status, round(seconds, 1))
    try:
        root = ET.parse(xml).getroot()
    except FileNotFoundError:
        result.error = f"pytest exited with status {exit_status} and wrote no JUnit XML"
        return result
    except (OSError, ET.ParseError) as e:
        result.error = f"pytest exited with status {exit_status}; unreadable JUnit XML ({e})"
        return result
    skipped: dict[str, bool] = {}  # every test id: whether it was skipped
    for case in root.iter("testcase"):
        tid = test_id(case)
        skipped[tid] = skipped.get(tid, False) or case.find("skipped") is not None
        for problem in (*case.findall("failure"), *case.findall("error")):
            result.failures.setdefault(tid, _message(problem))
    result.tests = len(skipped)
    result.ran = [t for t, skip in skipped.items() if not skip or t in result.failures]
    result.skipped = result.tests - len(result.ran)
    if exit_status != 0 and not result.failures:
        # an internal error, a worker lost, an interrupt: the XML does not say why
        result.error = f"pytest exited with status {exit_status}; its JUnit XML lists no failure"
    return result


# ---- the report -----------------------------------------------------------------------


def build_report(
    runs: Sequence[SoakRun],
    *,
    requested: int,
    command: str,
    interrupted: bool = False,
    stopped_run: int | None = None,
) -> dict[str, Any]:
    """The flake report of the completed `runs` (pure: what flakes.json holds).
    `interrupted`: Ctrl-C ended the soak early; `stopped_run`: the run it stopped midway
    (not counted), if it did not come between two runs."""
    with_results = [r for r in runs if not r.crashed]
    tests: dict[str, dict[str, Any]] = {}
    for r in runs:
        for tid, message in r.failures.items():
            t = tests.setdefault(
                tid, {"test": tid, "failures": 0, "first_run": r.run, "message": message}
            )
            t["failures"] += 1
    for t in tests.values():
        # out of the runs that ran it (not those that skipped it; a crashed run ran
        # nothing we know of)
        t["runs"] = sum(1 for r in with_results if t["test"] in r.ran)
        t["kind"] = "every run" if t["failures"] >= t["runs"] else "flaky"
    failed = sorted(tests.values(), key=lambda t: (-t["failures"], t["test"]))
    seconds = [r.seconds for r in runs]
    counts = [r.tests for r in with_results]
    return {
        "command": command,
        "runs_requested": requested,
        "runs_completed": len(runs),
        "interrupted": interrupted,
        "stopped_run": stopped_run,
        "totals": {
            "runs": len(runs),
            "runs_with_failures": sum(1 for r in runs if r.failures),
            "crashed_runs": sum(1 for r in runs if r.crashed),
            "failures": sum(len(r.failures) for r in runs),
            "tests_failed": len(failed),
            "flaky": sum(1 for t in failed if t["kind"] == "flaky"),
            "tests_per_run": {"min": min(counts), "max": max(counts)} if counts else None,
            "seconds_per_run": _spread(seconds),
            "seconds": round(sum(seconds), 1),
        },
        "failed_tests": failed,
        "runs": [
            {k: v for k, v in asdict(r).items() if k != "ran"} | {"result": r.words()} for r in runs
        ],
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def exit_status(doc: dict[str, Any]) -> int:
    if doc["interrupted"]:
        return EXIT_INTERRUPTED
    totals = doc["totals"]
    return EXIT_FAILED if totals["failures"] or totals["crashed_runs"] else EXIT_OK


def _cell(text: str, limit: int | None = None) -> str:
    one_line = " ".join(text.split())
    if limit is not None and len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    return one_line.replace("|", "\\|")


def render_markdown(doc: dict[str, Any]) -> str:
    """flakes.md: what the soak ran, the totals, the tests that failed, every run."""
    t = doc["totals"]
    lines = [
        f"# Soak: {doc['runs_completed']} of {doc['runs_requested']} runs",
        "",
        f"`{doc['command']}`, each run a fresh pytest process "
        "(JUnit XML in `run-K.xml`, output in `run-K.log`).",
        "",
    ]
    if doc["interrupted"]:
        stopped = doc["stopped_run"]
        lines += [
            f"**Interrupted** after {doc['runs_completed']} completed run(s): the figures "
            "are for those"
            + (f"; run {stopped} was stopped midway and is not counted." if stopped else "."),
            "",
        ]
    per_run = t["tests_per_run"]
    tests = "-" if per_run is None else str(per_run["min"])
    if per_run and per_run["max"] != per_run["min"]:
        tests = f"{per_run['min']}–{per_run['max']}"
    wall = t["seconds_per_run"]
    wall_text = "-" if wall is None else f"{wall['min']} s"
    if wall and wall["max"] != wall["min"]:
        wall_text = f"{wall['min']}–{wall['max']} s (median {wall['median']})"
    lines += [
        "| runs | tests per run | runs with failures | crashed runs | failures | "
        "wall time per run |",
        "|---|---|---|---|---|---|",
        f"| {t['runs']} | {tests} | {t['runs_with_failures']} | {t['crashed_runs']} | "
        f"{t['failures']} | {wall_text} |",
        "",
    ]
    if doc["failed_tests"]:
        lines += [
            f"## Tests that failed at least once ({t['tests_failed']}; {t['flaky']} flaky)",
            "",
            "| test | failed / runs | first failure | message |",
            "|---|---|---|---|",
        ]
        for f in doc["failed_tests"]:
            lines.append(
                f"| `{_cell(f['test'])}` | {f['failures']}/{f['runs']} ({f['kind']}) | "
                f"run {f['first_run']} | {_cell(f['message'], MESSAGE_CHARS)} |"
            )
    else:
        lines.append("No test failed.")
    lines += ["", "## Runs", "", "| run | exit status | result | seconds |", "|---|---|---|---|"]
    for r in doc["runs"]:
        lines.append(f"| {r['run']} | {r['exit_status']} | {_cell(r['result'])} | {r['seconds']} |")
    return "\n".join(lines) + "\n"


def write_report(folder: SoakFolder, doc: dict[str, Any]) -> None:
    folder.root.mkdir(parents=True, exist_ok=True)
    for path, text in (
        (folder.json, json.dumps(doc, indent=2)),
        (folder.markdown, render_markdown(doc)),
    ):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


# ---- running ----------------------------------------------------------------------------


def pytest_command(args: Sequence[str], xml: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, f"--junitxml={xml}"]


def run_pytest(command: list[str], log: Path) -> int:
    """Run pytest in its own process group and return its exit status. A Ctrl-C here
    reaches it as a SIGINT to that group (what a Ctrl-C at a terminal does: it tears down,
    then ends; a second one forces); then KeyboardInterrupt is raised, once it has ended."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    interrupted = False
    while True:
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            interrupted = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            continue
        if interrupted:
            raise KeyboardInterrupt
        return code


def _names(tests: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(tests[:most])
    return shown + (f" and {len(tests) - most} more" if len(tests) > most else "")


def soak(
    runs: int,
    folder: SoakFolder,
    pytest_args: Sequence[str],
    say: Callable[[str], None] = print,
    run: Callable[[list[str], Path], int] = run_pytest,
) -> tuple[dict[str, Any], int]:
    """Run pytest `runs` times, a line per run; write the report (also when interrupted:
    for the runs completed) and return it with the exit status."""
    command = shlex.join(["python", "-m", "pytest", *pytest_args])
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.clear()
    say(f"soak: {runs} run(s) of `{command}` -> {folder.root}/")
    done: list[SoakRun] = []
    interrupted, stopped = False, None
    usage = ""
    k, t0 = 0, time.monotonic()
    try:
        for k in range(1, runs + 1):
            t0 = time.monotonic()
            code = run(pytest_command(pytest_args, folder.xml(k).resolve()), folder.log(k))
            result = read_junit(k, code, time.monotonic() - t0, folder.xml(k))
            if code in (PYTEST_USAGE_ERROR, PYTEST_NO_TESTS):
                why = "refused its arguments" if code == PYTEST_USAGE_ERROR else "collected no test"
                usage = f"pytest {why} (exit status {code}; see {folder.log(k)})"
                say(f"soak: {usage}")
                break
            done.append(result)
            failed = f": {_names(sorted(result.failures))}" if result.failures else ""
            log = f" (log: {folder.log(k)})" if result.crashed else ""
            say(f"run {k:>2}/{runs}: {result.words()} in {result.seconds:.1f} s{failed}{log}")
    except KeyboardInterrupt:
        interrupted = True
        if len(done) < k:  # stopped in the middle of run k (else between two runs)
            stopped = k
            say(f"run {k:>2}/{runs}: interrupted after {time.monotonic() - t0:.1f} s")
    doc = build_report(
        done, requested=runs, command=command, interrupted=interrupted, stopped_run=stopped
    )
    write_report(folder, doc)
    t = doc["totals"]
    say(
        f"soak: {t['runs']} run(s), {t['failures']} failure(s) of {t['tests_failed']} test(s) "
        f"({t['flaky']} flaky), {t['crashed_runs']} crashed run(s)"
        + (" — interrupted: the report covers the completed runs" if interrupted else "")
        + f"; report: {folder.markdown}"
    )
    return doc, EXIT_USAGE if usage else exit_status(doc)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness.soak",
        usage="%(prog)s [--runs N] [--out DIR] [-- PYTEST ARGS]",
        description="Run the test suite N times, each run a fresh pytest process (fresh "
        "clusters, ports and xdist scheduling, like CI; pytest-repeat and flakefinder "
        "repeat tests inside one session instead), with --junitxml DIR/run-K.xml and its "
        "output in DIR/run-K.log; then DIR/flakes.md and flakes.json: each test that "
        "failed at least once (failures/runs, the first failure's message) and the "
        "totals. PYTEST ARGS after `--` replace the default, make test's local part: "
        f"{shlex.join(DEFAULT_PYTEST_ARGS)}. Ctrl-C stops the running pytest (teardown "
        "runs) and reports the completed runs. Exit 0 no failure, 1 a test failed or a "
        "run crashed, 2 bad input, 130 interrupted.",
    )
    p.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, metavar="N", help=f"default {DEFAULT_RUNS}"
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where the runs' XML and logs and the report go (default {DEFAULT_OUT})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = list(DEFAULT_PYTEST_ARGS)
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse printed the problem
        return EXIT_USAGE if e.code else EXIT_OK
    out = Path(args.out)

    def refuse(msg: str) -> int:
        print(f"soak: {msg}", file=sys.stderr)
        return EXIT_USAGE

    if args.runs < 1:
        return refuse(f"--runs {args.runs}: must be at least 1")
    if out.exists() and not out.is_dir():
        return refuse(f"--out {out}: exists and is not a folder")
    if any(a.startswith(("--junitxml", "--junit-xml")) for a in pytest_args):
        return refuse("-- ...: --junitxml is the soak's own (DIR/run-K.xml); leave it out")
    if not pytest_args:
        return refuse("-- with nothing after it: name the tests to soak")

    def say(line: str) -> None:
        print(line, flush=True)

    _, status = soak(args.runs, SoakFolder(out), pytest_args, say)
    return status


if __name__ == "__main__":
    # SIGINT stops the soak even when inherited ignored (a background job of a script):
    # Python then leaves it ignored, and the runs' pytest would inherit that too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
