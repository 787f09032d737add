"""The loaded topology: sites, replicas (with where they run, external targets),
clients with their ordered server lists and policies, replication, timeouts, time
scale — and `TopologyError`, whose text names the file and the field."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.client.policy_spec import PolicySpec
from harness.topology.fileformat import (
    DEFAULT_INTERVAL_MS,
    KMIP_PORT,
    PROFILES_IMPLEMENTED,
    SERVER_KMIP_VERSIONS,
    TIME_SCALE,
)
from harness.yamlfile import NAME_KINDS, Invalid


class TopologyError(ValueError):
    """A topology file is invalid; the message names the file and the field. `line` is
    the field's line in the file when known (the text stays ``file: field: message``)."""

    def __init__(self, source: str, field_path: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.field_path = field_path
        self.message = message
        self.line = line
        where = f"{source}: {field_path}: " if field_path else f"{source}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class Timeouts:
    """Client timeouts in seconds, before `time_scale` is applied."""

    response_s: float = 60.0
    connect_s: float = 5.0


@dataclass(frozen=True)
class TlsPaths:
    """TLS files of an external target, absolute (relative paths in the file are taken
    from the topology file's folder). `where` is the field path, for error messages."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    where: str = field(default="tls", compare=False)

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("ca", self.ca), ("cert", self.cert), ("key", self.key)) if v}


@dataclass(frozen=True)
class ExternalTarget:
    """A KMS that kmschaos does not start: clients reach it through Toxiproxy links.

    `server_name` is the name its certificate is checked against (default `host`)."""

    host: str
    port: int = KMIP_PORT
    server_name: str | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def tls_name(self) -> str:
        return self.server_name or self.host

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.server_name:
            d["server_name"] = self.server_name
        return d


@dataclass(frozen=True)
class ReplicaInfo:
    """What the file says about one replica beyond its name.

    `host` is the failure domain it runs in (hypervisor, rack); `encrypted_by` names the
    KMS cluster whose keys encrypt the replica's own storage. Either may be unknown.
    `external` is set for a KMS kmschaos does not start, `tls` for its own TLS files.
    `kmip_versions` are the KMIP protocol versions it speaks (None: not said, every
    version PyKMIP's server speaks); a replica kmschaos starts refuses the others.
    """

    name: str
    site: str
    host: str | None = None
    encrypted_by: str | None = None
    external: ExternalTarget | None = None
    tls: TlsPaths | None = None
    kmip_versions: tuple[str, ...] | None = None

    @property
    def speaks(self) -> tuple[str, ...]:
        """The KMIP versions it speaks: its `kmip_versions`, else PyKMIP's server's."""
        return self.kmip_versions if self.kmip_versions is not None else SERVER_KMIP_VERSIONS


@dataclass(frozen=True)
class BalancerSpec:
    """An L4 load balancer (HAProxy) in front of `replicas`: clients that list it reach
    one of them per connection. Durations are before `time_scale`."""

    name: str
    site: str
    replicas: tuple[str, ...]
    check: str = "tcp"
    interval_ms: float = 2000.0
    fall: int = 3
    rise: int = 2
    balance: str = "roundrobin"
    idle_timeout_s: float = 300.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "replicas": list(self.replicas),
            "check": self.check,
            "interval_ms": self.interval_ms,
            "fall": self.fall,
            "rise": self.rise,
            "balance": self.balance,
            "idle_timeout_s": self.idle_timeout_s,
        }


@dataclass(frozen=True)
class ClientSpec:
    name: str
    site: str
    order: tuple[str, ...]
    policy: PolicySpec

    def timeouts(self, topology: Topology) -> tuple[float | None, float | None]:
        """(connect, response) seconds this client waits, at the topology's time scale
        (None: no timeout of its own, the OS decides)."""
        t = topology.timeouts
        return self.policy.timeouts(t.connect_s, t.response_s, topology.time_scale)


@dataclass(frozen=True)
class Topology:
    name: str
    sites: dict[str, tuple[str, ...]]
    clients: dict[str, ClientSpec]
    replication_profile: str = "none"
    replication_interval_ms: float = DEFAULT_INTERVAL_MS
    replication_primary: str | None = None  # sync: default the first replica of the first site
    timeouts: Timeouts = field(default_factory=Timeouts)
    time_scale: float = 1.0
    source: str = "<topology>"
    replica_info: dict[str, ReplicaInfo] = field(default_factory=dict)
    allow_external: bool = False
    tls: TlsPaths | None = None  # the top-level `tls`, for external targets
    load_balancers: dict[str, BalancerSpec] = field(default_factory=dict)

    @property
    def replicas(self) -> tuple[str, ...]:
        """All replicas, in file order (site by site)."""
        return tuple(r for reps in self.sites.values() for r in reps)

    def site_of(self, replica: str) -> str:
        """The site of a replica, or of a load balancer."""
        for site, reps in self.sites.items():
            if replica in reps:
                return site
        if replica in self.load_balancers:
            return self.load_balancers[replica].site
        raise KeyError(replica)

    def behind(self, server: str) -> tuple[str, ...]:
        """The replicas a client reaches through `server`: a balancer's replicas, or
        the replica itself."""
        lb = self.load_balancers.get(server)
        return lb.replicas if lb is not None else (server,)

    def balancers_of(self, replica: str) -> tuple[str, ...]:
        """The balancers in front of `replica`, in file order."""
        return tuple(n for n, lb in self.load_balancers.items() if replica in lb.replicas)

    def info_of(self, replica: str) -> ReplicaInfo:
        """The replica's `ReplicaInfo`; host and encrypted_by unknown if not given."""
        info = self.replica_info.get(replica)
        return info if info is not None else ReplicaInfo(replica, self.site_of(replica))

    @property
    def external_replicas(self) -> tuple[str, ...]:
        """Replicas kmschaos does not start (`external:`), in file order."""
        return tuple(r for r in self.replicas if self.info_of(r).external is not None)

    def external_tls(self, replica: str) -> TlsPaths:
        """The TLS files for an external replica: its own `tls`, else the top level's."""
        own = self.info_of(replica).tls or TlsPaths()
        top = self.tls or TlsPaths()
        return TlsPaths(
            ca=own.ca or top.ca,
            cert=own.cert or top.cert,
            key=own.key or top.key,
            where=own.where if own.ca else top.where,
        )

    @property
    def client_identity(self) -> TlsPaths | None:
        """The run's one client identity when it has external replicas (cert, key, and
        the CA of the first external replica); None for a topology of own replicas."""
        ext = self.external_replicas
        return self.external_tls(ext[0]) if ext else None

    @property
    def replication_implemented(self) -> bool:
        """Whether a cluster can run this replication profile today."""
        return self.replication_profile in PROFILES_IMPLEMENTED

    @property
    def response_timeout(self) -> float:
        """Seconds a client waits for a connected but silent server (scaled)."""
        return self.timeouts.response_s * self.time_scale

    @property
    def connect_timeout(self) -> float:
        """Seconds a client waits for a TCP connect (scaled)."""
        return self.timeouts.connect_s * self.time_scale

    @property
    def primary(self) -> str:
        """The `sync` primary: configured, else the first replica of the first site."""
        return self.replication_primary or self.replicas[0]

    def with_time_scale(self, time_scale: float) -> Topology:
        """A copy with another time_scale, validated like the file's own."""
        return replace(self, time_scale=check_time_scale(time_scale, self.source))

    def _replica_entry(self, replica: str) -> str | dict[str, Any]:
        info = self.replica_info.get(replica)
        if info is None or info == ReplicaInfo(replica, info.site):
            return replica
        entry: dict[str, Any] = {"name": replica}
        if info.host is not None:
            entry["host"] = info.host
        if info.encrypted_by is not None:
            entry["encrypted_by"] = info.encrypted_by
        if info.external is not None:
            entry["external"] = info.external.to_dict()
        if info.tls is not None:
            entry["tls"] = info.tls.to_dict()
        if info.kmip_versions is not None:
            entry["kmip_versions"] = list(info.kmip_versions)
        return entry

    def to_dict(self) -> dict[str, Any]:
        """The topology as file data; `parse_topology` of its YAML gives it back.

        A replica entry is a plain name unless it has a host, encrypted_by, external,
        tls or kmip_versions; read names with `replica_names`. TLS paths are absolute.
        """
        extra: dict[str, Any] = {}
        if self.allow_external:
            extra["allow_external"] = True
        if self.tls is not None:
            extra["tls"] = self.tls.to_dict()
        return {
            "name": self.name,
            **extra,
            "sites": {
                s: {"replicas": [self._replica_entry(r) for r in reps]}
                for s, reps in self.sites.items()
            },
            "clients": {
                c.name: {"site": c.site, "order": list(c.order), "policy": c.policy.to_data()}
                for c in self.clients.values()
            },
            "replication": {
                "profile": self.replication_profile,
                "interval_ms": self.replication_interval_ms,
                **({"primary": self.primary} if self.replication_profile == "sync" else {}),
            },
            "timeouts": {
                "response_s": self.timeouts.response_s,
                "connect_s": self.timeouts.connect_s,
            },
            "time_scale": self.time_scale,
            **(
                {"load_balancers": {n: b.to_dict() for n, b in self.load_balancers.items()}}
                if self.load_balancers
                else {}
            ),
        }


def replica_names(entries: list[Any]) -> list[str]:
    """Names from a `sites.<site>.replicas` list of `Topology.to_dict()` output."""
    return [e["name"] if isinstance(e, dict) else e for e in entries]


def replica_kmip_versions(topology: dict[str, Any], replica: str) -> tuple[str, ...] | None:
    """The `kmip_versions` of `replica` in `Topology.to_dict()` output (a cluster's
    recorded topology), None when its entry says none: what its start passes on."""
    for site in topology.get("sites", {}).values():
        for entry in site.get("replicas", []):
            if isinstance(entry, dict) and entry.get("name") == replica:
                versions = entry.get("kmip_versions")
                return tuple(versions) if versions is not None else None
    return None


def audit_kmip_version(topology: dict[str, Any], replica: str) -> str:
    """The KMIP version the harness itself speaks to `replica` (audits, clean-up): 1.2,
    PyKMIP's default, unless the replica does not speak it; then the newest it does."""
    versions = replica_kmip_versions(topology, replica)
    if versions is None or "1.2" in versions:
        return "1.2"
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def check_time_scale(value: Any, source: str = "time scale") -> float:
    """A valid time scale (0 < S <= `MAX_TIME_SCALE`), or `TopologyError` at field
    ``time_scale`` of `source`: the one check of a file's value and of every override."""
    try:
        return float(TIME_SCALE.convert(value, NAME_KINDS))
    except Invalid as e:
        raise TopologyError(source, "time_scale", str(e)) from None
