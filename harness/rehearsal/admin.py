"""A rehearsal's `admin` step: an administrator's KMIP operation run directly on one
replica (`harness.admin`, `Scenario.admin`).

    - admin: {op: revoke, replica: kms-d, key: master-of mongo-a}

`AdminStepReader` is the part of the rehearsal validator that knows the step: `op` one
of `harness.admin.ADMIN_OPS`, `replica` one of the topology's, `key` a uid or
``master-of CLIENT`` where the client is one of the workload's and its policy has
`key_state_poll_s` (it has a master key). Every error names file, line and field.

`AdminActions` performs the steps on a `Scenario` and measures what followed from the
history: for a `master-of` key, when each instance of the client stopped itself over
that key after the operation (its shutdown delay), or that it did not.
"""

from __future__ import annotations

import time
from typing import Any

from harness.admin import ADMIN_OPS, MASTER_OF, AdminError, master_of
from harness.client.policies import policy_spec
from harness.history import ClientEvent
from harness.rehearsal.expectations import ExpectationReader
from harness.rehearsal.fileformat import ADMIN
from harness.rehearsal.model import AdminStep
from harness.scenario import Scenario
from harness.yamlfile import Y, describe


class AdminStepReader:
    """Reads `admin` steps with `reader` (which knows the topology and the workload)."""

    def __init__(self, reader: ExpectationReader) -> None:
        self.r = reader

    def step(self, index: int, line: int, y: Y) -> AdminStep:
        r = self.r
        if not isinstance(y.value, dict):
            raise r.problem(
                y,
                "must be a mapping like {op: revoke, replica: kms-a, key: master-of mongo}, "
                f"got {describe(y.plain())}",
            )
        body = r.mapping(y, ADMIN)
        op_y = r.required(body, y, "op", f"name the operation ({', '.join(ADMIN_OPS)})")
        op = r.take(op_y, ADMIN.shape("op"))
        replica_y = r.required(body, y, "replica", f"name a replica ({', '.join(r.topo.replicas)})")
        replica = r.choice(replica_y, list(r.topo.replicas), "replica")
        key_y = r.required(body, y, "key", f"a key uid, or `{MASTER_OF} CLIENT`")
        key = " ".join(str(r.take(key_y, ADMIN.shape("key"))).split())
        if not key:
            raise r.problem(key_y, f"name a key: a uid, or `{MASTER_OF} CLIENT`")
        client = self.master_client(key, key_y) if key.split()[0] == MASTER_OF else None
        return AdminStep(index=index, line=line, op=op, replica=replica, key=key, client=client)

    def master_client(self, key: str, y: Y) -> str:
        r = self.r
        client = master_of(key)
        known = list(r.topo.clients)
        if client is None:
            raise r.problem(y, f"write `{MASTER_OF} CLIENT` (clients: {', '.join(known)})")
        if client not in known:
            raise r.problem(y, f"unknown client {client!r} (known: {', '.join(known)})")
        workload = r.workload
        if workload is None:
            raise r.problem(y, f"{MASTER_OF} names a client of the workload: add a `workload:`")
        if client not in workload.clients:
            raise r.problem(
                y,
                f"client '{client}' is not in the workload (workload clients: "
                f"{', '.join(workload.clients)})",
            )
        policy = r.topo.clients[client].policy
        if workload.policy is not None:
            policy = policy_spec(workload.policy)
        if policy.key_state_poll_s is None:
            raise r.problem(
                y,
                f"client '{client}' has no master key: its policy has no key_state_poll_s "
                f"(e.g. policy: {{preset: mongodb, key_state_poll_s: 900}})",
            )
        return client


class AdminActions:
    """Performs `admin` steps on `scenario`; `figures` says what followed each."""

    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.done: list[tuple[AdminStep, float, list[str]]] = []  # step, when, the keys

    def perform(self, step: AdminStep) -> None:
        """`AdminError` (naming the replica) when the operation fails."""
        t = time.monotonic()
        try:
            done = self.sc.admin(step.op, step.replica, step.key)
        except ValueError as e:  # no running instance of the client
            raise AdminError(str(e)) from e
        self.done.append((step, t, [str(c.key) for c in done]))

    def figures(self) -> list[dict[str, Any]]:
        """Per step: the keys, and for a master key each instance's shutdown delay."""
        events = self.sc.history.events()
        out = []
        for step, t, keys in self.done:
            fig: dict[str, Any] = {
                "step": step.path,
                "line": step.line,
                "op": step.op,
                "replica": step.replica,
                "keys": keys,
            }
            if step.client is not None:
                fig["client"] = step.client
                fig["shutdowns"] = shutdowns(events, step.client, keys, t)
            out.append(fig)
            self.sc.note(f"{step.path} admin {step.op} on {step.replica}: {_describe(fig)}")
        return out


def shutdowns(events: list[Any], client: str, keys: list[str], t: float) -> list[dict[str, Any]]:
    """Each instance of `client` that stopped itself over one of `keys` after `t`: its
    worker, how long after `t`, and the reason it gave (an instance that only carried a
    shutdown over after a pause is not another shutdown)."""
    out = []
    seen: set[int] = set()
    for e in events:
        if (
            isinstance(e, ClientEvent)
            and e.client == client
            and e.action == "stop"
            and e.t >= t
            and e.worker not in seen
            and any(e.detail.startswith(f"master key {k} ") for k in keys)
        ):
            seen.add(e.worker)
            out.append({"worker": e.worker, "after_s": round(e.t - t, 3), "detail": e.detail})
    return out


def _describe(fig: dict[str, Any]) -> str:
    keys = ", ".join(fig["keys"])
    if "client" not in fig:
        return f"key {keys}"
    stops = fig["shutdowns"]
    if not stops:
        return f"{fig['client']}'s master key {keys}; {fig['client']} did not shut down"
    delays = ", ".join(f"#{s['worker']} {s['after_s']:.3f} s after" for s in stops)
    return f"{fig['client']}'s master key {keys}; {fig['client']} shut down: {delays}"
