"""`kmschaos matrix`: every failover policy against every fault, in one table.

    kmschaos matrix TOPOLOGY --policies vcenter,pykmip --faults refuse,blackhole,...

The one-page answer to "what happens to our clients when X breaks". A cell is one
(policy, fault): a fresh cluster; a short workload on the first client (or every
client) with that policy, through `Scenario.fault_window` (baseline → inject on the
target → failovers observed, with deadlines derived from the timeouts → heal →
recovery); an audit after heal when the topology replicates; then the checkers. The
cell's row says what a user paid: failover time, failed operations in the fault window,
whether the server order held, acknowledged keys lost.

Each cell runs in its own process: cells run in parallel (``-j``) without sharing a
cluster (each leases its own loopback /24) or an interpreter, and an interrupt reaches
every cell as one KeyboardInterrupt that heals its fault and stops its cluster. A fault
the backend or host cannot run is shown as unsupported, with the reason, and starts
nothing. What is written where: `harness.store.MatrixFolder`.

The modules, in the order a matrix runs them:

- `plan`: the options checked into a `MatrixPlan` (the time scale applied once), each
  cell's `CellSpec`, the preflight;
- `runner`: the cells' processes, ``-j`` at a time, and the interrupt;
- `cell`: what runs in a cell's process (``python -m harness.matrix --cell SPEC``);
- `facts`: a cell's row from its verdicts and its history;
- `render`: the rich table, the markdown page, the legend, ``matrix.json``'s document;
- `command`: the `kmschaos matrix` options and output (``python -m harness.matrix ARGS``).
"""

from __future__ import annotations

from harness.matrix.command import (
    EXIT_CRASHED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_matrix_parser,
    build_parser,
    cmd_matrix,
    main,
)
from harness.matrix.facts import STATUSES, CellResult, summarise_cell, window_facts
from harness.matrix.plan import (
    DEFAULT_POLICIES,
    DEFAULT_REPORT_DIR,
    CellSpec,
    MatrixError,
    MatrixPlan,
    parse_faults,
    plan_matrix,
    preflight,
)
from harness.matrix.render import (
    COLUMNS,
    STYLE,
    cell_columns,
    legend,
    matrix_document,
    render_markdown,
    render_table,
    write_reports,
)
from harness.matrix.runner import CellRunner, read_cell, run_matrix

__all__ = [
    "COLUMNS",
    "DEFAULT_POLICIES",
    "DEFAULT_REPORT_DIR",
    "EXIT_CRASHED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STATUSES",
    "STYLE",
    "CellResult",
    "CellRunner",
    "CellSpec",
    "MatrixError",
    "MatrixPlan",
    "add_matrix_parser",
    "build_parser",
    "cell_columns",
    "cmd_matrix",
    "legend",
    "main",
    "matrix_document",
    "parse_faults",
    "plan_matrix",
    "preflight",
    "read_cell",
    "render_markdown",
    "render_table",
    "run_matrix",
    "summarise_cell",
    "window_facts",
    "write_reports",
]
