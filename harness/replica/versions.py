"""The KMIP protocol versions a replica speaks (``--kmip-versions 1.2,1.4``).

PyKMIP's server speaks 1.0–2.0: its engine keeps the list (`KmipEngine._protocol_versions`)
and refuses a request whose header names another version in `_set_protocol_version`:
``InvalidMessage("KMIP 1.1 is not supported by the server.")``, which the session turns
into a response in the request's version with one batch item, no operation, Result
Status Operation Failed, Result Reason Invalid Message and that message (KMIP's error
handling for a protocol version the server does not support); the connection stays
open. `restrict` narrows the engine's list, so that path answers, Discover Versions
lists only the versions spoken, and a write the sync/quorum gate would forward or
commit is refused in front of the gate with the same answer.
"""

from __future__ import annotations

from typing import Any

FLAG = "--kmip-versions"  # comma-separated, e.g. 1.2,1.4; absent: PyKMIP's whole list


def parse(text: str) -> list[tuple[int, int]]:
    """``1.2,1.4`` → [(1, 4), (1, 2)], newest first as PyKMIP lists them; ValueError
    for an empty list or a version that is not ``major.minor``."""
    out: set[tuple[int, int]] = set()
    for part in text.split(","):
        major, sep, minor = part.strip().partition(".")
        if not sep or not major.isdigit() or not minor.isdigit():
            raise ValueError(f"not a KMIP version: {part.strip()!r} (e.g. 1.2)")
        out.add((int(major), int(minor)))
    if not out:
        raise ValueError("no KMIP version given")
    return sorted(out, reverse=True)


def restrict(engine: Any, versions: list[tuple[int, int]]) -> None:
    """Make `engine` (a started `KmipEngine`, its write gate already installed) speak
    only `versions`: any other request version gets PyKMIP's own refusal."""
    from kmip.core import exceptions
    from kmip.core.messages import contents

    spoken = [contents.ProtocolVersion(major, minor) for major, minor in versions]
    unknown = [str(v) for v in spoken if v not in engine._protocol_versions]
    if unknown:
        raise ValueError(f"PyKMIP's server does not speak KMIP {', '.join(unknown)}")
    engine._protocol_versions = spoken
    inner = engine.process_request

    def process_request(request: Any, credential: Any = None) -> Any:
        version = request.request_header.protocol_version
        if version not in spoken:  # the engine's own words (`_set_protocol_version`)
            raise exceptions.InvalidMessage(f"KMIP {version} is not supported by the server.")
        return inner(request, credential)

    engine.process_request = process_request
