"""Design checks on a loaded topology: the mistakes a DR rehearsal would find the hard way.

The loader (`harness.topology`) rejects files that cannot run; `lint` reports layouts
that run but fail their users: a single KMS, a client that goes remote while its own
site is healthy, replicas that share a hypervisor, a KMS whose storage is encrypted
with its own keys, a client whose KMIP version a KMS in its order does not speak, two
external replicas that are one server, certificates of external
targets that expire soon, every replica trusted through one expiring CA. A client's order
may list load balancers: the rules about replicas read it through them (`Topology.behind`:
a listed balancer's replicas are reached), and a balancer's site is its own. Each `Finding`
names a rule, the field, what is wrong and why, and a fix. No servers; the only files
read are the TLS files a topology names for its external targets (their expiry; a file
that is missing or not PEM is skipped here and refused when a cluster is created, so a
topology can be linted on a machine without them). The load balancers' rules are in
`harness.lint_balancers`. `resolve` asks the system resolver (with a deadline) for the
addresses of external replicas' host names when a caller wants `same-server` to compare
addresses (`kmschaos audit` does; `lint` itself compares the names as written).

The harness's own PKI is made at `kmschaos up` (fresh certificates each time), so the
certificate rules look only at the files the topology names: the run's client identity
and the CAs that verify external targets.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from harness.lint_balancers import RULES as BALANCER_RULES
from harness.lint_balancers import balancer_findings
from harness.lint_finding import Finding, Severity
from harness.probe import Certificate, ProbeSetupError, expiry_problem, read_certificates
from harness.topology import ClientSpec, Topology

RULES = (
    "single-kms",
    "thin-site",
    "remote-before-local",
    "local-missing",
    "shared-failure-domain",
    "self-encrypted",
    "unreplicated-copies",
    "unreachable-replica",
    "unspoken-version",
    "same-server",
    "expiring-certificate",
    "single-ca",
    *BALANCER_RULES,
)

CERT_WARN_DAYS = 90.0  # a certificate the topology names that expires sooner is a warning

# host name -> its addresses (sorted), or why it has none (a sentence)
Resolved = Mapping[str, tuple[str, ...] | str]


def lint(
    topology: Topology, addresses: Resolved | None = None, now: datetime | None = None
) -> list[Finding]:
    """Every finding for `topology`, errors first, then by field path. With
    `addresses` (from `resolve`), `same-server` also compares what names resolve to;
    certificates are judged at `now` (default: the current time)."""
    findings = [
        *_single_kms(topology),
        *_thin_site(topology),
        *_client_order(topology),
        *_shared_failure_domain(topology),
        *_self_encrypted(topology),
        *_unreplicated_copies(topology),
        *_unused_replica(topology),
        *_unspoken_version(topology),
        *same_server(topology, addresses),
        *certificate_expiry(topology, now or datetime.now(UTC)),
        *balancer_findings(topology),
    ]
    return sorted(findings, key=_sort_key)


def format_findings(findings: list[Finding], source: str) -> str:
    """One line per finding: ``<source>: <where>: <rule>: <severity>: <message> (fix: <fix>)``."""
    return "\n".join(
        f"{source}: {f.where}: {f.rule}: {f.severity}: {f.message} (fix: {f.fix})" for f in findings
    )


def summarize(findings: list[Finding]) -> str:
    """``2 errors, 1 warning`` or ``no findings``."""
    if not findings:
        return "no findings"
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    return f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"


def exit_status(findings: list[Finding], strict: bool) -> int:
    """1 if any error (or, with `strict`, any finding at all), else 0."""
    if any(f.severity == "error" for f in findings):
        return 1
    return 1 if strict and findings else 0


# ---- rules -----------------------------------------------------------------------------


def _single_kms(t: Topology) -> list[Finding]:
    if len(t.replicas) != 1:
        return []
    (only,) = t.replicas
    site = t.site_of(only)
    return [
        Finding(
            "single-kms",
            "error",
            f"sites.{site}.replicas",
            f"'{only}' is the only KMS, a single point of failure: while it is down no key "
            "can be served, and a lost database is lost keys",
            f"add at least 2 more replicas at site '{site}' and list them in every client's order",
        )
    ]


def _thin_site(t: Topology) -> list[Finding]:
    if len(t.replicas) == 1:
        return []  # single-kms says it all
    client_sites = {c.site for c in t.clients.values()}
    out: list[Finding] = []
    for site, reps in t.sites.items():
        if site not in client_sites or len(reps) >= 3:
            continue
        severity: Severity = "error" if len(reps) < 2 else "warning"
        why = (
            "one failure sends its clients to another site"
            if len(reps) < 2
            else "a rolling restart plus one failure leaves it without a local KMS"
        )
        out.append(
            Finding(
                "thin-site",
                severity,
                f"sites.{site}.replicas",
                f"site '{site}' has clients but {_plural(len(reps), 'replica')} "
                f"({', '.join(reps)}): {why}",
                f"give site '{site}' at least 3 replicas",
            )
        )
    return out


def _client_order(t: Topology) -> list[Finding]:
    """A client that tries a server of another site before one of its own site (a
    balancer's site is its own `site`), or that reaches not every replica of its own
    site, listed or behind a balancer it lists (`Topology.behind`)."""
    out: list[Finding] = []
    for c in t.clients.values():
        path = f"clients.{c.name}.order"
        local_listed = [s for s in c.order if t.site_of(s) == c.site]
        for i, s in enumerate(c.order):
            remaining = [x for x in local_listed if x not in c.order[:i]]
            if t.site_of(s) == c.site or not remaining:
                continue
            fixed = local_listed + [x for x in c.order if t.site_of(x) != c.site]
            kinds = "servers" if any(x in t.load_balancers for x in fixed) else "replicas"
            out.append(
                Finding(
                    "remote-before-local",
                    "error",
                    f"{path}[{i}]",
                    f"'{s}' (site '{t.site_of(s)}') is tried before local "
                    f"{', '.join(remaining)}: requests cross sites while site '{c.site}' "
                    "is healthy, and a cut between sites makes every request fail over first",
                    f"list site '{c.site}' {kinds} first: order: [{', '.join(fixed)}]",
                )
            )
            break
        reached = {r for s in c.order for r in t.behind(s)}
        missing = [r for r in t.sites[c.site] if r not in reached]
        if missing:
            fronts = [b for b in t.load_balancers if set(missing) & set(t.behind(b))]
            via = f" (or a balancer in front of them: {', '.join(fronts)})" if fronts else ""
            nor = (
                ", listed or behind a balancer it lists"
                if any(s in t.load_balancers for s in c.order)
                else ""
            )
            out.append(
                Finding(
                    "local-missing",
                    "warning",
                    path,
                    f"omits {', '.join(repr(r) for r in missing)} of its own site "
                    f"'{c.site}'{nor}: the client goes remote (or fails) while a local KMS "
                    "is up",
                    f"add {', '.join(missing)}{via} after the other site '{c.site}' replicas",
                )
            )
    return out


def _shared_failure_domain(t: Topology) -> list[Finding]:
    infos = [t.info_of(r) for r in t.replicas]
    hosts = {i.host for i in infos}
    if len(infos) > 1 and len(hosts) == 1 and None not in hosts:
        (host,) = hosts
        return [
            Finding(
                "shared-failure-domain",
                "error",
                "sites",
                f"every replica ({', '.join(t.replicas)}) runs on host '{host}': one host "
                "failure takes the whole KMS down",
                "spread the replicas over separate hosts (and sites over separate racks)",
            )
        ]
    out: list[Finding] = []
    for site, reps in t.sites.items():
        by_host: dict[str, list[str]] = defaultdict(list)
        for r in reps:
            host = t.info_of(r).host
            if host is not None:
                by_host[host].append(r)
        for host, together in by_host.items():
            if len(together) < 2:
                continue
            second = together[1]
            out.append(
                Finding(
                    "shared-failure-domain",
                    "warning",
                    f"sites.{site}.replicas[{reps.index(second)}].host",
                    f"{', '.join(together)} of site '{site}' share host '{host}': one host "
                    f"failure takes {len(together)} of the site's {len(reps)} replicas",
                    f"move all but one of {', '.join(together)} to other hosts",
                )
            )
    return out


def _self_encrypted(t: Topology) -> list[Finding]:
    out: list[Finding] = []
    for site, reps in t.sites.items():
        for i, r in enumerate(reps):
            if t.info_of(r).encrypted_by != t.name:
                continue
            out.append(
                Finding(
                    "self-encrypted",
                    "error",
                    f"sites.{site}.replicas[{i}].encrypted_by",
                    f"'{r}' stores its data encrypted with keys from '{t.name}', the cluster "
                    "it belongs to: after a full outage no replica can unlock its storage "
                    "to start (the key is locked inside the box)",
                    f"encrypt '{r}' with a key that does not depend on '{t.name}' "
                    "(another KMS cluster, an HSM/TPM, or a passphrase held offline)",
                )
            )
    return out


def _unreplicated_copies(t: Topology) -> list[Finding]:
    if t.replication_profile != "none" or len(t.replicas) < 2:
        return []
    return [
        Finding(
            "unreplicated-copies",
            "warning",
            "replication.profile",
            f"profile 'none' with {len(t.replicas)} replicas: a key lives only on the "
            "replica that made it, so failover reaches replicas that do not have it",
            "choose a replicating profile: async, sync or quorum",
        )
    ]


def _unused_replica(t: Topology) -> list[Finding]:
    """A replica no client reaches: in no client's order, nor behind a balancer one lists."""
    used = {r for c in t.clients.values() for s in c.order for r in t.behind(s)}
    out: list[Finding] = []
    for site, reps in t.sites.items():
        for i, r in enumerate(reps):
            if r in used:
                continue
            fronts = t.balancers_of(r)
            nor = f", nor behind a balancer one lists ({', '.join(fronts)})" if fronts else ""
            via = f" (or {_names(fronts, or_=True)})" if fronts else ""
            out.append(
                Finding(
                    "unreachable-replica",
                    "warning",
                    f"sites.{site}.replicas[{i}]",
                    f"'{r}' is in no client's order{nor}: no client ever reaches it, so it "
                    "adds no availability",
                    f"add '{r}'{via} to the order of the clients that should fail over to it, "
                    "or remove it",
                )
            )
    return out


def _unspoken_version(t: Topology) -> list[Finding]:
    """A client whose policy's KMIP version a replica of its order, or behind a balancer
    of its order, does not speak (its `kmip_versions`): every request there is refused
    (`version-refused`). One finding per server of the order."""
    out: list[Finding] = []
    for c in t.clients.values():
        version = c.policy.kmip_version
        deaf = {
            s: d
            for s in c.order
            if (d := [r for r in t.behind(s) if version not in t.info_of(r).speaks])
        }
        if not deaf:
            continue
        reached = [r for s in c.order for r in t.behind(s)]
        speaking = any(version in t.info_of(r).speaks for r in reached)
        for i, s in enumerate(c.order):
            if s not in deaf:
                continue
            if speaking:
                effect = (
                    "PyKMIP's client, connected there, raises it: operations fail (no "
                    "failover on a KMIP error)"
                    if c.policy.engine == "pykmip"
                    else "each operation spends an attempt there before it moves on"
                )
            else:
                effect = f"no server in its order speaks {version}: every operation fails"
            if s in t.load_balancers:
                out.append(_unspoken_behind(t, c, i, s, deaf[s], effect))
                continue
            spoken = ", ".join(t.info_of(s).speaks)
            out.append(
                Finding(
                    "unspoken-version",
                    "warning",
                    f"clients.{c.name}.order[{i}]",
                    f"client '{c.name}' ({c.policy.label}) sends KMIP {version}, which '{s}' "
                    f"does not speak (kmip_versions: {spoken}): every request to it is "
                    f"refused (version-refused), and {effect}",
                    f"add {version} to the kmip_versions of '{s}' if that KMS speaks it, set "
                    f"the client's policy kmip_version to one '{s}' speaks, or remove '{s}' "
                    "from its order",
                )
            )
    return out


def _unspoken_behind(
    t: Topology, c: ClientSpec, i: int, lb: str, deaf: list[str], effect: str
) -> Finding:
    """`unspoken-version` for the replicas `deaf` behind balancer `lb`, `c.order[i]`."""
    version = c.policy.kmip_version
    by_versions: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for r in deaf:
        by_versions[t.info_of(r).speaks].append(r)
    if len(by_versions) == 1:
        spoken = f"kmip_versions: {', '.join(next(iter(by_versions)))}"
    else:
        spoken = "; ".join(
            f"{_names(names)}: {', '.join(versions)}" for versions, names in by_versions.items()
        )
        spoken = f"kmip_versions of {spoken}"
    one_deaf = len(deaf) == 1
    them = "it" if one_deaf else "them"
    speakers = [r for r in t.behind(lb) if r not in deaf]
    spare = (
        f" (not to {_names(speakers)}, which {'speaks' if len(speakers) == 1 else 'speak'} it)"
        if speakers
        else ""
    )
    return Finding(
        "unspoken-version",
        "warning",
        f"clients.{c.name}.order[{i}]",
        f"client '{c.name}' ({c.policy.label}) sends KMIP {version}, which {_names(deaf)} "
        f"behind '{lb}' {'does' if one_deaf else 'do'} not speak ({spoken}): every request "
        f"'{lb}' sends to {them}{spare} is refused (version-refused), and {effect}",
        f"add {version} to the kmip_versions of {_names(deaf)} if "
        f"{'that KMS speaks' if one_deaf else 'those KMSs speak'} it, set "
        f"the client's policy kmip_version to one {them} {'speaks' if one_deaf else 'speak'}, "
        f"or take {them} out of '{lb}' (or '{lb}' out of the client's order)",
    )


def same_server(t: Topology, addresses: Resolved | None = None) -> list[Finding]:
    """External replicas that are one server: the same host (case-insensitive) and
    port, or, with `addresses`, host names that resolve to a common address and the same
    port. One finding per replica that repeats an earlier one, at its `external` field."""
    out: list[Finding] = []
    # the external replicas so far: name, host, port, addresses, field
    earlier: list[tuple[str, str, int, frozenset[str], str]] = []
    for site, reps in t.sites.items():
        for i, r in enumerate(reps):
            ext = t.info_of(r).external
            if ext is None:
                continue
            host = ext.host.lower().rstrip(".")
            found = addresses.get(ext.host) if addresses is not None else None
            addrs = frozenset(found) if isinstance(found, tuple) else frozenset()
            where = f"sites.{site}.replicas[{i}].external"
            for name, other, port, other_addrs, other_where in earlier:
                if port != ext.port:
                    continue
                if other == host:
                    why = f"both {ext.address}"
                elif addrs & other_addrs:
                    common = ", ".join(sorted(addrs & other_addrs))
                    why = (
                        f"'{name}' ({other}) and '{r}' ({ext.host}) resolve to {common}, "
                        f"port {port}"
                    )
                else:
                    continue
                out.append(
                    Finding(
                        "same-server",
                        "error",
                        where,
                        f"'{r}' and '{name}' are one server ({why}): the topology looks "
                        "replicated when it is not, a failover from one to the other reaches "
                        "the same server, and an audit reads it twice",
                        f"point '{r}' at its own server (check the host and port of "
                        f"{other_where} and {where})",
                    )
                )
                break
            earlier.append((r, host, ext.port, addrs, where))
    return out


def certificate_expiry(t: Topology, now: datetime) -> list[Finding]:
    """`expiring-certificate`: the client certificate and every CA certificate the
    topology's TLS files hold, expired or not yet valid (error) or expiring within
    `CERT_WARN_DAYS` (warning), once per file, at the first field naming it.
    `single-ca`: two or more external replicas whose CA files hold one certificate in
    all, expiring within the window: on that day every handshake fails on every replica
    at once, and failover cannot help. Files that cannot be read are skipped."""
    files: dict[str, tuple[str, str]] = {}  # path -> (field, "cert" | "ca")
    ca_of: dict[str, str] = {}  # external replica -> its CA file
    for paths in [t.tls, *(t.info_of(r).tls for r in t.replicas)]:
        if paths is None:
            continue
        for kind in ("cert", "ca"):
            path = getattr(paths, kind)
            if path and path not in files:
                files[path] = (f"{paths.where}.{kind}", kind)
    for r in t.external_replicas:
        ca = t.external_tls(r).ca
        if ca:
            ca_of[r] = ca
    read: dict[str, list[Certificate]] = {}
    for path in files:
        try:
            found = read_certificates(path)
        except ProbeSetupError:
            continue
        read[path] = [Certificate.of(c) for c in found]
    out: list[Finding] = []
    for path, certs in read.items():
        where, kind = files[path]
        for c in certs[:1] if kind == "cert" else certs:
            found_problem = expiry_problem(c, now, 0.0, CERT_WARN_DAYS)
            if found_problem is None:
                continue
            severity, when = found_problem
            what, fix = _certificate_role(kind, c, path)
            out.append(
                Finding(
                    "expiring-certificate",
                    severity,
                    where,
                    f"{what} {when}: {_certificate_impact(kind)}",
                    fix,
                )
            )
    out += _single_ca(t, ca_of, read, files, now)
    return out


def _single_ca(
    t: Topology,
    ca_of: dict[str, str],
    read: dict[str, list[Certificate]],
    files: dict[str, tuple[str, str]],
    now: datetime,
) -> list[Finding]:
    if len(ca_of) < 2 or any(ca not in read for ca in ca_of.values()):
        return []
    anchors = {c.sha256: c for ca in set(ca_of.values()) for c in read[ca]}
    if len(anchors) != 1:
        return []
    (ca,) = anchors.values()
    problem = expiry_problem(ca, now, 0.0, CERT_WARN_DAYS)
    if problem is None:
        return []
    first = next(iter(ca_of.values()))
    return [
        Finding(
            "single-ca",
            "warning",
            files[first][0],
            f"every external replica ({', '.join(ca_of)}) is verified through one CA, "
            f"{ca.subject}, which {problem[1]}: on that day every TLS handshake fails on "
            "every replica at once — a total outage that failover cannot help",
            "move the servers to a new CA before then, one at a time, with tls.ca trusting "
            "both the old and the new CA during the change",
        )
    ]


def _certificate_role(kind: str, c: Certificate, path: str) -> tuple[str, str]:
    if kind == "cert":
        return (
            f"client certificate {c.subject} ({path})",
            f"renew the client certificate (same CN: the KMS owns objects by it) and "
            f"replace {path}",
        )
    return (
        f"CA certificate {c.subject} ({path})",
        f"have the servers' certificates issued by a CA that lasts, and add it to {path}",
    )


def _certificate_impact(kind: str) -> str:
    if kind == "cert":
        return (
            "it is the run's one client identity, so every replica refuses the clients "
            "from that day on"
        )
    return "servers whose certificates chain to it no longer verify from that day on"


def resolve(hosts: Iterable[str], timeout_s: float = 2.0) -> dict[str, tuple[str, ...] | str]:
    """The addresses each host name resolves to (sorted), or why it has none; every
    name is asked at once, and one that gets no answer within `timeout_s` is left
    with that reason (its lookup thread is a daemon: it cannot hold the process)."""
    names = sorted(set(hosts))
    out: dict[str, tuple[str, ...] | str] = {}
    lock = threading.Lock()

    def one(host: str) -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            answer: tuple[str, ...] | str = f"does not resolve ({e})"
        else:
            answer = tuple(sorted({str(info[4][0]) for info in infos}))
        with lock:
            out[host] = answer

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in names]
    for th in threads:
        th.start()
    deadline = time.monotonic() + timeout_s
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return {h: out.get(h, f"no answer from the resolver within {timeout_s:g} s") for h in names}


# ---- helpers ---------------------------------------------------------------------------


def _sort_key(f: Finding) -> tuple[int, list[tuple[str, int]], str]:
    """Errors first; then the field path with indexes compared as numbers ([2] < [10])."""
    parts = [(text, int(num) if num else -1) for text, num in re.findall(r"(\D*)(\d*)", f.where)]
    return (0 if f.severity == "error" else 1, parts, f.rule)


def _names(names: Sequence[str], or_: bool = False) -> str:
    """``'a', 'b' and 'c'`` (or ``or 'c'``)."""
    quoted = [f"'{n}'" for n in names]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {'or' if or_ else 'and'} {quoted[-1]}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
