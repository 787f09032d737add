"""The topology linter and the replica-mapping syntax it reads: unit tests, no servers.

Each rule has a topology that makes it fire (rule, severity, field path pinned) and the
GOOD topology, on which no rule fires. The certificate rules read TLS files written
into tmp_path with `cryptography`, judged at a fixed date.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.client.policies import POLICIES
from harness.toolchain import repo_root
from harness.topology import (
    ClientSpec,
    ReplicaInfo,
    Topology,
    TopologyError,
    load_topology,
    parse_topology,
    replica_names,
)
from harness.topology_lint import (
    RULES,
    Finding,
    exit_status,
    format_findings,
    lint,
    resolve,
    summarize,
)

TOPOLOGIES = repo_root() / "scenarios" / "topologies"

# Two sites of three replicas on separate hosts, local replicas first, replicated, storage
# encrypted by another cluster: what a design review should accept.
GOOD = """\
name: kms-prod
sites:
  site-a:
    replicas:
      - {name: kms-a, host: hv-a1, encrypted_by: kms-infra}
      - {name: kms-b, host: hv-a2, encrypted_by: kms-infra}
      - {name: kms-c, host: hv-a3}
  site-b:
    replicas:
      - {name: kms-d, host: hv-b1}
      - {name: kms-e, host: hv-b2}
      - kms-f
clients:
  vc-a:
    site: site-a
    order: [kms-a, kms-b, kms-c, kms-d, kms-e, kms-f]
  vc-b:
    site: site-b
    order: [kms-d, kms-e, kms-f, kms-a, kms-b, kms-c]
replication:
  profile: async
"""

TWO_SITES = """\
name: two
sites:
  site-a:
    replicas: [kms-a, kms-b, kms-c]
  site-b:
    replicas: [kms-d, kms-e, kms-f]
clients:
  vc-a:
    site: site-a
    order: {order_a}
  vc-b:
    site: site-b
replication:
  profile: async
"""


def topo(text: str, source: str = "t.yaml") -> Topology:
    return parse_topology(textwrap.dedent(text), source)


def two_sites(order_a: str) -> Topology:
    return topo(TWO_SITES.format(order_a=order_a))


def by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    assert rule in RULES
    return [f for f in findings if f.rule == rule]


def one_site(replicas: str, order: str | None = None, profile: str = "async") -> Topology:
    order_line = f"    order: {order}\n" if order else ""
    return topo(
        f"name: one\nsites:\n  site-a:\n    replicas: {replicas}\n"
        f"clients:\n  vc-a:\n    site: site-a\n{order_line}"
        f"replication:\n  profile: {profile}\n"
    )


# ---- the good topology ------------------------------------------------------------------


def test_good_topology_has_no_findings() -> None:
    assert lint(topo(GOOD)) == []


@pytest.mark.parametrize("rule", RULES)
def test_no_rule_fires_on_the_good_topology(rule: str) -> None:
    assert by_rule(lint(topo(GOOD)), rule) == []


@pytest.mark.parametrize(
    "name, expected",
    [
        ("one-site.yaml", ["unreplicated-copies"]),
        ("two-sites.yaml", ["unreplicated-copies"]),
        ("one-site-pykmip.yaml", ["unreplicated-copies"]),
        ("single-kms.yaml", ["single-kms"]),
        ("two-sites-misordered.yaml", ["remote-before-local", "unreplicated-copies"]),
        ("one-site-versions.yaml", ["unspoken-version"]),
        # vc-solo lists one balancer; the replicas behind the balancers are reached
        ("two-sites-balancers.yaml", ["single-balancer"]),
        (
            "one-site-balancers.yaml",
            ["single-balancer"] * 3 + ["tcp-check"],  # one balancer per client; lb-tcp
        ),
        (
            "one-site-balancer-idle.yaml",
            ["single-balancer", "single-balancer", "idle-timeout", "thin-site"],
        ),
    ],
)
def test_shipped_topologies_lint_as_designed(name: str, expected: list[str]) -> None:
    findings = lint(load_topology(TOPOLOGIES / name))
    assert [f.rule for f in findings] == expected


# ---- one test per rule ------------------------------------------------------------------


def test_single_kms_is_an_error_and_thin_site_is_not_repeated() -> None:
    findings = lint(load_topology(TOPOLOGIES / "single-kms.yaml"))
    assert findings == by_rule(findings, "single-kms")
    (f,) = findings
    assert f.severity == "error"
    assert f.where == "sites.site-a.replicas"
    assert "kms-a" in f.message and "single point of failure" in f.message


def test_single_kms_does_not_fire_with_two_replicas() -> None:
    assert by_rule(lint(one_site("[kms-a, kms-b]")), "single-kms") == []


def test_thin_site_with_one_replica_is_an_error() -> None:
    t = topo(
        TWO_SITES.format(order_a="[kms-a, kms-d, kms-e, kms-f]").replace(
            "[kms-a, kms-b, kms-c]", "[kms-a]"
        )
    )
    (f,) = by_rule(lint(t), "thin-site")
    assert (f.severity, f.where) == ("error", "sites.site-a.replicas")
    assert "site 'site-a'" in f.message and "1 replica " in f.message


def test_thin_site_with_two_replicas_is_a_warning() -> None:
    (f,) = by_rule(lint(one_site("[kms-a, kms-b]")), "thin-site")
    assert (f.severity, f.where) == ("warning", "sites.site-a.replicas")
    assert "2 replicas (kms-a, kms-b)" in f.message


def test_thin_site_ignores_a_site_without_clients() -> None:
    t = topo(
        """\
        sites:
          site-a:
            replicas: [kms-a, kms-b, kms-c]
          dr:
            replicas: [kms-z]
        clients:
          vc-a:
            site: site-a
        """
    )
    assert by_rule(lint(t), "thin-site") == []


def test_remote_before_local_names_the_first_offending_position() -> None:
    findings = lint(load_topology(TOPOLOGIES / "two-sites-misordered.yaml"))
    (f,) = by_rule(findings, "remote-before-local")
    assert (f.severity, f.where) == ("error", "clients.vc-a.order[0]")
    assert "'kms-d' (site 'site-b')" in f.message and "kms-a, kms-b, kms-c" in f.message
    assert f.fix.endswith("order: [kms-a, kms-b, kms-c, kms-d, kms-e, kms-f]")


def test_remote_before_local_in_the_middle_of_the_order() -> None:
    (f,) = by_rule(lint(two_sites("[kms-a, kms-b, kms-e, kms-c, kms-d]")), "remote-before-local")
    assert f.where == "clients.vc-a.order[2]"
    assert "before local kms-c:" in f.message
    assert f.fix.endswith("order: [kms-a, kms-b, kms-c, kms-e, kms-d]")


def test_remote_after_the_listed_local_replicas_is_not_remote_before_local() -> None:
    findings = lint(two_sites("[kms-a, kms-b, kms-d, kms-e]"))  # kms-c left out
    assert by_rule(findings, "remote-before-local") == []
    (f,) = by_rule(findings, "local-missing")
    assert (f.severity, f.where) == ("warning", "clients.vc-a.order")
    assert "'kms-c'" in f.message and "site-a" in f.message


def test_local_missing_lists_every_omitted_local_replica() -> None:
    (f,) = by_rule(lint(two_sites("[kms-b, kms-d]")), "local-missing")
    assert "'kms-a', 'kms-c'" in f.message
    assert "kms-a, kms-c" in f.fix


def test_client_order_rules_do_not_fire_on_local_first_orders() -> None:
    findings = lint(two_sites("[kms-a, kms-b, kms-c, kms-d, kms-e, kms-f]"))
    assert by_rule(findings, "remote-before-local") == []
    assert by_rule(findings, "local-missing") == []


def test_shared_failure_domain_warns_per_host_of_a_site() -> None:
    t = one_site(
        "[{name: kms-a, host: hv-1}, {name: kms-b, host: hv-2}, {name: kms-c, host: hv-1},"
        " {name: kms-d, host: hv-2}, {name: kms-e, host: hv-3}]"
    )
    found = by_rule(lint(t), "shared-failure-domain")
    assert [(f.severity, f.where) for f in found] == [
        ("warning", "sites.site-a.replicas[2].host"),
        ("warning", "sites.site-a.replicas[3].host"),
    ]
    assert "kms-a, kms-c" in found[0].message and "'hv-1'" in found[0].message
    assert "kms-b, kms-d" in found[1].message and "'hv-2'" in found[1].message


def test_shared_failure_domain_is_an_error_when_every_replica_shares_one_host() -> None:
    t = topo(
        GOOD.replace("hv-a1", "hv-1")
        .replace("hv-a2", "hv-1")
        .replace("hv-a3", "hv-1")
        .replace("hv-b1", "hv-1")
        .replace("hv-b2", "hv-1")
        .replace("      - kms-f", "      - {name: kms-f, host: hv-1}")
    )
    (f,) = by_rule(lint(t), "shared-failure-domain")  # one error, not a warning per site
    assert (f.severity, f.where) == ("error", "sites")
    assert "kms-a, kms-b, kms-c, kms-d, kms-e, kms-f" in f.message and "'hv-1'" in f.message


def test_shared_failure_domain_needs_known_hosts() -> None:
    assert by_rule(lint(one_site("[kms-a, kms-b, kms-c]")), "shared-failure-domain") == []
    # two replicas on hv-1 but the third's host unknown: a site warning, not the error
    t = one_site("[{name: kms-a, host: hv-1}, {name: kms-b, host: hv-1}, kms-c]")
    (f,) = by_rule(lint(t), "shared-failure-domain")
    assert (f.severity, f.where) == ("warning", "sites.site-a.replicas[1].host")


def test_self_encrypted_is_an_error_at_the_field() -> None:
    t = topo(
        GOOD.replace(
            "{name: kms-b, host: hv-a2, encrypted_by: kms-infra}",
            "{name: kms-b, host: hv-a2, encrypted_by: kms-prod}",
        )
    )
    (f,) = by_rule(lint(t), "self-encrypted")
    assert (f.severity, f.where) == ("error", "sites.site-a.replicas[1].encrypted_by")
    assert "'kms-b'" in f.message and "'kms-prod'" in f.message


def test_unreplicated_copies_warns_for_profile_none_with_several_replicas() -> None:
    (f,) = by_rule(lint(one_site("[kms-a, kms-b, kms-c]", profile="none")), "unreplicated-copies")
    assert (f.severity, f.where) == ("warning", "replication.profile")
    assert "3 replicas" in f.message


@pytest.mark.parametrize(
    "replicas, profile", [("[kms-a]", "none"), ("[kms-a, kms-b, kms-c]", "quorum")]
)
def test_unreplicated_copies_does_not_fire(replicas: str, profile: str) -> None:
    assert by_rule(lint(one_site(replicas, profile=profile)), "unreplicated-copies") == []


def test_unreachable_replica_warns_for_a_replica_in_no_order() -> None:
    t = topo(
        TWO_SITES.format(order_a="[kms-a, kms-b, kms-c, kms-d, kms-e]").replace(
            "  vc-b:\n    site: site-b\n", "  vc-b:\n    site: site-b\n    order: [kms-d, kms-e]\n"
        )
    )
    (f,) = by_rule(lint(t), "unreachable-replica")
    assert (f.severity, f.where) == ("warning", "sites.site-b.replicas[2]")
    assert "'kms-f'" in f.message
    assert by_rule(lint(topo(GOOD)), "unreachable-replica") == []


EXTERNAL = """\
name: ext
allow_external: true
tls: {{ca: ca.pem, cert: c.pem, key: c.key}}
sites:
  site-a:
    replicas:
      - {{name: kms-prod-1, external: {first}}}
      - {{name: kms-prod-2, external: {second}}}
clients:
  vc-a:
    site: site-a
"""


def externals(first: str, second: str) -> Topology:
    return topo(EXTERNAL.format(first=first, second=second))


@pytest.mark.parametrize(
    "first, second",
    [
        ("{host: kms1.example.net, port: 5696}", "{host: KMS1.Example.NET}"),  # default port
        ("{host: 10.0.0.5, port: 5697}", "{host: 10.0.0.5, port: 5697, server_name: x}"),
        ("{host: kms1.example.net}", "{host: kms1.example.net.}"),  # the root's dot
    ],
)
def test_same_server_is_an_error_for_one_host_and_port_written_twice(
    first: str, second: str
) -> None:
    (f,) = by_rule(lint(externals(first, second)), "same-server")
    assert f.severity == "error"
    assert f.where == "sites.site-a.replicas[1].external"
    assert f.message.startswith("'kms-prod-2' and 'kms-prod-1' are one server (both ")
    assert "looks replicated when it is not" in f.message
    assert "sites.site-a.replicas[0].external" in f.fix


def test_same_server_needs_the_same_port_and_compares_names_as_written() -> None:
    other_port = externals("{host: kms1.example.net}", "{host: kms1.example.net, port: 5697}")
    assert by_rule(lint(other_port), "same-server") == []
    two_names = externals("{host: kms1.example.net}", "{host: kms-vip.example.net}")
    assert by_rule(lint(two_names), "same-server") == []
    # given what the names resolve to, two names for one address are one server
    addresses = {"kms1.example.net": ("10.0.0.5",), "kms-vip.example.net": ("10.0.0.5", "::5")}
    (f,) = by_rule(lint(two_names, addresses), "same-server")
    assert "'kms-prod-1' (kms1.example.net) and 'kms-prod-2' (kms-vip.example.net) resolve to " in (
        f.message
    )
    assert "10.0.0.5, port 5696" in f.message
    # a name that did not resolve is compared by name only
    unresolved = {"kms1.example.net": "does not resolve", "kms-vip.example.net": ("10.0.0.5",)}
    assert by_rule(lint(two_names, unresolved), "same-server") == []


def test_same_server_ignores_replicas_kmschaos_starts() -> None:
    assert by_rule(lint(topo(GOOD), {"kms-a": ("127.0.0.1",)}), "same-server") == []


def test_resolve_answers_each_name_or_says_why_not() -> None:
    found = resolve(["127.0.0.1", "localhost", "no-such-host.invalid"], timeout_s=2.0)
    assert found["127.0.0.1"] == ("127.0.0.1",)
    assert isinstance(found["localhost"], tuple) and "127.0.0.1" in found["localhost"]
    assert isinstance(found["no-such-host.invalid"], str)


def test_kmschaos_lint_reports_two_external_replicas_at_one_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    path = tmp_path / "two-names.yaml"
    path.write_text(
        EXTERNAL.format(
            first="{host: 192.0.2.7, port: 5696}", second="{host: 192.0.2.7, port: 5696}"
        )
    )
    assert main(["lint", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{path}: sites.site-a.replicas[1].external: same-server: error: 'kms-prod-2' and "
        "'kms-prod-1' are one server (both 192.0.2.7:5696)"
    ) in out


# ---- certificates the topology names (external targets) -------------------------------

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)


def certificate(
    path: Path,
    cn: str,
    *,
    days: float,
    started_days_ago: float = 200,
    signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    at: dt.datetime = NOW,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A PEM certificate at `path` valid until `at` + `days` (a CA when `signer` is None:
    self-signed); its key beside it (``.key``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_cert, issuer_key = signer or (None, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - dt.timedelta(days=started_days_ago))
        .not_valid_after(at + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=signer is None, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def pki(folder: Path, ca_days: float = 400, client_days: float = 300, **client: float) -> None:
    """ca.pem and c.pem (+ c.key, signed by it) in `folder`, as EXTERNAL names them."""
    ca = certificate(folder / "ca.pem", "Corp KMS CA", days=ca_days)
    certificate(folder / "c.pem", "ops-client", days=client_days, signer=ca, **client)


def externals_in(folder: Path, text: str = EXTERNAL) -> Topology:
    """EXTERNAL (two external replicas, one top-level tls) as a file in `folder`."""
    return parse_topology(
        text.format(first="{host: kms1.example.net}", second="{host: kms2.example.net}"),
        str(folder / "t.yaml"),
    )


def cert_findings(t: Topology, now: dt.datetime = NOW) -> list[Finding]:
    return [f for f in lint(t, now=now) if f.rule in ("expiring-certificate", "single-ca")]


def test_certificates_that_last_give_no_finding(tmp_path: Path) -> None:
    pki(tmp_path)
    assert cert_findings(externals_in(tmp_path)) == []


def test_a_client_certificate_expiring_within_90_days_is_a_warning(tmp_path: Path) -> None:
    pki(tmp_path, client_days=40)
    (f,) = cert_findings(externals_in(tmp_path))
    assert (f.rule, f.severity, f.where) == ("expiring-certificate", "warning", "tls.cert")
    assert f.message.startswith(
        f"client certificate CN=ops-client ({tmp_path / 'c.pem'}) expires in 40.0 days "
        "(2030-07-11 12:00 UTC; under 90 days): it is the run's one client identity, so "
        "every replica refuses the clients from that day on"
    )
    assert "renew the client certificate" in f.fix and str(tmp_path / "c.pem") in f.fix
    # a day later than 90 days away: nothing
    assert cert_findings(externals_in(tmp_path), now=NOW - dt.timedelta(days=51)) == []


@pytest.mark.parametrize(
    "client, words",
    [
        ({"client_days": -3}, "expired 3.0 days ago (2030-05-29 12:00 UTC)"),
        ({"started_days_ago": -2}, "not valid until 2030-06-03 12:00 UTC (2.0 days from now)"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_an_expired_or_not_yet_valid_client_certificate_is_an_error(
    tmp_path: Path, client: dict[str, float], words: str
) -> None:
    pki(tmp_path, **client)
    (f,) = cert_findings(externals_in(tmp_path))
    assert (f.severity, f.where) == ("error", "tls.cert")
    assert f"client certificate CN=ops-client ({tmp_path / 'c.pem'}) {words}: " in f.message


def test_one_ca_for_every_external_replica_expiring_is_a_single_point_in_time(
    tmp_path: Path,
) -> None:
    pki(tmp_path, ca_days=60, client_days=50)
    findings = cert_findings(externals_in(tmp_path))
    assert [(f.rule, f.severity, f.where) for f in findings] == [
        ("expiring-certificate", "warning", "tls.ca"),
        ("single-ca", "warning", "tls.ca"),
        ("expiring-certificate", "warning", "tls.cert"),
    ]
    ca, single, _ = findings
    assert ca.message.startswith(f"CA certificate CN=Corp KMS CA ({tmp_path / 'ca.pem'}) expires")
    assert "no longer verify" in ca.message
    assert single.message.startswith(
        "every external replica (kms-prod-1, kms-prod-2) is verified through one CA, "
        "CN=Corp KMS CA, which expires in 60.0 days (2030-07-31 12:00 UTC; under 90 days): "
        "on that day every TLS handshake fails on every replica at once"
    )
    assert "trusting both the old and the new CA" in single.fix
    # expired: the CA file is an error, the single point stays a warning
    expired = cert_findings(externals_in(tmp_path), now=NOW + dt.timedelta(days=61))
    assert [(f.rule, f.severity, f.where) for f in expired] == [
        ("expiring-certificate", "error", "tls.ca"),
        ("expiring-certificate", "error", "tls.cert"),
        ("single-ca", "warning", "tls.ca"),
    ]


def test_two_cas_or_one_external_replica_are_no_single_point(tmp_path: Path) -> None:
    pki(tmp_path, ca_days=60)
    certificate(tmp_path / "other-ca.pem", "Other CA", days=60)
    per_replica = EXTERNAL.replace(
        "      - {{name: kms-prod-2, external: {second}}}",
        "      - {{name: kms-prod-2, external: {second}, tls: {{ca: other-ca.pem}}}}",
    )
    findings = cert_findings(externals_in(tmp_path, per_replica))
    assert [(f.rule, f.where) for f in findings] == [
        ("expiring-certificate", "sites.site-a.replicas[1].tls.ca"),
        ("expiring-certificate", "tls.ca"),
    ]
    one = EXTERNAL.replace("      - {{name: kms-prod-2, external: {second}}}\n", "")
    assert [f.rule for f in cert_findings(externals_in(tmp_path, one))] == ["expiring-certificate"]


def test_certificate_rules_skip_files_that_are_missing_or_not_pem(tmp_path: Path) -> None:
    assert cert_findings(externals_in(tmp_path)) == []  # no files at all
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    (tmp_path / "c.pem").write_text("")
    assert cert_findings(externals_in(tmp_path)) == []


def test_kmschaos_lint_warns_about_an_expiring_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    now = dt.datetime.now(dt.UTC)  # the CLI judges at the real time
    ca = certificate(tmp_path / "ca.pem", "Corp KMS CA", days=400, at=now)
    certificate(tmp_path / "c.pem", "ops-client", days=20, signer=ca, at=now)
    path = tmp_path / "t.yaml"
    path.write_text(
        EXTERNAL.format(first="{host: kms1.example.net}", second="{host: kms2.example.net}")
    )
    assert main(["lint", str(path)]) == 0  # a warning
    out = capsys.readouterr().out
    assert (
        f"{path}: tls.cert: expiring-certificate: warning: client certificate CN=ops-client "
        in (out)
    )
    assert "expires in 19.9 days" in out or "expires in 20.0 days" in out
    assert main(["lint", "--strict", str(path)]) == 1


# ---- every finding, sorting, output -----------------------------------------------------

BAD = """\
name: bad
sites:
  site-a:
    replicas:
      - {name: kms-a, host: hv-1, encrypted_by: bad}
      - {name: kms-b, host: hv-1}
  site-b:
    replicas: [kms-c, kms-d, kms-e, kms-f, kms-g, kms-h, kms-i, kms-j, kms-k, kms-l, kms-m]
clients:
  vc-a:
    site: site-a
    order: [kms-a, kms-c, kms-d, kms-e, kms-f, kms-g, kms-h, kms-i, kms-j, kms-k, kms-b]
  vc-b:
    site: site-b
    order: [kms-c, kms-d, kms-e, kms-f, kms-g, kms-h, kms-i, kms-j, kms-k, kms-l]
"""


def test_every_finding_is_complete_and_on_one_line() -> None:
    findings = lint(topo(BAD))
    assert {f.rule for f in findings} == {
        "remote-before-local",
        "local-missing",
        "self-encrypted",
        "thin-site",
        "shared-failure-domain",
        "unreplicated-copies",
        "unreachable-replica",
    }
    for f in findings:
        assert f.rule in RULES
        assert f.severity in ("error", "warning")
        assert f.where and f.message and f.fix
        assert "\n" not in f.message + f.fix


def test_findings_sort_errors_first_then_by_field_path() -> None:
    findings = lint(topo(BAD))
    assert [(f.severity, f.where, f.rule) for f in findings] == [
        ("error", "clients.vc-a.order[1]", "remote-before-local"),
        ("error", "sites.site-a.replicas[0].encrypted_by", "self-encrypted"),
        ("warning", "clients.vc-b.order", "local-missing"),
        ("warning", "replication.profile", "unreplicated-copies"),
        ("warning", "sites.site-a.replicas", "thin-site"),
        ("warning", "sites.site-a.replicas[1].host", "shared-failure-domain"),
        ("warning", "sites.site-b.replicas[10]", "unreachable-replica"),
    ]


def test_sorting_compares_indexes_as_numbers() -> None:
    names = [f"kms-{c}" for c in "abcdefghijk"]  # 11 replicas: indexes 0..10
    used = [n for n in names if n not in ("kms-c", "kms-k")]
    t = one_site(f"[{', '.join(names)}]", order=f"[{', '.join(used)}]")
    wheres = [f.where for f in lint(t) if f.severity == "warning"]
    assert wheres == [
        "clients.vc-a.order",  # local-missing
        "sites.site-a.replicas[2]",  # unreachable-replica kms-c
        "sites.site-a.replicas[10]",  # unreachable-replica kms-k; not before [2]
    ]


def test_format_findings_one_line_each() -> None:
    findings = lint(load_topology(TOPOLOGIES / "two-sites-misordered.yaml"))
    text = format_findings(findings, "two-sites-misordered.yaml")
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        "two-sites-misordered.yaml: clients.vc-a.order[0]: remote-before-local: error: "
        "'kms-d' (site 'site-b') is tried before local kms-a, kms-b, kms-c: "
    )
    assert lines[0].endswith(
        " (fix: list site 'site-a' replicas first: order: "
        "[kms-a, kms-b, kms-c, kms-d, kms-e, kms-f])"
    )
    assert lines[1].startswith(
        "two-sites-misordered.yaml: replication.profile: unreplicated-copies: warning: "
    )
    assert format_findings([], "x.yaml") == ""


def test_summarize() -> None:
    assert summarize([]) == "no findings"
    assert summarize(lint(topo(BAD))) == "2 errors, 5 warnings"
    assert summarize(lint(load_topology(TOPOLOGIES / "one-site.yaml"))) == "0 errors, 1 warning"


ERR = Finding("single-kms", "error", "sites.a.replicas", "m", "f")
WARN = Finding("unreplicated-copies", "warning", "replication.profile", "m", "f")


@pytest.mark.parametrize(
    "findings, strict, status",
    [
        ([], False, 0),
        ([], True, 0),
        ([WARN], False, 0),
        ([WARN], True, 1),
        ([ERR], False, 1),
        ([ERR], True, 1),
        ([ERR, WARN], False, 1),
    ],
)
def test_exit_status(findings: list[Finding], strict: bool, status: int) -> None:
    assert exit_status(findings, strict=strict) == status


def test_lint_works_on_a_topology_built_without_replica_info() -> None:
    t = Topology(
        name="built",
        sites={"site-a": ("kms-a",)},
        clients={"vc-a": ClientSpec("vc-a", "site-a", ("kms-a",), POLICIES["vcenter"])},
    )
    assert t.replica_info == {}
    assert t.info_of("kms-a") == ReplicaInfo("kms-a", "site-a", None, None)
    assert [f.rule for f in lint(t)] == ["single-kms"]


# ---- the replica mapping syntax ---------------------------------------------------------


def test_replica_mappings_load_beside_plain_names() -> None:
    t = topo(GOOD)
    assert t.sites == {
        "site-a": ("kms-a", "kms-b", "kms-c"),
        "site-b": ("kms-d", "kms-e", "kms-f"),
    }
    assert t.replica_info["kms-a"] == ReplicaInfo("kms-a", "site-a", "hv-a1", "kms-infra")
    assert t.replica_info["kms-c"] == ReplicaInfo("kms-c", "site-a", "hv-a3", None)
    assert t.replica_info["kms-f"] == ReplicaInfo("kms-f", "site-b", None, None)
    assert t.info_of("kms-d").host == "hv-b1"
    assert t.replication_profile == "async" and t.replication_implemented is True


def test_replica_mappings_round_trip_and_plain_names_stay_plain() -> None:
    t = topo(GOOD)
    d = t.to_dict()
    assert d["sites"]["site-a"]["replicas"] == [
        {"name": "kms-a", "host": "hv-a1", "encrypted_by": "kms-infra"},
        {"name": "kms-b", "host": "hv-a2", "encrypted_by": "kms-infra"},
        {"name": "kms-c", "host": "hv-a3"},
    ]
    assert d["sites"]["site-b"]["replicas"][2] == "kms-f"
    assert replica_names(d["sites"]["site-b"]["replicas"]) == ["kms-d", "kms-e", "kms-f"]
    again = parse_topology(yaml.safe_dump(d), "again.yaml")
    assert again.to_dict() == d
    assert again.replica_info == t.replica_info
    assert t.with_time_scale(0.5).replica_info == t.replica_info


def test_plain_names_to_dict_is_unchanged() -> None:
    d = load_topology(TOPOLOGIES / "two-sites.yaml").to_dict()
    assert d["sites"] == {
        "site-a": {"replicas": ["kms-a", "kms-b", "kms-c"]},
        "site-b": {"replicas": ["kms-d", "kms-e", "kms-f"]},
    }


NAME_HINT = "use 1-32 lowercase letters, digits and '-'"


@pytest.mark.parametrize(
    "entry, field, message",
    [
        (
            "{name: kms-b, colour: red}",
            "sites.site-a.replicas[1].colour",
            "unknown key (known: name, host, encrypted_by, external, tls, kmip_versions)",
        ),
        ("{host: hv-1}", "sites.site-a.replicas[1].name", "missing; name the replica"),
        (
            "{name: KMS-B}",
            "sites.site-a.replicas[1].name",
            f"invalid replica name 'KMS-B': {NAME_HINT}",
        ),
        (
            "{name: kms-b, host: 7}",
            "sites.site-a.replicas[1].host",
            "must be a non-empty string, got int",
        ),
        (
            "{name: kms-b, host: ''}",
            "sites.site-a.replicas[1].host",
            "must be a non-empty string, got an empty string",
        ),
        (
            "{name: kms-b, host: }",
            "sites.site-a.replicas[1].host",
            "must be a non-empty string, got nothing",
        ),
        (
            "{name: kms-b, encrypted_by: [x]}",
            "sites.site-a.replicas[1].encrypted_by",
            "must be a non-empty string, got a list",
        ),
        (
            "{name: kms-a, host: hv-1}",
            "sites.site-a.replicas[1].name",
            "replica 'kms-a' already listed in site 'site-a'",
        ),
        ("{1: kms-b}", "sites.site-a.replicas[1]", "keys must be strings, got 1"),
    ],
)
def test_replica_mapping_errors_name_the_field(entry: str, field: str, message: str) -> None:
    text = (
        f"sites:\n  site-a:\n    replicas: [kms-a, {entry}]\nclients:\n  vc-a:\n    site: site-a\n"
    )
    with pytest.raises(TopologyError) as ei:
        parse_topology(text, "t.yaml")
    assert ei.value.field_path == field
    assert ei.value.message == message
    assert str(ei.value) == f"t.yaml: {field}: {message}"
