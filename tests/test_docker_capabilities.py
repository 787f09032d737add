"""Docker backend capabilities, without an engine: what the engine's port publishing
lets a fault promise is decided before a run, with the reason."""

from __future__ import annotations

import pytest

from harness.cluster import docker_backend
from harness.cluster.base import CAP_RESETS, ClusterState
from harness.cluster.docker_backend import DockerCluster
from harness.faults.refuse import Refuse
from harness.faults.reset import Reset


def cluster(monkeypatch: pytest.MonkeyPatch, userland: bool) -> DockerCluster:
    monkeypatch.setattr(docker_backend, "userland_proxy", lambda: userland)
    state = ClusterState(
        run_id="kctest",
        backend="docker",
        state_dir="/nonexistent",
        subnet="127.1.2",
        topology={},
        topology_source="t.yaml",
        detached=False,
        tls={},
    )
    return DockerCluster(state)


def test_reset_is_refused_up_front_behind_docker_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster(monkeypatch, userland=True)
    assert CAP_RESETS not in c.capabilities
    reason = Reset.unsupported_reason(c)
    assert reason is not None and "docker-proxy" in reason and "--userland-proxy=false" in reason
    assert Refuse.unsupported_reason(c) is None  # other link faults are unaffected


def test_reset_runs_when_ports_are_published_by_dnat(monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster(monkeypatch, userland=False)
    assert CAP_RESETS in c.capabilities
    assert Reset.unsupported_reason(c) is None


def test_names_derive_from_the_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster(monkeypatch, userland=False)
    assert c.container_name("kms-a") == "kmschaos-kctest-kms-a"
    assert c.holder_name("kms-a") == "kmschaos-kctest-kms-a-net"
    assert c.volume_name("kms-a") == "kmschaos-kctest-kms-a-data"
    assert c.network_name("site-a") == "kmschaos-kctest-site-a"
    assert c.toxiproxy_name == "kmschaos-kctest-toxiproxy"
