"""Checkers: pure functions over a history that return a `Verdict`, one per module, each
described by its `Checker` class and registered in `CHECKERS` (`harness.checkers.base`).

Verdicts compose Jepsen-style (`worst`: fail > unknown > pass); `run_checkers` runs each
checker `guarded`, so one that crashes reports `unknown` instead of taking the run down.
Importing this package imports every module in it, which registers every checker.
"""

from __future__ import annotations

import importlib
import pkgutil

from harness.checkers.base import (
    CHECKERS,
    Bound,
    CheckContext,
    Checker,
    brief,
    explain,
    headline,
    run_checkers,
)
from harness.checkers.verdict import Status, Verdict, guarded, worst

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CHECKERS",
    "Bound",
    "CheckContext",
    "Checker",
    "Status",
    "Verdict",
    "brief",
    "explain",
    "guarded",
    "headline",
    "run_checkers",
    "worst",
]
