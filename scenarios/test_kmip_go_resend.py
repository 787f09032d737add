"""A Create whose response is lost: ovh/kmip-go re-sends it, PyKMIP does not.

`lost-response --count 1` on kms-a: kms-a runs the next request (a Create makes its
key) and closes the connection instead of answering. The client sees EOF after its
request went out.

- kmip-go (`retry_on: [eof]`, `resend_mutations`): re-sends the request up to 3 times
  with the same Name; the second one is answered, so the Create is `ok` — and kms-a
  holds two keys with that Name. Nothing acknowledged is lost: durability passes and
  reports the Create that ran twice (`duplicate_creates`).
- PyKMIP's ProxyKmipClient: the operation on the open connection fails, not re-sent:
  `info` (it may have run: it did), exactly one key made.

Two replicas of one site with async replication: every key, the extra one too, reaches
both, so durability judges the whole cluster.
"""

import pytest

from harness.checkers.durability import final_snapshots, snapshots
from harness.history import Complete

pytestmark = [
    pytest.mark.kms_topology("two-replicas-async.yaml"),
    pytest.mark.kms_needs("lost-response"),
]


def _keys_named(kms_scenario, replica: str) -> dict[str, list[str]]:
    """The final audit of `replica`: each Name -> the unique identifiers holding it."""
    final = final_snapshots(snapshots(kms_scenario.history.events()))[replica]
    named: dict[str, list[str]] = {}
    for uid, entry in final.objects.items():
        for name in entry.get("names") or []:
            named.setdefault(name, []).append(uid)
    return named


def _create_under_lost_response(kms_scenario, policy: str) -> tuple[Complete, Complete]:
    """A Create on kms-a (its connection then open), then one whose response is lost;
    heal, audit until converged, judge durability."""
    client = kms_scenario.client("admin-a", policy)
    first = client.create()
    assert first.outcome == "ok" and first.served_by == "kms-a", first
    with kms_scenario.fault("lost-response", "kms-a", count=1):
        lost = client.create()
    assert kms_scenario.audit_until_converged() is not None, "the audit never converged"
    kms_scenario.check(include=("durability",))
    kms_scenario.expect(durability="pass")
    return first, lost


def test_kmip_go_resends_a_create_whose_response_was_lost_and_makes_two_keys(kms_scenario):
    first, lost = _create_under_lost_response(kms_scenario, "kmip-go")
    assert lost.outcome == "ok" and lost.served_by == "kms-a", lost
    closed = lost.attempts[0]
    assert closed.server == "kms-a" and closed.outcome == "eof" and closed.sent, lost.attempts
    sent = [a for a in lost.attempts if a.sent and a.server == "kms-a"]
    assert len(sent) >= 2, lost.attempts
    assert lost.attempts[-1].outcome == "ok", lost.attempts

    durability = kms_scenario.outcome.verdicts["durability"]
    figures = durability.figures
    assert figures["duplicate_creates"] >= 1, durability.summary
    twice = {d["name"]: d["uids"] for d in figures["duplicates"]}
    assert lost.name in twice and lost.key in twice[lost.name], figures["duplicates"]
    assert len(twice[lost.name]) == 2, twice
    assert first.name not in twice
    assert f"({len(twice[lost.name])} keys named {lost.name})" in durability.summary
    assert sorted(_keys_named(kms_scenario, "kms-a")[lost.name]) == sorted(twice[lost.name])
    kms_scenario.finding(
        f"kmip-go, one lost response on kms-a: the Create got EOF after its request went out "
        f"({closed.duration * 1000:.0f} ms), was re-sent with the same Name and answered: "
        f"{len(sent)} requests, 2 keys named {lost.name} ({', '.join(twice[lost.name])})"
    )


def test_pykmip_does_not_resend_a_create_whose_response_was_lost(kms_scenario):
    first, lost = _create_under_lost_response(kms_scenario, "pykmip")
    assert lost.outcome == "info", lost
    assert len(lost.attempts) == 1, lost.attempts
    closed = lost.attempts[0]
    # one request went out (it made the key below); the PyKMIP engine does not mark it
    # `sent` (it cannot see inside ProxyKmipClient), only the walker does
    assert closed.server == "kms-a" and closed.outcome == "eof" and closed.reused, closed

    durability = kms_scenario.outcome.verdicts["durability"]
    assert durability.figures["duplicate_creates"] == 0, durability.summary
    named = _keys_named(kms_scenario, "kms-a")
    assert named[first.name] == [first.key]
    others = {n: uids for n, uids in named.items() if n != first.name}
    assert len(others) == 1 and all(len(u) == 1 for u in others.values()), named
    kms_scenario.finding(
        f"PyKMIP, one lost response on kms-a: the Create ended info after EOF "
        f"({closed.duration * 1000:.0f} ms), not re-sent; it ran: one key "
        f"{next(iter(others))} made that no client was told of"
    )
