"""The client key cache: served while fresh, expired after its ttl, dropped by a Destroy,
forgotten on restart unless it survives one."""

from harness.client.keycache import ClientKeyCache
from harness.client.policy_spec import KeyCache


def test_a_cached_key_expires_after_its_ttl_at_the_time_scale() -> None:
    cache = ClientKeyCache(KeyCache(ttl_s=10.0), time_scale=0.05)  # 0.5 s
    cache.put("k", "d")
    now = cache._keys["k"][1]
    assert cache.hit("k", now + 0.4) == "d"
    assert cache.hit("k", now + 0.6) is None
    assert cache.hit("k", now + 0.1) is None  # expired entries are gone


def test_without_a_ttl_a_key_stays_until_dropped() -> None:
    cache = ClientKeyCache(KeyCache(), time_scale=1.0)
    cache.put("k", "d")
    assert cache.hit("k", 1e12) == "d"
    cache.drop("k")
    assert cache.hit("k") is None


def test_a_restart_forgets_unless_the_cache_survives_it() -> None:
    lost, kept = (
        ClientKeyCache(KeyCache(), 1.0),
        ClientKeyCache(KeyCache(survives_restart=True), 1.0),
    )
    for c in (lost, kept):
        c.put("k", "d")
        c.restarted()
    assert lost.hit("k") is None
    assert kept.hit("k") == "d"
