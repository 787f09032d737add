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

import yaml

from harness.client.policies import POLICIES

PROFILES = ("none", "async", "sync", "quorum")
DEFAULT_POLICY = "vcenter"
PROFILES_IMPLEMENTED = ("none", "async", "sync", "quorum")
DEFAULT_INTERVAL_MS = 250.0
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_TIME_SCALE = 10.0
MAX_REPLICAS = 99  # replica i listens on 127.X.Y.i and 127.X.Y.(100+i)

TOP_KEYS = (
    "name",
    "sites",
    "clients",
    "replication",
    "timeouts",
    "time_scale",
    "allow_external",
    "tls",
)
REPLICA_KEYS = ("name", "host", "encrypted_by", "external", "tls")
EXTERNAL_KEYS = ("host", "port", "server_name")
TLS_KEYS = ("ca", "cert", "key")
KMIP_PORT = 5696


class TopologyError(ValueError):
    """A topology file is invalid; the message names the file and the field."""

    def __init__(self, source: str, field_path: str, message: str) -> None:
        self.source = source
        self.field_path = field_path
        self.message = message
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
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(source, "", "file not found") from None
    except OSError as e:
        raise TopologyError(source, "", f"cannot read file: {e.strerror}") from None
    return parse_topology(text, source)


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise TopologyError(source, "", f"{where}invalid YAML: {problem}") from None
    except Exception as e:  # noqa: BLE001 - PyYAML's constructors crash on `!!int ''`, `!!bool ''`
        raise TopologyError(source, "", f"invalid YAML: {type(e).__name__}: {e}") from None
    return _validate(data, source)


def topology_from_dict(data: dict[str, Any], source: str = "<topology>") -> Topology:
    """A `Topology` from `Topology.to_dict()` output (validated like a file)."""
    return _validate(data, source)


def check_time_scale(value: Any, source: str = "time scale") -> float:
    """A valid time scale (0 < S <= `MAX_TIME_SCALE`), or `TopologyError` at field
    ``time_scale`` of `source`: the one check of a file's value and of every override."""
    return _number(source, "time_scale", value, 0, MAX_TIME_SCALE)


def _err(source: str, path: str, msg: str) -> TopologyError:
    return TopologyError(source, path, msg)


def _mapping(source: str, path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(source, path, f"must be a mapping, got {_kind(value)}")
    for k in value:
        if not isinstance(k, str):
            raise _err(source, path, f"keys must be strings, got {k!r}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _unknown_keys(source: str, path: str, d: dict[str, Any], known: tuple[str, ...]) -> None:
    for k in d:
        if k not in known:
            prefix = f"{path}." if path else ""
            raise _err(source, f"{prefix}{k}", f"unknown key (known: {', '.join(known)})")


def _name(source: str, path: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise _err(
            source,
            path,
            f"invalid {what} name {value!r}: use 1-32 lowercase letters, digits and '-'",
        )
    return value


def _number(source: str, path: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err(source, path, f"must be a number, got {_kind(value)}")
    if not lo < value <= hi:
        raise _err(source, path, f"must be > {lo:g} and <= {hi:g}, got {value:g}")
    return float(value)


def _text(source: str, path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "an empty string" if isinstance(value, str) else _kind(value)
        raise _err(source, path, f"must be a non-empty string, got {got}")
    return value


def _replica_entry(source: str, path: str, entry: Any, base: Path) -> tuple[ReplicaInfo, str]:
    """The `ReplicaInfo` of one `replicas` entry (site left empty) and its name's path."""
    if not isinstance(entry, dict):
        return ReplicaInfo(_name(source, path, entry, "replica"), ""), path
    body = _mapping(source, path, entry)
    _unknown_keys(source, path, body, REPLICA_KEYS)
    if "name" not in body:
        raise _err(source, f"{path}.name", "missing; name the replica")
    name = _name(source, f"{path}.name", body["name"], "replica")
    host = body.get("host")
    if "host" in body:
        host = _text(source, f"{path}.host", host)
    encrypted_by = body.get("encrypted_by")
    if "encrypted_by" in body:
        encrypted_by = _text(source, f"{path}.encrypted_by", encrypted_by)
    external = None
    if "external" in body:
        external = _external(source, f"{path}.external", body["external"])
    tls = None
    if "tls" in body:
        if external is None:
            raise _err(
                source,
                f"{path}.tls",
                "only an external replica has its own TLS files (add `external: {host, port}`"
                " or remove `tls`); kmschaos makes the certificates of replicas it starts",
            )
        tls = _tls(source, f"{path}.tls", body["tls"], base)
    return ReplicaInfo(name, "", host, encrypted_by, external, tls), f"{path}.name"


def _external(source: str, path: str, value: Any) -> ExternalTarget:
    body = _mapping(source, path, value)
    _unknown_keys(source, path, body, EXTERNAL_KEYS)
    if "host" not in body:
        raise _err(source, f"{path}.host", "missing; the KMS server's address or DNS name")
    host = _text(source, f"{path}.host", body["host"]).strip()
    port = body.get("port", KMIP_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise _err(source, f"{path}.port", f"must be a TCP port (1-65535), got {port!r}")
    server_name = None
    if "server_name" in body:
        server_name = _text(source, f"{path}.server_name", body["server_name"]).strip()
    return ExternalTarget(host, port, server_name)


def _tls(source: str, path: str, value: Any, base: Path) -> TlsPaths:
    body = _mapping(source, path, value)
    _unknown_keys(source, path, body, TLS_KEYS)
    files = {
        k: str(base / Path(_text(source, f"{path}.{k}", v)).expanduser()) for k, v in body.items()
    }
    return TlsPaths(files.get("ca"), files.get("cert"), files.get("key"), where=path)


def _check_external(
    source: str,
    top_tls: TlsPaths | None,
    info: dict[str, ReplicaInfo],
    paths: dict[str, str],
    profile: str,
) -> None:
    """One client identity per run, a CA for every external replica, no replication."""
    external = [r for r, i in info.items() if i.external is not None]
    if not external:
        if top_tls is not None:
            raise _err(
                source,
                "tls",
                "only used with external replicas (kmschaos makes a throwaway CA for the "
                "replicas it starts); remove it, or add a replica with `external:`",
            )
        return
    if profile != "none":
        raise _err(
            source,
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
                raise _err(
                    source,
                    f"{own.where}.{k}",
                    f"missing for external replica '{r}': give it here or in the top-level "
                    f"tls.{k} ({_TLS_ROLE[k]})",
                )
        cert, key = own.cert or top.cert, own.key or top.key
        if first is None:
            first = (r, cert, key)
        elif (cert, key) != first[1:]:
            where = f"{own.where}.cert" if own.cert or own.key else f"{paths[r]}.tls"
            raise _err(
                source,
                where,
                f"external replica '{r}' uses another client certificate than '{first[0]}': "
                "a run has one client identity (PyKMIP-style clients send one certificate to "
                "every server of their list); use the same cert and key for both",
            )


_TLS_ROLE = {
    "ca": "the CA certificate(s) that signed the KMS server's certificate",
    "cert": "the client certificate the KMS knows",
    "key": "that certificate's private key",
}


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


def _validate(data: Any, source: str) -> Topology:
    if data is None:
        raise _err(source, "", "file is empty; expected a mapping with 'sites' and 'clients'")
    top = _mapping(source, "", data) if isinstance(data, dict) else None
    if top is None:
        raise _err(source, "", f"top level must be a mapping, got {_kind(data)}")
    _unknown_keys(source, "", top, TOP_KEYS)

    name = top.get("name", Path(source).stem if source != "<topology>" else "topology")
    if not isinstance(name, str) or not name.strip():
        raise _err(source, "name", "must be a non-empty string")
    base = Path(source).resolve().parent if source != "<topology>" else Path.cwd()
    allow_external = top.get("allow_external", False)
    if not isinstance(allow_external, bool):
        raise _err(source, "allow_external", f"must be true or false, got {_kind(allow_external)}")
    top_tls = _tls(source, "tls", top["tls"], base) if "tls" in top else None

    if "sites" not in top:
        raise _err(source, "sites", "missing; add at least one site with its replicas")
    sites_raw = _mapping(source, "sites", top["sites"])
    if not sites_raw:
        raise _err(source, "sites", "no sites; add at least one site with its replicas")
    sites: dict[str, tuple[str, ...]] = {}
    replica_info: dict[str, ReplicaInfo] = {}
    name_paths: dict[str, str] = {}
    seen: dict[str, str] = {}
    for site, body in sites_raw.items():
        _name(source, f"sites.{site}", site, "site")
        spath = f"sites.{site}"
        body = _mapping(source, spath, body)
        _unknown_keys(source, spath, body, ("replicas",))
        reps = body.get("replicas")
        if not isinstance(reps, list) or not reps:
            raise _err(source, f"{spath}.replicas", "must be a non-empty list of replica names")
        names: list[str] = []
        for i, entry in enumerate(reps):
            info, rpath = _replica_entry(source, f"{spath}.replicas[{i}]", entry, base)
            r = info.name
            if r in seen:
                raise _err(source, rpath, f"replica '{r}' already listed in site '{seen[r]}'")
            seen[r] = site
            names.append(r)
            replica_info[r] = replace(info, site=site)
            name_paths[r] = f"{spath}.replicas[{i}]"
        sites[site] = tuple(names)
    all_replicas = tuple(seen)
    if len(all_replicas) > MAX_REPLICAS:
        raise _err(source, "sites", f"{len(all_replicas)} replicas; at most {MAX_REPLICAS}")

    if "clients" not in top:
        raise _err(source, "clients", "missing; add at least one client with its site")
    clients_raw = _mapping(source, "clients", top["clients"])
    if not clients_raw:
        raise _err(source, "clients", "no clients; add at least one client with its site")
    clients: dict[str, ClientSpec] = {}
    for cname, body in clients_raw.items():
        _name(source, f"clients.{cname}", cname, "client")
        cpath = f"clients.{cname}"
        body = _mapping(source, cpath, body)
        _unknown_keys(source, cpath, body, ("site", "order", "policy"))
        csite = body.get("site")
        if csite is None:
            raise _err(
                source, f"{cpath}.site", f"missing; name the client's site ({', '.join(sites)})"
            )
        if not isinstance(csite, str) or csite not in sites:
            raise _err(
                source,
                f"{cpath}.site",
                f"unknown site {csite!r} (known: {', '.join(sites)})",
            )
        if "order" in body:
            order_raw = body["order"]
            if not isinstance(order_raw, list) or not order_raw:
                raise _err(source, f"{cpath}.order", "must be a non-empty list of replica names")
            for i, r in enumerate(order_raw):
                if not isinstance(r, str) or r not in seen:
                    raise _err(
                        source,
                        f"{cpath}.order[{i}]",
                        f"unknown replica {r!r} (known: {', '.join(all_replicas)})",
                    )
                if r in order_raw[:i]:
                    raise _err(source, f"{cpath}.order[{i}]", f"replica '{r}' listed twice")
            order = tuple(order_raw)
        else:
            order = sites[csite] + tuple(r for r in all_replicas if seen[r] != csite)
        policy = body.get("policy", DEFAULT_POLICY)
        if not isinstance(policy, str) or policy not in POLICIES:
            raise _err(
                source,
                f"{cpath}.policy",
                f"unknown policy {policy!r} (known: {', '.join(POLICIES)})",
            )
        clients[cname] = ClientSpec(name=cname, site=csite, order=order, policy=policy)

    profile = "none"
    primary = None
    interval_ms = DEFAULT_INTERVAL_MS
    if "replication" in top:
        rep = _mapping(source, "replication", top["replication"])
        _unknown_keys(source, "replication", rep, ("profile", "interval_ms", "primary"))
        interval_ms = _number(
            source, "replication.interval_ms", rep.get("interval_ms", DEFAULT_INTERVAL_MS), 0, 60000
        )
        profile = rep.get("profile", "none")
        if profile not in PROFILES:
            known = ", ".join(PROFILES)
            raise _err(
                source, "replication.profile", f"unknown profile {profile!r} (known: {known})"
            )
        if "primary" in rep:
            primary = rep["primary"]
            if profile != "sync":
                raise _err(source, "replication.primary", "only the sync profile has a primary")
            if not isinstance(primary, str) or primary not in seen:
                raise _err(
                    source,
                    "replication.primary",
                    f"unknown replica {primary!r} (known: {', '.join(all_replicas)})",
                )

    timeouts = Timeouts()
    if "timeouts" in top:
        t = _mapping(source, "timeouts", top["timeouts"])
        _unknown_keys(source, "timeouts", t, ("response_s", "connect_s"))
        timeouts = Timeouts(
            response_s=_number(source, "timeouts.response_s", t.get("response_s", 60), 0, 3600),
            connect_s=_number(source, "timeouts.connect_s", t.get("connect_s", 5), 0, 600),
        )

    time_scale = check_time_scale(top.get("time_scale", 1.0), source)
    _check_external(source, top_tls, replica_info, name_paths, profile)

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
