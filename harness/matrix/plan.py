"""The plan of a matrix: the command's options checked into a `MatrixPlan` (before
anything starts), the `CellSpec` each cell's process runs, and the preflight that asks
the backend which faults it can run.

The time scale is applied here, once: `MatrixPlan.topology` is at the matrix's time
scale, and every cell is handed its topology as data (`Topology.to_dict()`, with the
cell's policy on every client), so a cell applies nothing again.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.client.policies import POLICIES, policy_spec
from harness.faults import FAULTS
from harness.matrix.facts import cell_id
from harness.store import CellFolder, MatrixFolder
from harness.topology import Topology, load_topology, topology_from_dict

DEFAULT_POLICIES = ("vcenter", "pykmip")
DEFAULT_REPORT_DIR = "reports/matrix"


class MatrixError(ValueError):
    """Bad input: the message names the option or file and the fix."""


@dataclass(frozen=True)
class CellSpec:
    """Everything a cell's process needs (written to its folder's ``spec``).

    `topology` is the cell's topology as file data: already at the matrix's time scale,
    the cell's policy on every client; `topology_file` is where it came from (errors and
    relative paths name it).
    """

    policy: str
    fault: str
    target: str
    topology: dict[str, Any]
    topology_file: str
    backend: str
    clients: tuple[str, ...]
    cell_dir: str
    expect_served: bool = True  # False: some client has no other replica (total outage)

    @property
    def cell_id(self) -> str:
        return cell_id(self.fault, self.policy)

    @property
    def folder(self) -> CellFolder:
        return CellFolder(Path(self.cell_dir))

    def cell_topology(self) -> Topology:
        """The topology the cell runs, as the parent made it."""
        return topology_from_dict(self.topology, self.topology_file)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "clients": list(self.clients)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellSpec:
        return cls(**{**d, "clients": tuple(d["clients"])})


@dataclass
class MatrixPlan:
    topology: Topology  # at the matrix's time scale (the option's, else the file's)
    topology_file: str
    policies: list[str]
    faults: list[str]
    target: str
    clients: list[str]
    backend: str
    jobs: int
    folder: MatrixFolder
    unsupported: dict[str, str]  # fault -> reason (for every policy)

    @property
    def lonely_clients(self) -> list[str]:
        """Clients whose order holds only the target: they cannot fail over, so their
        cells measure an outage instead of waiting for a failover."""
        return [c for c in self.clients if set(self.topology.clients[c].order) == {self.target}]

    def topology_for(self, policy: str) -> Topology:
        """The plan's topology with `policy` on every client."""
        topo = self.topology
        spec = policy_spec(policy)
        clients = {n: dataclasses.replace(c, policy=spec) for n, c in topo.clients.items()}
        return dataclasses.replace(topo, clients=clients)

    def cells(self) -> list[CellSpec]:
        """Fault-major: both policies under one fault sit side by side."""
        return [
            CellSpec(
                policy=p,
                fault=f,
                target=self.target,
                topology=self.topology_for(p).to_dict(),
                topology_file=self.topology_file,
                backend=self.backend,
                clients=tuple(self.clients),
                cell_dir=str(self.folder.cell(cell_id(f, p)).root.resolve()),
                expect_served=not self.lonely_clients,
            )
            for f in self.faults
            for p in self.policies
        ]

    def attempt_cost(self, policy: str, fault: str, *, reused: bool = False) -> float:
        """Seconds one failed attempt under `fault` costs a client of `policy` with its
        own timeouts at the plan's time scale (infinite: it has none for this wait)."""
        from harness.checkers.failover import attempt_cost

        spec = policy_spec(policy)
        t = self.topology
        connect, response = spec.timeouts(t.timeouts.connect_s, t.timeouts.response_s, t.time_scale)
        cost = attempt_cost(
            spec, fault, connect_timeout=connect, response_timeout=response, reused=reused
        )
        return 0.0 if cost is None else cost

    def unbounded(self, policy: str, fault: str) -> str:
        """Why a cell would never end ("" when it would): its policy has no response
        timeout of its own and the fault leaves a request unanswered (the finding is
        known without running it)."""
        # a sticky client meets the fault on its open connection first
        reused = policy_spec(policy).selection == "sticky"
        if self.attempt_cost(policy, fault, reused=reused) != float("inf"):
            return ""
        return (
            f"{policy} has no response timeout of its own: a request sent to {self.target} "
            f"under {fault} waits as long as the fault lasts, no failover (not run)"
        )

    def expected_cost(self, fault: str) -> float:
        """A rough length of a cell, to start the long ones first: what one failed
        attempt costs the slowest policy whose cell runs (the fault's and the policies'
        declarations)."""
        costs = [self.attempt_cost(p, fault) for p in self.policies]
        return max((c for c in costs if c != float("inf")), default=0.0)


def _names(option: str, raw: str, known: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise MatrixError(f"{option}: empty; name at least one {what} ({', '.join(known)})")
    seen: list[str] = []
    for n in names:
        if n not in known:
            raise MatrixError(f"{option}: unknown {what} {n!r} (known: {', '.join(known)})")
        if n not in seen:
            seen.append(n)
    return seen


def parse_faults(raw: str) -> list[str]:
    matrix_faults = FAULTS.matrix_kinds()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for n in names:
        if n in FAULTS and n not in matrix_faults:
            raise MatrixError(
                f"--faults: {n!r} is not a matrix fault: a cell needs a fault that clients "
                f"fail over from, on one replica, without parameters (matrix faults: "
                f"{', '.join(matrix_faults)}); try `kmschaos inject {n}` instead"
            )
    return _names("--faults", raw, matrix_faults, "fault")


def plan_matrix(args: argparse.Namespace) -> MatrixPlan:
    """Validate the arguments into a plan; `MatrixError` / `TopologyError` on bad input."""
    from harness.backends import BACKENDS

    raw_policies = ",".join(POLICIES) if args.policies.strip() == "all" else args.policies
    policies = _names("--policies", raw_policies, tuple(POLICIES), "policy")
    faults = parse_faults(args.faults)
    if args.jobs < 1:
        raise MatrixError(f"-j {args.jobs}: must be at least 1")
    if args.backend not in BACKENDS:
        raise MatrixError(f"--backend {args.backend}: unknown (available: {', '.join(BACKENDS)})")
    topo = load_topology(args.topology)
    if args.time_scale is not None:
        topo = topo.with_time_scale(args.time_scale)
    first = next(iter(topo.clients.values()))
    clients = list(topo.clients) if args.all_clients else [first.name]
    # a client that lists a load balancer first: the first replica behind it
    target = args.target or topo.behind(first.order[0])[0]
    if target not in topo.replicas:
        raise MatrixError(
            f"--target {target}: unknown replica in {args.topology} "
            f"(known: {', '.join(topo.replicas)})"
        )
    for c in clients:
        order = topo.clients[c].order
        if not any(target in topo.behind(s) for s in order):
            raise MatrixError(
                f"--target {target}: not in the order of client {c} ({', '.join(order)}), "
                "so it would never fail over from it; pick one of those"
            )
    return MatrixPlan(
        topology=topo,
        topology_file=str(args.topology),
        policies=policies,
        faults=faults,
        target=target,
        clients=clients,
        backend=args.backend,
        jobs=args.jobs,
        folder=MatrixFolder(Path(args.report_dir)),
        unsupported={},
    )


def preflight(plan: MatrixPlan) -> None:
    """Fill `plan.unsupported` (faults this backend or host cannot run) without starting
    anything; raise if the backend itself cannot run (no Toxiproxy, no Docker engine or
    image)."""
    from harness.backends import cluster_class
    from harness.cluster.base import ClusterError

    if plan.backend == "local":
        from harness.toolchain import find_toxiproxy_server

        find_toxiproxy_server()
    else:
        reason = cluster_class(plan.backend).unavailable_reason()
        if reason:
            raise ClusterError(f"--backend {plan.backend}: {reason}")
    probe = cluster_class(plan.backend).create(plan.topology, plan.folder.probe)
    for f in plan.faults:
        reason = FAULTS[f].unsupported_reason(probe)
        if reason:
            plan.unsupported[f] = reason
