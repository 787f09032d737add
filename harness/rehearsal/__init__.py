"""Rehearsal files: a topology, a workload and a list of steps in YAML — no Python.

    name: site-a-loses-power
    topology: ../topologies/two-sites-async.yaml
    workload: {clients: [vc-a, vc-b], rate_per_s: 20, ops: {get: 0.8, create: 0.2}}
    steps:
      - wait: 3s
      - inject: {fault: site-down, target: site-a, as: power-cut}
      - expect: {failover: {client: vc-a, within: 2s, to_site: site-b}}
      - heal: power-cut
      - expect: {durability: pass, convergence: {within: 10s}}
    seed: 42

`load_rehearsal` validates the whole file before anything starts; every problem is a
`RehearsalError` naming file, line and field: ``site-a-loses-power.yaml: line 7:
steps[2].expect.failover.client: unknown client 'vc-x' (known: vc-a, vc-b)``.
`run_rehearsal` runs a loaded `Rehearsal` on a scenario; the pytest plugin collects the
files like scenarios.

- `fileformat`: every key of the file, its shape, limits and help (also `kmschaos schema`)
- `model`: `Rehearsal`, its steps and `Expectation`s
- `validate` (+ `expectations`): file → `Rehearsal`, or a `RehearsalError`
- `schedule`: what `random` steps draw, and the seed of a run
- `discovery`: which files are rehearsals, where their topology is
- `certificates`: `certificates` steps (planned actions on the PKI, `harness.pki_rotation`)
- `clients`: `restart-client`, `stop-client`, `start-client` steps (a workload client's
  lifecycle) and what followed them
- `admin`: `admin` steps (an administrator's KMIP operation on a replica, directly) and
  the shutdowns that followed them
- `traffic`: the background workload, paused for audits
- `run`: the steps on a `Scenario`: waits, faults, expectations, commands, checkpoints,
  certificate actions, client lifecycle steps
"""

from __future__ import annotations

from harness.rehearsal.discovery import display_path, find_topology, is_rehearsal_file
from harness.rehearsal.fileformat import (
    INJECT_KEYS,
    RANDOM_KEYS,
    RUN_KEYS,
    STEP_KINDS,
    TOP_KEYS,
    WORKLOAD_KEYS,
    rehearsal_schema,
)
from harness.rehearsal.model import (
    AdminStep,
    CertificatesStep,
    CheckpointStep,
    ClientStep,
    Expectation,
    ExpectStep,
    FaultSpec,
    HealStep,
    InjectStep,
    RandomStep,
    Rehearsal,
    RestartClientStep,
    RunStep,
    StartClientStep,
    Step,
    StopClientStep,
    WaitStep,
    WorkloadSpec,
)
from harness.rehearsal.run import (
    RehearsalFailure,
    RehearsalRun,
    TerminalIO,
    client_env,
    env_name,
    run_rehearsal,
)
from harness.rehearsal.schedule import Draw, check_seed_option, resolve_seed
from harness.rehearsal.traffic import Traffic
from harness.rehearsal.validate import RehearsalError, load_rehearsal, parse_rehearsal
from harness.yamlfile import format_duration, parse_duration

__all__ = [
    "INJECT_KEYS",
    "RANDOM_KEYS",
    "RUN_KEYS",
    "STEP_KINDS",
    "TOP_KEYS",
    "WORKLOAD_KEYS",
    "AdminStep",
    "CertificatesStep",
    "CheckpointStep",
    "ClientStep",
    "Draw",
    "ExpectStep",
    "Expectation",
    "FaultSpec",
    "HealStep",
    "InjectStep",
    "RandomStep",
    "Rehearsal",
    "RehearsalError",
    "RehearsalFailure",
    "RehearsalRun",
    "RestartClientStep",
    "RunStep",
    "StartClientStep",
    "Step",
    "StopClientStep",
    "TerminalIO",
    "Traffic",
    "WaitStep",
    "WorkloadSpec",
    "check_seed_option",
    "client_env",
    "display_path",
    "env_name",
    "find_topology",
    "format_duration",
    "is_rehearsal_file",
    "load_rehearsal",
    "parse_duration",
    "parse_rehearsal",
    "rehearsal_schema",
    "resolve_seed",
    "run_rehearsal",
]
