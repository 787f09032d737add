"""`kmschaos probe`: what KMIP servers show a client — certificate chain and expiry, TLS
version and cipher, client certificate accepted, KMIP versions, round trip, clock offset
— read without creating anything (`harness.probe`).

Three ways to name the servers:

    kmschaos probe HOST[:PORT]... --ca FILE --cert FILE --key FILE [--server-name NAME]
    kmschaos probe --topology FILE     the external replicas of a topology, directly
    kmschaos probe [--state-dir DIR]   every replica of a running cluster, through the
                                       first client link into it (--direct: its address)

Exit 0: no error finding (warnings allowed); 1: an error finding (a certificate expired
or expiring under --error-days, a chain that does not verify, a refused client
certificate, no KMIP answer; for a running cluster also a replica that cannot be
reached); 2: bad input — a file that cannot be used, or a server named on the command
line or in the topology that is not a TLS server at all (nothing listens, the name does
not resolve, a plain TCP or HTTP server): one line each on stderr, saying what was
reached and what failed.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from harness import options
from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError, print_err, state_dir
from harness.pki import CertFiles
from harness.probe import (
    ERROR_DAYS,
    MAX_OFFSET_S,
    TIMEOUT_S,
    WARN_DAYS,
    Probe,
    ProbeReport,
    ProbeSetupError,
    Target,
    Thresholds,
    cluster_targets,
    days_text,
    parse_target,
    probe_all,
    topology_targets,
)

HOST_TLS = ("ca", "cert", "key")


def cmd_probe(args: argparse.Namespace) -> int:
    th = _thresholds(args)
    targets, note, usage_failures = _targets(args)
    try:
        report = probe_all(targets, th, args.timeout)
    except ProbeSetupError as e:
        raise UserError(_setup_error(args, str(e)), EXIT_USAGE) from None
    unprobed = report.unprobed if usage_failures else []
    shown = [p for p in report.probes if p not in unprobed]
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif shown:
        print(render(report, shown, note))
    for p in unprobed:
        print_err(f"probe {p.failure}")
    if unprobed:
        return EXIT_USAGE
    return EXIT_FAIL if report.errors else EXIT_OK


def _thresholds(args: argparse.Namespace) -> Thresholds:
    if args.error_days < 0:
        raise UserError(f"--error-days {args.error_days:g}: must be 0 or more", EXIT_USAGE)
    if args.warn_days < args.error_days:
        raise UserError(
            f"--warn-days {args.warn_days:g}: must be at least --error-days ({args.error_days:g})",
            EXIT_USAGE,
        )
    if args.max_offset < 0:
        raise UserError(f"--max-offset {args.max_offset:g}: must be 0 or more", EXIT_USAGE)
    if not 0 < args.timeout <= 600:
        raise UserError(f"--timeout {args.timeout:g}: must be in (0, 600] seconds", EXIT_USAGE)
    return Thresholds(args.error_days, args.warn_days, args.max_offset)


def _targets(args: argparse.Namespace) -> tuple[list[Target], str, bool]:
    """The targets, a note for the report, and whether a target that is not a TLS
    server is bad input (named by the user) rather than a finding (a cluster's replica)."""
    given = [f"--{k}" for k in (*HOST_TLS, "server_name") if getattr(args, k)]
    given = [g.replace("_", "-") for g in given]
    if args.targets:
        if args.topology:
            raise UserError("give HOST targets or --topology, not both", EXIT_USAGE)
        if args.direct:
            raise UserError("--direct is for the replicas of a running cluster", EXIT_USAGE)
        missing = [f"--{k}" for k in HOST_TLS if not getattr(args, k)]
        if missing:
            raise UserError(
                f"probing {' '.join(args.targets)} needs --ca, --cert and --key (missing: "
                f"{', '.join(missing)}): the CA that signed the servers' certificates, and "
                "a client certificate and key the servers know",
                EXIT_USAGE,
            )
        tls = CertFiles(args.ca, args.cert, args.key)
        try:
            targets = [parse_target(t, tls, args.server_name or "") for t in args.targets]
        except ValueError as e:
            raise UserError(str(e), EXIT_USAGE) from None
        return targets, "", True
    if given:
        where = "--topology" if args.topology else "a running cluster"
        raise UserError(
            f"{', '.join(given)}: only with HOST targets ({where} brings its own TLS files)",
            EXIT_USAGE,
        )
    if args.topology:
        return (*_topology_targets(args), True)
    return (*_cluster_targets(args), False)


def _topology_targets(args: argparse.Namespace) -> tuple[list[Target], str]:
    from harness.topology import check_tls_files, load_topology

    if args.direct:
        raise UserError("--direct is for the replicas of a running cluster", EXIT_USAGE)
    topo = load_topology(args.topology)
    targets, own = topology_targets(topo)
    if not targets:
        raise UserError(
            f"{args.topology}: no external replica to probe (kmschaos makes its own "
            "replicas' certificates at `kmschaos up`: start the cluster, then run "
            "`kmschaos probe` with its --state-dir)",
            EXIT_USAGE,
        )
    check_tls_files(topo)
    note = ""
    if own:
        note = (
            f"not probed: {', '.join(own)} (kmschaos starts them, with certificates made at "
            "`kmschaos up`; probe the running cluster instead)"
        )
    return targets, note


def _cluster_targets(args: argparse.Namespace) -> tuple[list[Target], str]:
    from harness.cluster.state import load_state

    sdir = state_dir(args)
    state = load_state(sdir.resolve())
    if state.status == "down":
        raise UserError(f"cluster {state.run_id} in {sdir}/ is down: nothing to probe")
    how = "direct addresses" if args.direct else "through a client link each"
    return cluster_targets(state, args.direct), f"cluster {state.run_id} ({how})"


def _setup_error(args: argparse.Namespace, message: str) -> str:
    """A file problem, naming the option that gave the file when there is one."""
    for k in HOST_TLS:
        path = getattr(args, k)
        if path and message.startswith(path):
            return f"--{k} {message}"
    return message


# ---- the report for a person ---------------------------------------------------------------


def render(report: ProbeReport, probes: list[Probe], note: str = "") -> str:
    """One row per target, each target's chain, the findings, a verdict line."""
    now = report.now
    head = f"kmschaos probe: {_n(len(probes), 'target')} in {report.took_s:.2f} s"
    lines = [head + (f"; {note}" if note else ""), ""]
    rows: list[tuple[str, ...]] = [
        ("target", "address", "TLS", "certificate", "client cert", "KMIP", "RTT", "clock")
    ]
    for p in probes:
        rows.append(_row(p, now))
    if all(p.target.name == p.target.address for p in probes):  # HOST:PORT arguments
        rows = [r[:1] + r[2:] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for p in probes:
        if p.failure or not p.chain:
            continue
        t = p.target
        via = f"{t.via}, " if t.via else ""
        extra = ", ".join(x for x in (p.cipher, p.vendor) if x)
        lines += [
            "",
            f"{t.name} ({via}name checked: {t.check_name}){': ' + extra if extra else ''}",
        ]
        for c in p.chain:
            issuer = "self-signed" if c.issuer == c.subject else f"issued by {c.issuer}"
            anchor = "" if c.presented else " [trust anchor from the CA file, not sent]"
            lines.append(
                f"  {c.subject}, {issuer}: {c.not_before:%Y-%m-%d %H:%M} → "
                f"{c.not_after:%Y-%m-%d %H:%M} UTC, {_lasts(c.days_left(now))}{anchor}"
            )
    for path, certs in report.client_certificates.items():
        if certs:
            c = certs[0]
            lines += ["", f"client certificate {c.subject} ({path}): {_lasts(c.days_left(now))}"]
    shown = {p.target.name for p in probes} | {"client"}
    findings = [f for f in report.findings if f.target in shown]
    if findings:
        lines += ["", "findings:"]
        lines += [f"  {f.severity:<7}  {f.target}: {f.message}" for f in findings]
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    if errors:
        verdict = f"ERRORS: {_n(errors, 'error')}, {_n(warnings, 'warning')}"
    elif warnings:
        verdict = f"WARNINGS: {_n(warnings, 'warning')}"
    else:
        verdict = "OK: no findings"
    return "\n".join([*lines, "", verdict])


def _row(p: Probe, now: datetime) -> tuple[str, ...]:
    t = p.target
    if p.failure:
        reason = p.failure.split(": ", 1)[-1]
        return (t.name, t.address, "-", f"NOT PROBED: {reason}", "", "", "", "")
    status = p.verify_error.split(" (", 1)[0].split(",", 1)[0].upper() or "verified"
    if not p.chain:
        cert = "-"
    else:
        first = min(p.chain, key=lambda c: c.not_after)
        left = first.days_left(now)
        if left >= 0:
            cert = f"{status}, {days_text(left)} left"
        elif status == "EXPIRED":
            cert = f"EXPIRED {days_text(-left)} ago"
        else:
            cert = f"{status}, EXPIRED {days_text(-left)} ago"
    if p.client_accepted is True:
        client = "accepted"
    elif p.client_accepted is False:
        client = "REFUSED"
    else:
        client = "unknown"
    kmip = " ".join(p.versions) if p.versions else ("FAILED" if p.kmip_error else "-")
    rtt = f"{p.rtt_ms:.1f} ms" if p.rtt_ms is not None else "-"
    clock = p.clock.text() if p.clock else "-"
    tls = p.tls_version or ("FAILED" if p.tls_error else "-")
    return (t.name, t.address, tls, cert, client, kmip, rtt, clock)


def _lasts(days_left: float) -> str:
    if days_left >= 0:
        return f"{days_text(days_left)} left"
    return f"EXPIRED {days_text(-days_left)} ago"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def add_parsers(sub: Any) -> None:
    """The subcommands of this module."""
    p = sub.add_parser(
        "probe",
        help="what KMIP servers show a client: certificates and their expiry, TLS, KMIP "
        "versions, clock offset (creates nothing)",
        description="Connect to each KMIP server as a client would and read, without "
        "creating anything: the certificate chain it presents and the days until each "
        "certificate expires, the TLS version and cipher, whether the client certificate "
        "is accepted (a KMIP request is answered), the KMIP protocol versions (Discover "
        "Versions), the round trip, and the server's clock against this host (from the KMIP "
        "response header's time stamp: whole seconds, so about ±0.5 s). A chain that does "
        "not verify is reported with the reason, and read again without verification. "
        "Targets: HOST[:PORT] arguments (with --ca, --cert, --key); --topology FILE (its "
        "external replicas); or, with neither, every replica of the running cluster of "
        "--state-dir. Exit 0 without error findings, 1 with one, 2 on bad input (a file "
        "that cannot be used, or a named server that is not a TLS server: one line each).",
    )
    p.add_argument(
        "targets",
        metavar="HOST[:PORT]",
        nargs="*",
        help="servers to probe (port default 5696; [V6ADDR]:PORT for IPv6)",
    )
    p.add_argument(
        "--ca", metavar="FILE", help="the CA certificate(s) that signed the servers' (PEM)"
    )
    p.add_argument("--cert", metavar="FILE", help="client certificate the servers know (PEM)")
    p.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    p.add_argument(
        "--server-name",
        metavar="NAME",
        help="the name the servers' certificates must carry (default: HOST)",
    )
    p.add_argument(
        "--topology",
        metavar="FILE",
        help="probe the external replicas of this topology file, directly, with its tls files",
    )
    options.add_state_dir(p)
    p.add_argument(
        "--direct",
        action="store_true",
        help="running cluster: each replica's direct address, not its first client link",
    )
    p.add_argument(
        "--error-days",
        type=float,
        default=ERROR_DAYS,
        metavar="D",
        help=f"a certificate expiring within D days is an error (default {ERROR_DAYS:g})",
    )
    p.add_argument(
        "--warn-days",
        type=float,
        default=WARN_DAYS,
        metavar="D",
        help=f"a certificate expiring within D days is a warning (default {WARN_DAYS:g})",
    )
    p.add_argument(
        "--max-offset",
        type=float,
        default=MAX_OFFSET_S,
        metavar="S",
        help=f"a server clock off by more than S seconds is a warning (default {MAX_OFFSET_S:g})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for each step: connect, handshake, answer (default {TIMEOUT_S:g})",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON, for programs")
    p.set_defaults(func=cmd_probe)


__all__ = ["add_parsers", "cmd_probe", "render"]
