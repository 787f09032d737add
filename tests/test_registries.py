"""Faults, checkers and client policies describe themselves in one place.

A fault defined here, in a test module — one class, nothing else edited — must show up
everywhere a fault is used: the `inject` command's options, `kmschaos faults`, rehearsal
validation, the matrix, the failover checker's bound, and the README's fault table. The
same for a checker (scenario.check, the report, rehearsal expectations, the verdict
table). And the README's tables are the generated ones.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.checkers import CHECKERS, CheckContext, Checker, Verdict, brief, explain, headline
from harness.checkers.base import Bound
from harness.checkers.failover import check_failover
from harness.client.policies import POLICIES, policy_table
from harness.faults import FAULTS, make_fault
from harness.faults.base import fault_table
from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.history import Attempt, Complete, FaultEvent
from harness.matrix import add_matrix_parser, parse_faults, plan_matrix
from harness.rehearsal import RehearsalError, parse_rehearsal
from harness.toolchain import repo_root
from harness.topology import load_topology

ONE_SITE = repo_root() / "scenarios" / "topologies" / "one-site.yaml"
REHEARSALS = repo_root() / "scenarios" / "rehearsals"
README = repo_root() / "README.md"


@pytest.fixture
def hiccup() -> Iterator[type[LinkFault]]:
    """A fault defined in this test module: registered by its definition alone."""

    class Hiccup(LinkFault):
        """`test-hiccup`: responses held back for `hiccup_ms` (a latency toxic)."""

        kind = "test-hiccup"
        position = 999
        summary = "every response held back `--hiccup-ms`"
        client_sees = "a slow answer, as if the server hiccuped"
        heals = "toxic removed"
        parameters = (Param("hiccup_ms", "ms", "how long each response is held", required=True),)
        client_wait = "response"
        in_matrix = True

        def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
            return [("latency", "downstream", {"latency": int(self.param("hiccup_ms"))})]

    try:
        yield Hiccup
    finally:
        FAULTS.unregister("test-hiccup")


def test_a_fault_defined_in_a_test_module_is_found_everywhere(
    hiccup: type[LinkFault], capsys: pytest.CaptureFixture[str]
) -> None:
    assert FAULTS["test-hiccup"] is hiccup and list(FAULTS)[-1] == "test-hiccup"

    # the inject command: the fault is a choice, its parameter an option
    parser = cli.build_parser()
    args = parser.parse_args(["inject", "test-hiccup", "kms-a", "--hiccup-ms", "30"])
    assert args.hiccup_ms == 30
    assert cli._fault_params(args, "test-hiccup") == {"hiccup_ms": 30}
    inject_help = _subparser(parser, "inject").format_help()
    assert "test-hiccup" in inject_help and "--hiccup-ms" in inject_help
    assert "test-hiccup: how long each response is held" in " ".join(inject_help.split())
    wrong = parser.parse_args(["inject", "latency", "kms-a", "--hiccup-ms", "30"])
    with pytest.raises(cli.UserError, match="latency takes no --hiccup-ms .*test-hiccup"):
        cli._fault_params(wrong, "latency")

    # kmschaos faults, and its markdown (the README's table)
    assert cli.main(["faults"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^[│|] test-hiccup +[│|]", listed, flags=re.MULTILINE), listed
    assert "--hiccup-ms N" in listed
    row = next(line for line in fault_table().splitlines() if "test-hiccup" in line)
    assert row.startswith("| `test-hiccup REPLICA --hiccup-ms N` | every response held back")
    assert "the policy's response timeout" in row

    # rehearsal validation: the parameter, its unit, and a missing one
    head = "topology: one-site.yaml\nsteps:\n"
    r = parse_rehearsal(
        head + "  - inject: {fault: test-hiccup, target: kms-a, hiccup_ms: 20ms}\n",
        "r.yaml",
        base_dir=REHEARSALS,
    )
    assert r.fault_kinds() == ["test-hiccup"]
    assert r.steps[0].faults[0].params == {"hiccup_ms": 20}  # type: ignore[attr-defined]
    with pytest.raises(RehearsalError, match="test-hiccup needs hiccup_ms"):
        parse_rehearsal(
            head + "  - inject: {fault: test-hiccup, target: kms-a}\n",
            "r.yaml",
            base_dir=REHEARSALS,
        )

    # the matrix: a matrix fault, listed in --faults' help, costing a response timeout
    assert parse_faults("refuse,test-hiccup") == ["refuse", "test-hiccup"]
    sub = argparse.ArgumentParser().add_subparsers()
    matrix_help = add_matrix_parser(sub).format_help()
    assert "test-hiccup" in " ".join(matrix_help.split())
    plan = plan_matrix(
        argparse.Namespace(
            topology=str(ONE_SITE),
            policies="vcenter,pykmip",
            faults="test-hiccup",
            target=None,
            all_clients=False,
            time_scale=0.05,
            jobs=1,
            report_dir="/nonexistent",
            backend="local",
        )
    )
    assert plan.expected_cost("test-hiccup") == pytest.approx(3.0)

    # the failover checker's bound: one failed attempt costs the response timeout
    verdict = check_failover(
        _one_failover("test-hiccup"), response_timeout=3.0, connect_timeout=0.25
    )
    fig = verdict.figures["f1"]["clients"]["vc-a"]
    assert fig["expected_wait_s"] == pytest.approx(3.0), verdict.details
    assert verdict.status == "pass", verdict.summary
    assert "test-hiccup" in (verdict.bound or "")

    # make_fault validates the declared parameter
    topo = load_topology(ONE_SITE)
    with pytest.raises(Exception, match="test-hiccup: needs --hiccup-ms N"):
        make_fault("test-hiccup", _FakeCluster(topo), "kms-a")


def test_a_fault_without_its_own_registry_entry_is_unknown_everywhere() -> None:
    assert "test-hiccup" not in FAULTS  # the fixture cleaned up
    verdict = check_failover(
        _one_failover("test-hiccup"), response_timeout=3.0, connect_timeout=0.25
    )
    assert verdict.figures["f1"]["applicable"] is False
    assert "unknown fault kind 'test-hiccup'" in verdict.figures["f1"]["note"]


@pytest.fixture
def echo_checker() -> Iterator[type[Checker]]:
    """A checker defined in this test module."""

    class EchoChecker(Checker):
        name = "test_echo"
        position = 999
        what = "Echo: counts the operations it was shown."
        failure_means = "A failure means fewer operations than asked for."
        expectations = (Bound("at_least", "duration", "at_least_s", "seconds of history"),)

        def check(self, ctx: CheckContext) -> Verdict:
            ops = sum(1 for e in ctx.events if isinstance(e, Complete))
            ok = ops >= ctx.bound("at_least_s", 0)
            return Verdict(self.name, "pass" if ok else "fail", f"{ops} ops", {"ops": ops})

        def headline(self, v: dict[str, Any]) -> str:
            return f"{v['figures']['ops']} ops echoed"

        def brief(self, v: dict[str, Any]) -> str:
            return f" {v['figures']['ops']}"

    try:
        yield EchoChecker
    finally:
        CHECKERS.unregister("test_echo")


def test_a_checker_defined_in_a_test_module_is_found_everywhere(
    echo_checker: type[Checker],
) -> None:
    assert list(CHECKERS)[-1] == "test_echo"
    v = CHECKERS["test_echo"].check(
        CheckContext.of(_one_failover("refuse"), load_topology(ONE_SITE), at_least_s=1)
    )
    d = v.to_dict()
    assert (v.status, headline(d), brief(d)) == ("pass", "2 ops echoed", " 2")
    assert explain({**d, "status": "fail"}).startswith("Echo: counts the operations")

    # a rehearsal may expect it, with its own bound
    head = "topology: one-site.yaml\nworkload: {clients: [vc-a]}\nsteps:\n"
    r = parse_rehearsal(
        head + "  - expect: {test_echo: {at_least: 5s, status: fail}}\n",
        "r.yaml",
        base_dir=REHEARSALS,
    )
    exp = r.steps[0].expectations[0]  # type: ignore[attr-defined]
    assert (exp.checker, exp.want, exp.bounds) == ("test_echo", "fail", {"at_least_s": 5.0})
    with pytest.raises(RehearsalError, match=r"unknown key 'within' \(known: at_least, status\)"):
        parse_rehearsal(
            head + "  - expect: {test_echo: {within: 1s}}\n", "r.yaml", base_dir=REHEARSALS
        )


def test_the_readme_tables_are_the_generated_ones() -> None:
    text = README.read_text(encoding="utf-8")
    for table, command in ((fault_table(), "faults"), (policy_table(), "policies")):
        assert table in text, (
            f"README.md's {command} table is not what `kmschaos {command} --markdown` prints: "
            f"paste its output between the table's comment lines"
        )


def test_registries_list_the_shipped_ones_in_catalogue_order() -> None:
    # the faults' order: tests/test_cli_usage.py (kmschaos faults, inject's error)
    assert list(POLICIES) == ["vcenter", "pykmip", "mongodb", "ontap", "kmip-go", "retrying"]
    assert list(CHECKERS) == [
        "fault_effect",
        "failover",
        "order",
        "availability",
        "slowdown",
        "lb_ejection",
        "durability",
        "convergence",
        "lost_update",
        "site_availability",
    ]
    for kind, cls in FAULTS.items():
        assert cls.summary and cls.client_sees and cls.heals, kind
        names = [p.name for p in cls.parameters]
        assert len(names) == len(set(names)), kind
    # one option per parameter name: every fault taking it agrees on its unit
    for name, takers in FAULTS.all_parameters().items():
        assert len({p.unit for _, p in takers}) == 1, name


# ---- helpers ---------------------------------------------------------------------------------


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _one_failover(kind: str) -> list[Any]:
    """vc-a: one ok op, then fault `kind` on kms-a, one op that waits 3 s on kms-a and
    is served by kms-b."""
    t0 = 1000.0
    ok = Complete("vc-a#0:1", "vc-a", "vcenter", "locate", t0, t0 + 0.01, "ok", "kms-a",
                  attempts=[Attempt("kms-a", "h:1", t0, t0 + 0.01, "ok")])  # fmt: skip
    start = t0 + 1.0
    moved = Complete(
        "vc-a#0:2",
        "vc-a",
        "vcenter",
        "locate",
        start,
        start + 3.02,
        "ok",
        "kms-b",
        attempts=[
            Attempt("kms-a", "h:1", start, start + 3.0, "timeout"),
            Attempt("kms-b", "h:2", start + 3.0, start + 3.02, "ok"),
        ],
    )
    return [
        ok,
        FaultEvent("f1", "inject", kind, "kms-a", t0 + 0.5, {"replicas": ["kms-a"]}),
        moved,
        FaultEvent("f1", "heal", kind, "kms-a", start + 4.0),
    ]


class _FakeCluster:
    """Enough of a cluster for a fault to check its target and parameters."""

    def __init__(self, topo: Any) -> None:
        from harness.cluster.state import ClusterState, ReplicaState

        self.state = ClusterState(
            run_id="kctest",
            backend="local",
            state_dir=str(Path("/nonexistent")),
            subnet="127.9.9",
            topology=topo.to_dict(),
            topology_source=topo.source,
            detached=False,
            tls={},
        )
        self.state.replicas = {
            r: ReplicaState(r, "site-a", i, f"127.9.9.{i}", f"127.9.9.{100 + i}")
            for i, r in enumerate(topo.replicas, 1)
        }
        self.capabilities = frozenset({"links"})
