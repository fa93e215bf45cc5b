"""The figures of a model card: speed against accuracy (as the paper's Fig. 1) and the teacher-fallback curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def speed_accuracy_plot(points: Sequence[tuple[str, float, float]], path: str | Path, title: str) -> Path:
    """Scatter of (name, texts per second, accuracy) on a log-speed axis, written as a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, speed, accuracy in points:
        ax.scatter([speed], [100 * accuracy], s=60)
        ax.annotate(name, (speed, 100 * accuracy), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("throughput (texts/s, log scale, tokenization included)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    speeds = [p[1] for p in points]
    ax.set_xlim(min(speeds) / 2, max(speeds) * 4)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def cascade_plot(
    rates: Sequence[float], accuracies: Sequence[float], chosen: tuple[float, float], teacher: float, path: str | Path
) -> Path:
    """Accuracy of the student + teacher cascade against the share of texts sent to the teacher, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot([100 * r for r in rates], [100 * a for a in accuracies], label="cascade")
    ax.axhline(100 * teacher, linestyle="--", color="gray", label="teacher alone")
    ax.scatter([100 * chosen[0]], [100 * chosen[1]], color="red", zorder=3, label="chosen threshold")
    ax.set_xlabel("texts sent to the teacher (%)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
