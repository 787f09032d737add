"""Reading a client's `policy:`: a preset name, or a mapping that adjusts a preset
(`harness.topology.fileformat.POLICY_MAPPING`), checked field by field and then as a
whole (an `at-start` client skips nothing; PyKMIP's real client takes only its own
knobs; `groups` name known replicas, each once)."""

from __future__ import annotations

from typing import Any

from harness.client.policy_spec import (
    OS,
    POLICIES,
    RETRYABLE,
    Group,
    KeyCache,
    PolicySpec,
    adjusted,
)
from harness.topology.fileformat import (
    _TIMEOUT,
    GROUP,
    KEY_CACHE,
    POLICY_MAPPING,
    PRESET,
    REPLICA_NAME,
)
from harness.yamlfile import Reader, Y

_TIMEOUT_NUMBER = _TIMEOUT.options[0]
MAX_GROUPS = 4  # ONTAP 9.11.1+: up to 4 primaries
MAX_SECONDARIES = 3  # each with up to 3 secondaries


def read_policy(r: Reader, y: Y, replicas: dict[str, str]) -> PolicySpec:
    """The policy at `y`; `replicas` are the topology's (name → site)."""
    if not isinstance(y.value, dict):
        return POLICIES[r.take(y, PRESET)]
    body = r.mapping(y, POLICY_MAPPING)
    base = POLICIES[r.take(body["preset"], PRESET)] if "preset" in body else POLICIES["vcenter"]
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "preset":
            continue
        if key in ("connect_timeout_s", "response_timeout_s"):
            changes[key] = OS if value.value == OS else r.take(value, _TIMEOUT_NUMBER)
        elif key == "groups":
            changes[key] = _groups(r, value, replicas)
        elif key == "key_cache":
            body_c = r.mapping(value, KEY_CACHE)
            ttl = r.take(body_c["ttl_s"], KEY_CACHE.shape("ttl_s")) if "ttl_s" in body_c else None
            survives = (
                r.take(body_c["survives_restart"], KEY_CACHE.shape("survives_restart"))
                if "survives_restart" in body_c
                else False
            )
            changes[key] = KeyCache(ttl, survives)
        elif key == "retry_on":
            outcomes = [r.choice(v, RETRYABLE, "attempt outcome") for v in r.items(value, what=key)]
            changes[key] = tuple(dict.fromkeys(outcomes))
        else:
            changes[key] = r.take(value, POLICY_MAPPING.shape(key))
    own = PolicySpec.ENGINE_FIELDS.get(base.engine)
    if own is not None:
        for key in changes:
            if key not in own:
                raise r.problem(
                    body[key],
                    f"{base.name} is PyKMIP's real client: it has no `{key}`; it takes only "
                    f"{', '.join(own)} (use another preset to model other behaviour)",
                    at_key=True,
                )
    spec = adjusted(base, **changes)
    if spec.selection == "at-start" and spec.skip_failed_s:
        where = body.get("skip_failed_s") or body.get("selection") or y
        raise r.problem(
            where,
            "an at-start client never walks its list again after it starts, so it has "
            "nothing to skip: remove skip_failed_s or choose selection sticky/per-operation",
        )
    if spec.retries and not spec.retry_on:
        raise r.problem(
            body.get("retries", y), "retries without retry_on: say which outcomes are retried"
        )
    return spec


def _groups(r: Reader, y: Y, replicas: dict[str, str]) -> tuple[Group, ...]:
    out: list[Group] = []
    seen: set[str] = set()
    items = r.items(y, what="groups")
    if len(items) > MAX_GROUPS:
        raise r.problem(y, f"{len(items)} groups; ONTAP takes at most {MAX_GROUPS} primaries")
    for item in items:
        body = r.mapping(item, GROUP)
        primary_y = r.required(body, item, "primary", "name the primary key server")
        members = [primary_y]
        if "secondaries" in body:
            secondaries = r.items(body["secondaries"], what="secondaries")
            if len(secondaries) > MAX_SECONDARIES:
                raise r.problem(
                    body["secondaries"],
                    f"{len(secondaries)} secondaries; a primary has at most {MAX_SECONDARIES}",
                )
            members += secondaries
        names = []
        for m in members:
            name = r.take(m, REPLICA_NAME)
            if name not in replicas:
                raise r.problem(m, f"unknown replica {name!r} (known: {', '.join(replicas)})")
            if name in seen:
                raise r.problem(m, f"replica {name!r} is in two groups; list it once")
            seen.add(name)
            names.append(name)
        out.append(Group(names[0], tuple(names[1:])))
    return tuple(out)
