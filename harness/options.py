"""The options several commands share, each defined once: ``--time-scale``,
``--backend``, ``--state-dir`` and ``--report-dir``. Every `kmschaos` command that takes
one adds it from here, and the pytest plugin's ``--kms-*`` options use the same help
texts, defaults and environment variables.

Environment: ``KMSCHAOS_STATE_DIR`` (the state folder), ``KMSCHAOS_BACKEND`` and
``KMSCHAOS_TIME_SCALE`` (defaults of the pytest options ``--kms-backend`` and
``--kms-time-scale``, for runs started by plain ``pytest``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "KMSCHAOS_STATE_DIR"
BACKEND_ENV = "KMSCHAOS_BACKEND"
TIME_SCALE_ENV = "KMSCHAOS_TIME_SCALE"
DEFAULT_STATE_DIR = ".kmschaos"
DEFAULT_BACKEND = "local"

TIME_SCALE_HELP = (
    "multiply every client timeout by S, overriding each topology's time_scale "
    "(0 < S <= 10; 0.05 turns vCenter's 60 s response timeout into 3 s)"
)
BACKEND_HELP = (
    "local: replicas as processes on loopback (the default); docker: containers, one "
    "network per site, Toxiproxy in a container (needs a Docker engine and `make images`)"
)
STATE_DIR_HELP = f"the cluster's state folder (default ./{DEFAULT_STATE_DIR}/, or ${STATE_DIR_ENV})"


def add_time_scale(p: Any, flag: str = "--time-scale", default: float | None = None) -> None:
    """``--time-scale S`` (a number; checked, like a file's, by `check_time_scale`)."""
    p.add_argument(flag, type=float, default=default, metavar="S", help=TIME_SCALE_HELP)


def add_backend(p: Any, flag: str = "--backend", default: str = DEFAULT_BACKEND) -> None:
    p.add_argument(flag, default=default, metavar="NAME", help=BACKEND_HELP)


def add_state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP)


def add_report_dir(p: Any, default: str | None, what: str, flag: str = "--report-dir") -> None:
    """``--report-dir DIR``: where `what` are written."""
    shown = f" (default {default})" if default else ""
    p.add_argument(flag, default=default, metavar="DIR", help=f"where {what} are written{shown}")


def state_dir(given: str | None) -> Path:
    """The state folder: the option, else ``$KMSCHAOS_STATE_DIR``, else ./.kmschaos."""
    return Path(given or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def env_backend() -> str:
    return os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND


def env_time_scale() -> float | None:
    """``$KMSCHAOS_TIME_SCALE`` as a number (None when unset); `ValueError` when it is
    not one, naming the variable."""
    raw = os.environ.get(TIME_SCALE_ENV)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"${TIME_SCALE_ENV}={raw!r}: not a number") from None


__all__ = [
    "BACKEND_ENV",
    "DEFAULT_BACKEND",
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "TIME_SCALE_ENV",
    "add_backend",
    "add_report_dir",
    "add_state_dir",
    "add_time_scale",
    "env_backend",
    "env_time_scale",
    "state_dir",
]
