"""An administrator's KMIP operation, run directly on one replica: "an operator revoked
the master key" as a scenario step (`Scenario.admin`, the rehearsal step `admin`).

The operator's console is not a client of the topology: it reaches the replica at its
own address (not through a client link, so a fault on the links does not stop it, as
the auditor reads replicas), and with async replication the change reaches the other
replicas later. Operations: `ADMIN_OPS` — Revoke (Cessation of Operation: an Active key
becomes Deactivated), Revoke for Key Compromise (`compromise`: Compromised, from any
state) and Destroy (PyKMIP's server refuses to destroy an Active key: revoke it first).

The key is a uid or ``master-of CLIENT``: the master key of every running instance of
a client whose policy has `key_state_poll_s` (waited for, with a deadline, when the
client has not made it yet). Each operation is recorded in the history as a `Note`, an
`Invoke` and a `Complete` of client `ADMIN_CLIENT` with its one attempt, so the checkers
see the change (a Destroy explains a missing key to durability; a Revoke is the last
change lost_update expects every replica to show). A failure is recorded, then raised as
an `AdminError` naming the replica. On an external replica (a real KMS) only keys this
run made may be changed.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path
from typing import Any, Protocol

from harness.client.failover_client import FailoverClient
from harness.client.operations import empty_client_config, new_pie_client, perform
from harness.client.transport import PeerIdentity, classify, peer_identity
from harness.cluster.base import Cluster
from harness.external import external_names, key_records
from harness.history import ADMIN_CLIENT, Attempt, Complete, History, Invoke, Note, OpOutcome
from harness.store import StateFolder
from harness.wait import WaitTimeout, wait_until

ADMIN_OPS: dict[str, str] = {  # each operation, and what it does
    "revoke": "Revoke (Cessation of Operation): an Active key becomes Deactivated",
    "compromise": "Revoke for Key Compromise: the key becomes Compromised, from any state",
    "destroy": "Destroy: the key is gone (PyKMIP refuses to destroy an Active key)",
}
MASTER_OF = "master-of"  # `master-of CLIENT`: that client's master key
ADMIN_TIMEOUT_S = 10.0  # the console's connect and response timeout
_ids = itertools.count(1)


class AdminError(RuntimeError):
    """An administrator's operation could not run; the message names the replica."""


class AdminScenario(Protocol):
    """What an administrator's operation needs of a scenario (`harness.scenario`)."""

    cluster: Cluster
    history: History

    def clients_named(self, name: str) -> list[FailoverClient]: ...

    def op_deadline(self, ops: int = 1) -> float: ...


def master_of(ref: str) -> str | None:
    """The client named by a key reference ``master-of CLIENT``; None for a uid."""
    words = ref.split()
    if len(words) == 2 and words[0] == MASTER_OF:
        return words[1]
    return None


def master_keys(sc: AdminScenario, client: str, deadline_s: float | None = None) -> list[str]:
    """The master keys of every running instance of `client` (one each), waiting until
    each has made its own (`key_state_poll_s`: at its first operation)."""
    instances = sc.clients_named(client)
    if any(c.keystate is None for c in instances):
        raise AdminError(f"client {client!r} has no master key: its policy has no key_state_poll_s")
    deadline = sc.op_deadline(2) if deadline_s is None else deadline_s
    try:
        wait_until(
            lambda: all(c.master_key for c in instances),
            deadline,
            f"every instance of {client} to make its master key",
        )
    except WaitTimeout as e:
        raise AdminError(f"client {client!r} has no master key yet: {e}") from None
    return list(dict.fromkeys(str(c.master_key) for c in instances))


def admin_operation(sc: AdminScenario, op: str, replica: str, key: str) -> list[Complete]:
    """Run the administrator's `op` on `replica` directly, on `key` (a uid or
    ``master-of CLIENT``); one recorded operation per key. `AdminError` when it fails."""
    if op not in ADMIN_OPS:
        raise ValueError(f"unknown administrator operation {op!r} (known: {', '.join(ADMIN_OPS)})")
    replicas = sc.cluster.state.replicas
    if replica not in replicas:
        raise AdminError(f"no replica {replica!r} (known: {', '.join(replicas)})")
    client = master_of(key)
    uids = master_keys(sc, client) if client is not None else [key]
    if replica in external_names(sc.cluster.state):
        ours = {k.uid for k in key_records(Path(sc.cluster.state.state_dir))}
        foreign = [u for u in uids if u not in ours]
        if foreign:
            raise AdminError(
                f"{replica} is an external KMS: key {foreign[0]} was not made by this run"
            )
    done = [_run(sc, op, replica, uid, key) for uid in uids]
    failed = [c for c in done if c.outcome != "ok"]
    if failed:
        c = failed[0]
        raise AdminError(f"admin {op} of key {c.key} on {replica} ended {c.outcome}: {c.error}")
    return done


def _direct(cluster: Cluster, replica: str) -> Any:
    """A PyKMIP client of `replica` at its own address (not through a link)."""
    rs = cluster.state.replicas[replica]
    t = cluster.state.tls
    conf = empty_client_config(StateFolder(Path(cluster.state.state_dir)).clients)
    pie = new_pie_client([rs.host], rs.port, t["ca"], t["cert"], t["key"], conf)
    pie.proxy.timeout = ADMIN_TIMEOUT_S
    return pie


def key_state_on(cluster: Cluster, replica: str, uid: str) -> str | None:
    """The State of key `uid` on `replica`, read directly (not recorded: what the
    operator's console shows); None when the replica does not hold it. `AdminError`
    when the replica cannot be read."""
    from kmip.pie.exceptions import KmipOperationFailure

    pie = _direct(cluster, replica)
    try:
        pie.open()
        return perform(pie, "state", uid).state
    except KmipOperationFailure as e:
        if "ITEM_NOT_FOUND" in str(e):
            return None
        raise AdminError(f"{replica}: reading the state of key {uid}: {e}") from e
    except Exception as e:  # noqa: BLE001 - unreadable: named with the replica
        raise AdminError(f"{replica}: reading the state of key {uid}: {e!r}") from e
    finally:
        with contextlib.suppress(Exception):
            pie.close()


def _run(sc: AdminScenario, op: str, replica: str, uid: str, ref: str) -> Complete:
    rs = sc.cluster.state.replicas[replica]
    op_id = f"{ADMIN_CLIENT}#0:{next(_ids)}"
    named = f" ({ref})" if ref != uid else ""
    sc.history.append(Note(time.monotonic(), f"admin {op} key {uid}{named} on {replica}, directly"))
    start = time.monotonic()
    sc.history.append(Invoke(op_id=op_id, client=ADMIN_CLIENT, op=op, t=start, key=uid))
    pie = _direct(sc.cluster, replica)
    who, phase, sent = PeerIdentity(), "connect", False
    outcome, detail, error = "ok", "", ""
    try:
        pie.open()
        who, phase, sent = peer_identity(pie.proxy.socket), "request", True
        perform(pie, op, uid)
    except Exception as e:  # noqa: BLE001 - recorded, then raised as AdminError
        outcome, detail = classify(e, phase), repr(e)[:300]
        error = f"{replica} ({rs.host}:{rs.port}): {outcome}: {e}"
    finally:
        with contextlib.suppress(Exception):
            pie.close()
    end = time.monotonic()
    # a request that may have run with no answer: unknown; a KMIP refusal or no
    # connection: it did not happen
    result: OpOutcome = "ok" if outcome == "ok" else "fail"
    if outcome not in ("ok", "kmip-error") and sent:
        result = "info"
    attempt = Attempt(
        replica, f"{rs.host}:{rs.port}", start, end, outcome, detail, identity=who.name, sent=sent
    )
    done = Complete(
        op_id=op_id,
        client=ADMIN_CLIENT,
        policy=ADMIN_CLIENT,
        op=op,
        start=start,
        end=end,
        outcome=result,
        served_by=replica if outcome in ("ok", "kmip-error") else None,
        key=uid,
        attempts=[attempt],
        error=error,
    )
    sc.history.append(done)
    return done
