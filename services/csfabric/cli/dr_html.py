"""The ``csfabric dr report`` page: one self-contained HTML file an auditor can open offline.

Charts are matplotlib figures written as inline SVG (no script, no CDN, no fonts to fetch:
text stays text, ``svg.fonttype=none``), one per policy: the worst and the p95 achieved RPO
across its volumes at each evidence record, against the policy's RPO.  Then every breach
(start, end or "open", cause) and every drill.  ``svg.hashsalt`` is fixed so the same data
gives the same bytes (a report can be diffed or hashed).
"""

from __future__ import annotations

import html
import io
from datetime import datetime

from csfabric.cli.dr_evidence import Point, ReportData

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}.bad{color:#b00020;font-weight:bold}.ok{color:#0a7a2f}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else "open"


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def chart_svg(policy: str, points: list[Point]) -> str:
    """The RPO-over-time chart of one policy, as an ``<svg>`` element."""
    import matplotlib
    from matplotlib.figure import Figure

    times = [p.at for p in points]
    worst = [p.worst_s / 60 if p.worst_s is not None else float("nan") for p in points]
    spread = [p.p95_s / 60 if p.p95_s is not None else float("nan") for p in points]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"csfabric-{policy}"}):
        fig = Figure(figsize=(9, 3.2), dpi=96)
        ax = fig.add_subplot()
        ax.plot(times, worst, marker=".", label="worst volume", color="#b00020")  # type: ignore[arg-type]
        ax.plot(times, spread, marker=".", label="p95 of volumes", color="#1f5fbf")  # type: ignore[arg-type]
        ax.axhline(points[-1].rpo_s / 60, linestyle="--", color="#555", label="RPO target")
        ax.set_ylabel("achieved RPO (min)")
        ax.set_xlabel("time (UTC)")
        ax.set_title(f"{policy}: achieved RPO in the DR zone")
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def render_html(data: ReportData) -> str:
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>csfabric DR report {_e(_when(data.start))} to {_e(_when(data.end))}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Disaster recovery evidence</h1>",
        f"<p>From {_e(_when(data.start))} to {_e(_when(data.end))}: {data.read} records read"
        + (f", <span class='bad'>{data.unreadable} unreadable</span>" if data.unreadable else "")
        + ".</p>",
        "<h2>Achieved RPO per policy</h2>",
    ]
    if not data.points:
        out.append("<p id='no-evidence'>No RPO evidence in this range.</p>")
    out.append(
        "<table><tr><th>policy</th><th>records</th><th>RPO</th><th>worst</th>"
        "<th>records in breach</th><th>volumes without a DR copy (last)</th></tr>"
    )
    for policy, points in data.points.items():
        worst = max((p.worst_s for p in points if p.worst_s is not None), default=None)
        breached = sum(1 for p in points if p.in_breach)
        cls = "bad" if breached else "ok"
        out.append(
            f"<tr><td>{_e(policy)}</td><td>{len(points)}</td><td>{_minutes(points[-1].rpo_s)}"
            f"</td><td>{_minutes(worst)}</td><td class='{cls}'>{breached}</td>"
            f"<td>{points[-1].without_copy}</td></tr>"
        )
    out.append("</table>")
    for policy, points in data.points.items():
        out.append(f"<figure class='rpo-chart' data-policy='{_e(policy)}'>")
        out.append(chart_svg(policy, points))
        out.append(
            f"<figcaption>{_e(policy)}: worst and p95 achieved RPO across volumes at "
            "each evidence record; dashed: the policy's RPO.</figcaption></figure>"
        )
    out.append("<h2>Breaches</h2>")
    out.append(
        "<table id='breaches'><tr><th>policy</th><th>volume</th><th>start</th>"
        "<th>end</th><th>achieved RPO</th><th>RPO</th><th>cause</th></tr>"
    )
    for b in data.breaches:
        end = _e(_when(b.end)) if b.end else "<span class='bad'>open</span>"
        out.append(
            f"<tr class='breach'><td>{_e(b.policy)}</td><td>{_e(b.volume_name)} "
            f"<small>{_e(b.volume_id)}</small></td><td>{_e(_when(b.start))}</td><td>{end}</td>"
            f"<td>{_minutes(b.achieved_rpo_s)}</td><td>{_minutes(b.rpo_s)}</td>"
            f"<td>{_e(b.cause)}</td></tr>"
        )
    out.append("</table>" + ("" if data.breaches else "<p>No breach in this range.</p>"))
    out.append("<h2>Drills</h2>")
    out.append(
        "<table id='drills'><tr><th>drill</th><th>zone</th><th>started</th>"
        "<th>measured RTO</th><th>target</th><th>volumes</th><th>VMs</th>"
        "<th>cleaned up</th><th>result</th><th>failed steps</th></tr>"
    )
    for d in data.drills:
        failed = ", ".join(s.name for s in d.steps if not s.ok) or "—"
        verdict = "<span class='ok'>pass</span>" if d.ok else "<span class='bad'>FAIL</span>"
        out.append(
            f"<tr class='drill'><td>{_e(d.id)}</td><td>{_e(d.zone)}</td>"
            f"<td>{_e(_when(d.started))}</td><td>{_minutes(d.measured_rto_s)}</td>"
            f"<td>{_minutes(d.target_rto_s)}</td><td>{d.volumes_restored}</td>"
            f"<td>{d.vms_redeployed}</td><td>{'yes' if d.cleaned_up else 'NO'}</td>"
            f"<td>{verdict}</td><td>{_e(failed)}</td></tr>"
        )
    out.append("</table>" + ("" if data.drills else "<p>No drill in this range.</p>"))
    out.append("</body></html>")
    return "\n".join(out)


__all__ = ["chart_svg", "render_html"]
