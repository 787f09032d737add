"""The `kmschaos` command line as a user meets it: usage errors, help, the fault list.

Every command here runs the real console module in a subprocess, in a tmp folder, and
must fail (or finish) before any cluster is started, so these tests are fast.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends import BACKENDS
from harness.toolchain import repo_root

ONE_SITE = repo_root() / "scenarios" / "topologies" / "one-site.yaml"
FAULT_NAMES = (
    "refuse",
    "reset",
    "blackhole",
    "stall",
    "kill",
    "restart",
    "unreachable",
    "latency",
    "bandwidth",
    "flap",
    "partition",
    "isolate",
    "site-down",
    "wipe",
    "replication-lag",
    "replication-pause",
    "site-latency",
    "cert-expired",
    "cert-not-yet-valid",
    "cert-wrong-name",
    "cert-untrusted",
    "client-cert-rejected",
    "tls-stall",
    "idle-reap",
    "lost-response",
    "clock-skew",
    "lb-down",
    "lb-stall",
)

BAD_ORDER = """\
name: bad
sites:
  site-a:
    replicas: [kms-a, kms-b, kms-c]
clients:
  vc-a:
    site: site-a
    order: [kms-a, kms-x, kms-c]
"""


def kmschaos(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "KMSCHAOS_STATE_DIR"}
    base["KMSCHAOS_REGISTRY"] = str(cwd / "registry")  # never touch the user's registry
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """stderr must be exactly one `kmschaos: ...` line, no traceback."""
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kmschaos: ")
    return lines[0]


def assert_nothing_started(tmp_path: Path) -> None:
    assert not (tmp_path / ".kmschaos").exists()
    assert not (tmp_path / "registry").exists()


# ---- bad input ----------------------------------------------------------------------------


def test_up_with_unknown_replica_in_order(tmp_path: Path) -> None:
    (tmp_path / "BAD.yaml").write_text(BAD_ORDER)
    r = kmschaos(tmp_path, "up", "BAD.yaml")
    assert r.returncode == 2
    line = one_error_line(r)
    assert line == (
        "kmschaos: BAD.yaml: clients.vc-a.order[1]: "
        "unknown replica 'kms-x' (known: kms-a, kms-b, kms-c)"
    )
    assert r.stdout == ""
    assert_nothing_started(tmp_path)


def test_up_with_yaml_syntax_error_is_one_line_with_line_number(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("sites:\n  site-a:\n    replicas: [kms-a\nclients:\n")
    r = kmschaos(tmp_path, "up", "broken.yaml")
    assert r.returncode == 2
    line = one_error_line(r)
    assert re.match(r"kmschaos: broken\.yaml: line \d+, column \d+: invalid YAML: ", line)
    assert_nothing_started(tmp_path)


def test_up_with_missing_file(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "up", "missing.yaml")
    assert r.returncode == 2
    assert one_error_line(r) == "kmschaos: missing.yaml: file not found"
    assert_nothing_started(tmp_path)


def test_up_with_invalid_time_scale_override(tmp_path: Path) -> None:
    # --backend bogus too: should --time-scale ever be accepted again, `up` still stops
    # at the backend check (with another message) instead of starting a cluster.
    r = kmschaos(tmp_path, "up", str(ONE_SITE), "--time-scale", "-1", "--backend", "bogus")
    assert r.returncode == 2
    assert one_error_line(r) == (f"kmschaos: {ONE_SITE}: time_scale: must be > 0 and <= 10, got -1")
    assert_nothing_started(tmp_path)


def test_up_with_unknown_backend(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "up", str(ONE_SITE), "--backend", "podman")
    assert r.returncode == 2
    assert one_error_line(r) == (
        f"kmschaos: --backend podman: unknown backend (available: {', '.join(BACKENDS)})"
    )
    assert_nothing_started(tmp_path)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_status_without_a_cluster_hints_at_up(tmp_path: Path, extra: list[str]) -> None:
    r = kmschaos(tmp_path, "status", *extra)
    assert r.returncode == 1
    line = one_error_line(r)
    assert "no cluster state in " in line
    assert str(tmp_path / ".kmschaos") in line
    assert "`kmschaos up TOPOLOGY`" in line
    assert r.stdout == ""
    assert_nothing_started(tmp_path)


def test_status_honours_state_dir_option_and_env(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "status", "--state-dir", "elsewhere")
    assert r.returncode == 1
    assert f"no cluster state in {tmp_path / 'elsewhere'}/" in one_error_line(r)
    r = kmschaos(tmp_path, "status", env={"KMSCHAOS_STATE_DIR": str(tmp_path / "from-env")})
    assert r.returncode == 1
    assert f"no cluster state in {tmp_path / 'from-env'}/" in one_error_line(r)
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "from-env").exists()


def test_heal_without_id_or_all(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "heal")
    assert r.returncode == 2
    assert one_error_line(r) == (
        "kmschaos: say which fault to heal: kmschaos heal ID, or kmschaos heal --all"
    )
    assert_nothing_started(tmp_path)


@pytest.mark.parametrize("args", [["heal", "--all"], ["heal", "f-1"], ["down"]])
def test_commands_needing_a_cluster_fail_cleanly_without_one(
    tmp_path: Path, args: list[str]
) -> None:
    r = kmschaos(tmp_path, *args)
    assert r.returncode == 1
    assert "`kmschaos up TOPOLOGY`" in one_error_line(r)
    assert_nothing_started(tmp_path)


def test_inject_unknown_fault_names_known_faults(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "inject", "bogus", "kms-a")
    assert r.returncode == 2
    line = one_error_line(r)
    assert line == (
        f"kmschaos: unknown fault 'bogus' (known: {', '.join(FAULT_NAMES)}); see `kmschaos faults`"
    )
    assert_nothing_started(tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["idle-reap", "kms-a", "--after", "-1"],
            "kmschaos: idle-reap: after must be a number of seconds > 0, got -1.0",
        ),
        (
            ["clock-skew", "kms-a", "--offset", "3600"],
            "kmschaos: clock-skew: offset must be a signed duration with a unit, e.g. +2h, "
            "-90s, -1d, +2y, got '3600'",
        ),
        (
            ["clock-skew", "kms-a", "--offset", "-2x"],
            "kmschaos: clock-skew: offset must be a signed duration with a unit",
        ),
        (
            ["clock-skew", "kms-a"],
            "kmschaos: clock-skew: needs --offset ±DURATION",
        ),
    ],
)
def test_inject_refuses_a_bad_fault_parameter_before_anything(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    r = kmschaos(tmp_path, "inject", *argv)
    assert r.returncode == 2, r.stderr
    assert one_error_line(r).startswith(message)
    assert_nothing_started(tmp_path)


def test_inject_known_fault_without_a_cluster(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "inject", "refuse", "kms-a")
    assert r.returncode == 1
    assert "`kmschaos up TOPOLOGY`" in one_error_line(r)
    assert_nothing_started(tmp_path)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus-command"],
        ["inject", "refuse"],
        ["inject", "latency", "kms-a", "--ms", "lots"],
        ["up"],
        ["status", "--nope"],
    ],
)
def test_argument_errors_exit_2_with_usage(tmp_path: Path, args: list[str]) -> None:
    r = kmschaos(tmp_path, *args)
    assert r.returncode == 2
    assert "usage: kmschaos" in r.stderr
    assert "Traceback" not in r.stderr
    assert_nothing_started(tmp_path)


# ---- help and the fault list -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command, options",
    [
        ([], ["--state-dir", "up", "status", "inject", "heal", "down", "run", "faults"]),
        (["up"], ["TOPOLOGY", "--state-dir", "--time-scale", "--backend"]),
        (["status"], ["--json", "--state-dir"]),
        (
            ["inject"],
            [
                "FAULT",
                "TARGET",
                "--ms",
                "--jitter",
                "--kbps",
                "--after-ms",
                "--down-s",
                "--up-s",
                "--state-dir",
            ],
        ),
        (["heal"], ["ID", "--all", "--state-dir"]),
        (["down"], ["--all", "--state-dir"]),
        (["run"], ["SCENARIO", "--report-dir", "--time-scale", "-n", "--backend"]),
        (["faults"], ["usage: kmschaos faults"]),
    ],
    ids=["kmschaos", "up", "status", "inject", "heal", "down", "run", "faults"],
)
def test_help_exits_0_and_names_key_options(
    tmp_path: Path, command: list[str], options: list[str]
) -> None:
    r = kmschaos(tmp_path, *command, "--help")
    assert r.returncode == 0
    assert r.stderr == ""
    assert r.stdout.startswith(f"usage: kmschaos{''.join(' ' + c for c in command)}")
    for opt in options:
        assert opt in r.stdout, f"{opt} missing from `kmschaos {' '.join(command)} --help`"
    assert_nothing_started(tmp_path)


def test_inject_help_lists_every_fault(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "inject", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # argparse wraps lines
    for name in FAULT_NAMES:
        assert re.search(rf"\b{name}\b", text), name


def test_faults_lists_every_fault(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "faults")
    assert r.returncode == 0
    assert r.stderr == ""
    # a row's first cell: "│ refuse      │ ..." (wrapped description lines have it blank)
    first_column = re.findall(r"^[│|] ([a-z-]+) +[│|]", r.stdout, flags=re.MULTILINE)
    # each fault is a row of its own, in the catalogue's order
    assert first_column == list(FAULT_NAMES)
    for flag in ("--ms", "--kbps", "--after-ms", "--down-s"):
        assert flag in r.stdout
    assert_nothing_started(tmp_path)


TOPOLOGIES = Path(__file__).resolve().parent.parent / "scenarios" / "topologies"


@pytest.mark.parametrize(
    ("topology", "args", "status", "rule"),
    [
        ("single-kms.yaml", (), 1, "single-kms"),
        ("two-sites-misordered.yaml", (), 1, "remote-before-local"),
        ("one-site.yaml", (), 0, "unreplicated-copies"),  # a warning only
        ("one-site.yaml", ("--strict",), 1, "unreplicated-copies"),
        ("two-sites-async.yaml", (), 0, None),
    ],
)
def test_lint_exit_status_and_findings(
    tmp_path: Path, topology: str, args: tuple[str, ...], status: int, rule: str | None
) -> None:
    r = kmschaos(tmp_path, "lint", str(TOPOLOGIES / topology), *args)
    assert r.returncode == status, r.stdout + r.stderr
    if rule is None:
        assert r.stdout.strip().endswith("no findings")
    else:
        assert f": {rule}: " in r.stdout
    assert_nothing_started(tmp_path)


def test_lint_of_an_invalid_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_ORDER)
    r = kmschaos(tmp_path, "lint", str(bad))
    assert r.returncode == 2
    assert "clients.vc-a.order[1]" in one_error_line(r)
