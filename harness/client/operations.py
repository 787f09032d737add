"""KMIP operations a virtual client performs, on a connected PyKMIP client.

Every operation goes through PyKMIP's own `ProxyKmipClient` encoding, so the bytes on
the wire are what a real PyKMIP user sends. A Create carries a KMIP Name when the policy
has `KeyNames` (``kmschaos-<run id>-<n>``, see `harness.external`): on a real KMS every
key the harness made can be found and destroyed.

The operations that change a key (`CHANGES`) say what they leave on it: its KMIP State,
its absence (Destroy), or a new Name. The `lost_update` checker reads that to know what
every replica must show after the last acknowledged change. Beside Create, Activate and
Destroy there are Revoke (reason Cessation of Operation: Active → Deactivated), Revoke
with reason Key Compromise (`compromise`: → Compromised, from any state) and `rename`:
KMIP 1.x ModifyAttribute of the key's first Name (PyKMIP's server implements
ModifyAttribute from KMIP 1.0 for Name, Object Group and Application Specific
Information; SetAttribute only on KMIP 2.0 and only for attributes not yet set; it has
no AddAttribute). These operations are opt-in: no default mix draws them.

`state` reads a key's KMIP State (Get Attributes of "State"; the value's `state`, as
PyKMIP names it, e.g. ``ACTIVE``): what a client polling its master key asks
(`harness.client.keystate`). It changes nothing and no default mix draws it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.store import EMPTY_CLIENT_CONF


@dataclass(frozen=True)
class Change:
    """What an acknowledged operation leaves on its key: its KMIP State (as PyKMIP names
    it, e.g. ``DEACTIVATED``; None: unchanged), no key at all (`gone`: Destroy deletes
    it), or a Name it chose (`renames`: the name is in the operation's value). `title`
    is the KMIP operation as a person names it."""

    title: str
    state: str | None = None
    gone: bool = False
    renames: bool = False


# the operations that change a key, and what each leaves on it (PyKMIP's server: Create
# makes a Pre-Active key, Activate needs Pre-Active, Revoke for Cessation of Operation
# needs Active, Revoke for Key Compromise works from any state, Destroy refuses an
# Active key)
CHANGES: dict[str, Change] = {
    "create": Change("Create", state="PRE_ACTIVE"),
    "activate": Change("Activate", state="ACTIVE"),
    "revoke": Change("Revoke", state="DEACTIVATED"),
    "compromise": Change("Revoke (key compromise)", state="COMPROMISED"),
    "destroy": Change("Destroy", gone=True),
    "rename": Change("ModifyAttribute (Name)", renames=True),
}
OPERATIONS = (
    "create",
    "get",
    "activate",
    "destroy",
    "locate",
    "revoke",
    "compromise",
    "rename",
    "state",
)
MUTATING = frozenset(CHANGES)
NEEDS_KEY = frozenset({"get", "state", *CHANGES}) - {"create"}
RENAMED_PREFIX = "renamed-"  # a `rename` names the key RENAMED_PREFIX + 8 hex digits


@dataclass
class OpValue:
    key: str | None = None  # the unique identifier created or used
    digest: str | None = None  # sha256 of the key material a Get returned
    count: int | None = None  # objects a Locate returned
    name: str | None = None  # the Name a Create gave the key
    state: str | None = None  # the KMIP State a `state` read (PyKMIP's name: ACTIVE, ...)


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


def kmip_version(version: str) -> Any:
    """PyKMIP's enum for a KMIP protocol version such as ``1.1``."""
    from kmip import enums

    return getattr(enums.KMIPVersion, "KMIP_" + version.replace(".", "_"))


def new_pie_client(
    hosts: list[str], port: int, ca: str, cert: str, key: str, conf: str, version: str = "1.2"
) -> Any:
    """A PyKMIP client for `hosts` that sends KMIP `version` in every request header."""
    from kmip.pie.client import ProxyKmipClient

    return ProxyKmipClient(
        hostname=",".join(hosts),
        port=port,
        cert=cert,
        key=key,
        ca=ca,
        ssl_version="PROTOCOL_SSLv23",
        config_file=conf,
        kmip_version=kmip_version(version),
    )


def perform(pie: Any, op: str, key: str | None, name: str | None = None) -> OpValue:
    """Run `op` on an open PyKMIP client; KMIP failures raise KmipOperationFailure. A
    Create names its key `name` (KMIP Name attribute) when given; a `rename` gives the
    key's first Name a fresh value and returns it as the value's `name`."""
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
    if op == "state":
        _, attrs = pie.get_attributes(key, ["State"])
        return OpValue(key=key, state=state_of(attrs))
    if op in ("revoke", "compromise"):
        reason = (
            enums.RevocationReasonCode.KEY_COMPROMISE
            if op == "compromise"
            else enums.RevocationReasonCode.CESSATION_OF_OPERATION
        )
        pie.revoke(reason, key)
        return OpValue(key=key)
    if op == "rename":
        from kmip.core.factories.attributes import AttributeFactory

        new = f"{RENAMED_PREFIX}{secrets.token_hex(4)}"
        first = AttributeFactory().create_attribute(enums.AttributeType.NAME, new, index=0)
        pie.modify_attribute(unique_identifier=key, attribute=first)
        return OpValue(key=key, name=new)
    raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")


def state_of(attributes: list[Any]) -> str | None:
    """The State among a Get Attributes answer's attributes, as PyKMIP names it
    (``ACTIVE``, ``DEACTIVATED``, ...); None when the answer has none."""
    for a in attributes:
        if a.attribute_name.value == "State" and a.attribute_value is not None:
            value = a.attribute_value.value
            return str(getattr(value, "name", value))
    return None
