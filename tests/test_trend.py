"""`kmschaos trend`: figures over several runs' summary.json, drift against the median of
the previous runs, the text table, --json, --html and the exit statuses. The drift rule
on hand-built summaries; then on real run folders: a rehearsal run three times as it is
and once with its client's response timeout tripled, which must be flagged."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cli_runs import kmschaos

from harness.cli import build_parser
from harness.cli.common import UserError
from harness.runner import write_summary
from harness.trend import FIGURES, Series, judge, read_runs, series_of
from harness.trend.figures import figure

SID = "scenarios/test_x.py::test_x"


def verdicts(
    failover: float | None = 0.5,
    detect: float | None = 0.6,
    ok_share: float | None = 1.0,
    convergence: float | None = None,
    rpo: float | None = None,
) -> dict[str, Any]:
    """A scenario's verdicts as `kmschaos run` files them, holding the given figures."""
    out: dict[str, Any] = {}
    if failover is not None or detect is not None:
        out["failover"] = {
            "name": "failover",
            "status": "pass",
            "figures": {
                "baseline_p99_s": 0.03,
                "blackhole-kms-a-1a2b3c": {
                    "kind": "blackhole",
                    "clients": {
                        "vc-a": {"failover_s": failover, "detect_s": detect},
                        "vc-b": {"failover_s": 0.01, "detect_s": 0.01},
                    },
                },
                "expectation": {"client": "vc-a", "within_s": 2.0},
            },
        }
    if ok_share is not None:
        out["availability"] = {
            "name": "availability",
            "status": "pass",
            "figures": {"union": {"ops": 10, "ok_share": ok_share}},
        }
    if convergence is not None:
        out["convergence"] = {"name": "convergence", "figures": {"convergence_s": convergence}}
    if rpo is not None:
        out["durability"] = {
            "name": "durability",
            "figures": {"crash_faults": {"kill-kms-a-1": {"rpo_s": rpo}, "kill-kms-b-2": {}}},
        }
    return out


def write_run(
    root: Path, name: str, started: float | None, rows: dict[str, dict[str, Any]], **extra: Any
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    summary: dict[str, Any] = {
        "time_scale": 0.05,
        "backend": "local",
        "totals": {"passed": len(rows)},
        "scenarios": [{"id": sid, "outcome": "passed", "verdicts": v} for sid, v in rows.items()],
        **extra,
    }
    if started is not None:
        summary["started"] = started
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


def runs_of(root: Path, *values: dict[str, Any]) -> list[Path]:
    """One run per `verdicts(**v)`, a day apart, oldest first."""
    return [
        write_run(root, f"n{i}", 1_800_000_000 + i * 86400, {SID: verdicts(**v)}, commit=f"c{i}")
        for i, v in enumerate(values)
    ]


def trend(*args: str) -> tuple[int, str]:
    """`kmschaos trend ARGS` in this process: the exit status and the message of a user
    error (what `harness.cli.main` prints)."""
    parsed = build_parser().parse_args(["trend", *args])
    try:
        return int(parsed.func(parsed)), ""
    except UserError as e:
        return e.status, str(e)


def one(figure_name: str, *values: float | None, **kw: Any) -> Any:
    return judge(Series(SID, figure(figure_name), tuple(values)), **kw)


# ---- the rule -----------------------------------------------------------------------------


def test_a_slower_failover_drifts_against_the_median_of_the_previous_runs() -> None:
    j = one("failover_s", 0.5, 0.52, 0.48, 0.9, 0.51, 0.9)
    assert j.baseline == pytest.approx(0.51) and j.baseline_runs == 5
    assert j.drift and j.change == pytest.approx(0.9 / 0.51 - 1)
    assert "worse by 0.390 s" in j.reason
    # one slow run among the previous ones does not move the median
    assert not one("failover_s", 0.5, 0.52, 0.48, 0.9, 0.51, 0.55).drift


def test_direction_is_the_figures_own() -> None:
    assert not one("failover_s", 1.0, 1.0, 0.5).drift  # faster: better
    assert one("ok_share", 1.0, 1.0, 0.7).drift  # fewer ops ok: worse
    assert not one("ok_share", 0.6, 0.6, 1.0).drift
    assert {f.name: f.larger_is_worse for f in FIGURES} == {
        "failover_s": True,
        "detect_s": True,
        "ok_share": False,
        "convergence_s": True,
        "rpo_s": True,
    }


def test_threshold_window_and_noise() -> None:
    assert one("convergence_s", 1.0, 1.0, 1.15).reason == "within the threshold"  # +15 %
    assert one("convergence_s", 1.0, 1.0, 1.15, threshold=0.1).drift
    # the window: only the last N previous runs form the baseline
    values = (2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 0.8)
    assert one("failover_s", *values, window=3).drift
    assert not one("failover_s", *values, window=6).drift
    # a change within the figure's noise never drifts, however large in per cent
    assert one("failover_s", 0.03, 0.03, 0.09).reason == "within the noise (0.100 s)"
    # from zero: any change beyond the noise
    j = one("rpo_s", 0.0, 0.0, 0.0, 0.4)
    assert j.drift and j.change is None and "worse by 0.400 s" in j.reason


def test_missing_values_are_skipped_not_zero() -> None:
    j = one("failover_s", 0.5, None, 0.5, 0.9)
    assert j.drift and j.baseline_runs == 2
    assert not one("failover_s", 0.5, 0.5, None).drift
    assert one("failover_s", 0.5, 0.5, None).reason == "not measured in the newest run"
    assert one("failover_s", None, 0.9).reason == "no earlier run to compare with"


# ---- reading summaries --------------------------------------------------------------------


def test_each_figure_is_read_from_its_verdict_the_worst_value_of_the_scenario(
    tmp_path: Path,
) -> None:
    row = verdicts(failover=0.7, detect=0.8, ok_share=0.9, convergence=1.5, rpo=0.25)
    # a rehearsal step's copy does not count (the checker's own row does)
    row["steps[2].failover"] = verdicts(failover=9.0)["failover"] | {"name": "failover"}
    runs, _ = read_runs([write_run(tmp_path, "r", 1.0, {SID: row})])
    assert runs[0].values == {
        (SID, "failover_s"): 0.7,
        (SID, "detect_s"): 0.8,
        (SID, "ok_share"): 0.9,
        (SID, "convergence_s"): 1.5,
        (SID, "rpo_s"): 0.25,
    }


def test_runs_are_ordered_by_start_time_else_as_given(tmp_path: Path) -> None:
    late = write_run(tmp_path, "late", 200.0, {SID: verdicts(failover=2.0)})
    early = write_run(tmp_path, "early", 100.0, {SID: verdicts(failover=1.0)})
    runs, how = read_runs([late, early])
    assert [r.folder.name for r in runs] == ["early", "late"] and how == "by start time"
    old = write_run(tmp_path, "old", None, {SID: verdicts(failover=3.0)})  # before `started`
    runs, how = read_runs([late, old, early])
    assert [r.folder.name for r in runs] == ["late", "old", "early"]
    assert how == "in the order given (1 summary(ies) without a start time)"
    assert runs[1].when == "start not recorded" and runs[1].commit is None
    assert [s.values for s in series_of(runs) if s.figure.name == "failover_s"] == [(2.0, 3.0, 1.0)]


def test_a_scenario_the_newest_run_did_not_run_is_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_run(tmp_path, "a", 1.0, {SID: verdicts(), "s::gone": verdicts()})
    b = write_run(tmp_path, "b", 2.0, {SID: verdicts()})
    assert trend(str(a), str(b)) == (0, "")
    out = capsys.readouterr().out
    assert "left out: 1 scenario(s) of earlier runs the newest did not run (s::gone)" in out
    assert not any("gone" in line for line in out.splitlines() if "│" in line)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "summary.json: missing; `kmschaos run --report-dir"),
        ('{\n "scenarios": [\n  {,\n', "summary.json: not JSON at line 3: "),
        ("[1, 2]", "summary.json: expected a JSON object, got list"),
        ('{"started": "yesterday", "scenarios": []}', "field started: expected a number"),
        (
            json.dumps({"scenarios": [{"id": SID, "verdicts": verdicts()}]}).replace(
                "0.5", '"slow"', 1
            ),
            "summary.json: field scenarios[0].verdicts.failover.figures."
            "blackhole-kms-a-1a2b3c.clients.vc-a.failover_s: expected a number, got 'slow'",
        ),
        (
            json.dumps({"scenarios": [{"id": SID, "verdicts": {"availability": {"figures": []}}}]}),
            "field scenarios[0].verdicts.availability.figures: expected an object, got []",
        ),
    ],
    ids=["missing", "not-json", "not-an-object", "started", "failover_s", "figures"],
)
def test_bad_input_exits_2_naming_file_line_or_field(
    tmp_path: Path, content: str | None, message: str
) -> None:
    good = write_run(tmp_path, "good", 1.0, {SID: verdicts()})
    bad = tmp_path / "bad"
    bad.mkdir()
    if content is not None:
        (bad / "summary.json").write_text(content)
    status, said = trend(str(good), str(bad))
    assert status == 2
    assert said.startswith(str(bad / "summary.json")) and message in said, said


def test_summary_records_start_and_commit(tmp_path: Path) -> None:
    summary = write_summary(tmp_path, {}, 1.5, 0.05)
    assert isinstance(summary["started"], float)
    assert "commit" in summary  # a short hash here; None outside a git checkout
    assert json.loads((tmp_path / "summary.json").read_text())["commit"] == summary["commit"]


# ---- the command --------------------------------------------------------------------------


def test_fail_on_drift_exits_1_and_the_table_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = runs_of(
        tmp_path,
        *[{"failover": 0.5 + i / 100, "ok_share": 1.0} for i in range(5)],
        {"failover": 1.1},
    )
    args = [str(f) for f in folders]
    assert trend(*args) == (0, "")  # shown, not failed, without --fail-on-drift
    assert trend(*args, "--fail-on-drift") == (1, "")
    out = capsys.readouterr().out
    assert "6 run(s) by start time" in out and "#6" in out and "c5" in out
    row = next(line for line in out.splitlines() if "failover_s" in line)
    assert "0.500 s" in row and "1.100 s" in row and "0.520 s (5)" in row and "DRIFT" in row
    assert "+111.5%" in row
    assert "DRIFT x failover_s: 1.100 s against 0.520 s, worse by 0.580 s" in out
    assert "1 drift(s) in 3 figure(s) of 1 scenario(s)" in out
    # a looser threshold: no drift
    assert trend(*args, "--fail-on-drift", "--threshold", "150%") == (0, "")


def test_json_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = runs_of(tmp_path, {"ok_share": 1.0}, {"ok_share": 1.0}, {"ok_share": 0.5})
    page = tmp_path / "out" / "trend.html"
    assert trend(*map(str, folders), "--json", "--html", str(page), "--window", "2") == (0, "")
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "trend page:" in captured.err  # stdout stays JSON
    assert doc["window"] == 2 and doc["drifts"] == 1 and doc["runs"][2]["commit"] == "c2"
    share = next(f for f in doc["figures"] if f["figure"] == "ok_share")
    assert share["values"] == [1.0, 1.0, 0.5] and share["drift"] is True
    assert share["larger_is_worse"] is False and share["baseline"] == 1.0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "details.scenario" in text  # the report's CSS
    assert text.count("<svg") == 3 and 'class="spark-pt drift"' in text
    assert "DRIFT" in text and "c-regression" in text
    assert "http" not in text.replace("http-equiv", "")  # self-contained


@pytest.mark.parametrize(
    "args", [["DIR", "--window", "0"], ["DIR", "--threshold", "x"], []], ids=str
)
def test_argument_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["trend", *args])
    assert done.value.code == 2
    assert "usage: kmschaos trend" in capsys.readouterr().err


def test_help_names_the_options_and_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["trend", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for word in ("RUN_DIR", "--window", "--threshold", "--fail-on-drift", "--html", "--json"):
        assert word in text
    for f in FIGURES:
        assert f.name in text


# ---- real runs ----------------------------------------------------------------------------

DRILL_TOPOLOGY = """\
name: trend-drill
sites:
  site-a:
    replicas: [kms-a, kms-b]
clients:
  vc-a:
    site: site-a
    order: [kms-a, kms-b]
    policy: vcenter
replication:
  profile: none
timeouts:
  response_s: {response_s}
  connect_s: 5
time_scale: 0.05
"""

# a blackhole on the first replica: vc-a waits its response timeout, then moves on; held
# for two timeouts of the slowed run (an operation begun just before the fault is not
# the one judged: the next one is)
DRILL = """\
name: trend-drill
topology: topology.yaml
workload: {rate_per_s: 20}
steps:
  - wait: 300ms
  - inject: {fault: blackhole, target: kms-a, as: cut}
  - wait: 3500ms
  - heal: cut
  - wait: 200ms
  - expect: {failover: {client: vc-a, within: 3s}, availability: pass}
seed: 1
"""


@pytest.mark.integration
def test_real_runs_a_slowed_one_is_flagged_the_normal_ones_are_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drill = tmp_path / "drill"
    drill.mkdir()
    (drill / "drill.yaml").write_text(DRILL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(KMSCHAOS_REGISTRY=str(tmp_path / "registry"), PYTHONWARNINGS="ignore")

    def run(name: str, response_s: int) -> str:
        (drill / "topology.yaml").write_text(DRILL_TOPOLOGY.format(response_s=response_s))
        kmschaos(env, drill, "run", "drill.yaml", "--report-dir", name, timeout=180)
        return str(drill / name)

    # 10 s x 0.05: a 0.5 s failover; the slowed run's client waits 30 s x 0.05 = 1.5 s.
    # The test machine is shared (2 cores, other runs: a loaded one adds up to ~0.2 s to
    # a failover): --threshold 50 keeps that noise out, the slowed run stays far above.
    normal = [run(f"n{i}", 10) for i in range(3)]
    slowed = run("slowed", 30)
    capsys.readouterr()

    assert trend(*normal, "--threshold", "50", "--fail-on-drift", "--json") == (0, "")
    before = json.loads(capsys.readouterr().out)["figures"]
    assert before and not any(f["drift"] for f in before), before

    page = tmp_path / "trend.html"
    flagged = trend(*normal, slowed, "--threshold", "50", "--fail-on-drift", "--html", str(page))
    out = capsys.readouterr().out
    assert flagged == (1, ""), out
    assert "DRIFT drill failover_s" in out, out
    assert "DRIFT" in page.read_text(encoding="utf-8")

    assert trend(*normal, slowed, "--threshold", "50", "--json") == (0, "")
    doc = json.loads(capsys.readouterr().out)
    after = {f["figure"]: f for f in doc["figures"]}
    failover = after["failover_s"]
    with capsys.disabled():
        print(f"\nfailover_s {failover['values']}, detect_s {after['detect_s']['values']}")
    assert all(0.45 <= v < 0.8 for v in failover["values"][:3]), failover
    assert failover["values"][3] >= 1.45 and failover["drift"], failover
    assert doc["runs"][0]["commit"] and doc["ordered"] == "by start time"
