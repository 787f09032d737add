"""`kmschaos probe`: what KMIP servers show a client, read without creating anything.

Unit tests pin the pure parts (targets, the clock's honest interval, the findings).
Integration tests probe real servers: a one-replica cluster kmschaos starts (through
its link and directly; a refused link is a finding, not bad input), a PyKMIP server
started outside the harness (`test_external.external_kms`: HOST arguments, a topology
file, a wrong name, a foreign CA, a client certificate it does not know), and servers
that are not KMIP at all (a closed port, plain TCP, an HTTP server, garbage, silence, a
name that does not resolve, unusable files): one line, exit 2, no traceback.
Every server listens on a port the kernel chose.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from test_external import ExternalKms, external_kms  # noqa: F401 - a fixture, reused

from harness.cli import main
from harness.cluster.base import BaseCluster
from harness.faults import make_fault
from harness.pki import CertFiles, CertificateAuthority
from harness.probe import (
    Certificate,
    Clock,
    Probe,
    Target,
    Thresholds,
    judge,
    parse_target,
)
from harness.toolchain import repo_root

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
TLS = CertFiles("ca.pem", "c.pem", "c.key")


# ---- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, host, port",
    [
        ("kms1.example.net", "kms1.example.net", 5696),
        ("127.0.0.1:5697", "127.0.0.1", 5697),
        ("[::1]:5698", "::1", 5698),
        ("[::1]", "::1", 5696),
        ("::1", "::1", 5696),  # more than one colon: an IPv6 address without a port
    ],
)
def test_targets_default_to_the_kmip_port(text: str, host: str, port: int) -> None:
    t = parse_target(text, TLS)
    assert (t.host, t.port, t.check_name) == (host, port, host)
    assert t.name == t.address
    assert parse_target(text, TLS, "kms.example.net").check_name == "kms.example.net"


@pytest.mark.parametrize(
    "text, words", [("h:0", "not a TCP port"), ("h:http", "not a TCP port"), (":5696", "no host")]
)
def test_bad_targets_say_why(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_target(text, TLS)


def test_the_clock_offset_is_an_honest_interval() -> None:
    # stamped 1000 (truncated: the server's clock read 1000.0..1000.999) while this host
    # read 1000.30..1000.32: the offset lies in [-0.32, +0.70]
    c = Clock(1000, 1000.30, 1000.32)
    assert (round(c.low, 2), round(c.high, 2)) == (-0.32, 0.70)
    assert round(c.offset_s, 2) == 0.19 and round(c.uncertainty_s, 2) == 0.51
    assert c.text() == "+0.2 s ±0.5 s"
    ahead = Clock(1000 + 7200, 1000.30, 1000.32)
    assert ahead.text() == "+2 h 0 min ±0.5 s"
    assert Clock(1000 - 185, 1000.30, 1000.32).text() == "-3 min 5 s ±0.5 s"


def cert(cn: str, days_left: float, started: float = 10, presented: bool = True) -> Certificate:
    return Certificate(
        f"CN={cn}",
        "CN=CA",
        NOW - dt.timedelta(days=started),
        NOW + dt.timedelta(days=days_left),
        "00",
        presented,
    )


def probed(**kw: Any) -> Probe:
    base: dict[str, Any] = {
        "chain": [cert("kms-a", 200)],
        "tls_version": "TLSv1.3",
        "client_accepted": True,
        "versions": ["1.2"],
        "clock": Clock(1000, 1000.0, 1000.01),
    }
    return Probe(Target("kms-a", "127.0.0.1", 5696, TLS), **{**base, **kw})


@pytest.mark.parametrize(
    "probe, expected",
    [
        (probed(), []),
        (probed(chain=[cert("kms-a", 60)]), [("warning", "certificate CN=kms-a expires in 60.0")]),
        (probed(chain=[cert("kms-a", 29.96)]), [("error", "expires in 29.9 days")]),
        (probed(chain=[cert("kms-a", -2)]), [("error", "certificate CN=kms-a expired 2.0 days")]),
        (probed(chain=[cert("kms-a", 90, started=-1)]), [("error", "CN=kms-a not valid until")]),
        (
            probed(chain=[cert("kms-a", 200), cert("CA", 45, presented=False)]),
            [("warning", "trust anchor (from the CA file) CN=CA expires in 45.0 days")],
        ),
        (
            probed(verify_error="expired (certificate has expired)"),
            [("error", "does not verify: expired (certificate has expired)")],
        ),
        (
            probed(client_accepted=False, client_error="the server refused the client cert"),
            [("error", "the server refused the client cert")],
        ),
        (probed(kmip_error="no answer to a KMIP request"), [("error", "no answer to a KMIP")]),
        (probed(tls_error="the server ended the TLS"), [("error", "the server ended the TLS")]),
        (
            probed(clock=Clock(1000 + 7200, 1000.0, 1000.01)),
            [("warning", "the server's clock is 2 h 0 min ahead of this host's (±0.5 s;")],
        ),
        (probed(clock=Clock(1000 - 30, 1000.0, 1000.01)), [("warning", "29.5 s behind")]),
        (probed(clock=Clock(1000 + 5, 1000.0, 1000.01)), []),  # maybe just 4.99 s: not sure
        (probed(failure="127.0.0.1:5696: nothing reached"), [("error", "not probed: 127.0")]),
    ],
)
def test_judge(probe: Probe, expected: list[tuple[str, str]]) -> None:
    found = judge(probe, Thresholds(), NOW)
    assert [f.severity for f in found] == [sev for sev, _ in expected]
    for f, (_, words) in zip(found, expected, strict=True):
        assert words in f.message and f.target == "kms-a"


# ---- a running cluster -------------------------------------------------------------------------


QUIET = ("--error-days", "0", "--warn-days", "0")  # no certificate finding


def at(state_dir: str) -> tuple[str, str]:
    return ("--state-dir", state_dir)


def probe_json(capsys: pytest.CaptureFixture[str], *args: str, status: int) -> dict[str, Any]:
    assert main(["probe", *args, "--json"]) == status
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def der_sha256(pem: str) -> str:
    c = x509.load_pem_x509_certificate(Path(pem).read_bytes())
    return hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()


def days_left(pem: str) -> float:
    c = x509.load_pem_x509_certificate(Path(pem).read_bytes())
    return (c.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() / 86400


@pytest.mark.integration
@pytest.mark.kms_topology("single-kms.yaml")
def test_probe_a_running_cluster(
    kms_cluster: BaseCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    st = kms_cluster.state
    sdir = st.state_dir
    rs = st.replicas["kms-a"]
    (link,) = kms_cluster.links_into("kms-a")
    # thresholds far beyond the harness PKI's validity: its certificates are errors
    doc = probe_json(capsys, *at(sdir), "--error-days", "400", "--warn-days", "400", status=1)
    (t,) = doc["targets"]
    assert (t["target"], t["address"], t["via"]) == ("kms-a", link.listen, f"link {link.name}")
    assert t["probed"] and t["failure"] is None
    assert t["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and t["tls"]["cipher"]
    assert t["tls"]["verified"] is True and t["tls"]["verify_error"] is None
    leaf = t["chain"][0]
    assert leaf["subject"] == "CN=kms-a" and leaf["issuer"] == f"CN=kmschaos CA {st.run_id}"
    assert leaf["sha256"] == der_sha256(rs.cert)  # the replica's own certificate
    assert abs(leaf["days_left"] - days_left(rs.cert)) < 0.01
    assert 390 < leaf["days_left"] <= 397  # the harness PKI: 397 days
    assert t["client_certificate"] == {"accepted": True, "error": None}
    assert "1.2" in t["kmip"]["versions"] and t["kmip"]["error"] is None
    assert t["kmip"]["vendor"].startswith("PyKMIP")
    assert 0 < t["rtt_ms"] < 1000
    clock = t["clock"]
    assert abs(clock["offset_s"]) <= 1 and clock["low_s"] <= 0 <= clock["high_s"]
    assert clock["uncertainty_s"] < 1
    assert doc["errors"] >= 2 and doc["warnings"] == 0  # leaf, CA (+ client certificate)
    assert {f["target"] for f in doc["findings"]} == {"kms-a", "client"}
    assert list(doc["client_certificates"]) == [st.tls["cert"]]

    # no finding under thresholds it meets: exit 0; warnings alone: exit 0
    ok = probe_json(capsys, *at(sdir), *QUIET, status=0)
    assert ok["findings"] == [] and ok["errors"] == 0
    warned = probe_json(capsys, *at(sdir), "--error-days", "0", "--warn-days", "400", status=0)
    assert warned["errors"] == 0 and warned["warnings"] >= 2

    # the table: one row per replica, its chain, the verdict
    assert main(["probe", "--state-dir", sdir, "--error-days", "1", "--warn-days", "2"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("kms-a "))
    assert link.listen in row and "verified" in row and "accepted" in row and " 1.2 " in row
    assert f"kms-a (link {link.name}, name checked: {link.host})" in out
    assert "  CN=kms-a, issued by CN=kmschaos CA" in out
    assert out.rstrip().endswith("OK: no findings")

    # directly, not through the link
    direct = probe_json(capsys, *at(sdir), "--direct", *QUIET, status=0)
    assert direct["targets"][0]["address"] == f"{rs.host}:{rs.port}"
    assert direct["targets"][0]["via"] == "direct"

    # a replica a client cannot reach is a finding of the cluster (exit 1), not bad input
    with make_fault("refuse", kms_cluster, "kms-a"):
        refused = probe_json(capsys, *at(sdir), *QUIET, status=1)
        assert refused["targets"][0]["failure"] == (
            f"{link.listen}: nothing reached: connection refused (no server listens there)"
        )
        assert refused["findings"][0]["message"].startswith("not probed: ")
        assert capsys.readouterr().err == ""
        probe_json(capsys, *at(sdir), "--direct", *QUIET, status=0)


@pytest.mark.integration
@pytest.mark.kms_topology("single-kms.yaml")
@pytest.mark.kms_needs("cert-expired", "clock-skew")
def test_probe_shows_injected_certificate_and_clock_faults(
    kms_cluster: BaseCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    sdir = kms_cluster.state.state_dir
    (link,) = kms_cluster.links_into("kms-a")

    # cert-expired: the chain the replica now serves, read although it does not verify
    with make_fault("cert-expired", kms_cluster, "kms-a"):
        doc = probe_json(capsys, *at(sdir), *QUIET, status=1)
        (t,) = doc["targets"]
        assert t["address"] == link.listen
        assert t["tls"]["verified"] is False
        assert t["tls"]["verify_error"] == "expired (certificate has expired)"
        leaf = t["chain"][0]
        assert leaf["subject"] == "CN=kms-a" and -1.01 < leaf["days_left"] < -0.99
        # the second, unverified handshake still asked its questions
        assert t["client_certificate"]["accepted"] is True and "1.2" in t["kmip"]["versions"]
        messages = [f["message"] for f in doc["findings"]]
        assert messages[0] == (
            "the server's certificate does not verify: expired (certificate has expired)"
        )
        assert messages[1].startswith("certificate CN=kms-a expired 1.0 days ago (")
        assert main(["probe", *at(sdir), *QUIET]) == 1
        row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("kms-a "))
        assert "  EXPIRED 1.0 days ago  accepted  " in row
    probe_json(capsys, *at(sdir), *QUIET, status=0)  # healed

    # clock-skew +2h: the offset read from the KMIP time stamp, within ±2 s; a warning
    with make_fault("clock-skew", kms_cluster, "kms-a", offset="+2h"):
        doc = probe_json(capsys, *at(sdir), *QUIET, status=0)
        clock = doc["targets"][0]["clock"]
        assert abs(clock["offset_s"] - 7200) <= 2, clock
        assert clock["low_s"] <= 7200 + 0.1 and clock["high_s"] >= 7200 - 0.1
        (f,) = doc["findings"]
        assert f["severity"] == "warning"
        assert f["message"].startswith("the server's clock is 2 h 0 min ahead of this host's")
        # behind, in minutes
    with make_fault("clock-skew", kms_cluster, "kms-a", offset="-90s"):
        doc = probe_json(capsys, *at(sdir), *QUIET, status=0)
        assert abs(doc["targets"][0]["clock"]["offset_s"] + 90) <= 2
        assert "behind this host's" in doc["findings"][0]["message"]
    # a replica 2 years ahead sees the clients' 397-day certificate as expired: it refuses it
    with make_fault("clock-skew", kms_cluster, "kms-a", offset="+2y"):
        doc = probe_json(capsys, *at(sdir), *QUIET, status=1)
        (t,) = doc["targets"]
        assert t["tls"]["verified"] is True  # this host still trusts the replica
        assert t["client_certificate"]["accepted"] is False
        assert t["client_certificate"]["error"] == (
            "the server refused the client certificate (TLS alert: certificate expired)"
        )
        assert t["clock"] is None  # no KMIP answer, no time stamp
    ok = probe_json(capsys, *at(sdir), *QUIET, status=0)
    assert abs(ok["targets"][0]["clock"]["offset_s"]) <= 1


# ---- a PyKMIP server the harness does not run ----------------------------------------------


def host_args(kms: ExternalKms, *extra: str) -> list[str]:
    return [f"{kms.host}:{kms.port}", "--ca", kms.ca, "--cert", kms.cert, "--key", kms.key, *extra]


@pytest.mark.integration
def test_probe_an_external_pykmip_server(
    external_kms: ExternalKms,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kms = external_kms
    doc = probe_json(capsys, *host_args(kms, *QUIET), status=0)
    (t,) = doc["targets"]
    assert t["target"] == f"127.0.0.1:{kms.port}" and t["server_name"] == "127.0.0.1"
    assert t["tls"]["verified"] and t["chain"][0]["subject"] == "CN=kms.example.test"
    assert t["chain"][0]["issuer"] == "CN=kmschaos CA user-kms"
    assert t["client_certificate"]["accepted"] is True
    assert "1.2" in t["kmip"]["versions"] and abs(t["clock"]["offset_s"]) <= 1
    assert list(doc["client_certificates"]) == [kms.cert]
    # by the name in its certificate
    assert main(["probe", *host_args(kms, "--server-name", "localhost", *QUIET)]) == 0
    capsys.readouterr()

    # the wrong name: an error; the chain, versions and clock are still read (unverified)
    wrong = probe_json(capsys, *host_args(kms, "--server-name", "kms.wrong.test", *QUIET), status=1)
    (t,) = wrong["targets"]
    assert t["tls"]["verified"] is False
    assert t["tls"]["verify_error"].startswith("hostname mismatch")
    assert "kms.wrong.test" in t["tls"]["verify_error"]
    assert t["chain"][0]["subject"] == "CN=kms.example.test"
    assert "1.2" in t["kmip"]["versions"] and t["clock"] is not None
    (f,) = wrong["findings"]
    assert f["message"].startswith("the server's certificate does not verify: hostname mismatch")

    # a CA that did not sign it: unknown CA, chain read all the same
    foreign = CertificateAuthority(tmp_path / "foreign", "foreign")
    args = [f"{kms.host}:{kms.port}", "--ca", str(foreign.ca_path), "--cert", kms.cert]
    unknown = probe_json(capsys, *args, "--key", kms.key, *QUIET, status=1)
    assert unknown["targets"][0]["tls"]["verify_error"].startswith("unknown CA")
    assert unknown["targets"][0]["chain"][0]["subject"] == "CN=kms.example.test"

    # a client certificate it does not know: refused, with the alert it sent
    stranger = foreign.issue("stranger", "stranger", server=False)
    args = [f"{kms.host}:{kms.port}", "--ca", kms.ca, "--cert", stranger.cert]
    refused = probe_json(capsys, *args, "--key", stranger.key, *QUIET, status=1)
    (t,) = refused["targets"]
    assert t["client_certificate"]["accepted"] is False
    assert t["client_certificate"]["error"].startswith(
        "the server refused the client certificate (TLS alert: "
    )
    assert t["chain"][0]["subject"] == "CN=kms.example.test"  # read before the alert
    assert t["kmip"]["versions"] == []

    # the same server as an external replica of a topology file
    topo = tmp_path / "ext.yaml"
    topo.write_text(
        "name: ext\nallow_external: true\n"
        f"tls: {{ca: {kms.ca}, cert: {kms.cert}, key: {kms.key}}}\n"
        "sites:\n  site-a:\n    replicas:\n"
        f"      - {{name: kms-ext, external: {{host: 127.0.0.1, port: {kms.port}, "
        "server_name: localhost}}\n"
        "      - kms-own\n"
        "clients:\n  vc-a:\n    site: site-a\n    order: [kms-ext, kms-own]\n"
    )
    assert main(["probe", "--topology", str(topo), *QUIET]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kmschaos probe: 1 target in ")
    assert "not probed: kms-own (kmschaos starts them" in out
    assert "kms-ext (external, name checked: localhost)" in out
    row = next(line for line in out.splitlines() if line.startswith("kms-ext "))
    assert f"127.0.0.1:{kms.port}" in row and "verified" in row and "accepted" in row


# ---- bad input: one line, exit 2, no traceback -------------------------------------------------


@contextlib.contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on a kernel-chosen loopback port; each connection to `handle` in a
    thread of its own. Closing the listener ends the accept loop."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()


def close_at_once(conn: socket.socket) -> None:
    with conn:
        conn.recv(4096)  # the hello read: a FIN, not a reset for unread data


def answer_garbage(conn: socket.socket) -> None:
    with conn:
        conn.recv(4096)
        conn.sendall(b"\x00\x01 no TLS here\r\n")


def answer_http_400(conn: socket.socket) -> None:
    with conn:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def stay_silent(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(30)
        with contextlib.suppress(OSError):
            while conn.recv(4096):
                pass


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    yield port


@pytest.fixture(scope="module")
def user_pki(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    folder = tmp_path_factory.mktemp("probe-pki")
    return CertificateAuthority(folder, "probe").issue("client", "prober", server=False)


def run_probe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KMSCHAOS_STATE_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "probe", *args],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kmschaos: ")
    return lines[0]


SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[int]]] = {
    "closed": closed_port,
    "plain-tcp": lambda: tcp_server(close_at_once),
    "garbage": lambda: tcp_server(answer_garbage),
    "silent": lambda: tcp_server(stay_silent),
    "http": http_server,  # Python's: an error page without a status line (HTTP/0.9)
    "http-status": lambda: tcp_server(answer_http_400),  # as nginx answers a TLS hello
}


@pytest.mark.parametrize(
    "server, words",
    [
        ("closed", "nothing reached: connection refused (no server listens there)"),
        (
            "plain-tcp",
            "TCP connected, then the server closed the connection without answering the TLS "
            "hello (not a TLS server, or it drops this client)",
        ),
        (
            "garbage",
            "TCP connected, and the server answered the TLS hello with bytes that are not TLS "
            "(b'\\x00\\x01 no TLS here\\r\\n'): not a TLS server",
        ),
        ("silent", "TCP connected, but no answer to the TLS hello within 1 s"),
        (
            "http",
            "TCP connected, and the server answered the TLS hello with an HTML page "
            "('<!DOCTYPE HTML>'): an HTTP server, not KMIP over TLS",
        ),
        (
            "http-status",
            "TCP connected, and the server answered the TLS hello with 'HTTP/1.1 400 Bad "
            "Request': an HTTP server, not KMIP over TLS",
        ),
    ],
    ids=lambda v: v if v in SERVERS else "",
)
def test_a_server_that_is_not_kmip_over_tls_is_one_line_and_exit_2(
    user_pki: CertFiles, server: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = ["--ca", user_pki.ca, "--cert", user_pki.cert, "--key", user_pki.key]
    with SERVERS[server]() as port:
        assert main(["probe", f"127.0.0.1:{port}", *tls, "--timeout", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"kmschaos: probe 127.0.0.1:{port}: {words}"]


def test_the_command_says_it_in_one_line_without_a_traceback(user_pki: CertFiles) -> None:
    """The real console command, in a process of its own, on an HTTP server."""
    tls = ["--ca", user_pki.ca, "--cert", user_pki.cert, "--key", user_pki.key]
    with http_server() as port:
        r = run_probe(f"127.0.0.1:{port}", *tls, "--timeout", "5")
    assert r.returncode == 2 and r.stdout == ""
    assert one_line(r) == (
        f"kmschaos: probe 127.0.0.1:{port}: TCP connected, and the server answered the TLS "
        "hello with an HTML page ('<!DOCTYPE HTML>'): an HTTP server, not KMIP over TLS"
    )


def test_a_name_that_does_not_resolve_is_one_line_and_exit_2(
    user_pki: CertFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = ["--ca", user_pki.ca, "--cert", user_pki.cert, "--key", user_pki.key]
    assert main(["probe", "no-such-host.invalid", *tls, "--timeout", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "kmschaos: probe no-such-host.invalid:5696: nothing reached: the name "
        "'no-such-host.invalid' does not resolve ("
    )


def test_a_bad_target_beside_a_good_one_still_exits_2(
    user_pki: CertFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = ["--ca", user_pki.ca, "--cert", user_pki.cert, "--key", user_pki.key]
    with closed_port() as a, tcp_server(close_at_once) as b:
        assert main(["probe", f"127.0.0.1:{a}", f"127.0.0.1:{b}", *tls, "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [t["probed"] for t in doc["targets"]] == [False, False]
    assert len(captured.err.splitlines()) == 2


@pytest.mark.parametrize(
    "files, words",
    [
        ({"ca": "missing"}, "--ca {missing}: file not found"),
        ({"ca": "key"}, "--ca {key}: not a PEM certificate file"),
        ({"cert": "missing"}, "--cert {missing}: file not found"),
        ({"key": "other_key"}, "--cert {cert} with {other_key}: cannot be used as a client"),
    ],
    ids=["ca-missing", "ca-not-pem", "cert-missing", "key-mismatch"],
)
def test_unusable_tls_files_are_one_line_and_exit_2(
    user_pki: CertFiles,
    tmp_path: Path,
    files: dict[str, str],
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = CertificateAuthority(tmp_path / "other", "other").issue("o", "o", server=False)
    paths = {
        "missing": str(tmp_path / "missing.pem"),
        "key": user_pki.key,
        "cert": user_pki.cert,
        "other_key": other.key,
    }
    chosen = {"ca": user_pki.ca, "cert": user_pki.cert, "key": user_pki.key}
    chosen.update({k: paths[v] for k, v in files.items()})
    with closed_port() as port:  # nothing is contacted: the files are checked first
        args = ["--ca", chosen["ca"], "--cert", chosen["cert"], "--key", chosen["key"]]
        assert main(["probe", f"127.0.0.1:{port}", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("kmschaos: " + words.format(**paths)), err


@pytest.mark.parametrize(
    "args, words",
    [
        (["127.0.0.1"], "needs --ca, --cert and --key (missing: --ca, --cert, --key)"),
        (["127.0.0.1:99999", "--ca", "a", "--cert", "b", "--key", "c"], "not a TCP port"),
        (["--ca", "x.pem"], "--ca: only with HOST targets"),
        (["--topology", "t.yaml", "h"], "give HOST targets or --topology, not both"),
        (["--warn-days", "10"], "--warn-days 10: must be at least --error-days (30)"),
        (["--timeout", "0"], "--timeout 0: must be in (0, 600] seconds"),
    ],
)
def test_argument_errors_are_one_line_and_exit_2(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and words in captured.err and len(captured.err.splitlines()) == 1


def test_a_topology_without_external_replicas_has_nothing_to_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    one_site = repo_root() / "scenarios" / "topologies" / "one-site.yaml"
    assert main(["probe", "--topology", str(one_site)]) == 2
    assert "no external replica to probe" in capsys.readouterr().err


def test_without_a_cluster_probe_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "--state-dir", str(tmp_path / "none")]) == 1
    assert "`kmschaos up TOPOLOGY`" in capsys.readouterr().err
