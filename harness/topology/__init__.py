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

The package: `fileformat` (every key, shape and help text: validation and JSON Schema),
`model` (`Topology` and its parts, `TopologyError`), `load` (reading and checking a
file).
"""

from __future__ import annotations

from harness.topology.fileformat import (
    DEFAULT_INTERVAL_MS,
    DEFAULT_POLICY,
    KMIP_PORT,
    MAX_REPLICAS,
    MAX_TIME_SCALE,
    PROFILES,
    TOP_KEYS,
    TOPOLOGY_FILE,
)
from harness.topology.load import (
    check_tls_files,
    load_topology,
    parse_topology,
    topology_from_dict,
    topology_schema,
)
from harness.topology.model import (
    ClientSpec,
    ExternalTarget,
    ReplicaInfo,
    Timeouts,
    TlsPaths,
    Topology,
    TopologyError,
    check_time_scale,
    replica_names,
)

__all__ = [
    "DEFAULT_INTERVAL_MS",
    "DEFAULT_POLICY",
    "KMIP_PORT",
    "MAX_REPLICAS",
    "MAX_TIME_SCALE",
    "PROFILES",
    "TOPOLOGY_FILE",
    "TOP_KEYS",
    "ClientSpec",
    "ExternalTarget",
    "ReplicaInfo",
    "Timeouts",
    "TlsPaths",
    "Topology",
    "TopologyError",
    "check_time_scale",
    "check_tls_files",
    "load_topology",
    "parse_topology",
    "replica_names",
    "topology_from_dict",
    "topology_schema",
]
