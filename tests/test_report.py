"""report.html: rendered from hand-built report folders (escaping, partial runs, lost
keys, no external URL, thinning, errors), and from a real small run opened in headless
Chromium, whose screenshot must show the timeline's colours."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from harness.history import (
    Attempt,
    BalancerEvent,
    Complete,
    Event,
    FaultEvent,
    Invoke,
    Note,
    Snapshot,
    event_to_dict,
)
from harness.report import (
    FAULT_BAND,
    REPLICA_COLOURS,
    ReportError,
    add_report_parser,
    cmd_report,
    load_report,
    render_report,
)
from harness.report.timeline import GOING_DOWN, OUT_OF_ROTATION, timeline_svg
from harness.store import safe_name
from harness.toolchain import repo_root

T0 = 5000.0
TOPOLOGIES = repo_root() / "scenarios" / "topologies"
EVIL = '<script>alert("x")</script>&'


# ---- building report folders by hand -----------------------------------------------------


def op(
    client: str,
    n: int,
    start: float,
    *tries: tuple[str, str, float],
    op_name: str = "create",
    key: str | None = None,
    outcome: str | None = None,
    error: str = "",
) -> list[Event]:
    """An invoke and its completion; the attempts are laid end to end from T0 + start."""
    t = T0 + start
    attempts = []
    for server, result, secs in tries:
        attempts.append(Attempt(server, f"127.0.0.1:{5696}", t, t + secs, result, ""))
        t += secs
    ok = bool(attempts) and attempts[-1].outcome == "ok"
    op_id = f"{client}#0:{n}"
    return [
        Invoke(op_id, client, op_name, T0 + start, key),
        Complete(
            op_id,
            client,
            "vcenter",
            op_name,
            T0 + start,
            t,
            outcome or ("ok" if ok else "fail"),  # type: ignore[arg-type]
            attempts[-1].server if ok else None,
            key,
            attempts,
            error,
        ),
    ]


def fault(kind: str, target: str, start: float, end: float | None, fid: str = "") -> list[Event]:
    fid = fid or f"{kind}-{target}-1"
    params = {"replicas": [target]}
    out: list[Event] = [FaultEvent(fid, "inject", kind, target, T0 + start, params)]
    if end is not None:
        out.append(FaultEvent(fid, "heal", kind, target, T0 + end, params))
    return out


def refuse_history(client: str = "vc-a") -> list[Event]:
    """Baseline on kms-a, refuse kms-a, ops fail over to kms-b, heal, back on kms-a."""
    ev: list[Event] = [Note(T0, "baseline")]
    n = 0
    for i in range(5):
        n += 1
        ev += op(client, n, 0.05 * i, ("kms-a", "ok", 0.01))
    ev += fault("refuse", "kms-a", 0.3, 0.8)
    for i in range(5):
        n += 1
        ev += op(client, n, 0.32 + 0.1 * i, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.01))
    n += 1
    ev += op(client, n, 0.9, ("kms-a", "ok", 0.01))
    return ev


def verdict(
    name: str, status: str, summary: str, expected: str | None = None, **figures: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "summary": summary,
        "figures": figures,
        "details": [],
        "bound": None,
        "expected": expected,
    }


def write_scenario(
    root: Path,
    sid: str,
    events: list[Event],
    *,
    verdicts: dict[str, dict[str, Any]] | None = None,
    findings: list[str] | None = None,
    topology: Path | None = TOPOLOGIES / "one-site.yaml",
    outcome_json: bool = True,
    torn_line: bool = False,
    header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The scenario's folder; returns its summary row."""
    sdir = root / "scenarios" / safe_name(sid)
    sdir.mkdir(parents=True, exist_ok=True)
    head = {"type": "header", "topology": "one-site", "time_scale": 0.05, **(header or {})}
    lines = [json.dumps(head)] + [json.dumps(event_to_dict(e)) for e in events]
    text = "\n".join(lines) + "\n"
    if torn_line:
        text += '{"op_id": "vc-a#0:99", "client": "vc-a", "po'
    (sdir / "history.jsonl").write_text(text)
    verdicts = verdicts or {}
    if outcome_json:
        (sdir / "outcome.json").write_text(
            json.dumps(
                {
                    "name": sid,
                    "verdicts": verdicts,
                    "findings": findings or [],
                    "figures": {"topology": str(topology) if topology else None},
                    "regressions": [],
                }
            )
        )
    return {
        "id": sid,
        "outcome": "passed",
        "duration_s": 1.5,
        "detail": "",
        "verdicts": verdicts,
        "findings": findings or [],
        "topology": str(topology) if topology else None,
        "history": str(sdir / "history.jsonl"),
    }


def write_summary(root: Path, rows: list[dict[str, Any]], **extra: Any) -> None:
    totals = {k: sum(1 for r in rows if r["outcome"] == k) for k in ("passed", "failed")}
    totals |= {"skipped": 0, "interrupted": sum(1 for r in rows if r["outcome"] == "interrupted")}
    summary = {
        "started": 1_700_000_000.0,
        "duration_s": 12.5,
        "time_scale": 0.05,
        "totals": totals,
        "scenarios": rows,
        **extra,
    }
    (root / "summary.json").write_text(json.dumps(summary))
    merged = []
    for r in rows:
        hist = root / "scenarios" / safe_name(r["id"]) / "history.jsonl"
        if hist.exists():
            for line in hist.read_text().splitlines():
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                merged.append(json.dumps({**d, "scenario": r["id"]}))
    (root / "history.jsonl").write_text("\n".join(merged) + "\n")


def render(root: Path) -> str:
    return render_report(root).read_text(encoding="utf-8")


# ---- the renderer on hand-built folders --------------------------------------------------


def test_a_run_renders_timeline_verdicts_and_topology(tmp_path: Path) -> None:
    row = write_scenario(
        tmp_path,
        "scenarios/test_refuse.py::test_refuse",
        refuse_history(),
        verdicts={
            "failover": verdict("failover", "pass", "vc-a failed over in 0.002 s", "pass"),
            "availability": verdict("availability", "pass", "5/5 ok", "pass"),
        },
    )
    write_summary(tmp_path, [row], backend="local")
    page = render(tmp_path)
    assert page.startswith("<!doctype html>")
    assert "refuse kms-a" in page  # the fault band's label
    assert f'fill="{FAULT_BAND}"' in page
    assert f'fill="{REPLICA_COLOURS[0]}"' in page  # kms-a, the first replica
    assert "vc-a" in page and "kms-b" in page
    assert "vc-a failed over in 0.002 s" in page  # the verdict table
    assert "backend local" in page and "time scale 0.05" in page
    assert "1 passed" in page
    assert "no audit snapshot in this scenario" in page
    assert "unreplicated-copies" in page  # lint of one-site.yaml
    assert str(tmp_path.resolve()) in page  # the footer names the folder
    assert "Partial report" not in page and "(partial)" not in page


def test_every_string_from_the_folder_is_escaped(tmp_path: Path) -> None:
    sid = f"scenarios/test_x.py::test_{EVIL}"
    events = op(f"vc-{EVIL}", 1, 0.0, (f"kms-{EVIL}", "refused", 0.01), error=EVIL)
    events += fault("refuse", f"kms-{EVIL}", 0.0, 0.5)
    events.append(Note(T0 + 0.1, EVIL))
    v = verdict("availability", "fail", EVIL, "pass")
    v["details"] = [EVIL]
    v["bound"] = EVIL
    row = write_scenario(
        tmp_path,
        sid,
        events,
        verdicts={"availability": v, EVIL: verdict(EVIL, "fail", EVIL)},
        findings=[EVIL],
        topology=None,
        header={"topology": EVIL},
    )
    row["detail"] = EVIL
    row["outcome"] = "failed"
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert page.count("<script>") == 1  # the page's own
    assert "alert(" not in page.split("<script>")[1].split("</script>")[0]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert '"x")</script>' not in page


def test_no_external_url_in_the_page(tmp_path: Path) -> None:
    row = write_scenario(tmp_path, "scenarios/test_refuse.py::test_refuse", refuse_history())
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"@import|url\(", page)


def test_interrupted_run_gives_a_partial_report(tmp_path: Path) -> None:
    done = write_scenario(tmp_path, "scenarios/test_refuse.py::test_refuse", refuse_history())
    cut = write_scenario(
        tmp_path,
        "scenarios/test_stall.py::test_stall",
        refuse_history()[:12],
        outcome_json=False,
        torn_line=True,
    )
    cut["outcome"] = "interrupted"
    write_summary(tmp_path, [done, cut])
    page = render(tmp_path)
    assert "Partial report" in page
    assert "1 scenario(s) interrupted" in page
    assert "no outcome.json" in page
    assert "1 history line(s) could not be read" in page
    assert page.index("stall") < page.index('id="s-scenarios-test_refuse')  # cut one first


def test_folder_without_summary_renders_what_exists(tmp_path: Path) -> None:
    write_scenario(tmp_path, "scenarios/test_refuse.py::test_refuse", refuse_history())
    page = render(tmp_path)
    assert "Partial report" in page and "summary.json is missing" in page
    assert "scenarios/test_refuse.py::test_refuse" in page  # the id from outcome.json
    assert "refuse kms-a" in page


def test_history_from_the_merged_file_when_the_scenario_file_is_gone(tmp_path: Path) -> None:
    sid = "scenarios/test_refuse.py::test_refuse"
    row = write_scenario(tmp_path, sid, refuse_history())
    write_summary(tmp_path, [row])
    (tmp_path / "scenarios" / safe_name(sid) / "history.jsonl").unlink()
    data = load_report(tmp_path)
    assert len(data.scenarios[0].events) == len(refuse_history())
    assert "refuse kms-a" in render(tmp_path)


def test_durability_failure_lists_the_lost_keys_and_where(tmp_path: Path) -> None:
    ev: list[Event] = []
    for i in range(3):
        ev += op("vc-a", i + 1, 0.01 * i, ("kms-a", "ok", 0.005), key=f"k{i}")
    ev += fault("wipe", "kms-a", 0.2, 0.4)
    for rnd, t in ((1, 0.1), (2, 0.6)):
        for r in ("kms-a", "kms-b"):
            held = {f"k{i}": {"digest": "d", "state": "ACTIVE"} for i in range(3)}
            if rnd == 2 or r == "kms-b":
                held = {"k0": {"digest": "d", "state": "ACTIVE"}}
            ev.append(Snapshot(T0 + t, r, rnd, held))
    lost = [
        {
            "uid": f"k{i}",
            "made_on": "kms-a",
            "made_at_s": 0.01 * i,
            "missing_on": ["kms-a", "kms-b"],
            "corrupt_on": [],
            "destroyed_on": [],
        }
        for i in (1, 2)
    ]
    dur = verdict(
        "durability",
        "fail",
        "2 of 3 acknowledged keys lost",
        "pass",
        acknowledged=3,
        lost_keys=2,
        lost=lost,
        crash_faults={
            "wipe-kms-a-1": {"kind": "wipe", "target": "kms-a", "lost": 2, "rpo_s": 0.19}
        },
    )
    dur["details"] = ["key k1 made on kms-a at +0.010 s: missing on kms-a, kms-b"]
    row = write_scenario(
        tmp_path,
        "scenarios/test_async_crash_window.py::test_crash",
        ev,
        verdicts={"durability": dur},
        topology=TOPOLOGIES / "two-sites-async.yaml",
    )
    row["outcome"] = "failed"
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    lost_part = page.split("<h3>Lost keys</h3>")[1].split("</table>")[0]
    for key in ("k1", "k2"):
        assert f"<code>{key}</code>" in lost_part
    assert "kms-a, kms-b" in lost_part
    assert "RPO 0.190 s" in page
    assert "Durability: every key a client was told exists" in page  # the explanation
    assert "expected pass: this is a regression" in page
    assert "key k1 made on kms-a" in page  # the evidence line
    # audit rounds: kms-b lacked 2 keys kms-a held in round 1
    assert "round 1" in page and "3 −2" not in page and "1 −2" in page
    assert 'class="scenario" id="s-scenarios-test_async_crash_window' in page
    assert re.search(r'<details class="scenario" id="s-[^"]+" open>', page)


def test_failed_verdict_without_details_shows_the_history_lines(tmp_path: Path) -> None:
    row = write_scenario(
        tmp_path,
        "scenarios/test_refuse.py::test_refuse",
        refuse_history(),
        verdicts={"order": verdict("order", "fail", "1 violation", "pass")},
    )
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    proof = page.split("what proves it:")[1].split("</pre>")[0]
    assert "fault inject refuse kms-a" in proof
    assert "kms-a refused" in proof and "kms-b ok" in proof
    assert proof.count("\n") <= 20


def test_a_pass_where_a_fail_was_expected_is_explained_as_a_regression(tmp_path: Path) -> None:
    row = write_scenario(
        tmp_path,
        "scenarios/test_pykmip_blackhole.py::test_p",
        refuse_history(),
        verdicts={"availability": verdict("availability", "pass", "5/5 ok", "fail")},
    )
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert "pass (expected fail)" in page
    assert "the behaviour the scenario documents did not happen" in page
    assert "The scenario expected fail: this is a regression." in page


def test_regressions_first_and_open_passes_closed(tmp_path: Path) -> None:
    a = write_scenario(tmp_path, "scenarios/test_a.py::test_a", refuse_history())
    b = write_scenario(tmp_path, "scenarios/test_b.py::test_b", refuse_history())
    b["outcome"] = "failed"
    b["detail"] = "ScenarioError: failover: expected pass, got fail"
    more = [
        write_scenario(tmp_path, f"scenarios/test_{x}.py::test_{x}", refuse_history())
        for x in ("c", "d")
    ]
    write_summary(tmp_path, [a, b, *more])
    page = render(tmp_path)
    assert page.index('id="s-scenarios-test_b') < page.index('id="s-scenarios-test_a')
    assert re.search(r'id="s-scenarios-test_b[^"]*" open>', page)
    assert not re.search(r'id="s-scenarios-test_a[^"]*" open>', page)
    assert "ScenarioError: failover: expected pass, got fail" in page
    assert "REGRESSION" in page


def test_a_run_of_a_few_scenarios_opens_them_all(tmp_path: Path) -> None:
    a = write_scenario(tmp_path, "scenarios/test_a.py::test_a", refuse_history())
    write_summary(tmp_path, [a])
    assert re.search(r'id="s-scenarios-test_a[^"]*" open>', render(tmp_path))


def test_rehearsal_step_verdicts_are_in_its_section_not_the_index(tmp_path: Path) -> None:
    sid = "scenarios/rehearsals/site-a-loses-power.yaml::site-a-loses-power"
    fail_expected = verdict("availability", "fail", "vc-a: 3 of 9 ops failed", "fail")
    steps = {
        "steps[2].failover": verdict("failover", "pass", "vc-a failed over in 0.022 s", "pass"),
        "steps[4].availability": fail_expected,
        "steps[6].failover": verdict("failover", "pass", "vc-a back on kms-a", "pass"),
    }
    verdicts = {
        "failover": steps["steps[6].failover"],
        "availability": fail_expected,
        **steps,
    }
    rehearsal = write_scenario(tmp_path, sid, refuse_history(), verdicts=verdicts)
    outcome = tmp_path / "scenarios" / safe_name(sid) / "outcome.json"
    doc = json.loads(outcome.read_text())
    doc["figures"]["rehearsal"] = {
        "file": "scenarios/rehearsals/site-a-loses-power.yaml",
        "expectations": [
            {"step": "steps[2]", "line": 11, "checker": "failover"},
            {"step": "steps[4]", "line": 13, "checker": "availability"},
            {"step": "steps[6]", "line": 15, "checker": "failover"},
        ],
    }
    outcome.write_text(json.dumps(doc))
    plain = write_scenario(
        tmp_path,
        "scenarios/test_refuse.py::test_refuse",
        refuse_history(),
        verdicts={"order": verdict("order", "pass", "all ops in order", "pass")},
    )
    write_summary(tmp_path, [rehearsal, plain])
    page = render(tmp_path)

    index = page.split("<nav>")[1].split("</nav>")[0]
    assert "steps[" not in index
    heads = re.findall(r"<th>([^<]*)</th>", index)
    assert heads == ["scenario", "failover", "order", "availability", "result", "duration"]

    section = page.split('id="s-scenarios-rehearsals-site-a-loses-power')[1]
    section = section.split('<details class="scenario"')[0]  # up to the next scenario
    checkers = section.split("<h3>Verdicts</h3>")[1].split("</table>")[0]
    assert "steps[" not in checkers
    assert "<b>failover</b>" in checkers and "<b>availability</b>" in checkers
    steps_part = section.split("<h3>Rehearsal steps</h3>")[1].split("</table>")[0]
    assert "scenarios/rehearsals/site-a-loses-power.yaml" in steps_part
    rows = steps_part.split("<tr>")[2:]
    assert [re.sub(r"<[^>]+>", " ", r).split()[:4] for r in rows] == [
        ["steps[2]", "(line", "11)", "failover"],
        ["steps[4]", "(line", "13)", "availability"],
        ["steps[6]", "(line", "15)", "failover"],
    ]
    assert "vc-a failed over in 0.022 s" in rows[0] and "fail (expected)" in rows[1]
    assert "vc-a back on kms-a" in rows[2]
    assert page.count("<h3>Rehearsal steps</h3>") == 1  # the plain scenario has none


def test_topology_without_its_file_is_drawn_from_the_history(tmp_path: Path) -> None:
    row = write_scenario(
        tmp_path, "scenarios/test_refuse.py::test_refuse", refuse_history(), topology=None
    )
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert "drawn from the history" in page
    assert "1 kms-a" in page and "2 kms-b" in page  # the order the attempts show
    assert "lint: not run" in page


def test_misordered_topology_shows_its_lint_error(tmp_path: Path) -> None:
    row = write_scenario(
        tmp_path,
        "scenarios/test_misordered.py::test_m",
        refuse_history(),
        topology=TOPOLOGIES / "two-sites-misordered.yaml",
    )
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert "remote-before-local" in page and "sev-error" in page
    assert "site-a" in page and "site-b" in page


def test_thousands_of_ops_are_thinned_and_the_page_says_so(tmp_path: Path) -> None:
    ev: list[Event] = []
    for i in range(4000):
        server = "kms-a" if i % 1000 < 900 else "kms-b"
        ev += op("vc-a", i + 1, 0.002 * i, (server, "ok", 0.0015))
    for i in range(600):
        ev += op("vc-b", i + 1, 0.01 * i, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.002))
    row = write_scenario(tmp_path, "scenarios/test_load.py::test_load", ev)
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert "thinned: vc-a: 4000 ops drawn as" in page
    assert "600 ops had a failure: the first 400 drawn with their attempts" in page
    assert "crosses only" not in page  # the 200 not drawn in full all succeeded
    assert len(page) < 400_000


def test_a_scenario_without_ops_or_faults(tmp_path: Path) -> None:
    row = write_scenario(tmp_path, "scenarios/test_empty.py::test_empty", [])
    write_summary(tmp_path, [row])
    assert "nothing to draw" in render(tmp_path)


def test_errors_name_the_folder_and_the_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ReportError, match=re.escape(str(tmp_path / "nope"))):
        render_report(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError, match=r"empty: summary\.json is missing"):
        render_report(empty)
    (empty / "summary.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"summary\.json:1: not JSON"):
        render_report(empty)
    assert cmd_report(argparse.Namespace(report_dir=str(tmp_path / "nope"), output=None)) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmschaos: ") and str(tmp_path / "nope") in err


def test_report_subcommand_parses_and_writes_the_output(tmp_path: Path) -> None:
    row = write_scenario(tmp_path, "scenarios/test_refuse.py::test_refuse", refuse_history())
    write_summary(tmp_path, [row])
    ap = argparse.ArgumentParser(prog="kmschaos")
    sub = ap.add_subparsers(dest="command", required=True)
    add_report_parser(sub)
    out = tmp_path / "elsewhere" / "r.html"
    args = ap.parse_args(["report", str(tmp_path), "--output", str(out)])
    assert args.func is cmd_report
    assert args.func(args) == 0
    assert out.is_file() and not (tmp_path / "report.html").exists()
    assert "render report.html from a report folder" in ap.format_help()


# ---- a real run, opened in headless Chromium ---------------------------------------------


def decode_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = colour_type = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour_type in (2, 6), body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        i = y * (stride + 1)
        filt = raw[i]
        line = bytearray(raw[i + 1 : i + 1 + stride])
        if filt == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif filt in (1, 3, 4):
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                up = prev[x]
                if filt == 1:
                    line[x] = (line[x] + left) & 255
                elif filt == 3:
                    line[x] = (line[x] + (left + up) // 2) & 255
                else:
                    ul = prev[x - bpp] if x >= bpp else 0
                    p = left + up - ul
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                    line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def count_colour(rows: list[bytes], bpp: int, hex_colour: str, tolerance: int = 3) -> int:
    want = bytes.fromhex(hex_colour.lstrip("#"))
    n = 0
    for row in rows:
        for x in range(0, len(row), bpp):
            px = row[x : x + 3]
            if all(abs(px[i] - want[i]) <= tolerance for i in range(3)):
                n += 1
    return n


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def screenshot(page: Path, png: Path, profile: Path, size: tuple[int, int]) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("KMSCHAOS_REQUIRE_CHROMIUM") == "1":
            pytest.fail("KMSCHAOS_REQUIRE_CHROMIUM=1 but no chromium on PATH")
        pytest.skip("no chromium: apt-get install -y chromium to check report.html renders")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={png}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"


@pytest.mark.integration
def test_real_run_report_opens_in_chromium_with_the_timeline_colours(tmp_path: Path) -> None:
    report = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONWARNINGS"] = "ignore"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            # the done-means: the rehearsal's report shows its timeline
            str(repo_root() / "scenarios" / "rehearsals" / "site-a-loses-power.yaml"),
            str(repo_root() / "scenarios" / "test_async_crash_window.py"),
            "--time-scale",
            "0.05",
            "--report-dir",
            str(report),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    page = report / "report.html"
    assert f"report: {page.resolve()}" in run.stdout
    html_text = page.read_text(encoding="utf-8")
    assert "async_crash_window" in html_text and "Lost keys" in html_text
    assert "site-a-loses-power" in html_text and "site-down site-a" in html_text
    assert "backend local" in html_text
    assert len(html_text) < 300_000

    png = tmp_path / "shot.png"
    screenshot(page, png, tmp_path / "chromium-profile", (1400, 2000))
    width, height, rows, bpp = decode_png(png.read_bytes())
    assert (width, height) == (1400, 2000)
    band = count_colour(rows, bpp, FAULT_BAND)
    first_replica = count_colour(rows, bpp, REPLICA_COLOURS[0])
    assert band > 2000, f"fault band {FAULT_BAND}: {band} pixels"
    assert first_replica > 200, f"kms-a {REPLICA_COLOURS[0]}: {first_replica} pixels"
    colours = {row[x : x + 3] for row in rows[::7] for x in range(0, len(row), bpp * 7)}
    assert len(colours) > 30, f"a near-blank page: {len(colours)} colours"


# ---- balancers in the timeline ------------------------------------------------------------


def lb_states(lb: str, server: str, *states: tuple[float, str, str, str]) -> list[Event]:
    """A balancer's account of one server: (seconds from T0, status, check, detail)."""
    return [BalancerEvent(T0 + t, lb, server, st, ck, de) for t, st, ck, de in states]


def always_up(lb: str, *servers: str) -> list[Event]:
    out: list[Event] = []
    for s in servers:
        out += lb_states(lb, s, (-0.1, "UP", "L7OK", "Layer7 check passed"))
    return out


def test_a_server_out_of_rotation_gets_a_balancer_row_with_its_band(tmp_path: Path) -> None:
    ev = refuse_history() + always_up("lb-a", "kms-b", "kms-c")
    ev += lb_states(
        "lb-a",
        "kms-a",
        (-0.1, "UP", "L7OK", "Layer7 check passed"),
        (0.35, "UP 2/3", "L6TOUT", "Layer6 timeout"),
        (0.45, "UP 1/3", "L6TOUT", "Layer6 timeout"),
        (0.5, "DOWN", "L6TOUT", "Layer6 timeout"),
        (0.9, "DOWN 1/2", "L7OK", "Layer7 check passed"),
        (1.56, "UP", "L7OK", "Layer7 check passed"),
    )
    ev += lb_states(  # out until the end: the band runs to the end of the history
        "lb-b",
        "kms-a",
        (-0.1, "UP", "L4OK", "Layer4 check passed"),
        (0.4, "DOWN", "L4CON", ""),
    )
    ev += lb_states(  # went down and came back without leaving: no row of its own
        "lb-b",
        "kms-b",
        (-0.1, "UP", "L4OK", ""),
        (0.4, "UP 2/3", "L4CON", ""),
        (0.6, "UP", "L4OK", ""),
    )
    row = write_scenario(tmp_path, "scenarios/test_lb.py::test_lb", ev)
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    svg = page.split('<svg class="timeline"')[1].split("</svg>")[0]
    assert "lb-a → kms-a" in svg and "lb-b → kms-a" in svg
    assert "lb-a → kms-b" not in svg and "lb-a → kms-c" not in svg  # always UP
    assert "lb-b → kms-b" not in svg  # never out of rotation
    assert "lb-a → kms-a out of rotation 1.06 s (L6TOUT: Layer6 timeout)" in svg
    assert "checks passing again from t+0.900s (DOWN 1/2)" in svg  # origin: the first op
    assert "lb-a → kms-a going down 0.15 s (L6TOUT: Layer6 timeout)" in svg
    assert "lb-b → kms-a out of rotation" in svg and "still out at the end" in svg
    assert "(L4CON)" in svg  # a check without a description
    assert svg.count(f'fill="{OUT_OF_ROTATION}"') == 2
    assert svg.count(f'fill="{GOING_DOWN}"') == 1
    assert "out of the balancer" in page and "going down (checks failing" in page  # legend
    # the fault band covers the balancer rows too: they line up with the fault
    band = re.search(
        rf'<rect x="[\d.]+" y="(\d+)" width="[\d.]+" height="(\d+)" fill="{FAULT_BAND}"', svg
    )
    assert band is not None
    out_band = re.search(
        rf'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="12" fill="{OUT_OF_ROTATION}"', svg
    )
    assert out_band is not None
    assert int(band[1]) < float(out_band[1]) < int(band[1]) + int(band[2])


def test_without_a_server_out_of_rotation_the_timeline_is_as_before(tmp_path: Path) -> None:
    ev = refuse_history()
    origin = T0
    before, _ = timeline_svg(ev, {"kms-a": REPLICA_COLOURS[0]}, origin)
    after, _ = timeline_svg(
        ev + always_up("lb-a", "kms-a", "kms-b"), {"kms-a": REPLICA_COLOURS[0]}, origin
    )
    assert after == before
    row = write_scenario(tmp_path, "scenarios/test_refuse.py::test_refuse", ev)
    write_summary(tmp_path, [row])
    page = render(tmp_path)
    assert "out of rotation" not in page and "rotation</span>" not in page
    assert OUT_OF_ROTATION not in page and GOING_DOWN not in page
