"""The auditor: what every replica holds, read over KMIP, as `Snapshot` events.

A round reads every replica once, directly (not through a link, so a fault on the
links does not hide what a replica holds): Locate every object, then Get each (the
digest of its key material), its State and its Names (one Get Attributes). On an
external target (a real KMS) only the keys this run created there are read
(`harness.external.run_key_uids`).
`until_converged` runs rounds until all replicas agree, with a deadline, and returns how
long that took.

Every snapshot records who answered: the subject CN of the certificate the server
showed and its sha256 fingerprint (`harness.client.transport.peer_identity`). The
snapshot's replica is the one the auditor meant to read; the identity is the one it
reached, and the checkers compare the two (`harness.checkers.identity`).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.client.operations import empty_client_config, new_pie_client
from harness.client.transport import PeerIdentity, peer_identity
from harness.cluster.base import Cluster
from harness.external import external_names, run_key_uids
from harness.history import History, Snapshot
from harness.store import StateFolder
from harness.topology.model import audit_kmip_version


def _state_and_names(attrs: list[Any]) -> tuple[Any, list[str]]:
    """The State value and the Name strings (in index order) among a Get Attributes
    answer's attributes."""
    state: Any = None
    names: list[str] = []
    for a in attrs:
        value = a.attribute_value
        if value is None:
            continue
        if a.attribute_name.value == "Name":
            names.append(str(value.name_value.value))
        elif a.attribute_name.value == "State":
            state = value.value
    return state, names


class Auditor:
    def __init__(self, cluster: Cluster, history: History, timeout_s: float = 10.0) -> None:
        self.cluster = cluster
        self.history = history
        self.timeout_s = timeout_s
        # rounds are numbered per history, so several audits never share a number
        self.rounds = max((e.round for e in history.events() if isinstance(e, Snapshot)), default=0)
        self._conf = empty_client_config(StateFolder(Path(cluster.state.state_dir)).clients)
        self._external = external_names(cluster.state)

    def _located(self, pie: Any, replica: str) -> list[str]:
        """Uids to read on `replica`: all it lists, or on an external target the run's."""
        uids = [str(u) for u in pie.locate()]
        if replica not in self._external:
            return uids
        ours = run_key_uids(Path(self.cluster.state.state_dir), replica)
        return [u for u in uids if u in ours]

    def _read(self, replica: str, n: int) -> Snapshot:
        from kmip.core import enums

        started = time.monotonic()  # the snapshot is dated when its read began
        pie = self._client(replica)
        objects: dict[str, dict[str, Any]] = {}
        who = PeerIdentity()
        try:
            pie.open()
            who = peer_identity(pie.proxy.socket)
            try:
                for uid in self._located(pie, replica):
                    key = pie.get(uid)
                    _, attrs = pie.get_attributes(uid, ["State", "Name"])
                    state, names = _state_and_names(attrs)
                    objects[str(uid)] = {
                        "digest": hashlib.sha256(bytes(key.value)).hexdigest(),
                        "state": state.name if isinstance(state, enums.State) else str(state),
                        "names": names,
                    }
            finally:
                with contextlib.suppress(Exception):
                    pie.close()
        except Exception as e:  # noqa: BLE001 - an unreadable replica is a finding
            return Snapshot(
                started,
                replica,
                n,
                objects,
                ok=False,
                error=repr(e)[:300],
                identity=who.name,
                fingerprint=who.fingerprint,
            )
        return Snapshot(
            started, replica, n, objects, identity=who.name, fingerprint=who.fingerprint
        )

    def _client(self, replica: str) -> Any:
        rs = self.cluster.state.replicas[replica]
        t = self.cluster.state.tls
        version = audit_kmip_version(self.cluster.state.topology, replica)
        pie = new_pie_client([rs.host], rs.port, t["ca"], t["cert"], t["key"], self._conf, version)
        pie.proxy.timeout = self.timeout_s
        return pie

    def _uids(self, replica: str) -> set[str] | None:
        pie = self._client(replica)
        try:
            pie.open()
            try:
                return set(self._located(pie, replica))
            finally:
                with contextlib.suppress(Exception):
                    pie.close()
        except Exception:  # noqa: BLE001 - unreadable now; the full round records why
            return None

    def same_ids(self) -> bool:
        """A cheap check (one Locate per replica): do all replicas list the same ids?"""
        names = list(self.cluster.state.replicas)
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            sets = list(pool.map(self._uids, names))
        return all(s is not None and s == sets[0] for s in sets)

    def round(self) -> list[Snapshot]:
        self.rounds += 1
        n = self.rounds
        names = list(self.cluster.state.replicas)
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            snaps = list(pool.map(lambda r: self._read(r, n), names))
        for s in snaps:
            self.history.append(s)
        return snaps

    @staticmethod
    def agree(snaps: list[Snapshot]) -> bool:
        return all(s.ok for s in snaps) and all(s.objects == snaps[0].objects for s in snaps)

    def until_converged(self, deadline_s: float, poll_s: float = 0.1) -> float | None:
        """Audit rounds until every replica holds the same objects; seconds taken, or
        None if they still differ at the deadline (the last round is in the history)."""
        start = time.monotonic()
        while True:
            # full rounds (Get + State of every object) only once the cheap check agrees
            t0 = time.monotonic()
            same = self.same_ids()
            took = time.monotonic() - t0
            if same and self.agree(self.round()):
                return time.monotonic() - start
            if time.monotonic() - start > deadline_s:
                self.round()  # the evidence of what still differs
                return None
            # poll interval of this wait, not a synchronisation; the auditor's own reads
            # load the replicas, so never poll more than half the time
            time.sleep(max(poll_s, took))  # wait-ok: poll interval, deadline above
