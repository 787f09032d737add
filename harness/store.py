"""Where things are written: every path of a run's report folder, a matrix's folder and a
cluster's state folder comes from here (after Jepsen's ``store.clj``); no other module
spells those names.

    <report dir>/                       kmschaos run, the pytest plugin
        summary.json  junit.xml  history.jsonl (every scenario's, tagged)  report.html
        scenarios/<scenario id, made safe>/  history.jsonl  outcome.json  external-keys.json
    <matrix dir>/                       kmschaos matrix
        matrix.json  matrix.md  .probe/
        cells/<fault>-<policy>/  spec.json  cell.json  cell.log  history.jsonl
                                 outcome.json  cluster/ (a state folder)
    <state dir>/                        a cluster (kmschaos up, a test's cluster)
        state.json  state.lock  history.jsonl (kmschaos inject/heal)  status.json
        toxiproxy.log  external-keys.json  external-keys.lock
        faults/<fault id>.json  pki/  clients/<client>.pykmip.conf  clients/pykmip-empty.conf
        replicas/<replica>/  port  stdout.log  peers.json  and the replica program's own
                             files (harness.replica): pykmip-server.log  kms.sqlite
                             replication.sqlite
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.replica import DATABASES, SERVER_LOG
from harness.replica.peers import PEERS_FILE

HISTORY = "history.jsonl"
OUTCOME = "outcome.json"
LEDGER = "external-keys.json"  # the keys a run made on external targets
EMPTY_CLIENT_CONF = "pykmip-empty.conf"  # in a state folder's clients/: PyKMIP's own


def safe_name(text: str) -> str:
    """A scenario id (a pytest node id) as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:150]


@dataclass(frozen=True)
class ScenarioFolder:
    """One scenario's files."""

    root: Path

    @property
    def history(self) -> Path:
        return self.root / HISTORY

    @property
    def outcome(self) -> Path:
        return self.root / OUTCOME

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER


@dataclass(frozen=True)
class ReportFolder:
    """What `kmschaos run` (and pytest with ``--kms-report-dir``) writes."""

    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def junit(self) -> Path:
        return self.root / "junit.xml"

    @property
    def history(self) -> Path:
        """Every scenario's history in one file, each line tagged with its scenario."""
        return self.root / HISTORY

    @property
    def page(self) -> Path:
        return self.root / "report.html"

    @property
    def scenarios(self) -> Path:
        return self.root / "scenarios"

    def scenario(self, scenario_id: str) -> ScenarioFolder:
        return ScenarioFolder(self.scenarios / safe_name(scenario_id))

    def scenario_folders(self) -> Iterator[ScenarioFolder]:
        """Every scenario folder present, by name."""
        if self.scenarios.is_dir():
            for p in sorted(self.scenarios.iterdir()):
                if p.is_dir():
                    yield ScenarioFolder(p)


@dataclass(frozen=True)
class CellFolder(ScenarioFolder):
    """One matrix cell: a scenario folder with the cell's spec, result, log and cluster."""

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def result(self) -> Path:
        return self.root / "cell.json"

    @property
    def log(self) -> Path:
        return self.root / "cell.log"

    @property
    def cluster(self) -> Path:
        return self.root / "cluster"


@dataclass(frozen=True)
class MatrixFolder:
    """What `kmschaos matrix` writes."""

    root: Path

    @property
    def json(self) -> Path:
        return self.root / "matrix.json"

    @property
    def markdown(self) -> Path:
        return self.root / "matrix.md"

    @property
    def cells(self) -> Path:
        return self.root / "cells"

    @property
    def probe(self) -> Path:
        """The state folder of the cluster made (not started) to ask what can run."""
        return self.root / ".probe"

    def cell(self, cell_id: str) -> CellFolder:
        return CellFolder(self.cells / cell_id)


@dataclass(frozen=True)
class StateFolder:
    """A cluster's state folder: what another process needs to act on the cluster."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "state.lock"

    @property
    def history(self) -> Path:
        """What `kmschaos inject` / `heal` record."""
        return self.root / HISTORY

    @property
    def status(self) -> Path:
        """The last `status --json` document written for a rehearsal's `run` step."""
        return self.root / "status.json"

    @property
    def toxiproxy_log(self) -> Path:
        return self.root / "toxiproxy.log"

    @property
    def spawner(self) -> Path:
        """The replica spawner's folder (`harness.replica.spawner`): its working folder
        (a clock without offset) and its log."""
        return self.root / "spawner"

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    @property
    def ledger_lock(self) -> Path:
        return self.root / "external-keys.lock"

    @property
    def faults(self) -> Path:
        """One ``<fault id>.json`` per active fault (`harness.faults.base`)."""
        return self.root / "faults"

    def fault(self, fault_id: str) -> Path:
        return self.faults / f"{fault_id}.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    def balancer(self, name: str) -> Path:
        """A load balancer's folder: its HAProxy configuration, log, client PEM."""
        return self.root / "balancers" / name

    def client_conf(self, client: str) -> Path:
        """The ready-made PyKMIP config file of a client (`status --json`)."""
        return self.clients / f"{client}.pykmip.conf"

    def replica(self, name: str) -> ReplicaFolder:
        return ReplicaFolder(self.root / "replicas" / name)


@dataclass(frozen=True)
class ReplicaFolder:
    """A replica's data folder: the replica program's own files (`harness.replica`) and
    what a backend keeps beside them."""

    root: Path

    @property
    def port_file(self) -> Path:
        """Where the program writes the ports it bound (local backend)."""
        return self.root / "port"

    @property
    def stdout_log(self) -> Path:
        """The program's stdout and stderr (local backend)."""
        return self.root / "stdout.log"

    @property
    def server_log(self) -> Path:
        return self.root / SERVER_LOG

    @property
    def peers(self) -> Path:
        return self.root / PEERS_FILE

    @property
    def control(self) -> Path:
        """The folder of the program's live controls (`harness.cluster.controls`); the
        docker backend also keeps the replica's certificates and peers.json there and
        mounts it at /config."""
        return self.root / "config"

    @property
    def databases(self) -> list[Path]:
        """The databases, with SQLite's journal files: what `wipe` deletes."""
        return [
            self.root / f"{db}{suffix}"
            for db in DATABASES
            for suffix in ("", "-journal", "-wal", "-shm")
        ]


__all__ = [
    "EMPTY_CLIENT_CONF",
    "HISTORY",
    "LEDGER",
    "OUTCOME",
    "CellFolder",
    "MatrixFolder",
    "ReplicaFolder",
    "ReportFolder",
    "ScenarioFolder",
    "StateFolder",
    "safe_name",
]
