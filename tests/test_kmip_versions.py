"""KMIP protocol versions: a replica's `kmip_versions` (topology), the replica program
that refuses other versions as PyKMIP's server does, the attempt outcome
`version-refused` (both engines, the checkers), and the linter's `unspoken-version`.
Unit tests, no cluster (scenarios/test_kmip_version_refusal.py runs one)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kmip import enums
from kmip.core import exceptions as core_exceptions
from kmip.pie.exceptions import KmipOperationFailure

from harness.checkers.order import check_order
from harness.client import policies as policies_module
from harness.client import walker as walker_module
from harness.client.engine import TlsFiles
from harness.client.operations import OpValue
from harness.client.policies import POLICIES, PyKmipPolicy
from harness.client.transport import Endpoint, classify, refuses_version
from harness.client.walker import WalkingPolicy
from harness.cluster.docker_replica import kmip_versions_args, replica_command
from harness.cluster.state import ClusterState, ReplicaState
from harness.history import ATTEMPT_OUTCOMES, Attempt, Complete
from harness.replica import versions
from harness.topology import TopologyError, parse_topology
from harness.topology.fileformat import SERVER_KMIP_VERSIONS
from harness.topology.model import replica_kmip_versions
from harness.topology_lint import RULES, lint

REFUSAL = "KMIP 1.1 is not supported by the server."
FAILED = enums.ResultStatus.OPERATION_FAILED


def topo(text: str, source: str = "t.yaml") -> Any:
    return parse_topology(textwrap.dedent(text), source)


def versioned(entry: str, clients: str = "") -> str:
    return (
        "sites:\n  site-a:\n    replicas:\n"
        f"      - {entry}\n      - kms-b\n      - kms-c\n"
        "clients:\n"
        + (clients or "  vc-a:\n    site: site-a\n")
        + "replication:\n  profile: async\n"
    )


# ---- the topology field ------------------------------------------------------------------


@pytest.mark.parametrize(
    "written, kept",
    [
        ("[1.2, 1.4]", ("1.2", "1.4")),
        ('["1.2", "2.0"]', ("1.2", "2.0")),
        ("[2.0, 1.0]", ("2.0", "1.0")),
        ("[2]", ("2.0",)),
    ],
)
def test_kmip_versions_read_as_numbers_or_strings(written: str, kept: tuple[str, ...]) -> None:
    t = topo(versioned(f"{{name: kms-a, kmip_versions: {written}}}"))
    assert t.info_of("kms-a").kmip_versions == kept
    assert t.info_of("kms-a").speaks == kept


def test_a_replica_that_says_nothing_speaks_every_version_pykmip_does() -> None:
    t = topo(versioned("kms-a"))
    assert t.info_of("kms-a").kmip_versions is None
    assert t.info_of("kms-a").speaks == SERVER_KMIP_VERSIONS
    assert SERVER_KMIP_VERSIONS == ("1.0", "1.1", "1.2", "1.3", "1.4", "2.0")


def test_kmip_versions_round_trip_and_reach_the_recorded_topology() -> None:
    t = topo(versioned("{name: kms-a, kmip_versions: [1.2, 1.4]}"))
    d = t.to_dict()
    assert d["sites"]["site-a"]["replicas"][0] == {"name": "kms-a", "kmip_versions": ["1.2", "1.4"]}
    assert d["sites"]["site-a"]["replicas"][1] == "kms-b"
    again = parse_topology(yaml.safe_dump(d), "again.yaml")
    assert again.replica_info == t.replica_info
    assert replica_kmip_versions(d, "kms-a") == ("1.2", "1.4")
    assert replica_kmip_versions(d, "kms-b") is None


def test_an_external_replica_says_what_the_real_kms_speaks() -> None:
    text = """\
    allow_external: true
    tls: {ca: ca.pem, cert: c.pem, key: c.key}
    sites:
      site-a:
        replicas:
          - {name: kms-x, external: {host: kms.example.net}, kmip_versions: [1.4]}
    clients:
      vc-a: {site: site-a}
    """
    t = topo(text)
    assert t.info_of("kms-x").kmip_versions == ("1.4",)


@pytest.mark.parametrize(
    "value, field, message",
    [
        ("[]", "kmip_versions", "must be a non-empty list of KMIP versions"),
        ("1.2", "kmip_versions", "must be a non-empty list of KMIP versions"),
        (
            "[1.2, 1.5]",
            "kmip_versions[1]",
            "unknown KMIP version 1.5 (known: 1.0, 1.1, 1.2, 1.3, 1.4, 2.0)",
        ),
        (
            "[3.0]",
            "kmip_versions[0]",
            "unknown KMIP version 3.0 (known: 1.0, 1.1, 1.2, 1.3, 1.4, 2.0)",
        ),
        ("[1.2, '1.2']", "kmip_versions[1]", "KMIP version 1.2 listed twice"),
    ],
)
def test_kmip_versions_errors_name_file_line_and_field(
    value: str, field: str, message: str
) -> None:
    text = f"sites:\n  site-a:\n    replicas:\n      - kms-a\n      - {{name: kms-b, kmip_versions: {value}}}\nclients:\n  vc-a: {{site: site-a}}\n"  # noqa: E501
    with pytest.raises(TopologyError) as ei:
        parse_topology(text, "t.yaml")
    path = f"sites.site-a.replicas[1].{field}"
    assert (ei.value.field_path, ei.value.message, ei.value.line) == (path, message, 5)
    assert str(ei.value) == f"t.yaml: {path}: {message}"


def test_the_schema_accepts_what_the_loader_accepts() -> None:
    from harness.topology import topology_schema

    schema = topology_schema()
    replica = schema["properties"]["sites"]["additionalProperties"]["properties"]["replicas"]
    mapping = replica["items"]["anyOf"][1]
    prop = mapping["properties"]["kmip_versions"]
    assert prop["minItems"] == 1 and prop["uniqueItems"] is True
    assert {"1.2", 1.2} <= set(prop["items"]["enum"])


# ---- the replica program -----------------------------------------------------------------


def test_the_replica_option_reads_versions_newest_first() -> None:
    assert versions.parse("1.2,1.4") == [(1, 4), (1, 2)]
    assert versions.parse(" 2.0 , 1.0,1.0") == [(2, 0), (1, 0)]
    for bad in ("", "1", "1.x", "1.2,,1.4"):
        with pytest.raises(ValueError):
            versions.parse(bad)


def _request(major: int, minor: int) -> Any:
    from kmip.core import primitives
    from kmip.core.messages import contents, messages, payloads

    header = messages.RequestHeader(
        protocol_version=contents.ProtocolVersion(major, minor),
        batch_count=contents.BatchCount(1),
    )
    item = messages.RequestBatchItem(
        operation=primitives.Enumeration(
            enums.Operation, enums.Operation.LOCATE, tag=enums.Tags.OPERATION
        ),
        request_payload=payloads.LocateRequestPayload(),
    )
    return messages.RequestMessage(request_header=header, batch_items=[item])


def test_a_restricted_engine_refuses_other_versions_with_pykmips_own_answer(
    tmp_path: Path,
) -> None:
    from kmip.services.server.engine import KmipEngine

    engine = KmipEngine(database_path=str(tmp_path / "kms.sqlite"))
    versions.restrict(engine, versions.parse("1.2"))
    assert [str(v) for v in engine._protocol_versions] == ["1.2"]
    response, _, version = engine.process_request(_request(1, 2))
    assert str(version) == "1.2"
    assert response.batch_items[0].result_status.value == enums.ResultStatus.SUCCESS
    for major, minor in ((1, 1), (2, 0)):
        with pytest.raises(core_exceptions.InvalidMessage) as ei:
            engine.process_request(_request(major, minor))
        assert ei.value.reason == enums.ResultReason.INVALID_MESSAGE
        assert str(ei.value) == f"KMIP {major}.{minor} is not supported by the server."
    with pytest.raises(ValueError, match="does not speak KMIP 1.5"):
        versions.restrict(engine, [(1, 5)])


def _state(topology: dict[str, Any]) -> ClusterState:
    st = ClusterState("r", "docker", "/tmp/s", "127.1.2", topology, "t.yaml", False, {})
    st.replicas = {
        n: ReplicaState(n, "site-a", i, f"127.1.2.{i}", f"127.1.2.{100 + i}")
        for i, n in enumerate(("kms-a", "kms-b", "kms-c"), 1)
    }
    return st


def test_both_backends_pass_the_versions_to_the_replica() -> None:
    d = topo(versioned("{name: kms-a, kmip_versions: [1.2, 1.4]}")).to_dict()
    assert kmip_versions_args(d, "kms-a") == ["--kmip-versions", "1.2,1.4"]
    assert kmip_versions_args(d, "kms-b") == []
    cmd = replica_command(_state(d), "kms-a")
    assert cmd[-2:] == ["--kmip-versions", "1.2,1.4"]
    assert "--kmip-versions" not in replica_command(_state(d), "kms-b")
    local = Path(__file__).resolve().parents[1] / "harness" / "cluster" / "local.py"
    assert "*kmip_versions_args(st.topology, name)" in local.read_text()


# ---- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, outcome",
    [
        (REFUSAL, "version-refused"),
        ("KMIP 2.0 is not supported by the server.", "version-refused"),
        ("Protocol version 1.1 not supported", "version-refused"),
        ("Unsupported protocol version", "version-refused"),
        ("protocol version mismatch", "version-refused"),
        ("DiscoverVersions is not supported by KMIP 1.0", "kmip-error"),  # an operation
        ("Could not locate object: 7", "kmip-error"),
        ("Error parsing request message. See server logs for more information.", "kmip-error"),
    ],
)
def test_a_version_refusal_is_its_own_outcome(message: str, outcome: str) -> None:
    e = KmipOperationFailure(FAILED, enums.ResultReason.INVALID_MESSAGE, message)
    assert classify(e, "request") == outcome
    assert refuses_version(e) is (outcome == "version-refused")
    # Modify Attribute (rename) raises the core OperationFailure
    core = core_exceptions.OperationFailure(FAILED, enums.ResultReason.INVALID_MESSAGE, message)
    assert refuses_version(core) is (outcome == "version-refused")
    assert "version-refused" in ATTEMPT_OUTCOMES


class _Sock:
    def __init__(self, replica: str) -> None:
        self.replica = replica

    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass


def _walker(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    answers: dict[str, BaseException | None],
    **kw: Any,
) -> WalkingPolicy:
    """A walking engine over kms-a, kms-b, kms-c whose servers answer per `answers`
    (None: success), with no sockets."""
    monkeypatch.setattr(walker_module, "connect_tls", lambda ep, *a: _Sock(ep.replica))

    def perform(pie: Any, op: str, key: str | None, name: str | None = None) -> OpValue:
        error = answers[pie.proxy.socket.replica]
        if error is not None:
            raise error
        return OpValue(key="k1")

    monkeypatch.setattr(walker_module, "perform", perform)
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    eps = [Endpoint(r, f"127.0.0.{i}", 5696) for i, r in enumerate(answers, 1)]
    tls = TlsFiles("ca", "cert", "key")
    return WalkingPolicy(eps, tls, 1.0, 1.0, str(conf), **kw)


def _refusal(version: str = "1.1") -> KmipOperationFailure:
    return KmipOperationFailure(
        FAILED,
        enums.ResultReason.INVALID_MESSAGE,
        f"KMIP {version} is not supported by the server.",
    )


@pytest.mark.parametrize("policy", ["vcenter", "kmip-go", "mongodb", "ontap", "retrying"])
def test_the_walking_engine_moves_on_after_a_refused_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, policy: str
) -> None:
    spec = POLICIES[policy]
    w = _walker(
        monkeypatch, tmp_path, {"kms-a": _refusal(), "kms-b": None, "kms-c": None}, spec=spec
    )
    for op in ("create", "get"):
        r = w.execute(op, "k1")
        assert r.outcome == "ok" and r.served_by == "kms-b"
        first = r.attempts[0]
        assert (first.server, first.outcome, first.sent) == ("kms-a", "version-refused", True)
        assert REFUSAL in first.detail and "INVALID_MESSAGE" in first.detail
        if spec.selection != "per-operation":  # at-start / sticky: kms-b from now on
            assert [a.server for a in w.execute("get", "k1").attempts] == ["kms-b"]
            break
    assert w._failed_at == {}  # reached: not a connect failure, never skipped for it


def test_every_server_refusing_the_version_fails_the_op_without_an_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = _walker(monkeypatch, tmp_path, {"kms-a": _refusal(), "kms-b": _refusal()})
    r = w.execute("create", None)
    assert r.outcome == "fail"  # the request ran nowhere: not `info`
    assert [a.outcome for a in r.attempts] == ["version-refused", "version-refused"]
    assert "kms-a version-refused, kms-b version-refused" in r.error


def test_a_rename_refused_for_its_version_moves_on_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    core = core_exceptions.OperationFailure(FAILED, enums.ResultReason.INVALID_MESSAGE, REFUSAL)
    w = _walker(monkeypatch, tmp_path, {"kms-a": core, "kms-b": None})
    r = w.execute("rename", "k1")
    assert r.outcome == "ok" and r.served_by == "kms-b"
    assert r.attempts[0].outcome == "version-refused"


def test_any_other_kmip_failure_still_ends_the_operation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = KmipOperationFailure(FAILED, enums.ResultReason.ITEM_NOT_FOUND, "Could not locate")
    w = _walker(monkeypatch, tmp_path, {"kms-a": missing, "kms-b": None})
    r = w.execute("get", "k1")
    assert r.outcome == "fail" and r.served_by == "kms-a"
    assert [a.outcome for a in r.attempts] == ["kmip-error"]


def test_pykmip_raises_a_refused_version_to_its_caller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    eps = [Endpoint("kms-a", "127.0.0.1", 5696), Endpoint("kms-b", "127.0.0.2", 5696)]
    p = PyKmipPolicy(eps, TlsFiles("ca", "cert", "key"), None, 1.0, str(conf))

    def open_() -> None:
        p._pie.proxy.host = "127.0.0.1"
        p._pie._is_open = True

    def perform(pie: Any, op: str, key: str | None, name: str | None = None) -> OpValue:
        raise _refusal("1.2")

    monkeypatch.setattr(p._pie, "open", open_)
    monkeypatch.setattr(policies_module, "perform", perform)
    r = p.execute("create", None)
    assert r.outcome == "fail" and r.served_by == "kms-a"
    assert [(a.server, a.outcome, a.sent) for a in r.attempts] == [
        ("kms-a", "version-refused", True)
    ]
    assert "KMIP 1.2 is not supported by the server." in r.attempts[0].detail


# ---- the checkers ------------------------------------------------------------------------


def _complete(policy: str, n: int, start: float, *tries: tuple[str, str]) -> Complete:
    attempts = [
        Attempt(s, s, start + i * 0.01, start + (i + 1) * 0.01, o, "", sent=True)
        for i, (s, o) in enumerate(tries)
    ]
    ok = attempts[-1].outcome == "ok"
    return Complete(
        f"c#0:{n}",
        "c",
        policy,
        "get",
        start,
        attempts[-1].end,
        "ok" if ok else "fail",
        attempts[-1].server if ok else None,
        attempts=attempts,
    )


@pytest.mark.parametrize("policy", ["vcenter", "kmip-go"])
def test_order_accepts_a_walk_past_a_refused_version_and_never_skips_it(policy: str) -> None:
    # kmip-go skips a server that failed to *connect*; a refusal is an answer
    ops = [
        _complete(policy, i, 1000.0 + i, ("kms-a", "version-refused"), ("kms-b", "ok"))
        for i in range(3)
    ]
    v = check_order(
        ops, orders={"c": ["kms-a", "kms-b", "kms-c"]}, policies={"c": POLICIES[policy]}
    )
    assert v.status == "pass", v.details
    skipped = [_complete(policy, 9, 1000.5, ("kms-b", "ok"))]
    v = check_order(
        [ops[0], *skipped],
        orders={"c": ["kms-a", "kms-b", "kms-c"]},
        policies={"c": POLICIES[policy]},
    )
    assert v.status == "fail" and "skipped kms-a" in v.details[0]


# ---- the linter --------------------------------------------------------------------------


CLIENTS = """\
  vc-a:
    site: site-a
    order: [kms-a, kms-b, kms-c]
  app-a:
    site: site-a
    order: [kms-a, kms-b, kms-c]
    policy: pykmip
"""


def _unspoken(t: Any) -> list[Any]:
    assert "unspoken-version" in RULES
    return [f for f in lint(t) if f.rule == "unspoken-version"]


def test_unspoken_version_warns_per_client_and_replica_naming_the_fix() -> None:
    t = topo(versioned("{name: kms-a, kmip_versions: [1.2]}", CLIENTS))
    (f,) = _unspoken(t)  # vCenter sends 1.1; PyKMIP's 1.2 is spoken
    assert (f.severity, f.where) == ("warning", "clients.vc-a.order[0]")
    for words in ("'vc-a'", "vcenter", "KMIP 1.1", "'kms-a'", "kmip_versions: 1.2", "moves on"):
        assert words in f.message, f.message
    assert "add 1.1 to the kmip_versions of 'kms-a'" in f.fix
    assert "kmip_version" in f.fix and "remove 'kms-a'" in f.fix


def test_unspoken_version_for_pykmip_says_it_fails_and_for_nobody_says_every_op_fails() -> None:
    t = topo(versioned("{name: kms-a, kmip_versions: [1.4, 2.0]}", CLIENTS))
    found = {f.where: f for f in _unspoken(t)}
    assert set(found) == {"clients.vc-a.order[0]", "clients.app-a.order[0]"}
    assert "PyKMIP's client" in found["clients.app-a.order[0]"].message
    only = topo(
        "sites:\n  site-a:\n    replicas:\n      - {name: kms-a, kmip_versions: [1.4]}\n"
        "      - {name: kms-b, kmip_versions: ['1.0', 1.4]}\n"
        "clients:\n  app-a: {site: site-a, policy: pykmip}\n"
    )
    found = {f.where: f for f in _unspoken(only)}
    assert set(found) == {"clients.app-a.order[0]", "clients.app-a.order[1]"}
    assert all("every operation fails" in f.message for f in found.values())


def test_unspoken_version_reads_external_replicas_and_adjusted_policies() -> None:
    text = """\
    allow_external: true
    tls: {ca: ca.pem, cert: c.pem, key: c.key}
    sites:
      site-a:
        replicas:
          - {name: kms-x, external: {host: kms1.example.net}, kmip_versions: [1.4]}
          - {name: kms-y, external: {host: kms2.example.net}}
    clients:
      go: {site: site-a, policy: kmip-go}
      vc: {site: site-a, policy: {preset: vcenter, kmip_version: '1.4'}}
      old: {site: site-a, policy: {preset: vcenter, kmip_version: '1.0'}}
    """
    found = [f.where for f in _unspoken(topo(text))]
    assert found == ["clients.old.order[0]"]


def test_no_unspoken_version_when_nothing_is_said() -> None:
    assert _unspoken(topo(versioned("kms-a", CLIENTS))) == []


def test_the_harness_audits_a_replica_in_a_version_it_speaks() -> None:
    from harness.topology.model import audit_kmip_version

    topo = {
        "sites": {
            "s": {
                "replicas": [
                    "kms-a",
                    {"name": "kms-b", "kmip_versions": ["1.2", "1.4"]},
                    {"name": "kms-c", "kmip_versions": ["1.1", "2.0", "1.4"]},
                ]
            }
        }
    }
    assert audit_kmip_version(topo, "kms-a") == "1.2"
    assert audit_kmip_version(topo, "kms-b") == "1.2"
    assert audit_kmip_version(topo, "kms-c") == "2.0"
