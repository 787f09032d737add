"""Client lifecycle steps in rehearsals (`restart-client`, `stop-client`, `start-client`):
the validator's errors (file, line, field; `kmschaos run` exits 2 and starts nothing),
the model and the schema, and (integration) the shipped MongoDB rehearsal and a stop and
start on a real cluster, judged from the history: which replicas each operation tried,
when, and whether a stopped client stayed quiet."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.history import ClientEvent, Complete
from harness.rehearsal import (
    Rehearsal,
    RehearsalError,
    RehearsalFailure,
    RestartClientStep,
    StartClientStep,
    StopClientStep,
    load_rehearsal,
    parse_rehearsal,
    rehearsal_schema,
    run_rehearsal,
)
from harness.scenario import Scenario
from harness.toolchain import repo_root

REHEARSALS = repo_root() / "scenarios" / "rehearsals"
MONGODB = REHEARSALS / "mongodb-restart-during-outage.yaml"
TOPOLOGY = "two-sites-mongodb.yaml"
HEAD = f"name: r\ntopology: {TOPOLOGY}\nworkload: {{clients: [mongo], rate_per_s: 20}}\nsteps:\n"


def load(steps: str, head: str = HEAD) -> Rehearsal:
    return parse_rehearsal(head + textwrap.dedent(steps), "r.yaml", base_dir=REHEARSALS)


def error_of(steps: str, head: str = HEAD) -> str:
    with pytest.raises(RehearsalError) as e:
        load(steps, head)
    assert "\n" not in str(e.value)
    return str(e.value)


# ---- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "  - restart-client: vc-x\n",
            "r.yaml: line 5: steps[0].restart-client: unknown client 'vc-x' (known: mongo, vc-a)",
        ),
        (
            "  - stop-client: vc-a\n",
            "r.yaml: line 5: steps[0].stop-client: client 'vc-a' is not in the workload "
            "(workload clients: mongo)",
        ),
        (
            "  - restart-client: [mongo]\n",
            "r.yaml: line 5: steps[0].restart-client: must be a client name, got a list "
            "(clients: mongo, vc-a)",
        ),
        (
            "  - wait: 1s\n  - start-client: mongo\n",
            "r.yaml: line 6: steps[1].start-client: client 'mongo' is not stopped: "
            "start-client follows a stop-client of the same client",
        ),
        (
            "  - stop-client: mongo\n  - wait: 1s\n  - stop-client: mongo\n",
            "r.yaml: line 7: steps[2].stop-client: client 'mongo' is already stopped by "
            "steps[0]: start it first with start-client",
        ),
        (
            "  - stop-client: mongo\n  - restart-client: mongo\n",
            "r.yaml: line 6: steps[1].restart-client: client 'mongo' is stopped by steps[0]: "
            "start it first with start-client",
        ),
        (
            "  - stop-client: mongo\n  - start-client: mongo\n  - start-client: mongo\n",
            "r.yaml: line 7: steps[2].start-client: client 'mongo' is not stopped",
        ),
        (
            "  - restart_client: mongo\n",
            "r.yaml: line 5: steps[0].restart_client: unknown step 'restart_client'",
        ),
    ],
)
def test_client_step_errors_name_file_line_and_field(steps: str, expected: str) -> None:
    assert error_of(steps).startswith(expected)


def test_client_steps_need_a_workload() -> None:
    head = f"topology: {TOPOLOGY}\nsteps:\n"
    assert error_of("  - restart-client: mongo\n", head) == (
        "r.yaml: line 3: steps[0].restart-client: restart-client acts on a client of the "
        "workload: add a `workload:`"
    )


def test_client_steps_are_modelled_in_order() -> None:
    r = load(
        """\
        - restart-client: mongo
        - stop-client: mongo
        - wait: 1s
        - start-client: mongo
        - stop-client: mongo
        """
    )
    kinds = [(type(s), s.line) for s in r.steps]
    assert kinds[:2] == [(RestartClientStep, 5), (StopClientStep, 6)]
    assert kinds[3:] == [(StartClientStep, 8), (StopClientStep, 9)]  # stopped at the end: fine
    assert [s.describe() for s in r.steps] == [
        "restart-client mongo",
        "stop-client mongo",
        "wait 1s",
        "start-client mongo",
        "stop-client mongo",
    ]


def test_the_schema_documents_the_client_steps() -> None:
    step = rehearsal_schema()["properties"]["steps"]["items"]
    for kind in ("restart-client", "stop-client", "start-client"):
        assert step["properties"][kind]["type"] == "string", kind
        assert "client" in step["properties"][kind]["description"]


def test_the_shipped_mongodb_rehearsal_loads() -> None:
    r = load_rehearsal(MONGODB)
    assert r.topology.clients["mongo"].policy.selection == "at-start"
    assert r.topology.clients["mongo"].order[:3] == ("kms-a", "kms-b", "kms-c")
    (restart,) = [s for s in r.steps if isinstance(s, RestartClientStep)]
    assert restart.client == "mongo"


def test_kmschaos_run_with_a_bad_client_step_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "rehearsals"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        f"topology: {TOPOLOGY}\nworkload: {{clients: [mongo]}}\nsteps:\n"
        "  - wait: 1s\n  - start-client: mongo\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KMSCHAOS_STATE_DIR"}
    env["KMSCHAOS_REGISTRY"] = str(tmp_path / "registry")
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "rehearsals/bad.yaml"]
        + ["--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert (
        "rehearsals/bad.yaml: line 5: steps[1].start-client: client 'mongo' is not stopped"
    ) in r.stdout.replace("\n", " "), r.stdout
    assert "nothing was started" in r.stdout
    assert not (tmp_path / ".kmschaos").exists() and not (tmp_path / "registry").exists()


# ---- on a real cluster -------------------------------------------------------------------


def _ops(sc: Scenario, client: str) -> list[Complete]:
    return sorted((c for c in sc.history.completes() if c.client == client), key=lambda c: c.start)


def _events(sc: Scenario, client: str) -> list[ClientEvent]:
    return [e for e in sc.history.events() if isinstance(e, ClientEvent) and e.client == client]


@pytest.mark.integration
@pytest.mark.kms_topology(TOPOLOGY)
def test_mongodb_is_served_by_site_b_only_after_its_restart(kms_scenario: Scenario) -> None:
    sc = kms_scenario
    r = load_rehearsal(MONGODB)
    done = run_rehearsal(r, sc, seed=r.seed or 0)
    assert sc.outcome.regressions() == []
    (restart,) = _events(sc, "mongo")
    assert restart.action == "restart"
    injected = next(f.t for f in sc.history.faults() if f.phase == "inject")
    healed = next(f.t for f in sc.history.faults() if f.phase == "heal")
    site_a = {"kms-a", "kms-b", "kms-c"}
    mongo = _ops(sc, "mongo")
    before = [c for c in mongo if c.start < injected]
    # before the power cut: kms-a, chosen at start (an op started as it was cut fails)
    assert sum(c.outcome == "ok" for c in before) >= 10
    assert all([a.server for a in c.attempts] == ["kms-a"] for c in before[1:])
    # during the outage, before the restart: every op fails, on kms-a alone (no walk)
    down = [c for c in mongo if injected < c.start and c.end < restart.t]
    assert len(down) >= 10
    assert all(c.outcome != "ok" and [a.server for a in c.attempts] == ["kms-a"] for c in down)
    # the first op after the restart walks site A, then is served by site B
    after = [c for c in mongo if restart.t <= c.start and c.end < healed]
    first = after[0]
    assert first.outcome == "ok" and first.served_by == "kms-d"
    assert [a.server for a in first.attempts] == ["kms-a", "kms-b", "kms-c", "kms-d"]
    assert all(c.outcome == "ok" and c.served_by == "kms-d" for c in after)
    assert not any(a.server in site_a for c in after[1:] for a in c.attempts)  # kept kms-d
    # the failover checker: a fail before the restart, a pass to site B after it
    verdicts = sc.outcome.verdicts
    assert verdicts["steps[3].failover"].status == "fail"
    assert verdicts["steps[3].failover"].summary.startswith("mongo did not fail over")
    assert "chooses its server only when it starts" in verdicts["steps[3].failover"].summary
    said = verdicts["steps[3].failover"].details
    assert any("mongo: FAIL never failed over" in d for d in said), said
    assert verdicts["steps[5].failover"].status == "pass"
    # the figures measured around the restart agree with the history
    (fig,) = done.figures["clients"]
    assert fig["action"] == "restart-client" and fig["client"] == "mongo"
    assert fig["failed_in_a_row_before"] >= len(down)
    assert fig["first_ok_served_by"] == "kms-d" and fig["first_ok_op"] == first.op_id
    assert 0 < fig["first_ok_s"] < 1.0
    assert fig["first_ok_tried"][0] == "kms-a refused"


STOP_START = """\
name: stop-start
topology: two-replicas-async.yaml
workload: {clients: [admin-a], rate_per_s: 20}
steps:
  - wait: 1s
  - stop-client: admin-a
  - wait: 1s
  - expect: {convergence: pass}
  - wait: 1s
  - start-client: admin-a
  - wait: 1s
  - expect: {order: pass}
seed: 3
"""


@pytest.mark.integration
@pytest.mark.kms_topology("two-replicas-async.yaml")
def test_a_stopped_client_stays_quiet_until_started(kms_scenario: Scenario) -> None:
    """Also across a workload paused for an audit (a fresh workload keeps it stopped)."""
    sc = kms_scenario
    r = parse_rehearsal(STOP_START, "stop-start.yaml", base_dir=REHEARSALS)
    done = run_rehearsal(r, sc, seed=3)
    assert sc.outcome.regressions() == []
    events = _events(sc, "admin-a")
    stop = next(e for e in events if e.action == "stop")
    start = next(e for e in events if e.action == "start")
    assert [e.action for e in events if e.t < start.t].count("stop") == 2  # and after audit
    ops = _ops(sc, "admin-a")
    assert all(not (stop.t < c.start < start.t) for c in ops), "an op while stopped"
    assert any(c.start < stop.t for c in ops) and any(c.start > start.t for c in ops)
    quiet, started = done.figures["clients"]
    assert quiet["ops_started_while_stopped"] == 0
    assert started["first_ok_s"] is not None and started["first_ok_s"] < 1.0


@pytest.mark.integration
@pytest.mark.kms_topology("one-site.yaml")
def test_a_client_step_on_a_client_that_runs_nowhere_fails_at_its_line(
    kms_scenario: Scenario,
) -> None:
    r = parse_rehearsal(
        "topology: one-site.yaml\nworkload: {clients: [vc-a]}\nsteps:\n  - restart-client: vc-a\n",
        "r.yaml",
        base_dir=REHEARSALS,
    )
    bare = dataclasses.replace(r, workload=None)  # as if the workload never started
    with pytest.raises(RehearsalFailure, match=r"r.yaml: line 4: steps\[0\].restart-client: "):
        run_rehearsal(bare, kms_scenario, seed=1)
