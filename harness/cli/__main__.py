"""``python -m harness.cli``: the `kmschaos` command."""

import sys

from harness.cli import main

sys.exit(main())
