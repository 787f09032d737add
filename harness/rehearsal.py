"""Rehearsal files: a topology, a workload and a list of steps in YAML — no Python.

    name: site-a-loses-power
    topology: ../topologies/two-sites-async.yaml
    workload: {clients: [vc-a, vc-b], rate_per_s: 20, ops: {get: 0.8, create: 0.2}}
    steps:
      - wait: 3s
      - inject: {fault: site-down, target: site-a, as: power-cut}
      - expect: {failover: {client: vc-a, within: 2s, to_site: site-b}}
      - heal: power-cut
      - expect: {durability: pass, convergence: {within: 10s}}
    seed: 42

`load_rehearsal` validates the whole file before anything starts — keys, step kinds,
faults and their parameters, targets, clients, checkers, durations, fault names — and
every problem is a `RehearsalError` naming file, line and field:
``site-a-loses-power.yaml: line 7: steps[2].expect.failover.client: unknown client 'vc-x'
(known: vc-a, vc-b)``. The YAML is composed into nodes, not loaded into plain data, so
every value keeps its line. `harness.rehearse` runs a loaded `Rehearsal`; the pytest
plugin collects the files like scenarios.
"""

from __future__ import annotations

import difflib
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.checkers import CHECKERS, Bound
from harness.client.operations import OPERATIONS
from harness.client.policies import POLICIES
from harness.faults import FAULTS, Fault
from harness.faults.params import UNIT_HINT, ParamUnit
from harness.scenario import FAILOVER_MIX
from harness.toolchain import repo_root
from harness.topology import Topology, TopologyError, load_topology

STEP_KINDS = ("wait", "inject", "heal", "expect", "run", "checkpoint", "random")
STATUSES = ("pass", "fail", "unknown")
TOP_KEYS = ("name", "description", "topology", "workload", "steps", "seed")
WORKLOAD_KEYS = ("clients", "rate_per_s", "ops", "policy", "per_client")
RUN_KEYS = ("command", "timeout", "expect_exit")
RANDOM_KEYS = ("faults", "targets", "count", "hold", "gap", "params")
DEFAULT_RUN_TIMEOUT_S = 60.0
MAX_DURATION_S = 24 * 3600.0
MAX_STEPS = 1000
MAX_DEPTH = 40
MAX_VALUES = 20_000  # nodes after alias expansion: a "billion laughs" file stops here
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REHEARSAL_DIR = "rehearsals"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)"
_DURATION_RE = re.compile(rf"(?:{_PART}\s*)+")
_STEPS_KEY_RE = re.compile(r"^steps[ \t]*:", re.MULTILINE)


class RehearsalError(ValueError):
    """A rehearsal file is invalid; the message names file, line and field (one line)."""

    def __init__(
        self,
        source: str,
        line: int | None,
        field_path: str,
        message: str,
        column: int | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field_path = field_path
        self.message = message
        where = source
        if line is not None:
            where += f": line {line}" + (f", column {column}" if column is not None else "")
        if field_path:
            where += f": {field_path}"
        super().__init__(f"{where}: {message}".replace("\n", " "))


# ---- durations ----------------------------------------------------------------------


def parse_duration(value: Any) -> float:
    """Seconds from ``5s``, ``500ms``, ``2m``, ``1h``, ``1m30s`` or a plain number of
    seconds (``5``, ``0.5``). Raises ValueError with a message for users."""
    hint = "use a number of seconds or a number with a unit: 500ms, 5s, 2m, 1h"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration, got {describe(value)} ({hint})")
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _DURATION_RE.fullmatch(text):
                raise ValueError(f"bad duration {describe(value)}: {hint}") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(_PART, text))
    else:
        seconds = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"bad duration {describe(value)}: must be finite")
    if seconds < 0:
        raise ValueError(f"bad duration {describe(value)}: must not be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"bad duration {describe(value)}: longer than 24 h")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def describe(value: Any) -> str:
    """A value as a message shows it, on one line."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 42 else text[:39] + "...'"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."
    return f"a {type(value).__name__}"


# ---- YAML with lines ----------------------------------------------------------------


@dataclass
class Y:
    """A YAML value with where it came from: `value` is a scalar, `list[Y]` or
    `dict[str, Y]`; `key_line` is the line of the key naming it (unknown keys are
    reported there)."""

    value: Any
    line: int
    path: str
    key_line: int


_COLLECTION_TAGS = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map")


def _tag(node: Node) -> str:
    return str(node.tag).replace("tag:yaml.org,2002:", "!!")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Composer:
    """YAML text → `Y` tree; every failure is a `RehearsalError` with a line."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.values = 0
        self.open: set[int] = set()

    def compose(self) -> Y | None:
        loader: yaml.SafeLoader | None = None
        try:
            loader = yaml.SafeLoader(self.text)  # its reader refuses control characters
            node = loader.get_single_node()
            return None if node is None else self._build(loader, node, "", 0, None)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or e.context or "invalid YAML"
            line = mark.line + 1 if mark else None
            column = mark.column + 1 if mark else None
            raise RehearsalError(
                self.source, line, "", f"invalid YAML: {problem}", column
            ) from None
        except yaml.YAMLError as e:
            first = (str(e).splitlines() or ["invalid YAML"])[0]
            raise RehearsalError(self.source, None, "", f"invalid YAML: {first}") from None
        except RecursionError:
            raise RehearsalError(
                self.source, None, "", f"nested too deeply (at most {MAX_DEPTH} levels)"
            ) from None
        finally:
            if loader is not None:
                loader.dispose()

    def _err(self, node: Node, path: str, message: str) -> RehearsalError:
        return RehearsalError(self.source, node.start_mark.line + 1, path, message)

    def _build(
        self, loader: yaml.SafeLoader, node: Node, path: str, depth: int, key_line: int | None
    ) -> Y:
        line = node.start_mark.line + 1
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._err(node, path, f"more than {MAX_VALUES} values (aliases expanding?)")
        if depth > MAX_DEPTH:
            raise self._err(node, path, f"nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(node, ScalarNode):
            return Y(self._scalar(loader, node, path), line, path, key_line or line)
        if node.tag not in _COLLECTION_TAGS:
            raise self._err(node, path, f"unsupported YAML tag {_tag(node)}")
        if id(node) in self.open:
            raise self._err(node, path, "recursive alias: the value contains itself")
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = [
                    self._build(loader, child, f"{path}[{i}]", depth + 1, None)
                    for i, child in enumerate(node.value)
                ]
                return Y(items, line, path, key_line or line)
            if isinstance(node, MappingNode):
                return Y(self._mapping(loader, node, path, depth), line, path, key_line or line)
            raise self._err(node, path, f"unsupported YAML node {type(node).__name__}")
        finally:
            self.open.discard(id(node))

    def _scalar(self, loader: yaml.SafeLoader, node: ScalarNode, path: str) -> Any:
        try:
            return loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except Exception as e:  # noqa: BLE001 - `!!int abc`, `!!bool maybe`, `!!timestamp 2020-13-45`
            raise self._err(
                node, path, f"cannot read {describe(node.value)} as {_tag(node)}: {e}"
            ) from None

    def _key(self, loader: yaml.SafeLoader, node: Node, path: str) -> str:
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            raise self._err(node, path, f"keys must be strings, got {kind}")
        key = self._scalar(loader, node, path)
        if not isinstance(key, str):
            raise self._err(node, path, f"keys must be strings, got {describe(key)}")
        return key

    def _mapping(
        self, loader: yaml.SafeLoader, node: MappingNode, path: str, depth: int
    ) -> dict[str, Y]:
        first: dict[str, int] = {}
        for knode, _ in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(loader, knode, path)
            if key in first:
                raise self._err(
                    knode, _join(path, key), f"duplicate key (first at line {first[key]})"
                )
            first[key] = knode.start_mark.line + 1
        loader.flatten_mapping(node)  # `<<: *anchor` merges; explicit keys win
        out: dict[str, Y] = {}
        for knode, vnode in node.value:
            key = self._key(loader, knode, path)
            kline = knode.start_mark.line + 1
            out[key] = self._build(loader, vnode, _join(path, key), depth + 1, kline)
        return out


def compose_located(text: str, source: str) -> Y | None:
    """The document as a `Y` tree (None when empty); `RehearsalError` on bad YAML."""
    return _Composer(text, source).compose()


# ---- the model ----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadSpec:
    clients: tuple[str, ...]
    rate_per_s: float = 20.0
    ops: dict[str, float] = field(default_factory=lambda: dict(FAILOVER_MIX))
    policy: str | None = None
    per_client: int = 1


@dataclass(frozen=True)
class FaultSpec:
    """One fault as `harness.faults.make_fault` takes it."""

    kind: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params.items())
        return f"{self.kind} {self.target}{extra}"


@dataclass(frozen=True, kw_only=True)
class Step:
    index: int
    line: int
    kind: ClassVar[str] = ""

    @property
    def path(self) -> str:
        return f"steps[{self.index}]"

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True, kw_only=True)
class WaitStep(Step):
    kind: ClassVar[str] = "wait"
    seconds: float

    def describe(self) -> str:
        return f"wait {format_duration(self.seconds)}"


@dataclass(frozen=True, kw_only=True)
class InjectStep(Step):
    kind: ClassVar[str] = "inject"
    faults: tuple[FaultSpec, ...]
    name: str | None = None

    def describe(self) -> str:
        named = f" as {self.name}" if self.name else ""
        return "inject " + ", ".join(f.describe() for f in self.faults) + named


@dataclass(frozen=True, kw_only=True)
class HealStep(Step):
    kind: ClassVar[str] = "heal"
    names: tuple[str, ...] | None  # None: every fault the rehearsal injected

    def describe(self) -> str:
        return "heal " + ("all" if self.names is None else ", ".join(self.names))


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """One checker with its expected status and bounds (`within_s` etc. when given)."""

    checker: str
    want: str
    line: int
    path: str
    client: str | None = None
    within_s: float | None = None
    to_site: str | None = None
    to_replica: str | None = None
    fault: str | None = None  # the `as` name of the fault judged (failover)
    fault_step: int | None = None  # the inject step of that fault (failover)
    min_ok_share: float | None = None
    max_gap_s: float | None = None
    others: dict[str, Any] = field(default_factory=dict)  # bounds of other checkers

    @property
    def bounds(self) -> dict[str, Any]:
        """Every bound given, by the name the checker takes it under (`Bound.into`)."""
        named = {b.into: getattr(self, b.into, None) for b in _bounds_of(self.checker)}
        return {k: v for k, v in {**named, **self.others}.items() if v is not None}

    @property
    def bounded(self) -> bool:
        """Whether the expectation asks more than a status (a client, fault, time...)."""
        return bool(self.bounds)

    def describe(self) -> str:
        parts = [f"{self.checker} {self.want}"]
        given = self.bounds
        for b in _bounds_of(self.checker):
            if b.into in given:
                v = given[b.into]
                shown = format_duration(v) if b.kind == "duration" else v
                parts.append(f"{b.key}={shown}")
        return " ".join(parts)


def _bounds_of(checker: str) -> tuple[Bound, ...]:
    found = CHECKERS.get(checker)
    return found.expectations if found is not None else ()


_EXPECTATION_FIELDS = frozenset(
    ("client", "within_s", "to_site", "to_replica", "fault", "min_ok_share", "max_gap_s")
)


@dataclass(frozen=True, kw_only=True)
class ExpectStep(Step):
    kind: ClassVar[str] = "expect"
    expectations: tuple[Expectation, ...]

    def describe(self) -> str:
        return "expect " + "; ".join(e.describe() for e in self.expectations)


@dataclass(frozen=True, kw_only=True)
class RunStep(Step):
    kind: ClassVar[str] = "run"
    command: str
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    expect_exit: int | None = 0  # None: any exit status

    def describe(self) -> str:
        return f"run {self.command!r}"


@dataclass(frozen=True, kw_only=True)
class CheckpointStep(Step):
    kind: ClassVar[str] = "checkpoint"
    message: str

    def describe(self) -> str:
        return f"checkpoint: {self.message}"


@dataclass(frozen=True)
class Draw:
    """One fault of a `random` step's schedule."""

    kind: str
    target: str
    params: dict[str, Any]
    hold_s: float
    gap_s: float

    def describe(self) -> str:
        spec = FaultSpec(self.kind, self.target, self.params).describe()
        return f"{spec} for {format_duration(self.hold_s)}, gap {format_duration(self.gap_s)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "params": dict(self.params),
            "hold_s": self.hold_s,
            "gap_s": self.gap_s,
        }


@dataclass(frozen=True, kw_only=True)
class RandomStep(Step):
    """`count` faults drawn from `faults` × `targets`, each injected, held, healed, then
    a gap; holds and gaps are fixed or drawn from [lo, hi]."""

    kind: ClassVar[str] = "random"
    faults: tuple[str, ...]
    targets: tuple[str, ...]
    count: int
    hold_s: tuple[float, float]
    gap_s: tuple[float, float] = (0.0, 0.0)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def draw(self, rng: random.Random) -> list[Draw]:
        out = []
        for _ in range(self.count):
            kind = rng.choice(self.faults)
            target = rng.choice(self.targets)
            out.append(
                Draw(
                    kind,
                    target,
                    dict(self.params.get(kind, {})),
                    _between(rng, self.hold_s),
                    _between(rng, self.gap_s),
                )
            )
        return out

    def describe(self) -> str:
        return f"random {self.count} of {', '.join(self.faults)} on {', '.join(self.targets)}"


def _between(rng: random.Random, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return lo if lo == hi else round(rng.uniform(lo, hi), 3)


@dataclass(frozen=True, kw_only=True)
class Rehearsal:
    name: str
    source: str  # the file as messages name it
    path: Path | None
    topology: Topology
    topology_path: Path
    workload: WorkloadSpec | None
    steps: tuple[Step, ...]
    seed: int | None = None
    description: str = ""

    def fault_kinds(self) -> list[str]:
        """Every fault the rehearsal may inject (for skipping where one cannot run)."""
        kinds: list[str] = []
        for s in self.steps:
            if isinstance(s, InjectStep):
                kinds += [f.kind for f in s.faults]
            elif isinstance(s, RandomStep):
                kinds += list(s.faults)
        return list(dict.fromkeys(kinds))

    def schedule(self, seed: int) -> dict[int, list[Draw]]:
        """The faults every `random` step will inject, drawn with `random.Random(seed)`
        in step order: the same seed gives the same schedule."""
        rng = random.Random(seed)
        return {s.index: s.draw(rng) for s in self.steps if isinstance(s, RandomStep)}


# ---- loading ------------------------------------------------------------------------


def is_rehearsal_file(path: Path, *, explicit: bool, root: Path | None = None) -> bool:
    """A `.yaml`/`.yml` file in a `rehearsals/` folder (below `root`), or one named
    explicitly whose top level has a `steps:` key."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        folders = path.parent.relative_to(root).parts if root else (path.parent.name,)
    except ValueError:
        folders = (path.parent.name,)
    if REHEARSAL_DIR in folders:
        return True
    if not explicit:
        return False
    try:
        return bool(_STEPS_KEY_RE.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def display_path(path: Path) -> str:
    """`path` relative to the working folder when below it (messages stay short)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def load_rehearsal(path: str | Path) -> Rehearsal:
    """Read and validate a rehearsal file; `RehearsalError` on any problem."""
    p = Path(path)
    source = display_path(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RehearsalError(source, None, "", "file not found") from None
    except UnicodeDecodeError as e:
        raise RehearsalError(source, None, "", f"not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise RehearsalError(source, None, "", f"cannot read file: {e.strerror}") from None
    return parse_rehearsal(text, source, base_dir=p.parent, path=p)


def parse_rehearsal(
    text: str,
    source: str = "<rehearsal>",
    *,
    base_dir: Path | None = None,
    path: Path | None = None,
) -> Rehearsal:
    """Validate rehearsal text; topology paths are relative to `base_dir`."""
    root = compose_located(text, source)
    return _Validator(source, base_dir or Path.cwd(), path).rehearsal(root)


def find_topology(ref: str, base_dir: Path) -> tuple[Path | None, list[Path]]:
    """The topology file `ref` names — relative to the rehearsal, in its `topologies/`,
    in the built-in `scenarios/topologies/`, in the working folder, with or without
    `.yaml` — and the folders looked in."""
    p = Path(ref)
    names = [p] if p.suffix in (".yaml", ".yml") else [p, p.with_name(p.name + ".yaml")]
    folders = [Path()] if p.is_absolute() else []
    folders += [base_dir, base_dir / "topologies", repo_root() / "scenarios" / "topologies"]
    folders.append(Path.cwd())
    for folder in folders:
        for name in names:
            candidate = folder / name
            try:
                if candidate.is_file():
                    return candidate.resolve(), folders
            except OSError:
                continue
    return None, folders


class _Validator:
    """Checks a composed rehearsal field by field, in file order where it can."""

    def __init__(self, source: str, base_dir: Path, path: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir
        self.path = path
        self.topology: Topology | None = None
        self.workload: WorkloadSpec | None = None
        self.active_names: dict[str, int] = {}  # `as` name -> inject step, not yet healed
        self.healed_names: dict[str, int] = {}  # `as` name -> the heal step
        self.named_steps: dict[str, int] = {}
        self.last_inject: int | None = None

    # ---- helpers ------------------------------------------------------------------

    def err(self, y: Y, message: str, *, at_key: bool = False) -> RehearsalError:
        return RehearsalError(self.source, y.key_line if at_key else y.line, y.path, message)

    @property
    def topo(self) -> Topology:
        assert self.topology is not None
        return self.topology

    def mapping(self, y: Y, known: tuple[str, ...]) -> dict[str, Y]:
        if not isinstance(y.value, dict):
            raise self.err(y, f"must be a mapping, got {describe(y.value)}")
        for key, child in y.value.items():
            if key not in known:
                raise self.err(child, _unknown(f"unknown key {key!r}", key, known), at_key=True)
        return dict(y.value)

    def missing(self, parent: Y, key: str, hint: str) -> RehearsalError:
        return RehearsalError(self.source, parent.line, _join(parent.path, key), f"missing; {hint}")

    def required(self, body: dict[str, Y], parent: Y, key: str, hint: str) -> Y:
        if key not in body:
            raise self.missing(parent, key, hint)
        return body[key]

    def text(self, y: Y) -> str:
        if not isinstance(y.value, str) or not y.value.strip():
            got = "an empty string" if isinstance(y.value, str) else describe(y.value)
            raise self.err(y, f"must be a non-empty string, got {got}")
        return y.value

    def name(self, y: Y, what: str) -> str:
        if not isinstance(y.value, str) or not NAME_RE.match(y.value):
            raise self.err(
                y,
                f"invalid {what} {describe(y.value)}: use letters, digits, '-', '_' and '.' "
                "(at most 64)",
            )
        return y.value

    def duration(self, y: Y, *, positive: bool = False) -> float:
        try:
            seconds = parse_duration(y.value)
        except ValueError as e:
            raise self.err(y, str(e)) from None
        if positive and seconds <= 0:
            raise self.err(y, f"must be longer than 0, got {describe(y.value)}")
        return seconds

    def number(self, y: Y, lo: float, hi: float, *, lo_open: bool = False) -> float:
        v = y.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.err(y, f"must be a number, got {describe(v)}")
        ok = (lo < v if lo_open else lo <= v) and v <= hi
        if not ok:
            low = f"> {lo:g}" if lo_open else f">= {lo:g}"
            raise self.err(y, f"must be {low} and <= {hi:g}, got {describe(v)}")
        return float(v)

    def integer(self, y: Y, lo: int, hi: int) -> int:
        v = y.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(y, f"must be a whole number, got {describe(v)}")
        if not lo <= v <= hi:
            raise self.err(y, f"must be between {lo} and {hi}, got {v}")
        return v

    def items(self, y: Y, *, what: str) -> list[Y]:
        if not isinstance(y.value, list) or not y.value:
            got = "an empty list" if isinstance(y.value, list) else describe(y.value)
            raise self.err(y, f"must be a non-empty list of {what}, got {got}")
        return list(y.value)

    def choice(self, y: Y, known: tuple[str, ...] | list[str], what: str) -> str:
        if not isinstance(y.value, str) or y.value not in known:
            raise self.err(y, f"unknown {what} {describe(y.value)} (known: {', '.join(known)})")
        return y.value

    def status(self, y: Y) -> str:
        if not isinstance(y.value, str) or y.value not in STATUSES:
            raise self.err(
                y, f"expected status must be pass, fail or unknown, got {describe(y.value)}"
            )
        return y.value

    # ---- the file -------------------------------------------------------------------

    def rehearsal(self, root: Y | None) -> Rehearsal:
        if root is None:
            raise RehearsalError(
                self.source,
                None,
                "",
                "file is empty; expected a mapping with 'topology' and 'steps'",
            )
        if not isinstance(root.value, dict):
            raise self.err(root, f"top level must be a mapping, got {describe(root.value)}")
        top = self.mapping(root, TOP_KEYS)
        stem = Path(self.source).stem if self.source != "<rehearsal>" else "rehearsal"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:64] or "rehearsal"
        if "name" in top:
            name = self.name(top["name"], "rehearsal name")
        description = self.text(top["description"]) if "description" in top else ""
        topo_y = self.required(
            top,
            root,
            "topology",
            "name a topology file (relative to this file, or one of scenarios/topologies/)",
        )
        topology_path = self.load_topology(topo_y)
        seed = None
        if "seed" in top:
            seed = self.integer(top["seed"], 0, 2**63 - 1)
        if "workload" in top:
            self.workload = self.workload_spec(top["workload"])
        steps_y = self.required(top, root, "steps", "list what happens, e.g. `- wait: 5s`")
        raw_steps = self.items(steps_y, what="steps")
        if len(raw_steps) > MAX_STEPS:
            raise self.err(steps_y, f"{len(raw_steps)} steps; at most {MAX_STEPS}")
        steps = tuple(self.step(i, s) for i, s in enumerate(raw_steps))
        return Rehearsal(
            name=name,
            source=self.source,
            path=self.path,
            topology=self.topo,
            topology_path=topology_path,
            workload=self.workload,
            steps=steps,
            seed=seed,
            description=description,
        )

    def load_topology(self, y: Y) -> Path:
        ref = self.text(y)
        found, folders = find_topology(ref, self.base_dir)
        if found is None:
            looked = ", ".join(dict.fromkeys(display_path(f) for f in folders))
            raise self.err(y, f"no topology file {ref!r} (looked in: {looked})")
        try:
            self.topology = load_topology(found)
        except TopologyError as e:
            raise self.err(y, f"invalid topology: {e}") from None
        return found

    def workload_spec(self, y: Y) -> WorkloadSpec:
        body = self.mapping(y, WORKLOAD_KEYS)
        known = list(self.topo.clients)
        clients: tuple[str, ...] = tuple(known)
        if "clients" in body:
            names = []
            for item in self.items(body["clients"], what="client names"):
                c = self.choice(item, known, "client")
                if c in names:
                    raise self.err(item, f"client '{c}' listed twice")
                names.append(c)
            clients = tuple(names)
        rate = 20.0
        if "rate_per_s" in body:
            rate = self.number(body["rate_per_s"], 0, 1000, lo_open=True)
        ops = dict(FAILOVER_MIX)
        if "ops" in body:
            ops_body = self.mapping(body["ops"], OPERATIONS)
            ops = {k: self.number(v, 0, 1e6) for k, v in ops_body.items()}
            if not any(ops.values()):
                raise self.err(body["ops"], "give at least one operation a weight above 0")
        policy = None
        if "policy" in body:
            policy = self.choice(body["policy"], list(POLICIES), "policy")
        per_client = 1
        if "per_client" in body:
            per_client = self.integer(body["per_client"], 1, 16)
        return WorkloadSpec(clients, rate, ops, policy, per_client)

    # ---- steps ------------------------------------------------------------------------

    def step(self, index: int, y: Y) -> Step:
        if not isinstance(y.value, dict):
            raise self.err(
                y,
                f"a step is a mapping like `wait: 5s`, got {describe(y.value)} "
                f"(steps: {', '.join(STEP_KINDS)})",
            )
        if len(y.value) != 1:
            keys = ", ".join(y.value) or "nothing"
            raise self.err(y, f"one step per list item, got {keys} (start each step with '-')")
        ((kind, body),) = y.value.items()
        if kind not in STEP_KINDS:
            raise self.err(body, _unknown(f"unknown step {kind!r}", kind, STEP_KINDS), at_key=True)
        line = body.key_line
        if kind == "wait":
            return WaitStep(index=index, line=line, seconds=self.duration(body))
        if kind == "inject":
            return self.inject(index, line, body)
        if kind == "heal":
            return self.heal(index, line, body)
        if kind == "expect":
            return self.expect(index, line, body)
        if kind == "run":
            return self.run(index, line, body)
        if kind == "checkpoint":
            return CheckpointStep(index=index, line=line, message=self.text(body))
        return self.random_step(index, line, body)

    def fault_kind(self, y: Y) -> str:
        if not isinstance(y.value, str) or y.value not in FAULTS:
            word = y.value if isinstance(y.value, str) else ""
            raise self.err(y, _unknown(f"unknown fault {describe(y.value)}", word, tuple(FAULTS)))
        kind = y.value
        if FAULTS[kind].replicating and self.topo.replication_profile == "none":
            raise self.err(
                y,
                f"{kind} acts on replication, but topology '{self.topo.name}' has "
                "replication profile none",
            )
        return kind

    def params(self, kind: str, body: dict[str, Y], parent: Y) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in FAULTS[kind].parameters:
            if p.name not in body:
                if p.required:
                    raise self.missing(
                        parent, p.name, f"{kind} needs {p.name} ({UNIT_HINT[p.unit]})"
                    )
                continue
            out[p.name] = self.param(body[p.name], p.unit)
        return out

    def param(self, y: Y, unit: ParamUnit) -> Any:
        if unit == "bool":
            if not isinstance(y.value, bool):
                raise self.err(y, f"must be true or false, got {describe(y.value)}")
            return y.value
        if unit == "kbps":
            return self.number(y, 0, 10_000_000, lo_open=True)
        if unit == "s":
            return self.duration(y, positive=True)
        # ms: a number of milliseconds, or a duration with its unit
        if isinstance(y.value, str):
            return round(self.duration(y) * 1000)
        return round(self.number(y, 0, MAX_DURATION_S * 1000))

    def target(self, kind: str, y: Y) -> str:
        """One target of `kind`, checked against the topology; for group faults the
        target string `partition` takes (`site-a site-b`, `kms-a,kms-b site-b`)."""
        target_kind = FAULTS[kind].target_kind
        sites = list(self.topo.sites)
        replicas = list(self.topo.replicas)
        if target_kind == "site":
            if not isinstance(y.value, str) or y.value not in sites:
                raise self.err(
                    y,
                    f"{kind} targets a site: unknown site {describe(y.value)} "
                    f"(known: {', '.join(sites)})",
                )
            return y.value
        if target_kind == "replica":
            if not isinstance(y.value, str) or y.value not in replicas:
                raise self.err(
                    y, f"unknown replica {describe(y.value)} (known: {', '.join(replicas)})"
                )
            return y.value
        return self.groups(kind, y)

    def groups(self, kind: str, y: Y) -> str:
        words: list[Y]
        if isinstance(y.value, list):
            words = self.items(y, what="groups")
        elif isinstance(y.value, str) and y.value.split():
            words = [Y(w, y.line, y.path, y.key_line) for w in y.value.split()]
        else:
            raise self.err(
                y,
                f"{kind} takes groups: sites or replica lists, e.g. `site-a site-b` or "
                f"[site-a, [kms-d, kms-e]], got {describe(y.value)}",
            )
        sites = self.topo.sites
        replicas = list(self.topo.replicas)
        groups: list[list[str]] = []
        for w in words:
            if isinstance(w.value, str) and w.value in sites:
                groups.append(list(sites[w.value]))
                continue
            members = w.value
            if isinstance(members, str):
                members = [Y(m, w.line, w.path, w.key_line) for m in members.split(",") if m]
            if not isinstance(members, list) or not members:
                raise self.err(
                    w,
                    f"a group is a site ({', '.join(sites)}) or a list of replicas, "
                    f"got {describe(w.value)}",
                )
            group = []
            for m in members:
                if not isinstance(m.value, str) or m.value not in replicas:
                    raise self.err(
                        m,
                        f"{describe(m.value)} is neither a site ({', '.join(sites)}) nor a "
                        f"replica ({', '.join(replicas)})",
                    )
                group.append(m.value)
            groups.append(group)
        seen: set[str] = set()
        for g in groups:
            twice = seen & set(g)
            if twice:
                raise self.err(y, f"{', '.join(sorted(twice))} in two groups")
            seen |= set(g)
        if len(groups) < 2 and seen == set(replicas):
            raise self.err(y, f"{kind}: name at least two groups (one group holds every replica)")
        text_words = []
        for w, g in zip(words, groups, strict=True):
            text_words.append(
                w.value if isinstance(w.value, str) and w.value in sites else ",".join(g)
            )
        return " ".join(text_words)

    def inject(self, index: int, line: int, y: Y) -> InjectStep:
        if not isinstance(y.value, dict):
            raise self.err(
                y,
                f"must be a mapping like {{fault: refuse, target: kms-a}}, got {describe(y.value)}",
            )
        if "fault" not in y.value:
            raise self.missing(y, "fault", f"name the fault ({', '.join(FAULTS)})")
        kind = self.fault_kind(y.value["fault"])
        cls = FAULTS[kind]
        body = self.mapping(y, ("fault", "target", "targets", "as", *_param_names(cls)))
        if ("target" in body) == ("targets" in body):
            hint = (
                "groups, e.g. target: site-a site-b"
                if cls.target_kind == "groups"
                else f"a {cls.target_kind}"
            )
            if "target" in body:
                raise self.err(body["targets"], "give target or targets, not both", at_key=True)
            raise self.missing(y, "target", f"name the target ({hint})")
        params = self.params(kind, body, y)
        if "target" in body:
            targets = [self.target(kind, body["target"])]
        elif cls.target_kind == "groups":
            targets = [self.groups(kind, body["targets"])]
        else:
            targets = []
            for item in self.items(body["targets"], what="targets"):
                t = self.target(kind, item)
                if t in targets:
                    raise self.err(item, f"target '{t}' listed twice")
                targets.append(t)
        name = None
        if "as" in body:
            name = self.name(body["as"], "fault name")
            if name in self.active_names:
                raise self.err(
                    body["as"],
                    f"name '{name}' is already used by steps[{self.active_names[name]}], "
                    "which is not healed yet",
                )
            self.active_names[name] = index
            self.named_steps[name] = index
            self.healed_names.pop(name, None)
        self.last_inject = index
        faults = tuple(FaultSpec(kind, t, dict(params)) for t in targets)
        return InjectStep(index=index, line=line, faults=faults, name=name)

    def heal(self, index: int, line: int, y: Y) -> HealStep:
        if y.value == "all":
            self.healed_names.update({n: index for n in self.active_names})
            self.active_names.clear()
            return HealStep(index=index, line=line, names=None)
        items = y.value if isinstance(y.value, list) else [y]
        if isinstance(y.value, list) and not items:
            raise self.err(y, "name the faults to heal, or `all`")
        names = []
        for item in items:
            if not isinstance(item.value, str):
                raise self.err(
                    item,
                    "must be `all` or the `as` name of an injected fault, "
                    f"got {describe(item.value)}",
                )
            n = item.value
            if n in self.healed_names:
                raise self.err(
                    item, f"fault '{n}' was already healed by steps[{self.healed_names[n]}]"
                )
            if n not in self.active_names:
                named = ", ".join(self.active_names) or "none"
                raise self.err(
                    item,
                    f"no injected fault named {n!r} (named so far: {named}; name one with "
                    "`as:` in its inject step, or heal all)",
                )
            names.append(n)
        for n in names:
            self.healed_names[n] = index
            self.active_names.pop(n, None)
        return HealStep(index=index, line=line, names=tuple(names))

    def expect(self, index: int, line: int, y: Y) -> ExpectStep:
        checkers = tuple(CHECKERS)
        if not isinstance(y.value, dict) or not y.value:
            raise self.err(
                y,
                "must map checkers to what you expect, e.g. {order: pass}, "
                f"got {describe(y.value)} "
                f"(checkers: {', '.join(checkers)})",
            )
        body = self.mapping(y, checkers)
        out = []
        for checker, spec in body.items():
            if CHECKERS[checker].judges_operations and self.workload is None:
                raise self.err(
                    spec,
                    f"{checker} judges the workload's operations: add a `workload:`",
                    at_key=True,
                )
            out.append(self.expectation(checker, spec))
        return ExpectStep(index=index, line=line, expectations=tuple(out))

    def expectation(self, checker: str, y: Y) -> Expectation:
        """An expectation: a status, or a mapping of the bounds the checker declares
        (`Checker.expectations`), each read by its kind."""
        line = y.key_line
        declared = CHECKERS[checker].expectations
        judges_fault = any(b.kind == "fault" for b in declared)
        if isinstance(y.value, str):
            return Expectation(
                checker=checker,
                want=self.status(y),
                line=line,
                path=y.path,
                fault_step=self.last_inject if judges_fault else None,
            )
        keys = (*(b.key for b in declared), "status")
        if not isinstance(y.value, dict):
            raise self.err(
                y,
                f"must be pass, fail, unknown or a mapping of bounds "
                f"({', '.join(keys)}), got {describe(y.value)}",
            )
        body = self.mapping(y, keys)
        want = self.status(body["status"]) if "status" in body else "pass"
        values: dict[str, Any] = {}
        for b in declared:
            if b.key in body:
                values.update(self.bound(b, body[b.key]))
        self.check_destination(declared, body, values)
        if judges_fault and "fault_step" not in values:
            if self.last_inject is None:
                raise self.err(
                    y, f"{checker}: no inject step before this one: inject a fault first"
                )
            values["fault_step"] = self.last_inject
        kw = {k: v for k, v in values.items() if k in _EXPECTATION_FIELDS or k == "fault_step"}
        others = {k: v for k, v in values.items() if k not in kw}
        return Expectation(checker=checker, want=want, line=line, path=y.path, others=others, **kw)

    def bound(self, b: Bound, y: Y) -> dict[str, Any]:
        """One bound's value (and, for a fault, the step that injected it)."""
        if b.kind == "duration":
            return {b.into: self.duration(y)}
        if b.kind == "share":
            return {b.into: self.share(y)}
        if b.kind == "site":
            return {b.into: self.choice(y, list(self.topo.sites), "site")}
        if b.kind == "replica":
            return {b.into: self.choice(y, list(self.topo.replicas), "replica")}
        if b.kind == "client":
            assert self.workload is not None
            c = self.choice(y, list(self.topo.clients), "client")
            if c not in self.workload.clients:
                raise self.err(
                    y,
                    f"client '{c}' is not in the workload (workload clients: "
                    f"{', '.join(self.workload.clients)})",
                )
            return {b.into: c}
        n = y.value
        if not isinstance(n, str) or n not in self.named_steps:
            named = ", ".join(self.named_steps) or "none"
            raise self.err(
                y, f"no injected fault named {describe(n)} before this step (named: {named})"
            )
        return {b.into: n, "fault_step": self.named_steps[n]}

    def check_destination(
        self, declared: tuple[Bound, ...], body: dict[str, Y], values: dict[str, Any]
    ) -> None:
        """A site or replica bound is where clients must end up: one of them at most,
        and in the order of every client judged."""
        dests = [b for b in declared if b.kind in ("site", "replica") and b.key in body]
        if len(dests) > 1:
            keys = " or ".join(b.key for b in dests)
            raise self.err(body[dests[-1].key], f"give {keys}, not both", at_key=True)
        if not dests:
            return
        dest_bound = dests[0]
        dest = values[dest_bound.into]
        wanted = set(self.topo.sites[dest]) if dest_bound.kind == "site" else {dest}
        client = next(
            (values[b.into] for b in declared if b.kind == "client" and b.into in values), None
        )
        assert self.workload is not None
        for c in [client] if client else list(self.workload.clients):
            if not wanted & set(self.topo.clients[c].order):
                raise self.err(
                    body[dest_bound.key], f"client '{c}' never tries {dest}: it is not in its order"
                )

    def share(self, y: Y) -> float:
        v = y.value
        if isinstance(v, str) and v.strip().endswith("%"):
            try:
                v = float(v.strip()[:-1]) / 100
            except ValueError:
                raise self.err(
                    y, f"must be a share like 0.9 or 90%, got {describe(y.value)}"
                ) from None
            return self.number(Y(v, y.line, y.path, y.key_line), 0, 1)
        return self.number(y, 0, 1)

    def run(self, index: int, line: int, y: Y) -> RunStep:
        if isinstance(y.value, str):
            return RunStep(index=index, line=line, command=self.text(y))
        body = self.mapping(y, RUN_KEYS)
        command = self.text(self.required(body, y, "command", "give the shell command to run"))
        timeout = DEFAULT_RUN_TIMEOUT_S
        if "timeout" in body:
            timeout = self.duration(body["timeout"], positive=True)
        expect_exit: int | None = 0
        if "expect_exit" in body:
            e = body["expect_exit"]
            expect_exit = None if e.value == "any" else self.integer(e, 0, 255)
        return RunStep(
            index=index, line=line, command=command, timeout_s=timeout, expect_exit=expect_exit
        )

    def bounds(self, y: Y) -> tuple[float, float]:
        """A duration, or [lo, hi] to draw from."""
        if isinstance(y.value, list):
            if len(y.value) != 2:
                raise self.err(y, "must be a duration or [shortest, longest], e.g. [1s, 3s]")
            lo, hi = self.duration(y.value[0]), self.duration(y.value[1])
            if lo > hi:
                raise self.err(
                    y,
                    f"shortest {format_duration(lo)} is longer than longest {format_duration(hi)}",
                )
            return lo, hi
        d = self.duration(y)
        return d, d

    def random_step(self, index: int, line: int, y: Y) -> RandomStep:
        body = self.mapping(y, RANDOM_KEYS)
        kinds: list[str] = []
        for item in self.items(
            self.required(body, y, "faults", "list the faults to draw from"), what="faults"
        ):
            k = self.fault_kind(item)
            if k in kinds:
                raise self.err(item, f"fault '{k}' listed twice")
            kinds.append(k)
        targets_y = self.required(body, y, "targets", "list the replicas or sites to draw from")
        target_items = self.items(targets_y, what="targets")
        targets: list[str] = []
        for item in target_items:
            if not isinstance(item.value, str):
                raise self.err(item, f"must be a replica or site name, got {describe(item.value)}")
            if item.value in targets:
                raise self.err(item, f"target '{item.value}' listed twice")
            for k in kinds:  # any pair may be drawn: every fault must take every target
                try:
                    self.target(k, item)
                except RehearsalError as e:
                    raise self.err(
                        item, f"{e.message} (every listed fault must take every target)"
                    ) from None
            targets.append(item.value)
        count = self.integer(
            self.required(body, y, "count", "say how many faults to draw"), 1, 1000
        )
        hold = self.bounds(self.required(body, y, "hold", "say how long each fault lasts, e.g. 2s"))
        gap = self.bounds(body["gap"]) if "gap" in body else (0.0, 0.0)
        params: dict[str, dict[str, Any]] = {}
        params_y = body.get("params")
        given = self.mapping(params_y, tuple(kinds)) if params_y is not None else {}
        for k in kinds:
            cls = FAULTS[k]
            required = [p.name for p in cls.parameters if p.required]
            if k in given:
                pbody = self.mapping(given[k], _param_names(cls))
                params[k] = self.params(k, pbody, given[k])
            elif required:
                where = params_y if params_y is not None else y
                path = _join(_join(y.path, "params"), k)
                example = f"params: {{{k}: {{{required[0]}: 100}}}}"
                raise RehearsalError(
                    self.source,
                    where.line,
                    path,
                    f"missing; {k} needs {', '.join(required)} (e.g. {example})",
                )
        return RandomStep(
            index=index,
            line=line,
            faults=tuple(kinds),
            targets=tuple(targets),
            count=count,
            hold_s=hold,
            gap_s=gap,
            params=params,
        )


def _unknown(message: str, word: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1) if word else []
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{message} (known: {', '.join(known)}){hint}"


def _param_names(cls: type[Fault]) -> tuple[str, ...]:
    return tuple(p.name for p in cls.parameters)


__all__ = [
    "STEP_KINDS",
    "CheckpointStep",
    "Draw",
    "ExpectStep",
    "Expectation",
    "FaultSpec",
    "HealStep",
    "InjectStep",
    "RandomStep",
    "Rehearsal",
    "RehearsalError",
    "RunStep",
    "Step",
    "WaitStep",
    "WorkloadSpec",
    "is_rehearsal_file",
    "load_rehearsal",
    "parse_duration",
    "parse_rehearsal",
]
