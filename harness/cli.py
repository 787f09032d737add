"""The `kmschaos` command line.

    kmschaos up TOPOLOGY        start a cluster, wait until ready, print endpoints, return
    kmschaos status [--json]    endpoints, TLS files and replica states of a running cluster
    kmschaos inject FAULT TARGET [--ms N ...]   inject a fault, print its id
    kmschaos heal [ID | --all]  heal one fault or every fault
    kmschaos down [--all]       stop the cluster (or every kmschaos run on this machine)
    kmschaos run [SCENARIO ...] run the scenario catalogue, print verdicts, write reports
    kmschaos lint TOPOLOGY      check a topology for design errors
    kmschaos faults             list the faults and what exactly they do
    kmschaos schema topology|rehearsal [-o FILE]   JSON Schema of a file format (editors)

Exit status: 0 success; 1 a verdict or scenario failed, or an operation failed;
2 bad input (a topology file, an argument).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness import options
from harness.store import StateFolder

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""

    def __init__(self, message: str, status: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.status = status


def _state_dir(args: argparse.Namespace) -> Path:
    return options.state_dir(args.state_dir)


def _print_err(msg: str) -> None:
    print(f"kmschaos: {msg}", file=sys.stderr)


# ---- up / status / down ---------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from harness.backends import cluster_class
    from harness.topology import load_topology

    topo = load_topology(args.topology)
    if args.time_scale is not None:
        topo = topo.with_time_scale(args.time_scale)
    _check_backend(args.backend)
    sdir = _state_dir(args)
    cluster = cluster_class(args.backend).create(
        topo,
        sdir,
        detached=True,
        allow_external=args.allow_external,
        keep_keys=args.keep_keys,
    )
    _lint_warnings(topo)
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


def _check_backend(backend: str) -> None:
    from harness.backends import BACKENDS

    if backend not in BACKENDS:
        raise UserError(
            f"--backend {backend}: unknown backend (available: {', '.join(BACKENDS)})", EXIT_USAGE
        )


def _attach(args: argparse.Namespace) -> Any:
    from harness.backends import attach_cluster

    return attach_cluster(_state_dir(args))


def cmd_status(args: argparse.Namespace) -> int:
    from harness.backends import cluster_class
    from harness.cluster.base import load_state
    from harness.faults import active_fault_records

    sdir = _state_dir(args)
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
    sdir = _state_dir(args)
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


# ---- inject / heal ----------------------------------------------------------------------


def _fault_params(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The options given for fault `kind`'s parameters; another fault's option is an
    error naming the faults that take it."""
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
    cluster = _attach(args)
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
    return EXIT_OK


def cmd_heal(args: argparse.Namespace) -> int:
    from harness.faults import active_fault_records, heal_recorded

    if not args.fault_id and not args.all:
        raise UserError("say which fault to heal: kmschaos heal ID, or kmschaos heal --all", 2)
    cluster = _attach(args)
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
    stopped replica, no firewall rule of this run."""
    from harness import registry

    cluster.api.reset()
    registry.delete_rules(cluster.state.run_id)
    for name in cluster.state.replicas:
        if cluster.replica_running(name):
            cluster.resume_replica(name)
        else:
            print(f"starting {name} again")
            cluster.start_replica(name)


# ---- run ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner import run_catalogue
    from harness.topology import check_time_scale

    _check_backend(args.backend)
    if args.time_scale is not None:
        check_time_scale(args.time_scale, "--time-scale")
    return run_catalogue(
        scenarios=args.scenarios,
        workers=args.workers,
        report_dir=Path(args.report_dir),
        time_scale=args.time_scale,
        backend=args.backend,
        extra=[
            *(["--kms-interactive"] if args.interactive else []),
            *([f"--kms-seed={args.seed}"] if args.seed is not None else []),
            *getattr(args, "pytest_args", []),
        ],
        allow_external=args.allow_external,
        keep_keys=args.keep_keys,
    )


def cmd_lint(args: argparse.Namespace) -> int:
    from harness.topology import load_topology
    from harness.topology_lint import exit_status, format_findings, lint, summarize

    topo = load_topology(args.topology)
    findings = lint(topo)
    if findings:
        print(format_findings(findings, args.topology))
    print(f"{args.topology}: {summarize(findings)}")
    return exit_status(findings, args.strict)


def _lint_warnings(topo: Any) -> None:
    """`up` shows the linter's findings as warnings, then goes on."""
    from harness.topology_lint import format_findings, lint

    findings = lint(topo)
    if findings:
        print(format_findings(findings, topo.source), file=sys.stderr)


def cmd_faults(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.faults import FAULTS
    from harness.faults.base import fault_table, usage

    if args.markdown:
        print(fault_table(), end="")
        return EXIT_OK
    t = Table(title="faults (target: a replica, all client links into it, unless said)")
    t.add_column("fault")
    t.add_column("what exactly happens")
    t.add_column("target and parameters")
    t.add_column("a failed attempt costs")
    for kind, cls in FAULTS.items():
        t.add_row(kind, cls.summary, usage(cls), _wait_words(cls.client_wait))
    Console().print(t)
    return EXIT_OK


def _wait_words(wait: str | None) -> str:
    from harness.faults.base import WAIT_WORDS

    return WAIT_WORDS[wait]


def cmd_policies(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.client.policies import POLICIES, WAIT_MEANS, WAITS, policy_table

    if args.markdown:
        print(policy_table(), end="")
        return EXIT_OK
    t = Table(title="client failover policies (topology: clients.<name>.policy)")
    t.add_column("policy")
    t.add_column("what it is")
    for w in WAITS:
        t.add_column(WAIT_MEANS[w])
    for name, cls in POLICIES.items():
        t.add_row(name, cls.summary, *(cls.reactions.get(w, "") for w in WAITS))
    Console().print(t)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from harness.rehearsal import rehearsal_schema
    from harness.topology import topology_schema
    from harness.yamlfile import schema_text

    make = {"topology": topology_schema, "rehearsal": rehearsal_schema}[args.format]
    text = schema_text(make())
    if args.output is None:
        print(text, end="")
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"schema: {args.output}")
    return EXIT_OK


# ---- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="kmschaos",
        description="Chaos / failure injection for KMS (KMIP) availability: real PyKMIP "
        "replicas behind Toxiproxy, failover clients, faults and verdicts.",
        epilog="Every command that acts on a running cluster takes --state-dir DIR "
        f"(default ./{options.DEFAULT_STATE_DIR}/, or ${options.STATE_DIR_ENV}).",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def external_opts(p: argparse.ArgumentParser, consent: bool = True) -> None:
        from harness.external import CONSENT_FLAG

        if consent:
            p.add_argument(
                CONSENT_FLAG,
                dest="allow_external",
                action="store_true",
                help="allow a topology with external targets (a real KMS kmschaos does "
                "not start: keys are created and destroyed there, link faults injected in "
                "front of it); the topology must also say allow_external: true",
            )
        p.add_argument(
            "--keep-keys",
            action="store_true",
            help="keep the keys created on external targets (default: destroyed when the "
            "cluster stops; recorded in the state folder's external-keys.json)",
        )

    state_opt = options.add_state_dir

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
    external_opts(p)
    state_opt(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "status",
        help="show endpoints, TLS files and replica states",
        description="Per client its endpoints in order (replica, host, port), the TLS files "
        "a client needs (ca, cert, key) and a PyKMIP config file; per replica its direct "
        "address and state (running, paused, stopped); active faults.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    state_opt(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "inject",
        help="inject a fault and print its id",
        description="Inject FAULT on replica TARGET (all client links into it) and print the "
        "fault id. It stays until `kmschaos heal ID` or `kmschaos heal --all`. "
        "See `kmschaos faults` for what each fault does.",
    )
    add_fault_arguments(p)
    state_opt(p)
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
    state_opt(p)
    p.set_defaults(func=cmd_heal)

    p = sub.add_parser(
        "down",
        help="stop the cluster (or, with --all, every kmschaos run on this machine)",
        description="Kill the cluster's replicas and Toxiproxy, delete its firewall rules and "
        "release its addresses; logs stay in the state folder. --all reaps every run of "
        "this user on this machine by label, also runs whose harness was killed.",
    )
    p.add_argument("--all", action="store_true", help="reap every kmschaos run on this machine")
    external_opts(p, consent=False)
    state_opt(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser(
        "run",
        help="run the scenario catalogue through pytest; verdict table and reports",
        description="Run scenarios (default: the built-in catalogue) with pytest, print a "
        "progress line per scenario and a verdict table, write junit.xml, history.jsonl, "
        "summary.json and each scenario's files to --report-dir. Exit 1 when a scenario "
        "failed (a verdict differed from what the scenario expects). Arguments after "
        "`--` go to pytest as they are.",
    )
    p.add_argument("scenarios", metavar="SCENARIO", nargs="*", help="scenario files or pytest ids")
    p.add_argument("-n", dest="workers", type=int, default=1, help="parallel workers (xdist)")
    options.add_report_dir(
        p, "reports/latest", "junit.xml, summary.json, history.jsonl, report.html and scenarios/"
    )
    options.add_time_scale(p)
    options.add_backend(p)
    p.add_argument(
        "--interactive",
        action="store_true",
        help="rehearsals: wait for Enter at every `checkpoint` step (not with -n > 1)",
    )
    p.add_argument(
        "--seed",
        metavar="N|random",
        help="rehearsals: the seed of `random` steps and the workload mix (default: the "
        "file's `seed`); a failure prints the seed to replay it",
    )
    external_opts(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "lint",
        help="check a topology for design errors (single KMS, remote-first order, ...)",
        description="Run the named topology rules (single-kms, thin-site, remote-before-local, "
        "local-missing, shared-failure-domain, self-encrypted, unreplicated-copies, "
        "unreachable-replica); each finding names the field, the reason and a fix. Exit 1 on "
        "an error, or on any finding with --strict; 2 if the file is invalid.",
    )
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("faults", help="list the faults and their exact semantics")
    p.add_argument("--markdown", action="store_true", help="the table as markdown (README)")
    p.set_defaults(func=cmd_faults)

    p = sub.add_parser(
        "policies", help="list the client failover policies and what each does on a failure"
    )
    p.add_argument("--markdown", action="store_true", help="the table as markdown (README)")
    p.set_defaults(func=cmd_policies)

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of topology or rehearsal files (for editors)",
        description="JSON Schema (draft 2020-12) of a file format, generated from the "
        "declarations that validate the files: known keys, faults and their parameters, "
        "checkers and their bounds, policies, number ranges, help texts. Point an editor at "
        "it with a first line `# yaml-language-server: $schema=PATH`.",
    )
    p.add_argument("format", choices=("topology", "rehearsal"), help="which file format")
    p.add_argument("-o", "--output", metavar="FILE", help="write it here instead of stdout")
    p.set_defaults(func=cmd_schema)

    from harness.matrix import add_matrix_parser
    from harness.report import add_report_parser

    add_matrix_parser(sub)
    add_report_parser(sub)
    return ap


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


def _second_interrupt_forces() -> None:
    """The first Ctrl-C stops cleanly (faults healed, clusters stopped, partial report);
    a second one while that runs forces: kill what this command's runs started, exit."""
    import signal

    pressed = {"n": 0}
    # pytest (in-process for `run`) captures fd 2 while a scenario runs: keep the real one
    terminal = os.dup(2)

    def say(msg: str) -> None:
        os.write(terminal, f"kmschaos: {msg}\n".encode())

    def on_sigint(signum: int, frame: Any) -> None:
        pressed["n"] += 1
        if pressed["n"] == 1:
            say("interrupted: healing faults and stopping clusters (Ctrl-C again to force)")
            signal.default_int_handler(signum, frame)
        from harness import registry

        say("forced: killing this command's clusters now")
        report = registry.reap_owned_by(os.getpid())
        say(f"{report}; anything left is reaped by the next run or `kmschaos down --all`")
        os._exit(130)

    signal.signal(signal.SIGINT, on_sigint)


def main(argv: list[str] | None = None) -> int:
    from harness.cluster.base import ClusterError
    from harness.external import ExternalRefused
    from harness.faults import FaultError
    from harness.links import ToxiproxyError
    from harness.toolchain import ToolchainError
    from harness.topology import TopologyError
    from harness.wait import WaitTimeout

    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:  # `kmschaos run ... -- PYTEST ARGS`
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.pytest_args = passthrough
    _second_interrupt_forces()
    try:
        return int(args.func(args))
    except TopologyError as e:
        _print_err(str(e))
        return EXIT_USAGE
    except UserError as e:
        _print_err(str(e))
        return e.status
    except ExternalRefused as e:  # a safety switch is missing: nothing started
        _print_err(str(e))
        return EXIT_USAGE
    except (ClusterError, FaultError, ToolchainError, ToxiproxyError, WaitTimeout) as e:
        _print_err(str(e))
        return EXIT_FAIL
    except Exception as e:
        # a docker-backend step the engine refused; docker's SDK is only imported (and
        # can only have raised) when the command used the docker backend
        docker_errors = sys.modules.get("docker.errors")
        if docker_errors is None or not isinstance(e, docker_errors.DockerException):
            raise
        _print_err(f"the Docker engine refused: {type(e).__name__}: {e}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        _print_err("interrupted; everything this command started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
