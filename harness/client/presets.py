"""The policy presets: the clients people run in front of a KMS cluster, each with the
source of what it models (`docs/clients.md` has the quotes). A topology names one
(`policy: mongodb`) or adjusts one (`policy: {preset: ontap, groups: [...]}`)."""

from __future__ import annotations

from harness.client.policy_spec import PolicySpec, preset

VCENTER = preset(
    PolicySpec(
        name="vcenter",
        position=10,
        selection="per-operation",
        kmip_version="1.1",
        summary="walks its ordered list for **every** operation, a fresh TLS connection each "
        "time (vCenter: 60 s per request)",
        source="VMware: vCenter tries the KMS servers of a cluster in turn; 'vSphere currently "
        "uses a KMIP 1.1 compliant library' (docs/clients.md)",
    )
)

PYKMIP = preset(
    PolicySpec(
        name="pykmip",
        position=20,
        engine="pykmip",
        selection="sticky",
        open_connection_error="fail",
        resend_mutations=False,
        checks_server_name=False,  # measured: no server_hostname, check_hostname off
        kmip_version="1.2",
        summary="the real `kmip.pie.client.ProxyKmipClient` with the comma-separated host list "
        "and one port, used as-is; one long-lived connection, one timeout",
        source="PyKMIP 0.10 `KMIPProxy.open` (kmip/services/kmip_client.py): hosts tried in "
        "order while connecting; errors on an open connection are raised",
    )
)

MONGODB = preset(
    PolicySpec(
        name="mongodb",
        position=30,
        selection="at-start",
        connect_timeout_s=5.0,  # kmipConnectTimeoutMS 5000
        retries=0,  # kmipConnectRetries 0
        kmip_version="1.2",
        summary="MongoDB Enterprise: `--kmipServerName` list tried in order **only at "
        "start-up**, then that server until restarted; 5 s connect timeout, no retries",
        source="mongod reference: kmipServerName, kmipConnectTimeoutMS (5000, ≥ 1000), "
        "kmipConnectRetries (0), kmipKeyStatePollingSeconds (900) (docs/clients.md)",
    )
)

ONTAP = preset(
    PolicySpec(
        name="ontap",
        position=40,
        selection="per-operation",
        kmip_version="1.2",
        summary="NetApp ONTAP (9.11.1+): key-server groups, each primary then its secondaries "
        "in listed order (`groups`); an I/O timeout per server",
        source="ONTAP docs 'Configure clustered external key servers'; "
        "`security key-manager external modify -timeout` (docs/clients.md)",
    )
)

KMIP_GO = preset(
    PolicySpec(
        name="kmip-go",
        position=50,
        selection="sticky",
        connect_timeout_s="os",
        response_timeout_s="os",
        retries=3,
        retry_on=("eof",),
        resend_mutations=True,
        skip_failed_s=5.0,
        kmip_version="1.4",
        summary="ovh/kmip-go: `DialCluster` walks the list, **skipping a server that failed in "
        "the last 5 s**; a request is **re-sent up to 3 times on EOF / broken pipe** (a Create "
        "may run twice); no connect or response timeout of its own (opt-in middleware)",
        source="github.com/ovh/kmip-go kmipclient/dialer_cluster.go, transport.go "
        "(docs/clients.md)",
    )
)

RETRYING = preset(
    PolicySpec(
        name="retrying",
        position=60,
        selection="sticky",
        retries=1,
        retry_on=("refused", "reset", "eof", "tls-error"),
        resend_mutations=True,  # Arsenal retries every request, Create included
        skip_failed_s=30.0,
        kmip_version="1.2",
        summary="a long-lived client: on EOF / reset / TLS errors it reconnects and sends "
        "again once (a Create too), then the next server; a server that failed to connect "
        "is avoided for 30 s",
        source="ceph-nvmeof PR #1905 (reconnect + 1 retry per endpoint, then the next); "
        "Scality Arsenal PR #2397 (unhealthy host out for 30 s) (docs/clients.md)",
    )
)
