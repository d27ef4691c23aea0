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
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar, cast

import cv2
import numpy as np

from model.data import Cells, DataError, load_kensanata, load_mnist
from model.photos import KINDS, TRAIN_WORDS, Digits, Truth, make_photo, scan_ink
from model.preprocess import LINE_DIGIT, LINE_H, LINE_W, ImageError, mnist_crop, segment

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
# Currency signs are no digit, though a $ looks like a 5 or an 8 to a model never shown one:
# this share of the drawn letters and symbols, and of the composed lines (before or after the
# number), is a $ or an €, drawn here (`_sign`), never as the bench's photos draw them.
SIGNS, SIGN_SHARE = "$€", 0.3
LINE_SIGNS = 0.1
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
        if kind == 0 and rng.random() < SIGN_SHARE:  # a currency sign
            sign = (_sign(rng, SIGNS[rng.integers(len(SIGNS))], rng.uniform(50, 76), width)
                    * 255).astype(np.uint8)
            h, w = sign.shape
            canvas[(96 - h) // 2 : (96 - h) // 2 + h, (96 - w) // 2 : (96 - w) // 2 + w] = sign
        elif kind == 0:  # a letter or a symbol
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


# a chunk of photos to make in a worker: (MNIST file, seed, kind, start, stop, writers)
Job = tuple[str | None, int, str, int, int, str]


def _photo_chunk(args: Job) -> tuple[np.ndarray, np.ndarray]:
    """Photos [start, stop) of one kind, cut and labelled (runs in a worker process)."""
    mnist_path, seed, kind, start, stop, writers = args
    mnist, kensanata = _pools(mnist_path, writers)
    photos = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, 7919, KINDS.index(kind), i])
        digits = kensanata if rng.random() < KENSANATA_SHARE else mnist
        pen = "hairline" if rng.random() < HAIRLINE else None
        photos.append(make_photo(rng, digits, kind, pen=pen, touching=TOUCHING,
                                 words=TRAIN_WORDS, marks=TRAIN_MARKS))
    return segmenter_examples(photos)


_POOLS: dict[str, list[Digits]] = {}


def _pools(mnist_path: str | None, writers: str = "train") -> list[Digits]:
    """The digit pools training draws from, MNIST's training split and the `writers` (MNIST
    twice where kensanata is absent); loaded once per process."""
    if writers not in _POOLS:
        (x_train, y_train), _ = load_mnist(mnist_path)
        mnist = Digits.mnist(x_train, y_train, "mnist-train")
        cells = training_cells(writers)
        if cells is None:
            _POOLS[writers] = [mnist, mnist]
        else:
            scans = [cv2.imdecode(np.frombuffer(f.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
                     for f in cells.files]
            # kensanata's cells are PNG files: imdecode does not return None for them
            _POOLS[writers] = [mnist, Digits.scans(cast(list[np.ndarray], scans), cells.labels,
                                                   f"kensanata-{writers}")]
    return _POOLS[writers]


def training_cells(writers: str = "train") -> Cells | None:
    """kensanata's training writers ("train+val": and the validation writers), or None where
    the data set is not at hand."""
    try:
        return load_kensanata(writers)
    except DataError:
        return None


def photo_examples(seed: int, scale: float = 1.0, mnist_path: str | None = None,
                   workers: int = 0, writers: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Crops from generated photos (see PHOTOS), in `workers` processes (0: one per core)."""
    parts = _in_chunks(_photo_chunk, PHOTOS, seed, scale, mnist_path, workers, writers)
    return (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))


T = TypeVar("T")  # what one chunk of photos gives


def _in_chunks(chunk: Callable[[Job], T], counts: dict[str, int], seed: int, scale: float,
               mnist_path: str | None, workers: int, writers: str = "train") -> list[T]:
    """`chunk` over every kind's photos (counts × scale), eight chunks a kind, in `workers`
    processes (0: one per core)."""
    jobs = []
    for kind, n in counts.items():
        n = max(1, round(n * scale))
        step = max(1, n // 8)
        jobs += [(mnist_path, seed, kind, a, min(n, a + step), writers)
                 for a in range(0, n, step)]
    # workers forked from a fork server, not from this process: a fork of a process running
    # TensorFlow's or LiteRT's threads (model.train, a test suite) now and then dies at once
    with ProcessPoolExecutor(workers or os.cpu_count() or 1,
                             mp_context=multiprocessing.get_context("forkserver")) as pool:
        return list(pool.map(chunk, jobs))


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
                      workers: int = 0, writers: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Everything model.train learns from beyond MNIST: (uint8 N×28×28, labels 0–11), with
    kensanata's `writers` ("train", or "train+val" for a refit)."""
    return cached("train", lambda: _training_examples(seed, scale, mnist_path, workers,
                                                      writers), seed, scale, writers)


def validation_examples() -> tuple[np.ndarray, np.ndarray]:
    """kensanata's validation writers cut by the segmenter (empty where it is absent)."""
    try:
        cells = load_kensanata("val")
    except DataError:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    x, y = cached("val", lambda: cell_examples(cells.files, cells.labels), "val")
    return balance(x, y, seed=0)  # digits should weigh most in choosing the best epoch


def _training_examples(seed: int, scale: float, mnist_path: str | None, workers: int,
                       writers: str) -> tuple[np.ndarray, np.ndarray]:
    cells = training_cells(writers)
    if cells is None:
        print("note: kensanata not found (KENSANATA_PATH): training without real writers",
              flush=True)
        kx, ky = np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    else:
        step = max(1, round(1 / scale))  # a small run takes every step-th cell
        kx, ky = cell_examples(cells.files[::step], cells.labels[::step])
    px, py = photo_examples(seed, scale, mnist_path, workers, writers)
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


# The line reader (model.train --arch line) reads a whole line of writing, so it learns from
# lines composed of real glyphs: MNIST's training split and the training writers as the
# segmenter cuts them (28×28, a thin pen's strokes as written), their digits as tall as the
# recognizer makes a line's (LINE_DIGIT px), a quarter of them overlapping their neighbour,
# with the separators, dashes, underlines and specks of written amounts, slanted and tilted.
LINE_LENGTHS = np.arange(1, 10)
LINE_LENGTH_WEIGHTS = np.array([4, 10, 14, 17, 17, 13, 10, 8, 7]) / 100
LINE_OVERLAP = 0.25  # of the digits drawn into their left neighbour (by up to LINE_INTO)
LINE_INTO = 0.3
TRAILING_ZEROS = 0.35  # of the numbers of 3 digits or more: amounts end in 00 or 000
LINE_TAILS = (".-", ",-", "-", "-", ",--")  # "1.000,-": written after an amount


def line_pools(mnist_path: str | None = None,
               split: str = "train") -> list[tuple[np.ndarray, np.ndarray]]:
    """The glyph pools lines are composed from, (uint8 N×28×28, digits) each: for "train"
    MNIST's training split and the training writers; for "val" the validation writers."""
    if split == "val":
        x, y = validation_examples()
        return [(x[y < MARK], y[y < MARK])]
    (x, y), _ = load_mnist(mnist_path)
    pools = [(x, y.astype(np.int64))]
    cells = training_cells()
    if cells is not None:
        kx, ky = cached("cells", lambda: cell_examples(cells.files, cells.labels), "train")
        pools.append((kx[ky < MARK], ky[ky < MARK]))
    return pools


def line_examples(n: int, seed: int, pools: list[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[np.ndarray, list[str]]:
    """n lines (uint8 n×LINE_H×LINE_W, white on black, as `preprocess.line_crop` makes them)
    and the digits each shows."""
    rng = np.random.default_rng(seed)
    by_digit = [[np.flatnonzero(y == d) for d in range(10)] for _, y in pools]
    x = np.zeros((n, LINE_H, LINE_W), np.uint8)
    texts = []
    for i in range(n):
        k = int(rng.integers(len(pools)))
        x[i], text = _line(rng, pools[k][0], by_digit[k])
        texts.append(text)
    return x, texts


def _line(rng: np.random.Generator, glyphs: np.ndarray,
          by_digit: list[np.ndarray]) -> tuple[np.ndarray, str]:
    n = int(rng.choice(LINE_LENGTHS, p=LINE_LENGTH_WEIGHTS))
    digits = [int(d) for d in rng.integers(0, 10, n)]
    if n >= 3 and rng.random() < TRAILING_ZEROS:
        zeros = int(rng.integers(2, min(3, n - 1) + 1))
        digits[-zeros:] = [0] * zeros
    size = LINE_DIGIT * rng.uniform(0.85, 1.15)
    pen = rng.uniform(1.2, 2.4)
    group = 3 if n >= 4 and rng.random() < 0.75 else 0  # thousands: "1.000.000", "1 000"
    separator = str(rng.choice([".", ",", "'", " "])) if group else ""
    items: list[tuple[np.ndarray | None, str, float]] = []  # (ink, where, gap before it)
    for k, d in enumerate(digits):
        if group and k and (n - k) % group == 0:
            items.append((None, "", rng.uniform(5, 12)) if separator == " " else
                         (*_mark(rng, separator, size, pen), rng.uniform(-1, 4)))
        elif not group and n >= 3 and k == n - 2 and rng.random() < 0.15:  # "12.50"
            items.append((*_mark(rng, str(rng.choice([".", ","])), size, pen), rng.uniform(-1, 4)))
        glyph = glyphs[rng.choice(by_digit[d])].astype(np.float32) / 255
        ys, xs = np.nonzero(glyph > 0.1)
        glyph = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        f = size / 20 * rng.uniform(0.9, 1.1)  # MNIST's glyphs are about 20 px tall
        glyph = cv2.resize(glyph, (max(1, round(glyph.shape[1] * f)),
                                   max(1, round(glyph.shape[0] * f))))
        gap = (-rng.uniform(0, LINE_INTO) * glyph.shape[1] if rng.random() < LINE_OVERLAP
               else rng.uniform(0, 8))
        items.append((glyph, "digit", gap if k else 0.0))
    tail = rng.random()
    if tail < 0.35:
        for ch in str(rng.choice(LINE_TAILS)):
            items.append((*_mark(rng, ch, size, pen), rng.uniform(0, 5)))
    elif tail < 0.45:  # "-120"
        items.insert(0, (*_mark(rng, "-", size, pen), 0.0))
        items[1] = (items[1][0], items[1][1], rng.uniform(1, 6))
    if rng.random() < LINE_SIGNS:  # "$ 120", "120 €"
        sign = _mark(rng, SIGNS[rng.integers(len(SIGNS))], size, pen)
        if rng.random() < 0.7:
            items[0] = (items[0][0], items[0][1], rng.uniform(2, 12))
            items.insert(0, (*sign, 0.0))
        else:
            items.append((*sign, rng.uniform(4, 12)))
    width = sum(g.shape[1] + 16 for g, _, _ in items if g is not None) + 40
    canvas = np.zeros((int(2.2 * size) + 8, width), np.float32)
    base = int(1.6 * size) + 4  # the baseline
    x = 2.0
    for ink, where, gap in items:
        x += gap
        if ink is None:
            continue
        h, w = ink.shape
        top = {"digit": base - h + int(rng.integers(-2, 3)), "base": base - int(0.15 * size),
               "top": base - int(size), "mid": base - int(size * rng.uniform(0.4, 0.6))}[where]
        left, top = max(0, round(x)), max(0, min(canvas.shape[0] - h, top))
        np.maximum(canvas[top : top + h, left : left + w], ink,
                   out=canvas[top : top + h, left : left + w])
        x = left + w
    return _finish(rng, canvas, size, pen), "".join(map(str, digits))


def _mark(rng: np.random.Generator, ch: str, size: float, pen: float) -> tuple[np.ndarray, str]:
    """A separator's ink and where it sits: "." "," on the baseline, "'" at the top, "-" mid;
    a currency sign stands on the baseline as a digit does."""
    t = max(1, round(pen))
    if ch in SIGNS:
        return _sign(rng, ch, size * rng.uniform(0.8, 1.05), pen), "digit"
    if ch in ".,":
        ink = np.zeros((int(size * 0.45), max(3, int(size * 0.25))), np.float32)
        c = (ink.shape[1] // 2, int(size * 0.08) + t)
        cv2.circle(ink, c, t, 1.0, -1, cv2.LINE_AA)
        if ch == ",":
            cv2.line(ink, c, (c[0] - 2, int(size * 0.4)), 1.0, t, cv2.LINE_AA)
        return ink, "base"
    if ch == "'":
        ink = np.zeros((int(size * 0.35), max(3, int(size * 0.2))), np.float32)
        cv2.line(ink, (ink.shape[1] // 2 + 1, 1), (ink.shape[1] // 2 - 1, ink.shape[0] - 2),
                 1.0, t, cv2.LINE_AA)
        return ink, "top"
    length = int(size * rng.uniform(0.35, 1.2))
    ink = np.zeros((t + 4, length + 2), np.float32)
    cv2.line(ink, (1, 2 + int(rng.integers(-1, 2))), (length, 2), 1.0, t, cv2.LINE_AA)
    return ink, "mid"


def _sign(rng: np.random.Generator, ch: str, height: float, pen: float) -> np.ndarray:
    """A currency sign's ink (float 0-1, cropped to it), about `height` tall: a $ of OpenCV's
    fonts or a pen's wave crossed by one or two bars, or an € of an ellipse's arc and two bars
    (OpenCV's fonts have none)."""
    t = max(1, round(pen))
    if ch == "$" and rng.random() < 0.5:  # as a pen writes it: an S-wave, then the bar(s)
        h, w = max(8, round(height)), max(5, round(height * rng.uniform(0.4, 0.65)))
        canvas = np.zeros((h + 4 * t, w + 4 * t), np.uint8)
        s = np.linspace(-0.12, 1.12, 40)
        lean, swing = rng.uniform(-0.15, 0.15) * w, w / 2 * rng.uniform(0.7, 1.0)
        across = 2 * t + w / 2 - np.sin(2 * np.pi * s) * swing + lean * (s - 0.5)
        down = 2 * t + h * (0.1 + 0.8 * s)
        pts = np.stack([across, down], axis=1) * 4  # in quarter pixels (shift=2): a smooth S
        cv2.polylines(canvas, [np.round(pts).astype(np.int32)], False, 255, t, cv2.LINE_AA, 2)
        bars = [-0.12, 0.12] if rng.random() < 0.3 else [0.0]  # some write the $ with two
        for dx in bars:
            x = 2 * t + w * (0.5 + dx)
            top, bottom = rng.uniform(0.0, 0.08) * h, rng.uniform(0.92, 1.0) * h
            cv2.line(canvas, (round(x + lean / 2), round(2 * t + top)),
                     (round(x - lean / 2), round(2 * t + bottom)), 255, t, cv2.LINE_AA)
    elif ch == "$":
        font = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)[rng.integers(2)]
        scale = cv2.getFontScaleFromHeight(font, max(6, round(0.8 * height)), t)
        (w, h), below = cv2.getTextSize("$", font, scale, t)
        canvas = np.zeros((h + below + 4 * t, w + 4 * t), np.uint8)
        cv2.putText(canvas, "$", (2 * t, h + 2 * t), font, scale, 255, t, cv2.LINE_AA)
    else:
        h, w = max(8, round(height)), max(6, round(height * rng.uniform(0.6, 0.8)))
        canvas = np.zeros((h + 4 * t, w + 4 * t), np.uint8)
        centre = (2 * t + w // 2 + round(0.1 * w), 2 * t + h // 2)
        cv2.ellipse(canvas, centre, (w // 2, h // 2), 0, rng.uniform(30, 55),
                    rng.uniform(305, 330), 255, t, cv2.LINE_AA)
        for level in (0.42, 0.6):
            y = 2 * t + round(h * (level + rng.normal(0, 0.02)))
            cv2.line(canvas, (t, y), (2 * t + round(0.62 * w), y), 255, t, cv2.LINE_AA)
    ink = canvas.astype(np.float32) / 255
    ys, xs = np.nonzero(ink > 0.1)
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _finish(rng: np.random.Generator, canvas: np.ndarray, size: float, pen: float) -> np.ndarray:
    """An underline and specks now and then, a slant and a slight tilt; then fitted as
    `preprocess.line_crop` fits a line."""
    ys, xs = np.nonzero(canvas > 0.1)
    if rng.random() < 0.2:  # the cheque's line under the amount, or what is left of a rule
        y = min(canvas.shape[0] - 2, int(ys.max()) + int(rng.integers(-2, 6)))
        start = (max(0, int(xs.min()) - int(rng.integers(0, 15))), y + int(rng.integers(-2, 3)))
        cv2.line(canvas, start, (int(xs.max()) + int(rng.integers(0, 15)), y),
                 float(rng.uniform(0.6, 1.0)),
                 max(1, round(pen * rng.uniform(0.4, 0.9))), cv2.LINE_AA)
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            at = (int(rng.integers(canvas.shape[1])), int(rng.integers(canvas.shape[0])))
            cv2.circle(canvas, at, int(rng.integers(1, 3)), float(rng.uniform(0.5, 1.0)), -1,
                       cv2.LINE_AA)
    h, w = canvas.shape
    slant = rng.uniform(-0.25, 0.25)
    shear = np.array([[1, slant, max(0.0, -slant) * h], [0, 1, 0]], np.float32)
    canvas = cv2.warpAffine(canvas, shear, (w + int(abs(slant) * h) + 2, h))
    angle = rng.normal(0, 2.0)  # what levelling the line (line_crop) leaves
    h, w = canvas.shape
    pad = int(abs(np.sin(np.radians(angle))) * w / 2) + 2
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    turn[1, 2] += pad
    canvas = cv2.warpAffine(canvas, turn, (w, h + 2 * pad))
    ys, xs = np.nonzero(canvas > 0.1)
    canvas = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = canvas.shape
    f = min(LINE_DIGIT / size, (LINE_H - 2) / h, (LINE_W - 4) / w)
    small = cv2.resize(canvas, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    out = np.zeros((LINE_H, LINE_W), np.float32)
    top = (LINE_H - small.shape[0]) // 2
    out[top : top + small.shape[0], 2 : 2 + small.shape[1]] = small
    return np.clip(out * 255 / max(float(out.max()), 1e-3), 0, 255).astype(np.uint8)


# Composed lines are clean; the lines the recognizer reads are cut by the segmenter from
# photos, with a circle's remnants, a rule's, a neighbour's stray ink. So the reader also
# learns from lines the segmenter cuts from generated photos (training pools, own seeds).
LINE_PHOTOS = {"number": 8000, "amount": 10000, "lines": 2000}
LINE_FRAMES = 0.15  # of the photos of numbers: circled or boxed by the writer
LINE_OWNED = 0.5  # of a digit's ink inside a line's image: the digit is in that line
LINE_TORN = 0.15  # a digit with more than this but less than LINE_OWNED: the line is unsure


def label_line(owners: np.ndarray, totals: np.ndarray, digits: str) -> str | None:
    """What a line's image shows, from its ink pixels by owner (Line.owners) and every digit's
    ink (Decoded.owner_ink): the digits it holds in reading order; None where it holds only
    part of a digit, or none."""
    share = owners[1 : len(digits) + 1] / np.maximum(totals[1 : len(digits) + 1], 1)
    if np.any((share > LINE_TORN) & (share < LINE_OWNED)) or not np.any(share >= LINE_OWNED):
        return None
    return "".join(digits[k] for k in np.flatnonzero(share >= LINE_OWNED))


def _line_photo_chunk(args: Job) -> tuple[np.ndarray, list[str]]:
    """Photos [start, stop) of one kind → the line images the segmenter cuts, labelled."""
    mnist_path, seed, kind, start, stop, writers = args
    mnist, kensanata = _pools(mnist_path, writers)
    xs, texts = [], []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, 7927, KINDS.index(kind), i])
        digits = kensanata if rng.random() < KENSANATA_SHARE else mnist
        pen = "hairline" if rng.random() < HAIRLINE else None
        frame = kind == "number" and rng.random() < LINE_FRAMES
        data, truth = make_photo(rng, digits, kind, pen=pen, touching=TOUCHING, frame=frame,
                                 screen=False if frame else None)
        try:
            decoded, lines = segment(data, truth.owners)
        except ImageError:
            continue
        assert decoded.owner_ink is not None
        for line in lines:
            if line.image is None or line.owners is None:
                continue
            text = label_line(line.owners, decoded.owner_ink, truth.text.replace("\n", ""))
            if text is not None:
                xs.append(line.image)
                texts.append(text)
    return np.array(xs, np.uint8).reshape(-1, LINE_H, LINE_W), texts


def photo_lines(seed: int, scale: float = 1.0, mnist_path: str | None = None,
                workers: int = 0) -> tuple[np.ndarray, list[str]]:
    """Lines the segmenter cuts from generated photos (see LINE_PHOTOS) and their digits,
    made in `workers` processes (0: one per core) once, then from the cache."""
    def make() -> tuple[np.ndarray, np.ndarray]:
        parts = _in_chunks(_line_photo_chunk, LINE_PHOTOS, seed, scale, mnist_path, workers)
        return (np.concatenate([x for x, _ in parts]),
                np.array([t for _, ts in parts for t in ts], dtype=np.str_))

    x, texts = cached("lines", make, seed, scale)
    return x, [str(t) for t in texts]
