"""Plots for the reports, drawn with matplotlib (Agg, no display) and embedded as PNG data URIs.

Captions: the per-image CIDEr-D histogram, generated caption length against the mean reference
length, the most frequent generated words, and vocabulary use as LRCN discusses it (Donahue et al.,
Sec. 5.2: the share of the annotators' vocabulary the model ever generates; frequent reference words
such as "lady" or "guy" that it never says). Runs: loss and validation metrics per epoch. Activity:
the row-normalised confusion matrix and per-class accuracy.
"""
from __future__ import annotations

import base64
import io
from collections import Counter

import numpy as np

from ..metrics.stats import normalise

DPI = 80


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def fig_uri(fig) -> str:
    """A matplotlib figure -> a PNG data URI (the figure is closed)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def cider_histogram(values: list[float]) -> str:
    """Per-image CIDEr-D scores -> histogram with the mean marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    v = np.asarray(values, dtype=float)
    ax.hist(v, bins=min(40, max(5, len(v) // 10)), color="#4a7ab5")
    ax.axvline(v.mean(), color="#c33", lw=1.5, label=f"mean {v.mean():.3f}")
    ax.set(xlabel="CIDEr-D per image", ylabel="images", title=f"CIDEr-D over {len(v)} images")
    ax.legend()
    return fig_uri(fig)


def length_scatter(gen_len: list[int], ref_len: list[float]) -> str:
    """Generated length against mean reference length per image (jittered), with y = x."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rng = np.random.default_rng(0)
    g = np.asarray(gen_len, float) + rng.uniform(-0.25, 0.25, len(gen_len))
    r = np.asarray(ref_len, float)
    ax.scatter(r, g, s=6, alpha=0.35, color="#4a7ab5", linewidths=0)
    hi = max(r.max(initial=1), g.max(initial=1)) + 1
    ax.plot([0, hi], [0, hi], color="#999", lw=1, label="same length")
    ax.set(xlabel="mean reference length (words)", ylabel="generated length (words)",
           title=f"length: generated {np.mean(gen_len):.1f}, references {r.mean():.1f}")
    ax.legend(loc="upper left")
    return fig_uri(fig)


def word_plots(generated: list[str], references: list[str], top: int = 20) -> str:
    """Most frequent generated words, and the most frequent reference words the model never says."""
    plt = _plt()
    gen = Counter(w for c in generated for w in normalise(c))
    ref = Counter(w for c in references for w in normalise(c))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    words, counts = zip(*gen.most_common(top)) if gen else ((), ())
    a.bar(range(len(words)), counts, color="#4a7ab5")
    a.set_xticks(range(len(words)), words, rotation=70, fontsize=8)
    a.set(title=f"most frequent generated words ({len(gen)} distinct)", ylabel="count")
    never = [(w, n) for w, n in ref.most_common() if w not in gen][:top]   # LRCN: "lady", "guy"
    b.bar(range(len(never)), [n for _, n in never], color="#999")
    b.set_xticks(range(len(never)), [w for w, _ in never], rotation=70, fontsize=8)
    used = len(set(gen) & set(ref)) / max(1, len(ref))
    b.set(title=f"frequent reference words never generated\n({used:.1%} of the reference vocabulary "
                "is generated)", ylabel="count in references")
    return fig_uri(fig)


def curves(series: dict[str, tuple[list[float], list[float]]], title: str, ylabel: str,
           mark: float | None = None) -> str:
    """Named (x, y) series over epochs on one axis; ``mark``: a vertical line (the best epoch)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, (xs, ys) in series.items():
        many = len(xs) > 30   # step-level points: a thin line, no markers
        ax.plot(xs, ys, marker=None if many else "o", ms=3, lw=0.8 if many else 1.5, label=name,
                alpha=0.6 if many else 1.0)
    if mark is not None:
        ax.axvline(mark, color="#c33", lw=1, ls="--", label=f"best epoch {mark:g}")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig_uri(fig)


def confusion(cm: np.ndarray, classes: list[str]) -> str:
    """Counts (K, K), row = true class -> the row-normalised matrix as a heat map."""
    plt = _plt()
    k = len(classes)
    side = min(12, 3 + 0.25 * k)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)  # (K, K)
    im = ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    if k <= 40:
        ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(k), classes, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class", title="confusion (rows normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig_uri(fig)


def class_accuracy(per_class: dict[str, float]) -> str:
    """{class: accuracy} -> horizontal bars, worst class at the top."""
    plt = _plt()
    items = sorted(per_class.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(5, min(14, 1 + 0.22 * len(items))))
    ax.barh(range(len(items)), [v for _, v in items], color="#4a7ab5")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=7)
    ax.set(xlim=(0, 1), xlabel="accuracy", title="per-class accuracy")
    return fig_uri(fig)
