"""`kmschaos swarm ...`: what the swarm backend needs of a swarm (`harness.swarm`).

kmschaos swarm nodes                        nodes, their sites, engines and images
kmschaos swarm label NODE SITE [--engine URL]   the node serves SITE (faults reach it at URL)
kmschaos swarm images                       load the images into every labelled node
kmschaos swarm lab up|down|status           a two-node swarm on this machine (tests)
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any

from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError
from harness.swarm.nodes import SwarmError

SWARM_HELP = "the swarm backend's nodes, sites and images (`kmschaos swarm --help`)"


def _manager() -> Any:
    from harness.cluster.docker_engine import docker_client
    from harness.swarm.nodes import require_manager

    client = docker_client()
    require_manager(client, "DOCKER_HOST")
    return client


def _images() -> list[str]:
    from harness import images

    return [images.kms_image()]


def cmd_nodes(args: argparse.Namespace) -> int:
    from harness.swarm.nodes import list_nodes, missing_images, node_engine

    manager = _manager()
    wanted = _images()
    rows = []
    for node in list_nodes(manager):
        row: dict[str, Any] = {
            "node": node.name,
            "id": node.id[:12],
            "address": node.address,
            "site": node.site,
            "engine": node.engine_url(),
            "ready": node.ready,
        }
        try:
            engine = node_engine(node, manager)
        except SwarmError as e:
            row["engine_answers"], row["problem"] = False, str(e)
        else:
            row["engine_answers"] = True
            row["missing_images"] = missing_images(manager, engine, wanted)
            if engine is not manager:
                engine.close()
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        images = (
            "images ok"
            if not r.get("missing_images")
            else ("lacks " + ", ".join(r["missing_images"]) + ": kmschaos swarm images")
        )
        state = "ready" if r["ready"] else "NOT READY"
        print(
            f"{r['node']:<24} {r['address']:<16} site={r['site'] or '-':<10} {state:<9} "
            f"engine {r['engine']}: " + (images if r["engine_answers"] else r["problem"])
        )
    unlabelled = [r["node"] for r in rows if not r["site"]]
    if unlabelled:
        print(f"(no site: {', '.join(unlabelled)}; `kmschaos swarm label NODE SITE` places a site)")
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    from harness.swarm.nodes import label_node

    node = label_node(_manager(), args.node, args.site, args.engine)
    print(f"node {node.name}: site {node.site or '-'}, engine {node.engine_url()}")
    return EXIT_OK


def _say(node: str, line: str) -> None:
    print(f"{node}: {line}", flush=True)


def cmd_images(args: argparse.Namespace) -> int:
    from harness.swarm.nodes import copy_images, list_nodes, node_engine

    manager = _manager()
    wanted = _images()
    for node in list_nodes(manager):
        if node.local or not node.site:
            continue
        engine = node_engine(node, manager)
        try:
            copied = copy_images(manager, engine, wanted, functools.partial(_say, node.name))
        finally:
            engine.close()
        if not copied:
            print(f"{node.name}: images already there")
    return EXIT_OK


def cmd_lab(args: argparse.Namespace) -> int:
    import time

    from harness.cluster.docker_engine import docker_client
    from harness.swarm import lab

    if args.action == "status":
        state = lab.read_state()
        print(json.dumps(state.__dict__ if state else None, indent=2))
        return EXIT_OK if state else EXIT_FAIL
    reason = lab.unavailable_reason()
    if reason:
        raise UserError(reason, EXIT_USAGE)
    manager = docker_client()
    t0 = time.monotonic()
    if args.action == "up":
        state = lab.up(manager, args.sites, _images())
        print(
            f"swarm lab ready in {time.monotonic() - t0:.1f} s: {args.sites[0]} on this "
            f"host's engine, {args.sites[1]} on node 2 ({state.engine_url})"
        )
        return EXIT_OK
    found = lab.down(manager)
    print("swarm lab removed" if found else "no swarm lab here")
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "swarm",
        help=SWARM_HELP,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = p.add_subparsers(dest="swarm_command", metavar="SUBCOMMAND", required=True)
    n = ssub.add_parser("nodes", help="every node: its site, engine and whether it has the images")
    n.add_argument("--json", action="store_true", help="one object per node")
    n.set_defaults(func=cmd_nodes)
    lb = ssub.add_parser("label", help="say which site a node serves and where its engine is")
    lb.add_argument("node", help="hostname or id (`docker node ls`)")
    lb.add_argument("site", help="the topology's site it serves ('' removes the label)")
    lb.add_argument(
        "--engine",
        default=None,
        help="the node's Docker engine, for faults and images: ssh://USER@HOST, "
        "tcp://HOST:2376 or unix:///PATH ('' removes it; not needed for the "
        "manager the harness talks to)",
    )
    lb.set_defaults(func=cmd_label)
    im = ssub.add_parser(
        "images",
        help="docker save | docker load the images into every "
        "labelled node that lacks them (no registry needed)",
    )
    im.set_defaults(func=cmd_images)
    la = ssub.add_parser(
        "lab",
        help="a two-node swarm on this machine: this host's engine "
        "and a second one in a network namespace (root; for tests)",
    )
    la.add_argument("action", choices=("up", "down", "status"))
    la.add_argument(
        "--sites",
        nargs=2,
        default=["site-a", "site-b"],
        metavar=("SITE1", "SITE2"),
        help="the site of this host's node and of node 2 (default site-a site-b)",
    )
    la.set_defaults(func=cmd_lab)
