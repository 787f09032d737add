"""Load balancers on the docker backend, with a real engine: one HAProxy container per
balancer (labelled, on its site's network, published on the run's loopback /24 only);
PyKMIP's own client creates and gets a key through the balancer's VIP and lands on a
replica behind it; HAProxy's stats show every server checked over KMIP; pause, kill and
start act on the container as the engine sees it; nothing of the run is left after stop.

Skipped when no Docker engine answers or the images are missing, unless
``KMSCHAOS_REQUIRE_DOCKER=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_ready import docker_engine_or_skip, unavailable
from test_balancers import BASE

from harness import images
from harness.cluster.docker_backend import DockerCluster
from harness.cluster.state import ClusterState
from harness.store import StateFolder
from harness.topology import load_topology

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# the topology of tests/test_balancers.py: three replicas behind a kmip-checked lb-a
TOPOLOGY = BASE


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    client = docker_engine_or_skip()
    if images.missing_images(client, balancers=True):
        client.close()
        unavailable(f"image {images.haproxy_image()} not built: run `make images`")
    yield client
    client.close()


def objects(client: Any, run_id: str) -> dict[str, list[str]]:
    flt = {"label": f"kmschaos.run={run_id}"}
    return {
        "containers": sorted(c.name for c in client.containers.list(all=True, filters=flt)),
        "networks": sorted(n.name for n in client.networks.list(filters=flt)),
        "volumes": sorted(v.name for v in client.volumes.list(filters=flt)),
    }


def pykmip(state: ClusterState, client: str, host: str, port: int) -> Any:
    """PyKMIP's ProxyKmipClient with `client`'s config file from the state folder,
    pointed at one address."""
    from kmip.pie.client import ProxyKmipClient

    tls = state.tls
    p = ProxyKmipClient(
        hostname=host,
        port=port,
        cert=tls["cert"],
        key=tls["key"],
        ca=tls["ca"],
        ssl_version="PROTOCOL_SSLv23",
        config_file=str(StateFolder(Path(state.state_dir)).client_conf(client)),
    )
    p.proxy.timeout = 5.0
    p.open()
    return p


def holders_of(state: ClusterState, uid: str) -> list[str]:
    """The replicas whose own store has `uid`, asked at their direct addresses."""
    found = []
    for name, rs in state.replicas.items():
        p = pykmip(state, "vc-a", rs.host, rs.port)
        try:
            if uid in [str(u) for u in p.locate()]:
                found.append(name)
        finally:
            p.close()
    return found


def all_checked_up(cluster: DockerCluster) -> dict[str, tuple[str, str]]:
    return {s: (v.status, v.check_status) for s, v in cluster.balancers.stats("lb-a").items()}


def test_balancer_container_serves_through_its_vip_pauses_kills_starts_and_is_reaped(
    engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmip import enums

    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(tmp_path / "registry"))
    topo_file = tmp_path / "lb.yaml"
    topo_file.write_text(TOPOLOGY)
    cluster = DockerCluster.create(load_topology(topo_file), tmp_path / "state")
    t0 = time.monotonic()
    with cluster:
        print(f"docker cluster with a balancer ready in {time.monotonic() - t0:.1f} s")
        st = cluster.state
        run_id = st.run_id
        lb = st.balancers["lb-a"]
        name = cluster.balancers.container_name("lb-a")

        # HAProxy in its holder's network namespace; the holder on its site's network,
        # published on 127.* only; both labelled
        c = engine.containers.get(name)
        holder = engine.containers.get(cluster.balancers.holder_name("lb-a"))
        for each in (c, holder):
            assert each.labels["kmschaos.run"] == run_id
            assert each.labels["kmschaos.role"] == "balancer"
        assert c.attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}"
        assert list(holder.attrs["NetworkSettings"]["Networks"]) == [cluster.network_name("site-a")]
        published = [
            b["HostIp"]
            for bs in holder.attrs["NetworkSettings"]["Ports"].values()
            for b in bs or []
        ]
        assert published and all(ip == lb.host for ip in published), published
        assert lb.host.startswith("127.") and lb.stats.startswith(f"{lb.host}:")
        assert lb.status == "running"

        # every server checked over KMIP (through the balancer's links) and up
        assert all_checked_up(cluster) == {r: ("UP", "L7OK") for r in ("kms-a", "kms-b", "kms-c")}

        # PyKMIP through the VIP: the client's link to lb-a, then HAProxy, then a link
        before = sum(v.sessions for v in cluster.balancers.stats("lb-a").values())
        vip = next(e for e in st.endpoints("vc-a") if e.replica == "lb-a")
        assert vip.host == lb.client_host
        p = pykmip(st, "vc-a", vip.host, vip.port)
        try:
            uid = p.create(enums.CryptographicAlgorithm.AES, 256)
            key = bytes(p.get(uid).value)
        finally:
            p.close()
        assert len(key) == 32
        assert sum(v.sessions for v in cluster.balancers.stats("lb-a").values()) > before
        served = holders_of(st, uid)
        assert len(served) == 1 and served[0] in ("kms-a", "kms-b", "kms-c"), served

        # pause: the engine says paused; resume: running again
        cluster.balancers.pause("lb-a")
        assert cluster.balancers.observe("lb-a").state == "paused"
        assert engine.containers.get(name).status == "paused"
        assert st.balancers["lb-a"].status == "paused"
        cluster.balancers.resume("lb-a")
        assert cluster.balancers.observe("lb-a").state == "running"

        # kill: the container does not run; start: the same container, checked and ready
        cluster.balancers.kill("lb-a")
        seen = cluster.balancers.observe("lb-a")
        assert seen.state == "stopped" and not cluster.balancers.running("lb-a"), seen
        assert engine.containers.get(name).status == "exited"
        cluster.balancers.start("lb-a")
        assert cluster.balancers.observe("lb-a").state == "running"
        assert st.balancers["lb-a"].status == "running"
        assert all_checked_up(cluster) == {r: ("UP", "L7OK") for r in ("kms-a", "kms-b", "kms-c")}
        p = pykmip(st, "vc-a", vip.host, vip.port)
        try:
            again = p.create(enums.CryptographicAlgorithm.AES, 256)
        finally:
            p.close()
        assert holders_of(st, again)[0] in ("kms-a", "kms-b", "kms-c")
        assert objects(engine, run_id)["containers"]

    assert objects(engine, run_id) == {"containers": [], "networks": [], "volumes": []}
