"""The promotion gate: a retrained model replaces the serving one only if it is not worse on
held-out data — the same data, the same (LiteRT) code, for both.

Three held-out sets, each scored when it is at hand:
- MNIST: the test split of the data file (MNIST_PATH), each 28×28 digit read alone;
- writers: real handwriting by the kensanata writers that training never sees
  (model.data.KENSANATA_TEST), RETRAIN_EVAL_CELLS cells read end to end, as scanned;
- corrections: the share of users' feedback that /retrain holds out of the training
  (Storage.training_corrections), each crop read alone.
The candidate is promoted when, on every set, it is no more than PROMOTE_TOLERANCE worse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.data import DataError, load_kensanata
from model.recognize import MARK, Recognizer

EVAL_CHUNK = 32  # crops per model call when scoring (a small arena; the serving model untouched)


@dataclass
class HeldOut:
    """The data both models are scored on."""

    mnist: tuple[np.ndarray, np.ndarray]  # x uint8 (N, 28, 28), y
    mnist_name: str  # the data file's name, for the message
    writers: list[tuple[bytes, int]]  # scanned cells (PNG bytes) and their digits
    corrections: tuple[np.ndarray, np.ndarray]


@dataclass
class Score:
    name: str
    n: int
    accuracy: float


def load_held_out(data: Path, cells: int, corrections: tuple[np.ndarray, np.ndarray],
                  kensanata: Path | None = None) -> HeldOut:
    """The held-out sets (blocking: run it in a thread). `cells` writers' cells at most, an
    even spread over digits and writers; none where kensanata is absent or cells is 0."""
    with np.load(data, allow_pickle=False) as f:
        mnist = f["x_test"].astype(np.uint8), f["y_test"].astype(np.int64)
    writers: list[tuple[bytes, int]] = []
    if cells:
        try:
            held = load_kensanata("test", kensanata)
        except DataError:
            held = None
        if held is not None:
            step = max(1, len(held.files) // cells)
            writers = [(path.read_bytes(), int(label)) for path, label in
                       zip(held.files[::step][:cells], held.labels[::step][:cells], strict=True)]
    return HeldOut(mnist, data.name, writers, corrections)


def score(model_file: Path, held: HeldOut) -> list[Score]:
    """The model's accuracy on each held-out set it has data for (blocking)."""
    recognizer = Recognizer(model_file)  # its own instance: the serving one is never locked
    scores = [Score("mnist", len(held.mnist[1]), _digits(recognizer, *held.mnist))]
    if held.writers:
        right = sum(recognizer.recognize(data).text == str(label) for data, label in held.writers)
        scores.append(Score("writers", len(held.writers), right / len(held.writers)))
    if len(held.corrections[1]):
        scores.append(Score("corrections", len(held.corrections[1]),
                            _digits(recognizer, *held.corrections)))
    return scores


def _digits(recognizer: Recognizer, x: np.ndarray, y: np.ndarray) -> float:
    """Share of 28×28 digits whose first-ranked digit (of 0–9) is the label."""
    if not len(y):
        return 0.0
    predicted = np.concatenate([
        np.argmax(recognizer.classify(x[i : i + EVAL_CHUNK])[:, :MARK], axis=1)
        for i in range(0, len(x), EVAL_CHUNK)
    ])
    return float(np.mean(predicted == y))


def not_worse(new: list[Score], old: list[Score], tolerance: float) -> bool:
    """Whether the candidate is within `tolerance` of the serving model on every set."""
    return all(n.accuracy >= o.accuracy - tolerance for n, o in zip(new, old, strict=True))


def describe(new: list[Score], old: list[Score], held: HeldOut, version: int) -> str:
    """One line per held-out set: what it is, the new model's and the serving one's score."""
    what = {
        "mnist": f"MNIST test split of {held.mnist_name}",
        "writers": "real handwriting of held-out writers",
        "corrections": "users' corrections held out of training",
    }
    return "\n".join(
        f"• {what[n.name]} ({n.n}): new {n.accuracy * 100:.2f}%, "
        f"v{version} {o.accuracy * 100:.2f}%" for n, o in zip(new, old, strict=True))


def to_json(scores: list[Score]) -> str:
    """How a version's scores are stored (model_versions.scores)."""
    return json.dumps({s.name: [round(s.accuracy, 6), s.n] for s in scores})
