"""The replication agent's ``peers.json``: which peers a replica pushes to, and where.

    {"me": "kms-a", "peers": {"kms-b": "127.X.Y.253:41234", ...}}

Each address is the replication link (a Toxiproxy proxy) in front of that peer's agent.
The backend writes the file before the replica starts (`write_peers`); the agent reads
it again on every use (`read_peers`), so a test or a backend may rewrite it at any time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PEERS_FILE = "peers.json"


def write_peers(folder: Path, me: str, peers: dict[str, str]) -> None:
    """Write `folder`/peers.json atomically: peer name -> address of the link to it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PEERS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"me": me, "peers": peers}, indent=2))
    os.replace(tmp, path)


def read_peers(path: Path) -> dict[str, str]:
    """Peer name -> address from a peers.json; empty when it is missing or unreadable."""
    try:
        return dict(json.loads(path.read_text())["peers"])
    except (OSError, ValueError, KeyError):
        return {}
