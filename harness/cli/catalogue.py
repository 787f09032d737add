"""`kmschaos run`, `lint` and `schema`: the scenario catalogue, the topology linter, the
file formats' JSON Schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness import options
from harness.cli.common import EXIT_OK, add_external_options, check_backend
from harness.topology_lint import RULES


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner import run_catalogue
    from harness.topology import check_time_scale

    check_backend(args.backend)
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


def add_parsers(sub: Any) -> None:
    """The subcommands of this module."""
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
    add_external_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "lint",
        help="check a topology for design errors (single KMS, remote-first order, ...)",
        description=f"Run the named topology rules ({', '.join(RULES)}); each finding "
        "names the field, the reason and a fix. Exit 1 on an error, or on any finding with "
        "--strict; 2 if the file is invalid.",
    )
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.set_defaults(func=cmd_lint)

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
