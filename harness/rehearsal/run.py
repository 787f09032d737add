"""Running a loaded rehearsal on a scenario's cluster, history and report.

The file's workload runs in the background from before the first step to the end; the
steps run one after another:

- ``wait`` holds for wall-clock time as written — not multiplied by --kms-time-scale:
  waits are the rehearsal's own pacing. Client timeouts follow the time scale as in
  every scenario, so write waits and ``within`` bounds for the scale you run at.
- ``inject`` / ``heal`` / ``random`` use the faults of `harness.faults` (healed in
  ``finally`` and at teardown whatever happens).
- ``expect`` runs checkers over the history recorded so far. A failover expectation
  first waits (a condition with a deadline) for the clients to be served elsewhere;
  durability and convergence pause the workload while the auditor reads every replica.
  Every verdict goes into the scenario's outcome, under the checker's name (the verdict
  table) and under ``steps[i].<checker>``; one that differs from its expectation fails
  the rehearsal with the file, line and step.
- ``run`` starts a shell command with the cluster's endpoints in its environment.
- ``checkpoint`` prints a message past pytest's capture; interactive, it waits for Enter.
- ``certificates`` performs a planned operator action on the cluster's PKI
  (`harness.pki_rotation`); whatever the actions changed is restored in ``finally``,
  after the workload stopped, whatever happens.
- ``restart-client`` / ``stop-client`` / ``start-client`` act on every instance of a
  workload client (`harness.rehearsal.clients`); what followed is measured at the end.
- ``admin`` runs an administrator's KMIP operation directly on a replica
  (`harness.rehearsal.admin`); a client's shutdown over its master key is measured.

Every failure names the seed, so a run is replayed exactly with ``--kms-seed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from harness import registry
from harness.admin import AdminError
from harness.checkers import CHECKERS, Verdict
from harness.checkers.failover import judge_failover
from harness.cluster.base import ClusterError
from harness.faults import Fault, FaultError, active_fault_records
from harness.pki_rotation import PkiRotation, RotationError
from harness.rehearsal.admin import AdminActions
from harness.rehearsal.certificates import perform
from harness.rehearsal.clients import ClientLifecycle, ClientStepError
from harness.rehearsal.model import (
    AdminStep,
    CertificatesStep,
    CheckpointStep,
    ClientStep,
    Expectation,
    ExpectStep,
    HealStep,
    InjectStep,
    RandomStep,
    Rehearsal,
    RunStep,
    Step,
    WaitStep,
)
from harness.rehearsal.schedule import Draw
from harness.rehearsal.traffic import Traffic
from harness.scenario import Scenario, ScenarioError
from harness.store import StateFolder
from harness.wait import WaitTimeout, wait_until
from harness.yamlfile import format_duration

OUTPUT_NOTE_CHARS = 4000  # of each stream of a `run` step, kept in the history


class RehearsalFailure(ScenarioError):
    """A step of a rehearsal failed; the message names file, line, step and seed."""


# ---- talking to the person running it -------------------------------------------------


class TerminalIO:
    """Messages for the person at the terminal, past pytest's output capture (given
    its `capturemanager` plugin); `pause` waits for Enter, releasing stdin too."""

    def __init__(self, capture_manager: Any = None) -> None:
        self._capture = capture_manager

    @contextlib.contextmanager
    def _terminal(self, stdin: bool) -> Iterator[None]:
        if self._capture is None:
            yield
            return
        with self._capture.global_and_fixture_disabled():
            if stdin:  # the context above leaves stdin captured; resumed on its exit
                self._capture.suspend_global_capture(in_=True)
            yield

    def show(self, text: str) -> None:
        with self._terminal(stdin=False):
            print(text, flush=True)

    def pause(self, prompt: str) -> None:
        with self._terminal(stdin=True):
            try:
                input(prompt)
            except EOFError:
                print("(no input: continuing)", flush=True)


# ---- the environment of a `run` step ----------------------------------------------------


def env_name(client: str) -> str:
    """A client's name as it appears in variable names: vc-a -> VC_A."""
    return re.sub(r"[^A-Za-z0-9]", "_", client).upper()


def client_env(status: dict[str, Any], status_path: Path) -> dict[str, str]:
    """The variables a `run` step's command gets, from a `status --json` document
    (written at `status_path`)."""
    tls = status["tls"]
    env = {
        "KMSCHAOS_STATUS_JSON": str(status_path),
        "KMSCHAOS_STATE_DIR": str(status["state_dir"]),
        "KMSCHAOS_CA": str(tls["ca"]),
        "KMSCHAOS_CERT": str(tls["cert"]),
        "KMSCHAOS_KEY": str(tls["key"]),
    }
    for name, c in status["clients"].items():
        prefix = f"KMSCHAOS_CLIENT_{env_name(name)}"
        env[f"{prefix}_HOSTS"] = str(c["hosts"])
        env[f"{prefix}_PORT"] = str(c["port"])
        if c.get("pykmip_conf"):
            env[f"{prefix}_PYKMIP_CONF"] = str(c["pykmip_conf"])
    return env


def _tail(data: bytes, limit: int = OUTPUT_NOTE_CHARS) -> str:
    text = data.decode("utf-8", errors="replace").rstrip()
    return text if len(text) <= limit else "…" + text[-limit:]


# ---- the run ---------------------------------------------------------------------------


class RehearsalRun:
    """One rehearsal on one scenario: steps in order, verdicts into its outcome."""

    def __init__(
        self,
        rehearsal: Rehearsal,
        scenario: Scenario,
        *,
        seed: int,
        io: TerminalIO | None = None,
        interactive: bool = False,
    ) -> None:
        self.r = rehearsal
        self.sc = scenario
        self.seed = seed
        self.io = io or TerminalIO()
        self.interactive = interactive
        self.schedule = rehearsal.schedule(seed)
        self.traffic = Traffic(scenario, rehearsal.workload, seed)
        self.injected: list[Fault] = []
        self.by_step: dict[int, list[Fault]] = {}
        self.by_name: dict[str, list[Fault]] = {}
        self.drawn: list[str] = []  # schedule lines of the random steps begun
        self.pki: PkiRotation | None = None  # made by the first `certificates` step
        self.lifecycle = ClientLifecycle(scenario, self.traffic.stopped)
        self.admin = AdminActions(scenario)
        self._clock = threading.Event()  # never set: waits are durations, not conditions
        self.figures: dict[str, Any] = {
            "file": rehearsal.source,
            "seed": seed,
            "steps": len(rehearsal.steps),
            "expectations": [],
            "schedule": {},
            "runs": [],
            # every deliberate wait (`wait`, a random draw's hold and gap, a certificates
            # step's pause) as [start, start + seconds] on the history's clock
            "holds": [],
        }

    def run(self) -> None:
        self.sc.outcome.figures["rehearsal"] = self.figures
        self.sc.note(f"rehearsal {self.r.name} ({self.r.source}), seed {self.seed}")
        try:
            self.traffic.start()
            for step in self.r.steps:
                self._step(step)
        finally:
            self.traffic.stop()
            if self.lifecycle.done:
                self.figures["clients"] = self.lifecycle.figures()
            if self.admin.done:
                self.figures["admin"] = self.admin.figures()
            self._restore_certificates()
        self._judge_fault_effect()
        self.sc.note(f"rehearsal {self.r.name} done")

    def _judge_fault_effect(self) -> None:
        """Every fault the rehearsal injected must have had its effect (as in a scenario):
        `fault_effect` is expected to pass unless an `expect` step said otherwise."""
        if not self.injected or "fault_effect" in self.sc.outcome.expected:
            return
        v = self.sc.check(include=("fault_effect",))["fault_effect"]
        if v.status == "unknown":  # nothing could tell: said in the verdict, not judged
            return
        self.sc.outcome.expected["fault_effect"] = "pass"
        if v.status == "fail":
            raise RehearsalFailure(
                f"{self.r.source}: fault_effect: expected pass, got fail: {v.summary}\n"
                + self._replay()
            )

    # ---- steps -------------------------------------------------------------------------

    def _step(self, step: Step) -> None:
        self.sc.note(f"{step.path} (line {step.line}): {step.describe()}")
        try:
            if isinstance(step, WaitStep):
                self._hold(step.seconds)
            elif isinstance(step, InjectStep):
                self._inject(step)
            elif isinstance(step, HealStep):
                self._heal(step)
            elif isinstance(step, ExpectStep):
                self._expect(step)
            elif isinstance(step, RunStep):
                self._run(step)
            elif isinstance(step, CheckpointStep):
                self._checkpoint(step)
            elif isinstance(step, RandomStep):
                self._random(step)
            elif isinstance(step, CertificatesStep):
                self._certificates(step)
            elif isinstance(step, ClientStep):
                self.lifecycle.perform(step)
            elif isinstance(step, AdminStep):
                self.admin.perform(step)
            else:  # pragma: no cover - the loader makes only the kinds above
                raise TypeError(f"unknown step {step!r}")
        except RehearsalFailure:
            raise
        except (
            FaultError,
            ClusterError,
            RotationError,
            WaitTimeout,
            OSError,
            subprocess.SubprocessError,
            ClientStepError,
            AdminError,
        ) as e:
            raise self.failure(step.line, f"{step.path}.{step.kind}", str(e)) from e
        except Exception as e:
            e.add_note(f"during {self.r.source}: line {step.line}: {step.path} ({step.kind})")
            e.add_note(self._replay())
            raise

    def _hold(self, seconds: float) -> None:
        t = time.monotonic()
        self.figures["holds"].append([t, t + seconds])
        self._clock.wait(seconds)

    def _inject(self, step: InjectStep) -> None:
        faults = [self.sc.fault(f.kind, f.target, **dict(f.params)) for f in step.faults]
        self.by_step[step.index] = faults
        if step.name:
            self.by_name[step.name] = faults
        for f in faults:
            self.injected.append(f)
            f.inject()

    def _heal(self, step: HealStep) -> None:
        if step.names is None:
            chosen = list(self.injected)
        else:
            chosen = [f for n in step.names for f in self.by_name.get(n, [])]
        for f in chosen:
            f.heal()

    def _checkpoint(self, step: CheckpointStep) -> None:
        self.io.show(f"[{self.r.name}] checkpoint ({step.path}, line {step.line}): {step.message}")
        if self.interactive:
            self.io.pause("  press Enter to go on with the rehearsal ")
            self.sc.note(f"{step.path}: continued")

    def _random(self, step: RandomStep) -> None:
        draws = self.schedule[step.index]
        lines = [f"{i}. {d.describe()}" for i, d in enumerate(draws, 1)]
        head = f"{step.path} (line {step.line}) random schedule, seed {self.seed}"
        self.drawn.append(f"{head}: " + "; ".join(lines))
        self.figures["schedule"][step.path] = [d.to_dict() for d in draws]
        self.sc.note(f"{head}: " + "; ".join(lines))
        self.io.show(f"[{self.r.name}] {head}:\n  " + "\n  ".join(lines))
        for d in draws:
            self._draw(d)

    def _draw(self, d: Draw) -> None:
        fault = self.sc.fault(d.kind, d.target, **dict(d.params))
        self.injected.append(fault)
        try:
            fault.inject()
            self._hold(d.hold_s)
        finally:
            fault.heal()
        self._hold(d.gap_s)

    # ---- certificates ------------------------------------------------------------------

    def _certificates(self, step: CertificatesStep) -> None:
        if self.pki is None:
            self.pki = PkiRotation(self.sc.cluster, self.sc.note, self.sc.finding)
            self.figures["certificates"] = self.pki.figures
        perform(self.pki, step, self._hold)

    def _restore_certificates(self) -> None:
        """Undo every certificate action; failing to is the rehearsal's failure (chained
        to the one already raised, if any)."""
        if self.pki is None or not self.pki.changed:
            return
        self.sc.note("certificates: restoring the cluster's own")
        try:
            self.pki.restore()
        except (RotationError, ClusterError, WaitTimeout, OSError) as e:
            raise RehearsalFailure(
                f"{self.r.source}: the cluster's certificates could not be restored: {e}"
            ) from e

    # ---- expect ------------------------------------------------------------------------

    def _expect(self, step: ExpectStep) -> None:
        judged: list[tuple[Expectation, Verdict]] = []
        for e in step.expectations:
            if not CHECKERS[e.checker].needs_audit:
                judged.append((e, self._verdict(e)))
        audited = [e for e in step.expectations if CHECKERS[e.checker].needs_audit]
        if audited:
            with self.traffic.paused():
                self.sc.audit_until_converged(self._audit_deadline(audited))
                judged += [(e, self._verdict(e)) for e in audited]
        problems = []
        for e, v in judged:
            self._record(step, e, v)
            if v.status != e.want:
                detail = "".join(f"\n    {d}" for d in v.details[:9] if d != v.summary)
                problems.append(
                    f"{self.r.source}: line {e.line}: {e.path}: expected {e.want}, got "
                    f"{v.status}: {v.summary}{detail}"
                )
        if problems:
            raise RehearsalFailure("\n".join(problems) + "\n" + self._replay())

    def _audit_deadline(self, audited: list[Expectation]) -> float | None:
        bounds = [
            e.within_s + CHECKERS[e.checker].audit_grace_s
            for e in audited
            if e.within_s is not None
        ]
        return max(bounds) if bounds else None

    def _verdict(self, e: Expectation) -> Verdict:
        checker = CHECKERS[e.checker]
        if not checker.awaits_failover:
            return self.sc.check(include=(e.checker,), bounds={e.checker: e.bounds})[e.checker]
        faults = self.by_step.get(e.fault_step, []) if e.fault_step is not None else []
        self._await_failover(e, faults)
        v = self.sc.check(include=(e.checker,))[e.checker]
        if not e.bounded:
            return v
        topo = self.sc.topology
        return judge_failover(
            v,
            e,
            fault_ids=[f.fault_id for f in faults],
            clients=self.traffic.clients,
            site_of={r: topo.site_of(r) for r in (*topo.replicas, *topo.load_balancers)},
        )

    def _await_failover(self, e: Expectation, faults: list[Fault]) -> None:
        """Wait until the clients are served by an unaffected replica after the fault,
        or its deadline: `within` (and as long again, to measure a late one), else the
        time one operation may take walking every replica."""
        # what the failover checker judges: operations that began once the fault was in
        # effect (a kill's window opens when it starts; an operation may beat it)
        times = [f.in_effect_at for f in faults if f.in_effect_at is not None]
        if not times:
            return
        t0 = min(times)
        affected = {r for f in faults for r in f.affected_replicas()}
        orders = {n: c.order for n, c in self.sc.topology.clients.items()}
        names = [e.client] if e.client else list(self.traffic.clients)
        names = [n for n in names if set(orders[n]) - affected]
        if not names:
            return
        span = e.within_s + max(1.0, e.within_s) if e.within_s is not None else None
        deadline = t0 + (span if span is not None else self.sc.op_deadline(1))

        def served_elsewhere() -> bool:
            cs = self.sc.history.completes()
            return all(
                any(
                    c.client == n
                    and c.start >= t0
                    and c.outcome == "ok"
                    and c.served_by not in affected
                    for c in cs
                )
                for n in names
            )

        with contextlib.suppress(WaitTimeout):
            wait_until(
                served_elsewhere,
                max(0.0, deadline - time.monotonic()),
                f"{', '.join(names)} served by a replica other than {', '.join(sorted(affected))}",
            )

    def _record(self, step: ExpectStep, e: Expectation, v: Verdict) -> None:
        out = self.sc.outcome
        key = f"{step.path}.{e.checker}"
        for k in (e.checker, key):
            out.verdicts[k] = v
            out.expected[k] = e.want
        self.figures["expectations"].append(
            {
                "step": step.path,
                "line": e.line,
                "checker": e.checker,
                "expected": e.want,
                "got": v.status,
                "summary": v.summary,
            }
        )
        self.sc.note(f"{key} (line {e.line}): expected {e.want}, got {v.status}: {v.summary}")

    # ---- run ---------------------------------------------------------------------------

    def _run(self, step: RunStep) -> None:
        cluster = cast(Any, self.sc.cluster)  # a BaseCluster: it has status()
        state_dir = Path(cluster.state.state_dir)
        status = cluster.status()
        status["faults"] = active_fault_records(state_dir)
        status_path = StateFolder(state_dir).status
        status_path.write_text(json.dumps(status, indent=2))
        base = dict(os.environ)
        base["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
        base.update(client_env(status, status_path))
        env = registry.labelled_env(cluster.state.run_id, base)
        cwd = self.r.path.parent if self.r.path else Path.cwd()
        started = time.monotonic()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", step.command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        out, err = b"", b""
        try:
            try:
                out, err = proc.communicate(timeout=step.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._kill_group(proc)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    out, err = proc.communicate(timeout=5)
        finally:
            if proc.poll() is None:
                self._kill_group(proc)
                proc.wait()
        took = time.monotonic() - started
        code = proc.returncode
        stdout, stderr = _tail(out), _tail(err)
        end = "timed out" if timed_out else f"exit {code}"
        self.sc.note(f"{step.path} run {step.command!r}: {end} after {took:.2f} s")
        for name, text in (("stdout", stdout), ("stderr", stderr)):
            if text:
                self.sc.note(f"{step.path} {name}:\n{text}")
                print(f"[{step.path} {name}]\n{text}")
        self.figures["runs"].append(
            {
                "step": step.path,
                "command": step.command,
                "exit": None if timed_out else code,
                "seconds": round(took, 3),
            }
        )
        last = "\n".join((stderr or stdout).splitlines()[-10:])
        shown = f"; last output:\n{last}" if last else ""
        if timed_out:
            raise self.failure(
                step.line,
                f"{step.path}.run",
                f"{step.command!r} timed out after {format_duration(step.timeout_s)} "
                f"(killed){shown}",
            )
        if step.expect_exit is not None and code != step.expect_exit:
            raise self.failure(
                step.line,
                f"{step.path}.run",
                f"{step.command!r} exited {code}, expected {step.expect_exit}{shown}",
            )

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    # ---- messages ----------------------------------------------------------------------

    def _replay(self) -> str:
        text = f"seed {self.seed} (replay: --kms-seed {self.seed})"
        if self.drawn:
            text += "\n" + "\n".join(self.drawn)
        return text

    def failure(self, line: int, where: str, message: str) -> RehearsalFailure:
        return RehearsalFailure(
            f"{self.r.source}: line {line}: {where}: {message}\n{self._replay()}"
        )


def run_rehearsal(
    rehearsal: Rehearsal,
    scenario: Scenario,
    *,
    seed: int,
    io: TerminalIO | None = None,
    interactive: bool = False,
) -> RehearsalRun:
    """Run every step of `rehearsal` on `scenario`; raise `RehearsalFailure` on the first
    unmet expectation or failed step."""
    run = RehearsalRun(rehearsal, scenario, seed=seed, io=io, interactive=interactive)
    run.run()
    return run


__all__ = [
    "RehearsalFailure",
    "RehearsalRun",
    "TerminalIO",
    "Traffic",
    "client_env",
    "env_name",
    "run_rehearsal",
]
