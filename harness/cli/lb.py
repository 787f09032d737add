"""`kmschaos lb-config`: the HAProxy configuration of a topology's load balancer — the
file the HAProxy of a running cluster reads, or one to adapt for production (the
same checks and durations, at time scale 1, with placeholders for addresses and files)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError

if TYPE_CHECKING:
    from harness.lb.haproxy import BalancerPlan
    from harness.topology import Topology
    from harness.topology.model import BalancerSpec

# what a production configuration names where a running cluster has its own files
PRODUCTION_CA = "/etc/haproxy/kmip/ca.pem"
PRODUCTION_CLIENT_PEM = "/etc/haproxy/kmip/client.pem"
PRODUCTION_STATS = "127.0.0.1:9999"


def cmd_lb_config(args: argparse.Namespace) -> int:
    from harness.lb.haproxy import render_config
    from harness.topology import load_topology

    topo = load_topology(args.topology)
    spec = balancer_of(topo, args.balancer)
    if args.state_dir is not None:
        print(running_config(topo, spec, Path(args.state_dir)), end="")
    else:
        plan = production_plan(topo, spec)
        print(production_header(topo, plan) + render_config(plan), end="")
    return EXIT_OK


def balancer_of(topo: Topology, name: str) -> BalancerSpec:
    """The balancer `name` of `topo`, or a usage error naming the known ones."""
    if not topo.load_balancers:
        raise UserError(
            f"{topo.source}: load_balancers: none in this topology; declare one to get its "
            "HAProxy configuration (docs/load-balancers.md)",
            EXIT_USAGE,
        )
    spec = topo.load_balancers.get(name)
    if spec is None:
        raise UserError(
            f"{topo.source}: load_balancers: unknown load balancer '{name}' "
            f"(known: {', '.join(topo.load_balancers)})",
            EXIT_USAGE,
        )
    return spec


def running_config(topo: Topology, spec: BalancerSpec, state_dir: Path) -> str:
    """The configuration file the balancer's HAProxy was started with in the cluster of
    `state_dir`, which must run `topo`."""
    from harness.cluster.state import load_state

    state = load_state(state_dir)
    running = state.topology.get("name")
    if running != topo.name:
        raise UserError(
            f"{state_dir}: the cluster there runs topology '{running}', not '{topo.name}' "
            f"({topo.source}); pass that topology, or the state folder of this one",
            EXIT_USAGE,
        )
    b = state.balancers.get(spec.name)
    if b is None or not b.config:
        raise UserError(f"{state_dir}: load balancer '{spec.name}' was not started there")
    try:
        return Path(b.config).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(
            f"{b.config}: cannot read the configuration of '{spec.name}' ({e.strerror})",
            EXIT_FAIL,
        ) from None


def production_plan(topo: Topology, spec: BalancerSpec) -> BalancerPlan:
    """`spec` as a production HAProxy would run it: listening on the KMIP port on every
    address, servers at each replica's address (an external replica's own, else its name
    on the KMIP port), placeholder TLS files, durations at time scale 1."""
    from harness.lb.haproxy import BalancerPlan
    from harness.topology.fileformat import KMIP_PORT

    def address(replica: str) -> str:
        ext = topo.info_of(replica).external
        return ext.address if ext is not None else f"{replica}:{KMIP_PORT}"

    return BalancerPlan(
        spec=spec,
        bind=f"*:{KMIP_PORT}",
        servers=tuple((r, address(r)) for r in spec.replicas),
        ca=PRODUCTION_CA,
        client_pem=PRODUCTION_CLIENT_PEM,
        stats=PRODUCTION_STATS,
        time_scale=1.0,
    )


def production_header(topo: Topology, plan: BalancerPlan) -> str:
    """Comment lines saying where the configuration comes from and what to replace."""
    spec = plan.spec
    first = plan.servers[0][1]
    lines = [
        f"# HAProxy configuration of load balancer {spec.name} of topology {topo.name} "
        f"({topo.source}),",
        "# printed by `kmschaos lb-config` for production: durations as in the file "
        "(time_scale 1).",
        "# Replace before use:",
        f"#   server addresses ({first} ...): each replica's KMIP address; HAProxy "
        "resolves names when it starts",
    ]
    if spec.check in ("tls", "kmip"):
        lines += [
            f"#   {plan.ca}: the CA that issued the KMS servers' certificates",
            f"#   {plan.client_pem}: a client certificate the KMS accepts and its key, "
            "in one PEM file",
        ]
    lines += [
        f"#   stats socket {plan.stats}: where HAProxy's admin socket listens (local only)",
        "# Then check it: haproxy -c -f haproxy.cfg",
    ]
    return "\n".join(lines) + "\n"


def add_parsers(sub: Any) -> None:
    """The subcommands of this module."""
    p = sub.add_parser(
        "lb-config",
        help="print the HAProxy configuration of a topology's load balancer",
        description="Print the HAProxy configuration of load balancer LB of TOPOLOGY: with "
        "--state-dir, the file the HAProxy of that running cluster reads; without, a "
        "production configuration (the same health check, balance and timeouts at time "
        "scale 1, listening on *:5696) whose header says what to replace: server "
        "addresses, the CA and client certificate files, the stats socket.",
    )
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("balancer", metavar="LB", help="a load balancer of the topology")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the state folder of a running cluster of TOPOLOGY: print its HAProxy's own "
        "configuration (default: none, a production configuration)",
    )
    p.set_defaults(func=cmd_lb_config)
