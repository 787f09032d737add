"""The docker tests' gate (imported by the test modules next to it): skip when the
docker backend cannot run here — unless ``KMSCHAOS_REQUIRE_DOCKER=1`` (CI), where that
is a failure."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("KMSCHAOS_REQUIRE_DOCKER") == "1":
        pytest.fail(f"KMSCHAOS_REQUIRE_DOCKER=1 but: {reason}")
    pytest.skip(f"docker backend not available here: {reason}")


def docker_engine_or_skip() -> Any:
    """A docker-py client of an engine that has this checkout's images (close it)."""
    from harness.cluster.docker_backend import docker_client, unavailable_reason

    reason = unavailable_reason()
    if reason:
        unavailable(reason)
    return docker_client()
