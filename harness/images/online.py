"""The online path's probe: pull what it needs (the ``python:3.12-slim`` base and the
official Toxiproxy image) and give up on a registry that stays silent, saying why."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

from harness.images.names import BASE_ONLINE, TOXIPROXY_OFFICIAL
from harness.images.progress import Log, one_line

if TYPE_CHECKING:
    from docker.client import DockerClient

PULL_TIMEOUT_S = 30


def pull_online_images(client: DockerClient, log: Log) -> str | None:
    """Pull what the online path needs; None on success, else why it failed."""
    for ref in (BASE_ONLINE, TOXIPROXY_OFFICIAL):
        log(f"  pull {ref} (gives up after {PULL_TIMEOUT_S} s without progress)")
        failure = pull(client, ref)
        if failure is not None:
            return f"pull {ref} failed: {failure}"
    return None


def pull(client: DockerClient, ref: str) -> str | None:
    """Pull `ref`; None on success, else why not. docker-py pulls without a timeout,
    so the pull streams its progress from a thread and a silence of `PULL_TIMEOUT_S`
    ends the wait (the thread is a daemon and dies with the process)."""
    from docker.errors import APIError

    repo, tag = ref.rsplit(":", 1)
    events: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for event in client.api.pull(repo, tag=tag, stream=True, decode=True):
                events.put(event)
            events.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
            events.put(e)

    threading.Thread(target=pump, name=f"pull {ref}", daemon=True).start()
    while True:
        try:
            event = events.get(timeout=PULL_TIMEOUT_S)
        except queue.Empty:
            return f"no progress for {PULL_TIMEOUT_S} s"
        if event is None:
            return None
        if isinstance(event, APIError):
            return one_line(str(event.explanation or event))
        if isinstance(event, BaseException):
            return one_line(f"{type(event).__name__}: {event}")
        if "error" in event:
            return one_line(str(event["error"]))
