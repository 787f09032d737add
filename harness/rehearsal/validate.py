"""Loading a rehearsal file: the whole file is checked before anything starts — keys, the
topology, the workload, every step (faults and their parameters, targets, fault names
healed and judged in order) — and every problem is one `RehearsalError` naming file,
line and field. Expectations are checked by `harness.rehearsal.expectations`, certificate
actions by `harness.rehearsal.certificates`, client lifecycle steps by
`harness.rehearsal.clients`, administrator operations by `harness.rehearsal.admin`.

Known keys and limits come from `harness.rehearsal.fileformat`; the field checks and the
located YAML from `harness.yamlfile`, shared with topology files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.faults import FAULTS
from harness.faults.params import UNIT_HINT
from harness.rehearsal.admin import AdminStepReader
from harness.rehearsal.certificates import CertificateStepReader
from harness.rehearsal.clients import ClientStepReader
from harness.rehearsal.discovery import display_path, find_topology
from harness.rehearsal.expectations import ExpectationReader
from harness.rehearsal.fileformat import (
    COUNT,
    DEFAULT_RUN_TIMEOUT_S,
    EXIT_STATUS,
    FAULT_NAME,
    INJECT_KEYS,
    MAX_STEPS,
    OPS,
    PARAM_SHAPES,
    RANDOM,
    REHEARSAL,
    REHEARSAL_NAME,
    RUN,
    SEED,
    STEP,
    STEP_KINDS,
    WEIGHT,
    WORKLOAD,
    param_names,
)
from harness.rehearsal.model import (
    CLIENT_STEP_TYPES,
    CheckpointStep,
    FaultSpec,
    HealStep,
    InjectStep,
    RandomStep,
    Rehearsal,
    RunStep,
    Step,
    WaitStep,
    WorkloadSpec,
)
from harness.scenario import FAILOVER_MIX
from harness.topology import TopologyError, load_topology
from harness.yamlfile import (
    Duration,
    Problem,
    Text,
    Y,
    compose,
    describe,
    format_duration,
    join,
    read_document,
    unknown,
)


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


def load_rehearsal(path: str | Path) -> Rehearsal:
    """Read and validate a rehearsal file; `RehearsalError` on any problem."""
    p = Path(path)
    source = display_path(p)
    try:
        text = read_document(p)
    except Problem as e:
        raise RehearsalError(source, None, "", e.message) from None
    return parse_rehearsal(text, source, base_dir=p.parent, path=p)


def parse_rehearsal(
    text: str,
    source: str = "<rehearsal>",
    *,
    base_dir: Path | None = None,
    path: Path | None = None,
) -> Rehearsal:
    """Validate rehearsal text; topology paths are relative to `base_dir`."""
    try:
        return _Validator(source, base_dir or Path.cwd(), path).rehearsal(compose(text))
    except Problem as p:
        raise RehearsalError(source, p.line, p.path, p.message, p.column) from None


class _Validator(ExpectationReader):
    """Checks a composed rehearsal field by field, in file order where it can."""

    def __init__(self, source: str, base_dir: Path, path: Path | None) -> None:
        super().__init__()
        self.source = source
        self.base_dir = base_dir
        self.path = path
        self.active_names: dict[str, int] = {}  # `as` name -> inject step, not yet healed
        self.healed_names: dict[str, int] = {}  # `as` name -> the heal step
        self.certificate_steps: CertificateStepReader | None = None
        self.client_steps = ClientStepReader(self)
        self.admin_steps = AdminStepReader(self)

    # ---- the file -------------------------------------------------------------------

    def rehearsal(self, root: Y | None) -> Rehearsal:
        if root is None:
            raise Problem("", "file is empty; expected a mapping with 'topology' and 'steps'")
        if not isinstance(root.value, dict):
            raise self.problem(root, f"top level must be a mapping, got {describe(root.plain())}")
        top = self.mapping(root, REHEARSAL)
        stem = Path(self.source).stem if self.source != "<rehearsal>" else "rehearsal"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:64] or "rehearsal"
        if "name" in top:
            name = self.take(top["name"], REHEARSAL_NAME)
        description = self.take(top["description"], Text()) if "description" in top else ""
        topo_y = self.required(
            top,
            root,
            "topology",
            "name a topology file (relative to this file, or one of scenarios/topologies/)",
        )
        topology_path = self.load_topology(topo_y)
        seed = self.take(top["seed"], SEED) if "seed" in top else None
        if "workload" in top:
            self.workload = self.workload_spec(top["workload"])
        steps_y = self.required(top, root, "steps", "list what happens, e.g. `- wait: 5s`")
        raw_steps = self.items(steps_y, what="steps")
        if len(raw_steps) > MAX_STEPS:
            raise self.problem(steps_y, f"{len(raw_steps)} steps; at most {MAX_STEPS}")
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
        ref = self.take(y, Text())
        found, folders = find_topology(ref, self.base_dir)
        if found is None:
            looked = ", ".join(dict.fromkeys(display_path(f) for f in folders))
            raise self.problem(y, f"no topology file {ref!r} (looked in: {looked})")
        try:
            self.topology = load_topology(found)
        except TopologyError as e:
            there = f" ({Path(e.source).name}, line {e.line})" if e.line is not None else ""
            raise self.problem(y, f"invalid topology: {e}{there}") from None
        return found

    def workload_spec(self, y: Y) -> WorkloadSpec:
        body = self.mapping(y, WORKLOAD)
        known = list(self.topo.clients)
        clients: tuple[str, ...] = tuple(known)
        if "clients" in body:
            names = []
            for item in self.items(body["clients"], what="client names"):
                c = self.choice(item, known, "client")
                if c in names:
                    raise self.problem(item, f"client '{c}' listed twice")
                names.append(c)
            clients = tuple(names)
        rate = WORKLOAD["rate_per_s"].default
        if "rate_per_s" in body:
            rate = self.take(body["rate_per_s"], WORKLOAD.shape("rate_per_s"))
        ops = dict(FAILOVER_MIX)
        if "ops" in body:
            ops_body = self.mapping(body["ops"], OPS)
            ops = {k: self.take(v, WEIGHT) for k, v in ops_body.items()}
            if not any(ops.values()):
                raise self.problem(body["ops"], "give at least one operation a weight above 0")
        policy = self.take(body["policy"], WORKLOAD.shape("policy")) if "policy" in body else None
        per_client = WORKLOAD["per_client"].default
        if "per_client" in body:
            per_client = self.take(body["per_client"], WORKLOAD.shape("per_client"))
        return WorkloadSpec(clients, rate, ops, policy, per_client)

    # ---- steps ------------------------------------------------------------------------

    def step(self, index: int, y: Y) -> Step:
        if not isinstance(y.value, dict):
            raise self.problem(
                y,
                f"a step is a mapping like `wait: 5s`, got {describe(y.plain())} "
                f"(steps: {', '.join(STEP_KINDS)})",
            )
        if len(y.value) != 1:
            keys = ", ".join(y.value) or "nothing"
            raise self.problem(y, f"one step per list item, got {keys} (start each step with '-')")
        ((kind, body),) = y.value.items()
        if kind not in STEP_KINDS:
            message = unknown(f"unknown step {kind!r}", kind, STEP_KINDS)
            raise self.problem(body, message, at_key=True)
        line = body.key_line
        if kind == "wait":
            return WaitStep(index=index, line=line, seconds=self.take(body, STEP.shape("wait")))
        if kind == "inject":
            return self.inject(index, line, body)
        if kind == "heal":
            return self.heal(index, line, body)
        if kind == "expect":
            return self.expect(index, line, body)
        if kind == "run":
            return self.run(index, line, body)
        if kind == "checkpoint":
            return CheckpointStep(index=index, line=line, message=self.take(body, Text()))
        if kind == "certificates":
            if self.certificate_steps is None:
                self.certificate_steps = CertificateStepReader(self, self.topo)
            return self.certificate_steps.step(index, line, body)
        if kind in CLIENT_STEP_TYPES:
            return self.client_steps.step(kind, index, line, body)
        if kind == "admin":
            return self.admin_steps.step(index, line, body)
        return self.random_step(index, line, body)

    def fault_kind(self, y: Y) -> str:
        if not isinstance(y.value, str) or y.value not in FAULTS:
            word = y.value if isinstance(y.value, str) else ""
            message = unknown(f"unknown fault {describe(y.plain())}", word, tuple(FAULTS))
            raise self.problem(y, message)
        kind = y.value
        if FAULTS[kind].replicating and self.topo.replication_profile == "none":
            raise self.problem(
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
                    hint = f"{kind} needs {p.name} ({UNIT_HINT[p.unit]})"
                    raise self.missing(parent, p.name, hint)
                continue
            out[p.name] = self.take(body[p.name], PARAM_SHAPES[p.unit])
        return out

    def target(self, kind: str, y: Y) -> str:
        """One target of `kind`, checked against the topology; for group faults the
        target string `partition` takes (`site-a site-b`, `kms-a,kms-b site-b`)."""
        target_kind = FAULTS[kind].target_kind
        sites = list(self.topo.sites)
        replicas = list(self.topo.replicas)
        if target_kind == "site":
            if not isinstance(y.value, str) or y.value not in sites:
                raise self.problem(
                    y,
                    f"{kind} targets a site: unknown site {describe(y.plain())} "
                    f"(known: {', '.join(sites)})",
                )
            return y.value
        if target_kind == "replica":
            return self.choice(y, replicas, "replica")
        if target_kind == "balancer":
            if not self.topo.load_balancers:
                raise self.problem(y, f"{kind} targets a load balancer; the topology has none")
            return self.choice(y, list(self.topo.load_balancers), "load balancer")
        return self.groups(kind, y)

    def groups(self, kind: str, y: Y) -> str:
        words: list[Y]
        if isinstance(y.value, list):
            words = self.items(y, what="groups")
        elif isinstance(y.value, str) and y.value.split():
            words = [Y(w, y.line, y.path, y.key_line) for w in y.value.split()]
        else:
            raise self.problem(
                y,
                f"{kind} takes groups: sites or replica lists, e.g. `site-a site-b` or "
                f"[site-a, [kms-d, kms-e]], got {describe(y.plain())}",
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
                raise self.problem(
                    w,
                    f"a group is a site ({', '.join(sites)}) or a list of replicas, "
                    f"got {describe(w.plain())}",
                )
            group = []
            for m in members:
                if not isinstance(m.value, str) or m.value not in replicas:
                    raise self.problem(
                        m,
                        f"{describe(m.plain())} is neither a site ({', '.join(sites)}) nor a "
                        f"replica ({', '.join(replicas)})",
                    )
                group.append(m.value)
            groups.append(group)
        seen: set[str] = set()
        for g in groups:
            twice = seen & set(g)
            if twice:
                raise self.problem(y, f"{', '.join(sorted(twice))} in two groups")
            seen |= set(g)
        if len(groups) < 2 and seen == set(replicas):
            raise self.problem(
                y, f"{kind}: name at least two groups (one group holds every replica)"
            )
        text_words = []
        for w, g in zip(words, groups, strict=True):
            text_words.append(
                w.value if isinstance(w.value, str) and w.value in sites else ",".join(g)
            )
        return " ".join(text_words)

    def inject(self, index: int, line: int, y: Y) -> InjectStep:
        if not isinstance(y.value, dict):
            raise self.problem(
                y,
                "must be a mapping like {fault: refuse, target: kms-a}, "
                f"got {describe(y.plain())}",
            )
        if "fault" not in y.value:
            raise self.missing(y, "fault", f"name the fault ({', '.join(FAULTS)})")
        kind = self.fault_kind(y.value["fault"])
        cls = FAULTS[kind]
        body = self.mapping(y, (*INJECT_KEYS, *param_names(cls)))
        if ("target" in body) == ("targets" in body):
            hint = (
                "groups, e.g. target: site-a site-b"
                if cls.target_kind == "groups"
                else f"a {cls.target_kind}"
            )
            if "target" in body:
                message = "give target or targets, not both"
                raise self.problem(body["targets"], message, at_key=True)
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
                    raise self.problem(item, f"target '{t}' listed twice")
                targets.append(t)
        name = None
        if "as" in body:
            name = self.take(body["as"], FAULT_NAME)
            if name in self.active_names:
                raise self.problem(
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
            raise self.problem(y, "name the faults to heal, or `all`")
        names = []
        for item in items:
            if not isinstance(item.value, str):
                raise self.problem(
                    item,
                    "must be `all` or the `as` name of an injected fault, "
                    f"got {describe(item.plain())}",
                )
            n = item.value
            if n in self.healed_names:
                raise self.problem(
                    item, f"fault '{n}' was already healed by steps[{self.healed_names[n]}]"
                )
            if n not in self.active_names:
                named = ", ".join(self.active_names) or "none"
                raise self.problem(
                    item,
                    f"no injected fault named {n!r} (named so far: {named}; name one with "
                    "`as:` in its inject step, or heal all)",
                )
            names.append(n)
        for n in names:
            self.healed_names[n] = index
            self.active_names.pop(n, None)
        return HealStep(index=index, line=line, names=tuple(names))

    def run(self, index: int, line: int, y: Y) -> RunStep:
        if isinstance(y.value, str):
            return RunStep(index=index, line=line, command=self.take(y, Text()))
        body = self.mapping(y, RUN)
        command_y = self.required(body, y, "command", "give the shell command to run")
        command = self.take(command_y, RUN.shape("command"))
        timeout = DEFAULT_RUN_TIMEOUT_S
        if "timeout" in body:
            timeout = self.take(body["timeout"], RUN.shape("timeout"))
        expect_exit: int | None = 0
        if "expect_exit" in body:
            e = body["expect_exit"]
            expect_exit = None if e.value == "any" else self.take(e, EXIT_STATUS)
        return RunStep(
            index=index, line=line, command=command, timeout_s=timeout, expect_exit=expect_exit
        )

    def duration_range(self, y: Y) -> tuple[float, float]:
        """A duration, or [lo, hi] to draw from."""
        if isinstance(y.value, list):
            if len(y.value) != 2:
                raise self.problem(y, "must be a duration or [shortest, longest], e.g. [1s, 3s]")
            lo, hi = (self.take(v, Duration()) for v in y.value)
            if lo > hi:
                raise self.problem(
                    y,
                    f"shortest {format_duration(lo)} is longer than longest {format_duration(hi)}",
                )
            return lo, hi
        d = self.take(y, Duration())
        return d, d

    def random_step(self, index: int, line: int, y: Y) -> RandomStep:
        body = self.mapping(y, RANDOM)
        kinds: list[str] = []
        faults_y = self.required(body, y, "faults", "list the faults to draw from")
        for item in self.items(faults_y, what="faults"):
            k = self.fault_kind(item)
            if k in kinds:
                raise self.problem(item, f"fault '{k}' listed twice")
            kinds.append(k)
        targets_y = self.required(body, y, "targets", "list the replicas or sites to draw from")
        targets: list[str] = []
        for item in self.items(targets_y, what="targets"):
            if not isinstance(item.value, str):
                message = f"must be a replica or site name, got {describe(item.plain())}"
                raise self.problem(item, message)
            if item.value in targets:
                raise self.problem(item, f"target '{item.value}' listed twice")
            for k in kinds:  # any pair may be drawn: every fault must take every target
                try:
                    self.target(k, item)
                except Problem as e:
                    message = f"{e.message} (every listed fault must take every target)"
                    raise self.problem(item, message) from None
            targets.append(item.value)
        count_y = self.required(body, y, "count", "say how many faults to draw")
        count = self.take(count_y, COUNT)
        hold_y = self.required(body, y, "hold", "say how long each fault lasts, e.g. 2s")
        hold = self.duration_range(hold_y)
        gap = self.duration_range(body["gap"]) if "gap" in body else (0.0, 0.0)
        params: dict[str, dict[str, Any]] = {}
        params_y = body.get("params")
        given = self.mapping(params_y, tuple(kinds)) if params_y is not None else {}
        for k in kinds:
            cls = FAULTS[k]
            required = [p.name for p in cls.parameters if p.required]
            if k in given:
                pbody = self.mapping(given[k], param_names(cls))
                params[k] = self.params(k, pbody, given[k])
            elif required:
                where = params_y if params_y is not None else y
                example = f"params: {{{k}: {{{required[0]}: 100}}}}"
                raise Problem(
                    join(join(y.path, "params"), k),
                    f"missing; {k} needs {', '.join(required)} (e.g. {example})",
                    where.line,
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
