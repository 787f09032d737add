"""Checkers: pure functions over a history that return a `Verdict`.

Verdicts compose Jepsen-style (`worst`: fail > unknown > pass); run each checker through
`guarded` so one that crashes reports `unknown` instead of taking the run down.
"""

from __future__ import annotations

from harness.checkers.availability import check_availability
from harness.checkers.convergence import check_convergence
from harness.checkers.durability import check_durability
from harness.checkers.failover import check_failover
from harness.checkers.order import check_order
from harness.checkers.site_availability import check_site_availability
from harness.checkers.verdict import Status, Verdict, guarded, worst

# every checker's name, in the order tables show them
CHECKER_NAMES = (
    "failover",
    "order",
    "availability",
    "durability",
    "convergence",
    "site_availability",
)

__all__ = [
    "CHECKER_NAMES",
    "Status",
    "Verdict",
    "check_availability",
    "check_convergence",
    "check_durability",
    "check_failover",
    "check_order",
    "check_site_availability",
    "guarded",
    "worst",
]
