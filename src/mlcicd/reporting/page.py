"""The report's HTML: one file, inline CSS and SVG, no script, no font or image fetched.

A section per stage in pipeline order: verdict, summary, the stage's plots, its checks and
outputs. Everything taken from a JSON file is escaped: a check message can quote data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial
from html import escape
from typing import Any

from mlcicd.reporting import extract, plots
from mlcicd.reporting.collect import StageDoc

VERDICT_ICON = {"pass": "✔", "fail": "✘", "inconclusive": "?"}
STATUS_ORDER = {"fail": 0, "warn": 1, "skip": 2, "pass": 3}
# Train and eval each store up to 12; drawing 24 panels would double the report's time for little.
MAX_HISTOGRAMS = 12
GATE_METRICS = ("accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "rmse", "mae", "r2", "mape",
                "latency_p50_ms", "latency_p99_ms")

CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --inconclusive: #9a6700; --warn: #9a6700; --skip: #6e7781;
        --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2328;
       margin: 0 auto; padding: 24px 32px 48px; max-width: 1200px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0; display: flex; gap: 10px; align-items: center; }
h3 { font-size: 14px; margin: 18px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.meta { color: var(--muted); font-size: 12px; margin-bottom: 16px; }
.strip { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0 24px; }
.strip a { text-decoration: none; color: inherit; border: 1px solid var(--line); border-radius: 6px;
           padding: 6px 10px; border-left: 6px solid var(--skip); }
.strip a.pass { border-left-color: var(--pass); } .strip a.fail { border-left-color: var(--fail); }
.strip a.inconclusive { border-left-color: var(--inconclusive); }
section { border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 0 0 20px; }
.badge { font-size: 12px; font-weight: 600; color: #fff; border-radius: 10px; padding: 1px 9px; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.inconclusive { background: var(--inconclusive); } .badge.unknown { background: var(--skip); }
.summary { margin: 8px 0 4px; }
.source { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.status { white-space: nowrap; font-weight: 600; }
td.status.pass { color: var(--pass); } td.status.fail { color: var(--fail); }
td.status.warn { color: var(--warn); } td.status.skip { color: var(--skip); }
code { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
td.name code { white-space: nowrap; }
figure.plot { margin: 8px 0 12px; }
figure.plot svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; }
details > summary { cursor: pointer; color: var(--muted); margin: 8px 0; }
.note { color: var(--muted); font-style: italic; }
.error { color: var(--fail); }
@media print { section { break-inside: avoid-page; } }
"""


def render(docs: Sequence[StageDoc], *, sources: Sequence[str]) -> str:
    overall = _overall(docs)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    strip = "".join(f'<a class="{_cls(d.verdict)}" href="#{escape(d.stage)}">{VERDICT_ICON.get(d.verdict, "·")} '
                    f"{escape(d.stage)}</a>" for d in docs)
    with plots.drawing():
        body = "\n".join(_section(d) for d in docs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ml-cicd report: {escape(overall)}</title>
<style>{CSS}</style></head>
<body>
<h1>ml-cicd pipeline report <span class="badge {_cls(overall)}">{escape(overall)}</span></h1>
<div class="meta">{len(docs)} stage(s) · rendered {now} from {escape(", ".join(sources))}</div>
<nav class="strip">{strip}</nav>
{body}
</body></html>
"""


def _overall(docs: Sequence[StageDoc]) -> str:
    verdicts = {d.verdict for d in docs}
    for worst in ("fail", "inconclusive"):
        if worst in verdicts:
            return worst
    return "pass" if verdicts == {"pass"} else "unknown"


def _cls(verdict: str) -> str:
    return verdict if verdict in VERDICT_ICON else "unknown"


def _section(doc: StageDoc) -> str:
    data = doc.data
    parts = [f'<section id="{escape(doc.stage)}">',
             f'<h2>{escape(doc.stage)} <span class="badge {_cls(doc.verdict)}">{escape(doc.verdict)}</span></h2>',
             f'<p class="summary">{escape(str(data.get("summary", "")))}</p>',
             f'<div class="source">{escape(str(doc.path))}</div>']
    section_plots = PLOTS.get(doc.stage)
    if section_plots is not None:
        parts.append(section_plots(data))
    parts.append(_checks(data.get("checks") or []))
    parts.append(_outputs(data.get("outputs") or {}))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _figure(kind: str, draw: Callable[[], str], caption: str = "") -> str:
    """One plot; a plot that cannot be drawn from an unexpected JSON says so instead of losing the report."""
    try:
        svg = draw()
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return f'<p class="error">The {escape(kind)} plot could not be drawn: {escape(type(exc).__name__)}: ' \
               f"{escape(str(exc))}</p>"
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure class="plot" data-plot="{escape(kind)}">{svg}{cap}</figure>'


def _validate_data(data: dict[str, Any]) -> str:
    figures = data.get("figures") or {}
    hists = extract.histograms(figures)
    if hists:
        shown = hists[:MAX_HISTOGRAMS]
        more = (f" {len(hists) - len(shown)} more drifted feature(s) are listed in the checks below."
                if len(hists) > len(shown) else "")
        return ("<h3>Drifted features: reference vs current</h3>" +
                _figure("drift", lambda: plots.histogram_grid(shown),
                        "Share of rows per bin (numeric: shared bins, tails in the end bins) or per category "
                        "(the most frequent ones); the most drifted features first." + more))
    if figures.get("drift"):
        return '<p class="note">No feature drifted from the reference: nothing to plot.</p>'
    return ""


def _gate(data: dict[str, Any]) -> str:
    figures = data.get("figures") or {}
    parts = [_metrics_table(figures)]
    c = extract.curves(figures)
    if c is not None and c.kind == "roc_pr":
        parts += ["<h3>ROC and precision-recall</h3>", _figure("roc-pr", lambda: plots.roc_pr(c), c.note)]
    elif c is not None:
        parts += ["<h3>Residuals</h3>", _figure("residuals", lambda: plots.residuals(c), c.note)]
    for bars in extract.fairness(figures):
        conf = f"bounds at {bars.confidence:.0%} each side (bootstrap)" if bars.confidence else ""
        rows = ", ".join(f"{g}: {n:,} rows" for g, n in zip(bars.groups, bars.rows, strict=True))
        parts += [f"<h3>Fairness across {escape(bars.column)}</h3>",
                  _figure("fairness", partial(plots.fairness, bars), "; ".join(s for s in (rows, conf) if s))]
    return "\n".join(parts)


def _metrics_table(figures: dict[str, Any]) -> str:
    mine, theirs = figures.get("candidate") or {}, figures.get("champion") or {}
    names = [m for m in GATE_METRICS if mine.get(m) is not None]
    if not names:
        return ""
    head = "<tr><th>metric</th><th>candidate</th>" + (
        f"<th>champion v{escape(str(theirs.get('version', '')))}</th><th>Δ</th>" if theirs else "") + "</tr>"
    rows = []
    for m in names:
        cells = f"<td>{escape(m)}</td><td class=num>{_fmt(mine[m])}</td>"
        if theirs:
            other = theirs.get(m)
            delta = mine[m] - other if isinstance(other, int | float) else None
            cells += f"<td class=num>{_fmt(other)}</td><td class=num>{_fmt(delta, signed=True)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<h3>Metrics</h3><table>{head}{''.join(rows)}</table>"


def _monitor_canary(data: dict[str, Any]) -> str:
    t = extract.timeline(data)
    if t is None:
        return '<p class="note">No look was recorded: nothing to plot.</p>'
    return ("<h3>Timeline</h3>" +
            _figure("timeline", lambda: plots.timeline(t),
                    f"{len(t.t)} look(s); decision: {t.decision}. Error rates are cumulative since the analysis "
                    "began (what the judge tests); latency quantiles are per interval between looks."))


PLOTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "validate-data": _validate_data, "gate": _gate, "monitor-canary": _monitor_canary}


def _checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return ""
    ordered = sorted(checks, key=lambda c: STATUS_ORDER.get(str(c.get("status")), 9))
    rows = "".join(
        f'<tr><td class="status {escape(str(c.get("status")))}">{escape(str(c.get("status")))}</td>'
        f"<td class=name><code>{escape(str(c.get('name')))}</code></td><td class=num>{_fmt(c.get('observed'))}</td>"
        f"<td class=num>{escape(_plain(c.get('expected')))}</td><td>{escape(str(c.get('message', '')))}</td></tr>"
        for c in ordered)
    failing = sum(str(c.get("status")) in ("fail", "warn") for c in checks)
    opened = " open" if failing or len(checks) <= 8 else ""
    return (f"<details{opened}><summary>{len(checks)} check(s), {failing} failing or warning</summary>"
            "<table><tr><th>status</th><th>check</th><th>observed</th><th>expected</th><th>message</th></tr>"
            f"{rows}</table></details>")


def _outputs(outputs: dict[str, Any]) -> str:
    if not outputs:
        return ""
    rows = "".join(f"<tr><td><code>{escape(str(k))}</code></td><td><code>{escape(str(v))}</code></td></tr>"
                   for k, v in outputs.items())
    return f"<h3>Outputs</h3><table><tr><th>output</th><th>value</th></tr>{rows}</table>"


def _fmt(value: Any, *, signed: bool = False) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:+.4g}" if signed else f"{value:.4g}"
    return escape(str(value))


def _plain(value: Any) -> str:
    return "" if value is None else str(value)
