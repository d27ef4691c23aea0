"""The recognizer against a plain classic pipeline that uses the same model.

    python -m bench.baseline_bench [--seed S] [--n N] [--model PATH] [--writers test|val]

The plain pipeline is the textbook one, with no threshold tuned on anything: light ink on a
dark ground inverted (by the median), the light flattened
(divide by a morphological closing), Otsu, 8-connected components (those at least a tenth of
the largest kept), their box fitted into 20×20, centred by mass in 28×28; the model's likeliest
digit. It reads one digit an image and never says "no digit", so it is measured only where
there is one digit to read: the writers' scanned cells (also with a form's printed border
drawn in), single digits in photos, tight crops, hairline pens. Where the recognizer's steps
do not beat it, they do not pay for themselves.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import cv2
import numpy as np

from bench.recognizer_bench import SEED, load_hands, pct
from model.data import load_kensanata
from model.photos import form_border, photo_set
from model.recognize import Recognizer

WORK_SIDE = 640  # the longest side the plain pipeline works at, as the recognizer does
KEEP_SHARE = 0.1  # a component is kept when at least this share of the largest one's area

ROWS: list[tuple[str, str, str, dict[str, Any]]] = [  # label, kind, hand, options
    ("single digits (MNIST test)", "digit", "mnist", {}),
    ("single digits (held-out writers)", "digit", "writers", {}),
    ("digits cut tight to their ink (MNIST test)", "crop", "mnist", {}),
    ("digits cut tight to their ink (writers)", "crop", "writers", {}),
    ("hairline pen", "digit", "writers", {"pen": "hairline"}),
]


def plain_crop(data: bytes) -> np.ndarray | None:
    """Image bytes → a 28×28 MNIST-like crop (white ink on black), or None: no ink found."""
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        return None
    if np.median(grey) < 128:  # light ink on a dark ground (a screen, a dataset's image)
        grey = 255 - grey
    scale = WORK_SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    size = max(15, max(grey.shape) // 8) | 1  # wider than any stroke: the closing is paper
    paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE,
                             cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    ink = 255 - cv2.divide(grey, paper, scale=255)
    level, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = np.isin(labels, 1 + np.flatnonzero(areas >= KEEP_SHARE * areas.max()))
    ys, xs = np.nonzero(kept)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    digit = np.where(kept[box], ink[box].astype(np.float32) - level, 0).clip(0)
    h, w = digit.shape
    f = 20 / max(h, w)
    small = cv2.resize(digit, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    rows, cols = small.sum(axis=1, dtype=np.float64), small.sum(axis=0, dtype=np.float64)
    if rows.sum() <= 0:
        return None
    cy, cx = rows @ np.arange(rows.size) / rows.sum(), cols @ np.arange(cols.size) / cols.sum()
    out = cv2.warpAffine(small, np.float32([[1, 0, 14 - cx], [0, 1, 14 - cy]]), (28, 28))
    return np.clip(out * (255 / out.max()), 0, 255).astype(np.uint8)


def compare(rec: Recognizer, images: list[bytes], labels: list[int]) -> np.ndarray:
    """(n, 2) bools: for each image of one digit, whether the recognizer and whether the plain
    pipeline read it right."""
    ours = [rec.recognize(data).text == str(y) for data, y in zip(images, labels, strict=True)]
    crops = [plain_crop(data) for data in images]
    found = [k for k, c in enumerate(crops) if c is not None]
    plain = np.zeros(len(images), bool)
    if found:
        digits = rec.classify(np.stack([crops[k] for k in found]))[:, :10].argmax(1)
        plain[found] = digits == np.asarray(labels)[found]
    return np.column_stack([ours, plain])


def table(title: str, results: list[tuple[str, np.ndarray]]) -> None:
    print(f"| {title:<50} | {'n':>5} | {'recognizer':>10} | {'plain':>7} |")
    print(f"|{'-' * 52}|{'-' * 7}|{'-' * 12}|{'-' * 9}|")
    for label, right in results:
        n = len(right)
        print(f"| {label:<50} | {n:>5} | {pct(int(right[:, 0].sum()), n):>10} | "
              f"{pct(int(right[:, 1].sum()), n):>7} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--n", type=int, default=500, help="photos per row")
    parser.add_argument("--model", help="model dir, .tflite or .keras (default model/release)")
    parser.add_argument("--writers", choices=("test", "val"), default="test",
                        help="the held-out writers (the figures to quote) or, for development, "
                             "the validation writers")
    args = parser.parse_args()
    rec = Recognizer(args.model)
    cells = load_kensanata(args.writers)
    hands = load_hands(cells, args.writers)
    whose = "held-out" if args.writers == "test" else "validation"
    scanned = [f.read_bytes() for f in cells.files]
    scans = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in scanned]
    border = np.random.default_rng(args.seed)  # the same borders as recognizer_bench draws
    bordered = [cv2.imencode(".png", form_border(border, scan)[0])[1].tobytes()
                for scan in scans]
    results = [(f"real scans, {whose} writers (every cell)",
                compare(rec, scanned, list(cells.labels))),
               ("the same cells with a form's printed border",
                compare(rec, bordered, list(cells.labels)))]
    by_paper: dict[str, list[np.ndarray]] = defaultdict(list)
    for k, (label, kind, hand, options) in enumerate(ROWS):
        photos = photo_set(args.n, kind, args.seed + 500 + 1000 * k, digits=hands[hand],
                           **options)
        right = compare(rec, [d for d, _ in photos], [int(t.text) for _, t in photos])
        results.append((label.replace("held-out", whose), right))
        for (_, truth), r in zip(photos, right, strict=True):
            by_paper[truth.style].append(r)
    print(f"\n$ python -m bench.baseline_bench --seed {args.seed} --n {args.n}"
          f"{' --writers val' if args.writers == 'val' else ''}")
    table("one digit a photo", results)
    print()  # the photos of every row above by what the digit is written on
    table("the same photos by paper", [(k, np.array(v)) for k, v in sorted(by_paper.items())])


if __name__ == "__main__":
    main()
