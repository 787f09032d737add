"""A single KMS: killing it is a total outage. No client can get or create a key until
it is back; the report says so."""

import pytest

pytestmark = [pytest.mark.kms_topology("single-kms.yaml"), pytest.mark.kms_needs("kill")]


def test_single_kms_killed_is_a_total_outage(kms_scenario):
    kms_scenario.fault_window("kill", "kms-a", expect_served=False, failovers=5)
    verdicts = kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="fail")
    union = verdicts["availability"].figures["union"]
    assert union["ok"] == 0 and union["ops"] >= 5
    recovery = [w["recovery_s"] for w in verdicts["availability"].figures["faults"].values()]
    kms_scenario.finding(
        f"single KMS: total outage while kms-a was down ({union['ops']} operations failed, "
        f"0 succeeded); recovery after restart {max(recovery):.2f} s. A single KMS is a single "
        "point of failure."
    )
