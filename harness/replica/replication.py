"""Replication around PyKMIP, without forking it: the `async` agent and the write gate
of `sync` and `quorum`.

Runs inside each replica process, beside PyKMIP's server:

    kms-a (PyKMIP + agent) ──HTTP over link kms-a=>kms-d (Toxiproxy)──> kms-d agent

- **Local writes.** The agent scans PyKMIP's database (`harness.replica.store`) every
  interval; a changed hash that replication did not write is a local write (new
  version, origin = this replica); a vanished object is a Destroy (a tombstone version).
- **Anti-entropy push.** Every ``interval_ms``, for each peer (``peers.json``,
  `harness.replica.peers`), the agent sends the objects whose version the peer has not
  acknowledged, with their ids. The peer applies an object when its version is newer —
  last writer wins by timestamp, then replica name — and acknowledges with its resulting
  versions; a sender whose version lost is sent the winner on the next push. Pushes and
  answers carry an epoch chosen at the agent's start: a restarted or wiped peer gets
  everything again, so it catches up (a wiped one is refilled).
- **Idle peers are not pushed.** Once a peer acknowledged everything in its current
  epoch, the loop sends it nothing until there is something to send. An agent always
  pushes to a peer it has not exchanged with since its own start (even with nothing to
  send), so a restarted peer announces its new epoch and is refilled; a replica started
  with its cluster (``--no-announce``: no peer knows an older epoch of it) does not.
  (Forty replicas pushing empty batches to 39 peers every interval were 1,560 HTTP
  requests a second: what kept a 40-replica cluster from starting on 2 cores.)
- **Write gate** (`WriteGate`): `sync` and `quorum` answer a write only once their
  promise holds.

Every push travels over its own Toxiproxy link (one per replica pair and direction),
so partitions, latency and refusals hit replication exactly like clients.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.replica import KMS_DB, VERSIONS_DB
from harness.replica.peers import PEERS_FILE, read_peers
from harness.replica.store import Store, Version

log = logging.getLogger("kmschaos.replication")
# the loop's pushes in flight at once: after a partition of 40 replicas heals, each has
# something for most of its 39 peers, and 1,560 pushes at once starve 2 cores
PUSHES_AT_ONCE = 8


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
        announce: bool = True,
    ) -> None:
        self.name = name
        self.announce = announce
        self.data_dir = data_dir
        self.peers_file = peers_file or data_dir / PEERS_FILE
        self.interval_s = interval_s
        self.epoch = secrets.token_hex(6)
        self.store = Store(data_dir / KMS_DB, data_dir / VERSIONS_DB)
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
            lost: list[int] = []  # the sender's change lost to ours: it must get ours
            rows: list[tuple[int, Any]] = []
            for uid_s, obj in body.get("objects", {}).items():
                uid = int(uid_s)
                incoming: Version = tuple(obj["version"])
                current = mine.get(uid)
                if current is None or (incoming[0], incoming[1]) > (current[0], current[1]):
                    newer[uid] = incoming
                    rows.append((uid, obj["rows"]))
                elif incoming != current:
                    lost.append(uid)
            self.store.write_many(rows)
            self.store.set_versions(newer)
            for uid in newer:
                self._seen.pop(uid, None)
            mine.update(newer)
            applied = len(newer)
            sender = str(body.get("from", ""))
            epoch = body.get("epoch")
            known = self.acked.get(sender)
            if known is not None and epoch not in (None, known[0]):
                # the sender restarted since it last answered us: send it everything
                self.acked.pop(sender, None)
                known = None
            if known is None and epoch is not None:
                known = self.acked.setdefault(sender, (str(epoch), {}))
            if known is not None:
                # the sender holds what it sent: where that is what we hold now, it
                # need not get it back from us (no echo of every relayed object)
                for uid_s, obj in body.get("objects", {}).items():
                    uid = int(uid_s)
                    if mine.get(uid) == tuple(obj["version"]):
                        known[1][uid] = mine[uid]
            # the sender holds a version that lost: forget that it acknowledged ours, so
            # the next push sends it the winner (else both keep their own for ever)
            _, acked = self.acked.get(sender, ("", {}))
            for uid in lost:
                acked.pop(uid, None)
            result = {str(u): list(mine[u]) for u in map(int, body.get("objects", {})) if u in mine}
        if applied:
            log.info("applied %d object(s) from %s", applied, body.get("from"))
        return {"epoch": self.epoch, "versions": result}

    # ---- sending --------------------------------------------------------------------

    def peers(self) -> dict[str, str]:
        return read_peers(self.peers_file)

    def push(
        self,
        peer: str,
        address: str,
        versions: dict[int, Version],
        timeout_s: float | None = None,
        skip_idle: bool = False,
    ) -> None:
        lock = self._peer_locks.setdefault(peer, threading.Lock())
        with lock:
            self._push(peer, address, versions, timeout_s, skip_idle)

    def _push(
        self,
        peer: str,
        address: str,
        versions: dict[int, Version],
        timeout_s: float | None,
        skip_idle: bool,
    ) -> None:
        known = self._known(peer)
        epoch, acked = known if known is not None else ("", {})
        todo = [u for u, v in versions.items() if acked.get(u) != v]
        if skip_idle and not todo and known is not None:
            return  # it acknowledged everything in its epoch: nothing to say
        objects: dict[str, Any] = {}
        with self.lock:
            for uid in todo[:500]:
                v = versions[uid]
                rows = self.store.read(uid) if v[2] else None
                objects[str(uid)] = {"version": list(v), "rows": rows}
        timeout = timeout_s if timeout_s is not None else max(2.0, 10 * self.interval_s)
        body = {"from": self.name, "epoch": self.epoch, "objects": objects}
        answer = _post(address, "/apply", body, timeout)
        if answer["epoch"] != epoch:
            acked = {}  # the peer restarted (or was wiped): send it everything again
        for uid_s, v in answer["versions"].items():
            acked[int(uid_s)] = tuple(v)
        self.acked[peer] = (answer["epoch"], acked)

    def _known(self, peer: str) -> tuple[str, dict[int, Version]] | None:
        """What `peer` acknowledged (its epoch, its versions), or None when it must hear
        from us once (we never exchanged, and we announce)."""
        known = self.acked.get(peer)
        if known is None and not self.announce:
            return ("", {})  # nothing acknowledged, nothing to announce
        return known

    def idle(self, peer: str, versions: dict[int, Version]) -> bool:
        """Whether `peer` acknowledged all of `versions` in its current epoch."""
        known = self._known(peer)
        return known is not None and all(known[1].get(u) == v for u, v in versions.items())

    def _each_peer(
        self,
        action: Any,
        what: str,
        level: int = logging.DEBUG,
        skip: Callable[[str], bool] | None = None,
        at_once: int | None = None,
    ) -> list[str]:
        """Run `action(peer, address)` for every peer (but those `skip` names), a thread
        each, `at_once` of them at a time (default: all); the peers for which it
        succeeded."""
        done: list[str] = []
        lock = threading.Lock()
        slots = threading.BoundedSemaphore(at_once) if at_once else contextlib.nullcontext()

        def one(peer: str, address: str) -> None:
            try:
                with slots:
                    action(peer, address)
            except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
                log.log(level, "%s %s failed: %s", what, peer, e)
                return
            with lock:
                done.append(peer)

        threads = [
            threading.Thread(target=one, args=(p, a), daemon=True)
            for p, a in self.peers().items()
            if skip is None or not skip(p)
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
                lambda peer, address, v=versions: self.push(peer, address, v, skip_idle=True),
                "push to",
                skip=partial(self.idle, versions=versions),
                at_once=PUSHES_AT_ONCE,
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
