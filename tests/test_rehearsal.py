"""Rehearsal files: the loader's errors (file, line, field), durations, the seeded random
schedule, the `run` step's environment, collection by pytest, and (integration) a small
rehearsal run end to end through pytest into a report folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.checkers import Verdict
from harness.checkers.failover import judge_failover
from harness.rehearsal import (
    Expectation,
    ExpectStep,
    InjectStep,
    RandomStep,
    Rehearsal,
    RehearsalError,
    RunStep,
    TerminalIO,
    client_env,
    env_name,
    is_rehearsal_file,
    load_rehearsal,
    parse_duration,
    parse_rehearsal,
    resolve_seed,
)
from harness.toolchain import repo_root

REHEARSALS = repo_root() / "scenarios" / "rehearsals"
HEAD = """\
name: r
topology: two-sites-async.yaml
workload: {clients: [vc-a, vc-b], rate_per_s: 20}
"""


def load(text: str, source: str = "r.yaml") -> Rehearsal:
    return parse_rehearsal(text, source, base_dir=REHEARSALS)


def error_of(text: str) -> str:
    with pytest.raises(RehearsalError) as e:
        load(text)
    message = str(e.value)
    assert "\n" not in message
    return message


# ---- the example files -------------------------------------------------------------------


def test_the_shipped_rehearsals_load() -> None:
    files = sorted(REHEARSALS.glob("*.yaml"))
    assert {f.name for f in files} >= {"site-a-loses-power.yaml", "one-site-random-faults.yaml"}
    for f in files:
        r = load_rehearsal(f)
        assert r.steps and r.seed is not None, f
    power = load_rehearsal(REHEARSALS / "site-a-loses-power.yaml")
    assert power.topology.name == "two-sites-async"
    assert power.fault_kinds() == ["site-down"]
    inject = next(s for s in power.steps if isinstance(s, InjectStep))
    assert (inject.faults[0].kind, inject.faults[0].target, inject.name) == (
        "site-down",
        "site-a",
        "power-cut",
    )


def test_a_full_rehearsal_is_modelled_step_by_step() -> None:
    r = load(
        HEAD
        + textwrap.dedent(
            """\
        steps:
          - wait: 500ms
          - inject: {fault: partition, targets: [site-a, [kms-d, kms-e]], as: cut}
          - inject: {fault: latency, targets: [kms-a, kms-b], ms: 100ms, jitter: 5}
          - expect:
              failover: {client: vc-a, within: 2s, to_site: site-b, fault: cut}
              availability: {min: 90%, max_gap: 1s}
          - heal: [cut]
          - run: {command: "true", timeout: 2m, expect_exit: any}
          - checkpoint: look
          - heal: all
        seed: 3
        """
        )
    )
    kinds = [s.kind for s in r.steps]
    assert kinds == ["wait", "inject", "inject", "expect", "heal", "run", "checkpoint", "heal"]
    part, lat = r.steps[1], r.steps[2]
    assert isinstance(part, InjectStep) and isinstance(lat, InjectStep)
    assert part.faults[0].target == "site-a kms-d,kms-e"
    assert [(f.target, f.params) for f in lat.faults] == [
        ("kms-a", {"ms": 100, "jitter": 5}),
        ("kms-b", {"ms": 100, "jitter": 5}),
    ]
    exp = r.steps[3]
    assert isinstance(exp, ExpectStep)
    fo, av = exp.expectations
    assert (fo.client, fo.within_s, fo.to_site, fo.fault_step, fo.line) == (
        "vc-a",
        2,
        "site-b",
        1,
        9,
    )
    assert (av.min_ok_share, av.max_gap_s) == (0.9, 1.0)
    run = r.steps[5]
    assert isinstance(run, RunStep) and (run.timeout_s, run.expect_exit) == (120, None)
    assert r.steps[1].line == 6 and r.steps[7].line == 14


# ---- errors with lines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            """\
            steps:
              - wait: 5s
              - inject: {fault: site-down, target: site-a}
              - expect: {failover: {client: vc-x, within: 2s, to_site: site-b}}
            """,
            "r.yaml: line 7: steps[2].expect.failover.client: unknown client 'vc-x' "
            "(known: vc-a, vc-b)",
        ),
        (
            "steps:\n  - wait: 5 parsecs\n",
            "r.yaml: line 5: steps[0].wait: bad duration '5 parsecs': use a number of seconds "
            "or a number with a unit: 500ms, 5s, 2m, 1h",
        ),
        (
            "steps:\n  - wait: 1s\n  - injet: {fault: refuse, target: kms-a}\n",
            "r.yaml: line 6: steps[1].injet: unknown step 'injet' (known: wait, inject, heal, "
            "expect, run, checkpoint, random, certificates, restart-client, stop-client, "
            "start-client, admin); did you mean 'inject'?",
        ),
        (
            "steps:\n  - inject:\n      fault: refuse\n      target: kms-z\n",
            "r.yaml: line 7: steps[0].inject.target: unknown replica 'kms-z' "
            "(known: kms-a, kms-b, kms-c, kms-d, kms-e, kms-f)",
        ),
        (
            "steps:\n  - inject: {fault: site-down, target: kms-a}\n",
            "r.yaml: line 5: steps[0].inject.target: site-down targets a site: unknown site "
            "'kms-a' (known: site-a, site-b)",
        ),
        (
            "steps:\n  - inject:\n      fault: refuse\n      target: kms-a\n      ms: 3\n",
            "r.yaml: line 8: steps[0].inject.ms: unknown key 'ms' (known: fault, target, "
            "targets, as)",
        ),
        (
            "steps:\n  - inject: {fault: flood, target: kms-a}\n",
            "r.yaml: line 5: steps[0].inject.fault: unknown fault 'flood'",
        ),
        (
            "steps:\n  - heal: cut\n",
            "r.yaml: line 5: steps[0].heal: no injected fault named 'cut' (named so far: none",
        ),
        (
            "steps:\n  - expect: {liveness: pass}\n",
            "r.yaml: line 5: steps[0].expect.liveness: unknown key 'liveness' (known: "
            "fault_effect, failover, order, availability, slowdown, lb_ejection, durability, "
            "convergence, lost_update, site_availability)",
        ),
        (
            "steps:\n  - expect:\n      durability: passed\n",
            "r.yaml: line 6: steps[0].expect.durability: expected status must be pass, fail "
            "or unknown, got 'passed'",
        ),
        (
            "steps:\n  - expect: {failover: {client: vc-a}}\n",
            "r.yaml: line 5: steps[0].expect.failover: failover: no inject step before this one",
        ),
        (
            "steps:\n  - random: {faults: [refuse], targets: [kms-a], count: 0, hold: 1s}\n",
            "r.yaml: line 5: steps[0].random.count: must be between 1 and 1000, got 0",
        ),
        (
            "steps:\n  - random: {faults: [latency], targets: [kms-a], count: 1, hold: 1s}\n",
            "r.yaml: line 5: steps[0].random.params.latency: missing; latency needs ms",
        ),
        (
            "stepz: []\n",
            "r.yaml: line 4: stepz: unknown key 'stepz' (known: name, description, topology, "
            "workload, steps, seed); did you mean 'steps'?",
        ),
        (
            "steps:\n  - wait: 1\n    heal: all\n",
            "r.yaml: line 5: steps[0]: one step per list item, got wait, heal",
        ),
        (
            "steps:\n  - wait: 1\nsteps:\n  - wait: 2\n",
            "r.yaml: line 6: steps: duplicate key (first at line 4)",
        ),
        (
            "steps:\n  - wait: [1s\n",
            "r.yaml: line 6, column 1: invalid YAML: expected ',' or ']'",
        ),
    ],
)
def test_errors_name_file_line_and_field(body: str, expected: str) -> None:
    assert error_of(HEAD + textwrap.dedent(body)).startswith(expected)


def test_topology_errors_are_reported_at_the_topology_field(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("sites: {}\n")
    (tmp_path / "r.yaml").write_text("steps: [{wait: 1}]\ntopology: broken.yaml\n")
    with pytest.raises(RehearsalError) as e:
        load_rehearsal(tmp_path / "r.yaml")
    assert "r.yaml: line 2: topology: invalid topology: " in str(e.value)
    assert "broken.yaml: sites: no sites" in str(e.value)
    (tmp_path / "r.yaml").write_text("topology: nowhere.yaml\nsteps: [{wait: 1}]\n")
    with pytest.raises(RehearsalError, match=r"line 1: topology: no topology file 'nowhere.yaml'"):
        load_rehearsal(tmp_path / "r.yaml")


def test_replication_faults_need_a_replicating_topology() -> None:
    text = "topology: one-site\nsteps:\n  - inject: {fault: replication-pause, target: kms-a}\n"
    assert error_of(text) == (
        "r.yaml: line 3: steps[0].inject.fault: replication-pause acts on replication, but "
        "topology 'one-site' has replication profile none"
    )


def test_hostile_yaml_is_a_clean_error() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert "aliases expanding" in error_of(
        "topology: one-site\n" + laughs.replace("a:", "steps:", 1)
    )
    assert "recursive alias" in error_of("topology: one-site\nsteps: &s\n  - *s\n")
    assert "nested too deeply" in error_of("topology: one-site\nsteps: " + "[" * 2000)
    assert "keys must be strings" in error_of("topology: one-site\n1: x\nsteps: [{wait: 1}]\n")


def test_names_must_be_injected_before_they_are_healed_or_judged() -> None:
    text = HEAD + textwrap.dedent(
        """\
        steps:
          - inject: {fault: refuse, target: kms-a, as: x}
          - inject: {fault: refuse, target: kms-b, as: x}
        """
    )
    assert "name 'x' is already used by steps[0], which is not healed yet" in error_of(text)
    healed_twice = HEAD + "steps:\n  - inject: {fault: refuse, target: kms-a, as: x}\n"
    healed_twice += "  - heal: x\n  - heal: x\n"
    assert error_of(healed_twice).startswith(
        "r.yaml: line 7: steps[2].heal: fault 'x' was already healed by steps[1]"
    )
    judged = HEAD + "steps:\n  - inject: {fault: refuse, target: kms-a}\n"
    judged += "  - expect: {failover: {fault: y}}\n"
    assert "steps[1].expect.failover.fault: no injected fault named 'y'" in error_of(judged)


# ---- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5s", 5.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        (".25s", 0.25),
        (" 2 s ", 2.0),
        (5, 5.0),
        (0.5, 0.5),
        ("3", 3.0),
        (0, 0.0),
    ],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["5 parsecs", "-1s", "s", "", "1e999", "nan", True, None, [1], "25h", 90000, "5ss"]
)
def test_bad_durations(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# ---- random schedules and seeds ----------------------------------------------------------------

RANDOM = """\
name: chaos
topology: one-site.yaml
workload: {clients: [vc-a]}
steps:
  - random:
      faults: [refuse, stall, kill, latency]
      targets: [kms-a, kms-b, kms-c]
      count: 6
      hold: [1s, 3s]
      gap: 500ms
      params: {latency: {ms: 100}}
  - random: {faults: [refuse], targets: [kms-b], count: 2, hold: 1s}
seed: 42
"""


def test_random_schedule_is_determined_by_the_seed() -> None:
    r = load(RANDOM)
    first = r.schedule(42)
    assert first == load(RANDOM).schedule(42)
    draws = first[0]
    assert len(draws) == 6 and len(first[1]) == 2
    assert {d.kind for d in draws} <= {"refuse", "stall", "kill", "latency"}
    assert {d.target for d in draws} <= {"kms-a", "kms-b", "kms-c"}
    assert all(1.0 <= d.hold_s <= 3.0 and d.gap_s == 0.5 for d in draws)
    assert all(d.params == ({"ms": 100} if d.kind == "latency" else {}) for d in draws)
    others = [r.schedule(s)[0] for s in range(1, 6)]
    assert any(o != draws for o in others)
    assert r.fault_kinds() == ["refuse", "stall", "kill", "latency"]
    step = r.steps[0]
    assert isinstance(step, RandomStep) and step.line == 5


def test_seed_resolution() -> None:
    assert resolve_seed(None, 42) == 42
    assert resolve_seed("7", 42) == 7
    fresh = {resolve_seed("random", 42) for _ in range(5)} | {resolve_seed(None, None)}
    assert len(fresh) > 1
    with pytest.raises(ValueError, match="--kms-seed abc: must be a whole number"):
        resolve_seed("abc", 42)


# ---- the run step's environment ------------------------------------------------------------------

STATUS = {
    "state_dir": "/tmp/x/cluster",
    "tls": {"ca": "/tmp/x/ca.pem", "cert": "/tmp/x/client.pem", "key": "/tmp/x/client.key"},
    "clients": {
        "vc-a": {
            "hosts": "127.1.2.1,127.1.2.2",
            "port": 40001,
            "pykmip_conf": "/tmp/x/clients/vc-a.conf",
        },
        "backup.dc2": {"hosts": "127.1.2.2", "port": 40002, "pykmip_conf": ""},
    },
}


def test_run_step_environment() -> None:
    env = client_env(STATUS, Path("/tmp/x/cluster/status.json"))
    assert env == {
        "KMSCHAOS_STATUS_JSON": "/tmp/x/cluster/status.json",
        "KMSCHAOS_STATE_DIR": "/tmp/x/cluster",
        "KMSCHAOS_CA": "/tmp/x/ca.pem",
        "KMSCHAOS_CERT": "/tmp/x/client.pem",
        "KMSCHAOS_KEY": "/tmp/x/client.key",
        "KMSCHAOS_CLIENT_VC_A_HOSTS": "127.1.2.1,127.1.2.2",
        "KMSCHAOS_CLIENT_VC_A_PORT": "40001",
        "KMSCHAOS_CLIENT_VC_A_PYKMIP_CONF": "/tmp/x/clients/vc-a.conf",
        "KMSCHAOS_CLIENT_BACKUP_DC2_HOSTS": "127.1.2.2",
        "KMSCHAOS_CLIENT_BACKUP_DC2_PORT": "40002",
    }
    assert env_name("vc-a") == "VC_A"


def test_run_step_forms() -> None:
    r = load(HEAD + "steps:\n  - run: ./my-client --check\n  - run: {command: x, timeout: 5s}\n")
    plain, full = r.steps
    assert isinstance(plain, RunStep) and isinstance(full, RunStep)
    assert (plain.command, plain.timeout_s, plain.expect_exit) == ("./my-client --check", 60, 0)
    assert (full.command, full.timeout_s) == ("x", 5)


# ---- judging a failover expectation --------------------------------------------------------------


def _failover_verdict(detect_s: float, served_by: str) -> Verdict:
    fig = {
        "status": "pass",
        "failover_s": 0.02,
        "detect_s": detect_s,
        "served_by": served_by,
    }
    return Verdict(
        name="failover",
        status="pass",
        summary="ok",
        figures={"f1": {"clients": {"vc-a": fig, "vc-b": {"status": "not-exercised"}}}},
    )


@pytest.mark.parametrize(
    ("detect", "served", "bounds", "status", "fragment"),
    [
        (0.3, "kms-d", {"within_s": 2.0, "to_site": "site-b"}, "pass", "failed over to kms-d"),
        (2.5, "kms-d", {"within_s": 2.0}, "fail", "later than 2s"),
        (0.3, "kms-b", {"to_site": "site-b"}, "fail", "not to site site-b"),
        (0.3, "kms-b", {"to_replica": "kms-e"}, "fail", "not to kms-e"),
    ],
)
def test_judge_failover(
    detect: float, served: str, bounds: dict[str, Any], status: str, fragment: str
) -> None:
    exp = Expectation(checker="failover", want="pass", line=3, path="x", client="vc-a", **bounds)
    site_of = {"kms-b": "site-a", "kms-d": "site-b", "kms-e": "site-b"}
    v = judge_failover(
        _failover_verdict(detect, served), exp, fault_ids=["f1"], clients=("vc-a",), site_of=site_of
    )
    assert v.status == status and fragment in v.summary, v.summary


def test_judge_failover_of_a_client_that_never_had_to() -> None:
    exp = Expectation(checker="failover", want="pass", line=3, path="x", client="vc-b")
    v = judge_failover(
        _failover_verdict(0.1, "kms-d"), exp, fault_ids=["f1"], clients=("vc-b",), site_of={}
    )
    assert v.status == "fail" and "vc-b did not fail over under f1" in v.summary


# ---- terminal, collection ---------------------------------------------------------------------


class FakeCapture:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def global_and_fixture_disabled(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def cm() -> Any:
            self.calls.append("off")
            yield
            self.calls.append("on")

        return cm()

    def suspend_global_capture(self, in_: bool = False) -> None:
        self.calls.append(f"stdin-off={in_}")


def test_terminal_io_goes_past_the_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = FakeCapture()
    io = TerminalIO(cap)
    io.show("hello")
    assert cap.calls == ["off", "on"]
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    io.pause("go? ")
    assert cap.calls[2:] == ["off", "stdin-off=True", "on"]


def test_which_files_are_rehearsals(tmp_path: Path) -> None:
    (tmp_path / "rehearsals").mkdir()
    inside = tmp_path / "rehearsals" / "a.yaml"
    inside.write_text("anything")
    plain = tmp_path / "b.yaml"
    plain.write_text("# a rehearsal\nsteps:\n  - wait: 1\n")
    topo = tmp_path / "c.yaml"
    topo.write_text("sites: {}\n")
    assert is_rehearsal_file(inside, explicit=False, root=tmp_path)
    assert not is_rehearsal_file(plain, explicit=False, root=tmp_path)
    assert is_rehearsal_file(plain, explicit=True, root=tmp_path)
    assert not is_rehearsal_file(topo, explicit=True, root=tmp_path)
    assert not is_rehearsal_file(tmp_path / "rehearsals" / "x.txt", explicit=True)
    # a `rehearsals` folder above the root does not make every YAML file a rehearsal
    project = tmp_path / "rehearsals" / "project"
    project.mkdir()
    (project / "d.yaml").write_text("steps: []\n")
    assert not is_rehearsal_file(project / "d.yaml", explicit=False, root=project)


def _pytest(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_pytest_collects_rehearsals_and_reports_bad_files_in_one_line(tmp_path: Path) -> None:
    ok = _pytest("--collect-only", "-q", str(REHEARSALS), cwd=repo_root())
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "site-a-loses-power.yaml::site-a-loses-power" in ok.stdout
    assert "one-site-random-faults.yaml::one-site-random-faults" in ok.stdout
    folder = tmp_path / "rehearsals"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        "topology: one-site.yaml\nworkload: {clients: [vc-a]}\nsteps:\n"
        "  - inject: {fault: refuse, target: kms-a}\n"
        "  - expect: {failover: {client: vc-x}}\n"
    )
    bad = _pytest("--collect-only", "-q", str(folder), cwd=tmp_path)
    assert bad.returncode != 0
    line = (
        "rehearsals/bad.yaml: line 5: steps[1].expect.failover.client: unknown client "
        "'vc-x' (known: vc-a)"
    )
    assert line in bad.stdout, bad.stdout
    assert "Traceback" not in bad.stdout and "rehearsal.py" not in bad.stdout


# ---- end to end ---------------------------------------------------------------------------------

CLIENT = """\
import os
from kmip import enums
from kmip.pie.client import ProxyKmipClient

c = ProxyKmipClient(
    hostname=os.environ["KMSCHAOS_CLIENT_VC_A_HOSTS"],
    port=int(os.environ["KMSCHAOS_CLIENT_VC_A_PORT"]),
    cert=os.environ["KMSCHAOS_CERT"], key=os.environ["KMSCHAOS_KEY"], ca=os.environ["KMSCHAOS_CA"],
    ssl_version="PROTOCOL_SSLv23", config_file=os.environ["KMSCHAOS_CLIENT_VC_A_PYKMIP_CONF"],
)
with c:
    print("created", c.create(enums.CryptographicAlgorithm.AES, 256))
"""

SMALL = """\
name: small
topology: one-site.yaml
workload: {clients: [vc-a], rate_per_s: 20}
steps:
  - wait: 1s
  - inject: {fault: refuse, target: kms-a, as: a-down}
  - expect: {failover: {client: vc-a, within: 2s, to_replica: kms-b}}
  - run: {command: "python my_client.py", timeout: 60s}
  - heal: a-down
  - wait: 500ms
  - expect: {order: pass, availability: pass}
seed: 11
"""

UNMET = """\
topology: one-site.yaml
workload: {clients: [vc-a]}
steps:
  - wait: 500ms
  - inject: {fault: refuse, target: kms-a}
  - expect: {failover: {client: vc-a, to_replica: kms-c}}
"""


@pytest.mark.integration
def test_a_rehearsal_runs_end_to_end_into_the_report(tmp_path: Path) -> None:
    folder = tmp_path / "rehearsals"
    folder.mkdir()
    (folder / "small.yaml").write_text(SMALL)
    (folder / "unmet.yaml").write_text(UNMET)
    (folder / "my_client.py").write_text(CLIENT)
    reports = tmp_path / "reports"
    res = _pytest(
        str(folder),
        "--kms-time-scale=0.05",
        f"--kms-report-dir={reports}",
        "-q",
        cwd=tmp_path,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    # the unmet expectation: file, line, step, and the seed to replay
    assert (
        "rehearsals/unmet.yaml: line 6: steps[2].expect.failover: expected pass, got fail: "
        "vc-a failed over to kms-b (site-a)"
    ) in out, out
    assert "not to kms-c" in out and "(replay: --kms-seed " in out

    sdir = next(p for p in (reports / "scenarios").iterdir() if "small" in p.name)
    outcome = json.loads((sdir / "outcome.json").read_text())
    verdicts = outcome["verdicts"]
    for key in ("failover", "steps[2].failover", "order", "availability", "steps[6].order"):
        assert verdicts[key]["status"] == "pass" == verdicts[key]["expected"], key
    assert outcome["regressions"] == []
    rehearsal = outcome["figures"]["rehearsal"]
    assert rehearsal["seed"] == 11 and rehearsal["runs"][0]["exit"] == 0
    assert [e["step"] for e in rehearsal["expectations"]] == ["steps[2]", "steps[6]", "steps[6]"]
    notes = [
        json.loads(line)["text"]
        for line in (sdir / "history.jsonl").read_text().splitlines()
        if '"note"' in line
    ]
    created = [n for n in notes if n.startswith("steps[3] stdout:")]
    assert created and "created " in created[0], notes
    assert any(n.startswith("steps[3] run 'python my_client.py': exit 0") for n in notes)
