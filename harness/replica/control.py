"""Live controls of the replica program: the TLS it serves, stalled handshakes, idle
reaping, lost responses, and its clock.

    harness ──writes──> CONTROL_DIR/tls.json ──polled (50 ms)──> this replica's listener
                        CONTROL_DIR/clock    ──libfaketime (≤ 1 s)──> this replica's clock

The harness writes ``tls.json`` into the replica's control folder (``--control-dir``:
on the local backend a folder of the replica's data, on docker the same host folder
mounted read-only at /config). A thread polls its modification time and applies a
change at once to connections accepted from then on; established sessions keep what
they negotiated, as with a real server that reloads its certificate:

- ``cert`` / ``key``: the server certificate new handshakes get (files in the control
  folder; absent: the ones the program started with);
- ``ca``: whom the replica trusts for client certificates (absent: ``--ca``);
- ``drop_sessions``: a new value closes every open session (as a server restarted onto
  new material would, without losing its process), so every client meets the change
  on its next connection;
- ``stall_handshake``: an accepted connection gets no handshake answer while it is set;
- ``idle_reap_s`` / ``idle_silent``: a session that has waited that long for a request
  is closed (FIN), or with ``idle_silent`` goes deaf as behind a middlebox that forgot
  the flow: later requests get no answer (until the client gives up and closes);
- ``lose_responses`` / ``lose_token``: a new token arms the count: the next that many
  requests run, and instead of each response the connection is closed (shutdown, then
  close): the client sees EOF after its request went out (a Create made its key). A
  Discover Versions meanwhile is closed on too but not counted: it is how the harness
  proves the fault (`harness.faults.lost_response`) without using up a lost response.

What was applied is written back (its generation, ``applied.json`` in the control
folder: the harness waits for it) and said once on the program's standard output.

The clock: when libfaketime is preloaded (``LD_PRELOAD``, with ``FAKETIME_TIMESTAMP_FILE``
naming ``CONTROL_DIR/clock`` and ``FAKETIME_DONT_FAKE_MONOTONIC=1``), the offset written
into that file (``+0``, ``-3600s``) moves the program's wall clock within a second;
monotonic time is left alone, so timeouts and intervals are unaffected. libfaketime
0.9.10 makes ``time.sleep`` fail with EINVAL when monotonic time is not faked:
`patch_sleep` gives the program a sleep that does not go through clock_nanosleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TLS_CONTROL = "tls.json"
CLOCK_FILE = "clock"
APPLIED = "applied.json"
POLL_S = 0.05
NO_OFFSET = "+0\n"  # libfaketime: the real time
IDLE_TICK_S = 0.1  # how often a waiting session looks at the idle-reap setting
# a TTLV Operation item's head: tag 42005C, type Enumeration, length 4
OPERATION_TTLV = bytes.fromhex("42005c0500000004")
DISCOVER_VERSIONS = 0x1E  # KMIP Operation Discover Versions


@dataclass(frozen=True)
class Controls:
    generation: int = 0
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    drop_sessions: str = ""
    stall_handshake: bool = False
    idle_reap_s: float | None = None
    idle_silent: bool = False
    lose_responses: int = 0
    lose_token: str = ""

    @classmethod
    def read(cls, path: Path) -> Controls:
        raw = json.loads(path.read_text())
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in names})


class LostResponses:
    """How many responses are still to be lost: armed by a new ``lose_token`` (its
    ``lose_responses``), spent by the sessions one response at a time, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token = ""
        self._left = 0

    def arm(self, controls: Controls) -> None:
        with self._lock:
            if controls.lose_token != self._token:
                self._token = controls.lose_token
                self._left = max(0, int(controls.lose_responses)) if self._token else 0

    def take(self, operation: int | None) -> int | None:
        """Whether the response to `operation` is lost: None if not, else how many are
        left to lose (a Discover Versions is lost without being counted)."""
        with self._lock:
            if self._left <= 0:
                return None
            if operation != DISCOVER_VERSIONS:
                self._left -= 1
            return self._left


CURRENT = Controls()  # what sessions consult; replaced whole, never mutated
LOST = LostResponses()
_released = threading.Condition()
_sessions: set[ssl.SSLSocket] = set()  # the connections of running sessions
_sessions_lock = threading.Lock()


def faketime_active() -> bool:
    return "faketime" in os.environ.get("LD_PRELOAD", "")


def patch_sleep() -> None:
    """Under libfaketime with real monotonic time, clock_nanosleep fails (EINVAL):
    sleep with select's timeout instead (every thread, and forked helpers, use it)."""
    if not faketime_active():
        return

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + max(0.0, seconds)
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = sleep  # type: ignore[assignment]


def server_context(protocol: int, ciphers: str, cert: str, key: str, ca: str) -> ssl.SSLContext:
    """The context PyKMIP's server builds in `start()`, from other files."""
    ctx = ssl.SSLContext(protocol)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, keyfile=key)
    return ctx


class ControlWatcher(threading.Thread):
    """Polls the control folder's ``tls.json`` and applies each change to `server`
    (a started `KmipServer`): its listening socket's context, and `CURRENT`."""

    def __init__(self, server: Any, control_dir: Path, cert: str, key: str, ca: str) -> None:
        super().__init__(name="kmschaos-controls", daemon=True)
        self.server = server
        self.control_dir = control_dir
        self.defaults = (cert, key, ca)
        self._seen: tuple[int, int] | None = None
        self._files: tuple[str, str, str] = self.defaults

    def run(self) -> None:
        tick = threading.Event()
        while True:
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 - a bad control file never stops serving
                print(f"controls: {TLS_CONTROL} not applied: {e!r}", flush=True)
            tick.wait(POLL_S)

    def poll(self) -> None:
        path = self.control_dir / TLS_CONTROL
        try:
            st = path.stat()
            seen = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = (0, 0)
        if seen == self._seen:
            return
        controls = Controls.read(path) if seen != (0, 0) else Controls()
        self.apply(controls)
        self._seen = seen

    def _file(self, name: str | None, default: str) -> str:
        return str(self.control_dir / name) if name else default

    def apply(self, controls: Controls) -> None:
        global CURRENT
        files = (
            self._file(controls.cert, self.defaults[0]),
            self._file(controls.key, self.defaults[1]),
            self._file(controls.ca, self.defaults[2]),
        )
        if files != self._files:
            suite = self.server.auth_suite
            ctx = server_context(suite.protocol, suite.ciphers, *files)
            # SSLSocket.accept wraps each connection with `self.context`; the setter
            # of a listening socket fails (no SSL object), so set what it reads
            self.server._socket._context = ctx
            self._files = files
        was_stalled = CURRENT.stall_handshake
        drop = controls.drop_sessions and controls.drop_sessions != CURRENT.drop_sessions
        CURRENT = controls
        LOST.arm(controls)
        if drop:
            _drop_sessions()
        if was_stalled and not controls.stall_handshake:
            with _released:
                _released.notify_all()
        try:
            tmp = self.control_dir / (APPLIED + ".tmp")
            tmp.write_text(json.dumps({"generation": controls.generation}))
            os.replace(tmp, self.control_dir / APPLIED)
        except OSError as e:  # a read-only folder (docker compose mounts it so)
            print(f"controls: generation {controls.generation} applied, not acknowledged: {e}")
            return
        print(f"controls: generation {controls.generation} applied", flush=True)


def install_session_hooks() -> None:
    """Make PyKMIP's sessions obey `CURRENT`: wait before the handshake while it is
    stalled, reap a session idle for `idle_reap_s`, and close the connection instead of
    sending a response while `LOST` says so."""
    from kmip.core import enums, exceptions
    from kmip.services.server.session import KmipSession

    run = KmipSession.run
    receive = KmipSession._receive_request
    send = KmipSession._send_response

    def stalled_run(self: Any) -> None:
        with _sessions_lock:
            _sessions.add(self._connection)
        try:
            with _released:
                _released.wait_for(lambda: not CURRENT.stall_handshake)
            run(self)
        finally:
            with _sessions_lock:
                _sessions.discard(self._connection)

    def reaping_receive(self: Any) -> Any:
        conn = self._connection
        idle_since = time.monotonic()
        while not conn.pending():
            reap = CURRENT.idle_reap_s
            if reap is not None and time.monotonic() - idle_since >= reap:
                if CURRENT.idle_silent:
                    _deaf_until_closed(conn)
                raise exceptions.ConnectionClosed()
            readable, _, _ = select.select([conn], [], [], IDLE_TICK_S)
            if readable:
                break
        return receive(self)

    known = {o.value for o in enums.Operation}

    def losing_send(self: Any, data: Any) -> None:
        raw = bytes(data)
        operation = _operation(raw)
        left = LOST.take(operation)
        if left is None:
            send(self, data)
            return
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._connection, socket.SHUT_RDWR)
        name = enums.Operation(operation).name if operation in known else "a request"
        print(f"controls: response to {name} lost, connection closed ({left} left)", flush=True)
        raise exceptions.ConnectionClosed()  # `run` closes the connection and ends

    KmipSession.run = stalled_run
    KmipSession._receive_request = reaping_receive
    KmipSession._send_response = losing_send


def _operation(message: bytes) -> int | None:
    """The Operation of a KMIP message's first batch item (None: none found)."""
    at = message.find(OPERATION_TTLV)
    if at < 0 or len(message) < at + 12:
        return None
    return int.from_bytes(message[at + 8 : at + 12], "big")


def _drop_sessions() -> None:
    """Close every open session's connection (its thread then ends as on a client's
    close)."""
    with _sessions_lock:
        open_now = list(_sessions)
    for conn in open_now:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(conn, socket.SHUT_RDWR)
    if open_now:
        print(f"controls: closed {len(open_now)} open session(s)", flush=True)


def _deaf_until_closed(conn: ssl.SSLSocket) -> None:
    """Read and drop whatever the client sends, answer nothing, until it closes."""
    while True:
        readable, _, _ = select.select([conn], [], [], 1.0)
        if not readable:
            continue
        try:
            data = conn.recv(4096)
        except (OSError, ssl.SSLError):
            return
        if not data:
            return


def seed_control_dir(control_dir: Path) -> None:
    """The files the program reads from the start: a clock with no offset."""
    control_dir.mkdir(parents=True, exist_ok=True)
    clock = control_dir / CLOCK_FILE
    if not clock.exists():
        clock.write_text(NO_OFFSET)
