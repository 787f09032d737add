"""`lost-response`: the replica runs the next `count` requests and, instead of sending
each response, closes the connection — a response lost on the way back (a middlebox
reset, a crash between commit and reply).

    client ──request──> replica   runs it (a Create makes its key)
    client <──FIN────── replica   no response

The client sees EOF after its request went out (`Attempt.sent`): the outcome is unknown
to it. One that re-sends a mutation then (ovh/kmip-go: up to 3 times on EOF, with the
same Name) makes a second key with that Name; one that does not ends the operation as
`info`. The durability checker reports keys made twice (`duplicate_creates`).

The proof is a Discover Versions sent to the replica's own address: it must be closed on
without a response. The replica closes on it too but does not count it
(`harness.replica.control`), so the probe spends none of the `count` lost responses,
whenever it runs and however often it is retried; no client of the harness sends
Discover Versions.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, ClassVar

from harness.client.transport import AttemptError, Endpoint, connect_tls, describe
from harness.faults.certificates import TlsControlFault
from harness.faults.params import Param
from harness.faults.probes import CONTROL_TIMEOUT_S, Effect
from harness.faults.tls_probes import _discover_versions


class LostResponse(TlsControlFault):
    kind = "lost-response"
    position = 265
    summary = (
        "the replica runs the next `count` requests, then closes the connection instead "
        "of sending each response"
    )
    client_sees = "EOF after its request went out: did it run? (it did: a Create made its key)"
    heals = "responses sent again (what ran without one stays: a key made stays made)"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("count", "count", "how many requests run without their response", default=1),
    )
    client_wait = "none"
    proof = (
        "a Discover Versions sent to the replica's own address is closed on without a "
        "response (not counted: the replica spends none of `count` on it)"
    )

    control_keys = ("lose_responses", "lose_token")

    def _controls(self) -> dict[str, Any]:
        # a new token re-arms the count, even to the value it had
        return {"lose_responses": int(self.param("count")), "lose_token": self.fault_id}

    def observe(self) -> Effect:
        rs = self.cluster.state.replicas[self.target]
        tls = self.cluster.state.tls
        where = f"{self.target} ({rs.host}:{rs.port})"
        timeout = CONTROL_TIMEOUT_S
        try:
            conn = connect_tls(
                Endpoint(self.target, rs.host, rs.port),
                tls["ca"],
                tls["cert"],
                tls["key"],
                timeout,
                timeout,
            )
        except AttemptError as e:
            return None, f"no KMIP session with {where} to send a request on: {e.detail}"
        with conn:
            t0 = time.monotonic()
            try:
                _discover_versions(conn)
            except EOFError as e:
                ms = (time.monotonic() - t0) * 1000
                return True, (
                    f"a Discover Versions sent to {where} was closed on without a response "
                    f"({e}, {ms:.0f} ms)"
                )
            except TimeoutError:
                return False, (
                    f"a Discover Versions sent to {where} got neither a response nor a "
                    f"close within {timeout:g} s"
                )
            except (OSError, ssl.SSLError) as e:
                return False, (
                    f"a Discover Versions sent to {where} failed otherwise than a close: "
                    f"{describe(e)}"
                )
            ms = (time.monotonic() - t0) * 1000
            return False, f"a Discover Versions sent to {where} was answered in {ms:.0f} ms"
