"""`latency` and `bandwidth`: slow links into the replica (server -> client stream).

client <── listen <──[latency ms ± jitter | bandwidth KB/s]── replica

Seen by a TLS handshake through one of the links, compared with one to the replica's
direct address: for `latency` the server's first answer comes at least `ms` − `jitter`
later (less a small slack); for `bandwidth` the handshake's bytes take at least half the
time the rate allows for them, beyond the quickest of interleaved handshakes through
another replica's link and to the replica's direct address (so neither a loaded
Toxiproxy nor a busy replica passes for a slow link). A handshake too small (a fast
rate) or too large (a rate of a few KB/s) to time cheaply is "could not tell", with the
reason.
"""

from __future__ import annotations

from typing import Any

from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.faults.probes import (
    Effect,
    Seen,
    handshake_direct,
    handshake_through,
    ms,
    probe_timeout,
    quickest,
    slower_by,
)
from harness.links import Link

BANDWIDTH_PROBE_MIN_S = 0.005  # below this, a handshake's transfer time is noise
BANDWIDTH_PROBE_MAX_S = 1.0  # above this, a probe would slow every inject down
BANDWIDTH_PROBE_ROUNDS = 3  # each side's quickest of this many handshakes


class Latency(LinkFault):
    kind = "latency"
    position = 80
    summary = "`latency` toxic on responses: `--ms N`, `--jitter N`"
    client_sees = "every answer later"
    heals = "toxic removed"
    parameters = (
        Param("ms", "ms", "milliseconds added to each response", required=True),
        Param("jitter", "ms", "± jitter in milliseconds", default=0),
    )
    adds_delay = "ms"
    proof = (
        "a TLS handshake through a link: its first answer at least `ms` − `jitter` later "
        "than the direct address's"
    )

    def observe(self) -> Effect:
        added = int(self.param("ms")) - int(self.param("jitter"))
        if added <= 0:
            return None, f"{self.param('ms')} ms ± {self.param('jitter')} ms guarantees no delay"
        links = self.links()
        if not links:
            return None, f"no client link into {self.target} to probe"
        timeout = probe_timeout(self.cluster) + (added + 2 * int(self.param("jitter"))) / 1000
        direct = handshake_direct(self.cluster, self.target, samples=3)
        through = handshake_through(self.cluster, links[0], timeout)
        what = f"a TLS handshake through {links[0].name}"
        return slower_by(through, direct, added, what, f"{self.target}'s direct address")

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (
                "latency",
                "downstream",
                {"latency": int(self.param("ms")), "jitter": int(self.param("jitter"))},
            )
        ]


class Bandwidth(LinkFault):
    kind = "bandwidth"
    position = 90
    summary = "`bandwidth` toxic on responses: `--kbps N` KB/s"
    client_sees = "slow answers"
    heals = "toxic removed"
    parameters = (Param("kbps", "kbps", "responses limited to this many KB/s", required=True),)
    proof = (
        "a TLS handshake through a link: its bytes take at least half the time the rate "
        "allows, compared with handshakes through another replica's link and to the "
        "replica's direct address"
    )

    def observe(self) -> Effect:
        rate = int(self.param("kbps")) * 1000  # Toxiproxy's KB: 1000 bytes
        links = self.links()
        if not links:
            return None, f"no client link into {self.target} to probe"
        timeout = probe_timeout(self.cluster)
        control_link = self._control_link(links[0])
        sized = self._control(control_link, timeout)
        if not sized.answered or not sized.bytes_in:
            return None, f"{sized.words()}: nothing to compare with"
        allowed = sized.bytes_in / rate
        kbps = self.param("kbps")
        per = f"{sized.bytes_in} bytes of a handshake at {kbps} KB/s take {ms(allowed)}"
        if allowed < BANDWIDTH_PROBE_MIN_S:
            return None, f"{per}: too little to tell from noise"
        if allowed > BANDWIDTH_PROBE_MAX_S:
            return None, f"{per}: too slow to probe cheaply at every inject"
        # interleaved, so that a burst of load lands on every side: the link's handshake
        # against one through another replica's link (the proxy's cost on both sides)
        # and against the replica's direct address (a slow replica on both sides)
        rounds = [
            (
                handshake_through(self.cluster, links[0], timeout + 2 * allowed),
                self._control(control_link, timeout),
                handshake_direct(self.cluster, self.target),
            )
            for _ in range(BANDWIDTH_PROBE_ROUNDS)
        ]
        through, control, direct = (quickest(side) for side in zip(*rounds, strict=True))
        if not through.answered:
            return None, f"{through.words()}: no transfer to time"
        controls = [c for c in (control, direct) if c.answered] or [sized]
        slowest = max(controls, key=lambda c: c.seconds)
        extra = through.seconds - slowest.seconds
        said = f"{through.words()}, {ms(extra)} more than {slowest.words()}; {per}"
        return extra >= allowed / 2, said

    def _control_link(self, probed: Link) -> Link | None:
        """A link of the same Toxiproxy into another replica (the same client's first),
        or None."""
        others = [
            lk
            for lk in self.cluster.state.link_objects()
            if lk.replica != self.target and lk.replica in self.cluster.state.replicas
        ]
        if not others:
            return None
        return min(others, key=lambda lk: lk.client != probed.client)

    def _control(self, control: Link | None, timeout: float) -> Seen:
        """A handshake without the toxic: through `control`, else at the direct address."""
        if control is None:
            return handshake_direct(self.cluster, self.target)
        return handshake_through(self.cluster, control, timeout)

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("bandwidth", "downstream", {"rate": int(self.param("kbps"))})]
