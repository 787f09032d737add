"""PyKMIP's database seen as whole objects, with a version each: what replication copies.

- **Cluster-unique identifiers.** A SQLAlchemy ``before_flush`` hook
  (`install_id_hook`) gives every new object the id ``milliseconds * 100 + replica
  index`` (index < 100), so two replicas never hand out the same id, and a wiped replica
  never reuses one.
- **Objects.** `Store` reads and writes an object's rows in every PyKMIP table (key
  material, type, algorithm, length, state, names...) with its id, bytes as base64.
- **Versions.** Every object has a version ``(timestamp, origin replica, content
  hash)`` in a side database (``replication.sqlite``); a destroyed object keeps a
  tombstone version (hash "").
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

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
        Destroy/naming (a renamed Name too) change the object; a full read is needed
        only when it does."""
        cur = self.db.execute(
            "SELECT m.uid, m.name_index, m.operation_policy_name, length(m.value), "
            "c.state, c.cryptographic_usage_mask, "
            "(SELECT group_concat(n.name_index || '=' || n.name, '|') "
            "FROM managed_object_names n WHERE n.mo_uid = m.uid), "
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
