"""``python -m harness.matrix ARGS``: `kmschaos matrix ARGS`. Internal:
``python -m harness.matrix --cell SPEC`` is how `harness.matrix.runner` starts a cell's
process (`harness.matrix.cell.cell_main`)."""

from __future__ import annotations

import sys

from harness.matrix.command import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--cell"] and len(sys.argv) == 3:
        from harness.matrix.cell import cell_main

        sys.exit(cell_main(sys.argv[2]))
    sys.exit(main())
