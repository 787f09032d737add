"""External targets: a KMS kmschaos does not start, behind its links (issue 5).

Unit tests pin the topology syntax, the two safety switches, the per-target refusal of
process faults and the key record. Integration tests start a real PyKMIP server on
their own (``python -m harness.replica`` with certificates from a CA of their own, as
a user's KMS would have) and use it as an external target next to a replica kmschaos
starts: the link, a named key, failover on `refuse`, `stall` refused, the keys
destroyed (or kept) when the cluster stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.backends import cluster_class
from harness.client.operations import empty_client_config, new_pie_client, perform
from harness.cluster.base import ClusterError, ClusterState, ReplicaState
from harness.cluster.local import LocalCluster
from harness.external import (
    CONSENT_FLAG,
    ExternalRefused,
    RunKeys,
    client_tls,
    key_records,
    read_ledger,
    settle_keys,
)
from harness.faults import FaultError, make_fault
from harness.history import History
from harness.pki import CertificateAuthority
from harness.scenario import Scenario
from harness.toolchain import repo_root
from harness.topology import (
    ExternalTarget,
    Topology,
    TopologyError,
    check_tls_files,
    load_topology,
    topology_from_dict,
)
from harness.wait import wait_until

MIXED = """\
name: mixed
allow_external: true
tls: {ca: pki/ca.pem, cert: pki/ops.pem, key: pki/ops.key}
sites:
  site-a:
    replicas:
      - {name: kms-ext, external: {host: 127.0.0.1, port: PORT}}
      - kms-b
clients:
  vc-a:
    site: site-a
    order: [kms-ext, kms-b]
time_scale: 0.05
"""


def write(folder: Path, text: str, name: str = "topo.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def topo_error(tmp_path: Path, text: str) -> TopologyError:
    with pytest.raises(TopologyError) as ei:
        load_topology(write(tmp_path, text))
    return ei.value


# ---- the topology syntax --------------------------------------------------------------


def test_external_replica_loads_with_paths_from_the_topology_folder(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path / "conf", MIXED.replace("PORT", "5697")))
    assert topo.allow_external
    assert topo.external_replicas == ("kms-ext",)
    assert topo.info_of("kms-ext").external == ExternalTarget("127.0.0.1", 5697)
    assert topo.info_of("kms-b").external is None
    ident = topo.client_identity
    assert ident is not None
    assert ident.ca == str(tmp_path / "conf" / "pki" / "ca.pem")
    assert ident.cert == str(tmp_path / "conf" / "pki" / "ops.pem")
    # to_dict keeps everything (absolute paths), and gives the same topology back
    again = topology_from_dict(topo.to_dict(), topo.source)
    assert again == topo


def test_port_defaults_to_kmip_and_server_name_is_kept(tmp_path: Path) -> None:
    text = MIXED.replace("{host: 127.0.0.1, port: PORT}", "{host: kms1.example.net}")
    text = text.replace(
        "      - kms-b\n",
        "      - {name: kms-b, external: {host: 10.0.0.2, server_name: kms2.example.net}}\n",
    )
    topo = load_topology(write(tmp_path, text))
    assert topo.info_of("kms-ext").external == ExternalTarget("kms1.example.net", 5696)
    kms_b = topo.info_of("kms-b").external
    assert kms_b is not None and kms_b.tls_name == "kms2.example.net"
    assert kms_b.address == "10.0.0.2:5696"


def test_the_shipped_example_is_all_external_and_lintable() -> None:
    topo = load_topology(repo_root() / "scenarios" / "topologies" / "external-example.yaml")
    assert topo.external_replicas == ("kms-prod-1", "kms-prod-2")
    assert topo.allow_external and topo.replication_profile == "none"


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "{host: 127.0.0.1, port: PORT}",
            "{port: 5696}",
            "sites.site-a.replicas[0].external.host",
            "missing",
        ),
        ("port: PORT", "port: 70000", "sites.site-a.replicas[0].external.port", "TCP port"),
        ("port: PORT", "port: true", "sites.site-a.replicas[0].external.port", "TCP port"),
        (
            "port: PORT",
            "port: 5696, tls_name: x",
            "sites.site-a.replicas[0].external.tls_name",
            "unknown key (known: host, port, server_name)",
        ),
        (
            "      - kms-b\n",
            "      - {name: kms-b, tls: {ca: x.pem}}\n",
            "sites.site-a.replicas[1].tls",
            "only an external replica",
        ),
        ("allow_external: true", "allow_external: yes please", "allow_external", "true or false"),
        (
            "time_scale: 0.05",
            "time_scale: 0.05\nreplication: {profile: async}",
            "replication.profile",
            "replicates only the replicas it starts",
        ),
        (
            "tls: {ca: pki/ca.pem, cert: pki/ops.pem, key: pki/ops.key}",
            "tls: {ca: pki/ca.pem, key: pki/ops.key}",
            "tls.cert",
            "client certificate",
        ),
        (
            "tls: {ca: pki/ca.pem, cert: pki/ops.pem, key: pki/ops.key}",
            "",
            "sites.site-a.replicas[0].tls.ca",
            "missing for external replica 'kms-ext'",
        ),
    ],
)
def test_bad_external_entries_name_the_field(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    text = MIXED.replace(old, new).replace("PORT", "5696")
    err = topo_error(tmp_path, text)
    assert err.field_path == field
    assert words in err.message


def test_top_level_tls_without_external_replicas_is_an_error(tmp_path: Path) -> None:
    text = """\
    tls: {ca: ca.pem, cert: c.pem, key: c.key}
    sites: {site-a: {replicas: [kms-a, kms-b]}}
    clients: {vc-a: {site: site-a}}
    """
    err = topo_error(tmp_path, text)
    assert err.field_path == "tls" and "only used with external replicas" in err.message


def test_two_external_replicas_must_share_one_client_identity(tmp_path: Path) -> None:
    text = MIXED.replace("PORT", "5696").replace(
        "      - kms-b\n",
        "      - {name: kms-b, external: {host: 127.0.0.2}, tls: {cert: other.pem}}\n",
    )
    err = topo_error(tmp_path, text)
    assert err.field_path == "sites.site-a.replicas[1].tls.cert"
    assert "one client identity" in err.message and "kms-ext" in err.message


def test_tls_files_are_checked_when_a_cluster_is_made(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, MIXED.replace("PORT", "5696")))
    with pytest.raises(TopologyError) as ei:
        check_tls_files(topo)
    assert ei.value.field_path == "tls.ca"
    assert f"file not found: {tmp_path / 'pki' / 'ca.pem'}" in ei.value.message
    (tmp_path / "pki").mkdir()
    for f in ("ca.pem", "ops.pem"):
        (tmp_path / "pki" / f).write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "pki" / "ops.key").write_text("not a key\n")
    with pytest.raises(TopologyError) as ei:
        check_tls_files(topo)
    assert ei.value.field_path == "tls.key" and "not a PEM private key" in ei.value.message


# ---- the safety switches ---------------------------------------------------------------


@pytest.fixture
def private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    reg = tmp_path / "registry"
    monkeypatch.setenv("KMSCHAOS_REGISTRY", str(reg))
    yield reg
    registry.reap(all_runs=True)


def refusal_of(topo: Topology, state_dir: Path, backend: str = "local", **kw: Any) -> str:
    with pytest.raises(ExternalRefused) as ei:
        cluster_class(backend).create(topo, state_dir, **kw)
    return str(ei.value)


def test_both_switches_are_needed_and_say_which_is_missing(
    tmp_path: Path, private_registry: Path
) -> None:
    path = write(tmp_path, MIXED.replace("PORT", "5696"))
    no_file_switch = load_topology(
        write(
            tmp_path,
            MIXED.replace("allow_external: true\n", "").replace("PORT", "5696"),
            "nofile.yaml",
        )
    )
    with_file_switch = load_topology(path)
    state = tmp_path / "cluster"

    missing_file = refusal_of(no_file_switch, state, allow_external=True)
    assert missing_file.startswith(f"{no_file_switch.source}: allow_external: missing")
    assert "kms-ext (127.0.0.1:5696)" in missing_file
    missing_flag = refusal_of(with_file_switch, state)
    assert CONSENT_FLAG in missing_flag and "--kms-allow-external" in missing_flag
    assert "kms-ext (127.0.0.1:5696)" in missing_flag
    assert missing_file != missing_flag
    neither = refusal_of(no_file_switch, state)
    assert neither == refusal_of(no_file_switch, state, allow_external=False)
    # refused before anything: no state folder, no lease, no registry entry
    assert not state.exists()
    assert not private_registry.exists() or not registry.read_entries()


def test_docker_backend_refuses_external_targets(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, MIXED.replace("PORT", "5696")))
    why = refusal_of(topo, tmp_path / "cluster", "docker", allow_external=True)
    assert "--backend local" in why


def test_own_topologies_need_no_switch(tmp_path: Path) -> None:
    topo = load_topology(repo_root() / "scenarios" / "topologies" / "one-site.yaml")
    LocalCluster.create(topo, tmp_path / "cluster")  # not started: only the checks ran


def test_own_replicas_must_be_able_to_trust_the_client_certificate(tmp_path: Path) -> None:
    user = CertificateAuthority(tmp_path / "pki", "user")
    other = CertificateAuthority(tmp_path / "other", "other")
    ops = other.issue("ops", "ops-client", server=False)  # not signed by tls.ca
    (tmp_path / "pki" / "ops.pem").write_text(Path(ops.cert).read_text())
    (tmp_path / "pki" / "ops.key").write_text(Path(ops.key).read_text())
    topo = load_topology(write(tmp_path, MIXED.replace("PORT", "5696")))
    own = CertificateAuthority(tmp_path / "run", "kcrun")
    with pytest.raises(ClusterError, match="not signed by a CA in tls.ca.*kms-b"):
        client_tls(topo, tmp_path / "run", str(own.ca_path))
    # signed by the user's CA: the bundle holds both CAs, the identity is the user's
    good = user.issue("ops", "ops-client", server=False)
    tls = client_tls(topo, tmp_path / "run", str(own.ca_path))
    assert tls["cert"] == good.cert
    bundle = Path(tls["ca"]).read_text()
    assert Path(own.ca_path).read_text() in bundle and Path(user.ca_path).read_text() in bundle


# ---- faults on an external target ------------------------------------------------------


def fake_cluster(tmp_path: Path) -> LocalCluster:
    """A planned, never started mixed cluster (state only)."""
    topo = load_topology(write(tmp_path, MIXED.replace("PORT", "5696")))
    st = ClusterState(
        run_id="kctest0001",
        backend="local",
        state_dir=str(tmp_path / "cluster"),
        subnet="127.9.9",
        topology=topo.to_dict(),
        topology_source=topo.source,
        detached=False,
        tls={},
    )
    st.replicas = {
        "kms-ext": ReplicaState("kms-ext", "site-a", 1, "127.9.9.1", "127.0.0.1", 5696),
        "kms-b": ReplicaState("kms-b", "site-a", 2, "127.9.9.2", "127.9.9.102", 1),
    }
    return LocalCluster(st)


@pytest.mark.parametrize("kind", ["stall", "kill", "restart", "wipe"])
def test_process_faults_are_refused_on_an_external_replica_by_name(
    tmp_path: Path, kind: str
) -> None:
    cluster = fake_cluster(tmp_path)
    with pytest.raises(FaultError) as ei:
        make_fault(kind, cluster, "kms-ext")
    assert str(ei.value).startswith(f"{kind}: kms-ext is an external target")
    assert "refuse" in str(ei.value)  # says what works instead
    make_fault(kind, cluster, "kms-b")  # an own replica of the same topology: allowed


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("refuse", {}),
        ("reset", {}),
        ("blackhole", {}),
        ("latency", {"ms": 100}),
        ("unreachable", {}),
        ("isolate", {}),
        ("flap", {}),
    ],
)
def test_link_faults_are_allowed_on_an_external_replica(
    tmp_path: Path, kind: str, params: dict[str, Any]
) -> None:
    make_fault(kind, fake_cluster(tmp_path), "kms-ext", **params)


def test_the_cluster_itself_refuses_process_actions_on_external_replicas(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    for act in (cluster.pause_replica, cluster.kill_replica, cluster.wipe_replica):
        with pytest.raises(Exception, match="kms-ext: it is an external target"):
            act("kms-ext")
    cluster.resume_replica("kms-ext")  # heal --all: nothing to resume, no error
    cluster.start_replica("kms-ext")  # nothing to start
    assert cluster.replica_running("kms-ext")


# ---- key names and the record ----------------------------------------------------------


def test_names_without_external_replicas_stay_in_memory(tmp_path: Path) -> None:
    keys = RunKeys(tmp_path, "kcabc", frozenset())
    assert [keys.next_name() for _ in range(3)] == [f"kmschaos-kcabc-{n}" for n in (1, 2, 3)]
    keys.created("kmschaos-kcabc-1", "7", "kms-a")
    assert list(tmp_path.iterdir()) == []


def test_names_for_external_replicas_are_recorded_before_the_create(tmp_path: Path) -> None:
    keys = RunKeys(tmp_path, "kcabc", frozenset({"kms-ext"}))
    names: list[str] = []
    lock = threading.Lock()

    def make(n: int) -> None:
        for _ in range(n):
            name = keys.next_name()
            with lock:
                names.append(name)

    threads = [threading.Thread(target=make, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names) == sorted(f"kmschaos-kcabc-{n}" for n in range(1, 41))
    # a second writer of the same run (another process) continues the count
    assert RunKeys(tmp_path, "kcabc", frozenset({"kms-ext"})).next_name() == "kmschaos-kcabc-41"
    keys.created("kmschaos-kcabc-1", "11", "kms-ext")
    keys.created("kmschaos-kcabc-2", "12", "kms-b")  # an own replica: not recorded
    recs = {r.name: r for r in key_records(tmp_path)}
    assert recs["kmschaos-kcabc-1"].uid == "11" and recs["kmschaos-kcabc-1"].replica == "kms-ext"
    assert "kmschaos-kcabc-2" not in recs
    assert recs["kmschaos-kcabc-3"].uid is None  # answer not seen: looked up by name later
    assert all(r.created is not None and r.destroyed is None for r in recs.values())


@dataclass
class FakePie:
    calls: list[tuple[Any, ...]]

    def create(self, algorithm: Any, length: int, **kw: Any) -> str:
        self.calls.append((algorithm, length, kw))
        return "42"


def test_perform_names_the_key_it_creates() -> None:
    pie = FakePie([])
    value = perform(pie, "create", None, "kmschaos-kcx-1")
    assert value.key == "42" and value.name == "kmschaos-kcx-1"
    assert pie.calls[0][2] == {"name": "kmschaos-kcx-1"}


# ---- for real: a PyKMIP server of our own as the external target -------------------------


@dataclass
class ExternalKms:
    host: str
    port: int
    ca: str
    cert: str  # the user's client certificate (CN ops-client)
    key: str
    folder: Path

    def client(self) -> Any:
        conf = empty_client_config(self.folder / "clients")
        pie = new_pie_client([self.host], self.port, self.ca, self.cert, self.key, conf)
        pie.proxy.timeout = 10
        return pie


@pytest.fixture
def external_kms(tmp_path: Path) -> Iterator[ExternalKms]:
    """A PyKMIP server kmschaos did not start, with a CA of its own: what a user has."""
    folder = tmp_path / "user"
    pki = CertificateAuthority(folder / "pki", "user-kms")
    server = pki.issue(
        "server",
        "kms.example.test",
        server=True,
        addresses=("127.0.0.1",),
        dns_names=("localhost",),
    )
    ops = pki.issue("ops", "ops-client", server=False)
    data = folder / "kms"
    data.mkdir(parents=True)
    port_file = data / "port"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop(registry.LABEL_ENV, None)
    log = (data / "stdout.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.replica",
            "--name",
            "user-kms",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--data-dir",
            str(data),
            "--cert",
            server.cert,
            "--key",
            server.key,
            "--ca",
            server.ca,
        ],
        cwd=repo_root(),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log.close()
    try:
        wait_until(
            lambda: port_file.exists() or proc.poll() is not None,
            60,
            "the user's KMS to bind",
            logs=[data / "stdout.log"],
        )
        assert proc.poll() is None, (data / "stdout.log").read_text()
        port = int(port_file.read_text().split()[0])
        yield ExternalKms("127.0.0.1", port, ops.ca, ops.cert, ops.key, folder)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def mixed_topology(kms: ExternalKms, tmp_path: Path) -> Topology:
    # paths relative to the topology file, as a user writes them
    text = MIXED.replace("PORT", str(kms.port)).replace("pki/ca.pem", "user/pki/ca.pem")
    text = text.replace("pki/ops.pem", "user/pki/ops.pem").replace(
        "pki/ops.key", "user/pki/ops.key"
    )
    return load_topology(write(tmp_path, text))


def name_of(kms: ExternalKms, uid: str) -> str:
    pie = kms.client()
    with pie:
        _, attrs = pie.get_attributes(uid, ["Name"])
    (name,) = [a.attribute_value.name_value.value for a in attrs]
    return str(name)


def exists(kms: ExternalKms, uid: str) -> bool:
    from kmip.core import enums
    from kmip.pie.exceptions import KmipOperationFailure

    pie = kms.client()
    with pie:
        try:
            pie.get(uid)
        except KmipOperationFailure as e:
            assert e.reason == enums.ResultReason.ITEM_NOT_FOUND, e
            return False
    return True


@pytest.mark.integration
def test_external_target_behind_links_named_keys_failover_and_cleanup(
    external_kms: ExternalKms, tmp_path: Path, private_registry: Path
) -> None:
    topo = mixed_topology(external_kms, tmp_path)
    kms = external_kms
    # the switches, for real: refused before anything starts, with two messages
    refused_flag = refusal_of(topo, tmp_path / "refused")
    no_switch = topology_from_dict(
        {k: v for k, v in topo.to_dict().items() if k != "allow_external"}, topo.source
    )
    refused_file = refusal_of(no_switch, tmp_path / "refused", allow_external=True)
    assert refused_flag != refused_file and not (tmp_path / "refused").exists()

    uids: dict[str, str] = {}
    with LocalCluster.create(topo, tmp_path / "cluster", allow_external=True) as cluster:
        st = cluster.state
        status = cluster.status()
        assert status["replicas"]["kms-ext"]["external"] is True
        assert status["replicas"]["kms-ext"]["state"] == "external"
        assert status["replicas"]["kms-b"]["external"] is False
        assert status["tls_identity"] == "ops-client"  # the user's identity, everywhere
        assert st.tls["cert"] == kms.cert
        (link,) = cluster.links_into("kms-ext")
        assert link.upstream == f"127.0.0.1:{kms.port}" and link.host == f"{st.subnet}.1"

        history = History(tmp_path / "history.jsonl")
        sc = Scenario("external", cluster, topo, history)
        try:
            vc = sc.client("vc-a")
            # through the link to the user's KMS, named with the run prefix
            made = vc.create()
            assert made.outcome == "ok" and made.served_by == "kms-ext", made
            assert made.attempts[0].address == f"{st.subnet}.1:{st.clients['vc-a'].port}"
            uids["plain"] = made.key or ""
            assert name_of(kms, uids["plain"]).startswith(f"kmschaos-{st.run_id}-")
            # an active key too: destroying it needs a revoke first
            uids["active"] = vc.create().key or ""
            assert vc.activate(uids["active"]).outcome == "ok"
            # PyKMIP's own client through the same link (no hostname check, one port)
            py = sc.client("vc-a", policy="pykmip")
            done = py.create()
            assert done.outcome == "ok" and done.served_by == "kms-ext", done
            uids["pykmip"] = done.key or ""

            # a process fault is refused before it touches anything, naming the target
            with pytest.raises(FaultError, match="stall: kms-ext is an external target"):
                sc.fault("stall", "kms-ext")
            # a link fault works: refused at once, the client fails over to kms-b
            with sc.fault("refuse", "kms-ext"):
                moved = vc.create()
                assert moved.outcome == "ok" and moved.served_by == "kms-b", moved
                assert moved.attempts[0].server == "kms-ext"
                assert moved.attempts[0].outcome == "refused"
            back = vc.create()
            assert back.served_by == "kms-ext"
            uids["back"] = back.key or ""
        finally:
            sc.close()

        # the record: every key made on the external replica, none made on kms-b
        recs = key_records(Path(st.state_dir))
        assert sorted(r.uid or "" for r in recs) == sorted(uids.values())  # not kms-b's
        assert all(r.replica == "kms-ext" for r in recs)
        # a Create whose answer was lost: only its name is known (looked up at stop)
        lost = RunKeys.for_state(st).next_name()
        with kms.client() as pie:
            uids["lost"] = str(perform(pie, "create", None, lost).key)
        for uid in uids.values():
            assert exists(kms, uid)

    # stopped: every key the run made on the user's KMS is gone
    for what, uid in uids.items():
        assert not exists(kms, uid), what
    doc = read_ledger(tmp_path / "cluster")
    assert doc["run_id"] == st.run_id and doc["keep_keys"] is False
    assert all(k["destroyed"] and not k["error"] for k in doc["keys"]), doc["keys"]
    assert {k["uid"] for k in doc["keys"]} == set(uids.values())


@pytest.mark.integration
def test_keep_keys_keeps_them_until_down_destroys_them(
    external_kms: ExternalKms, tmp_path: Path, private_registry: Path
) -> None:
    topo = mixed_topology(external_kms, tmp_path)
    cluster = LocalCluster.create(topo, tmp_path / "cluster", allow_external=True, keep_keys=True)
    with cluster:
        sc = Scenario("keep", cluster, topo, History(tmp_path / "history.jsonl"))
        try:
            made = sc.client("vc-a").create()
        finally:
            sc.close()
        assert made.served_by == "kms-ext" and made.key
    assert exists(external_kms, made.key)
    assert cluster.key_settlement is not None and len(cluster.key_settlement.kept) == 1
    doc = json.loads((tmp_path / "cluster" / "external-keys.json").read_text())
    assert doc["keep_keys"] is True and doc["keys"][0]["destroyed"] is None
    # what `kmschaos down` (without --keep-keys) does on the stopped cluster
    done = settle_keys(cluster.state, keep=False)
    assert [k.uid for k in done.destroyed] == [made.key]
    assert not exists(external_kms, made.key)
    assert "1 key(s) destroyed" in done.summary()


# ---- one server behind two names ---------------------------------------------------------

TWO_NAMES = """\
name: one-server-two-names
allow_external: true
tls: {ca: user/pki/ca.pem, cert: user/pki/ops.pem, key: user/pki/ops.key}
sites:
  site-a:
    replicas:
      - {name: kms-x1, external: {host: 127.0.0.1, port: PORT}}
      - {name: kms-x2, external: {host: localhost, port: PORT}}
clients:
  vc-a:
    site: site-a
    order: [kms-x1, kms-x2]
time_scale: 0.05
"""


@pytest.mark.integration
def test_two_external_replicas_that_are_one_server_give_unknown_audit_verdicts(
    external_kms: ExternalKms,
    tmp_path: Path,
    private_registry: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A user's topology names one PyKMIP server twice (127.0.0.1 and localhost, one
    port): the linter sees two names, their addresses say one server; the audit
    verdicts refuse to judge (one certificate behind both names), and `kmschaos audit`
    says so."""
    from harness.audit import Auditor
    from harness.cli import main
    from harness.topology_lint import lint, resolve

    topo = load_topology(write(tmp_path, TWO_NAMES.replace("PORT", str(external_kms.port))))
    assert [f.rule for f in lint(topo) if f.rule == "same-server"] == []  # names differ
    (same,) = [
        f for f in lint(topo, resolve(["127.0.0.1", "localhost"])) if f.rule == "same-server"
    ]
    assert "'kms-x1' (127.0.0.1) and 'kms-x2' (localhost) resolve to 127.0.0.1" in same.message

    with LocalCluster.create(topo, tmp_path / "cluster", allow_external=True) as cluster:
        sc = Scenario("two-names", cluster, topo, History(tmp_path / "history.jsonl"))
        try:
            vc = sc.client("vc-a")
            made = [vc.create() for _ in range(2)]
            assert all(c.served_by == "kms-x1" for c in made), made
            with sc.fault("refuse", "kms-x1"):
                moved = vc.create()  # "fails over" to kms-x2: the same server
            assert moved.served_by == "kms-x2", moved
            assert moved.attempts[-1].identity == made[0].attempts[-1].identity
            assert moved.attempts[-1].identity == "kms.example.test"
            Auditor(cluster, sc.history).round()
            verdicts = sc.check(include=("durability", "convergence", "failover", "order"))
        finally:
            sc.close()
        for name in ("durability", "convergence"):
            v = verdicts[name]
            assert v.status == "unknown", (name, v.summary)
            assert "kms-x1 and kms-x2 showed one certificate (CN 'kms.example.test'" in (v.summary)
        # the attempts reached the server each link leads to: nothing contradicts them
        assert "identity" not in verdicts["order"].figures
        assert verdicts["order"].status == "pass"

        assert main(["audit", "--state-dir", str(tmp_path / "cluster")]) == 1
        out = capsys.readouterr().out
        assert "kms-x1 (external)  kms.example.test" in out
        assert "kms-x1 and kms-x2 showed one certificate" in out
        assert "'kms-x2' and 'kms-x1' are one server ('kms-x1' (127.0.0.1) and 'kms-x2' " in out
