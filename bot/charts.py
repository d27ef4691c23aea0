"""Pictures for /stats: the active model's own PNGs, drawn from its history when missing.

matplotlib is imported only when something has to be drawn, so the serving process starts
fast and stays small.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path

from bot.i18n import Translator

log = logging.getLogger(__name__)

MODEL_CHARTS = ("training_curves.png", "confusion_matrix.png")


def stats_pictures(model_dir: Path, latencies_ms: list[float], tr: Translator) -> list[bytes]:
    """PNG bytes to send: the model's charts, else curves from history.json, else live times."""
    pictures = [(model_dir / name).read_bytes() for name in MODEL_CHARTS
                if (model_dir / name).is_file()]
    if not pictures and (model_dir / "history.json").is_file():
        try:
            pictures.append(_curves_from_history(model_dir / "history.json"))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Could not draw curves from %s: %s", model_dir, exc)
    if not pictures:
        pictures.append(latency_chart(latencies_ms, tr))
    return pictures


def _curves_from_history(path: Path) -> bytes:
    from model.plots import training_curves  # matplotlib (Agg) on first use only

    history = json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "curves.png"
        training_curves(history, out)
        return out.read_bytes()


def latency_chart(latencies_ms: list[float], tr: Translator) -> bytes:
    """A histogram of recent recognition times (for a model without its own charts), labelled
    in the user's language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if latencies_ms:
        ax.hist(latencies_ms, bins=30, color="#1f77b4")
    else:
        ax.text(0.5, 0.5, tr.gettext("no photos read yet"), ha="center", va="center")
    ax.set_xlabel(tr.gettext("recognition time (ms)"))
    ax.set_ylabel(tr.gettext("photos"))
    ax.set_title(tr.gettext("Recent recognition times"))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
