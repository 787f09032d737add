"""What a rehearsal file may contain, declared once: every key with its shape, limits and
help. The validator takes its known keys and limits from here, and `rehearsal_schema`
renders the same declarations as JSON Schema (`kmschaos schema rehearsal`).

The parts that list faults, their parameters and checkers with their bounds are built
from the registries (`FAULTS`, `CHECKERS`, `POLICIES`) when asked for: a fault or checker
defined anywhere shows up here without an edit.
"""

from __future__ import annotations

import re

from harness.admin import ADMIN_OPS, MASTER_OF
from harness.checkers import CHECKERS, Bound
from harness.client.operations import OPERATIONS
from harness.client.policies import POLICIES
from harness.faults import FAULTS, Fault
from harness.faults.params import Param
from harness.scenario import FAILOVER_MIX
from harness.yamlfile import (
    AnyOf,
    Boolean,
    Choice,
    Duration,
    Field,
    Integer,
    Keys,
    Lazy,
    ListOf,
    Millis,
    Name,
    Number,
    Offset,
    Schema,
    Shape,
    Share,
    Text,
    schema_of,
)

DEFAULT_RUN_TIMEOUT_S = 60.0
MAX_STEPS = 1000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STATUSES = ("pass", "fail", "unknown")
_NAME_RULE = "use letters, digits, '-', '_' and '.' (at most 64)"

REHEARSAL_NAME = Name(pattern=NAME_RE, rule=_NAME_RULE, what="rehearsal name")
FAULT_NAME = Name(pattern=NAME_RE, rule=_NAME_RULE, what="fault name", ref="fault-name")
STATUS = Choice(values=STATUSES, what="status", help="the verdict expected", ref="status")
SEED = Integer(lo=0, hi=2**63 - 1)
EXIT_STATUS = Integer(lo=0, hi=255)
COUNT = Integer(lo=1, hi=1000)
WEIGHT = Number(lo=0, hi=1e6)
# a fault parameter's value, by unit (`Param.unit`)
PARAM_SHAPES: dict[str, Shape] = {
    "ms": Millis(),
    "s": Duration(positive=True),
    "kbps": Number(lo=0, hi=10_000_000, lo_open=True, ref="kbps"),
    "bool": Boolean(),
    "offset": Offset(),
    "count": Integer(lo=1, hi=1_000_000),
}
# an expectation's bound, by kind (`Bound.kind`)
BOUND_SHAPES: dict[str, Shape] = {
    "duration": Duration(),
    "share": Share(),
    "client": Text(help="a client of the workload"),
    "site": Text(help="a site of the topology"),
    "replica": Text(help="a replica of the topology"),
    "fault": Text(help="the `as` name of an injected fault"),
}
TARGET_HELP = {
    "replica": "a replica",
    "site": "a site",
    "balancer": "a load balancer",
    "groups": "groups: sites or replica lists (`site-a site-b`, [site-a, [kms-d, kms-e]])",
}

OPS = Keys(fields=tuple(Field(op, WEIGHT, f"the weight of {op}") for op in OPERATIONS))
WORKLOAD = Keys(
    fields=(
        Field("clients", ListOf(items=Text(), unique=True), "the clients that run (default: all)"),
        Field(
            "rate_per_s",
            Number(lo=0, hi=1000, lo_open=True),
            "operations per second of each client",
            default=20.0,
        ),
        Field(
            "ops",
            OPS,
            f"the operation mix, as weights (default {FAILOVER_MIX})",
        ),
        Field("policy", Choice(values=POLICIES, what="policy"), "every client's policy instead"),
        Field("per_client", Integer(lo=1, hi=16), "workers per client", default=1),
    ),
    help="operations run in the background from the first step to the last",
)
RUN = Keys(
    fields=(
        Field("command", Text(), "a shell command, run in the rehearsal's folder", required=True),
        Field("timeout", Duration(positive=True), "killed after this", default="60s"),
        Field(
            "expect_exit",
            AnyOf(options=(EXIT_STATUS, Choice(values=("any",), what="exit status"))),
            "the exit status expected, or `any`",
            default=0,
        ),
    )
)
DURATION_RANGE = AnyOf(
    options=(Duration(), ListOf(items=Duration(), min_items=2, max_items=2)),
    help="a duration, or [shortest, longest] to draw from",
)
RANDOM = Keys(
    fields=(
        Field(
            "faults",
            ListOf(items=Choice(values=FAULTS, what="fault"), unique=True),
            "the faults to draw from",
            required=True,
        ),
        Field("targets", ListOf(items=Text(), unique=True), "replicas or sites", required=True),
        Field("count", COUNT, "how many faults to draw", required=True),
        Field("hold", DURATION_RANGE, "how long each fault lasts", required=True),
        Field("gap", DURATION_RANGE, "the pause after each heal", default=0),
        Field("params", Lazy(build=lambda: random_params()), "parameters per fault"),
    ),
    help="faults drawn with the seed, each injected, held and healed in turn",
)
HEAL = AnyOf(
    options=(Choice(values=("all",), what="heal"), FAULT_NAME, ListOf(items=FAULT_NAME)),
    help="`all`, or the `as` name(s) of injected faults",
)
INJECT = Keys(
    fields=(
        Field("fault", Choice(values=FAULTS, what="fault"), required=True),
        Field("target", Text(), "one target"),
        Field("targets", ListOf(items=Text()), "one fault per target"),
        Field("as", FAULT_NAME, "a name for heal and expect"),
    )
)
# ---- certificates: planned operator actions on the cluster's PKI -----------------------

OLD_CA, NEW_CA = "old", "new"
CA = Choice(
    values=(OLD_CA, NEW_CA),
    what="CA",
    help="`old`: the cluster's CA; `new`: the one a `new-ca` action made",
)
_BY_DEFAULT = " (default: `new` once a `new-ca` step made it, else `old`)"
CERT_ACTIONS: dict[str, str] = {
    "new-ca": "make a new CA (key and certificate); nobody trusts it yet",
    "trust": "the CAs (`cas`) clients trust in their CA file and replicas trust for client "
    "certificates, as one bundle, replaced live (`[old, new]` before a rotation, `[new]` to "
    "drop the old CA)",
    "rotate-server-cert": "reissue the server certificate of each of `replicas` from `ca` "
    "(new key, new serial, same names), one replica at a time with `gap` between, applied "
    "live for new handshakes with open sessions kept: a graceful reload",
    "rotate-client-cert": "reissue the clients' certificate from `ca` (new serial, same key "
    "pair), replaced in place: each client presents it from its next connection",
    "expire-ca": "replace the certificate of `ca` that clients and replicas trust by an "
    "expired copy of itself (same name and key): every handshake that needs it fails",
    "restore": "the cluster's own certificates, key and CA file again, everywhere (done "
    "anyway when the rehearsal ends, whatever happened)",
}
CERT_ACTION = Choice(
    values=tuple(CERT_ACTIONS), what="action", explain=CERT_ACTIONS.__getitem__, ref="cert-action"
)
CERT_REPLICAS = AnyOf(
    options=(Choice(values=("all",), what="replicas"), Text(), ListOf(items=Text(), unique=True)),
    help="`all` (default), a replica, or replicas in the order they are rotated",
)
CERT_FIELDS: dict[str, tuple[Field, ...]] = {  # each action's fields besides `action`
    "new-ca": (),
    "trust": (Field("cas", ListOf(items=CA, unique=True), "the CAs of the bundle", required=True),),
    "rotate-server-cert": (
        Field("replicas", CERT_REPLICAS),
        Field("ca", CA, "the CA that issues" + _BY_DEFAULT),
        Field("gap", Duration(), "held between two replicas", default=0),
    ),
    "rotate-client-cert": (Field("ca", CA, "the CA that issues" + _BY_DEFAULT),),
    "expire-ca": (Field("ca", CA, "the CA that expires" + _BY_DEFAULT),),
    "restore": (),
}


def certificate_forms() -> Shape:
    """An action's name alone (its defaults), or per action its mapping."""
    forms: list[Shape] = [CERT_ACTION]
    for action, fields in CERT_FIELDS.items():
        head = Field(
            "action", Choice(values=(action,), what="action"), CERT_ACTIONS[action], required=True
        )
        forms.append(Keys(fields=(head, *fields), help=action))
    return AnyOf(
        options=tuple(forms),
        help="a planned operator action on the cluster's certificates (not a fault): "
        "undone when the rehearsal ends",
    )


CERTIFICATES = certificate_forms()
# ---- client lifecycle: a workload client restarted, stopped or started ------------------

CLIENT_STEPS: dict[str, str] = {
    "restart-client": "restart a client of the workload: from its next operation it has "
    "forgotten its connection, the server it chose at start and the servers it avoided",
    "stop-client": "stop a client of the workload: it issues no operation until a "
    "`start-client` step",
    "start-client": "start a client stopped by a `stop-client` step again, as a fresh process",
}
CLIENT_NAME = Text(help="a client of the workload (every instance of it)")
# ---- admin: an administrator's KMIP operation on one replica, directly -----------------

ADMIN = Keys(
    fields=(
        Field(
            "op",
            Choice(values=tuple(ADMIN_OPS), what="admin operation", explain=ADMIN_OPS.__getitem__),
            "the KMIP operation",
            required=True,
        ),
        Field("replica", Text(help="a replica of the topology"), "run on it", required=True),
        Field(
            "key",
            Text(),
            f"a key uid, or `{MASTER_OF} CLIENT`: the master key of a workload client whose "
            "policy has key_state_poll_s",
            required=True,
        ),
    ),
    help="an administrator's KMIP operation run directly on one replica (not through a "
    "client link); with async replication the other replicas learn it later",
)
STEP = Keys(
    fields=(
        Field("wait", Duration(), "hold for this long (wall-clock)"),
        Field("inject", Lazy(build=lambda: inject_forms()), "inject a fault (`kmschaos faults`)"),
        Field("heal", HEAL, "heal every fault, or the named ones"),
        Field("expect", Lazy(build=lambda: expectations()), "checkers over the history so far"),
        Field("run", AnyOf(options=(Text(), RUN)), "a shell command with the cluster's endpoints"),
        Field("checkpoint", Text(), "a message; with --interactive, wait for Enter"),
        Field("random", RANDOM),
        Field(
            "certificates", Lazy(build=certificate_forms), "rotate, trust or expire certificates"
        ),
        *(Field(kind, CLIENT_NAME, help) for kind, help in CLIENT_STEPS.items()),
        Field("admin", ADMIN, "an operator revokes, compromises or destroys a key on a replica"),
    ),
    min_keys=1,
    max_keys=1,
    help="one step",
)
REHEARSAL = Keys(
    fields=(
        Field("name", REHEARSAL_NAME, "the rehearsal's name (default: the file name)"),
        Field("description", Text()),
        Field(
            "topology",
            Text(),
            "a topology file: relative to this file, or one of scenarios/topologies/",
            required=True,
        ),
        Field("workload", WORKLOAD),
        Field("steps", ListOf(items=STEP, max_items=MAX_STEPS), "what happens", required=True),
        Field("seed", SEED, "the seed of random steps and the workload mix"),
    ),
    help="A kmschaos rehearsal: a topology, a workload and steps (faults, waits, "
    "expectations) in YAML.",
)
TOP_KEYS = REHEARSAL.keys
WORKLOAD_KEYS = WORKLOAD.keys
RUN_KEYS = RUN.keys
RANDOM_KEYS = RANDOM.keys
INJECT_KEYS = INJECT.keys
STEP_KINDS = STEP.keys


def param_names(cls: type[Fault]) -> tuple[str, ...]:
    return tuple(p.name for p in cls.parameters)


def param_field(p: Param) -> Field:
    return Field(p.name, PARAM_SHAPES[p.unit], p.help, required=p.required, default=p.default)


def bound_field(b: Bound) -> Field:
    return Field(b.key, BOUND_SHAPES[b.kind], b.help)


def _target(cls: type[Fault]) -> Shape:
    kind = cls.target_kind
    if kind != "groups":
        return Text(help=TARGET_HELP[kind])
    group = AnyOf(options=(Text(), ListOf(items=Text())))
    groups = ListOf(items=group, min_items=2)
    return AnyOf(options=(Text(), groups), help=TARGET_HELP[kind], ref="groups")


def inject_forms() -> Shape:
    """One form per fault: its kind, target(s), `as` and its own parameters."""
    forms = []
    for kind, cls in FAULTS.items():
        target = _target(cls)
        targets = target if cls.target_kind == "groups" else ListOf(items=target, unique=True)
        fields = (
            Field("fault", Choice(values=(kind,), what="fault"), cls.summary, required=True),
            Field("target", target),
            Field("targets", targets, f"one fault per target: {TARGET_HELP[cls.target_kind]}"),
            INJECT["as"],
            *(param_field(p) for p in cls.parameters),
        )
        forms.append(Keys(fields=fields, one_of=("target", "targets"), help=f"inject {kind}"))
    return AnyOf(options=tuple(forms))


def expectations() -> Shape:
    """Per checker: a status, or its bounds (`Checker.expectations`) and a status."""
    fields = []
    for name, checker in CHECKERS.items():
        bounds = Keys(
            fields=(*(bound_field(b) for b in checker.expectations), Field("status", STATUS))
        )
        fields.append(Field(name, AnyOf(options=(STATUS, bounds)), checker.what))
    return Keys(fields=tuple(fields), min_keys=1)


def random_params() -> Shape:
    """A random step's `params`: per fault, its parameters."""
    return Keys(
        fields=tuple(
            Field(kind, Keys(fields=tuple(param_field(p) for p in cls.parameters)))
            for kind, cls in FAULTS.items()
        )
    )


def rehearsal_schema() -> Schema:
    """JSON Schema of rehearsal files, from the declarations that validate them."""
    return schema_of(REHEARSAL, "rehearsal")
