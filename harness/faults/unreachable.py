"""`unreachable`: packets to the replica's client address are dropped.

    client ──SYN──X (iptables DROP of SYNs for 127.X.Y.i)      replica

A SYN that is never answered makes the client wait for its connect timeout — unlike
`refuse`, which answers at once. Needs root (or CAP_NET_ADMIN) and iptables; where it
cannot run, `unsupported_reason` says so before a scenario starts. Each rule carries
the comment ``kmschaos:<registry tag>:<run id>:<fault id>`` so the reaper removes it even after the
harness was killed. Seen by a probe SYN to the replica's client address that gets no
answer within the probe timeout, while a connect to another replica's works.
"""

from __future__ import annotations

import subprocess
from typing import Any, ClassVar

from harness.cluster.base import CAP_FIREWALL, Cluster
from harness.faults.base import Fault, FaultError
from harness.faults.probes import CONTROL_TIMEOUT_S, Effect, probe_timeout, tcp_connect
from harness.registry import iptables_path, rule_comment
from harness.toolchain import firewall_capability


class Unreachable(Fault):
    kind = "unreachable"
    position = 70
    summary = (
        "`iptables -I OUTPUT` DROP of TCP to the replica's client address 127.X.Y.i, tagged "
        "`kmschaos:<registry>:<run>:<fault>` (docker: also off its site network)"
    )
    client_sees = "SYN never answered: connect timeout"
    heals = "rule deleted"
    client_wait = "connect"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_FIREWALL})
    in_matrix = matrix_default = True
    proof = (
        "a probe SYN to its client address: no answer within the probe timeout, while "
        "another replica's address connects"
    )

    def observe(self) -> Effect:
        timeout = probe_timeout(self.cluster)
        mine = self.cluster.links_into(self.target)
        address = mine[0].listen if mine else f"{self._address()}:1"
        probe = tcp_connect(f"a TCP connect to {self.target}'s client address", address, timeout)
        if probe.outcome != "connect-timeout":
            return False, probe.words()
        others = [lk for lk in self.cluster.state.link_objects() if lk.replica != self.target]
        if others:
            control = tcp_connect(
                f"a TCP connect to {others[0].replica}'s", others[0].listen, CONTROL_TIMEOUT_S
            )
        else:  # a single replica: the Toxiproxy API shares the run's /24
            api = self.cluster.state.toxiproxy_api.split("//", 1)[-1]
            control = tcp_connect("a TCP connect to the Toxiproxy API", api, CONTROL_TIMEOUT_S)
        if not control.answered:
            return None, f"{probe.words()}, but {control.words()}: the whole network is down"
        return True, f"{probe.words()}, while {control.words()}"

    @classmethod
    def _explain_missing(cls, cluster: Cluster, missing: frozenset[str]) -> str:
        why = firewall_capability() or "the backend cannot drop packets"
        return f"fault 'unreachable' cannot run here: {why}"

    def _address(self) -> str:
        return self.cluster.state.replicas[self.target].client_host

    def _rule(self) -> list[str]:
        comment = rule_comment(self.cluster.state.run_id, self.fault_id)
        # matched on the connection's original destination: where the engine publishes
        # ports by DNAT (docker without userland proxy), -d would see the container
        return [
            "OUTPUT",
            "-p",
            "tcp",
            "-m",
            "conntrack",
            "--ctorigdst",
            f"{self._address()}/32",
            "-m",
            "comment",
            "--comment",
            comment,
            "-j",
            "DROP",
        ]

    def _iptables(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [iptables_path() or "iptables", "-w", "5", action, *self._rule()],
            capture_output=True,
            text=True,
            timeout=15,
        )

    def _inject(self) -> None:
        r = self._iptables("-I")
        if r.returncode != 0:
            raise FaultError(f"unreachable: iptables refused the rule: {r.stderr.strip()}")
        self.cluster.take_off_network(self.target)

    def _heal(self) -> None:
        self.cluster.put_on_network(self.target)
        while self._iptables("-C").returncode == 0:
            r = self._iptables("-D")
            if r.returncode != 0:
                raise FaultError(f"unreachable: cannot delete rule: {r.stderr.strip()}")

    def extra(self) -> dict[str, Any]:
        return {"address": self._address()}
