"""A client's key cache (`PolicySpec.key_cache`): the material of keys it has read,
kept in memory. A Get of a cached key is served without the KMS (recorded as a
`Complete` with `cached=True` and no attempts); a Destroy the client made drops the key;
a restart forgets everything unless the cache `survives_restart` (ESXi 7.0U2+ with key
persistence in the TPM). Durations are at the topology's time scale."""

from __future__ import annotations

import threading
import time

from harness.client.policy_spec import KeyCache


class ClientKeyCache:
    def __init__(self, spec: KeyCache, time_scale: float) -> None:
        self.spec = spec
        self.ttl_s = None if spec.ttl_s is None else spec.ttl_s * time_scale
        self._keys: dict[str, tuple[str, float]] = {}  # uid -> (digest, when read)
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> str | None:
        """The cached digest of `key`, or None when it is not cached (or has expired)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            got = self._keys.get(key)
            if got is None:
                return None
            digest, at = got
            if self.ttl_s is not None and now - at > self.ttl_s:
                del self._keys[key]
                return None
            return digest

    def put(self, key: str, digest: str) -> None:
        with self._lock:
            self._keys[key] = (digest, time.monotonic())

    def drop(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def restarted(self) -> None:
        if not self.spec.survives_restart:
            with self._lock:
                self._keys.clear()

    def __len__(self) -> int:
        return len(self._keys)
