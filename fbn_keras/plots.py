"""Figures of FaceBehaviorNet's predictions: one face (crop, VA circle, expression and AU bars), one video (time series).

Drawn on matplotlib's Agg canvas directly (no pyplot, no global backend
switch), so they work headless and from threads. Each function returns the
Figure and writes a PNG when given a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from fbn_keras import taxonomy

_EXPR_COLOURS = ("#7f7f7f", "#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e")


def _check(name: str, values, shape: tuple) -> np.ndarray:
    arr = np.asarray(values, np.float32)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}. Received: shape={arr.shape}")
    return arr


def _save(fig: Figure, path: Optional[str | Path]) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(fig)
        fig.savefig(str(path), dpi=fig.dpi)
    return fig


def draw_va_circle(ax, valence: float, arousal: float) -> None:
    """The valence-arousal disc with its quadrant axes and one point (clipped to the square [-1, 1]²)."""
    ax.add_patch(Circle((0, 0), 1.0, fill=False, color="0.4", lw=1))
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    v, a = float(np.clip(valence, -1, 1)), float(np.clip(arousal, -1, 1))
    ax.scatter([v], [a], s=60, color="#d62728", zorder=3)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(f"V {valence:+.2f}  A {arousal:+.2f}", fontsize=9)


def plot_face(crop: np.ndarray, va: Sequence[float], expr_probs: Sequence[float], au_probs: Sequence[float],
              title: str = "", path: Optional[str | Path] = None, au_threshold: float = 0.5) -> Figure:
    """One face: the aligned crop, its VA point on the circle, the 7 expression and the 17 AU probabilities."""
    va = _check("va", va, (2,))
    expr = _check("expr_probs", expr_probs, (taxonomy.NUM_EXPRESSIONS,))
    au = _check("au_probs", au_probs, (taxonomy.NUM_AUS,))
    fig = Figure(figsize=(12, 3.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, 4, gridspec_kw=dict(width_ratios=[1, 1, 1.3, 2]))

    axes[0].imshow(np.asarray(crop))
    axes[0].set_axis_off()
    axes[0].set_title(title, fontsize=9)

    draw_va_circle(axes[1], float(va[0]), float(va[1]))

    names = list(taxonomy.EXPRESSIONS)
    axes[2].barh(names, expr, color=_EXPR_COLOURS)
    axes[2].set_xlim(0, 1)
    axes[2].invert_yaxis()
    axes[2].set_title(f"expression: {names[int(np.argmax(expr))]}", fontsize=9)
    axes[2].tick_params(labelsize=8)

    au_labels = taxonomy.au_names()
    axes[3].bar(au_labels, au, color=np.where(au >= au_threshold, "#1f77b4", "#aec7e8"))
    axes[3].axhline(au_threshold, color="0.3", lw=0.8, ls="--")
    axes[3].set_ylim(0, 1)
    axes[3].set_title("action units", fontsize=9)
    axes[3].tick_params(axis="x", labelrotation=90, labelsize=7)
    return _save(fig, path)


def plot_video(times: Sequence[float], va, expr_probs, au_probs, title: str = "",
               path: Optional[str | Path] = None) -> Figure:
    """One face track over a video: valence and arousal, the 7 expression probabilities, and an AU heat map."""
    t = np.asarray(times, np.float32).reshape(-1)
    n = len(t)
    va = _check("va", va, (n, 2))
    expr = _check("expr_probs", expr_probs, (n, taxonomy.NUM_EXPRESSIONS))
    au = _check("au_probs", au_probs, (n, taxonomy.NUM_AUS))
    fig = Figure(figsize=(11, 7.5), dpi=100, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw=dict(height_ratios=[1, 1, 1.4]))

    axes[0].plot(t, va[:, 0], label="valence", marker=".")
    axes[0].plot(t, va[:, 1], label="arousal", marker=".")
    axes[0].axhline(0, color="0.7", lw=0.8)
    axes[0].set_ylim(-1.05, 1.05)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title(title, fontsize=10)

    for k, name in enumerate(taxonomy.EXPRESSIONS):
        axes[1].plot(t, expr[:, k], label=name, color=_EXPR_COLOURS[k], marker=".")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("p(expression)")
    axes[1].legend(loc="upper right", fontsize=7, ncol=4)

    # Each frame spans from its time to the next one's, so uneven sampling shows as it is.
    step = float(np.median(np.diff(t))) if n > 1 else 1.0
    edges = np.append(t, t[-1] + step) if n else np.array([0.0, 1.0])
    image = axes[2].pcolormesh(edges, np.arange(taxonomy.NUM_AUS + 1), au.T if n else np.zeros((17, 1)),
                               vmin=0, vmax=1, cmap="viridis", shading="flat")
    axes[2].set_yticks(np.arange(taxonomy.NUM_AUS) + 0.5, taxonomy.au_names(), fontsize=7)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("time (s)")
    # The colour bar takes its width from all three rows, so their time axes stay aligned.
    fig.colorbar(image, ax=list(axes), label="p(AU)", pad=0.01, shrink=0.35, anchor=(0.0, 0.0))
    return _save(fig, path)
