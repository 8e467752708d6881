"""The report figures every pipeline shares: a confusion matrix and a best / median / worst example
grid. Each writes one PNG atomically (matplotlib's Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from crackscope.io import atomic_savefig

# one row of an example grid: (image (H, W), panel title, colormap)
Panel = tuple[np.ndarray, str, str]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(
    confusion,
    names: Sequence[str],
    path: str | Path,
    title: str = "",
    *,
    xlabel: str = "predicted",
    ylabel: str = "true",
    colorbar: bool = False,
    hide_zeros: bool = False,
    fontsize: int = 8,
    dpi: int = 110,
) -> Path:
    """A (C, C) count matrix (rows true, columns predicted), each cell shaded by its fraction of the
    row (the class's recall on the diagonal) and labelled with its count."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    side = 1.2 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(side + (2.0 if colorbar else 1.0), side), constrained_layout=True)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        if v or not hide_zeros:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(len(names)), names, fontsize=fontsize)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if colorbar:
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=f"fraction of the {ylabel} label")
    try:
        return atomic_savefig(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


def plot_best_median_worst(
    score,
    panels: Callable[[int], list[Panel]],
    caption: Callable[[str, int], str],
    path: str | Path,
    title: str = "",
    *,
    origin: str = "upper",
    panel_size: float = 2.6,
) -> Path:
    """Rows: the samples with the best, the median and the worst ``score``; columns: ``panels(i)``
    of sample ``i`` (each image shown on [0, 1]). ``caption(label, i)`` titles a row's first panel."""
    plt = _pyplot()
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable").tolist()
    picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
    n_cols = len(panels(picks[0][1]))
    fig, axes = plt.subplots(
        3, n_cols, figsize=(panel_size * n_cols + 0.6, panel_size * 3 + 0.6), constrained_layout=True, squeeze=False
    )
    for row, (label, i) in enumerate(picks):
        for col, (img, name, cmap) in enumerate(panels(i)):
            ax = axes[row, col]
            ax.imshow(np.asarray(img, dtype=np.float32), origin=origin, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{caption(label, i)}: {name}" if col == 0 else name, fontsize=9)
    fig.suptitle(title)
    try:
        return atomic_savefig(fig, path, dpi=110)
    finally:
        plt.close(fig)
