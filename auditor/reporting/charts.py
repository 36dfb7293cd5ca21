"""Report charts drawn with matplotlib's Agg canvas (no pyplot, no display, no global state) into PNG bytes.

Charts are embedded in the PDF as PNG, not as vectors: reportlab cannot import matplotlib's PDF or SVG output
without svglib/pdfrw, which are not installed. Each figure is drawn at the size it is printed, at `CHART_DPI`,
so the printed resolution is exactly CHART_DPI (>= 150 as the issue asks) and the chart's 8 pt text matches
the report's table text.

The `data` expected by each kind (lists of equal length; None marks a missing value):
- "bar":            {"categories": [str], "values": [num], optional "lower"/"upper": [num] (error bars),
                     optional "reference": {"value": num, "label": str} (a dashed horizontal line)}
- "grouped_bar":    {"categories": [str], "series": [{"name": str, "values": [num], optional "lower"/"upper"}],
                     optional "reference"}
- "line":           {"series": [{"name": str, "x": [num], "y": [num], optional "lower"/"upper" (a band)}]}
- "roc":            {"curves": [{"name": str, "fpr": [num], "tpr": [num], optional "auc": num}]}
- "distribution_vs_target": {"categories": [str], "observed": [num], "target": [num],
                     optional "observed_label", "target_label": str}
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from auditor.reporting.formatting import format_number

if TYPE_CHECKING:
    from auditor.reporting.document import Chart

CHART_DPI = 200
# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def _check_lists(where: str, entry: dict[str, Any], keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> int:
    lengths = set()
    for key in keys + tuple(k for k in optional if k in entry):
        if key not in entry:
            raise ValueError(f"{where}: missing {key!r}")
        if not isinstance(entry[key], list):
            raise ValueError(f"{where}: {key!r} must be a list")
        lengths.add(len(entry[key]))
    if len(lengths) > 1:
        raise ValueError(f"{where}: {keys + optional} must have equal lengths, got {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _check_series(where: str, series: Any, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    if not isinstance(series, list) or not series:
        raise ValueError(f"{where}: needs a non-empty list")
    for index, entry in enumerate(series):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{where}[{index}]: needs a 'name'")
        _check_lists(f"{where}[{index}]", entry, keys, optional)


def validate_chart_data(kind: str, data: dict[str, Any]) -> None:
    """Raise ValueError when `data` does not fit `kind`, so a bad chart fails when built, not when printed."""
    where = f"{kind} chart data"
    if kind == "bar":
        _check_lists(where, data, ("categories", "values"), ("lower", "upper"))
    elif kind == "grouped_bar":
        n = _check_lists(where, data, ("categories",))
        _check_series(f"{where} series", data.get("series"), ("values",), ("lower", "upper"))
        if any(len(s["values"]) != n for s in data["series"]):
            raise ValueError(f"{where}: every series needs one value per category")
    elif kind == "line":
        _check_series(f"{where} series", data.get("series"), ("x", "y"), ("lower", "upper"))
    elif kind == "roc":
        _check_series(f"{where} curves", data.get("curves"), ("fpr", "tpr"))
    elif kind == "distribution_vs_target":
        _check_lists(where, data, ("categories", "observed", "target"))
    else:
        raise ValueError(f"unknown chart kind {kind!r}")
    reference = data.get("reference")
    if reference is not None and not (isinstance(reference, dict) and "value" in reference):
        raise ValueError(f"{where}: 'reference' must be {{'value': number, 'label': str}}")


def chart_aspect(kind: str) -> float:
    """Height / width of the printed chart; ROC curves are square so that the diagonal reads as chance."""
    return 1.0 if kind == "roc" else 0.45


def chart_width_fraction(kind: str) -> float:
    return 0.6 if kind == "roc" else 1.0


def _floats(values: list[Any]) -> list[float]:
    return [math.nan if value is None else float(value) for value in values]


def _error_bars(values: list[Any], entry: dict[str, Any]) -> list[list[float]] | None:
    if "lower" not in entry or "upper" not in entry:
        return None
    centre, lower, upper = _floats(values), _floats(entry["lower"]), _floats(entry["upper"])
    return [[max(c - lo, 0.0) for c, lo in zip(centre, lower)], [max(hi - c, 0.0) for c, hi in zip(centre, upper)]]


def _draw_reference(axes, data: dict[str, Any]) -> None:
    reference = data.get("reference")
    if reference and reference.get("value") is not None:
        axes.axhline(reference["value"], color="#444444", linestyle="--", linewidth=0.9,
                     label=reference.get("label") or None)


def _mark_missing(axes, positions: list[float], values: list[Any]) -> None:
    # A missing bar must read as "not available", not as zero.
    for position, value in zip(positions, values):
        if value is None:
            axes.annotate("n/a", (position, 0), xytext=(0, 2), textcoords="offset points", ha="center",
                          va="bottom", fontsize=6.5, color="#5A6270")


def _category_axis(axes, categories: list[str]) -> None:
    # Fixed limits: a missing (NaN) bar at either end would otherwise fall off the autoscaled axis.
    axes.set_xticks(list(range(len(categories))), categories)
    axes.set_xlim(-0.6, len(categories) - 0.4)
    axes.grid(False, axis="x")


def _draw_bar(axes, data: dict[str, Any]) -> None:
    positions = list(range(len(data["categories"])))
    axes.bar(positions, _floats(data["values"]), color=PALETTE[0], width=0.6,
             yerr=_error_bars(data["values"], data), capsize=3, error_kw={"linewidth": 0.8})
    _mark_missing(axes, positions, data["values"])
    _category_axis(axes, data["categories"])


def _draw_grouped_bar(axes, data: dict[str, Any]) -> None:
    count = len(data["series"])
    width = 0.8 / count
    for index, series in enumerate(data["series"]):
        offsets = [i - 0.4 + width * (index + 0.5) for i in range(len(data["categories"]))]
        axes.bar(offsets, _floats(series["values"]), width=width * 0.92, label=series["name"],
                 color=PALETTE[index % len(PALETTE)], yerr=_error_bars(series["values"], series), capsize=2,
                 error_kw={"linewidth": 0.8})
        _mark_missing(axes, offsets, series["values"])
    _category_axis(axes, data["categories"])


def _draw_line(axes, data: dict[str, Any]) -> None:
    for index, series in enumerate(data["series"]):
        colour = PALETTE[index % len(PALETTE)]
        x = _floats(series["x"])
        axes.plot(x, _floats(series["y"]), marker="o", markersize=3, linewidth=1.2, color=colour,
                  label=series["name"])
        if "lower" in series and "upper" in series:
            if len(x) == 1:  # a single point: an error bar, since a band of one point has no width
                axes.errorbar(x, _floats(series["y"]), yerr=_error_bars(series["y"], series), fmt="none",
                              ecolor=colour, capsize=3, linewidth=0.9)
            else:
                axes.fill_between(x, _floats(series["lower"]), _floats(series["upper"]), color=colour, alpha=0.18,
                                  linewidth=0)


def _draw_roc(axes, data: dict[str, Any]) -> None:
    axes.plot([0, 1], [0, 1], color="#888888", linestyle=":", linewidth=0.9, label="chance")
    for index, curve in enumerate(data["curves"]):
        label = curve["name"]
        if curve.get("auc") is not None:
            label = f"{label} (AUC {format_number(curve['auc'], 3)})"
        axes.plot(_floats(curve["fpr"]), _floats(curve["tpr"]), linewidth=1.3, drawstyle="default",
                  color=PALETTE[index % len(PALETTE)], label=label)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_aspect("equal")


def _draw_distribution_vs_target(axes, data: dict[str, Any]) -> None:
    positions = list(range(len(data["categories"])))
    axes.bar([p - 0.2 for p in positions], _floats(data["observed"]), width=0.38, color=PALETTE[0],
             label=data.get("observed_label") or "observed")
    axes.bar([p + 0.2 for p in positions], _floats(data["target"]), width=0.38, facecolor="white",
             edgecolor="#333333", hatch="////", linewidth=0.8, label=data.get("target_label") or "target")
    _category_axis(axes, data["categories"])


_DRAWERS = {
    "bar": _draw_bar,
    "grouped_bar": _draw_grouped_bar,
    "line": _draw_line,
    "roc": _draw_roc,
    "distribution_vs_target": _draw_distribution_vs_target,
}

_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.5,
    "axes.axisbelow": True,
    "hatch.linewidth": 0.5,
    "svg.hashsalt": "dermaudit",  # harmless for PNG; keeps any future vector output reproducible
}


def render_chart_png(chart: Chart, width_in: float, dpi: int = CHART_DPI) -> bytes:
    """The chart as PNG bytes, `width_in` inches wide at `dpi`; identical bytes for identical input."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(width_in, width_in * chart_aspect(chart.kind)), dpi=dpi)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        _DRAWERS[chart.kind](axes, chart.data)
        _draw_reference(axes, chart.data)
        axes.set_xlabel(chart.x_label)
        axes.set_ylabel(chart.y_label)
        handles = axes.get_legend_handles_labels()[0]
        if chart.kind == "roc":
            axes.legend(frameon=False, loc="lower right")
        elif chart.kind == "line" and handles:
            axes.legend(frameon=False, loc="best")
        elif handles:
            # Above the plot, in one row: bars leave no free corner to put a legend in.
            axes.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(handles),
                        borderaxespad=0.2)
        figure.tight_layout(pad=0.4)
        buffer = io.BytesIO()
        # No "Software" entry: the PNG (and so the PDF) stays byte-identical across runs.
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
