"""Figures the notebooks share: image grids, toy scatters, quality-versus-cost trade-offs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def image_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None):
    """Show images in [-1, 1] (N, 1 or 3, H, W) as one grid; returns the axes."""
    images = images.detach().cpu().clamp(-1, 1).add(1).div(2)
    n = len(images)
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    c, h, w = images.shape[1:]
    canvas = torch.ones(c, rows * (h + 1) + 1, ncol * (w + 1) + 1)
    for i, img in enumerate(images):
        r, q = divmod(i, ncol)
        canvas[:, 1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = img
    if ax is None:
        _, ax = plt.subplots(figsize=(ncol * 0.6, rows * 0.6))
    ax.imshow(canvas.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def sample_grids(samples: dict[tuple[str, str], torch.Tensor], benchmarks: list[str], panel_width: float = 3.2,
                 nrow: int = 8) -> list:
    """One row of panels per benchmark: ``samples`` maps (benchmark, label) to what the sweeps generated; labels
    keep their insertion order. Images (N, C, H, W) are shown as :func:`image_grid`, the 2-D toy's points (N, 2)
    as :func:`scatter_samples` (every benchmark a notebook accepts has its samples shown, so none fails here). A
    benchmark with no samples gets no row; a sample of any other shape is refused, naming it. Returns the
    figures."""
    figures = []
    for name in benchmarks:
        labels = [label for (bench, label) in samples if bench == name]
        if not labels:
            continue
        for label in labels:
            grid = samples[(name, label)]
            if not (grid.dim() == 4 or (grid.dim() == 2 and grid.shape[1] == 2)):
                raise ValueError(f"samples of {name}: {label} have shape {tuple(grid.shape)}; sample_grids shows "
                                 "images (N, C, H, W) or 2-D points (N, 2)")
        points = all(samples[(name, label)].dim() == 2 for label in labels)
        height = panel_width if points else 1.9  # square panels keep the plane's aspect
        fig, axes = plt.subplots(1, len(labels), figsize=(panel_width * len(labels), height), squeeze=False)
        for ax, label in zip(axes[0], labels, strict=True):
            grid, title = samples[(name, label)], f"{name}: {label}"
            if grid.dim() == 4:
                image_grid(grid, nrow=nrow, title=title, ax=ax)
            else:
                scatter_samples(grid.detach().cpu(), title=title, ax=ax)
                ax.get_legend().remove()  # one colour, nothing to tell apart
        figures.append(fig)
    return figures


def scatter_samples(fake: torch.Tensor, real: torch.Tensor | None = None, centers: torch.Tensor | None = None,
                    title: str | None = None, ax=None):
    """2-D samples of a toy GAN over the real data and the mixture's centres."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    if real is not None:
        ax.scatter(*real.detach().cpu().T.numpy(), s=2, c="0.75", label="real")
    ax.scatter(*fake.detach().cpu().T.numpy(), s=2, c="C3", label="generated")
    if centers is not None:
        ax.scatter(*centers.T.numpy(), marker="x", c="k", s=30, label="modes")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right", markerscale=3)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def tradeoff(records: pd.DataFrame, x: str, y: str | None = None, hue: str = "technique",
             title: str | None = None, ax=None, logx: bool = True):
    """Quality (the benchmark's primary metric by default) against a cost column, one line per ``hue``."""
    y = y or "primary_value"
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, group in records.groupby(hue, sort=False):
        group = group.sort_values(x)
        means = group.groupby(x, sort=True)[y].mean()
        ax.plot(means.index, means.values, marker="o", ms=4, label=str(name))
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    metric = records["primary_metric"].iloc[0] if y == "primary_value" and len(records) else y
    better = ""
    if y == "primary_value" and len(records):
        better = " (higher is better)" if bool(records["higher_is_better"].iloc[0]) else " (lower is better)"
    ax.set_ylabel(f"{metric}{better}")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def stacked_bars(frame: pd.DataFrame, index: str, columns: list[str], title: str | None = None, ax=None,
                 ylabel: str = ""):
    """Stacked bars of ``columns`` per ``index`` value (e.g. energy components per layer)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(frame)), 3.2))
    bottom = np.zeros(len(frame))
    for col in columns:
        ax.bar(frame[index].astype(str), frame[col].to_numpy(), bottom=bottom, label=col)
        bottom += frame[col].to_numpy()
    ax.tick_params(axis="x", rotation=75, labelsize=7)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def quality_curves(curves: dict[str, pd.DataFrame], metric: str | dict[str, str]):
    """One panel per curve: ``metric`` (or ``metric[name]``) against the training ``step``, e.g. the teachers'
    quality along their training (``experiments.teacher_curves``). Returns the figure."""
    fig, axes = plt.subplots(1, max(len(curves), 1), figsize=(4.2 * max(len(curves), 1), 3.0), squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items(), strict=False):  # no curve: one empty panel
        column = metric[name] if isinstance(metric, dict) else metric
        ax.plot(curve["step"], curve[column], marker="o", ms=3)
        ax.set_xlabel("training step")
        ax.set_ylabel(column)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig
