"""A replica's control folder when the replica runs on another host (the swarm
backend's nodes other than the manager's): the harness keeps the folder here, as on
every backend, and copies each file it changes into the replica's ``/config`` (a volume
on the replica's node, through that node's engine); what the program acknowledges
(applied.json) is read back from there.

    harness: <replica data>/config ──put_archive──> node: volume at /config ──> program
                                  <──get_archive── applied.json
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.cluster.controls import ReplicaControls
from harness.cluster.docker_replica import CONTROL_MOUNT
from harness.cluster.state import ClusterError, ReplicaState
from harness.replica.control import APPLIED


def folder_archive(folder: Path, names: Iterable[str] | None = None) -> bytes:
    """A tar of `names` (default: every file) of `folder`, modes kept."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(folder.iterdir()) if names is None else (folder / n for n in names):
            if path.is_file() and not path.name.endswith(".tmp"):
                tar.add(path, arcname=path.name)
    return buf.getvalue()


class CopiedControls(ReplicaControls):
    """The live controls of a replica whose ``/config`` is a volume on another host;
    `container()` is its container (a docker-py object, through its node's engine)."""

    def __init__(self, replica: ReplicaState, container: Callable[[], Any]) -> None:
        super().__init__(replica)
        self._container = container

    def published(self, name: str) -> None:
        if not self._container().put_archive(CONTROL_MOUNT, folder_archive(self.dir, [name])):
            raise ClusterError(f"{self.replica}: copying {name} to its node was refused")

    def applied_text(self) -> str:
        import docker.errors

        try:
            stream, _ = self._container().get_archive(f"{CONTROL_MOUNT}/{APPLIED}")
        except docker.errors.NotFound:
            raise FileNotFoundError(APPLIED) from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(APPLIED)
            if member is None:
                raise FileNotFoundError(APPLIED)
            return member.read().decode()
