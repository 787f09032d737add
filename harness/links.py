"""Links: every path that can fail is its own Toxiproxy proxy.

A `Link` is one (client -> replica) path: the client connects to ``listen``, Toxiproxy
forwards to the replica's ``upstream``. `ToxiproxyAPI` is a small HTTP client with
timeouts on every call (toxiproxy-python keeps its server address in class attributes
and sets no timeouts, so it cannot drive two servers from one process safely).

    client ──> listen 127.X.Y.i:P_client ──[toxics]──> upstream 127.X.Y.(100+i):P_replica
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from harness.wait import WaitTimeout, tail, wait_until


class ToxiproxyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Link:
    name: str  # "<client>-><replica>"
    client: str
    replica: str
    listen: str  # "host:port"
    upstream: str  # "host:port"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class ToxiproxyAPI:
    """The Toxiproxy HTTP API of one server (`base` like ``http://127.X.Y.254:8474``)."""

    def __init__(self, base: str, timeout_s: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "kmschaos"

    def _call(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        url = f"{self.base}{path}"
        try:
            r = self._session.request(method, url, json=body, timeout=timeout_s or self.timeout_s)
        except requests.RequestException as e:
            raise ToxiproxyError(f"Toxiproxy API {method} {url} failed: {e}") from e
        if r.status_code >= 300:
            raise ToxiproxyError(
                f"Toxiproxy API {method} {url} -> {r.status_code}: {r.text.strip()}"
            )
        return r.json() if r.content else None

    def version(self) -> str:
        r = self._session.get(f"{self.base}/version", timeout=self.timeout_s)
        r.raise_for_status()
        try:
            return str(r.json().get("version"))
        except ValueError:
            return r.text.strip()

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> None:
        self._call(
            "POST",
            "/proxies",
            {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled},
        )

    def populate(self, links: Sequence[Link]) -> None:
        """Create (or replace) the proxies of `links` in one call (Toxiproxy's
        ``/populate``): a 40-replica cluster has 1,760 of them."""
        if not links:
            return
        body = [
            {"name": lk.name, "listen": lk.listen, "upstream": lk.upstream, "enabled": True}
            for lk in links
        ]
        # each proxy starts listening before the call returns: about 2 ms each when busy
        self._call("POST", "/populate", body, timeout_s=self.timeout_s + 0.01 * len(links))

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def proxies(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/proxies")
        return result

    def add_toxic(
        self,
        proxy: str,
        name: str,
        kind: str,
        stream: str,
        attributes: dict[str, Any],
        toxicity: float = 1.0,
    ) -> None:
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {
                "name": name,
                "type": kind,
                "stream": stream,
                "toxicity": toxicity,
                "attributes": attributes,
            },
        )

    def remove_toxic(self, proxy: str, name: str) -> None:
        try:
            self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")
        except ToxiproxyError as e:
            if "404" not in str(e):
                raise

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    def close(self) -> None:
        self._session.close()


def await_api(
    base: str,
    deadline_s: float,
    stopped: Callable[[], str | None],
    logs: Sequence[Path] = (),
) -> None:
    """Wait until the Toxiproxy API at `base` answers. `stopped()` says why the server
    can no longer answer (it exited), or None: then `ToxiproxyError` at once."""
    api = ToxiproxyAPI(base, timeout_s=1.0)

    def ready() -> bool:
        why = stopped()
        if why:
            raise ToxiproxyError(why)
        try:
            api.version()
            return True
        except requests.RequestException:
            return False

    try:
        wait_until(ready, deadline_s, f"the Toxiproxy API at {base}", logs=logs)
    finally:
        api.close()


# Toxiproxy's own CPU per proxied connection (bench/README.md, section 1): at its default
# level it logs 8 lines for each (accept, link set-up, close; each with its caller's
# file:line, one write each), and with a Go P per CPU its goroutines hop between threads
# (about 48 context switches per connection, 23 with one P). Both cut: 1.84 -> 1.14 ms of
# CPU per connection on 2 CPUs. Errors (an upstream it cannot dial, an API port taken)
# are still logged. The caller's environment wins.
SERVER_ENV = {"LOG_LEVEL": "error", "GOMAXPROCS": "1"}


def start_toxiproxy(
    binary: str, host: str, port: int, log_path: Path, env: dict[str, str], deadline_s: float = 15
) -> subprocess.Popen[bytes]:
    """Start a Toxiproxy server with its API on host:port (`SERVER_ENV` unless `env`
    sets those variables); wait until it answers."""
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [binary, "-host", host, "-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**SERVER_ENV, **env},
        start_new_session=True,
    )
    log.close()

    def exited() -> str | None:
        if proc.poll() is None:
            return None
        return (
            f"Toxiproxy server exited with status {proc.returncode} while starting on "
            f"{host}:{port}; last log lines:\n{tail(log_path)}"
        )

    try:
        await_api(f"http://{host}:{port}", deadline_s, exited, logs=[log_path])
    except (WaitTimeout, ToxiproxyError):
        proc.kill()
        raise
    return proc
