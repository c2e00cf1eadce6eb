"""Report charts, drawn with matplotlib's Agg canvas into PNG bytes.

A :class:`~matplotlib.figure.Figure` on an Agg canvas is used directly rather than
``pyplot``: it keeps no global state, so reports can be drawn from worker threads
and no display is ever needed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["bar_chart"]

# Colour-blind-safe (Okabe-Ito) by default; some series have a meaning of their own.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SERIES_COLOURS = {"completed": "#009E73", "failed": "#D55E00"}
_DPI = 110


def bar_chart(
    frame: pd.DataFrame,
    *,
    title: str,
    ylabel: str,
    stacked: bool = False,
    horizontal: bool = False,
    colours: Mapping[str, str] | None = None,
) -> bytes:
    """Draw ``frame`` as bars: one group per index label, one bar (or layer) per column.

    Args:
        frame: numbers; the index labels the groups (days, lists), the columns the series.
        title: the chart's title.
        ylabel: the value axis label.
        stacked: stack the series instead of placing them side by side.
        horizontal: draw horizontal bars (long labels such as list names).
        colours: series name -> colour, over the defaults.

    Returns:
        The chart as PNG bytes. An empty frame draws an empty chart that says so.
    """
    chosen = {**SERIES_COLOURS, **(colours or {})}
    figure = Figure(figsize=(9, 4.2), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [str(label) for label in frame.index]
    positions = list(range(len(labels)))
    series = list(frame.columns)
    if not labels or not series:
        axes.text(0.5, 0.5, "no data in this period", ha="center", va="center", color="#666666")
        axes.set_xticks([])
        axes.set_yticks([])
    else:
        width = 0.8 if stacked else 0.8 / len(series)
        base = [0.0] * len(labels)
        for number, name in enumerate(series):
            values = [float(v) for v in frame[name].fillna(0)]
            colour = chosen.get(str(name), PALETTE[number % len(PALETTE)])
            offset = 0.0 if stacked else (number - (len(series) - 1) / 2) * width
            where = [p + offset for p in positions]
            if horizontal:
                axes.barh(where, values, height=width, left=base, label=str(name), color=colour)
            else:
                axes.bar(where, values, width=width, bottom=base, label=str(name), color=colour)
            if stacked:
                base = [b + v for b, v in zip(base, values, strict=True)]
        if horizontal:
            axes.set_yticks(positions, labels)
            axes.invert_yaxis()
            axes.set_xlabel(ylabel)
            axes.grid(axis="x", alpha=0.3)
        else:
            axes.set_xticks(
                positions,
                labels,
                rotation=45 if len(labels) > 7 else 0,
                ha="right" if len(labels) > 7 else "center",
            )
            axes.set_ylabel(ylabel)
            axes.grid(axis="y", alpha=0.3)
        axes.set_axisbelow(True)
        axes.legend(fontsize="small", frameon=False, loc="best")
    axes.set_title(title)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
