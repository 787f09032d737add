"""The seed's "do NOT shut things down": with every KMS down, running encrypted
workloads keep going on the keys their hosts hold in memory; a host restarted during the
outage cannot get its keys back until a KMS answers (`one-site-key-cache.yaml`).

`esxi` keeps the keys it read in memory (lost when it restarts); `esxi-tpm` keeps them
across a restart (vSphere 7.0U2+ key persistence in the TPM). Both read their VMs' keys
(Gets only) while every replica refuses connections, are restarted during the outage,
and the outage ends.
"""

import time

import pytest

from harness.history import Complete

pytestmark = [pytest.mark.kms_topology("one-site-key-cache.yaml"), pytest.mark.kms_needs("refuse")]
REPLICAS = ["kms-a", "kms-b", "kms-c"]


def _ops(wl, client: str, since: float, until: float | None = None) -> list[Complete]:
    """The client's operations that ran between `since` and `until` (all of them)."""
    return [
        c
        for c in wl.completes()
        if c.client == client and c.start >= since and (until is None or c.end <= until)
    ]


def test_running_hosts_keep_their_keys_a_restarted_one_waits_for_a_kms(kms_scenario):
    sc = kms_scenario
    wl = sc.workload(["esxi", "esxi-tpm"], rate_per_s=20, mix={"get": 1.0})
    with wl.running():
        wl.wait_ok(10, sc.op_deadline(1))
        faults = [sc.fault("refuse", r) for r in REPLICAS]
        try:
            for f in faults:
                f.inject()
            t_down = time.monotonic()
            sc.note("every KMS down")
            for name in ("esxi", "esxi-tpm"):
                wl.wait_for(
                    lambda cs, n=name: (
                        sum(1 for c in cs if c.client == n and c.start >= t_down and c.cached) >= 5
                    ),
                    sc.op_deadline(5),
                    f"5 cached ops of {name} with every KMS down",
                )
            sc.restart_client("esxi")
            sc.restart_client("esxi-tpm")
            t_restart = time.monotonic()
            wl.wait_for(
                lambda cs: (
                    sum(
                        1
                        for c in cs
                        if c.client == "esxi" and c.start >= t_restart and c.outcome != "ok"
                    )
                    >= 5
                ),
                sc.op_deadline(5),
                "5 failed ops of the restarted esxi",
            )
        finally:
            for f in faults:
                f.heal()
        # the first read of the restarted esxi that succeeded: its cache was empty, so a KMS
        # served it (a later one may hit the key this one cached, even right after the
        # heal: the links are enabled one by one, and esxi reads as soon as the first is)
        back = wl.wait_ok(1, sc.op_deadline(2), since=t_restart, client="esxi")[0]
    # the first link enabled again ends the outage: an operation after it may be served
    healing = min(f.healed_at for f in faults if f.healed_at is not None)
    sc.check()
    outage = _ops(wl, "esxi", t_down, t_restart) + _ops(wl, "esxi-tpm", t_down, healing)
    # every op while no KMS answered (but after esxi's restart) came from a cache
    assert outage and all(c.outcome == "ok" and c.cached and not c.attempts for c in outage)
    lost = _ops(wl, "esxi", t_restart, healing)
    assert lost and all(c.outcome != "ok" and not c.cached for c in lost), lost
    assert all(a.outcome == "refused" for c in lost for a in c.attempts)
    assert not back.cached and back.served_by in REPLICAS and back.end >= healing
    avail = sc.outcome.verdicts["availability"].figures["union"]
    assert avail["served_from_cache"] >= len(outage)
    assert avail["needed_kms"]["ok"] < avail["needed_kms"]["ops"]
    sc.finding(
        f"every KMS down: {len(outage)} reads of running hosts were served from their key "
        f"caches; esxi restarted during the outage failed {len(lost)} reads for "
        f"{healing - t_restart:.2f} s and read its keys again {back.end - healing:.3f} s after "
        f"the first KMS answered; esxi-tpm (keys kept across the restart) never failed"
    )
