"""PyKMIP's server without its helper processes.

`KmipServer.start()` starts a `multiprocessing.Manager` (a second Python process that
holds the operation policies; the engine asks it over a socket on every policy check)
and a `PolicyDirectoryMonitor` process that scans the policy folder once (the replica
runs with ``live_policies`` off). A replica has no other process to share policies with,
so here the policies are a plain dict in the server's process and the one scan runs in
it too: one process per replica instead of three, 77 → see bench/README.md for the
memory it saves, and no IPC round trip in each operation.

Call `install()` before `KmipServer.start()`.
"""

from __future__ import annotations

from typing import Any


class _InProcessManager:
    """What `KmipServer.start()` uses of a `multiprocessing.Manager`: a dict."""

    def dict(self) -> dict[str, Any]:
        return {}

    def shutdown(self) -> None:
        pass


def install() -> None:
    """Make `KmipServer.start()` keep its policies and their one scan in this process."""
    from kmip.services.server import monitor
    from kmip.services.server import server as server_module

    class InProcessMonitor(monitor.PolicyDirectoryMonitor):
        """The policy folder scanned once, here (`run()` without live monitoring)."""

        def start(self) -> None:
            self.run()

        def join(self, timeout: float | None = None) -> None:
            pass

    class _Multiprocessing:
        Manager = _InProcessManager

    class _Monitor:
        PolicyDirectoryMonitor = InProcessMonitor

    server_module.multiprocessing = _Multiprocessing
    server_module.monitor = _Monitor
