"""The replica program: one real PyKMIP server over TLS with client-certificate auth.

Run as ``python -m harness.replica --name kms-a --host 127.X.Y.101 --port 0 ...``.
It binds (port 0 lets the kernel choose), writes the bound port to ``--port-file``
atomically, then serves until killed. The harness reads the port file and then waits
for a real KMIP round trip before it calls the replica ready.

PyKMIP's server closes a session after 10 s of silence (it sets the socket default
timeout to 10 s). A stalled-service fault must stay silent for a client's whole
response timeout (vCenter: 60 s), and a close would reach the client through the
blackholed link as an early EOF, so sessions here wait for the client
(``--session-timeout``, default none). The listening socket keeps PyKMIP's 10 s accept
timeout, which only paces its serve loop.

``--kmip-versions 1.2,1.4`` narrows the KMIP protocol versions it speaks (default: all
PyKMIP's server speaks, 1.0–2.0); a request in another is refused as PyKMIP refuses an
unknown version (`versions`).

PyKMIP's server would start helper processes (a multiprocessing manager, a policy
monitor); here its policies live in its own process (`inprocess`), so a replica is one
process. The harness still starts every replica in its own session and signals the
whole process group, so a kill, a SIGSTOP and a teardown reach anything it starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from harness.replica import KMS_DB, SERVER_LOG, versions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.replica")
    ap.add_argument("--name", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--index", type=int, default=1, help="replica index (1-99) in the cluster")
    ap.add_argument("--replication", default="none", help="none | async | sync | quorum")
    ap.add_argument("--primary", default="", help="sync: the primary replica's name")
    ap.add_argument("--replicas", type=int, default=1, help="quorum: replicas in the cluster")
    ap.add_argument("--interval-ms", type=float, default=250, help="async push interval")
    ap.add_argument("--repl-port", type=int, default=0, help="replication port (0: any)")
    ap.add_argument(
        "--peers-file",
        default="",
        help="the agent's peers.json (peer -> address), re-read on every use "
        "(default: DATA_DIR/peers.json)",
    )
    ap.add_argument(
        "--no-announce",
        action="store_true",
        help="async: started with its cluster, so no peer knows an older epoch of it: do "
        "not push to a peer before there is something to send",
    )
    ap.add_argument(
        "--control-dir",
        default="",
        help="the folder the harness writes live controls into (tls.json, clock; "
        "harness.replica.control); empty: no live controls",
    )
    ap.add_argument(
        "--session-timeout",
        type=float,
        default=0,
        help="seconds of client silence before a session is closed (0: never)",
    )
    ap.add_argument(
        versions.FLAG,
        default="",
        help="the KMIP protocol versions it speaks, comma-separated (default: all PyKMIP's "
        "server speaks); a request in another is refused (Invalid Message)",
    )
    args = ap.parse_args(argv)
    spoken = None
    if args.kmip_versions:
        try:
            spoken = versions.parse(args.kmip_versions)
        except ValueError as e:
            ap.error(f"{versions.FLAG}: {e}")

    from kmip.services.server import KmipServer

    from harness.replica import control, inprocess

    control.patch_sleep()
    inprocess.install()

    if args.replication != "none":
        from harness.replica.store import install_id_hook

        install_id_hook(args.index)

    data = Path(args.data_dir)
    policies = data / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    server = KmipServer(
        hostname=args.host,
        port=None,
        certificate_path=args.cert,
        key_path=args.key,
        ca_path=args.ca,
        auth_suite="TLS1.2",
        config_path=None,
        log_path=str(data / SERVER_LOG),
        policy_path=str(policies),
        enable_tls_client_auth=True,
        logging_level="INFO",
        database_path=str(data / KMS_DB),
    )
    # PyKMIP's config refuses port 0; set it directly so the kernel picks a free one.
    server.config.settings["port"] = args.port
    logging.getLogger("kmip.server").propagate = False
    server.start()
    socket.setdefaulttimeout(args.session_timeout or None)  # accepted sockets inherit it
    port = server._socket.getsockname()[1]
    if args.control_dir:
        control.install_session_hooks()
        watcher = control.ControlWatcher(
            server, Path(args.control_dir), args.cert, args.key, args.ca
        )
        watcher.poll()  # what the harness set before the start applies from the first client
        watcher.start()
    repl_port = 0
    if args.replication != "none":
        from harness.replica.replication import Agent

        logging.basicConfig(
            filename=str(data / "replication.log"),
            level=logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
        agent = Agent(
            args.name,
            args.host,
            args.repl_port,
            data,
            args.interval_ms / 1000,
            Path(args.peers_file) if args.peers_file else None,
            announce=not args.no_announce,
        )
        if args.replication in ("sync", "quorum"):
            from harness.replica.replication import WriteGate

            WriteGate(agent, server._engine, args.replication, args.primary, args.replicas)
        agent.start()
        repl_port = agent.port
    if spoken is not None:
        versions.restrict(server._engine, spoken)  # in front of the write gate
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(f"{port}\n{repl_port}\n")
    os.replace(tmp, args.port_file)
    print(f"replica {args.name} serving on {args.host}:{port}", flush=True)
    try:
        server.serve()
    finally:
        os._exit(0)  # helper processes die with the process group


if __name__ == "__main__":
    sys.exit(main())
