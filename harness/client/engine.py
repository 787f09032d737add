"""What every failover engine shares: the result of one operation, the base class, the
TLS files, and the wording of what was tried (`harness.client.policies` picks the engine
for a policy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from harness.client.operations import MUTATING, KeyNames, OpValue
from harness.client.policy_spec import PolicySpec
from harness.client.transport import Endpoint
from harness.history import Attempt, OpOutcome


@dataclass
class PolicyResult:
    outcome: OpOutcome
    value: OpValue | None
    served_by: str | None
    attempts: list[Attempt] = field(default_factory=list)
    error: str = ""


class FailoverPolicy:
    """What runs one client instance's policy; `engine` names it (`PolicySpec.engine`)."""

    engine: ClassVar[str] = ""
    spec: PolicySpec

    def __init__(
        self,
        endpoints: list[Endpoint],
        tls: TlsFiles,
        connect_timeout: float | None,
        response_timeout: float | None,
        empty_conf: str,
        keys: KeyNames | None = None,
        *,
        spec: PolicySpec | None = None,
        time_scale: float = 1.0,
    ) -> None:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """What operations record as their policy: the preset, ``*`` when adjusted."""
        return self.spec.label

    def execute(self, op: str, key: str | None) -> PolicyResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the default has none."""

    def abort(self) -> None:
        """End an operation in flight that has no timeout of its own; the default has
        none such."""

    def restart(self) -> None:
        """Forget everything the client learned (connections, its chosen server, servers
        it avoids), as a restarted process would."""
        self.close()


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str


def _key_name(keys: KeyNames | None, op: str) -> str | None:
    return keys.next_name() if keys is not None and op == "create" else None


def _record_created(
    keys: KeyNames | None, key_name: str | None, value: OpValue, replica: str
) -> None:
    if keys is not None and key_name is not None and value.key:
        keys.created(key_name, value.key, replica)


def _unanswered(op: str, attempts: list[Attempt], sent: bool, error: str) -> PolicyResult:
    outcome: OpOutcome = "info" if sent and op in MUTATING else "fail"
    return PolicyResult(outcome, None, None, attempts, error)


TIMED_OUT = ("connect-timeout", "timeout")


def tried(attempts: list[Attempt]) -> str:
    """The servers tried and why each failed, in order: ``kms-a refused, kms-b
    connect-timeout 0.250 s, kms-c timeout 3.000 s`` (a timeout with the seconds it
    cost, a TLS or other error with its first words)."""
    parts = []
    for a in attempts:
        part = f"{a.server} {a.outcome}"
        if a.outcome in TIMED_OUT:
            part += f" {a.duration:.3f} s"
        elif a.outcome in ("tls-error", "error") and a.detail:
            part += f" ({a.detail[:80]})"
        parts.append(part)
    return ", ".join(parts) or "no server tried"
