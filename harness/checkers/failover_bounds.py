"""What a failover may cost: per fault and policy, the wait of one failed attempt, and
the two-sided bound of a failover that paid it (read by the failover checker and the
matrix). A fault declares what a failed attempt costs (`Fault.client_wait`), the
client's policy how long that is (`PolicySpec.wait_s`, from its own timeouts)."""

from __future__ import annotations

from harness.client.policies import Wait
from harness.client.policy_spec import PolicySpec, preset_of
from harness.faults import FAULTS


def expected_wait(kind: str) -> Wait | None:
    """What one failed attempt under fault `kind` costs a client (the fault's own
    declaration); None when no failover is expected or the kind is unknown."""
    cls = FAULTS.get(kind)
    return None if cls is None else cls.client_wait


def _spec(policy: str | PolicySpec | None) -> PolicySpec | None:
    if isinstance(policy, PolicySpec) or policy is None:
        return policy
    return preset_of(policy)


def unnoticed(kind: str, policy: str | PolicySpec) -> str:
    """Why a client of `policy` cannot notice fault `kind` ("" when it can): the fault
    needs an ability (`Fault.noticed_only_if`) the policy says it lacks."""
    fault, pol = FAULTS.get(kind), _spec(policy)
    if fault is None or pol is None or not fault.noticed_only_if:
        return ""
    if getattr(pol, fault.noticed_only_if, True):
        return ""
    name = policy if isinstance(policy, str) else policy.label
    return f"{name} {fault.unnoticed_because}: {kind} is invisible to it, no failover expected"


def attempt_cost(
    policy: str | PolicySpec,
    kind: str,
    *,
    response_timeout: float | None,
    connect_timeout: float | None,
    reused: bool = False,
) -> float | None:
    """Seconds one failed attempt under fault `kind` costs a client of `policy` with
    these (its own, scaled) timeouts; None when the policy is unknown (its failover
    cannot be bounded). An attempt on a connection already open (`reused`) has no
    connect to time out: a fault that silences connects leaves its request unanswered."""
    spec = _spec(policy)
    if spec is None:
        return None
    wait = expected_wait(kind)
    if wait is None:
        return 0.0
    if reused and wait == "connect":
        wait = "response"
    return spec.wait_s(wait, connect_timeout=connect_timeout, response_timeout=response_timeout)


CLOCK_SLACK_S = 0.02
CLOCK_SLACK_SHARE = 0.02
UPPER_SLACK_SHARE = 0.10
BASELINE_P99_FACTOR = 4.0


def wait_bounds(wait: float, *, baseline_p99: float, min_upper_slack: float) -> tuple[float, float]:
    """The [lower, upper] seconds a failover paying `wait` of timeouts may take."""
    lower = max(0.0, wait - CLOCK_SLACK_S - CLOCK_SLACK_SHARE * wait)
    upper = (
        wait + max(min_upper_slack, UPPER_SLACK_SHARE * wait) + BASELINE_P99_FACTOR * baseline_p99
    )
    return lower, upper
