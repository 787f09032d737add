"""The kmschaos pytest plugin (entry point `pytest11: kmschaos`): options, markers,
fixtures. Logic lives in the package; this module only wires it.

Options: ``--kms-backend`` (local | docker | swarm; default ``$KMSCHAOS_BACKEND``),
``--kms-time-scale`` (default ``$KMSCHAOS_TIME_SCALE``), ``--kms-report-dir``,
``--kms-seed`` and ``--kms-interactive`` (rehearsals); their help texts and checks are
`harness.options`' and `harness.topology.check_time_scale`.
Rehearsal files (``*.yaml`` in a ``rehearsals/`` folder, or any YAML file with a
top-level ``steps:`` named on the command line) are collected as one test each, run by
`harness.rehearsal.run` on the same fixtures as Python scenarios.
Markers: ``kms_topology(path)`` picks the topology; ``kms_needs(*faults)`` skips a
test, before any cluster starts, when the machine cannot run one of its faults;
``kms_alone(reason)`` marks a scenario that needs the machine to itself (40 replicas on
2 cores): skipped, with the reason, unless ``--kms-alone`` is given (`make scale`, and
`make test` after the suite, run those alone).
Fixtures: ``kms_topology``, ``kms_cluster``, ``kms_history``, ``kms_scenario``,
``kms_faults``, ``kms_client``, ``kms_workload``. Every cluster leases its own
loopback /24, so xdist workers never share addresses, ports or files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import options
from harness.backends import BACKENDS, cluster_class
from harness.client.failover_client import FailoverClient
from harness.cluster.base import BaseCluster
from harness.external import ExternalRefused, export_ledger
from harness.faults import FAULTS, Fault
from harness.history import History
from harness.rehearsal import (
    Rehearsal,
    RehearsalError,
    RehearsalFailure,
    TerminalIO,
    check_seed_option,
    display_path,
    is_rehearsal_file,
    load_rehearsal,
    resolve_seed,
    run_rehearsal,
)
from harness.scenario import Scenario
from harness.store import ReportFolder, ScenarioFolder
from harness.toolchain import repo_root
from harness.topology import Topology, TopologyError, check_time_scale, load_topology
from harness.workload import Workload

DEFAULT_TOPOLOGY = "one-site.yaml"
TIME_SCALE = pytest.StashKey[float | None]()  # the run's time scale override, checked


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("kmschaos", "kmschaos: KMS chaos scenarios")
    g.addoption(
        "--kms-backend",
        default=options.env_backend(),
        metavar="NAME",
        help=f"{options.BACKEND_HELP}; default ${options.BACKEND_ENV} or local",
    )
    g.addoption(
        "--kms-time-scale",
        type=float,
        default=None,
        metavar="S",
        help=f"{options.TIME_SCALE_HELP}; default ${options.TIME_SCALE_ENV}",
    )
    g.addoption(
        "--kms-report-dir",
        default=None,
        metavar="DIR",
        help="where each scenario's history and outcome go (scenarios/<id>/ below DIR)",
    )
    g.addoption(
        "--kms-allow-external",
        action="store_true",
        default=False,
        help="allow topologies with external targets (a real KMS kmschaos does not "
        "start; the topology must also say allow_external: true)",
    )
    g.addoption(
        "--kms-keep-keys",
        action="store_true",
        default=False,
        help="keep the keys scenarios create on external targets (default: destroyed "
        "when the cluster stops; listed in external-keys.json)",
    )
    g.addoption(
        "--kms-seed",
        default=None,
        help="seed of rehearsals (random fault schedules, workload mix): a whole number, or "
        "`random` for a fresh one; default: each rehearsal's `seed`",
    )
    g.addoption(
        "--kms-alone",
        action="store_true",
        default=False,
        help="run the scenarios marked kms_alone (they need the machine to themselves: "
        "run them without other tests, e.g. make scale); skipped otherwise",
    )
    g.addoption(
        "--kms-interactive",
        action="store_true",
        default=False,
        help="rehearsal checkpoints wait for Enter (one process: not with -n)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kms_topology(path): topology file for the scenario (default one-site.yaml)"
    )
    config.addinivalue_line(
        "markers", "kms_needs(*faults): skip before start-up if a fault cannot run here"
    )
    config.addinivalue_line(
        "markers", "kms_alone(reason): needs the machine to itself; runs only with --kms-alone"
    )
    backend = config.getoption("--kms-backend")
    if backend not in BACKENDS:
        raise pytest.UsageError(
            f"--kms-backend {backend}: unknown backend (available: {', '.join(BACKENDS)})"
        )
    if backend != "local" and not hasattr(config, "workerinput"):
        # the whole run fails at once (not scenario by scenario): no engine, no images
        reason = cluster_class(backend).unavailable_reason()
        if reason:
            raise pytest.UsageError(f"--kms-backend {backend}: {reason}")
    config.stash[TIME_SCALE] = _time_scale(config)
    try:
        check_seed_option(config.getoption("--kms-seed"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    workers = getattr(config.option, "numprocesses", None)
    if config.getoption("--kms-interactive") and (workers or hasattr(config, "workerinput")):
        raise pytest.UsageError(
            f"--kms-interactive with -n {workers}: checkpoints wait for Enter on this "
            "terminal, which xdist workers do not have; run with one process (no -n)"
        )


def _time_scale(config: pytest.Config) -> float | None:
    """--kms-time-scale, else $KMSCHAOS_TIME_SCALE, checked like a topology's own."""
    scale = config.getoption("--kms-time-scale")
    flag = "--kms-time-scale"
    try:
        if scale is None:
            scale, flag = options.env_time_scale(), f"${options.TIME_SCALE_ENV}"
        return None if scale is None else check_time_scale(scale, flag)
    except (ValueError, TopologyError) as e:
        raise pytest.UsageError(str(e)) from None


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
    scale = request.config.stash.get(TIME_SCALE, None)
    return topo.with_time_scale(scale) if scale is not None else topo


@pytest.fixture
def kms_report_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    base = request.config.getoption("--kms-report-dir")
    d = ReportFolder(Path(base)).scenario(request.node.nodeid).root if base else tmp_path / "report"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def kms_cluster(
    request: pytest.FixtureRequest,
    kms_topology: Topology,
    kms_report_dir: Path,
    tmp_path: Path,
) -> Iterator[BaseCluster]:
    alone = request.node.get_closest_marker("kms_alone")
    if alone is not None and not request.config.getoption("--kms-alone"):
        why = alone.args[0] if alone.args else "it needs the machine to itself"
        pytest.skip(f"{why}; run it alone: make scale (or pytest --kms-alone FILE)")
    backend = request.config.getoption("--kms-backend")
    try:
        cluster = cluster_class(backend).create(
            kms_topology,
            tmp_path / "cluster",
            allow_external=request.config.getoption("--kms-allow-external"),
            keep_keys=request.config.getoption("--kms-keep-keys"),
        )
    except (ExternalRefused, TopologyError) as e:  # refused before anything started
        pytest.fail(str(e), pytrace=False)
    marker = request.node.get_closest_marker("kms_needs")
    for kind in marker.args if marker else ():
        if kind not in FAULTS:
            raise pytest.UsageError(
                f"kms_needs({kind!r}): unknown fault (known: {', '.join(FAULTS)})"
            )
        reason = FAULTS[kind].unsupported_reason(cluster)
        if reason:
            pytest.skip(reason)
    try:
        with cluster:
            yield cluster
    finally:  # the keys made on external targets, for the report
        export_ledger(Path(cluster.state.state_dir), kms_report_dir)


@pytest.fixture
def kms_history(kms_report_dir: Path, kms_topology: Topology) -> Iterator[History]:
    h = History(
        ScenarioFolder(kms_report_dir).history,
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
        history = ScenarioFolder(kms_report_dir).history
        request.node.user_properties.append(("history", str(history)))


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


# ---- rehearsal files ---------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    explicit = parent.session.isinitpath(file_path)
    if not is_rehearsal_file(file_path, explicit=explicit, root=parent.config.rootpath):
        return None
    try:
        file_path.relative_to(parent.config.rootpath)
    except ValueError:
        # a user's own file outside the project: pytest would name it "" (so the test
        # became "::name"); name it by its path as the user sees it
        return RehearsalFile.from_parent(parent, path=file_path, nodeid=display_path(file_path))
    return RehearsalFile.from_parent(parent, path=file_path)


class RehearsalFile(pytest.File):
    """A rehearsal YAML file: one test. An invalid file is a one-line collection error."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            rehearsal = load_rehearsal(self.path)
        except RehearsalError as e:
            raise self.CollectError(str(e)) from None
        yield RehearsalItem.from_parent(
            self, name=rehearsal.name, callobj=_rehearsal_test(rehearsal)
        )


def _rehearsal_test(rehearsal: Rehearsal) -> Callable[..., None]:
    @pytest.mark.kms_topology(str(rehearsal.topology_path))
    @pytest.mark.kms_needs(*rehearsal.fault_kinds())
    def rehearse(kms_scenario: Scenario, pytestconfig: pytest.Config) -> None:
        run_rehearsal(
            rehearsal,
            kms_scenario,
            seed=resolve_seed(pytestconfig.getoption("--kms-seed"), rehearsal.seed),
            io=TerminalIO(pytestconfig.pluginmanager.getplugin("capturemanager")),
            interactive=pytestconfig.getoption("--kms-interactive"),
        )

    return rehearse


class RehearsalItem(pytest.Function):
    """A rehearsal run on the `kms_scenario` fixture, like a Python scenario."""

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"rehearsal {self.name}"

    def repr_failure(  # type: ignore[override]  # as pytest's Function
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> Any:
        if isinstance(excinfo.value, RehearsalFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)
