"""`clock-skew`: the replica's wall clock is off by `offset` (libfaketime, preloaded
into every replica, reads the offset from the replica's control folder within a
second; monotonic time, and so every timeout, stays real).

    replica's time() = real time + offset   (certificate checks, KMIP time stamps,
                                             replication's last-writer-wins timestamps)

What follows is what a real skewed server does: it judges certificates by its own
clock (the harness's certificates are valid from 2 days before the cluster started
for 397 days; further off, it refuses the clients' certificates), and async
replication resolves concurrent changes by its timestamps (the `lost_update` checker).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

from cryptography import x509

from harness.cluster.base import CAP_CLOCK, Cluster
from harness.faults.certificates import TlsControlFault
from harness.faults.params import Param
from harness.faults.probes import Effect
from harness.faults.tls_probes import client_handshake, server_time
from harness.wait import wait_until
from harness.yamlfile.values import format_offset, parse_offset

RESOLUTION_S = 1.5  # the time stamp's whole seconds, and the half-second midpoint guess
APPLY_WITHIN_S = 5.0  # libfaketime re-reads its file every second


class ClockSkew(TlsControlFault):
    kind = "clock-skew"
    position = 270
    summary = (
        "the replica's wall clock is moved by `offset` (libfaketime; monotonic time untouched)"
    )
    client_sees = (
        "nothing at first; a skewed replica judges certificates and orders replicated "
        "changes by its own clock"
    )
    heals = "the real time again"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_CLOCK})
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("offset", "offset", "how far the clock is off: +2h, -90s, -1d, +2y", required=True),
    )
    proof = "a KMIP response's time stamp from the replica is `offset` off this host's clock"
    observe_within_s = APPLY_WITHIN_S

    @classmethod
    def _explain_missing(cls, cluster: Cluster, missing: frozenset[str]) -> str:
        return (
            "fault 'clock-skew' needs libfaketime preloaded into the replicas: install "
            "Debian's libfaketime (apt-get install libfaketime) and start the cluster again"
        )

    @property
    def offset_s(self) -> float:
        return parse_offset(self.param("offset"))

    def _inject(self) -> None:
        self.controls.set_clock(self.offset_s)
        self._await_offset(self.offset_s)

    def _heal(self) -> None:
        self.controls.set_clock(0)
        self._await_offset(0.0)

    def _await_offset(self, target: float) -> None:
        """The replica's clock shows `target` (the window opens when clients can see it)."""

        def there() -> bool:
            return self._seen(target)[0] is True

        wait_until(
            there,
            APPLY_WITHIN_S,
            f"{self.target}'s clock at {format_offset(target) if target else 'the real time'}",
            poll_s=0.2,
        )

    def observe(self) -> Effect:
        return self._seen(self.offset_s)

    def _seen(self, want: float) -> Effect:
        """Whether the replica's clock is `want` off: read from a KMIP time stamp, or,
        when that clock puts the clients' certificate out of its validity, from the
        replica rejecting it."""
        said = format_offset(want) if want else "the real time"
        outside = self._outside_client_validity(want)
        if outside:
            seen = client_handshake(self.cluster, self.target)
            if seen.reason and seen.reason.startswith("alert received"):
                return True, (
                    f"{self.target} rejects the clients' certificate ({seen.detail}): its "
                    f"clock at {said} is {outside}"
                )
            return False, f"{self.target}'s clock at {said} would be {outside}, yet: {seen.detail}"
        offset, why = server_time(self.cluster, self.target)
        if offset is None:
            return None, why
        words = f"{self.target}'s KMIP time stamp is {offset:+.1f} s off this host's clock"
        if abs(offset - want) <= RESOLUTION_S:
            return True, f"{words} ({said})"
        return False, f"{words}, not {said} ({want:+.0f} s)"

    def _outside_client_validity(self, offset_s: float) -> str:
        """Why a clock `offset_s` off puts the clients' certificate out of its validity
        ("" when it does not)."""
        cert = x509.load_pem_x509_certificate(Path(self.cluster.state.tls["cert"]).read_bytes())
        t = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
        if t > cert.not_valid_after_utc:
            return f"after the clients' certificate expired ({cert.not_valid_after_utc:%Y-%m-%d})"
        if t < cert.not_valid_before_utc:
            return (
                f"before the clients' certificate is valid "
                f"({cert.not_valid_before_utc:%Y-%m-%d %H:%M})"
            )
        return ""
