"""`kmschaos inject`, `heal`, `faults` and `policies`: faults on a running cluster, and
what the fault and policy registries say about themselves."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness import options
from harness.cli.common import EXIT_OK, EXIT_USAGE, UserError, attach
from harness.store import StateFolder


def add_fault_arguments(p: argparse.ArgumentParser) -> None:
    """FAULT, TARGET and one option per fault parameter, from the fault registry."""
    from harness.faults import FAULTS
    from harness.faults.base import TARGET_USAGE

    p.add_argument("fault", metavar="FAULT", help=" | ".join(FAULTS))
    by_target: dict[str, list[str]] = {}
    for kind, cls in FAULTS.items():
        by_target.setdefault(cls.target_kind, []).append(kind)
    p.add_argument(
        "target",
        metavar="TARGET",
        nargs="+",
        help="; ".join(
            f"{TARGET_USAGE[t]} for {', '.join(kinds)}" for t, kinds in by_target.items()
        )
        + " (a group is a site or a comma-separated replica list: site-a site-b, "
        "kms-a kms-b,kms-c)",
    )
    for name, takers in FAULTS.all_parameters().items():
        param = takers[0][1]
        units = {p.unit for _, p in takers}
        if len(units) > 1:
            raise ValueError(f"fault parameter {name!r} has several units: {sorted(units)}")
        text = "; ".join(f"{kind}: {p.help}" for kind, p in takers)
        if param.unit == "bool":
            p.add_argument(param.flag, action="store_true", help=text)
        else:
            p.add_argument(
                param.flag, type=param.python_type, metavar=param.metavar or None, help=text
            )


def join_signed_values(argv: list[str]) -> list[str]:
    """``--offset -1h`` as ``--offset=-1h``: argparse takes a value that starts with "-"
    (and is no number) for an option; a signed parameter's value is not one."""
    from harness.faults import FAULTS

    signed = {p.flag for takers in FAULTS.all_parameters().values() for _, p in takers} & {
        p.flag for _, cls in FAULTS.items() for p in cls.parameters if p.unit == "offset"
    }
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in signed and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _fault_params(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The options given for fault `kind`'s parameters, each checked against its
    declaration (a missing required one, a value out of range: `UserError`, exit 2);
    another fault's option is an error naming the faults that take it."""
    from harness.faults import FAULTS

    cls = FAULTS[kind]
    mine = {p.name for p in cls.parameters}
    params: dict[str, Any] = {}
    for name, takers in FAULTS.all_parameters().items():
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        if name not in mine:
            flag = takers[0][1].flag
            raise UserError(
                f"{kind} takes no {flag} (it is for {', '.join(k for k, _ in takers)}); "
                f"see `kmschaos faults`",
                EXIT_USAGE,
            )
        params[name] = value
    for p in cls.parameters:  # refused here, before any cluster is touched
        why = p.check(kind, params[p.name]) if p.name in params else None
        if p.name not in params and p.required:
            why = p.missing(kind)
        if why:
            raise UserError(f"{why}; see `kmschaos faults`", EXIT_USAGE)
    return params


def cmd_inject(args: argparse.Namespace) -> int:
    from harness.faults import FAULTS, FaultError, make_fault
    from harness.history import History

    if args.fault not in FAULTS:
        raise UserError(
            f"unknown fault {args.fault!r} (known: {', '.join(FAULTS)}); see `kmschaos faults`",
            EXIT_USAGE,
        )
    cls = FAULTS[args.fault]
    params = _fault_params(args, args.fault)
    target = " ".join(args.target)
    if cls.target_kind != "groups" and len(args.target) > 1:
        raise UserError(f"{args.fault} takes one target, got {target!r}", EXIT_USAGE)
    cluster = attach(args)
    if cls.background:  # this command exits: the fault's process must outlive it
        params["detached"] = True
    try:
        fault = make_fault(args.fault, cluster, target, **params)
    except FaultError as e:
        raise UserError(str(e), EXIT_USAGE) from None
    history = History(StateFolder(Path(cluster.state.state_dir)).history)
    fault.history = history
    try:
        fault.inject()
    finally:
        history.close()
    print(fault.fault_id)
    _print_observation(fault)
    return EXIT_OK


def _print_observation(fault: Any) -> None:
    """What the fault's own probe saw, on stderr (stdout is the fault id, for scripts)."""
    import sys

    obs = fault.observation
    if obs is None:
        return
    head = {True: "effect seen", False: "NO EFFECT SEEN", None: "effect not known"}[obs.effect]
    print(f"{head}: {obs.detail}", file=sys.stderr)
    if obs.effect is False:
        print(
            f"  the fault is recorded as active all the same: `kmschaos heal {fault.fault_id}`",
            file=sys.stderr,
        )


def cmd_heal(args: argparse.Namespace) -> int:
    from harness.faults import active_fault_records, heal_recorded

    if not args.fault_id and not args.all:
        raise UserError("say which fault to heal: kmschaos heal ID, or kmschaos heal --all", 2)
    cluster = attach(args)
    sdir = Path(cluster.state.state_dir)
    records = active_fault_records(sdir)
    if args.fault_id:
        chosen = [r for r in records if r["fault_id"] == args.fault_id]
        if not chosen:
            known = ", ".join(r["fault_id"] for r in records) or "none"
            raise UserError(f"no active fault {args.fault_id!r} (active: {known})")
    else:
        chosen = records
    from harness.history import History

    history = History(StateFolder(sdir).history)
    try:
        for r in chosen:
            f = heal_recorded(cluster, r)
            f.history = history
            print(f"healed {r['fault_id']}")
        if args.all:
            _heal_everything(cluster)
    finally:
        history.close()
    return EXIT_OK


def _heal_everything(cluster: Any) -> None:
    """Belt and braces after `heal --all`: no toxic, no disabled link, no frozen or
    stopped replica or load balancer, no firewall rule of this run."""
    from harness import registry

    cluster.api.reset()
    registry.delete_rules(cluster.state.run_id)
    for name in cluster.state.replicas:
        if cluster.replica_running(name):
            cluster.resume_replica(name)
        else:
            print(f"starting {name} again")
            cluster.start_replica(name)
    for name in cluster.state.balancers:
        if cluster.balancers.running(name):
            cluster.balancers.resume(name)
        else:
            print(f"starting load balancer {name} again")
            cluster.balancers.start(name)


def cmd_faults(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.faults import FAULTS
    from harness.faults.base import WAIT_WORDS, fault_table, usage

    if args.markdown:
        print(fault_table(), end="")
        return EXIT_OK
    t = Table(title="faults (target: a replica, all client links into it, unless said)")
    t.add_column("fault", no_wrap=True)
    t.add_column("what exactly happens")
    t.add_column("target and parameters")
    t.add_column("a failed attempt costs")
    for kind, cls in FAULTS.items():
        t.add_row(kind, cls.summary, usage(cls), WAIT_WORDS[cls.client_wait])
    Console().print(t)
    return EXIT_OK


def cmd_policies(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.client.policies import POLICIES, WAIT_MEANS, WAITS, policy_table

    if args.markdown:
        print(policy_table(), end="")
        return EXIT_OK
    t = Table(
        title="client failover policies (topology: clients.<name>.policy: a preset, or "
        "{preset: NAME, field: value...})"
    )
    t.add_column("policy")
    t.add_column("what it is")
    for w in WAITS:
        t.add_column(WAIT_MEANS[w])
    t.add_column("KMIP")
    for name, spec in POLICIES.items():
        t.add_row(
            name, spec.summary, *(spec.reactions.get(w, "") for w in WAITS), spec.kmip_version
        )
    Console().print(t)
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    """The subcommands of this module."""
    p = sub.add_parser(
        "inject",
        help="inject a fault and print its id",
        description="Inject FAULT on replica TARGET (all client links into it) and print the "
        "fault id. It stays until `kmschaos heal ID` or `kmschaos heal --all`. Then the "
        "fault probes its own effect and says on stderr what it saw (`effect seen: ...`, "
        "`NO EFFECT SEEN: ...`). See `kmschaos faults` for what each fault does.",
    )
    add_fault_arguments(p)
    options.add_state_dir(p)
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser(
        "heal",
        help="heal a fault (ID) or every fault (--all)",
        description="Heal the fault ID printed by `inject`, or with --all every recorded "
        "fault, then reset Toxiproxy, remove this run's firewall rules, resume frozen and "
        "start stopped replicas.",
    )
    p.add_argument("fault_id", metavar="ID", nargs="?", help="fault id printed by inject")
    p.add_argument("--all", action="store_true", help="heal everything")
    options.add_state_dir(p)
    p.set_defaults(func=cmd_heal)

    p = sub.add_parser("faults", help="list the faults and their exact semantics")
    p.add_argument("--markdown", action="store_true", help="the table as markdown (README)")
    p.set_defaults(func=cmd_faults)

    p = sub.add_parser(
        "policies", help="list the client failover policies and what each does on a failure"
    )
    p.add_argument("--markdown", action="store_true", help="the table as markdown (README)")
    p.set_defaults(func=cmd_policies)
