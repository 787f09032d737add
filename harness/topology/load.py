"""Reading a topology file: YAML with lines (`harness.yamlfile`), then every field
checked against the declarations of `harness.topology.fileformat`, in file order. Every
problem is a `TopologyError` naming the file and the field (its line as an attribute).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.client.policy_spec import POLICIES
from harness.topology.fileformat import (
    BALANCER,
    BALANCER_NAME,
    CLIENT,
    CLIENT_NAME,
    DEFAULT_INTERVAL_MS,
    DEFAULT_POLICY,
    EXTERNAL,
    KMIP_PORT,
    KMIP_VERSION,
    MAX_BALANCERS,
    MAX_REPLICAS,
    PORT,
    REPLICA,
    REPLICA_NAME,
    REPLICATION,
    SITE,
    SITE_NAME,
    TIME_SCALE,
    TIMEOUTS,
    TLS,
    TLS_KEYS,
    TLS_ROLE,
    TOPOLOGY_FILE,
)
from harness.topology.model import (
    BalancerSpec,
    ClientSpec,
    ExternalTarget,
    ReplicaInfo,
    Timeouts,
    TlsPaths,
    Topology,
    TopologyError,
)
from harness.topology.policy_reader import read_policy
from harness.yamlfile import (
    NAME_KINDS,
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

        balancers = (
            self.balancers(top["load_balancers"], sites, seen) if "load_balancers" in top else {}
        )
        servers = {**seen, **{n: b.site for n, b in balancers.items()}}

        clients_y = self.required(top, root, "clients", "add at least one client with its site")
        clients_raw = self.mapping(clients_y)
        if not clients_raw:
            raise self.problem(clients_y, "no clients; add at least one client with its site")
        clients = {
            cname: self.client(cname, client_y, sites, seen, servers)
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
            load_balancers=balancers,
        )

    def balancers(
        self, y: Y, sites: dict[str, tuple[str, ...]], seen: dict[str, str]
    ) -> dict[str, BalancerSpec]:
        """`load_balancers`: each on a known site, in front of known replicas."""
        out: dict[str, BalancerSpec] = {}
        raw = self.mapping(y)
        if len(raw) > MAX_BALANCERS:
            raise self.problem(y, f"{len(raw)} load balancers; at most {MAX_BALANCERS}")
        for name, lb_y in raw.items():
            self.key(lb_y, name, BALANCER_NAME)
            if name in seen:
                raise self.problem(
                    lb_y,
                    f"'{name}' is a replica's name already; give the balancer its own",
                    at_key=True,
                )
            body = self.mapping(lb_y, BALANCER)
            site_y = self.required(body, lb_y, "site", f"name its site ({', '.join(sites)})")
            site = self.choice(site_y, sites, "site")
            replicas: list[str] = []
            for item in self.replica_list(body, lb_y, "replicas"):
                r = self.choice(item, seen, "replica")
                if r in replicas:
                    raise self.problem(item, f"replica '{r}' listed twice")
                replicas.append(r)
            values = {
                k: self.take(body[k], BALANCER.shape(k))
                for k in ("check", "interval_ms", "fall", "rise", "balance", "idle_timeout_s")
                if k in body
            }
            out[name] = BalancerSpec(name, site, tuple(replicas), **values)
        return out

    def client(
        self,
        cname: str,
        y: Y,
        sites: dict[str, tuple[str, ...]],
        seen: dict[str, str],
        servers: dict[str, str],
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
            what = "replica or load balancer" if len(servers) > len(seen) else "replica"
            for item in self.replica_list(body, y, "order"):
                r = self.choice(item, servers, what)
                if r in order:
                    raise self.problem(item, f"{what} '{r}' listed twice")
                order.append(r)
        else:
            order = [*sites[csite], *(r for r in seen if seen[r] != csite)]
        policy = POLICIES[DEFAULT_POLICY]
        if "policy" in body:
            policy = read_policy(self, body["policy"], seen)
        if policy.groups:
            members = [m for g in policy.groups for m in g.members]
            if "order" in body and list(order) != members:
                raise self.problem(
                    body["order"],
                    f"the policy's groups give the order [{', '.join(members)}]; give it "
                    "once: remove `order` or make it the groups' members in order",
                )
            order = members
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
        versions = self.kmip_versions(body["kmip_versions"]) if "kmip_versions" in body else None
        return ReplicaInfo(name, "", host, encrypted_by, external, tls, versions), name_y

    def kmip_versions(self, y: Y) -> tuple[str, ...]:
        """A replica's `kmip_versions`: known versions, at least one, each once."""
        out: list[str] = []
        for item in self.items(y, what="KMIP versions"):
            version = self.take(item, KMIP_VERSION)
            if version in out:
                raise self.problem(item, f"KMIP version {version} listed twice")
            out.append(version)
        return tuple(out)

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
                    f"tls.{k} ({TLS_ROLE[k]})",
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
