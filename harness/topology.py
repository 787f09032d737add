"""Topology files: sites, replicas, clients with ordered server lists, timeouts.

A topology is loaded from YAML and validated field by field. Every problem is a
`TopologyError` whose text names the file and the field, e.g.
``one-site.yaml: clients.vc-a.order[2]: unknown replica 'kms-x' (known: kms-a, kms-b)``.

An entry of ``sites.<site>.replicas`` is a replica name, or a mapping that also says
where the replica runs and what protects its storage (both optional; read by the linter)::

    replicas:
      - kms-a
      - {name: kms-b, host: hv-1, encrypted_by: kms-prod}

A replica may be an **external target**, a KMS kmschaos does not start (see
`harness.external`)::

    allow_external: true                    # safety switch 1 (2: the command-line flag)
    tls: {ca: kms-ca.pem, cert: client.pem, key: client.key}   # relative to this file
    sites:
      site-a:
        replicas:
          - {name: kms-prod-1, external: {host: kms1.example.net, port: 5696}}

Its ``tls`` (top level, or per external replica) names the CA that signed the server's
certificate and the client certificate the KMS knows; a run has one client identity, so
every external replica resolves to the same ``cert`` and ``key``. An external replica is
not replicated by kmschaos: a topology with one needs ``replication.profile: none``.
Whether the files exist is checked when a cluster is created (`check_tls_files`), so a
topology can be linted on a machine without them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.client.policies import POLICIES
from harness.yamlfile import (
    NAME_KINDS,
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
    Problem,
    Reader,
    Schema,
    Text,
    Y,
    compose,
    join,
    read_document,
    schema_of,
)

PROFILES = ("none", "async", "sync", "quorum")
DEFAULT_POLICY = "vcenter"
PROFILES_IMPLEMENTED = ("none", "async", "sync", "quorum")
DEFAULT_INTERVAL_MS = 250.0
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_TIME_SCALE = 10.0
MAX_REPLICAS = 99  # replica i listens on 127.X.Y.i and 127.X.Y.(100+i)
KMIP_PORT = 5696

# ---- the file format: every key, its shape and help (validation and `kmschaos schema`) ----

PROFILE_DOCS = {
    "none": "a key lives where it was made (one KMS, or unreplicated copies)",
    "async": "any replica writes; copies reach peers within interval_ms (Vault-Enterprise-like)",
    "sync": "writes go to one primary and are copied before the answer (KeyControl-like)",
    "quorum": "a write needs a majority of replicas; without one: read-only (Fortanix-like)",
}
_TLS_ROLE = {
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
    fields=tuple(Field(k, Text(), v) for k, v in _TLS_ROLE.items()), help=_TLS_HELP, ref="tls"
)
EXTERNAL = Keys(
    fields=(
        Field("host", Text(), "the KMS server's address or DNS name", required=True),
        Field("port", PORT, "its KMIP port", default=KMIP_PORT),
        Field("server_name", Text(), "the name its certificate is checked against (default: host)"),
    ),
    help="a KMS kmschaos does not start (needs allow_external: true, replication profile none)",
)
REPLICA = Keys(
    fields=(
        Field("name", REPLICA_NAME, required=True),
        Field("host", Text(), "its failure domain: hypervisor, rack (read by the linter)"),
        Field("encrypted_by", Text(), "the KMS cluster whose keys encrypt its storage (linter)"),
        Field("external", EXTERNAL),
        Field("tls", TLS, "its own TLS files (an external replica only)"),
    ),
    help="a replica with more than its name",
)
_REPLICAS = ListOf(items=AnyOf(options=(REPLICA_NAME, REPLICA)), help="names, or mappings")
SITE = Keys(fields=(Field("replicas", _REPLICAS, required=True),))
POLICY = Choice(values=POLICIES, what="policy", explain=lambda p: POLICIES[p].summary)
_ORDER = ListOf(items=REPLICA_NAME, unique=True)
CLIENT = Keys(
    fields=(
        Field("site", Text(), "the client's site (one of `sites`)", required=True),
        Field("order", _ORDER, "the replicas it tries in turn (default: own site's first)"),
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
    """

    name: str
    site: str
    host: str | None = None
    encrypted_by: str | None = None
    external: ExternalTarget | None = None
    tls: TlsPaths | None = None


@dataclass(frozen=True)
class ClientSpec:
    name: str
    site: str
    order: tuple[str, ...]
    policy: str


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

    @property
    def replicas(self) -> tuple[str, ...]:
        """All replicas, in file order (site by site)."""
        return tuple(r for reps in self.sites.values() for r in reps)

    def site_of(self, replica: str) -> str:
        for site, reps in self.sites.items():
            if replica in reps:
                return site
        raise KeyError(replica)

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
        return entry

    def to_dict(self) -> dict[str, Any]:
        """The topology as file data; `parse_topology` of its YAML gives it back.

        A replica entry is a plain name unless it has a host, encrypted_by, external or
        tls; read names with `replica_names`. TLS paths are absolute.
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
                c.name: {"site": c.site, "order": list(c.order), "policy": c.policy}
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
        }


def replica_names(entries: list[Any]) -> list[str]:
    """Names from a `sites.<site>.replicas` list of `Topology.to_dict()` output."""
    return [e["name"] if isinstance(e, dict) else e for e in entries]


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raise `TopologyError` on any problem."""
    try:
        text = read_document(Path(path))
    except Problem as p:
        raise TopologyError(str(path), "", p.message) from None
    return parse_topology(text, str(path))


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    root = None
    try:
        root = compose(text)
        return _TopologyReader(source).topology(root)
    except Problem as p:
        raise _error(source, p, root) from None


def topology_from_dict(data: dict[str, Any], source: str = "<topology>") -> Topology:
    """A `Topology` from `Topology.to_dict()` output (validated like a file)."""
    try:
        return _TopologyReader(source).topology(Y.of(data))
    except Problem as p:
        raise _error(source, p, None) from None


def topology_schema() -> Schema:
    """JSON Schema of topology files, from the declarations that validate them."""
    return schema_of(TOPOLOGY_FILE, "topology")


def check_time_scale(value: Any, source: str = "time scale") -> float:
    """A valid time scale (0 < S <= `MAX_TIME_SCALE`), or `TopologyError` at field
    ``time_scale`` of `source`: the one check of a file's value and of every override."""
    try:
        return float(TIME_SCALE.convert(value, NAME_KINDS))
    except Invalid as e:
        raise TopologyError(source, "time_scale", str(e)) from None


def _error(source: str, p: Problem, root: Y | None) -> TopologyError:
    """A `Problem` worded as topology errors are: a YAML syntax error says its line and
    column in the message, as it always did; every other line is the `line` attribute."""
    line = p.line if p.line is not None or root is None else root.line_of(p.path)
    message = p.message
    if p.column is not None:
        message = f"line {p.line}, column {p.column}: {message}"
    return TopologyError(source, p.path, message, line)


class _TopologyReader(Reader):
    """Checks a composed topology field by field, in file order."""

    def __init__(self, source: str) -> None:
        super().__init__(NAME_KINDS)
        self.source = source
        self.base = Path(source).resolve().parent if source != "<topology>" else Path.cwd()

    def replica_list(self, body: dict[str, Y], parent: Y, key: str) -> list[Y]:
        y = body.get(key)
        if y is None:
            raise Problem(join(parent.path, key), "must be a non-empty list of replica names")
        return self.items(y, what="replica names")

    def topology(self, root: Y | None) -> Topology:
        if root is None or root.value is None:
            raise Problem("", "file is empty; expected a mapping with 'sites' and 'clients'")
        if not isinstance(root.value, dict):
            raise self.problem(
                root, f"top level must be a mapping, got {self.wording.kind(root.plain())}"
            )
        top = self.mapping(root, TOPOLOGY_FILE)
        source = self.source
        name = Path(source).stem if source != "<topology>" else "topology"
        if "name" in top:
            name = top["name"].value
            if not isinstance(name, str) or not name.strip():
                raise self.problem(top["name"], "must be a non-empty string")
        allow_external = False
        if "allow_external" in top:
            allow_external = self.take(top["allow_external"], TOPOLOGY_FILE.shape("allow_external"))
        top_tls = self.tls(top["tls"]) if "tls" in top else None

        sites_y = self.required(top, root, "sites", "add at least one site with its replicas")
        sites_raw = self.mapping(sites_y)
        if not sites_raw:
            raise self.problem(sites_y, "no sites; add at least one site with its replicas")
        sites: dict[str, tuple[str, ...]] = {}
        replica_info: dict[str, ReplicaInfo] = {}
        name_paths: dict[str, str] = {}
        seen: dict[str, str] = {}
        for site, site_y in sites_raw.items():
            self.key(site_y, site, SITE_NAME)
            body = self.mapping(site_y, SITE)
            names: list[str] = []
            for entry in self.replica_list(body, site_y, "replicas"):
                info, name_y = self.replica_entry(entry)
                r = info.name
                if r in seen:
                    raise self.problem(name_y, f"replica '{r}' already listed in site '{seen[r]}'")
                seen[r] = site
                names.append(r)
                replica_info[r] = replace(info, site=site)
                name_paths[r] = entry.path
            sites[site] = tuple(names)
        all_replicas = tuple(seen)
        if len(all_replicas) > MAX_REPLICAS:
            raise self.problem(sites_y, f"{len(all_replicas)} replicas; at most {MAX_REPLICAS}")

        clients_y = self.required(top, root, "clients", "add at least one client with its site")
        clients_raw = self.mapping(clients_y)
        if not clients_raw:
            raise self.problem(clients_y, "no clients; add at least one client with its site")
        clients = {
            cname: self.client(cname, client_y, sites, seen)
            for cname, client_y in clients_raw.items()
        }

        profile, interval_ms, primary = "none", DEFAULT_INTERVAL_MS, None
        if "replication" in top:
            rep = self.mapping(top["replication"], REPLICATION)
            if "interval_ms" in rep:
                interval_ms = self.take(rep["interval_ms"], REPLICATION.shape("interval_ms"))
            if "profile" in rep:
                profile = self.take(rep["profile"], REPLICATION.shape("profile"))
            if "primary" in rep:
                if profile != "sync":
                    raise self.problem(rep["primary"], "only the sync profile has a primary")
                primary = self.choice(rep["primary"], all_replicas, "replica")

        timeouts = Timeouts()
        if "timeouts" in top:
            t = self.mapping(top["timeouts"], TIMEOUTS)
            timeouts = Timeouts(
                **{k: self.take(t[k], TIMEOUTS.shape(k)) for k in TIMEOUTS.keys if k in t}
            )

        time_scale = 1.0
        if "time_scale" in top:
            time_scale = self.take(top["time_scale"], TIME_SCALE)
        _check_external(top_tls, replica_info, name_paths, profile)

        return Topology(
            name=name,
            sites=sites,
            clients=clients,
            replication_profile=profile,
            replication_interval_ms=interval_ms,
            replication_primary=primary,
            timeouts=timeouts,
            time_scale=time_scale,
            source=source,
            replica_info=replica_info,
            allow_external=allow_external,
            tls=top_tls,
        )

    def client(
        self, cname: str, y: Y, sites: dict[str, tuple[str, ...]], seen: dict[str, str]
    ) -> ClientSpec:
        self.key(y, cname, CLIENT_NAME)
        body = self.mapping(y, CLIENT)
        site_y = body.get("site")
        if site_y is None or site_y.value is None:
            known = ", ".join(sites)
            raise Problem(
                join(y.path, "site"), f"missing; name the client's site ({known})", y.line
            )
        csite = self.choice(site_y, sites, "site")
        if "order" in body:
            order: list[str] = []
            for item in self.replica_list(body, y, "order"):
                r = self.choice(item, seen, "replica")
                if r in order:
                    raise self.problem(item, f"replica '{r}' listed twice")
                order.append(r)
        else:
            order = [*sites[csite], *(r for r in seen if seen[r] != csite)]
        policy = DEFAULT_POLICY
        if "policy" in body:
            policy = self.take(body["policy"], CLIENT.shape("policy"))
        return ClientSpec(name=cname, site=csite, order=tuple(order), policy=policy)

    def replica_entry(self, entry: Y) -> tuple[ReplicaInfo, Y]:
        """The `ReplicaInfo` of one `replicas` entry (site left empty) and its name."""
        if not isinstance(entry.value, dict):
            return ReplicaInfo(self.take(entry, REPLICA_NAME), ""), entry
        body = self.mapping(entry, REPLICA)
        name_y = self.required(body, entry, "name", "name the replica")
        name = self.take(name_y, REPLICA_NAME)
        host = self.take(body["host"], Text()) if "host" in body else None
        encrypted_by = self.take(body["encrypted_by"], Text()) if "encrypted_by" in body else None
        external = self.external(body["external"]) if "external" in body else None
        tls = None
        if "tls" in body:
            if external is None:
                raise self.problem(
                    body["tls"],
                    "only an external replica has its own TLS files (add `external: {host, "
                    "port}` or remove `tls`); kmschaos makes the certificates of replicas it "
                    "starts",
                )
            tls = self.tls(body["tls"])
        return ReplicaInfo(name, "", host, encrypted_by, external, tls), name_y

    def external(self, y: Y) -> ExternalTarget:
        body = self.mapping(y, EXTERNAL)
        host_y = self.required(body, y, "host", "the KMS server's address or DNS name")
        host = self.take(host_y, Text()).strip()
        port = KMIP_PORT
        if "port" in body:
            port = body["port"].value
            if (
                isinstance(port, bool)
                or not isinstance(port, int)
                or not PORT.lo <= port <= PORT.hi
            ):
                got = repr(body["port"].plain())
                raise self.problem(body["port"], f"must be a TCP port (1-65535), got {got}")
        server_name = None
        if "server_name" in body:
            server_name = self.take(body["server_name"], Text()).strip()
        return ExternalTarget(host, port, server_name)

    def tls(self, y: Y) -> TlsPaths:
        body = self.mapping(y, TLS)
        files = {
            k: str(self.base / Path(self.take(v, Text())).expanduser()) for k, v in body.items()
        }
        return TlsPaths(files.get("ca"), files.get("cert"), files.get("key"), where=y.path)


def _check_external(
    top_tls: TlsPaths | None,
    info: dict[str, ReplicaInfo],
    paths: dict[str, str],
    profile: str,
) -> None:
    """One client identity per run, a CA for every external replica, no replication."""
    external = [r for r, i in info.items() if i.external is not None]
    if not external:
        if top_tls is not None:
            raise Problem(
                "tls",
                "only used with external replicas (kmschaos makes a throwaway CA for the "
                "replicas it starts); remove it, or add a replica with `external:`",
            )
        return
    if profile != "none":
        raise Problem(
            "replication.profile",
            f"profile {profile!r} with external replica(s) {', '.join(external)}: kmschaos "
            "replicates only the replicas it starts, and an external KMS replicates itself "
            "(if at all); use profile none",
        )
    top = top_tls or TlsPaths()
    first: tuple[str, str | None, str | None] | None = None
    for r in external:
        own = info[r].tls or TlsPaths(where=top.where if top_tls else f"{paths[r]}.tls")
        for k in TLS_KEYS:
            if getattr(own, k) is None and getattr(top, k) is None:
                raise Problem(
                    f"{own.where}.{k}",
                    f"missing for external replica '{r}': give it here or in the top-level "
                    f"tls.{k} ({_TLS_ROLE[k]})",
                )
        cert, key = own.cert or top.cert, own.key or top.key
        if first is None:
            first = (r, cert, key)
        elif (cert, key) != first[1:]:
            where = f"{own.where}.cert" if own.cert or own.key else f"{paths[r]}.tls"
            raise Problem(
                where,
                f"external replica '{r}' uses another client certificate than '{first[0]}': "
                "a run has one client identity (PyKMIP-style clients send one certificate to "
                "every server of their list); use the same cert and key for both",
            )


def check_tls_files(topology: Topology) -> None:
    """Every TLS file an external target names exists and looks like PEM; raise
    `TopologyError` naming the field otherwise. Run when a cluster is created."""
    found = [topology.tls] if topology.tls is not None else []
    found += [i.tls for i in topology.replica_info.values() if i.tls is not None]
    for paths in found:
        for k in TLS_KEYS:
            f = getattr(paths, k)
            if f is None:
                continue
            try:
                text = Path(f).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                raise TopologyError(
                    topology.source, f"{paths.where}.{k}", f"file not found: {f}"
                ) from None
            except OSError as e:
                raise TopologyError(
                    topology.source, f"{paths.where}.{k}", f"cannot read {f}: {e.strerror}"
                ) from None
            marker = "PRIVATE KEY-----" if k == "key" else "-----BEGIN CERTIFICATE-----"
            if marker not in text:
                what = "a PEM private key" if k == "key" else "a PEM certificate"
                raise TopologyError(topology.source, f"{paths.where}.{k}", f"{f} is not {what}")
