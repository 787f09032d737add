"""`kmschaos lb-config`: a balancer's HAProxy configuration, for production (rendered
from the topology, accepted by `haproxy -c` once its placeholders are real files and
addresses) or as a running cluster uses it (read from its state folder); its usage
errors are one line and exit 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.cli.lb import PRODUCTION_CA, PRODUCTION_CLIENT_PEM
from harness.cluster.state import BalancerState, ClusterState, save_state
from harness.lb.haproxy import (
    KMIP_CHECK_REQUEST,
    KMIP_CHECK_SUCCESS,
    HaproxyError,
    find_haproxy,
    write_client_pem,
)
from harness.pki import CertificateAuthority
from harness.topology import load_topology

TOPOLOGY = """\
name: lb-config
sites:
  site-a: {{replicas: [kms-a, kms-b, kms-c]}}
  site-b: {{replicas: [kms-d, kms-e, kms-f]}}
load_balancers:
  lb-a: {{site: site-a, replicas: [kms-a, kms-b, kms-c], check: {check}, interval_ms: 1500}}
  lb-b: {{site: site-b, replicas: [kms-d, kms-e, kms-f], check: kmip}}
clients:
  vc-a: {{site: site-a, order: [lb-a, lb-b]}}
replication: {{profile: async}}
"""
NO_BALANCERS = """\
name: plain
sites:
  site-a: {replicas: [kms-a, kms-b, kms-c]}
clients:
  vc-a: {site: site-a}
"""


def write_topology(tmp_path: Path, check: str = "kmip") -> Path:
    path = tmp_path / "lb-config.yaml"
    path.write_text(TOPOLOGY.format(check=check))
    return path


def lb_config(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`kmschaos lb-config ARGV` in this process (parser and command); its stdout."""
    args = build_parser().parse_args(["lb-config", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def kmschaos(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def haproxy_or_skip() -> str:
    try:
        return find_haproxy()
    except HaproxyError as e:
        pytest.skip(f"haproxy -c cannot be run: {e}")


# ---- production configuration ----------------------------------------------------------------


def test_kmip_check_sends_discover_versions_and_expects_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = lb_config(capsys, str(write_topology(tmp_path, "kmip")), "lb-a")
    assert f"tcp-check send-binary {KMIP_CHECK_REQUEST.hex()}\n" in out
    assert f"tcp-check expect binary {KMIP_CHECK_SUCCESS.hex()}\n" in out
    assert "tcp-check connect ssl" in out
    assert "    bind *:5696\n" in out
    assert f"ca-file {PRODUCTION_CA} crt {PRODUCTION_CLIENT_PEM}" in out
    assert "stats socket ipv4@127.0.0.1:9999" in out
    # production durations: interval_ms 1500 as written, not a test time scale
    assert "server kms-a kms-a:5696 check inter 1500ms fall 3 rise 2 check-ssl" in out
    assert "timeout client 300000ms" in out
    assert "kms-d" not in out  # lb-b's replica
    header = out[: out.index("\nglobal\n")]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "Replace before use" in header and PRODUCTION_CA in header


def test_tls_check_is_a_handshake_with_the_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = lb_config(capsys, str(write_topology(tmp_path, "tls")), "lb-a")
    assert f"check-ssl verify required ca-file {PRODUCTION_CA} crt {PRODUCTION_CLIENT_PEM}" in out
    assert "tcp-check" not in out


def test_tcp_check_is_a_plain_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = lb_config(capsys, str(write_topology(tmp_path, "tcp")), "lb-a")
    servers = [line for line in out.splitlines() if line.startswith("    server ")]
    assert servers == [
        f"    server {r} {r}:5696 check inter 1500ms fall 3 rise 2"
        for r in ("kms-a", "kms-b", "kms-c")
    ]
    assert "check-ssl" not in out and "tcp-check" not in out
    assert PRODUCTION_CA not in out  # no TLS files to replace: the header does not ask


@pytest.mark.parametrize("check", ["tcp", "tls", "kmip"])
def test_the_printed_configuration_passes_haproxy_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], check: str
) -> None:
    haproxy = haproxy_or_skip()
    out = lb_config(capsys, str(write_topology(tmp_path, check)), "lb-a")
    # what the header says to replace: real files, and addresses HAProxy can resolve here
    ca = CertificateAuthority(tmp_path / "pki", "lb-config-test")
    client = ca.issue("client", "kmschaos-client", server=False)
    pem = write_client_pem(client.cert, client.key, tmp_path / "pki" / "client-identity.pem")
    filled = out.replace(PRODUCTION_CA, str(ca.ca_path)).replace(PRODUCTION_CLIENT_PEM, pem)
    for r in ("kms-a", "kms-b", "kms-c"):
        filled = filled.replace(f" {r}:5696 ", " 127.0.0.1:5696 ")
    config = tmp_path / "haproxy.cfg"
    config.write_text(filled)
    r = subprocess.run(
        [haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # and it would fail without them: the test checks the configuration, not nothing
    config.write_text(out)
    if check != "tcp":
        bad = subprocess.run(
            [haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
        )
        assert bad.returncode != 0


# ---- a running cluster's configuration -------------------------------------------------------


def running_state(tmp_path: Path, topology: Path, config_text: str) -> Path:
    """A state folder recording a cluster of `topology` whose lb-a reads `config_text`."""
    state_dir = tmp_path / "state"
    folder = state_dir / "balancers" / "lb-a"
    folder.mkdir(parents=True)
    (folder / "haproxy.cfg").write_text(config_text)
    topo = load_topology(topology)
    save_state(
        ClusterState(
            run_id="r1",
            backend="local",
            state_dir=str(state_dir),
            subnet="127.9.9",
            topology=topo.to_dict(),
            topology_source=str(topology),
            detached=True,
            tls={},
            balancers={
                "lb-a": BalancerState(
                    name="lb-a",
                    site="site-a",
                    index=0,
                    client_host="127.9.9.200",
                    host="127.9.9.220",
                    port=4242,
                    config=str(folder / "haproxy.cfg"),
                )
            },
        )
    )
    return state_dir


def test_state_dir_prints_the_file_the_running_haproxy_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = write_topology(tmp_path)
    text = "# the running one\nfrontend lb-a\n    bind 127.9.9.220:4242\n"
    state_dir = running_state(tmp_path, topology, text)
    assert lb_config(capsys, str(topology), "lb-a", "--state-dir", str(state_dir)) == text


def test_state_dir_of_another_topology_or_an_unstarted_balancer(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    state_dir = running_state(tmp_path, topology, "x\n")
    other = tmp_path / "other.yaml"
    other.write_text(TOPOLOGY.format(check="kmip").replace("name: lb-config", "name: other"))
    r = kmschaos(tmp_path, "lb-config", str(other), "lb-a", "--state-dir", str(state_dir))
    assert r.returncode == 2
    assert r.stderr == (
        f"kmschaos: {state_dir}: the cluster there runs topology 'lb-config', not 'other' "
        f"({other}); pass that topology, or the state folder of this one\n"
    )
    r = kmschaos(tmp_path, "lb-config", str(topology), "lb-b", "--state-dir", str(state_dir))
    assert r.returncode == 1
    assert r.stderr == f"kmschaos: {state_dir}: load balancer 'lb-b' was not started there\n"


@pytest.mark.integration
def test_state_dir_of_a_real_cluster(tmp_path: Path) -> None:
    from harness.backends import cluster_class

    haproxy_or_skip()
    topology = write_topology(tmp_path)
    topo = load_topology(topology).with_time_scale(0.05)
    with cluster_class("local").create(topo, tmp_path / "cluster") as cluster:
        config = Path(cluster.state.balancers["lb-a"].config)
        r = kmschaos(
            tmp_path, "lb-config", str(topology), "lb-a", "--state-dir", str(tmp_path / "cluster")
        )
        assert r.returncode == 0, r.stderr
        assert config == tmp_path / "cluster" / "balancers" / "lb-a" / "haproxy.cfg"
        assert r.stdout == config.read_text()
        b = cluster.state.balancers["lb-a"]
        assert f"    bind {b.host}:{b.port}\n" in r.stdout
        assert "check inter 75ms" in r.stdout  # 1500 ms at time scale 0.05


# ---- usage errors ----------------------------------------------------------------------------


def test_unknown_balancer_names_the_known_ones(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    r = kmschaos(tmp_path, "lb-config", str(topology), "lb-x")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"kmschaos: {topology}: load_balancers: unknown load balancer 'lb-x' (known: lb-a, lb-b)\n"
    )


def test_a_topology_without_balancers_or_a_bad_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(NO_BALANCERS)
    r = kmschaos(tmp_path, "lb-config", str(plain), "lb-a")
    assert r.returncode == 2
    assert r.stderr.startswith(f"kmschaos: {plain}: load_balancers: none in this topology")
    assert len(r.stderr.splitlines()) == 1
    r = kmschaos(tmp_path, "lb-config", "missing.yaml", "lb-a")
    assert (r.returncode, r.stderr) == (2, "kmschaos: missing.yaml: file not found\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text(NO_BALANCERS.replace("[kms-a, kms-b, kms-c]", "[kms-a, kms-a]"))
    r = kmschaos(tmp_path, "lb-config", str(broken), "lb-a")
    assert r.returncode == 2
    assert r.stderr.startswith(f"kmschaos: {broken}: sites.site-a.replicas")
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_help_says_what_it_prints(tmp_path: Path) -> None:
    r = kmschaos(tmp_path, "lb-config", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "Print the HAProxy configuration of load balancer LB of TOPOLOGY" in text
    assert "--state-dir" in text and "production configuration" in text
    top = " ".join(kmschaos(tmp_path, "--help").stdout.split())
    assert "lb-config" in top
