"""Judging probes: the findings of each (`judge`, pure: thresholds and a `now`), the
client certificates' expiry, and `ProbeReport`, the whole answer (as JSON too);
`probe_all` probes every target at once and judges them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.probe.certificates import (
    Certificate,
    Severity,
    expiry_problem,
    read_certificates,
)
from harness.probe.session import TIMEOUT_S, Probe, contexts, duration_text, probe
from harness.probe.targets import Target

ERROR_DAYS = 30.0
WARN_DAYS = 90.0
MAX_OFFSET_S = 5.0


@dataclass(frozen=True)
class Thresholds:
    """A certificate expiring within `error_days` is an error, within `warn_days` a
    warning; a clock surely more than `max_offset_s` off is a warning."""

    error_days: float = ERROR_DAYS
    warn_days: float = WARN_DAYS
    max_offset_s: float = MAX_OFFSET_S


@dataclass(frozen=True)
class ProbeFinding:
    """One problem: the target's name (``client`` for the client certificate)."""

    target: str
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "severity": self.severity, "message": self.message}


def judge(p: Probe, th: Thresholds, now: datetime) -> list[ProbeFinding]:
    """The findings of one probe, errors first (pure)."""
    name = p.target.name
    out: list[tuple[Severity, str]] = []
    if p.failure:
        out.append(("error", f"not probed: {p.failure}"))
    if p.verify_error:
        out.append(("error", f"the server's certificate does not verify: {p.verify_error}"))
    for c in p.chain:
        found = expiry_problem(c, now, th.error_days, th.warn_days)
        if found:
            role = "certificate" if c.presented else "trust anchor (from the CA file)"
            out.append((found[0], f"{role} {c.subject} {found[1]}"))
    for problem in (p.tls_error, p.client_error, p.kmip_error):
        if problem:
            out.append(("error", problem))
    clock = p.clock
    if clock and (clock.low > th.max_offset_s or clock.high < -th.max_offset_s):
        way = "ahead of" if clock.low > 0 else "behind"
        out.append(
            (
                "warning",
                f"the server's clock is {duration_text(abs(clock.offset_s))} {way} this "
                f"host's (±{clock.uncertainty_s:.1f} s; more than {th.max_offset_s:g} s)",
            )
        )
    out.sort(key=lambda f: f[0] != "error")
    return [ProbeFinding(name, sev, msg) for sev, msg in out]


@dataclass
class ProbeReport:
    """Every probe, the client certificates used (with their expiry), the findings."""

    probes: list[Probe]
    client_certificates: dict[str, list[Certificate]]
    findings: list[ProbeFinding]
    thresholds: Thresholds
    now: datetime
    took_s: float = 0.0

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors

    @property
    def unprobed(self) -> list[Probe]:
        return [p for p in self.probes if p.failure]

    def to_dict(self) -> dict[str, Any]:
        th = self.thresholds
        return {
            "probed_at": self.now.isoformat(),
            "took_s": round(self.took_s, 3),
            "thresholds": {
                "error_days": th.error_days,
                "warn_days": th.warn_days,
                "max_offset_s": th.max_offset_s,
            },
            "targets": [p.to_dict(self.now) for p in self.probes],
            "client_certificates": {
                path: [c.to_dict(self.now) for c in certs]
                for path, certs in self.client_certificates.items()
            },
            "findings": [f.to_dict() for f in self.findings],
            "errors": self.errors,
            "warnings": self.warnings,
        }


def probe_all(
    targets: Iterable[Target], th: Thresholds, timeout_s: float = TIMEOUT_S
) -> ProbeReport:
    """Probe every target at once (threads) and judge them; `ProbeSetupError` before
    any connection when a TLS file cannot be used."""
    import kmip.core.messages  # noqa: F401 - once, before the threads and their clocks

    targets = list(targets)
    clients: dict[str, list[Certificate]] = {}
    ctxs = {}
    for t in targets:
        if t.tls not in ctxs:
            ctxs[t.tls] = contexts(t.tls)
        if t.tls.cert not in clients:
            clients[t.tls.cert] = [Certificate.of(c) for c in read_certificates(t.tls.cert)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        probes = list(pool.map(lambda t: probe(t, timeout_s, ctxs[t.tls]), targets))
    now = datetime.now(UTC)
    findings = []
    for path, certs in clients.items():
        for c in certs[:1]:  # the client certificate itself (not the issuers it carries)
            found = expiry_problem(c, now, th.error_days, th.warn_days)
            if found:
                findings.append(
                    ProbeFinding(
                        "client", found[0], f"client certificate {c.subject} ({path}) {found[1]}"
                    )
                )
    for p in probes:
        findings += judge(p, th, now)
    findings.sort(key=lambda f: f.severity != "error")
    return ProbeReport(probes, clients, findings, th, now, time.monotonic() - t0)
