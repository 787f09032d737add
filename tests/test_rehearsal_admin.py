"""The rehearsal step `admin` (an administrator's KMIP operation on one replica): the
validator's errors (file, line, field), the model and the schema; and (integration) the
shipped rehearsal `operator-revokes-master-key` on a real cluster: each client shuts
down over its own master key, the one on the other site once replication carried the
revocation to its server."""

from __future__ import annotations

import json
import textwrap

import pytest

from harness.admin import ADMIN_CLIENT, master_of
from harness.history import ClientEvent
from harness.rehearsal import (
    AdminStep,
    Rehearsal,
    RehearsalError,
    load_rehearsal,
    parse_rehearsal,
    rehearsal_schema,
    run_rehearsal,
)
from harness.scenario import Scenario
from harness.toolchain import repo_root

REHEARSALS = repo_root() / "scenarios" / "rehearsals"
SHIPPED = REHEARSALS / "operator-revokes-master-key.yaml"
TOPOLOGY = "two-sites-key-state.yaml"
HEAD = (
    f"name: r\ntopology: {TOPOLOGY}\nworkload: {{clients: [mongo-a, mongo-b], rate_per_s: 20}}\n"
    "steps:\n"
)


def load(steps: str, head: str = HEAD) -> Rehearsal:
    return parse_rehearsal(head + textwrap.dedent(steps), "r.yaml", base_dir=REHEARSALS)


def error_of(steps: str, head: str = HEAD) -> str:
    with pytest.raises(RehearsalError) as e:
        load(steps, head)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_an_admin_step_is_modelled() -> None:
    r = load(
        "  - admin: {op: revoke, replica: kms-c, key: master-of mongo-a}\n"
        "  - admin: {op: destroy, replica: kms-a, key: '  179603924401801 '}\n"
    )
    first, second = r.steps
    assert isinstance(first, AdminStep) and isinstance(second, AdminStep)
    assert (first.op, first.replica, first.key, first.client, first.line) == (
        "revoke",
        "kms-c",
        "master-of mongo-a",
        "mongo-a",
        5,
    )
    assert first.describe() == "admin revoke master-of mongo-a on kms-c"
    assert (second.key, second.client) == ("179603924401801", None)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "  - admin: {op: rekey, replica: kms-c, key: master-of mongo-a}\n",
            "r.yaml: line 5: steps[0].admin.op: unknown admin operation 'rekey'",
        ),
        (
            "  - admin: {op: revoke, replica: kms-x, key: master-of mongo-a}\n",
            "r.yaml: line 5: steps[0].admin.replica: unknown replica 'kms-x'",
        ),
        (
            "  - admin: {op: revoke, replica: kms-c, key: master-of mongo-x}\n",
            "r.yaml: line 5: steps[0].admin.key: unknown client 'mongo-x' (known: mongo-a, "
            "mongo-b)",
        ),
        (
            "  - admin: {op: revoke, replica: kms-c, key: master-of}\n",
            "r.yaml: line 5: steps[0].admin.key: write `master-of CLIENT` (clients: mongo-a, "
            "mongo-b)",
        ),
        (
            "  - admin: {op: revoke, key: master-of mongo-a}\n",
            "r.yaml: line 5: steps[0].admin.replica: missing; name a replica (kms-a, kms-b, "
            "kms-c, kms-d)",
        ),
        (
            "  - admin: {op: revoke, replica: kms-c, key: master-of mongo-a, when: now}\n",
            "r.yaml: line 5: steps[0].admin.when: unknown key",
        ),
        (
            "  - admin: revoke\n",
            "r.yaml: line 5: steps[0].admin: must be a mapping like {op: revoke, replica: "
            "kms-a, key: master-of mongo}",
        ),
    ],
)
def test_admin_step_errors_name_file_line_and_field(steps: str, expected: str) -> None:
    assert error_of(steps).startswith(expected)


def test_master_of_a_client_outside_the_workload_or_without_polling() -> None:
    head = HEAD.replace("[mongo-a, mongo-b]", "[mongo-b]")
    got = error_of("  - admin: {op: revoke, replica: kms-c, key: master-of mongo-a}\n", head)
    assert "client 'mongo-a' is not in the workload (workload clients: mongo-b)" in got
    head = HEAD.replace("rate_per_s: 20", "rate_per_s: 20, policy: mongodb")
    got = error_of("  - admin: {op: revoke, replica: kms-c, key: master-of mongo-a}\n", head)
    assert got.startswith("r.yaml: line 5: steps[0].admin.key: client 'mongo-a' has no master")
    assert "no key_state_poll_s" in got
    head = f"name: r\ntopology: {TOPOLOGY}\nsteps:\n"
    got = error_of("  - admin: {op: revoke, replica: kms-c, key: master-of mongo-a}\n", head)
    assert "add a `workload:`" in got


def test_the_schema_declares_the_admin_step() -> None:
    text = json.dumps(rehearsal_schema())
    assert "`master-of CLIENT`" in text
    assert '"enum": ["revoke", "compromise", "destroy"]' in text


def test_master_of_reads_only_its_own_form() -> None:
    assert master_of("master-of mongo") == "mongo"
    assert master_of("179603924401801") is None
    assert master_of("master-of") is None


def test_the_shipped_rehearsal_loads() -> None:
    r = load_rehearsal(SHIPPED)
    admins = [s for s in r.steps if isinstance(s, AdminStep)]
    assert [(s.op, s.replica, s.client) for s in admins] == [
        ("revoke", "kms-c", "mongo-a"),
        ("compromise", "kms-c", "mongo-b"),
    ]


@pytest.mark.integration
@pytest.mark.kms_topology("two-sites-key-state.yaml")
def test_the_shipped_rehearsal_shuts_each_client_down_over_its_own_key(
    kms_scenario: Scenario,
) -> None:
    sc = kms_scenario
    run = run_rehearsal(load_rehearsal(SHIPPED), sc, seed=11)
    figures = run.figures["admin"]
    revoke_a, compromise_b = figures
    assert revoke_a["client"] == "mongo-a" and compromise_b["client"] == "mongo-b"
    # one shutdown each (the instance after the audit pause carried it over)
    assert [s["worker"] for s in revoke_a["shutdowns"]] == [0]
    assert [s["worker"] for s in compromise_b["shutdowns"]] == [0]
    assert "is DEACTIVATED: shut down" in revoke_a["shutdowns"][0]["detail"]
    assert "is COMPROMISED: shut down" in compromise_b["shutdowns"][0]["detail"]
    events = sc.history.events()
    carried = [e for e in events if isinstance(e, ClientEvent) and e.worker == 1]
    assert {e.detail.split(":")[0] for e in carried} == {"still shut down"}
    admin_ops = [c for c in sc.history.completes() if c.client == ADMIN_CLIENT]
    assert [(c.op, c.served_by, c.outcome) for c in admin_ops] == [
        ("revoke", "kms-c", "ok"),
        ("compromise", "kms-c", "ok"),
    ]
