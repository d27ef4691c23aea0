"""Loading MNIST: a Keras-format .npz file when given, else Keras' own download."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(RuntimeError):
    """MNIST could not be loaded; the message says what to set."""


def load_npz(path: str | os.PathLike) -> Split:
    """Read an .npz in the Keras layout (x_train, y_train, x_test, y_test)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MNIST file not found: {path} (set MNIST_PATH or --data to a Keras .npz)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}: expected Keras' MNIST layout")
            x_train, y_train, x_test, y_test = (f[k] for k in KEYS)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
            raise DataError(f"{path}: expected images (N, 28, 28) with N labels, got {x.shape}")
    return (x_train.astype(np.uint8), y_train.astype(np.int64)), (
        x_test.astype(np.uint8),
        y_test.astype(np.int64),
    )


def load_mnist(path: str | os.PathLike | None = None) -> Split:
    """The MNIST split from `path`, else $MNIST_PATH, else keras.datasets (needs internet)."""
    path = path or os.environ.get("MNIST_PATH")
    if path:
        return load_npz(path)
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # no internet, proxy, TLS, ...: one clear line instead of a trace
        raise DataError(
            "MNIST is not available offline: set MNIST_PATH (or pass --data) to a Keras-format "
            f"mnist.npz, e.g. MNIST_PATH=../shared/data/mnist.npz ({type(exc).__name__})"
        ) from exc
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64))


def data_hash(split: Split) -> str:
    """A short SHA-256 of the images and labels, so a run records exactly what it saw."""
    digest = hashlib.sha256()
    for part in (*split[0], *split[1]):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:16]


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → the model contract: float32 (N, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., None]


# --- kensanata: real scanned digits of 14 writers (../shared/README.md) -----------------------

KENSANATA_DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kensanata"
# Whole writers are held out, never a random split of images: a model that has seen a writer's
# other digits flatters itself. Chosen once, by numpy's default_rng(2026).permutation over the
# 14 sorted writer ids: the first four are TEST (benches and tests only, never trained or tuned
# on), the next two VAL (model selection), the other eight train.
KENSANATA_TEST = ("0002_CH5M", "0007_CH3M", "0009_CH4M", "0010_CH3M")
KENSANATA_VAL = ("0001_CH4M", "0013_CH3M")


@dataclass
class Cells:
    """Scanned cells: one PNG file per handwritten digit, its label and its writer."""

    files: list[Path]
    labels: np.ndarray
    writers: list[str]


def kensanata_dir(path: str | os.PathLike | None = None) -> Path:
    """The kensanata folder: `path`, else $KENSANATA_PATH, else ../shared/data/kensanata."""
    return Path(path or os.environ.get("KENSANATA_PATH") or KENSANATA_DEFAULT)


def load_kensanata(split: str, path: str | os.PathLike | None = None) -> Cells:
    """The cells of one split of the writers: "train", "val" or "test" (see KENSANATA_TEST), or
    "train+val": the training and validation writers together, for a refit once every choice
    that the validation writers informed is made."""
    root = kensanata_dir(path)
    index = root / "labels.csv"
    if not index.is_file():
        raise DataError(f"kensanata not found: {index} (set KENSANATA_PATH to its folder)")
    held = {"test": KENSANATA_TEST, "val": KENSANATA_VAL}
    if split not in ("train", "train+val", *held):
        raise ValueError(f"split must be train, train+val, val or test, not {split!r}")
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if split == "train":
        rows = [r for r in rows if r["writer"] not in KENSANATA_TEST + KENSANATA_VAL]
    elif split == "train+val":
        rows = [r for r in rows if r["writer"] not in KENSANATA_TEST]
    else:
        rows = [r for r in rows if r["writer"] in held[split]]
    return Cells([root / r["file"] for r in rows], np.array([int(r["label"]) for r in rows]),
                 [r["writer"] for r in rows])
