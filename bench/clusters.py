"""Clusters for the benchmarks, on either backend, and the ways into their replicas:
a replica's direct address, a client's link to it, one long-lived KMIP connection."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from bench import BenchError
from harness.client.operations import empty_client_config, new_pie_client
from harness.client.policies import TlsFiles
from harness.client.transport import Endpoint
from harness.client.walker import VCenterPolicy
from harness.cluster.base import BaseCluster
from harness.topology import Topology

C = TypeVar("C", bound=BaseCluster)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder for one cluster's state (and its clients' config)."""
    with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
        yield Path(d)


@contextlib.contextmanager
def running_cluster(cls: type[C], topo: Topology) -> Iterator[tuple[C, str]]:
    """A started cluster of `cls` (stopped on the way out, whatever happens) and the
    PyKMIP client config file to reach it with."""
    with scratch() as d:
        cluster = cls.create(topo, d / "state")
        with cluster:
            yield cluster, empty_client_config(d / "bench-clients")


def endpoint_of(cluster: BaseCluster, client: str, replica: str) -> Endpoint:
    """`client`'s link to `replica` (through Toxiproxy)."""
    for ep in cluster.state.endpoints(client):
        if ep.replica == replica:
            return ep
    raise BenchError(f"client {client} has no endpoint for {replica}")


def direct_endpoint(cluster: BaseCluster, replica: str) -> Endpoint:
    """`replica`'s own address, no proxy in between."""
    rs = cluster.state.replicas[replica]
    return Endpoint(replica, rs.host, rs.port)


@contextlib.contextmanager
def pie_connection(ep: Endpoint, tls: TlsFiles, conf: str, timeout: float) -> Iterator[Any]:
    """One long-lived PyKMIP `ProxyKmipClient` connection to `ep`, open inside."""
    pie = new_pie_client([ep.host], ep.port, tls.ca, tls.cert, tls.key, conf)
    pie.proxy.timeout = timeout
    pie.open()
    try:
        yield pie
    finally:
        with contextlib.suppress(Exception):
            pie.close()


def create_key(policy: VCenterPolicy, where: str) -> str:
    r = policy.execute("create", None)
    if r.outcome != "ok" or r.value is None or not r.value.key:
        raise BenchError(f"could not create a key on {where}: {r.error}")
    return r.value.key
