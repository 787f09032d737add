"""Fuzzing the YAML loaders (topology, rehearsal) with hypothesis.

Whatever the input — random text, a soup of YAML tokens, random nested data dumped to
YAML, mutations of the real files — a loader returns its object or raises its own error
(`TopologyError`, `RehearsalError`) whose message starts with the file name (one line for
rehearsals: it is a collection error); never any other exception. The runs are
derandomized (the same inputs on every run, so CI is reproducible) and each test counts
the inputs it tried, prints the tally and records it as a JUnit property.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from harness import rehearsal, topology
from harness.checkers import CHECKERS
from harness.faults import FAULTS
from harness.rehearsal import STEP_KINDS, RehearsalError, parse_rehearsal
from harness.toolchain import repo_root
from harness.topology import TopologyError, parse_topology

# hypothesis keeps caches; not in the work tree
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"kmschaos-hypothesis-{os.getuid()}")

EXAMPLES = 200  # per loader and input kind: 800 inputs per loader
SOURCE = "fuzz.yaml"
SCENARIOS = repo_root() / "scenarios"
REHEARSALS = SCENARIOS / "rehearsals"
TOPOLOGY_TEXTS = [p.read_text() for p in sorted((SCENARIOS / "topologies").glob("*.yaml"))]
RICH_REHEARSAL = """\
name: rich
description: every step kind once
topology: ../topologies/two-sites-async.yaml
workload: {clients: [vc-a, vc-b], rate_per_s: 20, ops: {get: 0.8, create: 0.2}, per_client: 1}
steps:
  - wait: 500ms
  - inject: {fault: partition, targets: [site-a, [kms-d, kms-e]], as: cut, one_way: false}
  - inject: {fault: latency, targets: [kms-a, kms-b], ms: 100, jitter: 5, as: slow}
  - expect:
      failover: {client: vc-a, within: 2s, to_site: site-a, fault: cut}
      availability: {min: 90%, max_gap: 1s}
      order: pass
  - heal: [cut, slow]
  - run: {command: "true", timeout: 10s, expect_exit: 0}
  - checkpoint: look at the dashboards
  - random: {faults: [refuse, latency], targets: [kms-a, kms-b], count: 2, hold: [1s, 2s],
             gap: 1s, params: {latency: {ms: 50}}}
  - expect: {durability: pass, convergence: {within: 10s}, site_availability: pass}
seed: 3
"""
REHEARSAL_TEXTS = [p.read_text() for p in sorted(REHEARSALS.glob("*.yaml"))] + [RICH_REHEARSAL]

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

WORDS = [
    "kms-a",
    "kms-x",
    "site-a",
    "site-b",
    "vc-a",
    "vc-x",
    "vcenter",
    "async",
    "sync",
    "none",
    "5s",
    "500ms",
    "-1s",
    "2m",
    "pass",
    "fail",
    "all",
    "90%",
    "one-site.yaml",
    "two-sites-async.yaml",
    "site-a site-b",
    "kms-a,kms-b",
    *FAULTS,
    *STEP_KINDS,
    *CHECKERS,
]


def _known_keys() -> set[str]:
    """Every key the two formats know (their `*_KEYS` tables): new fields get fuzzed too."""
    keys: set[str] = set()
    for module in (topology, rehearsal):
        for name, value in vars(module).items():
            if name.endswith("_KEYS"):
                groups = value.values() if isinstance(value, dict) else [value]
                keys.update(k for group in groups for k in group)
    return keys


KEYS = sorted(
    _known_keys()
    | {"sites", "replicas", "site", "order", "policy", "profile", "interval_ms", "primary"}
    | {"response_s", "connect_s", "fault", "target", "targets", "as", "ms", "client"}
    | set(STEP_KINDS)
)
TOKENS = [
    *(f"{k}: " for k in KEYS),
    *WORDS[:24],
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    ": ",
    ", ",
    "[",
    "]",
    "{",
    "}",
    "? ",
    "&a ",
    "*a",
    "<<: *a",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!timestamp ",
    "!!str ",
    "!!set ",
    "!!binary ",
    "!custom ",
    "'",
    '"',
    "|\n",
    ">\n",
    "# c\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "~",
    "null",
    "true",
    "0x1f",
    "1e999",
    ".nan",
    "-.inf",
    "2020-13-45",
    "12:30:00",
    "9" * 400,
    "\t",
    "\x00",
    "\ufeff",
    "é",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
keys = st.sampled_from(KEYS) | st.text(max_size=8) | st.integers() | st.none() | st.booleans()
nested = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)
topology_data = st.fixed_dictionaries({}, optional={k: nested for k in (*topology.TOP_KEYS, "x")})
step = st.dictionaries(
    st.sampled_from(STEP_KINDS) | st.text(max_size=6),
    st.dictionaries(st.sampled_from(KEYS), nested, max_size=6) | nested,
    min_size=1,
    max_size=2,
)
rehearsal_data = st.fixed_dictionaries(
    {
        "topology": st.sampled_from(["one-site.yaml", "two-sites-async.yaml", "two-sites"])
        | scalars,
        "steps": st.lists(step, max_size=6) | nested,
    },
    optional={
        "workload": st.dictionaries(st.sampled_from(KEYS), nested, max_size=5) | nested,
        "seed": scalars,
        "name": scalars,
        "x": nested,
    },
)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _paths(data: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*here, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*here, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    """A real file with a few changes: to its data (replace, delete, duplicate, wrap a
    value) or to its text (drop, repeat or re-indent a line, insert characters)."""
    text = draw(st.sampled_from(texts))
    if draw(st.booleans()):
        data = yaml.safe_load(text)
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(_paths(data)))
            if not path:
                continue
            parent = data
            for p in path[:-1]:
                parent = parent[p]
            last = path[-1]
            how = draw(st.sampled_from(["replace", "delete", "duplicate", "wrap"]))
            if how == "replace":
                parent[last] = draw(nested)
            elif how == "delete":
                del parent[last]
            elif how == "duplicate" and isinstance(parent, list):
                parent.insert(last, parent[last])
            else:
                parent[last] = [parent[last]]
        return dump(data)
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "repeat", "indent", "insert"]))
        if how == "drop":
            del lines[i]
        elif how == "repeat":
            lines.insert(i, lines[i])
        elif how == "indent":
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        else:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(TOKENS)) + lines[i][at:]
        if not lines:
            break
    return "\n".join(lines) + "\n"


def load_topology_text(text: str) -> str:
    try:
        parse_topology(text, SOURCE)
    except TopologyError as e:
        assert str(e).startswith(f"{SOURCE}: "), str(e)
        return "clean error"
    return "loaded"


def load_rehearsal_text(text: str) -> str:
    try:
        parse_rehearsal(text, SOURCE, base_dir=REHEARSALS)
    except RehearsalError as e:
        message = str(e)
        assert message.startswith(f"{SOURCE}: ") and "\n" not in message, message
        return "clean error"
    return "loaded"


INPUTS: dict[str, Callable[[str], st.SearchStrategy[str]]] = {
    "random text": lambda kind: st.text(max_size=400),
    "YAML tokens": lambda kind: st.lists(st.sampled_from(TOKENS), max_size=60).map("".join),
    "random data": lambda kind: (topology_data if kind == "topology" else rehearsal_data).map(dump),
    "mutated files": lambda kind: mutated(
        TOPOLOGY_TEXTS if kind == "topology" else REHEARSAL_TEXTS
    ),
}
LOADERS = {"topology": load_topology_text, "rehearsal": load_rehearsal_text}


@pytest.mark.parametrize("inputs", list(INPUTS))
@pytest.mark.parametrize("loader", list(LOADERS))
def test_loader_gives_an_object_or_its_own_error(
    loader: str, inputs: str, record_property: Callable[[str, object], None]
) -> None:
    tally: Counter[str] = Counter()
    load = LOADERS[loader]

    @FUZZ
    @given(INPUTS[inputs](loader))
    def one(text: str) -> None:
        tally[load(text)] += 1

    one()
    tried = sum(tally.values())
    print(f"{loader} loader, {inputs}: {tried} inputs: {dict(tally)}")
    record_property("fuzz_inputs", tried)
    record_property("fuzz_outcomes", dict(tally))
    assert tried >= EXAMPLES * 0.9, tally
    if inputs == "mutated files":
        assert tally["loaded"] and tally["clean error"], tally  # both paths exercised


def test_the_mutation_seeds_load() -> None:
    for text in TOPOLOGY_TEXTS:
        assert load_topology_text(text) == "loaded"
    for text in REHEARSAL_TEXTS:
        assert load_rehearsal_text(text) == "loaded", text[:40]


def test_a_primary_that_is_not_a_name_is_a_clean_error() -> None:
    text = "sites: {s: {replicas: [a]}}\nclients: {c: {site: s}}\n"
    text += "replication: {profile: sync, primary: [a]}\n"
    assert load_topology_text(text) == "clean error"
