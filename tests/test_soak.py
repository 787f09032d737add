"""`python -m harness.soak`: the flake report from JUnit XML files (made by hand here:
a flaky test, one failing every run, a crashed run, an interrupted soak), its input
checks, and one real soak of a tiny generated test file that fails on every other run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.soak import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    SoakFolder,
    build_report,
    exit_status,
    main,
    read_junit,
    render_markdown,
    soak,
)
from harness.wait import wait_until


def junit(*cases: tuple[str, str, str]) -> str:
    """A pytest-like JUnit XML: (classname, name, outcome) with outcome one of
    pass, fail, error (a teardown error), skip."""
    body = []
    for classname, name, outcome in cases:
        inner = {
            "pass": "",
            "fail": f'<failure message="AssertionError: {name} broke&#10;assert 0">'
            "def test(): ...\nE   assert 0</failure>",
            "error": f"<error>teardown of {name} failed\nmore</error>",
            "skip": '<skipped type="pytest.skip" message="no docker" />',
        }[outcome]
        body.append(
            f'<testcase classname="{classname}" name="{name}" time="0.1">{inner}</testcase>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" tests="{len(cases)}">{"".join(body)}</testsuite></testsuites>'
    )


def write_runs(folder: SoakFolder, runs: dict[int, str | None]) -> None:
    folder.root.mkdir(parents=True, exist_ok=True)
    for k, text in runs.items():
        if text is not None:
            folder.xml(k).write_text(text)


def test_flaky_always_failing_and_crashed_runs(tmp_path: Path) -> None:
    folder = SoakFolder(tmp_path)
    write_runs(
        folder,
        {
            1: junit(("tests.t", "test_flaky", "fail"), ("tests.t", "test_broken", "fail")),
            2: junit(("tests.t", "test_flaky", "pass"), ("tests.t", "test_broken", "fail")),
            3: None,  # pytest crashed before writing its XML
            4: junit(("tests.t", "test_flaky", "error"), ("tests.t", "test_broken", "fail")),
            5: junit(("tests.t", "test_flaky", "pass"), ("tests.t", "test_broken", "skip")),
        },
    )
    status = {1: 1, 2: 1, 3: 3, 4: 1, 5: 0}
    runs = [read_junit(k, status[k], 10.0 + k, folder.xml(k)) for k in range(1, 6)]
    assert runs[2].crashed and "status 3 and wrote no JUnit XML" in runs[2].error
    doc = build_report(runs, requested=5, command="python -m pytest tests")

    failed = {t["test"]: t for t in doc["failed_tests"]}
    assert failed["tests.t::test_flaky"] == {
        "test": "tests.t::test_flaky",
        "failures": 2,
        "runs": 4,  # the crashed run ran nothing we know of
        "first_run": 1,
        "message": "AssertionError: test_flaky broke\nassert 0",
        "kind": "flaky",
    }
    # failing in every run that ran it (run 5 skipped it) is no flake
    broken = failed["tests.t::test_broken"]
    assert (broken["failures"], broken["runs"], broken["kind"]) == (3, 3, "every run")
    assert [t["test"] for t in doc["failed_tests"]] == [
        "tests.t::test_broken",
        "tests.t::test_flaky",
    ]
    totals = doc["totals"]
    assert totals["runs"] == 5 and totals["crashed_runs"] == 1
    assert totals["runs_with_failures"] == 3 and totals["failures"] == 5
    assert totals["tests_per_run"] == {"min": 2, "max": 2}
    assert totals["seconds_per_run"] == {"min": 11.0, "median": 13.0, "max": 15.0}
    assert exit_status(doc) == EXIT_FAILED

    md = render_markdown(doc)
    assert "| `tests.t::test_flaky` | 2/4 (flaky) | run 1 | AssertionError: test_flaky broke" in md
    assert "| `tests.t::test_broken` | 3/3 (every run) | run 1 |" in md
    assert "| 3 | 3 | crashed: pytest exited with status 3 and wrote no JUnit XML | 13.0 |" in md
    assert "Interrupted" not in md


def test_an_error_without_message_and_an_unexplained_exit_status(tmp_path: Path) -> None:
    folder = SoakFolder(tmp_path)
    write_runs(folder, {1: junit(("m", "test_a", "error")), 2: junit(("m", "test_a", "pass"))})
    first = read_junit(1, 1, 1.0, folder.xml(1))
    assert first.failures == {"m::test_a": "teardown of test_a failed"}
    # exit status 3 (internal error) with an XML that lists no failure: not a pass
    second = read_junit(2, 3, 1.0, folder.xml(2))
    assert second.crashed and "status 3; its JUnit XML lists no failure" in second.error
    folder.xml(2).write_text("<testsuites><testsuite>")  # cut short
    assert "unreadable JUnit XML" in read_junit(2, 1, 1.0, folder.xml(2)).error


def test_all_green_exits_0(tmp_path: Path) -> None:
    folder = SoakFolder(tmp_path)
    write_runs(folder, {1: junit(("m", "test_a", "pass"), ("m", "test_b", "skip"))})
    doc = build_report([read_junit(1, 0, 2.0, folder.xml(1))], requested=1, command="pytest")
    assert exit_status(doc) == EXIT_OK and doc["failed_tests"] == []
    assert "No test failed." in render_markdown(doc)


def test_interrupted_soak_reports_the_completed_runs(tmp_path: Path) -> None:
    """Ctrl-C during run 3: runs 1 and 2 are reported, run 3 is not counted."""
    folder = SoakFolder(tmp_path / "soak")
    calls: list[list[str]] = []

    def run(command: list[str], log: Path) -> int:
        calls.append(command)
        k = len(calls)
        if k == 3:
            raise KeyboardInterrupt  # what run_pytest raises once pytest has ended
        xml = Path(command[-1].removeprefix("--junitxml="))
        xml.write_text(junit(("m", "test_a", "fail" if k == 1 else "pass")))
        return 1 if k == 1 else 0

    lines: list[str] = []
    doc, status = soak(5, folder, ["tests/x.py", "-q"], lines.append, run)
    assert status == EXIT_INTERRUPTED and len(calls) == 3
    assert calls[0][-3:] == ["tests/x.py", "-q", f"--junitxml={folder.xml(1).resolve()}"]
    assert doc["interrupted"] and doc["stopped_run"] == 3
    assert (doc["runs_requested"], doc["runs_completed"]) == (5, 2)
    assert doc["failed_tests"][0]["failures"] == 1 and doc["failed_tests"][0]["runs"] == 2
    on_disk = json.loads(folder.json.read_text())
    assert on_disk == doc
    md = folder.markdown.read_text()
    assert "**Interrupted** after 2 completed run(s)" in md and "run 3 was stopped" in md
    assert lines[1].startswith("run  1/5: 1 failed of 1 test in ") and "m::test_a" in lines[1]
    assert lines[3].startswith("run  3/5: interrupted after")
    assert "interrupted: the report covers the completed runs" in lines[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runs", "0"], "--runs 0: must be at least 1"),
        (["--", "tests", "--junitxml=x.xml"], "--junitxml is the soak's own"),
        (["--"], "nothing after it"),
    ],
)
def test_bad_input_exits_2_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "soak"
    assert main(["--out", str(out), *argv]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_out_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    assert main(["--out", str(tmp_path / "file")]) == EXIT_USAGE
    assert "exists and is not a folder" in capsys.readouterr().err


FLAKY = """
from pathlib import Path

COUNTER = Path(__file__).with_name("runs.txt")


def test_flaky():
    n = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(n + 1))
    assert n % 2 == 1, f"fails on odd runs (this is run {n + 1})"


def test_steady():
    pass
"""


def clean_env() -> dict[str, str]:
    """This process's environment without what pytest tells its own workers."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def soak_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.soak", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )


def test_a_real_soak_finds_the_test_that_fails_every_other_run(tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(FLAKY)
    done = soak_cli(tmp_path, "--runs", "2", "--", "test_tiny.py", "-q", "-p", "no:cacheprovider")
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "run  1/2: 1 failed of 2 tests" in done.stdout
    assert "run  2/2: passed, 2 tests" in done.stdout
    out = tmp_path / "reports" / "soak"
    doc = json.loads((out / "flakes.json").read_text())
    assert [(t["test"], t["failures"], t["runs"], t["kind"]) for t in doc["failed_tests"]] == [
        ("test_tiny::test_flaky", 1, 2, "flaky")
    ]
    assert doc["failed_tests"][0]["message"].startswith("AssertionError: fails on odd runs")
    assert [r["exit_status"] for r in doc["runs"]] == [1, 0]
    assert "| `test_tiny::test_flaky` | 1/2 (flaky) | run 1 |" in (out / "flakes.md").read_text()
    for k in (1, 2):
        assert (out / f"run-{k}.xml").is_file() and (out / f"run-{k}.log").is_file()


WAITS_IN_RUN_2 = """
import threading
from pathlib import Path

COUNTER = Path(__file__).with_name("runs.txt")


def test_waits_in_run_2():
    n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(n))
    if n == 2:
        Path(__file__).with_name("in-run-2").write_text("")
        threading.Event().wait(60)  # until the soak's SIGINT stops this run
"""


def test_sigint_stops_the_running_pytest_and_reports_the_completed_runs(tmp_path: Path) -> None:
    """Even started with SIGINT ignored (a background job of a script: Python would
    leave it ignored), SIGINT stops run 2; run 1 is reported, run 3 never starts."""
    (tmp_path / "test_wait.py").write_text(WAITS_IN_RUN_2)
    soak_cmd = shlex.join(
        [sys.executable, "-m", "harness.soak", "--runs", "3", "--", "test_wait.py"]
    )
    proc = subprocess.Popen(
        ["sh", "-c", f"trap '' INT; exec {soak_cmd} -q -p no:cacheprovider"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until((tmp_path / "in-run-2").exists, 60, "run 2's test to start")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, out
    assert "run  2/3: interrupted after" in out and "run  3/3" not in out
    soak_dir = tmp_path / "reports" / "soak"
    doc = json.loads((soak_dir / "flakes.json").read_text())
    assert (doc["interrupted"], doc["stopped_run"], doc["runs_completed"]) == (True, 2, 1)
    assert "KeyboardInterrupt" in (soak_dir / "run-2.log").read_text()  # pytest got it
    assert not (soak_dir / "run-3.log").exists()
    assert "**Interrupted** after 1 completed run(s)" in (soak_dir / "flakes.md").read_text()


def test_pytest_refusing_its_arguments_is_bad_input(tmp_path: Path) -> None:
    done = soak_cli(tmp_path, "--runs", "3", "--", "--no-such-option")
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    assert "pytest refused its arguments (exit status 4" in done.stdout
    assert "run  2/3" not in done.stdout
