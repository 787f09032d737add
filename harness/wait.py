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
        time.sleep(poll_s)  # wait-ok: the poll interval of this wait strategy
    msg = f"timed out after {deadline_s:g} s waiting for {what}"
    if last_error is not None:
        msg += f" (last error: {last_error!r})"
    for log in logs:
        msg += f"\n--- last lines of {log} ---\n{tail(log)}"
    raise WaitTimeout(msg)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:]) or "(log is empty)"
