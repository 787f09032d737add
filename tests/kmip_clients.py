"""PyKMIP's own client pointed at a cluster's `status --json`, for integration tests
(imported by the test modules next to it)."""

from __future__ import annotations

import hashlib
from typing import Any


def pykmip(
    status: dict[str, Any],
    replica: str | None = None,
    client: str = "vc-a",
    *,
    hosts: list[str] | None = None,
    timeout_s: float = 5.0,
    opened: bool = True,
) -> Any:
    """A ProxyKmipClient with `client`'s identity: through its links in its order (or
    only `hosts` of them), or straight to `replica`'s direct address; opened unless
    `opened` is false (to watch PyKMIP fail over while connecting)."""
    from kmip.pie.client import ProxyKmipClient

    c = status["clients"][client]
    if replica is None:
        hosts, port = hosts or [e["host"] for e in c["endpoints"]], c["endpoints"][0]["port"]
    else:
        r = status["replicas"][replica]
        hosts, port = [r["host"]], r["port"]
    p = ProxyKmipClient(
        hostname=",".join(hosts),
        port=port,
        cert=c["cert"],
        key=c["key"],
        ca=c["ca"],
        ssl_version="PROTOCOL_SSLv23",
        config_file=c["pykmip_conf"],
    )
    p.proxy.timeout = timeout_s
    if opened:
        p.open()
    return p


def holdings(status: dict[str, Any], replica: str) -> dict[str, str]:
    """uid -> sha256 of the key material, read over KMIP directly from `replica`."""
    p = pykmip(status, replica)
    try:
        return {str(u): hashlib.sha256(bytes(p.get(u).value)).hexdigest() for u in p.locate()}
    finally:
        p.close()
