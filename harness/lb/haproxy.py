"""A balancer's HAProxy: its configuration (with the KMIP-aware health check), the
binary, and what its stats socket says about each server.

A balancer is a real HAProxy in TCP mode, one per topology `load_balancers` entry:

    client ──link──> VIP (frontend) ──> server kms-a ──link──> kms-a
                                    └─> server kms-b ──link──> kms-b

Its servers are the balancer's own Toxiproxy links to the replicas, so every replica
fault acts on the balancer's traffic and on its health checks alike. The checks:

- ``tcp``: HAProxy's plain `check`, a TCP connect (what many deployments use). Through
  a link, a connect succeeds while the link is up, whatever the replica behind it does.
- ``tls``: `check-ssl` with the client certificate: a full TLS handshake.
- ``kmip``: `tcp-check` over TLS sending a KMIP 1.2 Discover Versions request and
  expecting Result Status Success in the answer (`KMIP_CHECK_REQUEST`,
  `KMIP_CHECK_SUCCESS`), so a frozen or broken server is seen as down.

Durations in the file are before `time_scale`; the configuration uses scaled ones. A
check may take up to `check_timeout_s`, HAProxy's `timeout check`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.topology.model import BalancerSpec

HAPROXY_ENV = "KMSCHAOS_HAPROXY"
# A KMIP 1.2 request with one Discover Versions batch item and no versions listed (the
# server answers with every version it speaks), TTLV as PyKMIP writes it
# (`tests/test_balancers.py` checks these bytes against PyKMIP's encoder).
KMIP_CHECK_REQUEST = bytes.fromhex(
    "42007801000000604200770100000038420069010000002042006a0200000004000000010000000042006b02"
    "00000004000000020000000042000d0200000004000000010000000042000f010000001842005c0500000004"
    "0000001e000000004200790100000000"
)
# Result Status (tag 42007F, enumeration, length 4) = Success (0), padded to 8 bytes
KMIP_CHECK_SUCCESS = bytes.fromhex("42007f05000000040000000000000000")
MIN_CHECK_TIMEOUT_S = 0.05


def check_timing(spec: BalancerSpec, time_scale: float) -> tuple[float, float]:
    """(interval, check timeout) in seconds as the balancer's HAProxy runs them: the
    interval at the time scale, and a check may take as long as one interval (HAProxy's
    `timeout check`), at least `MIN_CHECK_TIMEOUT_S`."""
    interval = spec.interval_ms / 1000.0 * time_scale
    return interval, max(interval, MIN_CHECK_TIMEOUT_S)


class HaproxyError(RuntimeError):
    """HAProxy is missing, refuses its configuration, or its stats cannot be read."""


def find_haproxy() -> str:
    """The HAProxy binary (``$KMSCHAOS_HAPROXY``, else PATH), or `HaproxyError` saying
    how to install it."""
    env = os.environ.get(HAPROXY_ENV)
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise HaproxyError(f"{HAPROXY_ENV}={env} is not an executable file; fix or unset it")
        return env
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        raise HaproxyError(
            "haproxy not found (looked at $KMSCHAOS_HAPROXY, PATH, /usr/sbin): this topology "
            "has load balancers; install Debian's haproxy (`make setup` does, as root: "
            "apt-get install haproxy)"
        )
    return found


@dataclass(frozen=True)
class BalancerPlan:
    """What one HAProxy needs to run: where it listens, its servers (the balancer's
    links to its replicas, in order), the client identity its TLS checks send, and its
    stats socket. Durations are scaled."""

    spec: BalancerSpec
    bind: str  # "host:port" of the frontend (the VIP behind the clients' links)
    servers: tuple[tuple[str, str], ...]  # (replica, "host:port" of the link to it)
    ca: str
    client_pem: str  # certificate and key in one file, as HAProxy's `crt` wants
    stats: str  # the stats socket's "host:port"
    time_scale: float = 1.0

    @property
    def interval_s(self) -> float:
        return check_timing(self.spec, self.time_scale)[0]

    @property
    def check_timeout_s(self) -> float:
        return check_timing(self.spec, self.time_scale)[1]

    @property
    def idle_timeout_s(self) -> float:
        return self.spec.idle_timeout_s * self.time_scale


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def render_config(plan: BalancerPlan, *, comments: bool = True) -> str:
    """The HAProxy configuration of one balancer (HAProxy 2.x syntax)."""
    spec = plan.spec
    lines = []
    if comments:
        lines += [
            f"# kmschaos balancer {spec.name} (site {spec.site}): check {spec.check}, every "
            f"{_ms(plan.interval_s)}, out after {spec.fall} failures, back after {spec.rise}",
        ]
    lines += [
        "global",
        f"    stats socket ipv4@{plan.stats} level admin",
        "    nbthread 1",
        "    log stderr format raw local0 notice",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option redispatch",
        "    retries 3",
        f"    timeout connect {_ms(plan.check_timeout_s)}",
        f"    timeout check {_ms(plan.check_timeout_s)}",
        "    # an idle connection is closed after this long (both sides)",
        f"    timeout client {_ms(plan.idle_timeout_s)}",
        f"    timeout server {_ms(plan.idle_timeout_s)}",
        "",
        f"frontend {spec.name}",
        f"    bind {plan.bind}",
        "    default_backend kms",
        "",
        "backend kms",
        f"    balance {spec.balance}",
    ]
    check_ssl = f"check-ssl verify required ca-file {plan.ca} crt {plan.client_pem}"
    if spec.check == "kmip":
        if comments:
            lines.append("    # a KMIP 1.2 Discover Versions request; the answer must say Success")
        lines += [
            "    option tcp-check",
            "    tcp-check connect ssl",
            f"    tcp-check send-binary {KMIP_CHECK_REQUEST.hex()}",
            f"    tcp-check expect binary {KMIP_CHECK_SUCCESS.hex()}",
        ]
    server_opts = f"check inter {_ms(plan.interval_s)} fall {spec.fall} rise {spec.rise}"
    if spec.check in ("tls", "kmip"):
        server_opts += f" {check_ssl}"
    for name, address in plan.servers:
        lines.append(f"    server {name} {address} {server_opts}")
    return "\n".join(lines) + "\n"


def write_client_pem(cert: str, key: str, into: Path) -> str:
    """Certificate and key in one PEM file (HAProxy's `crt`); its path."""
    into.write_text(Path(cert).read_text() + Path(key).read_text())
    into.chmod(0o600)
    return str(into)


def check_config(binary: str, config: Path) -> None:
    """`haproxy -c`: the configuration is valid, or `HaproxyError` with its words."""
    r = subprocess.run(
        [binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    if r.returncode != 0:
        raise HaproxyError(f"haproxy refuses {config}: {(r.stderr or r.stdout).strip()}")


@dataclass(frozen=True)
class ServerStatus:
    """One server as HAProxy's stats say: UP, DOWN, ``UP 1/2`` (going down), ``NOLB``...;
    the last check's status (L7OK, L4TOUT, L6TOUT, L7RSP ...) and description, and the
    connections it was given in all (`sessions`)."""

    status: str
    check_status: str
    check_desc: str
    sessions: int

    @property
    def in_rotation(self) -> bool:
        """Given new connections: UP, or UP but going down (``UP 1/3``)."""
        return self.status.startswith("UP")


def read_stats(address: str, timeout_s: float = 1.0) -> dict[str, ServerStatus]:
    """Each server of the balancer's backend, from ``show stat`` on its stats socket
    (``host:port``)."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(b"show stat\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as e:
        raise HaproxyError(f"cannot read HAProxy stats at {address}: {e}") from e
    return parse_stats(b"".join(chunks).decode("utf-8", "replace"))


def parse_stats(text: str) -> dict[str, ServerStatus]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise HaproxyError(f"unexpected HAProxy stats: {text[:200]!r}")
    cols = lines[0][2:].split(",")
    at = {c: i for i, c in enumerate(cols)}
    out = {}
    for line in lines[1:]:
        f = line.split(",")
        if f[at["pxname"]] != "kms" or f[at["svname"]] in ("BACKEND", "FRONTEND"):
            continue
        out[f[at["svname"]]] = ServerStatus(
            status=f[at["status"]],
            check_status=f[at["check_status"]].lstrip("* "),
            check_desc=f[at["check_desc"]] if "check_desc" in at else "",
            sessions=int(f[at["stot"]] or 0),
        )
    return out
