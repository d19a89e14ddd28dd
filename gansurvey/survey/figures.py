"""Figures of the literature: cost reduction against quality change per benchmark, and family coverage.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so saving from
the command line needs no display and leaves no global state; notebooks show them with ``display(fig)``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from gansurvey.checks import GanSurveyError
from gansurvey.survey.literature import LITERATURE_FAMILIES, family_label
from gansurvey.survey.tables import benchmark_title, benchmarks


def tradeoff_points(frame: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """The compressed rows of ``benchmark`` that have both a MACs reduction and a quality change."""
    rows = frame[(frame["benchmark"] == benchmark) & (frame["role"] == "compressed")]
    rows = rows[rows["macs_x"].notna() & rows["quality_change_rel"].notna()]
    return rows.assign(
        family=rows["families"].map(family_label),
        quality_pct=100 * rows["quality_change_rel"],
    )


def plotted_benchmarks(frame: pd.DataFrame) -> list[str]:
    """Benchmarks with at least one point to plot."""
    return [b for b in benchmarks(frame) if not tradeoff_points(frame, b).empty]


def _palette(frame: pd.DataFrame) -> dict[str, tuple]:
    """One colour per family combination, the same in every panel."""
    labels = sorted({family_label(f) for f in frame.loc[frame["role"] == "compressed", "families"]})
    return dict(zip(labels, sns.color_palette("tab10", n_colors=max(len(labels), 1)), strict=False))


def draw_tradeoff(ax, frame: pd.DataFrame, benchmark: str, palette: dict | None = None) -> None:
    """Scatter MACs reduction (log x) against relative quality change, coloured by family, one marker per
    protocol; zero is the baseline's quality."""
    points = tradeoff_points(frame, benchmark)
    if points.empty:
        raise GanSurveyError(
            f"benchmark {benchmark!r} has no row with both a MACs reduction and a quality change; "
            f"plottable: {', '.join(plotted_benchmarks(frame))}"
        )
    sns.scatterplot(
        data=points,
        x="macs_x",
        y="quality_pct",
        hue="family",
        style="protocol",
        palette=palette or _palette(frame),
        s=70,
        ax=ax,
    )
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    times = FuncFormatter(lambda v, _: f"{v:g}×")
    if points["macs_x"].max() >= 2 * points["macs_x"].min():
        # 1-2-5 ticks read well on a log axis that spans anything from 2x to several decades
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(times)
    several_metrics = points["metric"].nunique() > 1
    for row in points.itertuples():
        label = row.method if len(row.method) <= 28 else row.method[:26] + "…"
        label += f" [{row.metric}]" if several_metrics else ""
        ax.annotate(
            label + (" (~)" if row.approx_any else ""),
            (row.macs_x, row.quality_pct),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=7,
        )
    metrics = ", ".join(points["metric"].unique())
    ax.set_xlabel(f"MACs reduction vs baseline (×{', log scale' if ax.get_xscale() == 'log' else ''})")
    ax.set_ylabel(f"quality change vs baseline, % ({metrics}; + = better)")
    ax.set_title(benchmark_title(frame, benchmark), fontsize=9)
    # outside the axes, so no point is hidden; fixed margins are much faster to save than a layout engine
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def tradeoff_figure(frame: pd.DataFrame, benchmark: str) -> Figure:
    """One benchmark's trade-off plot."""
    fig = Figure(figsize=(9, 5))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.09, right=0.68, bottom=0.11, top=0.92)
    draw_tradeoff(fig.add_subplot(), frame, benchmark)
    return fig


def tradeoff_grid(frame: pd.DataFrame, ncols: int = 2) -> Figure:
    """All plottable benchmarks side by side, with one colour per family across panels."""
    names = plotted_benchmarks(frame)
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(7.5 * ncols, 4.2 * nrows))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.05, right=0.88, bottom=0.06, top=0.96, wspace=0.75, hspace=0.35)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    palette = _palette(frame)
    for ax, name in zip(axes, names, strict=False):
        draw_tradeoff(ax, frame, name, palette)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return fig


def matrix_heatmap(matrix: pd.DataFrame) -> Figure:
    """The works-by-family matrix as a heat map; post-survey works are labelled so."""
    shown = matrix[list(LITERATURE_FAMILIES)].astype(int)
    shown.index = [
        w if p == "pre-survey" else f"{w} [post-survey]"
        for w, p in zip(matrix.index, matrix["period"], strict=True)
    ]
    fig = Figure(figsize=(9, 0.3 * len(shown) + 1.6))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.45, right=0.98, bottom=1.0 / (0.3 * len(shown) + 1.6), top=0.95)
    ax = fig.add_subplot()
    sns.heatmap(
        shown,
        cbar=False,
        cmap="Blues",
        linewidths=0.5,
        linecolor="white",
        ax=ax,
        vmin=0,
        vmax=1,
    )
    totals = shown.sum()
    ax.set_xticklabels([f"{f}\n({totals[f]} works)" for f in shown.columns], fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Compression families used by each work (dark = used)", fontsize=10)
    return fig


def png_bytes(fig: Figure, dpi: int = 120) -> bytes:
    """The figure as PNG bytes (Agg), for atomic writing."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
