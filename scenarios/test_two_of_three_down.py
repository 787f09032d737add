"""Two of three replicas refused: the client walks past both to kms-c, at once."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("refuse")]


def test_two_of_three_refused_client_reaches_third(kms_scenario):
    wl = kms_scenario.fault_window("refuse", ["kms-a", "kms-b"])
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    inj = max(f.t for f in kms_scenario.history.faults() if f.phase == "inject")  # both down
    heal = min(f.t for f in kms_scenario.history.faults() if f.phase == "heal")
    during = [c for c in wl.completes(since=inj) if c.end <= heal and c.outcome == "ok"]
    assert during and {c.served_by for c in during} == {"kms-c"}
