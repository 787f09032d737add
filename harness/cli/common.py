"""What every `kmschaos` command shares: the user error, exit statuses, reaching the
cluster of a state folder, the external-target options, lint warnings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness import options

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""

    def __init__(self, message: str, status: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.status = status


def state_dir(args: argparse.Namespace) -> Path:
    return options.state_dir(args.state_dir)


def print_err(msg: str) -> None:
    print(f"kmschaos: {msg}", file=sys.stderr)


def check_backend(backend: str) -> None:
    from harness.backends import BACKENDS

    if backend not in BACKENDS:
        raise UserError(
            f"--backend {backend}: unknown backend (available: {', '.join(BACKENDS)})", EXIT_USAGE
        )


def check_balancers(topology: Any, backend: str) -> None:
    """A topology with load balancers needs HAProxy on the local backend: said before
    anything starts (exit 2)."""
    if not topology.load_balancers or backend != "local":
        return
    from harness.lb.haproxy import HaproxyError, find_haproxy

    try:
        find_haproxy()
    except HaproxyError as e:
        raise UserError(f"{topology.source}: {e}", EXIT_USAGE) from None


def attach(args: argparse.Namespace) -> Any:
    from harness.backends import attach_cluster

    return attach_cluster(state_dir(args))


def add_external_options(p: argparse.ArgumentParser, consent: bool = True) -> None:
    """The external-target options: the consent flag (safety switch 2) and --keep-keys."""
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


def lint_warnings(topo: Any) -> None:
    """`up` shows the linter's findings as warnings, then goes on."""
    from harness.topology_lint import format_findings, lint

    findings = lint(topo)
    if findings:
        print(format_findings(findings, topo.source), file=sys.stderr)
