"""The three pictures of a training run: curves, confusion matrix, sample predictions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SAMPLE_GRID = (5, 8)
MISTAKE_COLOR = "#d62728"
NAMES = [str(d) for d in range(10)] + ["mark", "part"]  # the model's twelve classes


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Accuracy and loss per epoch, training vs validation."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
        ax.plot(epochs, history[key], "o-", label="training")
        ax.plot(epochs, history[f"val_{key}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylim(top=1.0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> None:
    """Counts of true vs predicted class on the test split (digits read as a mark or a part
    of a digit in the last columns), errors visible on a log scale."""
    cols = max(10, int(y_pred.max()) + 1)
    counts = np.zeros((10, cols), np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    fig, ax = plt.subplots(figsize=(6.5 + 0.5 * (cols - 10), 6), dpi=100)
    ax.imshow(np.log1p(counts), cmap="Blues")
    for t in range(10):
        for p in range(cols):
            if counts[t, p]:
                color = "white" if t == p else ("black" if counts[t, p] < 5 else MISTAKE_COLOR)
                ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(cols), NAMES[:cols])
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    accuracy = np.trace(counts) / counts.sum()
    ax.set_title(f"Confusion matrix: {accuracy:.2%} of {counts.sum()} test images")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def samples(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
            confidence: np.ndarray, path: Path) -> None:
    """A grid of test images, predicted vs actual; the mistakes (shown first) in red."""
    rows, cols = SAMPLE_GRID
    mistakes = np.flatnonzero(y_true != y_pred)[: rows * cols // 2]
    correct = np.flatnonzero(y_true == y_pred)[: rows * cols - len(mistakes)]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5), dpi=100)
    for ax, i in zip(axes.flat, np.concatenate([mistakes, correct]), strict=False):
        wrong = y_true[i] != y_pred[i]
        ax.imshow(images[i], cmap="gray")
        ax.set_title(f"{NAMES[y_pred[i]]} ({confidence[i]:.0%}) / {y_true[i]}", fontsize=8,
                     color=MISTAKE_COLOR if wrong else "black")
        if wrong:
            for spine in ax.spines.values():
                spine.set_color(MISTAKE_COLOR)
                spine.set_linewidth(2)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(mistakes) + len(correct):]:
        ax.axis("off")
    fig.suptitle("predicted (confidence) / actual — mistakes in red", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
