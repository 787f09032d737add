"""A rehearsal's failover expectation narrows the failover verdict: its client (or every
client that tried an affected replica), within a bound on `detect_s` (fault → first
operation served elsewhere), to a site or a replica. The checker's own policy bound must
hold too, and a client that did not fail over keeps the checker's reason (e.g. an
at-start client that chooses its server only when it starts)."""

from __future__ import annotations

from typing import Protocol

from harness.checkers.verdict import Status, Verdict

NAME = "failover"


class FailoverBounds(Protocol):
    """What an expectation may ask of a failover (a rehearsal's `Expectation`)."""

    @property
    def client(self) -> str | None: ...

    @property
    def within_s(self) -> float | None: ...

    @property
    def to_site(self) -> str | None: ...

    @property
    def to_replica(self) -> str | None: ...


def judge_failover(
    verdict: Verdict,
    exp: FailoverBounds,
    *,
    fault_ids: list[str],
    clients: tuple[str, ...],
    site_of: dict[str, str],
) -> Verdict:
    """The failover verdict narrowed to what `exp` asks: its client (or every client that
    tried an affected replica), within its bound on `detect_s` (fault → first operation
    served elsewhere), to its site or replica; the checker's own policy bound must hold
    too."""
    problems: list[str] = []
    met: list[str] = []
    for fid in fault_ids:
        fault_fig = verdict.figures.get(fid)
        per_client = fault_fig.get("clients", {}) if isinstance(fault_fig, dict) else {}
        for client in [exp.client] if exp.client else list(clients):
            fig = per_client.get(client)
            explicit = exp.client is not None
            if fig is None:
                if explicit:
                    problems.append(f"{client} started no operation during {fid}")
                continue
            client_status = fig.get("status")
            if client_status in ("not-exercised", "not-applicable"):
                if explicit:
                    why = fig.get("note", client_status)
                    problems.append(f"{client} did not fail over under {fid}: {why}")
                continue
            if client_status != "pass":
                if fig.get("failover_s") is None:
                    why = fig.get("message") or "it never reached an unaffected replica"
                    problems.append(f"{client} did not fail over under {fid}: {why}")
                else:
                    problems.append(
                        f"{client} failed over in {fig['failover_s']:.3f} s under {fid}, "
                        f"outside its policy's bound {fig.get('lower_s', 0):.3f}–"
                        f"{fig.get('upper_s', 0):.3f} s"
                    )
                continue
            served = str(fig.get("served_by"))
            detect = float(fig.get("detect_s") or 0.0)
            line = (
                f"{client} failed over to {served} ({site_of.get(served, '?')}) in "
                f"{fig['failover_s']:.3f} s, served {detect:.3f} s after {fid}"
            )
            if exp.within_s is not None and detect > exp.within_s:
                problems.append(f"{line}: later than {_duration(exp.within_s)}")
            elif exp.to_site is not None and site_of.get(served) != exp.to_site:
                problems.append(f"{line}: not to site {exp.to_site}")
            elif exp.to_replica is not None and served != exp.to_replica:
                problems.append(f"{line}: not to {exp.to_replica}")
            else:
                met.append(line)
    bound = []
    if exp.within_s is not None:
        bound.append(f"served elsewhere within {_duration(exp.within_s)} of the fault")
    if exp.to_site or exp.to_replica:
        bound.append(f"by {exp.to_site or exp.to_replica}")
    figures = dict(verdict.figures)
    figures["expectation"] = {
        "client": exp.client,
        "faults": fault_ids,
        "within_s": exp.within_s,
        "to_site": exp.to_site,
        "to_replica": exp.to_replica,
    }
    status: Status
    if problems:
        status = "fail"
        summary = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    elif met:
        status = "pass"
        summary = met[0] + (f" (and {len(met) - 1} more)" if len(met) > 1 else "")
    else:
        status = "unknown"
        summary = f"no client tried an affected replica under {', '.join(fault_ids)}"
    return Verdict(
        name=NAME,
        status=status,
        summary=summary,
        figures=figures,
        details=problems + met + list(verdict.details),
        bound="; ".join([*bound, verdict.bound or ""]).strip("; ") or None,
    )


def _duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
