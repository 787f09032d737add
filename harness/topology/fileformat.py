"""The topology file format: every key, its shape, its limits and its help text, declared
once (`harness.yamlfile` shapes). The loader (`harness.topology.load`) checks files
against these declarations and `kmschaos schema topology` renders them as JSON Schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.client.policies import POLICIES
from harness.client.policy_spec import KMIP_VERSIONS, OS, RETRYABLE, SELECTION_MEANS
from harness.yamlfile import (
    AnyOf,
    Boolean,
    Choice,
    Field,
    Integer,
    Invalid,
    Keys,
    ListOf,
    MapOf,
    Name,
    Number,
    Schema,
    Shape,
    Text,
    Wording,
)

PROFILES = ("none", "async", "sync", "quorum")
DEFAULT_POLICY = "vcenter"
PROFILES_IMPLEMENTED = ("none", "async", "sync", "quorum")
DEFAULT_INTERVAL_MS = 250.0
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_TIME_SCALE = 10.0
MAX_REPLICAS = 99  # replica i listens on 127.X.Y.i and 127.X.Y.(100+i)
MAX_BALANCERS = 20  # balancer j listens on 127.X.Y.(200+j) and 127.X.Y.(220+j)
KMIP_PORT = 5696
# the protocol versions a replica speaks unless its `kmip_versions` says otherwise: all
# that PyKMIP's server speaks (kmip/services/server/engine.py, docs/clients.md)
SERVER_KMIP_VERSIONS = KMIP_VERSIONS

# ---- the file format: every key, its shape and help (validation and `kmschaos schema`) ----

PROFILE_DOCS = {
    "none": "a key lives where it was made (one KMS, or unreplicated copies)",
    "async": "any replica writes; copies reach peers within interval_ms (Vault-Enterprise-like)",
    "sync": "writes go to one primary and are copied before the answer (KeyControl-like)",
    "quorum": "a write needs a majority of replicas; without one: read-only (Fortanix-like)",
}
TLS_ROLE = {
    "ca": "the CA certificate(s) that signed the KMS server's certificate",
    "cert": "the client certificate the KMS knows",
    "key": "that certificate's private key",
}
_NAME_RULE = "use 1-32 lowercase letters, digits and '-'"
SITE_NAME = Name(pattern=NAME_RE, rule=_NAME_RULE, what="site name", ref="name")
CLIENT_NAME = Name(pattern=NAME_RE, rule=_NAME_RULE, what="client name", ref="name")
REPLICA_NAME = Name(pattern=NAME_RE, rule=_NAME_RULE, what="replica name", ref="name")
PORT = Integer(lo=1, hi=65535)
TIME_SCALE = Number(lo=0, hi=MAX_TIME_SCALE, lo_open=True)
_TLS_HELP = "TLS files of external replicas (PEM, relative to this file)"
TLS = Keys(
    fields=tuple(Field(k, Text(), v) for k, v in TLS_ROLE.items()), help=_TLS_HELP, ref="tls"
)
EXTERNAL = Keys(
    fields=(
        Field("host", Text(), "the KMS server's address or DNS name", required=True),
        Field("port", PORT, "its KMIP port", default=KMIP_PORT),
        Field("server_name", Text(), "the name its certificate is checked against (default: host)"),
    ),
    help="a KMS kmschaos does not start (needs allow_external: true, replication profile none)",
)


@dataclass(frozen=True, kw_only=True)
class KmipVersion(Shape):
    """A KMIP protocol version, written as YAML reads it: ``1.2`` (a number) or
    ``"1.2"``; kept as the string."""

    values: tuple[str, ...]

    def convert(self, value: Any, wording: Wording) -> str:
        text = value
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = repr(float(value))  # 1.2 -> "1.2", 2 -> "2.0"
        if not isinstance(text, str) or text not in self.values:
            known = ", ".join(self.values)
            raise Invalid(f"unknown KMIP version {wording.value(value)} (known: {known})")
        return text

    def body(self, defs: Schema) -> Schema:
        return {"enum": [*self.values, *(float(v) for v in self.values)]}


KMIP_VERSION = KmipVersion(values=SERVER_KMIP_VERSIONS, help="a KMIP protocol version")
_KMIP_VERSIONS_HELP = (
    "the KMIP protocol versions it speaks (default: all PyKMIP's server speaks, "
    f"{', '.join(SERVER_KMIP_VERSIONS)}); a request in another is refused: Operation "
    "Failed, Invalid Message (attempt outcome version-refused). For an external replica: "
    "what that KMS is known to speak (read by the linter)"
)
REPLICA = Keys(
    fields=(
        Field("name", REPLICA_NAME, required=True),
        Field("host", Text(), "its failure domain: hypervisor, rack (read by the linter)"),
        Field("encrypted_by", Text(), "the KMS cluster whose keys encrypt its storage (linter)"),
        Field("external", EXTERNAL),
        Field("tls", TLS, "its own TLS files (an external replica only)"),
        Field("kmip_versions", ListOf(items=KMIP_VERSION, unique=True), _KMIP_VERSIONS_HELP),
    ),
    help="a replica with more than its name",
)
_REPLICAS = ListOf(items=AnyOf(options=(REPLICA_NAME, REPLICA)), help="names, or mappings")
SITE = Keys(fields=(Field("replicas", _REPLICAS, required=True),))
PRESET = Choice(values=POLICIES, what="policy", explain=lambda p: POLICIES[p].summary)
_SECONDS = Number(lo=0, hi=3600, lo_open=True)
_TIMEOUT = AnyOf(
    options=(_SECONDS, Choice(values=(OS,), what="timeout")),
    help="seconds before time_scale, or `os`: no timeout of its own (the OS decides)",
)
GROUP = Keys(
    fields=(
        Field("primary", REPLICA_NAME, "the key server tried first", required=True),
        Field(
            "secondaries",
            ListOf(items=REPLICA_NAME, unique=True, max_items=3),
            "tried after the primary, in this order (ONTAP: up to 3)",
        ),
    ),
    help="a primary key server and its secondaries",
)
KEY_CACHE = Keys(
    fields=(
        Field("ttl_s", _SECONDS, "seconds a key stays cached (default: while the process runs)"),
        Field("survives_restart", Boolean(), "kept across a client restart (ESXi TPM)"),
    ),
    help="keys served from memory once read, without the KMS",
)
POLICY_MAPPING = Keys(
    fields=(
        Field("preset", PRESET, "the policy this one adjusts", default="vcenter"),
        Field(
            "selection",
            Choice(
                values=tuple(SELECTION_MEANS), what="selection", explain=SELECTION_MEANS.__getitem__
            ),
            "when the client picks a server",
        ),
        Field("connect_timeout_s", _TIMEOUT, "TCP connect timeout (default: timeouts.connect_s)"),
        Field("response_timeout_s", _TIMEOUT, "response timeout (default: timeouts.response_s)"),
        Field("retries", Integer(lo=0, hi=10), "tries of the same server after a failed one"),
        Field(
            "retry_on",
            ListOf(items=Choice(values=RETRYABLE, what="attempt outcome"), unique=True),
            "which attempt outcomes are retried",
        ),
        Field("resend_mutations", Boolean(), "send a mutation again that may have run"),
        Field("skip_failed_s", _SECONDS, "skip a server that failed to connect this recently"),
        Field(
            "open_connection_error",
            Choice(values=("fail", "failover"), what="reaction"),
            "an error on an open connection fails the operation, or walks on",
        ),
        Field("idle_reconnect_s", _SECONDS, "reconnect before using a connection idle this long"),
        Field(
            "groups",
            ListOf(items=GROUP, max_items=4),
            "primaries with their secondaries (ONTAP); the client's order is their members",
        ),
        Field(
            "kmip_version",
            KmipVersion(values=KMIP_VERSIONS, help="a KMIP protocol version"),
            "the protocol version in its requests",
        ),
        Field(
            "key_state_poll_s",
            _SECONDS,
            "read the master key's state this often; stop when it is not Active (MongoDB)",
        ),
        Field("key_cache", KEY_CACHE),
    ),
    help="a preset adjusted field by field (`kmschaos policies`)",
    ref="policy",
)
POLICY = AnyOf(options=(PRESET, POLICY_MAPPING), help="a preset name, or a mapping")
BALANCER_NAME = Name(pattern=NAME_RE, rule=_NAME_RULE, what="balancer name", ref="name")
# what a balancer's health check does (HAProxy), in words: `kmschaos lb-config`, docs
CHECKS = {
    "tcp": "a TCP connect only (blind to a frozen replica or broken TLS)",
    "tls": "a TLS handshake with the client certificate",
    "kmip": "a KMIP Discover Versions request over TLS; the answer must say Success",
}
BALANCES = {
    "roundrobin": "each new connection to the next server in turn",
    "leastconn": "to the server with the fewest connections",
    "first": "to the first server with a free slot (in the listed order)",
    "source": "by a hash of the client's address (one client, one server)",
}
BALANCER = Keys(
    fields=(
        Field("site", Text(), "the site it runs in (one of `sites`)", required=True),
        Field(
            "replicas",
            ListOf(items=REPLICA_NAME, unique=True),
            "the replicas behind it, in order",
            required=True,
        ),
        Field(
            "check",
            Choice(values=tuple(CHECKS), what="health check", explain=CHECKS.__getitem__),
            "its health check",
            default="tcp",
        ),
        Field(
            "interval_ms",
            Number(lo=0, hi=600000, lo_open=True),
            "milliseconds between health checks (HAProxy `inter`), before time_scale",
            default=2000,
        ),
        Field("fall", Integer(lo=1, hi=100), "failed checks in a row that eject", default=3),
        Field("rise", Integer(lo=1, hi=100), "passed checks in a row that restore", default=2),
        Field(
            "balance",
            Choice(values=tuple(BALANCES), what="balance", explain=BALANCES.__getitem__),
            "how connections are spread",
            default="roundrobin",
        ),
        Field(
            "idle_timeout_s",
            Number(lo=0, hi=86400, lo_open=True),
            "seconds an idle connection is kept (HAProxy client/server timeout), before time_scale",
            default=300,
        ),
    ),
    help="an L4 load balancer (a real HAProxy) in front of replicas: a VIP clients list",
    ref="balancer",
)
_ORDER = ListOf(items=REPLICA_NAME, unique=True)
CLIENT = Keys(
    fields=(
        Field("site", Text(), "the client's site (one of `sites`)", required=True),
        Field(
            "order",
            _ORDER,
            "the replicas (or load balancers) it tries in turn (default: own site's first)",
        ),
        Field("policy", POLICY, "how it fails over (`kmschaos policies`)", default=DEFAULT_POLICY),
    )
)
PROFILE = Choice(values=PROFILES, what="profile", explain=PROFILE_DOCS.__getitem__)
REPLICATION = Keys(
    fields=(
        Field("profile", PROFILE, "how replicas copy keys to each other", default="none"),
        Field(
            "interval_ms",
            Number(lo=0, hi=60000, lo_open=True),
            "how often changes are pushed to peers, in milliseconds",
            default=DEFAULT_INTERVAL_MS,
        ),
        Field("primary", REPLICA_NAME, "sync only: the primary (default: the first replica)"),
    )
)
_RESPONSE_HELP = "seconds a client waits for a connected but silent server (vCenter: 60)"
TIMEOUTS = Keys(
    fields=(
        Field("response_s", Number(lo=0, hi=3600, lo_open=True), _RESPONSE_HELP, default=60),
        Field("connect_s", Number(lo=0, hi=600, lo_open=True), "TCP connect timeout", default=5),
    ),
    help="client timeouts in seconds, before time_scale",
)
TOPOLOGY_FILE = Keys(
    fields=(
        Field("name", Text(), "the topology's name (default: the file name)"),
        Field("sites", MapOf(names=SITE_NAME, values=SITE), "sites and replicas", required=True),
        Field("clients", MapOf(names=CLIENT_NAME, values=CLIENT), "clients", required=True),
        Field(
            "load_balancers",
            MapOf(names=BALANCER_NAME, values=BALANCER),
            "load balancers (HAProxy) in front of replicas; clients may list them in `order`",
        ),
        Field("replication", REPLICATION),
        Field("timeouts", TIMEOUTS),
        Field("time_scale", TIME_SCALE, "multiplies every client timeout (CI: 0.05)", default=1.0),
        Field("allow_external", Boolean(), "safety switch 1 of 2 for external replicas"),
        Field("tls", TLS),
    ),
    help="A kmschaos topology: sites, replicas, clients with ordered server lists, "
    "replication, timeouts.",
)
TOP_KEYS = TOPOLOGY_FILE.keys
REPLICA_KEYS = REPLICA.keys
EXTERNAL_KEYS = EXTERNAL.keys
TLS_KEYS = TLS.keys
