"""The `kmschaos` command line.

    kmschaos up TOPOLOGY        start a cluster, wait until ready, print endpoints, return
    kmschaos status [--json]    endpoints, TLS files and replica states of a running cluster
    kmschaos inject FAULT TARGET [--ms N ...]   inject a fault, print its id
    kmschaos heal [ID | --all]  heal one fault or every fault
    kmschaos down [--all]       stop the cluster (or every kmschaos run on this machine)
    kmschaos run [SCENARIO ...] run the scenario catalogue, print verdicts, write reports
    kmschaos lint TOPOLOGY      check a topology for design errors
    kmschaos lb-config TOPOLOGY LB [--state-dir DIR]   a load balancer's HAProxy configuration
    kmschaos faults | policies  list the faults / client policies and what each does
    kmschaos audit              what every replica holds and who answered, after an incident
    kmschaos probe [HOST[:PORT] ...]   certificates, TLS, KMIP versions, clock of KMIP servers
    kmschaos schema topology|rehearsal [-o FILE]   JSON Schema of a file format (editors)
    kmschaos trend RUN_DIR... [--fail-on-drift]   figures over several runs, drift flagged
    kmschaos swarm nodes|label|images|lab   the swarm backend's nodes, sites and images

    kmschaos matrix | report | images | compose   see each one's --help

One module per group of commands (`cluster`, `faults`, `catalogue`; `harness.matrix`,
`harness.report`, `harness.images`, `harness.compose` bring their own), each adding its
subcommands to the parser; this module only builds the parser and runs a command.

Exit status: 0 success; 1 a verdict or scenario failed, or an operation failed;
2 bad input (a topology file, an argument).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from harness import options
from harness.cli import audit, catalogue, cluster, faults, lb, probe, swarm, trend
from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError, print_err
from harness.cli.faults import _fault_params, add_fault_arguments, join_signed_values


def build_parser() -> argparse.ArgumentParser:
    from harness.compose import add_compose_parser
    from harness.images import add_images_parser
    from harness.matrix import add_matrix_parser
    from harness.report import add_report_parser

    ap = argparse.ArgumentParser(
        prog="kmschaos",
        description="Chaos / failure injection for KMS (KMIP) availability: real PyKMIP "
        "replicas behind Toxiproxy, failover clients, faults and verdicts.",
        epilog="Every command that acts on a running cluster takes --state-dir DIR "
        f"(default ./{options.DEFAULT_STATE_DIR}/, or ${options.STATE_DIR_ENV}).",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cluster.add_parsers(sub)
    faults.add_parsers(sub)
    catalogue.add_parsers(sub)
    lb.add_parsers(sub)
    add_matrix_parser(sub)
    add_report_parser(sub)
    add_images_parser(sub)
    add_compose_parser(sub)
    audit.add_parsers(sub)
    probe.add_parsers(sub)
    trend.add_parsers(sub)
    swarm.add_parsers(sub)
    return ap


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
    args = build_parser().parse_args(join_signed_values(argv))
    args.pytest_args = passthrough
    _second_interrupt_forces()
    try:
        return int(args.func(args))
    except TopologyError as e:
        print_err(str(e))
        return EXIT_USAGE
    except UserError as e:
        print_err(str(e))
        return e.status
    except ExternalRefused as e:  # a safety switch is missing: nothing started
        print_err(str(e))
        return EXIT_USAGE
    except (ClusterError, FaultError, ToolchainError, ToxiproxyError, WaitTimeout) as e:
        print_err(str(e))
        return EXIT_USAGE if getattr(e, "bad_input", False) else EXIT_FAIL
    except Exception as e:
        # a docker-backend step the engine refused; docker's SDK is only imported (and
        # can only have raised) when the command used the docker backend
        docker_errors = sys.modules.get("docker.errors")
        if docker_errors is None or not isinstance(e, docker_errors.DockerException):
            raise
        print_err(f"the Docker engine refused: {type(e).__name__}: {e}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        print_err("interrupted; everything this command started was stopped")
        return 130


__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_USAGE",
    "UserError",
    "_fault_params",
    "add_fault_arguments",
    "build_parser",
    "main",
]
