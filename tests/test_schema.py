"""JSON Schema of topology and rehearsal files (`kmschaos schema`), for editors.

The schemas are generated from the declarations that validate the files, shipped in
docs/schema/ and named by every shipped YAML file's first line (the yaml-language-server
modeline). Here: the shipped schemas are what the command generates; every shipped file
validates; files the loaders reject for an unknown key, a bad choice or a number out of
range are rejected by the schema too; a fault or checker defined in a test module is in
the rehearsal schema at once. And the YAML layer both loaders share: a topology error
knows its line (its text unchanged), and hostile YAML is refused in topology files too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from harness import cli
from harness.checkers import CHECKERS, CheckContext, Checker, Verdict
from harness.checkers.base import Bound
from harness.faults import FAULTS
from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.rehearsal import RehearsalError, parse_rehearsal, rehearsal_schema
from harness.toolchain import repo_root
from harness.topology import TopologyError, load_topology, parse_topology, topology_schema

ROOT = repo_root()
SCHEMAS = ROOT / "docs" / "schema"
TOPOLOGIES = ROOT / "scenarios" / "topologies"
REHEARSALS = ROOT / "scenarios" / "rehearsals"
FORMATS: dict[str, tuple[Path, Callable[[], dict[str, Any]]]] = {
    "topology": (TOPOLOGIES, topology_schema),
    "rehearsal": (REHEARSALS, rehearsal_schema),
}


def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{kind}.schema.json").read_text()))


def errors(kind: str, text: str) -> list[str]:
    data = yaml.safe_load(textwrap.dedent(text))
    return [e.message for e in validator(kind).iter_errors(data)]


@pytest.mark.parametrize("kind", list(FORMATS))
def test_the_shipped_schema_is_what_the_command_generates(kind: str) -> None:
    shipped = SCHEMAS / f"{kind}.schema.json"
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "schema", kind],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shipped.read_text(encoding="utf-8") == out, (
        f"{shipped.relative_to(ROOT)} is not what `kmschaos schema {kind}` generates; "
        f"regenerate it: kmschaos schema {kind} -o {shipped.relative_to(ROOT)}"
    )


@pytest.mark.parametrize("kind", list(FORMATS))
def test_the_schema_is_valid_json_schema(kind: str) -> None:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_command_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "t.json"
    assert cli.main(["schema", "topology", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == topology_schema()
    assert str(target) in capsys.readouterr().out


SHIPPED = [
    (kind, p) for kind, (folder, _) in FORMATS.items() for p in sorted(folder.glob("*.yaml"))
]


@pytest.mark.parametrize(("kind", "path"), SHIPPED, ids=[p.name for _, p in SHIPPED])
def test_every_shipped_file_names_its_schema_and_validates(kind: str, path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    modeline = f"# yaml-language-server: $schema=../../docs/schema/{kind}.schema.json"
    assert first == modeline
    assert (path.parent / first.split("$schema=")[1]).resolve() == SCHEMAS / f"{kind}.schema.json"
    problems = list(validator(kind).iter_errors(yaml.safe_load(path.read_text())))
    assert not problems, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in problems]


TOPOLOGY = """\
sites:
  site-a:
    replicas: [kms-a, kms-b]
clients:
  vc-a: {site: site-a, policy: vcenter}
timeouts: {response_s: 60}
"""


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("timeouts:", "timeout:", "timeout"),  # an unknown key
        ("policy: vcenter", "policy: vsphere", "clients.vc-a.policy"),  # not a policy
        ("response_s: 60", "response_s: 3601", "timeouts.response_s"),  # out of range
        ("response_s: 60", "response_s: 0", "timeouts.response_s"),  # 0 < s
        ("response_s: 60", "response_s: sixty", "timeouts.response_s"),  # not a number
        ("kms-b]", "KMS-B]", "sites.site-a.replicas[1]"),  # not a name
        ("replicas: [kms-a, kms-b]", "replicas: []", "sites.site-a.replicas"),  # empty
    ],
)
def test_what_the_topology_loader_rejects_the_schema_rejects(
    old: str, new: str, field: str
) -> None:
    assert not errors("topology", TOPOLOGY)
    text = TOPOLOGY.replace(old, new)
    with pytest.raises(TopologyError) as e:
        parse_topology(text, "t.yaml")
    assert e.value.field_path == field
    assert errors("topology", text), f"the schema accepts what the loader refuses: {e.value}"


REHEARSAL = """\
topology: one-site.yaml
workload: {clients: [vc-a], rate_per_s: 20}
steps:
  - wait: 1s
  - inject: {fault: latency, target: kms-a, ms: 100ms, as: slow}
  - expect: {availability: {min: 90%, max_gap: 1s}, order: pass}
  - heal: slow
  - random: {faults: [refuse, kill], targets: [kms-a, kms-b], count: 2, hold: [1s, 2s]}
seed: 3
"""


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("- wait: 1s", "- wiat: 1s", "steps[0].wiat"),  # an unknown step
        ("seed: 3", "sead: 3", "sead"),  # an unknown key
        ("fault: latency", "fault: flood", "steps[1].inject.fault"),  # not a fault
        ("ms: 100ms, ", "", "steps[1].inject.ms"),  # a required parameter
        ("ms: 100ms", "mss: 100ms", "steps[1].inject.mss"),  # not its parameter
        ("order: pass", "order: passed", "steps[2].expect.order"),  # not a status
        ("order: pass", "liveness: pass", "steps[2].expect.liveness"),  # not a checker
        ("min: 90%", "min: 1.5", "steps[2].expect.availability.min"),  # a share > 1
        ("count: 2", "count: 0", "steps[4].random.count"),  # out of range
        ("rate_per_s: 20", "rate_per_s: 0", "workload.rate_per_s"),  # 0 < rate
        ("- wait: 1s", "- wait: 5 parsecs", "steps[0].wait"),  # not a duration
        ("- wait: 1s", "- wait: -1", "steps[0].wait"),  # negative
    ],
)
def test_what_the_rehearsal_loader_rejects_the_schema_rejects(
    old: str, new: str, field: str
) -> None:
    assert not errors("rehearsal", REHEARSAL)
    text = REHEARSAL.replace(old, new)
    with pytest.raises(RehearsalError) as e:
        parse_rehearsal(text, "r.yaml", base_dir=REHEARSALS)
    assert e.value.field_path == field
    assert errors("rehearsal", text), f"the schema accepts what the loader refuses: {e.value}"


@pytest.fixture
def registered() -> Iterator[None]:
    """A fault and a checker defined here, nowhere else."""

    class Hiccup(LinkFault):
        kind = "test-schema-hiccup"
        summary = "responses held back"
        parameters = (Param("hiccup_ms", "ms", "how long each response is held", required=True),)

    class Echo(Checker):
        name = "test_schema_echo"
        what = "Echo: counts operations."
        expectations = (Bound("at_least", "duration", "at_least_s", "seconds of history"),)

        def check(self, ctx: CheckContext) -> Verdict:
            return Verdict(self.name, "pass", "ok")

    try:
        yield
    finally:
        FAULTS.unregister(Hiccup.kind)
        CHECKERS.unregister(Echo.name)


@pytest.mark.usefixtures("registered")
def test_a_fault_and_a_checker_defined_elsewhere_are_in_the_rehearsal_schema() -> None:
    v = Draft202012Validator(rehearsal_schema())
    head = {"topology": "one-site.yaml", "steps": []}
    inject = {"fault": "test-schema-hiccup", "target": "kms-a", "hiccup_ms": "20ms"}
    expect = {"test_schema_echo": {"at_least": "5s", "status": "fail"}}
    assert v.is_valid({**head, "steps": [{"inject": inject}, {"expect": expect}]})
    del inject["hiccup_ms"]
    assert not v.is_valid({**head, "steps": [{"inject": inject}]})
    text = json.dumps(rehearsal_schema())
    assert "how long each response is held" in text and "Echo: counts operations." in text


# ---- the YAML layer both loaders share -------------------------------------------------------


def test_a_topology_error_knows_its_line_and_keeps_its_text() -> None:
    with pytest.raises(TopologyError) as e:
        parse_topology(TOPOLOGY.replace("policy: vcenter", "policy: vsphere"), "t.yaml")
    assert e.value.line == 5
    assert str(e.value) == (
        "t.yaml: clients.vc-a.policy: unknown policy 'vsphere' (known: vcenter, pykmip, "
        "mongodb, ontap, kmip-go, retrying)"
    )
    with pytest.raises(TopologyError) as e:
        parse_topology(TOPOLOGY.replace("site: site-a, ", ""), "t.yaml")
    assert (e.value.field_path, e.value.line) == ("clients.vc-a.site", 5)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (TOPOLOGY + "timeouts: {}\n", "timeouts", "duplicate key (first at line 6)"),
        ("sites: &s {a: *s}\n", "sites.a", "recursive alias: the value contains itself"),
        ("sites: " + "[" * 60 + "]" * 60, "sites" + "[0]" * 40, "nested too deeply"),
        ("sites: !!set {a}\n", "sites", "unsupported YAML tag !!set"),
        ("time_scale: !!int x\n", "time_scale", "cannot read 'x' as !!int"),
    ],
)
def test_hostile_yaml_is_refused_in_topology_files_too(text: str, field: str, message: str) -> None:
    with pytest.raises(TopologyError) as e:
        parse_topology(text, "t.yaml")
    assert e.value.field_path == field and e.value.message.startswith(message), str(e.value)
    assert e.value.line is not None


def test_a_topology_that_is_not_utf8_is_a_topology_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: \xff\n")
    with pytest.raises(TopologyError, match="not UTF-8 text"):
        load_topology(path)


def test_a_rehearsal_names_the_line_of_its_topology_error(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TOPOLOGY.replace("policy: vcenter", "policy: vsphere"))
    (tmp_path / "r.yaml").write_text("topology: t.yaml\nsteps: [{wait: 1}]\n")
    with pytest.raises(RehearsalError) as e:
        parse_rehearsal((tmp_path / "r.yaml").read_text(), "r.yaml", base_dir=tmp_path)
    assert str(e.value).startswith("r.yaml: line 1: topology: invalid topology: ")
    assert str(e.value).endswith(
        "(known: vcenter, pykmip, mongodb, ontap, kmip-go, retrying) (t.yaml, line 5)"
    )
