"""Faults of a load balancer itself: `lb-down` and `lb-stall`.

    client ──> link ──> HAProxy (killed: Toxiproxy accepts, then closes — EOF)
    client ──> link ──> HAProxy (frozen: the kernel accepts, then silence)

The replicas behind it are untouched: a client that lists only this balancer has no
way to them; one that lists a second balancer (or a replica) fails over. Every replica
fault acts behind a balancer as it does in front of a client (the balancer's servers
are links too), and a balancer's own `idle_timeout_s` reaps idle connections all the
time, no fault needed.

Seen: for `lb-down`, no HAProxy process of the balancer (docker: its container not
running) and a TLS handshake through a client's link to it closed; for `lb-stall`, the
HAProxy process in state T (docker: its container paused).
"""

from __future__ import annotations

from harness.faults.base import Fault, FaultError
from harness.faults.probes import Effect, stopped_and_closed


class BalancerFault(Fault):
    target_kind = "balancer"

    def check_target(self) -> None:
        known = self.cluster.state.balancers
        if self.target not in known:
            names = ", ".join(known) or "none in this topology"
            raise FaultError(f"{self.kind}: unknown load balancer {self.target!r} (known: {names})")


class LbDown(BalancerFault):
    # in effect from the SIGKILL on, as `kill`
    window_from_start = True
    kind = "lb-down"
    position = 300
    summary = "the balancer's HAProxy is killed (SIGKILL; docker: its container killed)"
    client_sees = "connect OK (Toxiproxy accepts), then EOF/reset, for every replica behind it"
    heals = "HAProxy started again with its configuration; awaited until every server is up"
    client_wait = "none"
    proof = (
        "no HAProxy process of the balancer (docker: its container not running), and a "
        "TLS handshake through a client's link to it is closed"
    )
    observe_within_s = 2.0

    def observe(self) -> Effect:
        seen = self.cluster.balancers.observe(self.target)
        return stopped_and_closed(self.cluster, self.target, seen)

    def _inject(self) -> None:
        self.cluster.balancers.kill(self.target)

    def _heal(self) -> None:
        self.cluster.balancers.start(self.target)


class LbStall(BalancerFault):
    kind = "lb-stall"
    position = 310
    summary = "the balancer's HAProxy is frozen (SIGSTOP; docker: its container paused)"
    client_sees = "connect OK (kernel backlog), then silence, for every replica behind it"
    heals = "SIGCONT (docker: unpause)"
    client_wait = "response"
    proof = "the HAProxy process in state T (docker: its container paused)"

    def observe(self) -> Effect:
        seen = self.cluster.balancers.observe(self.target)
        if seen.state == "paused":
            return True, f"{self.target} is frozen: {seen.detail}"
        return False, f"{self.target} is {seen.state}: {seen.detail}"

    def _inject(self) -> None:
        self.cluster.balancers.pause(self.target)

    def _heal(self) -> None:
        self.cluster.balancers.resume(self.target)
