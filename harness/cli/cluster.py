"""`kmschaos up`, `status` and `down`: a cluster's life from the command line."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from harness import options
from harness.cli.common import (
    EXIT_OK,
    UserError,
    add_external_options,
    check_backend,
    check_balancers,
    lint_warnings,
    state_dir,
)


def cmd_up(args: argparse.Namespace) -> int:
    from harness.backends import cluster_class
    from harness.topology import load_topology

    topo = load_topology(args.topology)
    if args.time_scale is not None:
        topo = topo.with_time_scale(args.time_scale)
    check_backend(args.backend)
    check_balancers(topo, args.backend)
    sdir = state_dir(args)
    cluster = cluster_class(args.backend).create(
        topo,
        sdir,
        detached=True,
        allow_external=args.allow_external,
        keep_keys=args.keep_keys,
    )
    lint_warnings(topo)
    n = len(topo.replicas)
    print(f"starting {topo.name}: {n} replica(s), {len(topo.clients)} client(s) in {sdir}/ ...")
    t0 = time.monotonic()
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    print(f"ready in {time.monotonic() - t0:.1f} s (run {cluster.state.run_id})")
    _print_status(cluster.status())
    print(
        f"\nnext: kmschaos status --json | kmschaos inject refuse {topo.replicas[0]} | "
        "kmschaos heal --all | kmschaos down"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from harness.backends import cluster_class
    from harness.cluster.base import load_state
    from harness.faults import active_fault_records

    sdir = state_dir(args)
    state = load_state(sdir.resolve())
    cluster = cluster_class(state.backend)(state)
    doc = cluster.status()
    doc["faults"] = active_fault_records(sdir.resolve())
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_status(doc)
    return EXIT_OK


def _print_status(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    con.print(
        f"cluster [bold]{doc['topology']}[/] run {doc['run_id']} ({doc['backend']}) — "
        f"{doc['status']} — state {doc['state_dir']}"
    )
    t = Table(title="replicas", title_justify="left")
    for col in ("replica", "site", "direct address", "client address", "state"):
        t.add_column(col)
    for name, r in doc["replicas"].items():
        t.add_row(name, r["site"], f"{r['host']}:{r['port']}", r["client_host"], r["state"])
    con.print(t)
    if doc.get("balancers"):
        b = Table(title="load balancers (HAProxy)", title_justify="left")
        for col in ("balancer", "site", "frontend", "client address", "check", "replicas", "state"):
            b.add_column(col)
        for name, lb in doc["balancers"].items():
            b.add_row(
                name,
                lb["site"],
                f"{lb['host']}:{lb['port']}",
                lb["client_host"],
                str(lb["check"]),
                ", ".join(lb["replicas"]),
                lb["state"],
            )
        con.print(b)
    c = Table(
        title="clients (endpoints in order; one shared port per client)", title_justify="left"
    )
    for col in ("client", "policy", "endpoints", "pykmip config"):
        c.add_column(col)
    for name, cl in doc["clients"].items():
        eps = ", ".join(f"{e['replica']}={e['host']}:{e['port']}" for e in cl["endpoints"])
        c.add_row(name, cl["policy"], eps, cl["pykmip_conf"])
    con.print(c)
    tls = doc["tls"]
    con.print(
        f"TLS (identity {doc['tls_identity']}): ca={tls['ca']} cert={tls['cert']} key={tls['key']}"
    )
    rep = doc.get("replication") or {}
    if rep.get("profile", "none") != "none":
        extra = f", primary {rep['primary']}" if rep.get("primary") else ""
        con.print(
            f"replication: {rep['profile']} (interval {rep.get('interval_ms', 250):g} ms{extra}), "
            f"{len(rep.get('links', []))} replication links"
        )
    for f in doc.get("faults", []):
        con.print(f"active fault: {f['fault_id']} ({f['kind']} on {f['target']})")


def cmd_down(args: argparse.Namespace) -> int:
    from harness import external, registry
    from harness.backends import cluster_class
    from harness.cluster.base import ClusterError, load_state

    if args.all:
        report = registry.reap(all_runs=True)
        print(report)
        return EXIT_OK
    sdir = state_dir(args)
    try:
        state = load_state(sdir.resolve())
    except ClusterError as e:
        raise UserError(str(e)) from None
    if state.status == "down":
        print(f"cluster {state.run_id} in {sdir}/ is already down")
        registry.reap_run(state.run_id)
        if external.external_names(state):  # what a killed or --keep-keys run left
            print(external.settle_keys(state, keep=args.keep_keys).summary())
        return EXIT_OK
    cluster = cluster_class(state.backend)(state)
    cluster.keep_keys = True if args.keep_keys else None  # None: as at `up`
    cluster.stop()
    print(f"cluster {state.run_id} ({state.topology.get('name')}) stopped; logs kept in {sdir}/")
    if cluster.key_settlement is not None:
        print(cluster.key_settlement.summary())
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    """The subcommands of this module."""
    p = sub.add_parser(
        "up",
        help="start a cluster, wait until ready, print the endpoints, leave it running",
        description="Start every replica of TOPOLOGY (real PyKMIP servers over TLS) and one "
        "Toxiproxy with a link per client and replica, wait for a KMIP answer through every "
        "link, print the endpoints and return. Stop it with `kmschaos down`. With --backend "
        "docker the replicas and Toxiproxy are containers; the endpoints look the same.",
    )
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    options.add_backend(p)
    options.add_time_scale(p)
    add_external_options(p)
    options.add_state_dir(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "status",
        help="show endpoints, TLS files and replica states",
        description="Per client its endpoints in order (replica, host, port), the TLS files "
        "a client needs (ca, cert, key) and a PyKMIP config file; per replica its direct "
        "address and state as observed now (running, paused, stopped: from the process "
        "table, or the container's state on docker), not as recorded; active faults.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    options.add_state_dir(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "down",
        help="stop the cluster (or, with --all, every kmschaos run on this machine)",
        description="Kill the cluster's replicas and Toxiproxy, delete its firewall rules and "
        "release its addresses; logs stay in the state folder. --all reaps every run of "
        "this user on this machine by label, also runs whose harness was killed.",
    )
    p.add_argument("--all", action="store_true", help="reap every kmschaos run on this machine")
    add_external_options(p, consent=False)
    options.add_state_dir(p)
    p.set_defaults(func=cmd_down)
