"""Scenario building blocks: a workload around a fault window, then the verdicts.

A scenario file stays short: it says which fault, on which replica, for which
clients, and which verdicts it expects. `Scenario` runs the phases

    baseline (ops served normally) → inject → failovers observed → heal → recovery

waiting for conditions with deadlines derived from the topology's timeouts, never for
fixed times, and then runs the checkers. `expect()` records the expected status of each
verdict (a finding such as "PyKMIP does not fail over on a stalled response" is an
expected `fail`, not a skipped test) and fails the test on any mismatch.

Every fault proves its effect (`Fault.observe`), and a scenario that injected one is always judged
by `fault_effect`, expected to pass unless the scenario says otherwise: a verdict about a fault
that did not happen means nothing. A fault window that cannot end well ends fast and with verdicts:
when a fault's observation says it had no effect, or every client keeps being served by the
replicas it should have left, the scenario stops waiting at once; whenever a window ends in a
`ScenarioError` (that, or a wait that timed out), the checkers run first, so the outcome carries
their verdicts and the error names the failing ones.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from harness.admin import admin_operation
from harness.audit import Auditor
from harness.checkers import CHECKERS, CheckContext, Verdict, run_checkers
from harness.checkers.verdict import attempt_trail
from harness.client.failover_client import FailoverClient
from harness.client.operations import empty_client_config
from harness.client.policies import TlsFiles, make_policy, policy_spec
from harness.client.policy_spec import PolicySpec, os_connect_timeout
from harness.cluster.base import Cluster
from harness.external import RunKeys
from harness.faults import Fault, make_fault
from harness.history import Complete, FaultEvent, History, Note
from harness.lb.watch import BalancerWatch
from harness.outcome import Outcome
from harness.store import ScenarioFolder, StateFolder
from harness.topology import Topology
from harness.wait import WaitTimeout
from harness.workload import Workload

# With replication `none` a key lives only where it was made, so a Get that fails over
# to another replica legitimately finds nothing; failover scenarios use operations
# that any replica can answer. Key availability is judged by its own verdict.
FAILOVER_MIX = {"create": 0.5, "locate": 0.5}

PYKMIP_DEFAULT_TIMEOUT_S = 30

# A client served this many times by a replica it should have left, without one failed
# attempt there since the fault: the fault is not in effect for it
NO_EFFECT_EVIDENCE_OPS = 3
# what judges a fault window that ended in an error (fast, pure: no audit)
WINDOW_CHECKS = ("failover", "order", "availability", "fault_effect")
SITE_WINDOW_CHECKS = ("order", "availability", "site_availability", "fault_effect")


class ScenarioError(AssertionError):
    """A scenario's expectation was not met; the message shows the verdicts."""


class NoEffect(Exception):
    """The evidence is clear that a fault is not in effect: waiting longer is pointless."""


class NoFailover(Exception):
    """The evidence is clear that a client does not fail over: its operations keep
    failing on the faulted replica without trying another, so waiting for it to be served
    elsewhere is pointless."""


class Scenario:
    """One test's cluster, history, clients, faults and verdicts."""

    admin = admin_operation  # (op, replica, key): an operator's KMIP op on a replica directly

    def __init__(
        self,
        name: str,
        cluster: Cluster,
        topology: Topology,
        history: History,
        report_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.topology = topology
        self.history = history
        self.report_dir = report_dir
        self.outcome = Outcome(name)
        self.outcome.figures["topology"] = topology.source
        self._faults: list[Fault] = []
        self._workloads: list[Workload] = []
        self._clients: list[FailoverClient] = []
        self._keys = RunKeys.for_state(cluster.state)  # names (and records) created keys
        self._watch = BalancerWatch(cluster, history).start()  # balancers' server states

    # ---- parts ------------------------------------------------------------------

    def client(
        self, name: str, policy: str | PolicySpec | None = None, worker: int = 0
    ) -> FailoverClient:
        """Client `name` of the topology (worker `worker`), with its own policy or the
        preset `policy` instead."""
        spec = self.topology.clients[name]
        if policy is not None and policy_spec(policy) != spec.policy:
            # the checkers judge the policy that ran: the topology says which it is
            spec = dataclasses.replace(spec, policy=policy_spec(policy))
            clients = {**self.topology.clients, name: spec}
            self.topology = dataclasses.replace(self.topology, clients=clients)
        st = self.cluster.state
        conf = empty_client_config(StateFolder(Path(st.state_dir)).clients)
        t = st.tls
        connect, response = spec.timeouts(self.topology)
        pol = make_policy(
            spec.policy,
            st.endpoints(name),
            TlsFiles(t["ca"], t["cert"], t["key"]),
            connect,
            response,
            conf,
            self._keys,
            time_scale=self.topology.time_scale,
        )
        fc = FailoverClient(name, pol, self.history, worker, self.topology.time_scale)
        self._clients.append(fc)
        return fc

    def clients_named(self, name: str) -> list[FailoverClient]:
        """Every running (not closed) instance of client `name` (ValueError naming them)."""
        live = [c for c in self._clients if not c.closed]
        found = [c for c in live if c.name == name]
        if not found:
            known = ", ".join(sorted({c.name for c in live})) or "none"
            raise ValueError(f"no client {name!r} is running (running: {known})")
        return found

    def restart_client(self, name: str) -> None:
        """Restart every instance of client `name` (it forgets its chosen server)."""
        self._lifecycle(name, "restart")

    def stop_client(self, name: str) -> None:
        self._lifecycle(name, "stop")

    def start_client(self, name: str) -> None:
        self._lifecycle(name, "start")

    def _lifecycle(self, name: str, action: str) -> None:
        for c in self.clients_named(name):
            getattr(c, action)()
        self.note(f"{action}-client {name}")

    def workload(
        self,
        clients: list[str] | None = None,
        per_client: int = 1,
        rate_per_s: float = 20.0,
        mix: dict[str, float] | None = None,
        policy: str | None = None,
        seed: int = 0,
    ) -> Workload:
        names = clients or list(self.topology.clients)
        fcs = [self.client(n, policy, w) for n in names for w in range(per_client)]
        wl = Workload(fcs, self.history, rate_per_s, mix or FAILOVER_MIX, seed)
        self._workloads.append(wl)
        return wl

    def fault(self, kind: str, target: str, **params: Any) -> Fault:
        f = make_fault(kind, self.cluster, target, self.history, **params)
        self._faults.append(f)
        return f

    def audit_until_converged(self, deadline_s: float | None = None) -> float | None:
        """Audit every replica over KMIP, round after round, until all agree (seconds
        taken) or the deadline passes (None). Deadline by default: 100 replication
        intervals plus 15 s."""
        interval = float(self.cluster.state.replication.get("interval_ms", 250)) / 1000
        deadline = deadline_s if deadline_s is not None else 100 * interval + 15.0
        self.note("audit")
        took = Auditor(self.cluster, self.history).until_converged(deadline, poll_s=interval)
        self.note(f"audit done: {'converged' if took is not None else 'not converged'}")
        return took

    def note(self, text: str) -> None:
        self.history.append(Note(t=time.monotonic(), text=text))

    # ---- deadlines derived from the configuration ---------------------------------

    def op_deadline(self, ops: int = 1) -> float:
        """Generous time for `ops` operations that may each walk the whole list, at the
        slowest client's timeouts (a connect with no timeout of its own lasts as long as
        the OS retries; a response with none is given the topology's)."""
        worst = 0.0
        for c in self.topology.clients.values():
            connect, response = c.timeouts(self.topology)
            connect = os_connect_timeout() if connect is None else connect
            response = self.topology.response_timeout if response is None else response
            worst = max(worst, (connect + response) * (1 + c.policy.retries))
        return ops * (len(self.topology.replicas) * worst + 1.0) + 15.0

    # ---- the standard phases -------------------------------------------------------

    def fault_window(
        self,
        kind: str,
        targets: str | list[str],
        *,
        clients: list[str] | None = None,
        policy: str | None = None,
        failovers: int = 3,
        baseline_ops: int = 10,
        recovery_ops: int = 3,
        rate_per_s: float = 20.0,
        mix: dict[str, float] | None = None,
        expect_served: bool = True,
        **params: Any,
    ) -> Workload:
        """Run a workload; inject `kind` on `targets`; wait until every client has
        `failovers` successful operations served by an unaffected replica (or, with
        `expect_served=False`, just `failovers` completed operations); heal; wait for
        `recovery_ops` successes; stop.

        Stops waiting as soon as the fault is clearly not in effect (`NoEffect`); a
        window that ends in an error is judged first (`WINDOW_CHECKS`) and the
        `ScenarioError` names the failing verdicts."""
        target_list = [targets] if isinstance(targets, str) else list(targets)
        names = clients or list(self.topology.clients)
        wl = self.workload(names, rate_per_s=rate_per_s, mix=mix, policy=policy)
        try:
            self._fault_window(
                wl,
                kind,
                target_list,
                names,
                failovers,
                baseline_ops,
                recovery_ops,
                expect_served,
                params,
            )
        except (WaitTimeout, NoEffect, NoFailover) as e:
            raise self._window_error(str(e), WINDOW_CHECKS) from None
        except Exception:
            self._judge_quietly(WINDOW_CHECKS)
            raise
        return wl

    def _window_error(self, why: str, checks: tuple[str, ...]) -> ScenarioError:
        """The error a fault window ended in, after judging it: the reason, the failing
        verdicts' summaries, the last operations."""
        verdicts = self._judge_quietly(checks)
        failing = [
            f"  {n}: fail: {verdicts[n].summary}"
            for n in CHECKERS.ordered(verdicts)  # fault_effect first: the cause
            if verdicts[n].status == "fail"
        ]
        text = why
        if failing:
            text += "\nfailing verdicts:\n" + "\n".join(failing)
        return ScenarioError(f"{text}\nlast operations:\n{self._recent()}")

    def _judge_quietly(self, checks: tuple[str, ...]) -> dict[str, Verdict]:
        """`check(include=checks)`; a scenario in trouble never gets a second error."""
        try:
            return self.check(include=checks)
        except Exception:  # noqa: BLE001 - checkers are guarded; this is belt and braces
            return {}

    def _recent(self, n: int = 8) -> str:
        lines = []
        for c in self.history.completes()[-n:]:
            lines.append(
                f"  {c.op_id} {c.op} {c.outcome} served_by={c.served_by} "
                f"{c.duration:.3f}s [{attempt_trail(c.attempts)}] {c.error}"
            )
        return "\n".join(lines) or "  (none)"

    def _fault_window(
        self,
        wl: Workload,
        kind: str,
        target_list: list[str],
        names: list[str],
        failovers: int,
        baseline_ops: int,
        recovery_ops: int,
        expect_served: bool,
        params: dict[str, Any],
    ) -> None:
        with wl.running():
            self.note("baseline")
            wl.wait_ok(baseline_ops, self.op_deadline(1), since=0.0)
            faults = [self.fault(kind, t, **params) for t in target_list]
            try:
                for f in faults:
                    f.inject()
                t_inj = time.monotonic()
                self.note(f"{kind} on {', '.join(target_list)}")
                affected = {r for f in faults for r in f.affected_replicas()} or set(target_list)
                for name in names:
                    if expect_served:

                        def served(cs: list[Complete], n: str = name, t: float = t_inj) -> bool:
                            self._stop_if_no_effect(cs, faults, names, affected, t)
                            self._stop_if_no_failover(cs, names, affected, t)
                            ok = [
                                c
                                for c in cs
                                if c.client == n
                                and c.start >= t
                                and c.outcome == "ok"
                                and c.served_by not in affected
                            ]
                            return len(ok) >= failovers

                        wl.wait_for(
                            served,
                            self.op_deadline(failovers),
                            f"{failovers} ok operation(s) of {name} not served by "
                            f"{sorted(affected)} during {kind}",
                        )
                    else:

                        def enough(cs: list[Complete], n: str = name, t: float = t_inj) -> bool:
                            return sum(1 for c in cs if c.client == n and c.start >= t) >= failovers

                        wl.wait_for(
                            enough,
                            self.op_deadline(failovers),
                            f"{failovers} completed operation(s) of {name} during {kind}",
                        )
            finally:
                for f in faults:
                    f.heal()
            t_heal = time.monotonic()
            self.note("healed")
            wl.wait_ok(recovery_ops, self.op_deadline(recovery_ops), since=t_heal)

    def _stop_if_no_effect(
        self,
        cs: list[Complete],
        faults: list[Fault],
        names: list[str],
        affected: set[str],
        since: float,
    ) -> None:
        """Raise `NoEffect` when the evidence is clear that the fault is not in effect:
        every client that has a replica to fail over to either ran
        `NO_EFFECT_EVIDENCE_OPS` operations since a fault's observation said it had no
        effect, or was served that many times by an affected replica without one failed
        attempt there (a fault in effect would have failed at least one)."""
        unseen = [f for f in faults if f.observation is not None and f.observation.effect is False]
        orders = {n: c.order for n, c in self.topology.clients.items()}
        judged = [n for n in names if set(orders.get(n, ())) - affected]
        if not judged:
            return
        mine = {n: [c for c in cs if c.client == n and c.start >= since] for n in judged}
        if unseen and all(len(ops) >= NO_EFFECT_EVIDENCE_OPS for ops in mine.values()):
            f = unseen[0]
            assert f.observation is not None
            raise NoEffect(
                f"{f.kind} on {f.target} had no effect: {f.observation.detail} (stopped "
                f"waiting {time.monotonic() - since:.2f} s after the injection)"
            )

        def untouched(ops: list[Complete]) -> bool:
            served = [c for c in ops if c.outcome == "ok" and c.served_by in affected]
            failed = [
                a
                for c in ops
                for a in c.attempts
                if a.server in affected and a.outcome != "ok" and a.start >= since
            ]
            return len(served) >= NO_EFFECT_EVIDENCE_OPS and not failed

        if all(untouched(ops) for ops in mine.values()):
            kinds = ", ".join(sorted({f"{f.kind} on {f.target}" for f in faults}))
            served = sorted(
                {str(c.served_by) for ops in mine.values() for c in ops if c.served_by in affected}
            )
            raise NoEffect(
                f"{kinds}: no effect seen by the clients — {', '.join(judged)} still served by "
                f"{', '.join(served)} at least {NO_EFFECT_EVIDENCE_OPS} times each without one "
                f"failed attempt there (stopped waiting {time.monotonic() - since:.2f} s "
                "after the injection)"
            )

    def _stop_if_no_failover(
        self, cs: list[Complete], names: list[str], affected: set[str], since: float
    ) -> None:
        """Raise `NoFailover` when a client that has a replica to fail over to ran
        `NO_EFFECT_EVIDENCE_OPS` operations since the injection that all failed having
        tried only affected replicas, and none was served elsewhere (its policy gives up
        instead of walking its list)."""
        orders = {n: c.order for n, c in self.topology.clients.items()}
        for n in names:
            if not set(orders.get(n, ())) - affected:
                continue
            ops = [c for c in cs if c.client == n and c.start >= since]
            if any(c.outcome == "ok" and c.served_by not in affected for c in ops):
                continue
            stuck = [
                c
                for c in ops
                if c.outcome != "ok" and c.attempts and {a.server for a in c.attempts} <= affected
            ]
            if len(stuck) >= NO_EFFECT_EVIDENCE_OPS:
                trails = "; ".join(attempt_trail(c.attempts) for c in stuck[:2])
                raise NoFailover(
                    f"{n} does not fail over: {len(stuck)} operations since the fault failed "
                    f"on {', '.join(sorted(affected))} without trying another replica "
                    f"({trails}; stopped waiting {time.monotonic() - since:.2f} s after the "
                    "injection)"
                )

    def reads_and_writes_during(
        self,
        kind: str,
        target: str,
        clients: list[str],
        *,
        per_op: int = 5,
        rate_per_s: float = 20.0,
        **params: Any,
    ) -> Workload:
        """Every client first creates `per_op` keys; then `kind` on `target`; wait until
        every client issued `per_op` Creates and `per_op` Gets during it (whatever their
        outcome: read-only sites refuse writes); heal. For site availability. A fault
        whose observation says it had no effect ends the wait at once; an error is
        judged first (`SITE_WINDOW_CHECKS`)."""
        wl = self.workload(clients, rate_per_s=rate_per_s, mix={"create": 0.4, "get": 0.6})
        deadline = self.op_deadline(2 * per_op)

        def made(cs: list[Complete], c: str, since: float = 0.0) -> int:
            return sum(
                1
                for x in cs
                if x.client == c and x.start >= since and x.op == "create" and x.outcome == "ok"
            )

        try:
            with wl.running():
                for c in clients:

                    def enough_keys(cs: list[Complete], c: str = c) -> bool:
                        return made(cs, c) >= per_op

                    wl.wait_for(
                        enough_keys, deadline, f"{per_op} keys created by {c} before {kind}"
                    )
                with self.fault(kind, target, **params) as fault:
                    obs = fault.observation
                    if obs is not None and obs.effect is False:
                        raise NoEffect(f"{kind} on {target} had no effect: {obs.detail}")
                    cut = time.monotonic()
                    wl.wait_for(
                        lambda cs: all(
                            sum(1 for x in cs if x.client == c and x.start >= cut and x.op == op)
                            >= per_op
                            for c in clients
                            for op in ("create", "get")
                        ),
                        deadline,
                        f"{per_op} creates and {per_op} gets per client during {kind}",
                    )
        except (WaitTimeout, NoEffect) as e:
            raise self._window_error(str(e), SITE_WINDOW_CHECKS) from None
        except Exception:
            self._judge_quietly(SITE_WINDOW_CHECKS)
            raise
        return wl

    # ---- verdicts -------------------------------------------------------------------

    def check(
        self,
        *,
        min_ok_share: float = 1.0,
        max_gap_s: float | None = None,
        include: tuple[str, ...] = ("failover", "order", "availability", "fault_effect"),
        convergence_s: float | None = None,
        bounds: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Verdict]:
        """Run the checkers named in `include` over the history so far; their verdicts go
        into the outcome. `bounds` maps a checker to what it is asked (its `Bound.into`
        names); `min_ok_share` / `max_gap_s` (availability) and `convergence_s`
        (convergence) are the same, spelled as keywords. When the history holds a fault,
        `fault_effect` is judged too, whatever `include` says."""
        asked: dict[str, dict[str, Any]] = {
            "availability": {"min_ok_share": min_ok_share, "max_gap_s": max_gap_s},
            "convergence": {"within_s": convergence_s},
        }
        for name, given in (bounds or {}).items():
            asked[name] = {**asked.get(name, {}), **given}
        events = self.history.events()
        if "fault_effect" not in include and any(isinstance(e, FaultEvent) for e in events):
            include = (*include, "fault_effect")
        v: dict[str, Verdict] = {}
        for name in include:
            ctx = CheckContext.of(events, self.topology, **asked.get(name, {}))
            v.update(run_checkers([name], ctx))
        self.outcome.verdicts.update(v)
        return v

    def expect(self, **expected: str) -> None:
        """Record the expected status of each verdict and fail on any mismatch. A
        `fault_effect` verdict over faults is expected to pass unless said otherwise."""
        for name, want in expected.items():
            if want not in ("pass", "fail", "unknown"):
                raise ValueError(f"expected status for {name} must be pass|fail|unknown")
        self.outcome.expected.update(expected)
        effect = self.outcome.verdicts.get("fault_effect")
        if effect is not None and effect.figures.get("faults"):
            self.outcome.expected.setdefault("fault_effect", "pass")
            expected = {**expected, "fault_effect": self.outcome.expected["fault_effect"]}
        problems = self.outcome.regressions()
        if problems:
            details = []
            for name in expected:
                vd = self.outcome.verdicts.get(name)
                if vd is not None and vd.status != expected[name]:
                    details += [f"  {name}: {line}" for line in vd.details[:10]]
            raise ScenarioError("\n".join(problems + details))

    def finding(self, text: str) -> None:
        """A behaviour the report must state (not a failure)."""
        self.outcome.findings.append(text)

    def completes(self) -> list[Complete]:
        return self.history.completes()

    # ---- teardown --------------------------------------------------------------------

    def close(self) -> None:
        """Stop workloads, heal every fault, write the outcome."""
        errors: list[BaseException] = []
        for wl in self._workloads:
            try:
                wl.stop()
            except Exception as e:  # noqa: BLE001 - teardown goes on
                errors.append(e)
        for f in self._faults:
            try:
                f.heal()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        for c in self._clients:
            try:
                c.close()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        self._watch.stop()
        self.history.close()
        if self.report_dir is not None:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            ScenarioFolder(self.report_dir).outcome.write_text(
                json.dumps(self.outcome.to_dict(), indent=2, default=str)
            )
        if errors:
            raise errors[0]


__all__ = ["FAILOVER_MIX", "Outcome", "Scenario", "ScenarioError", "WaitTimeout"]
