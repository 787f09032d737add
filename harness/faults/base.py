"""The fault interface: `inject()` / `heal()`, a context manager that always heals.

A fault records its inject and heal in the history (when given one) and in the state
folder (``faults/<id>.json``), so ``kmschaos heal`` in another process can heal it.
`heal()` is idempotent. `requires` names the cluster capabilities the fault needs;
`check_supported` refuses a fault before a run starts, with the reason. A fault that
needs a replica's process (signals, restart) is refused when it is made, before it
touches anything, if it would act on an external target (`harness.external.refusal`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from harness.cluster.base import Cluster, ClusterError
from harness.external import refusal
from harness.history import FaultEvent, History


class FaultError(RuntimeError):
    """A fault cannot be injected or healed; the message says why."""


class Fault:
    kind: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    summary: ClassVar[str] = ""
    # The fault window starts when `_inject` has returned (the fault is in effect) —
    # except for faults whose whole effect happens inside `_inject` (restart, wipe).
    window_from_start: ClassVar[bool] = False

    def __init__(
        self,
        cluster: Cluster,
        target: str,
        history: History | None = None,
        fault_id: str | None = None,
        **params: Any,
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.history = history
        self.params = params
        slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:40]
        self.fault_id = fault_id or f"{self.kind}-{slug}-{secrets.token_hex(3)}"
        self.active = False
        self.injected_at: float | None = None
        self.healed_at: float | None = None
        self.check_target()
        why = refusal(self.kind, self.requires, cluster.state, self.affected_replicas())
        if why:
            raise FaultError(why)

    # ---- to implement -------------------------------------------------------------

    def _inject(self) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        raise NotImplementedError

    def affected_replicas(self) -> list[str]:
        return [self.target]

    def check_target(self) -> None:
        if self.target not in self.cluster.state.replicas:
            known = ", ".join(self.cluster.state.replicas)
            raise FaultError(f"{self.kind}: unknown replica {self.target!r} (known: {known})")

    # ---- lifecycle ------------------------------------------------------------------

    @classmethod
    def unsupported_reason(cls, cluster: Cluster) -> str | None:
        missing = cls.requires - cluster.capabilities
        if not missing:
            return None
        return cls._explain_missing(cluster, missing)

    @classmethod
    def _explain_missing(cls, cluster: Cluster, missing: frozenset[str]) -> str:
        return (
            f"fault '{cls.kind}' needs {', '.join(sorted(missing))}, which the "
            f"{cluster.state.backend} backend here lacks"
        )

    def inject(self) -> Fault:
        reason = self.unsupported_reason(self.cluster)
        if reason:
            raise FaultError(reason)
        if self.active:
            return self
        self._persist()
        started = time.monotonic()
        try:
            self._inject()
        except BaseException:
            with contextlib.suppress(Exception):
                self._heal()
            self._unpersist()
            raise
        self.injected_at = started if self.window_from_start else time.monotonic()
        self.active = True
        self._persist()  # again: `extra()` may name what `_inject` started
        self._record("inject", self.injected_at)
        return self

    def heal(self) -> None:
        if not self.active:
            return
        # the window ends when healing begins: from then on the fault is not guaranteed
        started = time.monotonic()
        try:
            self._heal()
        finally:
            self.active = False
            self.healed_at = started
            self._record("heal", self.healed_at)
            self._unpersist()

    def __enter__(self) -> Fault:
        try:
            return self.inject()
        except BaseException:
            self.heal()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.heal()

    # ---- records --------------------------------------------------------------------

    def _record(self, phase: str, t: float) -> None:
        if self.history is None:
            return
        self.history.append(
            FaultEvent(
                fault_id=self.fault_id,
                phase=phase,  # type: ignore[arg-type]
                kind=self.kind,
                target=self.target,
                t=t,
                params={**self.params, "replicas": self.affected_replicas()},
            )
        )

    def record(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "kind": self.kind,
            "target": self.target,
            "params": self.params,
            "injected_at": self.injected_at,
            "pid": os.getpid(),
            "extra": self.extra(),
        }

    def extra(self) -> dict[str, Any]:
        """Anything another process needs to heal this fault."""
        return {}

    def restore(self, extra: dict[str, Any]) -> None:
        """Take back what `extra()` saved (in the healing process)."""

    def _dir(self) -> Path:
        return Path(self.cluster.state.state_dir) / "faults"

    def _persist(self) -> None:
        d = self._dir()
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{self.fault_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record(), indent=2))
        os.replace(tmp, path)

    def _unpersist(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._dir() / f"{self.fault_id}.json").unlink()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.fault_id} active={self.active}>"


def active_fault_records(state_dir: Path) -> list[dict[str, Any]]:
    d = state_dir / "faults"
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    return out


__all__ = ["Fault", "FaultError", "ClusterError", "active_fault_records"]
