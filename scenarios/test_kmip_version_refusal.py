"""A KMS that does not speak a client's KMIP version (`one-site-versions.yaml`).

kms-a speaks only KMIP 1.2. The vCenter-like client sends 1.1: every operation's first
attempt is refused by kms-a (`version-refused`: Operation Failed, Invalid Message, "KMIP
1.1 is not supported by the server.") and kms-b serves it at once. The PyKMIP
application sends 1.2 and is served by kms-a.
"""

import pytest

from harness.history import Complete
from harness.topology_lint import lint

pytestmark = [pytest.mark.kms_topology("one-site-versions.yaml")]
REFUSAL = "KMIP 1.1 is not supported by the server."


def test_a_refused_version_moves_vcenter_on_and_pykmip_stays(kms_scenario):
    sc = kms_scenario
    wl = sc.workload(["vc-a", "app-a"], rate_per_s=20)

    def both_served(cs: list[Complete]) -> bool:
        ok = [c for c in cs if c.outcome == "ok"]
        return all(sum(1 for c in ok if c.client == n) >= 10 for n in ("vc-a", "app-a"))

    with wl.running():
        wl.wait_for(both_served, sc.op_deadline(20), "10 ok ops of each client")
    sc.check(include=("order", "availability"))
    sc.expect(order="pass", availability="pass")

    ops = wl.completes()
    vc = [c for c in ops if c.client == "vc-a"]
    app = [c for c in ops if c.client == "app-a"]
    assert vc and app
    for c in vc:
        first = c.attempts[0]
        assert (first.server, first.outcome) == ("kms-a", "version-refused"), c
        assert REFUSAL in first.detail and "INVALID_MESSAGE" in first.detail, first.detail
        assert first.identity == "kms-a" and first.sent
        assert c.outcome == "ok" and c.served_by == "kms-b", c
        assert [a.server for a in c.attempts] == ["kms-a", "kms-b"], c
    for c in app:
        assert c.outcome == "ok" and c.served_by == "kms-a", c
        assert all(a.outcome == "ok" for a in c.attempts), c
    assert [f.where for f in lint(sc.topology) if f.rule == "unspoken-version"] == [
        "clients.vc-a.order[0]"
    ]
    sc.finding(
        f"kms-a speaks only KMIP 1.2: {len(vc)} vCenter (1.1) operations each refused there "
        f"({REFUSAL!r}) and served by kms-b; {len(app)} PyKMIP (1.2) operations served by kms-a"
    )
