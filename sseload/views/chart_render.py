"""A chart described once (:class:`Chart`: panels of series, with titles, units and marks) and
its two renderers: a PNG by matplotlib (:func:`png`, for summary.md and pull requests) and an
interactive ECharts option (:func:`echarts_options`, for report.html: zoom, hover values).
sseload.views.charts builds the charts of a run from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sseload.record.metrics import MARK_COLOURS  # noqa: E402
from sseload.run.room import whole  # noqa: E402

MARKS = tuple(MARK_COLOURS.items())  # (stat, colour) of the percentiles marked
LINE = "#1f77b4"


@dataclass
class Series:
    """One line, step line, histogram or stacked area of a panel."""

    name: str
    x: np.ndarray
    y: np.ndarray
    kind: str = "line"  # "line", "step", "points" (markers, a line only between neighbours), "scatter"
    # (markers alone), "hist", "area"
    color: str = LINE
    right: bool = False  # on the panel's right-hand axis
    width: float | np.ndarray | None = None  # "hist": its bins' widths (x holds their left edges)


@dataclass
class Mark:
    """A vertical line across a panel: a percentile, a limit."""

    x: float
    label: str
    color: str


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    marks: list[Mark] = field(default_factory=list)
    xlog: bool = False
    ylog: bool = False
    right_label: str = ""
    note: str = ""  # said under the title: what the axis leaves out


@dataclass
class Chart:
    name: str  # its file name without .png: "ttfe"
    panels: list[Panel]


def png(chart: Chart, path: Path) -> Path:
    """The chart as a PNG (matplotlib), one panel beside the other."""
    n = len(chart.panels)
    fig, axes = plt.subplots(1, n, figsize=(11 if n < 3 else 12, 4 if n < 3 else 3.6), squeeze=False)
    for ax, panel in zip(axes[0], chart.panels, strict=True):
        twin = None
        stacked = [s for s in panel.series if s.kind == "area"]
        if stacked:
            ax.stackplot(stacked[0].x, [s.y for s in stacked], labels=[s.name for s in stacked],
                         colors=[s.color for s in stacked], step="post")
        for s in panel.series:
            target = ax
            if s.right:
                twin = twin or ax.twinx()
                target = twin
            if s.kind == "line":
                target.plot(s.x, s.y, color=s.color, label=s.name)
            elif s.kind == "step":
                target.plot(s.x, s.y, color=s.color, label=s.name, drawstyle="steps-post")
            elif s.kind == "points":
                target.plot(s.x, s.y, color=s.color, label=s.name, marker="o")
            elif s.kind == "scatter":
                target.plot(s.x, s.y, color=s.color, label=s.name, marker="o", linestyle="none")
            elif s.kind == "hist":
                target.bar(s.x, s.y, width=s.width, align="edge", color=s.color, alpha=0.8, label=s.name)
            if s.right and s.kind == "step":
                target.fill_between(s.x, s.y, color=s.color, alpha=0.15, step="post")
        for m in panel.marks:
            ax.axvline(m.x, color=m.color, linestyle="--", label=m.label)
        if panel.xlog:
            ax.set_xscale("log")
        if panel.ylog:
            ax.set_yscale("log")
        title = panel.title + (f"\n({panel.note})" if panel.note else "")
        ax.set(title=title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        if twin is not None:
            twin.set_ylabel(panel.right_label)
        if len(panel.series) > 1 or panel.marks:
            ax.legend(loc="best", fontsize=8, ncol=4 if stacked else 1)
    fig.tight_layout()
    try:  # replaced at once: a reader never sees half (a full disk: sseload.run.room.DiskFull, naming it)
        with whole(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path


def _pairs(x: np.ndarray, y: np.ndarray) -> list:
    """[[x, y], ...] for ECharts: NaN as null (a break in the line), numbers rounded for size."""
    return [[_round(a), None if b is None or b != b else _round(b)] for a, b in zip(x, y, strict=True)]


def _round(v) -> float:
    v = float(v)
    return float(f"{v:.6g}")


def echarts_options(chart: Chart) -> list[dict]:
    """The chart as ECharts options, one per panel: the same series, zoomable, values on hover."""
    out = []
    for panel in chart.panels:
        series = []
        for s in panel.series:
            item = {"name": s.name, "type": "scatter" if s.kind == "scatter" else "line", "color": s.color,
                    "showSymbol": s.kind in ("points", "scatter"),
                    "connectNulls": False, "yAxisIndex": 1 if s.right else 0}
            if s.kind == "hist":  # a histogram as a filled step line over its bins' edges
                edges = np.append(s.x, s.x[-1] + (s.width[-1] if np.ndim(s.width) else s.width)) if len(s.x) else s.x
                item.update(step="end", areaStyle={"opacity": 0.6}, showSymbol=False,
                            data=_pairs(edges, np.append(s.y, 0)) if len(s.x) else [])
            else:
                item["data"] = _pairs(s.x, s.y)
                if s.kind == "step" or s.kind == "area":
                    item["step"] = "end"
                if s.kind == "area":
                    item.update(stack="total", areaStyle={})
                if s.right and s.kind == "step":
                    item["areaStyle"] = {"opacity": 0.15}
            series.append(item)
        if panel.marks and series:
            series[0]["markLine"] = {"symbol": "none", "label": {"formatter": "{b}", "fontSize": 10},
                                     "data": [{"name": m.label, "xAxis": _round(m.x), "lineStyle": {
                                         "color": m.color, "type": "dashed"}} for m in panel.marks]}
            for m in panel.marks:  # the legend names them too
                series.append({"name": m.label, "type": "line", "color": m.color, "data": []})
        y_axes = [{"type": "log" if panel.ylog else "value", "name": panel.ylabel, "nameLocation": "middle",
                   "nameGap": 45}]
        if panel.right_label:
            y_axes.append({"type": "value", "name": panel.right_label, "nameLocation": "middle", "nameGap": 40})
        out.append({
            "title": {"text": panel.title, "subtext": panel.note, "left": "center", "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"},
            "legend": {"bottom": 0, "type": "scroll"},
            "grid": {"top": 60 if panel.note else 45, "left": 70, "right": 60 if panel.right_label else 30,
                     "bottom": 80},
            "xAxis": {"type": "log" if panel.xlog else "value", "name": panel.xlabel, "nameLocation": "middle",
                      "nameGap": 28, "scale": not panel.xlog},
            "yAxis": y_axes,
            "dataZoom": [{"type": "inside"}, {"type": "slider", "height": 14, "bottom": 28}],
            "animation": False,
            "series": series,
        })
    return out
