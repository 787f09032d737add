"""KMIP operations a virtual client performs, on a connected PyKMIP client.

Every operation goes through PyKMIP's own `ProxyKmipClient` encoding, so the bytes on
the wire are what a real PyKMIP user sends. A Create carries a KMIP Name when the policy
has `KeyNames` (``kmschaos-<run id>-<n>``, see `harness.external`): on a real KMS every
key the harness made can be found and destroyed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.store import EMPTY_CLIENT_CONF

OPERATIONS = ("create", "get", "activate", "destroy", "locate")
MUTATING = frozenset({"create", "activate", "destroy"})
NEEDS_KEY = frozenset({"get", "activate", "destroy"})


@dataclass
class OpValue:
    key: str | None = None  # the unique identifier created or used
    digest: str | None = None  # sha256 of the key material a Get returned
    count: int | None = None  # objects a Locate returned
    name: str | None = None  # the Name a Create gave the key


class KeyNames(Protocol):
    """Names for the keys a run creates, and the record of where they were made."""

    def next_name(self) -> str: ...

    def created(self, name: str, uid: str, replica: str) -> None: ...


def empty_client_config(directory: Path) -> str:
    """PyKMIP's client insists on a config file; give it an empty one of ours so the
    user's ~/.pykmip/pykmip.conf never leaks into a run."""
    path = directory / EMPTY_CLIENT_CONF
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text("# intentionally empty: kmschaos passes every setting explicitly\n")
    return str(path)


def new_pie_client(hosts: list[str], port: int, ca: str, cert: str, key: str, conf: str) -> Any:
    from kmip.pie.client import ProxyKmipClient

    return ProxyKmipClient(
        hostname=",".join(hosts),
        port=port,
        cert=cert,
        key=key,
        ca=ca,
        ssl_version="PROTOCOL_SSLv23",
        config_file=conf,
    )


def perform(pie: Any, op: str, key: str | None, name: str | None = None) -> OpValue:
    """Run `op` on an open PyKMIP client; KMIP failures raise KmipOperationFailure. A
    Create names its key `name` (KMIP Name attribute) when given."""
    from kmip import enums

    if op == "create":
        uid = pie.create(enums.CryptographicAlgorithm.AES, 256, name=name)
        return OpValue(key=str(uid), name=name)
    if op == "get":
        obj = pie.get(key)
        return OpValue(key=key, digest=hashlib.sha256(bytes(obj.value)).hexdigest())
    if op == "activate":
        pie.activate(key)
        return OpValue(key=key)
    if op == "destroy":
        pie.destroy(key)
        return OpValue(key=key)
    if op == "locate":
        uids = pie.locate(maximum_items=16)
        return OpValue(count=len(uids))
    raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
