"""The report's plots, drawn with matplotlib as inline SVG.

Why matplotlib to SVG: the report must open anywhere with no network, so a plot is markup
inside the HTML file, not a script that fetches a library (Vega, Plotly) or an image beside
it. SVG stays sharp when zoomed and printed, and with ``svg.fonttype: none`` its text is
text (set in the browser's font) rather than glyph outlines, which keeps each plot a few
tens of kilobytes. matplotlib is already installed with MLflow, draws a whole report in
well under a second once imported, and needs no browser or JavaScript engine at build time.
Figures are made with :class:`matplotlib.figure.Figure` directly, not ``pyplot``: no GUI
backend is chosen and no global figure state is kept (``savefig(format="svg")`` uses the
SVG canvas; nothing is rasterised, so the Agg backend is never needed).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from typing import TYPE_CHECKING, Any

from mlcicd.errors import ToolMissingError
from mlcicd.reporting.extract import Curves, FairnessBars, Histogram, Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REFERENCE, CURRENT = "#8c959f", "#d4690b"
MODEL_COLORS = {"candidate": "#0969da", "champion": "#8c959f"}
SIDE_COLORS = {"canary": "#d4690b", "stable": "#0969da"}
DECISION_COLORS = {"promote": "#1a7f37", "rollback": "#cf222e", "inconclusive": "#9a6700"}
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: small files, crisp and searchable
    "svg.hashsalt": "mlci",  # stable element ids: the same report twice gives the same bytes
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d0d7de",
    "grid.linewidth": 0.6,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titley": 1.02,  # a fixed title position: placing it above the tick labels measures them all again
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_ids = count()


@contextmanager
def drawing() -> Iterator[None]:
    """The report's matplotlib settings, for the figures drawn inside (a user's rcParams stay untouched)."""
    try:
        import matplotlib
    except ImportError:
        raise ToolMissingError("matplotlib is not installed: the report draws its plots with it",
                               where="mlci report",
                               fix="pip install 'ml-cicd[report]' (MLflow brings it too)") from None

    style: Any = STYLE  # a plain dict of rcParams; matplotlib's stubs want its own RcParams type
    with matplotlib.rc_context(style):
        yield


def _figure(width: float, height: float, *, left: float = 0.75, right: float = 0.2, top: float = 0.4,
            bottom: float = 0.55, wspace: float = 0.35, hspace: float = 0.6) -> Figure:
    """A figure with fixed margins (inches; ``wspace``/``hspace`` as fractions of a panel).

    matplotlib's constrained layout would fit the margins to the labels, but it draws every
    figure twice to measure them and doubled the report's time; the plots here have labels of
    a known size, so fixed margins do.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace, hspace=hspace)
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to inline: no XML prologue, element ids unique in the page.

    Every figure names its clip paths and markers with ids; two figures in one page would
    share them, so each gets its own prefix.
    """
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    prefix = f"f{next(_ids)}-"
    text = re.sub(r'\bid="', f'id="{prefix}', text)
    text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
    return text


def histogram_grid(items: list[Histogram], columns: int = 3) -> str:
    """One small histogram per drifted feature: the reference's shares against the current data's."""
    rows = math.ceil(len(items) / columns)
    fig = _figure(11, 2.5 * rows + 0.2, top=0.45, bottom=0.75, hspace=0.75, wspace=0.3)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, h in zip(axes, items, strict=False):
        if h.kind == "numeric":
            ax.stairs(h.reference, h.edges, fill=True, color=REFERENCE, alpha=0.45, label="reference")
            ax.stairs(h.current, h.edges, color=CURRENT, linewidth=1.6, label=h.dataset)
        else:
            import numpy as np

            x = np.arange(len(h.categories))
            ax.bar(x - 0.2, h.reference, width=0.4, color=REFERENCE, label="reference")
            ax.bar(x + 0.2, h.current, width=0.4, color=CURRENT, label=h.dataset)
            ax.set_xticks(x, [_short(c) for c in h.categories], rotation=30 if len(x) > 4 else 0,
                          ha="right" if len(x) > 4 else "center")
        if h.kind == "numeric":
            _compact_ticks(ax.xaxis)
        ax.set_title(f"{h.feature} ({h.dataset})", loc="left")
        ax.set_xlabel(h.caption, fontsize=7.5, color="#57606a")
        ax.set_ylabel("share of rows")
        ax.legend(loc="upper right")
    for ax in axes[len(items):]:
        ax.set_visible(False)
    return to_svg(fig)


def _compact_ticks(axis: Any) -> None:
    """At most five ticks, large numbers as 40k / 1.2M: a row of five-digit labels runs together."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    def short(value: float, _pos: int) -> str:
        for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= 10 * size:
                return f"{value / size:g}{suffix}"
        return f"{value:g}"

    axis.set_major_locator(MaxNLocator(5))
    axis.set_major_formatter(FuncFormatter(short))


def roc_pr(c: Curves) -> str:
    fig = _figure(9, 3.6)
    roc_ax, pr_ax = fig.subplots(1, 2)
    roc_ax.plot([0, 1], [0, 1], color="#d0d7de", linestyle="--", linewidth=1)
    for name, m in c.models.items():
        color = MODEL_COLORS.get(name, "#6e7781")
        roc_ax.plot(m["roc"]["fpr"], m["roc"]["tpr"], color=color, linewidth=1.8,
                    label=f"{name} (AUC {m['roc'].get('auc', float('nan')):.3f})")
        pr_ax.plot(m["pr"]["recall"], m["pr"]["precision"], color=color, linewidth=1.8,
                   label=f"{name} (AP {m['pr'].get('average_precision', float('nan')):.3f})")
    base = next((m["pr"].get("base_rate") for m in c.models.values() if m["pr"].get("base_rate") is not None), None)
    if base is not None:
        pr_ax.axhline(base, color="#d0d7de", linestyle="--", linewidth=1)
    _frame(roc_ax, "ROC curve", "false-positive rate", "true-positive rate")
    _frame(pr_ax, "Precision-recall curve", "recall", "precision")
    return to_svg(fig)


def _frame(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, loc="left")
    ax.set_aspect("equal")
    ax.legend(loc="lower right" if title.startswith("ROC") else "lower left")


def residuals(c: Curves) -> str:
    fig = _figure(9, 3.6)
    ax = fig.subplots()
    ax.axhline(0, color="#57606a", linewidth=1)
    for name, m in c.models.items():
        ax.scatter(m["predicted"], m["residual"], s=9, alpha=0.55, color=MODEL_COLORS.get(name, "#6e7781"),
                   label=name, linewidths=0)
    ax.set(xlabel="predicted", ylabel="residual (truth - predicted)")
    ax.set_title("Residuals", loc="left")
    ax.legend(loc="upper right")
    return to_svg(fig)


def fairness(b: FairnessBars) -> str:
    """One panel per metric: a bar per group with its bootstrap bounds as error bars."""
    import numpy as np

    fig = _figure(min(2.7 * len(b.metrics) + 0.6, 11), 2.9, bottom=0.75, wspace=0.3)
    axes = np.atleast_1d(fig.subplots(1, len(b.metrics)))
    x = np.arange(len(b.groups))
    for ax, metric in zip(axes, b.metrics, strict=True):
        value = np.array([np.nan if v is None else v for v in b.values[metric]], dtype=float)
        low = np.array([np.nan if v is None else v for v in b.lower[metric]], dtype=float)
        high = np.array([np.nan if v is None else v for v in b.upper[metric]], dtype=float)
        ax.bar(x, np.nan_to_num(value), color="#0969da", alpha=0.8, width=0.6)
        # A bootstrap bound can sit on the wrong side of the point estimate on skewed data: clip to 0.
        has = np.isfinite(low) & np.isfinite(high) & np.isfinite(value)
        if has.any():
            err = np.vstack([np.clip(value - low, 0, None), np.clip(high - value, 0, None)])[:, has]
            ax.errorbar(x[has], value[has], yerr=err, fmt="none", ecolor="#24292f", capsize=4, linewidth=1.2)
        ax.set_xticks(x, [_short(g, 14) for g in b.groups], rotation=30 if len(x) > 3 else 0,
                      ha="right" if len(x) > 3 else "center")
        ax.set_title(metric.replace("_", " "), loc="left")
        if metric not in ("rmse", "mae"):
            ax.set_ylim(0, max(1.0, float(np.nanmax(np.r_[high, value, 0.0]))) * 1.02)
    return to_svg(fig)


def timeline(t: Timeline) -> str:
    """Traffic weight, error rate and latency of both versions over the analysis, looks and decision marked."""
    import numpy as np

    panels = 3 if t.latency else 2
    fig = _figure(11, 1.9 * panels + 0.8, hspace=0.25, right=0.3)
    axes = fig.subplots(panels, 1, sharex=True)
    times = np.asarray(t.t, dtype=float)
    weight_ax, error_ax = axes[0], axes[1]
    # A look's weight held during the interval that ends at it, so the step is drawn before the look.
    weight_ax.step(np.r_[0.0, times], np.r_[t.weight[:1], t.weight], where="pre", color=SIDE_COLORS["canary"],
                   linewidth=1.8)
    weight_ax.set(ylabel="canary weight %", ylim=(0, max(100.0, *t.weight) * 1.05))
    weight_ax.set_title("Canary timeline", loc="left")
    for side, rates in (("canary", t.canary_error_rate), ("stable", t.stable_error_rate)):
        pct = np.array([np.nan if r is None else 100 * r for r in rates], dtype=float)
        if np.isfinite(pct).any():
            error_ax.plot(times, pct, marker="o", markersize=3.5, color=SIDE_COLORS[side], linewidth=1.5,
                          label=_side_label(t, side))
    error_ax.set(ylabel="error rate % (cumulative)")
    error_ax.set_ylim(bottom=0)
    if error_ax.get_legend_handles_labels()[0]:  # no read of either side succeeded: no legend to show
        error_ax.legend(loc="upper left")
    if t.latency:
        lat_ax = axes[2]
        styles = ["-", "--", ":", "-."]
        for side, by_q in t.latency.items():
            for i, (label, values) in enumerate(by_q.items()):
                series = np.array([np.nan if v is None else v for v in values], dtype=float)
                lat_ax.plot(times, series, linestyle=styles[i % len(styles)], marker="o", markersize=3,
                            color=SIDE_COLORS[side], linewidth=1.4, label=f"{_side_label(t, side)} {label}")
        lat_ax.set(ylabel="latency ms (per interval)")
        lat_ax.set_ylim(bottom=0)
        lat_ax.legend(loc="upper left", ncols=2)
    for ax in axes:
        for x in times:  # every look: where the judge decided whether to go on
            ax.axvline(x, color="#d0d7de", linewidth=0.6, zorder=0)
    # The decision is the stage's (a promote on an earlier step only moved traffic on; a promote without
    # enough requests became inconclusive), taken at the last look.
    color = DECISION_COLORS.get(t.decision, "#57606a")
    for ax in axes:
        ax.axvline(times[-1], color=color, linewidth=1.8)
    weight_ax.annotate(t.decision, (times[-1], 1.0), xycoords=("data", "axes fraction"), xytext=(-4, -4),
                       textcoords="offset points", ha="right", va="top", color=color, fontweight="bold")
    axes[-1].set_xlabel("seconds since the analysis began (a dot per look)")
    axes[-1].set_xlim(0, max(float(times.max()), 1.0) * 1.03)
    return to_svg(fig)


def _side_label(t: Timeline, side: str) -> str:
    version = t.versions.get(side)
    return f"{side} v{version}" if version else side


def _short(text: Any, limit: int = 16) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
