"""The kmschaos pytest plugin (entry point `pytest11: kmschaos`): options, markers,
fixtures. Logic lives in the package; this module only wires it.

Options: ``--kms-backend`` (local | docker), ``--kms-time-scale``, ``--kms-report-dir``.
Markers: ``kms_topology(path)`` picks the topology; ``kms_needs(*faults)`` skips a
test, before any cluster starts, when the machine cannot run one of its faults.
Fixtures: ``kms_topology``, ``kms_cluster``, ``kms_history``, ``kms_scenario``,
``kms_faults``, ``kms_client``, ``kms_workload``. Every cluster leases its own
loopback /24, so xdist workers never share addresses, ports or files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.client.failover_client import FailoverClient
from harness.cluster.common import BACKENDS, BaseCluster, cluster_class
from harness.faults import FAULTS, Fault
from harness.history import History
from harness.scenario import Scenario
from harness.toolchain import repo_root
from harness.topology import Topology, TopologyError, load_topology
from harness.workload import Workload

DEFAULT_TOPOLOGY = "one-site.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("kmschaos", "kmschaos: KMS chaos scenarios")
    g.addoption(
        "--kms-backend",
        default=os.environ.get("KMSCHAOS_BACKEND", "local"),
        help="cluster backend for scenarios: local (processes on loopback, the default) or "
        "docker (containers; needs a Docker engine and `make images`)",
    )
    g.addoption(
        "--kms-time-scale",
        type=float,
        default=None,
        help="multiply every client timeout by this (overrides the topology's time_scale; "
        "e.g. 0.05 turns a 60 s response timeout into 3 s)",
    )
    g.addoption(
        "--kms-report-dir",
        default=None,
        help="write each scenario's history.jsonl and outcome.json under this folder",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kms_topology(path): topology file for the scenario (default one-site.yaml)"
    )
    config.addinivalue_line(
        "markers", "kms_needs(*faults): skip before start-up if a fault cannot run here"
    )
    backend = config.getoption("--kms-backend")
    if backend not in BACKENDS:
        raise pytest.UsageError(
            f"--kms-backend {backend}: unknown backend (available: {', '.join(BACKENDS)})"
        )
    if backend == "docker" and not hasattr(config, "workerinput"):
        _check_docker_ready()
    scale = config.getoption("--kms-time-scale")
    if scale is not None and not 0 < scale <= 10:
        raise pytest.UsageError(f"--kms-time-scale {scale}: must be > 0 and <= 10")


def _check_docker_ready() -> None:
    """Fail the whole run at once (not scenario by scenario) when no engine or image."""
    from harness import images
    from harness.cluster.base import ClusterError
    from harness.cluster.docker_backend import docker_client

    try:
        client = docker_client()
        missing = images.missing_images(client)
        client.close()
    except ClusterError as e:
        raise pytest.UsageError(f"--kms-backend docker: {e}") from None
    if missing:
        raise pytest.UsageError(
            f"--kms-backend docker: image(s) {', '.join(missing)} not built: run `make images`"
        )


def _safe(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


def resolve_topology(ref: str, test_file: Path) -> Path:
    p = Path(ref)
    candidates = [p] if p.is_absolute() else []
    candidates += [
        test_file.parent / p,
        test_file.parent / "topologies" / p,
        repo_root() / "scenarios" / "topologies" / p,
        Path.cwd() / p,
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise pytest.UsageError(
        f"{test_file}: kms_topology({ref!r}): no such file (looked in: "
        + ", ".join(str(c.parent) for c in candidates)
        + ")"
    )


@pytest.fixture
def kms_topology(request: pytest.FixtureRequest) -> Topology:
    marker = request.node.get_closest_marker("kms_topology")
    ref = marker.args[0] if marker and marker.args else DEFAULT_TOPOLOGY
    path = resolve_topology(ref, Path(str(request.node.fspath)))
    try:
        topo = load_topology(path)
    except TopologyError as e:
        raise pytest.UsageError(str(e)) from None
    scale = request.config.getoption("--kms-time-scale")
    env_scale = os.environ.get("KMSCHAOS_TIME_SCALE")
    if scale is None and env_scale:
        scale = float(env_scale)
    return topo.with_time_scale(scale) if scale else topo


@pytest.fixture
def kms_report_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    base = request.config.getoption("--kms-report-dir")
    d = Path(base) / "scenarios" / _safe(request.node.nodeid) if base else tmp_path / "report"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def kms_cluster(
    request: pytest.FixtureRequest, kms_topology: Topology, tmp_path: Path
) -> Iterator[BaseCluster]:
    backend = request.config.getoption("--kms-backend")
    cluster = cluster_class(backend).create(kms_topology, tmp_path / "cluster")
    marker = request.node.get_closest_marker("kms_needs")
    for kind in marker.args if marker else ():
        if kind not in FAULTS:
            raise pytest.UsageError(
                f"kms_needs({kind!r}): unknown fault (known: {', '.join(FAULTS)})"
            )
        reason = FAULTS[kind].unsupported_reason(cluster)
        if reason:
            pytest.skip(reason)
    with cluster:
        yield cluster


@pytest.fixture
def kms_history(kms_report_dir: Path, kms_topology: Topology) -> Iterator[History]:
    h = History(
        kms_report_dir / "history.jsonl",
        meta={"topology": kms_topology.name, "time_scale": kms_topology.time_scale},
    )
    yield h
    h.close()


@pytest.fixture
def kms_scenario(
    request: pytest.FixtureRequest,
    kms_cluster: BaseCluster,
    kms_topology: Topology,
    kms_history: History,
    kms_report_dir: Path,
) -> Iterator[Scenario]:
    sc = Scenario(request.node.nodeid, kms_cluster, kms_topology, kms_history, kms_report_dir)
    try:
        yield sc
    finally:
        sc.close()
        for name, v in sc.outcome.verdicts.items():
            request.node.user_properties.append((f"verdict.{name}", v.status))
            request.node.user_properties.append((f"verdict.{name}.summary", v.summary))
        for f in sc.outcome.findings:
            request.node.user_properties.append(("finding", f))
        request.node.user_properties.append(("history", str(kms_report_dir / "history.jsonl")))


class FaultInjector:
    """Injects faults for one test; everything it injected is healed at teardown."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario

    def inject(self, kind: str, target: str, **params: Any) -> Fault:
        return self._scenario.fault(kind, target, **params).inject()

    def __call__(self, kind: str, target: str, **params: Any) -> Fault:
        """A fault not yet injected, for use as a context manager."""
        return self._scenario.fault(kind, target, **params)


@pytest.fixture
def kms_faults(kms_scenario: Scenario) -> FaultInjector:
    return FaultInjector(kms_scenario)


@pytest.fixture
def kms_client(kms_scenario: Scenario) -> Callable[..., FailoverClient]:
    return kms_scenario.client


@pytest.fixture
def kms_workload(kms_scenario: Scenario) -> Callable[..., Workload]:
    return kms_scenario.workload


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for key, value in item.user_properties:
            if key == "history":
                report.sections.append(("kmschaos", f"history: {value}"))
