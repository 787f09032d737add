"""Replication around PyKMIP, without forking it: the `async` profile.

Runs inside each replica process, beside PyKMIP's server:

    kms-a (PyKMIP + agent) ──HTTP over link kms-a=>kms-d (Toxiproxy)──> kms-d agent

- **Cluster-unique identifiers.** A SQLAlchemy ``before_flush`` hook gives every new
  object the id ``milliseconds * 100 + replica index`` (index < 100), so two replicas
  never hand out the same id, and a wiped replica never reuses one.
- **Versions.** Every object has a version ``(timestamp, origin replica, content
  hash)`` in a side database. The agent scans PyKMIP's database every interval; a
  changed hash that replication did not write is a local write (new version, origin =
  this replica); a vanished object is a Destroy (a tombstone version).
- **Anti-entropy push.** Every ``interval_ms``, for each peer, the agent sends the
  objects whose version the peer has not acknowledged: their rows from every PyKMIP
  table (key material, type, algorithm, length, state, names...) with their ids. The
  peer applies an object when its version is newer — last writer wins by timestamp,
  then replica name — and acknowledges with its resulting versions. A peer answers
  with an epoch chosen at its start: a restarted or wiped peer gets everything again,
  so it catches up (a wiped one is refilled).

Every push travels over its own Toxiproxy link (one per replica pair and direction),
so partitions, latency and refusals hit replication exactly like clients.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("kmschaos.replication")

# PyKMIP tables keyed by the object's uid (joined-table inheritance), parents first.
UID_TABLES = (
    "managed_objects",
    "crypto_objects",
    "opaque_objects",
    "keys",
    "symmetric_keys",
    "public_keys",
    "private_keys",
    "split_keys",
    "secret_data_objects",
    "certificates",
    "x509_certificates",
)
Version = tuple[float, str, str]  # (timestamp, origin, content hash; "" = destroyed)
# Attributes kept in their own tables and joined through a map table.
LINKED = (
    ("object_groups", "object_group_map", ("object_group",)),
    ("app_specific_info", "app_specific_info_map", ("application_namespace", "application_data")),
)
_MAP_REF = {"object_group_map": "object_group_id", "app_specific_info_map": "app_specific_info_id"}


def install_id_hook(index: int) -> None:
    """Make every new PyKMIP object's id cluster-unique (see module doc)."""
    from kmip.pie.objects import ManagedObject
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    lock = threading.Lock()
    last = [0]

    def next_id() -> int:
        with lock:
            candidate = int(time.time() * 1000) * 100 + index
            last[0] = max(candidate, last[0] + 100)
            return last[0]

    @event.listens_for(Session, "before_flush")
    def assign(session: Session, _ctx: Any, _instances: Any) -> None:
        for obj in session.new:
            if isinstance(obj, ManagedObject) and obj.unique_identifier is None:
                obj.unique_identifier = next_id()


def _encode(v: Any) -> Any:
    if isinstance(v, bytes | memoryview):
        return {"b64": base64.b64encode(bytes(v)).decode()}
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "b64" in v:
        return base64.b64decode(v["b64"])
    return v


def _post(address: str, path: str, body: dict[str, Any], timeout_s: float) -> Any:
    """POST JSON to a peer's agent (through its replication link); the JSON answer."""
    req = urllib.request.Request(
        f"http://{address}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return json.loads(r.read())


class Store:
    """Reads and writes whole objects in PyKMIP's SQLite database."""

    def __init__(self, db_path: Path, versions_path: Path) -> None:
        self.db = sqlite3.connect(db_path, timeout=10, check_same_thread=False)
        self.meta = sqlite3.connect(versions_path, timeout=10, check_same_thread=False)
        # WAL: PyKMIP's readers never wait for a replication write, and commits are cheap
        for conn in (self.db, self.meta):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        self.meta.execute(
            "CREATE TABLE IF NOT EXISTS versions "
            "(uid INTEGER PRIMARY KEY, ts REAL, origin TEXT, hash TEXT)"
        )
        self.meta.commit()
        self.tables = {
            r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }

    def uids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT uid FROM managed_objects")]

    def fingerprints(self) -> dict[int, tuple[Any, ...]]:
        """A cheap per-object summary that changes whenever Create/Activate/Revoke/
        Destroy/naming change the object; a full read is needed only when it does."""
        cur = self.db.execute(
            "SELECT m.uid, m.name_index, m.operation_policy_name, length(m.value), "
            "c.state, c.cryptographic_usage_mask, "
            "(SELECT count(*) FROM managed_object_names n WHERE n.mo_uid = m.uid), "
            "(SELECT count(*) FROM object_group_map g WHERE g.managed_object_id = m.uid), "
            "(SELECT count(*) FROM app_specific_info_map a WHERE a.managed_object_id = m.uid) "
            "FROM managed_objects m LEFT JOIN crypto_objects c ON c.uid = m.uid"
        )
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}

    def read(self, uid: int) -> dict[str, list[dict[str, Any]]] | None:
        rows: dict[str, list[dict[str, Any]]] = {}
        for table in UID_TABLES:
            if table in self.tables:
                cur = self.db.execute(f"SELECT * FROM {table} WHERE uid = ?", (uid,))
                cols = [d[0] for d in cur.description]
                found = [dict(zip(cols, map(_encode, r), strict=True)) for r in cur.fetchall()]
                if found:
                    rows[table] = found
        if "managed_objects" not in rows:
            return None
        cur = self.db.execute(
            "SELECT name, name_index, name_type FROM managed_object_names WHERE mo_uid = ? "
            "ORDER BY name_index",
            (uid,),
        )
        rows["managed_object_names"] = [
            {"name": n, "name_index": i, "name_type": t} for n, i, t in cur.fetchall()
        ]
        # many-to-many attributes, copied by value (their row ids are local)
        for table, map_table, linked_cols in LINKED:
            if table in self.tables and map_table in self.tables:
                cur = self.db.execute(
                    f"SELECT {', '.join('t.' + c for c in linked_cols)} FROM {table} t "
                    f"JOIN {map_table} m ON m.{_MAP_REF[map_table]} = t.id "
                    "WHERE m.managed_object_id = ? ORDER BY t.id",
                    (uid,),
                )
                found = [dict(zip(linked_cols, r, strict=True)) for r in cur.fetchall()]
                if found:
                    rows[table] = found
        return rows

    @staticmethod
    def digest(rows: dict[str, list[dict[str, Any]]] | None) -> str:
        if rows is None:
            return ""
        return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:32]

    def write(self, uid: int, rows: dict[str, list[dict[str, Any]]] | None) -> None:
        """Replace object `uid` with `rows` (None: delete it), in one transaction."""
        self.write_many([(uid, rows)])

    def write_many(self, items: list[tuple[int, dict[str, list[dict[str, Any]]] | None]]) -> None:
        """Replace several objects in one transaction (one commit, however many)."""
        if not items:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for uid, rows in items:
                self._replace(uid, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _replace(self, uid: int, rows: dict[str, list[dict[str, Any]]] | None) -> None:
        db = self.db
        db.execute("DELETE FROM managed_object_names WHERE mo_uid = ?", (uid,))
        for table, map_table, _cols in LINKED:
            if table in self.tables and map_table in self.tables:
                ref = _MAP_REF[map_table]
                db.execute(
                    f"DELETE FROM {table} WHERE id IN "
                    f"(SELECT {ref} FROM {map_table} WHERE managed_object_id = ?)",
                    (uid,),
                )
                db.execute(f"DELETE FROM {map_table} WHERE managed_object_id = ?", (uid,))
        for table in reversed(UID_TABLES):
            if table in self.tables:
                db.execute(f"DELETE FROM {table} WHERE uid = ?", (uid,))
        if rows is not None:
            for table in UID_TABLES:
                for row in rows.get(table, []):
                    cols = list(row)
                    db.execute(
                        f"INSERT INTO {table} ({', '.join(cols)}) "
                        f"VALUES ({', '.join('?' for _ in cols)})",
                        [_decode(row[c]) for c in cols],
                    )
            for n in rows.get("managed_object_names", []):
                db.execute(
                    "INSERT INTO managed_object_names (mo_uid, name, name_index, name_type) "
                    "VALUES (?, ?, ?, ?)",
                    (uid, n["name"], n["name_index"], n["name_type"]),
                )
            for table, map_table, linked_cols in LINKED:
                for row in rows.get(table, []):
                    cur = db.execute(
                        f"INSERT INTO {table} ({', '.join(linked_cols)}) "
                        f"VALUES ({', '.join('?' for _ in linked_cols)})",
                        [row[c] for c in linked_cols],
                    )
                    db.execute(
                        f"INSERT INTO {map_table} (managed_object_id, {_MAP_REF[map_table]}) "
                        "VALUES (?, ?)",
                        (uid, cur.lastrowid),
                    )

    def versions(self) -> dict[int, Version]:
        return {
            uid: (ts, origin, h)
            for uid, ts, origin, h in self.meta.execute(
                "SELECT uid, ts, origin, hash FROM versions"
            )
        }

    def set_version(self, uid: int, v: Version) -> None:
        self.set_versions({uid: v})

    def set_versions(self, changes: dict[int, Version]) -> None:
        if not changes:
            return
        self.meta.executemany(
            "INSERT OR REPLACE INTO versions (uid, ts, origin, hash) VALUES (?, ?, ?, ?)",
            [(uid, *v) for uid, v in changes.items()],
        )
        self.meta.commit()


class Agent:
    """The async replication agent of one replica."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        data_dir: Path,
        interval_s: float,
        peers_file: Path | None = None,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.peers_file = peers_file or data_dir / "peers.json"
        self.interval_s = interval_s
        self.epoch = secrets.token_hex(6)
        self.store = Store(data_dir / "kms.sqlite", data_dir / "replication.sqlite")
        self.lock = threading.RLock()
        self.acked: dict[str, tuple[str, dict[int, Version]]] = {}  # peer -> (epoch, versions)
        self._seen: dict[int, tuple[Any, ...]] = {}  # uid -> fingerprint at the last scan
        self._peer_locks: dict[str, threading.Lock] = {}
        self.gate: WriteGate | None = None
        self.stop = threading.Event()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/apply":
                    answer = agent.apply(body)
                elif self.path == "/ping":
                    answer = {"epoch": agent.epoch, "name": agent.name}
                elif self.path == "/forward" and agent.gate is not None:
                    answer = agent.gate.serve_forward(body)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    # ---- local changes --------------------------------------------------------------

    def scan(self) -> dict[int, Version]:
        """Detect local writes and destroys; return the current versions."""
        with self.lock:
            versions = self.store.versions()
            prints = self.store.fingerprints()
            present = set(prints)
            now = time.time()
            changes: dict[int, Version] = {}
            for uid, fp in prints.items():
                v = versions.get(uid)
                if v is not None and self._seen.get(uid) == fp:
                    continue
                h = self.store.digest(self.store.read(uid))
                self._seen[uid] = fp
                if v is None or v[2] != h:
                    changes[uid] = (now, self.name, h)
            for uid, v in versions.items():
                if uid not in present and v[2] != "":
                    changes[uid] = (now, self.name, "")
            self.store.set_versions(changes)
            versions.update(changes)
            return versions

    # ---- receiving ------------------------------------------------------------------

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        applied = 0
        with self.lock:
            mine = self.scan()
            newer: dict[int, Version] = {}
            rows: list[tuple[int, Any]] = []
            for uid_s, obj in body.get("objects", {}).items():
                uid = int(uid_s)
                incoming: Version = tuple(obj["version"])
                current = mine.get(uid)
                if current is None or (incoming[0], incoming[1]) > (current[0], current[1]):
                    newer[uid] = incoming
                    rows.append((uid, obj["rows"]))
            self.store.write_many(rows)
            self.store.set_versions(newer)
            for uid in newer:
                self._seen.pop(uid, None)
            mine.update(newer)
            applied = len(newer)
            result = {str(u): list(mine[u]) for u in map(int, body.get("objects", {})) if u in mine}
        if applied:
            log.info("applied %d object(s) from %s", applied, body.get("from"))
        return {"epoch": self.epoch, "versions": result}

    # ---- sending --------------------------------------------------------------------

    def peers(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.peers_file.read_text())["peers"])
        except (OSError, ValueError, KeyError):
            return {}

    def push(
        self, peer: str, address: str, versions: dict[int, Version], timeout_s: float | None = None
    ) -> None:
        lock = self._peer_locks.setdefault(peer, threading.Lock())
        with lock:
            self._push(peer, address, versions, timeout_s)

    def _push(
        self, peer: str, address: str, versions: dict[int, Version], timeout_s: float | None
    ) -> None:
        epoch, acked = self.acked.get(peer, ("", {}))
        todo = [u for u, v in versions.items() if acked.get(u) != v]
        objects: dict[str, Any] = {}
        with self.lock:
            for uid in todo[:500]:
                v = versions[uid]
                rows = self.store.read(uid) if v[2] else None
                objects[str(uid)] = {"version": list(v), "rows": rows}
        timeout = timeout_s if timeout_s is not None else max(2.0, 10 * self.interval_s)
        answer = _post(address, "/apply", {"from": self.name, "objects": objects}, timeout)
        if answer["epoch"] != epoch:
            acked = {}  # the peer restarted (or was wiped): send it everything again
        for uid_s, v in answer["versions"].items():
            acked[int(uid_s)] = tuple(v)
        self.acked[peer] = (answer["epoch"], acked)

    def _each_peer(self, action: Any, what: str, level: int = logging.DEBUG) -> list[str]:
        """Run `action(peer, address)` for every peer at once (a thread each); the peers
        for which it succeeded."""
        done: list[str] = []
        lock = threading.Lock()

        def one(peer: str, address: str) -> None:
            try:
                action(peer, address)
            except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
                log.log(level, "%s %s failed: %s", what, peer, e)
                return
            with lock:
                done.append(peer)

        threads = [
            threading.Thread(target=one, args=(p, a), daemon=True) for p, a in self.peers().items()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return done

    def push_now(self, timeout_s: float = 2.0) -> list[str]:
        """Push every change to every peer at once; the peers that acknowledged. Used by
        `sync` and `quorum` before a write is answered."""
        versions = self.scan()
        return self._each_peer(
            lambda peer, address: self.push(peer, address, versions, timeout_s),
            "synchronous push to",
            logging.INFO,
        )

    def call(self, peer: str, path: str, body: dict[str, Any], timeout_s: float) -> Any:
        address = self.peers().get(peer)
        if address is None:
            raise OSError(f"no replication link to {peer}")
        return _post(address, path, body, timeout_s)

    def reachable_peers(self, timeout_s: float = 1.0) -> list[str]:
        return self._each_peer(
            lambda _peer, address: _post(address, "/ping", {}, timeout_s), "ping of"
        )

    def loop(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                versions = self.scan()
            except sqlite3.Error as e:
                log.warning("scan failed: %s", e)
                continue
            self._each_peer(
                lambda peer, address, v=versions: self.push(peer, address, v), "push to"
            )

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True, name="repl-http").start()
        threading.Thread(target=self.loop, daemon=True, name="repl-push").start()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            self.server.shutdown()


class WriteGate:
    """`sync` and `quorum`: a write is answered only once replication promises hold.

    Wraps PyKMIP's ``KmipEngine.process_request``. Reads are served locally.

    - `sync`: a write on a replica other than the primary is forwarded (the KMIP request
      itself, over the replication link) to the primary, which commits it and pushes it
      synchronously to every reachable replica before answering. Primary unreachable →
      the write fails with a KMIP error ("read-only").
    - `quorum`: a write runs only when a majority of replicas is reachable, and is
      acknowledged only after a majority stored it; otherwise it fails.
    """

    def __init__(self, agent: Agent, engine: Any, profile: str, primary: str, replicas: int):
        from kmip.services.server import session

        # keep each session's raw request bytes, to forward them unchanged
        self._raw = threading.local()
        receive = session.KmipSession._receive_request
        raw = self._raw

        def receive_request(sess: Any) -> Any:
            data = receive(sess)
            raw.data = bytes(data.buffer)
            return data

        session.KmipSession._receive_request = receive_request
        self.agent = agent
        self.engine = engine
        self.profile = profile
        self.primary = primary
        self.majority = replicas // 2 + 1
        self.timeout_s = max(2.0, 10 * agent.interval_s)
        self._process = engine.process_request
        engine.process_request = self.process_request
        agent.gate = self

    @staticmethod
    def _writes(request: Any) -> bool:
        from kmip.core import enums

        names = (
            "CREATE",
            "CREATE_KEY_PAIR",
            "REGISTER",
            "REKEY",
            "REKEY_KEY_PAIR",
            "DERIVE_KEY",
            "ACTIVATE",
            "REVOKE",
            "DESTROY",
            "ADD_ATTRIBUTE",
            "SET_ATTRIBUTE",
            "MODIFY_ATTRIBUTE",
            "DELETE_ATTRIBUTE",
            "ARCHIVE",
            "RECOVER",
        )
        writes = {getattr(enums.Operation, n) for n in names if hasattr(enums.Operation, n)}
        return any(item.operation.value in writes for item in request.batch_items)

    def _refuse(self, request: Any, message: str) -> tuple[Any, None, Any]:
        from kmip.core import enums

        version = request.request_header.protocol_version
        log.info("write refused: %s", message)
        response = self.engine.build_error_response(
            version, enums.ResultReason.GENERAL_FAILURE, message
        )
        return response, None, version

    def process_request(self, request: Any, credential: Any = None) -> Any:
        if not self._writes(request):
            return self._process(request, credential)
        if self.profile == "sync":
            if self.agent.name != self.primary:
                return self._forward(request, credential)
            return self._primary_write(request, credential)[0]
        # quorum
        reachable = 1 + len(self.agent.reachable_peers(min(1.0, self.timeout_s)))
        if reachable < self.majority:
            return self._refuse(
                request,
                f"read-only: no majority reachable from {self.agent.name} "
                f"({reachable} of {self.majority} needed) (quorum replication)",
            )
        result = self._process(request, credential)
        stored = 1 + len(self.agent.push_now(self.timeout_s))
        if stored < self.majority:
            return self._refuse(
                request,
                f"write stored on {stored} replica(s), fewer than a majority "
                f"({self.majority}): not acknowledged, outcome unknown (quorum replication)",
            )
        return result

    def _primary_write(self, request: Any, credential: Any) -> tuple[Any, list[str]]:
        """sync, on the primary: commit, push to every reachable replica; the result and
        the replicas that stored the write (the primary first)."""
        result = self._process(request, credential)
        return result, [self.agent.name, *self.agent.push_now(self.timeout_s)]

    def _forward(self, request: Any, credential: Any) -> Any:
        from kmip.core import utils
        from kmip.core.messages import contents, messages

        version = request.request_header.protocol_version
        kmip_version = contents.protocol_version_to_kmip_version(version)
        read_version = contents.protocol_version_to_kmip_version(
            self.engine.default_protocol_version
        )
        data = getattr(self._raw, "data", None)
        if data is None:
            return self._refuse(request, "cannot forward a request without its bytes")
        try:
            answer = self.agent.call(
                self.primary,
                "/forward",
                {
                    "request": base64.b64encode(data).decode(),
                    "kmip_version": read_version.name,
                    "credential": list(credential) if credential else None,
                },
                self.timeout_s,
            )
        except (OSError, urllib.error.URLError, ValueError) as e:
            return self._refuse(
                request,
                f"read-only: primary {self.primary} unreachable from {self.agent.name} "
                f"(sync replication): {e}",
            )
        stored_on = answer.get("stored_on")
        if stored_on is not None and self.agent.name not in stored_on:
            # the partition cut the primary's push to this replica: a client reading its
            # own write back from here would not find it, so it is not acknowledged here
            return self._refuse(
                request,
                f"write committed on the primary {self.primary} but not replicated to "
                f"{self.agent.name} (stored on {', '.join(stored_on)}): not acknowledged, "
                "outcome unknown (sync replication)",
            )
        response = messages.ResponseMessage()
        response.read(
            utils.BytearrayStream(base64.b64decode(answer["response"])),
            kmip_version=kmip_version,
        )
        return response, answer.get("max_response_size"), version

    def serve_forward(self, body: dict[str, Any]) -> dict[str, Any]:
        """On the primary: run a forwarded write, replicate it, return the response."""
        from kmip.core import enums, utils
        from kmip.core.messages import contents, messages

        request = messages.RequestMessage()
        request.read(
            utils.BytearrayStream(base64.b64decode(body["request"])),
            kmip_version=enums.KMIPVersion[body["kmip_version"]],
        )
        credential = body.get("credential")
        (response, max_size, version), stored_on = self._primary_write(request, credential)
        stream = utils.BytearrayStream()
        response.write(stream, kmip_version=contents.protocol_version_to_kmip_version(version))
        return {
            "response": base64.b64encode(bytes(stream.buffer)).decode(),
            "max_response_size": max_size,
            "stored_on": stored_on,
        }
