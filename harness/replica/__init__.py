"""The replica program: one PyKMIP server plus, when the cluster replicates, its agent.

``python -m harness.replica`` (`__main__`) is what the local backend spawns and what the
kms image runs. This package imports nothing from the rest of `harness`: it runs alone
in that image, whose inputs are exactly this package's files (`harness.images`), and
tests/test_imports.py fails if it reaches outside.

- `__main__`: the program (arguments, PyKMIP's server, the port file);
- `store`: PyKMIP's database as whole objects with versions, cluster-unique ids;
- `replication`: the `async` agent and the `sync`/`quorum` write gate;
- `peers`: the agent's ``peers.json``, written by the backends, read by the agent;
- `versions`: the KMIP protocol versions it speaks (``--kmip-versions``), others refused.

The files the program keeps in its data folder are named here; `harness.store` names
them for the rest of the harness.
"""

SERVER_LOG = "pykmip-server.log"
KMS_DB = "kms.sqlite"  # PyKMIP's objects
VERSIONS_DB = "replication.sqlite"  # the agent's versions and peers' acknowledgements
DATABASES = (KMS_DB, VERSIONS_DB)
