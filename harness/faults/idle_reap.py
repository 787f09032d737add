"""`idle-reap`: a connection that has waited `after` seconds for a request is closed by
the replica (FIN) — or, with `silent`, forgotten as by a stateful middlebox whose idle
timer ran out: later requests vanish and the client waits out its response timeout.

    client ══ open connection, quiet for `after` s ══> replica   ... FIN
    client ══ quiet, then a request ══> (forgotten: no answer, no close)

Only connections kept open between operations are touched: a client that connects for
every operation never notices (ceph-nvmeof #1905: the first request after a quiet
period fails).
"""

from __future__ import annotations

import select
import ssl
import time
from typing import Any, ClassVar

from harness.client.transport import AttemptError, Endpoint, connect_tls
from harness.faults.certificates import TlsControlFault
from harness.faults.params import Param
from harness.faults.probes import Effect
from harness.faults.tls_probes import _discover_versions

SLACK_S = 1.0  # the replica looks at idle sessions every 0.1 s; a loaded machine


class IdleReap(TlsControlFault):
    kind = "idle-reap"
    position = 260
    summary = (
        "a connection idle for `after` s is closed by the replica (FIN); with `silent` it "
        "is forgotten: later requests get no answer"
    )
    client_sees = "the first request after a quiet period: EOF (or, silent, no answer)"
    heals = "idle connections kept again (one already forgotten stays dead)"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("after", "s", "idle seconds before a connection is reaped", required=True),
        Param("silent", "bool", "forget the connection instead of closing it", default=False),
    )
    proof = (
        "a connection opened to the replica and left idle `after` s is closed (silent: a "
        "request on it then gets no answer)"
    )

    control_keys = ("idle_reap_s", "idle_silent")

    def _controls(self) -> dict[str, Any]:
        return {"idle_reap_s": float(self.param("after")), "idle_silent": self.param("silent")}

    def observe_deadline_s(self) -> float:
        return float(self.param("after")) + 2 * SLACK_S

    def observe(self) -> Effect:
        after = float(self.param("after"))
        rs = self.cluster.state.replicas[self.target]
        tls = self.cluster.state.tls
        try:
            conn = connect_tls(
                Endpoint(self.target, rs.host, rs.port), tls["ca"], tls["cert"], tls["key"], 2, 2
            )
        except AttemptError as e:
            return None, f"no connection to {self.target} to leave idle: {e.detail}"
        with conn:
            try:
                _discover_versions(conn)  # a live session, then quiet
            except (OSError, ssl.SSLError, EOFError) as e:
                return None, f"{self.target} did not answer a first request: {e!r}"
            t0 = time.monotonic()
            closed = _closed_within(conn, after + SLACK_S)
            idle = time.monotonic() - t0
            if not self.param("silent"):
                if closed:
                    return True, f"{self.target} closed a connection idle for {idle:.1f} s"
                return False, f"{self.target} kept a connection idle for {idle:.1f} s open"
            if closed:
                return False, f"{self.target} closed the idle connection instead of forgetting it"
            try:
                conn.settimeout(SLACK_S)
                _discover_versions(conn)
            except TimeoutError:
                return True, (
                    f"a request on a connection idle for {idle:.1f} s got no answer within "
                    f"{SLACK_S:g} s, and the connection stayed open"
                )
            except (OSError, ssl.SSLError, EOFError) as e:
                return False, f"the idle connection failed otherwise: {e!r}"
            return False, f"a request after {idle:.1f} s idle was answered"


def _closed_within(conn: ssl.SSLSocket, seconds: float) -> bool:
    """Whether the server closes `conn` within `seconds` (nothing else is expected)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([conn], [], [], left)
        if not readable:
            continue
        try:
            return conn.recv(1) == b""
        except (OSError, ssl.SSLError):
            return True
    return False
