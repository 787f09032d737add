"""`kmschaos matrix`: argument validation, rows from verdicts, rendering, and real runs.

Validation tests must fail before anything starts (no cluster, no report). The
integration tests run real cells (fresh clusters, real PyKMIP and Toxiproxy) at time
scale 0.05, in a private registry so that what they leave behind is theirs alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import registry
from harness.backends import BACKENDS
from harness.history import Attempt, Complete, FaultEvent, History, OpOutcome
from harness.matrix import (
    COLUMNS,
    CellResult,
    add_matrix_parser,
    cell_columns,
    cmd_matrix,
    main,
    render_markdown,
    render_table,
    summarise_cell,
    window_facts,
)
from harness.matrix.cell import FAILOVERS
from harness.store import CellFolder, StateFolder
from harness.toolchain import repo_root
from harness.wait import wait_until

ONE_SITE = str(repo_root() / "scenarios" / "topologies" / "one-site.yaml")
SCALE = "0.05"


# ---- arguments --------------------------------------------------------------------------


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--faults", "refuse,nope"],
            "--faults: unknown fault 'nope' (known: refuse, reset, blackhole, stall, kill, "
            "unreachable, flap, cert-expired, cert-not-yet-valid, cert-wrong-name, "
            "cert-untrusted, client-cert-rejected, tls-stall)",
        ),
        (["--faults", "latency"], "--faults: 'latency' is not a matrix fault"),
        (["--faults", " , "], "--faults: empty"),
        (
            ["--policies", "vcenter,jce"],
            "--policies: unknown policy 'jce' (known: vcenter, pykmip, mongodb, ontap, "
            "kmip-go, retrying)",
        ),
        (["--target", "kms-x"], "--target kms-x: unknown replica in"),
        (["-j", "0"], "-j 0: must be at least 1"),
        (["--backend", "k8s"], f"--backend k8s: unknown (available: {', '.join(BACKENDS)})"),
        (["--time-scale", "0"], "time_scale: must be > 0 and <= 10, got 0"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    report = tmp_path / "report"
    code, err = run_main(capsys, ONE_SITE, "--report-dir", str(report), *argv)
    assert code == 2
    assert message in err
    assert err.startswith("kmschaos: ") and "Traceback" not in err
    assert not report.exists()


def test_topology_errors_name_the_file_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    code, err = run_main(capsys, str(missing), "--report-dir", str(tmp_path / "r"))
    assert code == 2 and f"{missing}: file not found" in err

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sites:\n  site-a:\n    replicas: [kms-a, kms-b]\n"
        "clients:\n  vc-a:\n    site: site-a\n    policy: jce\n"
    )
    code, err = run_main(capsys, str(bad), "--report-dir", str(tmp_path / "r"))
    assert code == 2 and f"{bad}: clients.vc-a.policy: unknown policy 'jce'" in err


def test_target_must_be_in_the_clients_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(
        "sites:\n  site-a:\n    replicas: [kms-a, kms-b, kms-c]\n"
        "clients:\n  vc-a:\n    site: site-a\n    order: [kms-a, kms-b]\n"
    )
    code, err = run_main(capsys, str(topo), "--target", "kms-c")
    assert code == 2
    assert "--target kms-c: not in the order of client vc-a (kms-a, kms-b)" in err


def test_the_subcommand_plugs_into_any_parser() -> None:
    ap = argparse.ArgumentParser(prog="kmschaos")
    sub = ap.add_subparsers(dest="command", required=True)
    add_matrix_parser(sub)
    args = ap.parse_args(["matrix", ONE_SITE, "-j", "3", "--time-scale", SCALE, "--json"])
    assert args.func is cmd_matrix
    assert (args.jobs, args.time_scale, args.json) == (3, 0.05, True)
    assert args.policies == "vcenter,pykmip"
    assert args.faults == "refuse,reset,blackhole,stall,kill,unreachable"
    assert args.report_dir == "reports/matrix" and args.backend == "local"
    assert "matrix" in ap.format_help()


def test_a_fault_the_host_cannot_run_is_unsupported_and_starts_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    why = "needs root (or CAP_NET_ADMIN) and iptables"
    monkeypatch.setattr("harness.cluster.local.firewall_capability", lambda: why)
    monkeypatch.setattr("harness.faults.unreachable.firewall_capability", lambda: why)
    report = tmp_path / "report"
    code = main([ONE_SITE, "--faults", "unreachable", "--report-dir", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads((report / "matrix.json").read_text())
    assert [(c["cell"], c["status"]) for c in doc["cells"]] == [
        ("unreachable-vcenter", "unsupported"),
        ("unreachable-pykmip", "unsupported"),
    ]
    assert doc["cells"][0]["reason"] == f"fault 'unreachable' cannot run here: {why}"
    assert not (report / "cells").exists(), "a cell was started"
    assert "unsupported: fault 'unreachable' cannot run here" in out


# ---- rows from verdicts --------------------------------------------------------------------


def failover_verdict(status: str, failover_s: float | None, **client: Any) -> dict[str, Any]:
    c = {"status": status, "failover_s": failover_s, "detect_s": failover_s, **client}
    return {
        "name": "failover",
        "status": status,
        "summary": "…",
        "figures": {"baseline_p50_s": 0.01, "refuse-kms-a-1": {"clients": {"vc-a": c}}},
    }


def availability_verdict(ok: int, ops: int) -> dict[str, Any]:
    return {
        "name": "availability",
        "status": "pass" if ok == ops else "fail",
        "summary": "…",
        "figures": {"union": {"ops": ops, "ok": ok}},
    }


def verdict(name: str, status: str, **figures: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "summary": f"{name} {status}", "figures": figures}


def test_a_clean_cell_passes() -> None:
    r = summarise_cell(
        "vcenter",
        "refuse",
        "kms-a",
        {
            "failover": failover_verdict("pass", 0.021, expected_wait_s=0.0),
            "order": verdict("order", "pass", violations=0),
            "availability": availability_verdict(4, 4),
        },
        replicated=False,
        window={"detect_s": 0.05, "ok_ops": 4, "ok_failing_over": 4, "first_failed": None},
    )
    assert (r.status, r.reason) == ("pass", "")
    assert (r.failover_s, r.detect_s, r.failed_ops, r.window_ops) == (0.021, 0.05, 0, 4)
    assert cell_columns(r) == {
        "fault": "refuse",
        "policy": "vcenter",
        "failover": "0.021 s",
        "detect": "0.050 s",
        "paid failover": "4 / 4",
        "failed ops": "0 / 4",
        "order": "yes",
        "keys lost": "n/a (no replication)",
        "status": "pass",
    }


def test_failed_operations_are_a_finding_that_says_why() -> None:
    why = "timeout on the open connection to kms-a, no failover"
    r = summarise_cell(
        "pykmip",
        "blackhole",
        "kms-a",
        {
            "failover": failover_verdict("pass", 3.04),
            "order": verdict("order", "pass", violations=0),
            "availability": availability_verdict(2, 3),
        },
        replicated=False,
        window={"detect_s": 6.07, "ok_ops": 2, "ok_failing_over": 1, "first_failed": {"why": why}},
    )
    assert r.status == "finding"
    assert r.reason == f"1/3 ops failed ({why})"
    assert cell_columns(r)["failed ops"] == "1 / 3"
    assert cell_columns(r)["detect"] == "6.070 s"


def test_a_failover_out_of_bounds_or_never_is_a_finding() -> None:
    slow = summarise_cell(
        "vcenter",
        "blackhole",
        "kms-a",
        {"failover": failover_verdict("fail", 9.5, lower_s=2.9, upper_s=3.5)},
        replicated=False,
    )
    assert slow.reason == "failover 9.500 s above its bound 3.500 s"
    never = summarise_cell(
        "vcenter",
        "blackhole",
        "kms-a",
        {"failover": failover_verdict("fail", None)},
        replicated=False,
    )
    assert never.reason == "never failed over" and cell_columns(never)["failover"] == "never"


def test_keys_lost_are_counted_only_when_the_topology_replicates() -> None:
    verdicts = {
        "availability": availability_verdict(10, 10),
        "durability": verdict("durability", "fail", acknowledged=12, lost_keys=2),
    }
    lost = summarise_cell("vcenter", "kill", "kms-a", verdicts, replicated=True)
    assert lost.status == "finding" and lost.reason == "2 acknowledged key(s) lost"
    assert cell_columns(lost)["keys lost"] == "2 / 12"
    kept = summarise_cell(
        "vcenter",
        "kill",
        "kms-a",
        {"durability": verdict("durability", "pass", acknowledged=12, lost_keys=0)},
        replicated=True,
    )
    assert cell_columns(kept)["keys lost"] == "0 / 12" and kept.status == "pass"
    unreplicated = summarise_cell("vcenter", "kill", "kms-a", verdicts, replicated=False)
    assert cell_columns(unreplicated)["keys lost"] == "n/a (no replication)"
    assert unreplicated.status == "pass"


def test_a_stalled_workload_is_a_finding_and_unknown_verdicts_are_unknown() -> None:
    stalled = summarise_cell(
        "vcenter", "refuse", "kms-a", {}, replicated=False, stalled="timed out after 36 s"
    )
    assert (stalled.status, stalled.reason) == ("finding", "timed out after 36 s")
    unknown = summarise_cell(
        "vcenter", "refuse", "kms-a", {"order": verdict("order", "unknown")}, replicated=False
    )
    assert (unknown.status, unknown.reason) == ("unknown", "order: order unknown")


# ---- what a window cost, from the operations -------------------------------------------------


def op(
    n: int, start: float, end: float, outcome: OpOutcome, served: str | None, *trail: Any
) -> Complete:
    """An operation; each of `trail` is (server, start, end, outcome, reused)."""
    attempts = [Attempt(s, f"{s}:1", a, b, o, reused=reused) for s, a, b, o, reused in trail]
    return Complete(
        f"vc-a#0:{n}", "vc-a", "vcenter", "locate", start, end, outcome, served, None, attempts
    )


def test_detect_counts_the_operation_in_flight_when_the_fault_hit() -> None:
    events = [
        op(1, 0.0, 0.1, "ok", "kms-a", ("kms-a", 0.0, 0.1, "ok", False)),
        op(
            2,
            0.9,
            4.1,
            "ok",
            "kms-b",
            ("kms-a", 0.9, 4.0, "timeout", False),
            ("kms-b", 4.0, 4.1, "ok", False),
        ),
        FaultEvent("bh-1", "inject", "blackhole", "kms-a", 1.0, {"replicas": ["kms-a"]}),
        op(
            3,
            4.1,
            7.2,
            "ok",
            "kms-b",
            ("kms-a", 4.1, 7.1, "timeout", False),
            ("kms-b", 7.1, 7.2, "ok", False),
        ),
        op(4, 7.2, 7.3, "ok", "kms-a", ("kms-a", 7.2, 7.3, "ok", False)),
        FaultEvent("bh-1", "heal", "blackhole", "kms-a", 7.25, {}),
    ]
    facts = window_facts(events, {"vc-a": ["kms-a", "kms-b", "kms-c"]})
    assert facts["detect_s"] == pytest.approx(3.1)
    assert (facts["ok_ops"], facts["ok_failing_over"]) == (2, 1)
    assert facts["first_failed"] is None


def test_the_first_failed_operation_on_an_open_connection_is_explained() -> None:
    events = [
        FaultEvent("bh-1", "inject", "blackhole", "kms-a", 1.0, {"replicas": ["kms-a"]}),
        op(1, 0.95, 4.0, "fail", "kms-a", ("kms-a", 0.95, 4.0, "timeout", True)),
        op(
            2,
            4.0,
            7.1,
            "ok",
            "kms-b",
            ("kms-a", 4.0, 7.0, "tls-error", False),
            ("kms-b", 7.0, 7.1, "ok", False),
        ),
    ]
    facts = window_facts(events, {"vc-a": ["kms-a", "kms-b"]})
    assert facts["first_failed"]["why"] == "timeout on the open connection to kms-a, no failover"
    assert facts["first_failed"]["op_id"] == "vc-a#0:1"
    assert facts["detect_s"] == pytest.approx(6.1)


# ---- rendering ---------------------------------------------------------------------------------


def hand_built_rows() -> list[CellResult]:
    return [
        CellResult(
            "vcenter", "blackhole", "kms-a", "pass", failover_s=3.021, detect_s=3.05,
            failed_ops=0, window_ops=3, ok_ops=3, ok_failing_over=3, order="pass",
        ),
        CellResult(
            "pykmip", "blackhole", "kms-a", "finding",
            reason="1/3 ops failed (timeout on the open connection to kms-a, no failover)",
            failover_s=3.04, detect_s=6.07, failed_ops=1, window_ops=3, ok_ops=2,
            ok_failing_over=1, order="pass",
        ),
        CellResult(
            "vcenter", "unreachable", "kms-a", "unsupported",
            reason="fault 'unreachable' cannot run here: iptables not found",
        ),
        CellResult(
            "vcenter", "kill", "kms-a", "pass", failover_s=0.04, detect_s=0.08, failed_ops=0,
            window_ops=2, order="fail", order_violations=1, replicated=True, keys_lost=0,
            keys_acknowledged=9, durability="pass",
        ),
        CellResult("pykmip", "kill", "kms-a", "crashed", reason="ClusterError: no port"),
    ]  # fmt: skip


DOC = {
    "topology": "one-site",
    "target": "kms-a",
    "backend": "local",
    "time_scale": 0.05,
    "timeouts": {"response_s": 3.0, "connect_s": 0.25},
    "clients": ["vc-a"],
    "duration_s": 42.0,
    "command": "kmschaos matrix one-site.yaml --time-scale 0.05",
}


def test_markdown_has_one_row_per_cell_and_escapes_pipes() -> None:
    rows = hand_built_rows()
    rows[1].reason += " | a pipe"
    md = render_markdown(DOC, rows)
    lines = md.splitlines()
    header = "| " + " | ".join(COLUMNS) + " |"
    at = lines.index(header)
    body = lines[at + 2 : at + 2 + len(rows)]
    assert lines[at + 1] == "|" + "---|" * len(COLUMNS)
    assert body[0] == (
        "| blackhole | vcenter | 3.021 s | 3.050 s | 3 / 3 | 0 / 3 | yes | "
        "n/a (no replication) | pass |"
    )
    assert body[1].startswith("| blackhole | pykmip | 3.040 s | 6.070 s | 1 / 2 | 1 / 3 | yes |")
    assert body[1].endswith("no failover) \\| a pipe |")
    assert body[2] == (
        "| unreachable | vcenter | - | - | - | - | - | - | "
        "unsupported: fault 'unreachable' cannot run here: iptables not found |"
    )
    assert "| 0 / 9 |" in body[3] and "| no (1) |" in body[3]
    assert body[4].endswith("| crashed: ClusterError: no port |")
    assert "response timeout 3 s, connect timeout 0.25 s" in md
    assert all(line.count(" | ") == len(COLUMNS) - 1 for line in body[:1])


def test_the_rich_table_shows_every_cell() -> None:
    console = Console(record=True, width=250)
    console.print(render_table(DOC, hand_built_rows()))
    text = console.export_text()
    assert "resilience matrix: one-site (target kms-a, local backend, time scale 0.05)" in text
    for needle in (
        "3.021 s",
        "6.070 s",
        "finding: 1/3 ops failed",
        "unsupported: fault 'unreachable' cannot run here",
        "crashed: ClusterError: no port",
        "n/a (no replication)",
        "0 / 9",
    ):
        assert needle in text, needle


# ---- real runs ----------------------------------------------------------------------------


@pytest.fixture
def private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(tmp_path / "registry"))
    yield dict(os.environ)
    left = registry.reap(all_runs=True)
    assert not left.runs and not left.processes and not left.rules, f"left behind: {left}"


@pytest.mark.integration
def test_two_by_two_matrix_on_one_site(
    private_registry: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "matrix"
    code = main(
        [
            ONE_SITE,
            "--policies",
            "vcenter,pykmip",
            "--faults",
            "refuse,blackhole",
            "--time-scale",
            SCALE,
            "--report-dir",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads((report / "matrix.json").read_text())
    cells = {c["cell"]: c for c in doc["cells"]}
    assert len(doc["cells"]) == 4
    assert set(cells) == {
        "refuse-vcenter",
        "refuse-pykmip",
        "blackhole-vcenter",
        "blackhole-pykmip",
    }
    assert doc["timeouts"]["response_s"] == pytest.approx(3.0)
    response = doc["timeouts"]["response_s"]

    # refuse: the next replica at once; a blackhole: one response timeout per request
    assert cells["refuse-vcenter"]["status"] == "pass"
    assert cells["refuse-vcenter"]["failover_s"] < 0.5
    bh = cells["blackhole-vcenter"]
    assert bh["status"] == "pass", bh["reason"]
    assert response - 0.1 <= bh["failover_s"] <= response + 0.75
    assert bh["failed_ops"] == 0 and bh["ok_failing_over"] == bh["ok_ops"] >= 1
    # PyKMIP's client loses the request on its open connection, then pays the timeout
    # again to reconnect: a finding, not a crash
    pk = cells["blackhole-pykmip"]
    assert pk["status"] == "finding" and pk["failed_ops"] >= 1, pk
    assert pk["detect_s"] >= 2 * response - 0.1
    for c in doc["cells"]:
        assert c["order"] == "pass" and c["replicated"] is False
        assert Path(c["history"]).is_file()
        assert (report / "cells" / c["cell"] / "history.jsonl").is_file()

    md = (report / "matrix.md").read_text()
    assert md.count("| n/a (no replication) |") == 4
    for line in ("[ 1/4]", "[ 4/4]", "resilience matrix: one-site"):
        assert line in out


@pytest.mark.integration
def test_interrupt_heals_stops_and_prints_the_partial_table(
    private_registry: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "matrix"
    matrix = [
        sys.executable,
        "-m",
        "harness.matrix",
        ONE_SITE,
        "--policies",
        "vcenter",
        "--faults",
        "blackhole,refuse",
        "--time-scale",
        SCALE,
        "-j",
        "1",
        "--report-dir",
        str(report),
    ]
    # started with SIGINT ignored, as a background job of a script starts it (and every
    # test run launched that way): the matrix must stop on SIGINT all the same
    proc = subprocess.Popen(
        ["sh", "-c", f"trap '' INT; exec {shlex.join(matrix)}"],
        env=private_registry,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cell = CellFolder(report / "cells" / "blackhole-vcenter")
    faults = StateFolder(cell.cluster).faults

    def in_effect() -> bool:
        """The blackhole's inject event is in the cell's history (its toxics are in
        place) and its record is still in the state folder (its heal has not ended)."""
        phases = [e.phase for e in History.load(cell.history).faults()]
        return phases == ["inject"] and any(faults.glob("*.json"))

    try:
        # SIGINT lands in the fault window: it ends once FAILOVERS requests begun after the
        # injection are served elsewhere, and vcenter walks its list from kms-a for every
        # request (a 3 s response timeout each at this time scale): 6 s at least
        wait_until(in_effect, 60, "the blackhole in effect", transient=(OSError, ValueError))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "blackhole" in out
    doc = json.loads((report / "matrix.json").read_text())
    assert doc["interrupted"] is True
    status = {c["cell"]: c["status"] for c in doc["cells"]}
    assert status == {"blackhole-vcenter": "interrupted", "refuse-vcenter": "not run"}
    assert not any(faults.glob("*.json")), "the fault was not healed"
    # the interrupt cut the window short: healed before it could end on its own
    history = History.load(cell.history)
    inject, heal = history.faults()
    served = [
        c
        for c in history.completes()
        if c.start >= inject.t and c.outcome == "ok" and c.served_by != inject.target
    ]
    assert heal.phase == "heal" and len(served) < FAILOVERS, served
    state = json.loads((faults.parent / "state.json").read_text())
    assert state["status"] == "down"
