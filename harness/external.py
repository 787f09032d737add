"""External targets: a real KMS that kmschaos does not start, behind links of its own.

    client ──> listen 127.X.Y.i:P ──[toxics]──> kms1.example.net:5696   (the user's KMS)

An external replica gets the same Toxiproxy links, link faults and checkers as a replica
kmschaos starts. Faults that need its process (`stall`, `kill`, `restart`, `wipe`) are
refused before they touch anything, naming the replica
(`harness.faults.base.external_refusal`).

Safety. Pointing a chaos harness at a real KMS takes two switches: ``allow_external:
true`` in the topology **and** `CONSENT_FLAG` on the command line (the pytest option
``--kms-allow-external``). `require_consent` refuses otherwise, before any lease, process
or link exists.

Identity. The run has one client identity, the user's client certificate (``tls.cert``,
``tls.key``): every client and the auditor send it to every replica, and the replicas
kmschaos starts in a mixed topology trust its issuer (the CA bundle, `client_tls`). So a
"not found" is still never a "not allowed".

Keys. Every key a client creates is named ``kmschaos-<run id>-<n>`` (`RunKeys`). Keys
made on an external replica are recorded in the state folder's ``external-keys.json``
(the name before the Create is sent, uid and replica when it is answered) and destroyed
when the cluster stops, unless keep_keys (`settle_keys`). ``kmschaos down`` destroys what
a killed run left. The file::

    {"run_id": "kc1a2b3c4d", "name_prefix": "kmschaos-kc1a2b3c4d-", "keep_keys": false,
     "next": 3,
     "keys": [{"name": "kmschaos-kc1a2b3c4d-1", "uid": "5", "replica": "kms-prod-1",
               "created": 1735689600.1, "destroyed": 1735689700.2, "error": ""}]}

``uid`` and ``replica`` are null while a Create's outcome is unknown (its answer was
lost: the key may exist); ``created`` and ``destroyed`` are Unix times; ``error`` says why
a key could not be destroyed.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster.state import ClusterError, ClusterState
from harness.store import ScenarioFolder, StateFolder
from harness.topology import Topology, check_tls_files

CONSENT_FLAG = "--i-understand-this-targets-real-kms"
PYTEST_CONSENT = "--kms-allow-external"
KEY_PREFIX = "kmschaos"


class ExternalRefused(ClusterError):
    """A topology with external targets lacks a safety switch, or the backend cannot
    reach external targets; nothing was started."""


# ---- consent ----------------------------------------------------------------------------


def require_consent(topology: Topology, allowed: bool, backend: str, supported: bool) -> None:
    """Refuse a topology with external targets unless the file says ``allow_external:
    true`` and `allowed` (the command-line flag) is set; check its TLS files."""
    ext = topology.external_replicas
    if not ext:
        return
    found = [(r, topology.info_of(r).external) for r in ext]
    targets = ", ".join(f"{r} ({e.address})" for r, e in found if e is not None)
    if not topology.allow_external:
        raise ExternalRefused(
            f"{topology.source}: allow_external: missing; this topology targets real KMS "
            f"server(s) {targets}, where kmschaos creates and destroys keys and injects link "
            "faults. If that is intended, add `allow_external: true` to the file and pass "
            f"{CONSENT_FLAG}"
        )
    if not allowed:
        raise ExternalRefused(
            f"{topology.source} targets real KMS server(s) {targets}: refused without "
            f"{CONSENT_FLAG} on the command line (kmschaos up / kmschaos run; pytest: "
            f"{PYTEST_CONSENT})"
        )
    if not supported:
        raise ExternalRefused(
            f"{topology.source}: the {backend} backend cannot put links in front of external "
            f"targets ({targets}); use --backend local"
        )
    check_tls_files(topology)


# ---- what the state says ------------------------------------------------------------------


def external_names(state: ClusterState) -> frozenset[str]:
    """The external replicas of a cluster, from the topology in its state."""
    return frozenset(
        e["name"]
        for site in state.topology.get("sites", {}).values()
        for e in site.get("replicas", [])
        if isinstance(e, dict) and "external" in e
    )


def tls_name(state: ClusterState, replica: str) -> str:
    """The name an external replica's certificate is checked against ("" for own)."""
    for site in state.topology.get("sites", {}).values():
        for e in site.get("replicas", []):
            if isinstance(e, dict) and e.get("name") == replica and "external" in e:
                ext: dict[str, Any] = e["external"]
                return str(ext.get("server_name") or ext["host"])
    return ""


# ---- TLS ------------------------------------------------------------------------------------


def client_tls(topology: Topology, pki_dir: Path, own_ca: str) -> dict[str, str]:
    """The run's TLS files when it has external replicas: the user's client certificate
    and key, and a CA bundle (the throwaway CA and every CA the external replicas name)
    that clients use to check servers and own replicas use to check clients."""
    from cryptography import x509

    ident = topology.client_identity
    if ident is None or ident.cert is None or ident.key is None:
        raise ClusterError(f"{topology.source}: no external replica, no client identity")
    cas = [own_ca]
    for r in topology.external_replicas:
        ca = topology.external_tls(r).ca
        if ca and ca not in cas:
            cas.append(ca)
    bundle = pki_dir / "ca-bundle.pem"
    bundle.write_text("".join(Path(c).read_text().rstrip("\n") + "\n" for c in cas))
    own = [r for r in topology.replicas if r not in topology.external_replicas]
    if own:
        chain = x509.load_pem_x509_certificates(Path(ident.cert).read_bytes())
        leaf, issuers = chain[0], chain[1:]
        for c in cas[1:]:
            issuers += x509.load_pem_x509_certificates(Path(c).read_bytes())
        if not any(_issued_by(leaf, ca) for ca in issuers):
            raise ClusterError(
                f"{topology.source}: {ident.where}.cert: {ident.cert} "
                f"({leaf.subject.rfc4514_string()}) is not signed by a CA in tls.ca, so the "
                f"replicas kmschaos starts ({', '.join(own)}) could not trust it; add its "
                "issuer to tls.ca, or make every replica external"
            )
    return {"ca": str(bundle), "cert": ident.cert, "key": ident.key}


def _issued_by(cert: Any, ca: Any) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - whatever the reason, not its issuer
        return False
    return True


def identity_of(cert_path: str) -> str:
    """The common name of a client certificate (PyKMIP's owner of what it creates)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError):
        return ""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


# ---- the key record -------------------------------------------------------------------------


@dataclass
class KeyRecord:
    name: str
    uid: str | None = None
    replica: str | None = None
    created: float | None = None
    destroyed: float | None = None
    error: str = ""


def ledger_path(state_dir: Path) -> Path:
    return StateFolder(state_dir).ledger


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with open(StateFolder(state_dir).ledger_lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_ledger(state_dir: Path) -> dict[str, Any]:
    """The `external-keys.json` document; an empty one when there is none."""
    try:
        doc: dict[str, Any] = json.loads(ledger_path(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return {"run_id": "", "name_prefix": "", "keep_keys": False, "next": 1, "keys": []}
    return doc


def _write_ledger(state_dir: Path, doc: dict[str, Any]) -> None:
    path = ledger_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


def key_records(state_dir: Path) -> list[KeyRecord]:
    """Every key recorded for external replicas, in creation order."""
    return [KeyRecord(**k) for k in read_ledger(state_dir)["keys"]]


def export_ledger(state_dir: Path, dest: Path) -> Path | None:
    """Copy the run's `external-keys.json` into `dest` (a report folder), if any."""
    src = ledger_path(state_dir)
    if not src.exists():
        return None
    dest.mkdir(parents=True, exist_ok=True)
    out = ScenarioFolder(dest).ledger
    out.write_text(src.read_text())
    return out


def run_key_uids(state_dir: Path, replica: str) -> set[str]:
    """Uids of the keys the run made on an external replica (what the auditor reads)."""
    return {k.uid for k in key_records(state_dir) if k.uid and k.replica == replica}


def init_ledger(state_dir: Path, run_id: str, keep_keys: bool) -> None:
    """Start the run's record (keeping keys already recorded by this run)."""
    with _locked(state_dir):
        doc = read_ledger(state_dir)
        if doc.get("run_id") != run_id:
            doc = {**doc, "run_id": run_id, "next": 1, "keys": []}
        doc.update(name_prefix=f"{KEY_PREFIX}-{run_id}-", keep_keys=keep_keys)
        _write_ledger(state_dir, doc)


class RunKeys:
    """Names the run's keys ``kmschaos-<run id>-<n>`` and records those made on external
    replicas (thread-safe; the `KeyNames` a policy takes).

    Without external replicas the counter lives in memory and nothing is written. With
    them, `n` comes from the record (unique across processes) and each name is recorded
    before its Create is sent, so a Create whose answer was lost can still be found by
    name and destroyed.
    """

    def __init__(self, state_dir: Path, run_id: str, external: frozenset[str]) -> None:
        self.state_dir = state_dir
        self.prefix = f"{KEY_PREFIX}-{run_id}-"
        self.external = external
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    @classmethod
    def for_state(cls, state: ClusterState) -> RunKeys:
        return cls(Path(state.state_dir), state.run_id, external_names(state))

    def next_name(self) -> str:
        if not self.external:
            with self._lock:
                return f"{self.prefix}{next(self._counter)}"
        with self._lock, _locked(self.state_dir):
            doc = read_ledger(self.state_dir)
            n = int(doc.get("next", 1))
            name = f"{self.prefix}{n}"
            doc["next"] = n + 1
            doc["keys"].append(asdict(KeyRecord(name, created=time.time())))
            _write_ledger(self.state_dir, doc)
            return name

    def created(self, name: str, uid: str, replica: str) -> None:
        """A Create was answered: record uid and replica (external), or drop the name
        (a key on a replica kmschaos runs goes away with it)."""
        if not self.external:
            return
        with self._lock, _locked(self.state_dir):
            doc = read_ledger(self.state_dir)
            keys = [k for k in doc["keys"] if k["name"] != name or replica in self.external]
            for k in keys:
                if k["name"] == name:
                    k.update(uid=uid, replica=replica)
            doc["keys"] = keys
            _write_ledger(self.state_dir, doc)


# ---- destroying what the run made -----------------------------------------------------------


@dataclass
class Settlement:
    """What `settle_keys` did: keys destroyed now, kept on purpose, or left (with why)."""

    destroyed: list[KeyRecord] = field(default_factory=list)
    kept: list[KeyRecord] = field(default_factory=list)
    left: list[KeyRecord] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.destroyed:
            parts.append(f"{len(self.destroyed)} key(s) destroyed on external replicas")
        if self.kept:
            parts.append(f"{len(self.kept)} key(s) kept (--keep-keys)")
        if self.left:
            why = "; ".join(sorted({f"{k.replica or '?'}: {k.error}" for k in self.left}))
            parts.append(f"{len(self.left)} key(s) could not be destroyed ({why})")
        return ", ".join(parts) or "no key on external replicas"


def settle_keys(
    state: ClusterState, keep: bool | None = None, timeout_s: float = 10.0
) -> Settlement:
    """Destroy every recorded key still on an external replica, directly (not through a
    link), unless `keep` (None: as recorded when the cluster started). A Create whose
    outcome was unknown is looked up by name on every external replica. Errors are
    recorded per key, never raised."""
    sdir = Path(state.state_dir)
    out = Settlement()
    if not ledger_path(sdir).exists():
        return out
    with _locked(sdir):
        doc = read_ledger(sdir)
        keep = bool(doc.get("keep_keys")) if keep is None else keep
        records = [KeyRecord(**k) for k in doc["keys"]]
        todo = [k for k in records if k.destroyed is None]
        if keep:
            out.kept = todo
            return out
        reached = set()
        for replica in sorted(external_names(state)):
            mine = [k for k in todo if k.replica == replica or k.uid is None]
            if not mine:
                reached.add(replica)
                continue
            if _settle_on(state, replica, mine, timeout_s):
                reached.add(replica)
        unknown_everywhere = [k for k in todo if k.uid is None and reached >= external_names(state)]
        doc["keys"] = [asdict(k) for k in records if k not in unknown_everywhere]
        _write_ledger(sdir, doc)
    for k in todo:
        if k in unknown_everywhere:
            continue
        (out.destroyed if k.destroyed is not None else out.left).append(k)
    return out


def _settle_on(
    state: ClusterState, replica: str, records: list[KeyRecord], timeout_s: float
) -> bool:
    """Destroy `records` on one external replica; False if it could not be reached."""
    from kmip.core import enums
    from kmip.core.factories.attributes import AttributeFactory
    from kmip.pie.exceptions import KmipOperationFailure

    from harness.client.operations import empty_client_config, new_pie_client
    from harness.topology.model import audit_kmip_version

    rs = state.replicas[replica]
    t = state.tls
    conf = empty_client_config(Path(state.state_dir) / "clients")
    version = audit_kmip_version(state.topology, replica)
    pie = new_pie_client([rs.host], rs.port, t["ca"], t["cert"], t["key"], conf, version)
    pie.proxy.timeout = timeout_s
    try:
        pie.open()
    except Exception as e:  # noqa: BLE001 - an unreachable KMS leaves its keys recorded
        for k in records:
            if k.replica == replica:
                k.error = f"cannot connect to {rs.host}:{rs.port}: {e!r}"[:300]
        return False
    try:
        for k in records:
            uids = [k.uid] if k.uid and k.replica == replica else []
            if k.uid is None:
                name = AttributeFactory().create_attribute(enums.AttributeType.NAME, k.name)
                try:
                    uids = [str(u) for u in pie.locate(attributes=[name])]
                except KmipOperationFailure as e:
                    k.error = f"locate by name failed: {e}"[:300]
                    continue
                if uids:
                    k.uid, k.replica = uids[0], replica
            for uid in uids:
                k.error = _destroy(pie, uid)
            if uids and not k.error:
                k.destroyed = time.time()
    except Exception as e:  # noqa: BLE001 - the connection broke: the rest stays recorded
        for k in records:
            if k.destroyed is None and k.replica == replica and not k.error:
                k.error = f"connection to {rs.host}:{rs.port} failed: {e!r}"[:300]
        return False
    finally:
        with contextlib.suppress(Exception):
            pie.close()
    return True


def _destroy(pie: Any, uid: str) -> str:
    """Destroy one key ("" on success, or why not). An active key is revoked first (KMIP
    destroys only inactive keys); a key already gone counts as destroyed."""
    from kmip.core import enums
    from kmip.pie.exceptions import KmipOperationFailure

    try:
        pie.destroy(uid)
        return ""
    except KmipOperationFailure as e:
        if e.reason == enums.ResultReason.ITEM_NOT_FOUND:
            return ""
        first = str(e)
    try:
        pie.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
        pie.destroy(uid)
    except KmipOperationFailure as e:
        return f"destroy failed: {first}; after revoke: {e}"[:300]
    return ""
