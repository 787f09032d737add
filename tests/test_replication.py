"""Async replication end to end, through the CLI and PyKMIP's own client: keys made on
site-a are on every replica with the same id and bytes; keys made on both sides of a
partition are everywhere after heal; a wiped replica is refilled by its peers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from kmip_clients import holdings, pykmip

from harness import registry
from harness.history import History, Observation
from harness.store import StateFolder
from harness.toolchain import repo_root
from harness.wait import wait_until

pytestmark = pytest.mark.integration

TOPOLOGY = repo_root() / "scenarios" / "topologies" / "two-sites-async.yaml"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    import os

    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    env = dict(os.environ, KMSCHAOS_REGISTRY=str(reg), PYTHONWARNINGS="ignore")

    def run(*args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, f"kmschaos {' '.join(args)}: {r.returncode}\n{r.stderr}"
        return r.stdout

    yield run
    run("down")
    registry.reap(all_runs=True)


def test_async_keys_reach_every_replica_and_survive_a_partition(cli) -> None:  # noqa: ANN001
    from kmip import enums

    cli("up", str(TOPOLOGY), "--time-scale", "0.05")
    status = json.loads(cli("status", "--json"))
    assert status["replication"]["profile"] == "async"
    assert len(status["replication"]["links"]) == 30  # 6 replicas, both directions

    a = pykmip(status)  # site-a's client: kms-a first
    made = {}
    for _ in range(50):
        uid = a.create(enums.CryptographicAlgorithm.AES, 256)
        made[uid] = hashlib.sha256(bytes(a.get(uid).value)).hexdigest()
    a.close()
    assert len(set(made)) == 50, "identifiers must be unique"
    interval = status["replication"]["interval_ms"] / 1000
    wait_until(
        lambda: made.items() <= holdings(status, "kms-d").items(),
        100 * interval + 10,
        "50 keys created on site-a to be on kms-d with identical bytes",
        poll_s=interval,
    )
    everywhere = {r: holdings(status, r) for r in status["replicas"]}
    for r, held in everywhere.items():
        assert made.items() <= held.items(), f"{r} lacks keys or holds other bytes"

    cli("inject", "partition", "site-a", "site-b")
    side_a, side_b = pykmip(status, client="vc-a"), pykmip(status, client="vc-b")
    during = [side_a.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(5)]
    during += [side_b.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(5)]
    side_a.close()
    side_b.close()
    # while cut, site-a's new keys must not reach site-b: observe for 10 intervals
    import time

    until = time.monotonic() + 10 * interval
    while time.monotonic() < until:
        assert not set(during[:5]) & set(holdings(status, "kms-d")), "crossed the partition"
    cli("heal", "--all")
    wait_until(
        lambda: all(set(during) <= set(holdings(status, r)) for r in status["replicas"]),
        100 * interval + 10,
        "keys written on both sides of the partition to reach all six replicas",
        poll_s=interval,
    )


def test_wiped_replica_is_refilled_by_its_peers(cli) -> None:  # noqa: ANN001
    from kmip import enums

    cli("up", str(TOPOLOGY), "--time-scale", "0.05")
    status = json.loads(cli("status", "--json"))
    interval = status["replication"]["interval_ms"] / 1000
    a = pykmip(status)
    made = {a.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(10)}
    a.close()
    wait_until(
        lambda: made <= set(holdings(status, "kms-f")),
        100 * interval + 10,
        "keys to replicate to kms-f",
        poll_s=interval,
    )
    # no peer can refill kms-f while it is isolated: what it holds after the wipe is
    # what the wipe left (the auditor reads it directly, not through a link)
    isolated = cli("inject", "isolate", "kms-f").strip()
    cli("inject", "wipe", "kms-f")
    assert holdings(status, "kms-f") == {}, "kms-f still held keys after the wipe"
    wipe = observed(status, "wipe")
    assert wipe.effect is True, wipe.detail
    assert "kms.sqlite" in wipe.detail and "deleted" in wipe.detail, wipe.detail
    cli("heal", isolated)
    wait_until(
        lambda: made <= set(holdings(status, "kms-f")),
        100 * interval + 10,
        "the wiped kms-f to be refilled from its peers",
        poll_s=interval,
    )


def observed(status: dict[str, object], kind: str) -> Observation:
    """The last observation of a `kind` fault in the cluster's history (the CLI's)."""
    history = History.load(StateFolder(Path(str(status["state_dir"]))).history)
    return [e for e in history.events() if isinstance(e, Observation) and e.kind == kind][-1]


def test_sync_write_through_a_replica_the_primary_cannot_reach_is_not_acknowledged(
    cli,  # noqa: ANN001
) -> None:
    """sync: a write sent to kms-d is run by the primary kms-a; if kms-a's copy cannot
    reach kms-d, acknowledging it would let
    the client fail to read its own write back from kms-d. It must be refused (outcome
    unknown), while a write straight to the primary is still acknowledged. A one-way cut
    from site-a is what a partition going in one link at a time can leave for a moment:
    kms-d still reaches the primary, the primary no longer reaches kms-d."""
    from kmip import enums
    from kmip.pie.exceptions import KmipOperationFailure

    sync = repo_root() / "scenarios" / "topologies" / "two-sites-sync.yaml"
    cli("up", str(sync), "--time-scale", "0.05")
    status = json.loads(cli("status", "--json"))
    b = pykmip(status, client="vc-b")  # kms-d first
    before = b.create(enums.CryptographicAlgorithm.AES, 256)
    assert len(b.get(before).value) == 32, "kms-d cannot read a key written through it"

    cli("inject", "partition", "site-a", "site-b", "--one-way")
    with pytest.raises(KmipOperationFailure, match="not replicated to kms-d"):
        b.create(enums.CryptographicAlgorithm.AES, 256)
    b.close()
    a = pykmip(status, client="vc-a")  # the primary itself: acknowledged
    uid = a.create(enums.CryptographicAlgorithm.AES, 256)
    assert len(a.get(uid).value) == 32
    a.close()
