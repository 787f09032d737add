"""Wait strategies: poll a condition until a deadline, never sleep blindly.

On timeout the error says what was awaited, for how long, and carries the last lines
of the logs that explain it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path


class WaitTimeout(TimeoutError):
    """A condition was not met before its deadline."""


def wait_until(
    condition: Callable[[], bool],
    deadline_s: float,
    what: str,
    *,
    poll_s: float = 0.02,
    transient: tuple[type[BaseException], ...] = (),
    logs: Iterable[Path] = (),
) -> None:
    """Call `condition` until it returns True. Exceptions listed in `transient` mean
    "not yet"; any other exception propagates at once."""
    start = time.monotonic()
    last_error: BaseException | None = None
    while True:
        try:
            if condition():
                return
        except transient as e:
            last_error = e
        if time.monotonic() - start > deadline_s:
            break
        time.sleep(poll_s)
    msg = f"timed out after {deadline_s:g} s waiting for {what}"
    if last_error is not None:
        msg += f" (last error: {last_error!r})"
    for log in logs:
        from harness.links import tail

        msg += f"\n--- last lines of {log} ---\n{tail(log)}"
    raise WaitTimeout(msg)
