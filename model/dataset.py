"""The training examples: what the recognizer's model learns from, as the recognizer sees it.

    x, y = segmenter_examples(photos)        # crops the segmenter cuts, labelled from the truth
    extra = training_examples(seed)          # everything beyond MNIST, for model.train

Twelve classes: the digits 0–9, MARK (ink that is no digit: a letter, a separator, a doodle, a
speck, a rule's remnant, the table's edge) and PART (a piece of a digit, or more than one).
Beyond MNIST's training split the model sees
  - kensanata's training writers (model/data.py): each scanned cell cut by the segmenter;
  - photos from model/photos.py cut by the segmenter — drawn from MNIST's *training* split, the
    training writers and a pen, on their own seeds and with their own words (TRAIN_WORDS), so
    that no bench photo, seed, word or writer is ever trained on;
  - generated non-digit glyphs (letters, symbols, scribbles, blots, hatching) as MARK.
Every crop of a photo is labelled by whose ink it holds (`label_group`), so
the model learns exactly the inputs it will get, its PARTs and MARKs included.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from model.data import Cells, DataError, load_kensanata, load_mnist
from model.photos import KINDS, TRAIN_WORDS, Digits, Truth, make_photo, scan_ink
from model.preprocess import ImageError, mnist_crop, segment

MARK, PART = 10, 11
CLASSES = 12
# Labels from ink: a crop is digit k when it holds DIGIT_SHARE of digit k's ink (as the
# segmenter sees it), next to nothing of any other digit's (OTHER_DIGITS of its ink: a thin 1
# beside an 8 is little ink, but "18" is no 8) and at most JUNK of ink that is no digit's (a
# dot, a rule's remnant); MARK when it holds less than MARK_SHARE of every digit's ink (a
# table's edge with a digit beside it is no mark: it must not swallow the digit); PART
# otherwise: a piece of a digit, or more than one.
DIGIT_SHARE, OTHER_DIGITS, JUNK, MARK_SHARE = 0.85, 0.03, 0.2, 0.2
PHOTOS = {"digit": 1500, "number": 1500, "lines": 400, "amount": 1200, "crop": 600,
          "blank": 800, "nondigit": 1400, "other": 800}
HAIRLINE = 0.2  # of the photos written with a fine ballpoint
TOUCHING = 0.3  # neighbouring digits written touching, in training's numbers
KENSANATA_SHARE = 0.35  # of the photos' digits (the rest from MNIST; "other" draws its own)
# Hatching is left out: each of its strokes alone is a 1, and the model can't be taught both.
TRAIN_MARKS = ("word", "doodle", "smudge", "tick", "star")
KENSANATA_REPEATS = 3  # real writers are few and precious: each cell counts this many times
MAX_SHARE = {MARK: 0.5, PART: 0.5}  # at most this many MARK/PART crops per digit crop
NONDIGIT_GLYPHS = 3000
NONDIGIT_LETTERS = "ACEFHKMNPRUWXYcefkmpwx#@&%+=*"
CACHE = Path(os.environ.get("DIGITBOT_CACHE", Path.home() / ".cache" / "digitbot"))


def label_group(owners: np.ndarray, totals: np.ndarray, digits: str) -> int:
    """What a crop shows, from its ink pixels counted by owner (Group.owners) and every
    digit's ink in the photo (Decoded.owner_ink): a digit, MARK or PART. `digits` is the
    photo's digits in reading order (owner k is digits[k - 1])."""
    ink = float(owners.sum())
    owned = owners[1 : len(digits) + 1].astype(np.float64)
    if ink == 0 or not np.any(owned >= MARK_SHARE * totals[1 : len(digits) + 1]):
        return MARK
    k = int(np.argmax(owned))
    others = owned.sum() - owned[k]
    if (owned[k] >= DIGIT_SHARE * totals[k + 1] and others <= OTHER_DIGITS * ink
            and ink - owned.sum() <= JUNK * ink):
        return int(digits[k])
    return PART


def segmenter_examples(photos: list[tuple[bytes, Truth]]) -> tuple[np.ndarray, np.ndarray]:
    """Every crop the segmenter cuts from the photos, labelled by `label_crop`."""
    xs, ys = [], []
    for data, truth in photos:
        try:
            decoded, lines = segment(data, truth.owners)
        except ImageError:
            continue
        digits = truth.text.replace("\n", "")
        for line in lines:
            for g in line.groups:
                assert g.owners is not None and decoded.owner_ink is not None
                xs.append(g.crop)
                ys.append(label_group(g.owners, decoded.owner_ink, digits))
    if not xs:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    return np.stack(xs), np.array(ys, np.int64)


def cell_examples(files: list[Path], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scanned cells (one digit each) cut by the segmenter, labelled by their ink: the digit's
    ink is the cell's ink less the specks (`scan_ink`), the rest MARK or PART."""
    photos = []
    for path, label in zip(files, labels, strict=True):
        data = path.read_bytes()
        cell = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert cell is not None, f"not an image: {path}"  # kensanata's cells are PNG files
        h, w = cell.shape[:2]
        photos.append((data, Truth("crop", str(int(label)), [(0, 0, w, h)], (w, h), "png",
                                   "scan", owners=scan_ink(cell)[1].astype(np.uint8))))
    return segmenter_examples(photos)


def make_nondigits(n: int, seed: int) -> np.ndarray:
    """n MNIST-like crops (uint8 28×28, white on black) of things that are not digits."""
    rng = np.random.default_rng(seed)
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
    crops: list[np.ndarray] = []
    while len(crops) < n:
        canvas = np.zeros((96, 96), np.uint8)
        kind = len(crops) % 4
        width = int(rng.integers(2, 9))
        if kind == 0:  # a letter or a symbol
            char = NONDIGIT_LETTERS[rng.integers(len(NONDIGIT_LETTERS))]
            cv2.putText(canvas, char, (16, 76), fonts[rng.integers(2)], rng.uniform(1.8, 2.6),
                        255, width, cv2.LINE_AA)
        elif kind == 1:  # a scribble: a tangled random walk
            steps = rng.normal(0, rng.uniform(8, 14), (int(rng.integers(9, 18)), 2))
            points = np.clip(48 + np.cumsum(steps, axis=0), 4, 91).astype(np.int32)
            cv2.polylines(canvas, [points], False, 255, width, cv2.LINE_AA)
        elif kind == 2:  # a blot or smudge
            for _ in range(int(rng.integers(1, 4))):
                centre = tuple(int(v) for v in rng.integers(28, 68, 2))
                major = rng.uniform(8, 30)  # round-ish: a long thin blot would be a 1
                axes = (int(major), int(major / rng.uniform(1, 1.6)))
                cv2.ellipse(canvas, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1)
        else:  # hatching: several parallel strokes
            angle, gap = rng.uniform(0, np.pi), rng.uniform(7, 16)
            direction = np.array([np.cos(angle), np.sin(angle)])
            normal = np.array([-direction[1], direction[0]])
            for k in range(int(rng.integers(3, 7))):
                middle = 48 + (k - 2.5) * gap * normal
                a, b = middle - 30 * direction, middle + 30 * direction
                cv2.line(canvas, tuple(a.astype(int)), tuple(b.astype(int)), 255, width)
        region = canvas > 0
        if region.any():
            made = mnist_crop(canvas, region, 128)
            if made is not None:
                crops.append(made)
    return np.stack(crops)


def _photo_chunk(args: tuple[str | None, int, str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Photos [start, stop) of one kind, cut and labelled (runs in a worker process)."""
    mnist_path, seed, kind, start, stop = args
    mnist, kensanata = _pools(mnist_path)
    photos = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, 7919, KINDS.index(kind), i])
        digits = kensanata if rng.random() < KENSANATA_SHARE else mnist
        pen = "hairline" if rng.random() < HAIRLINE else None
        photos.append(make_photo(rng, digits, kind, pen=pen, touching=TOUCHING,
                                 words=TRAIN_WORDS, marks=TRAIN_MARKS))
    return segmenter_examples(photos)


_POOLS: list[Digits] = []


def _pools(mnist_path: str | None) -> list[Digits]:
    """The digit pools training draws from, MNIST's training split and the training writers
    (MNIST twice where kensanata is absent); loaded once per process."""
    if not _POOLS:
        (x_train, y_train), _ = load_mnist(mnist_path)
        _POOLS.append(Digits.mnist(x_train, y_train, "mnist-train"))
        cells = training_cells()
        if cells is None:
            _POOLS.append(_POOLS[0])
        else:
            scans = [cv2.imdecode(np.frombuffer(f.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
                     for f in cells.files]
            # kensanata's cells are PNG files: imdecode does not return None for them
            _POOLS.append(Digits.scans(cast(list[np.ndarray], scans), cells.labels,
                                       "kensanata-train"))
    return _POOLS


def training_cells() -> Cells | None:
    """kensanata's training writers, or None where the data set is not at hand."""
    try:
        return load_kensanata("train")
    except DataError:
        return None


def photo_examples(seed: int, scale: float = 1.0, mnist_path: str | None = None,
                   workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Crops from generated photos (see PHOTOS), in `workers` processes (0: one per core)."""
    jobs = []
    for kind, n in PHOTOS.items():
        n = max(1, round(n * scale))
        step = max(1, n // 8)
        jobs += [(mnist_path, seed, kind, a, min(n, a + step)) for a in range(0, n, step)]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        parts = list(pool.map(_photo_chunk, jobs))
    return (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))


def balance(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_SHARE MARK and PART crops per digit crop (photos of numbers give far more
    PART crops than digits), chosen at random."""
    rng = np.random.default_rng(seed)
    digits = int(np.sum(y < MARK))
    keep = [np.flatnonzero(y < MARK)]
    for cls, share in MAX_SHARE.items():
        idx = np.flatnonzero(y == cls)
        limit = int(share * digits)
        keep.append(idx if len(idx) <= limit else rng.choice(idx, limit, replace=False))
    order = np.sort(np.concatenate(keep))
    return x[order], y[order]


def cached(name: str, make: Callable[[], tuple[np.ndarray, np.ndarray]],
           *key: object) -> tuple[np.ndarray, np.ndarray]:
    """make() once, then from disk (DIGITBOT_CACHE, default ~/.cache/digitbot), keyed by `key`
    and the code and data that make examples: a change to any of them makes a new set."""
    path = CACHE / f"{name}-{_cache_key(*key)}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["x"], f["y"]
    x, y = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.npz")
    np.savez_compressed(tmp, x=x, y=y)
    tmp.replace(path)
    return x, y


def training_examples(seed: int, scale: float = 1.0, mnist_path: str | None = None,
                      workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Everything model.train learns from beyond MNIST: (uint8 N×28×28, labels 0–11)."""
    return cached("train", lambda: _training_examples(seed, scale, mnist_path, workers),
                  seed, scale)


def validation_examples() -> tuple[np.ndarray, np.ndarray]:
    """kensanata's validation writers cut by the segmenter (empty where it is absent)."""
    try:
        cells = load_kensanata("val")
    except DataError:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    x, y = cached("val", lambda: cell_examples(cells.files, cells.labels), "val")
    return balance(x, y, seed=0)  # digits should weigh most in choosing the best epoch


def _training_examples(seed: int, scale: float, mnist_path: str | None,
                       workers: int) -> tuple[np.ndarray, np.ndarray]:
    cells = training_cells()
    if cells is None:
        print("note: kensanata not found (KENSANATA_PATH): training without real writers",
              flush=True)
        kx, ky = np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    else:
        step = max(1, round(1 / scale))  # a small run takes every step-th cell
        kx, ky = cell_examples(cells.files[::step], cells.labels[::step])
    px, py = photo_examples(seed, scale, mnist_path, workers)
    x = np.concatenate([*[kx] * KENSANATA_REPEATS, px])
    y = np.concatenate([*[ky] * KENSANATA_REPEATS, py])
    x, y = balance(x, y, seed)
    other = make_nondigits(round(NONDIGIT_GLYPHS * scale), seed)
    return (np.concatenate([x, other]),
            np.concatenate([y, np.full(len(other), MARK, np.int64)]))


def _cache_key(*key: object) -> str:
    digest = hashlib.sha256(repr(key).encode())
    here = Path(__file__).parent
    for name in ("dataset.py", "photos.py", "preprocess.py", "data.py"):
        digest.update((here / name).read_bytes())
    cells = training_cells()
    digest.update(repr(None if cells is None else cells.labels.tolist()).encode())
    return digest.hexdigest()[:16]
