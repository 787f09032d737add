"""``python -m harness.matrix ARGS``: `kmschaos matrix ARGS`. Internal:
``python -m harness.matrix --cell SPEC`` is how `harness.matrix.runner` starts a cell's
process (`harness.matrix.cell.cell_main`).

SIGINT stops a matrix (running cells healed and stopped, the partial table, exit 130)
however the process was started: Python leaves SIGINT ignored when it inherits it ignored
(a background job of a non-interactive shell, a CI step started that way), so the handler
is installed here, as `kmschaos` does (`harness.cli`) and as a cell does for its own."""

from __future__ import annotations

import signal
import sys

from harness.matrix.command import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--cell"] and len(sys.argv) == 3:
        from harness.matrix.cell import cell_main

        sys.exit(cell_main(sys.argv[2]))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
