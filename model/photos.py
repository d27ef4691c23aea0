"""Realistic phone photos of handwritten digits and numbers, for training, tests and benches.

Honesty first: the handwriting comes from the pool of digits the caller gives (`Digits`). The
benches and tests give MNIST's *test* split and kensanata writers held out of training; the
training set (model/dataset.py) gives ``x_train`` and its own writers, and different seeds and
words, so a bench photo never shows the model a digit it has seen. `load_test_digits` reads
only the two test arrays from the .npz; each `Truth` lists the indices it drew (``sources``).
The ``"other"`` kind uses
no MNIST at all and stands in for writers and scanners the project has never seen: digits drawn
with a round pen (thin liner to marker) along hand-made centre lines, several ways of writing each
digit (European 1 with flag or foot, crossed 7, open 4...), or typefaces (DejaVu, Computer Modern,
STIX, OpenCV's own), slanted and elastically wobbled, then photographed like the rest.

API
---
``KINDS = ("digit", "number", "blank", "other", "nondigit", "crop", "lines", "amount")``

``Digits.mnist(images, labels)`` / ``Digits.scans(cells, labels)``
    A pool of handwritten digits to draw from: MNIST-style 28×28 images, or scanned cells
    (kensanata's RGB scans; see `scan_glyph`). Benches and tests draw from MNIST's *test*
    split and from writers held out of training; training draws from ``x_train`` and its own
    writers.

``load_test_digits(path=None) -> (x_test, y_test)``
    uint8 (N, 28, 28) and int labels from a Keras-layout mnist.npz (path, else $MNIST_PATH, else
    ../shared/data/mnist.npz). ``x_train`` is never read.

``make_photo(rng, digits, kind, *, size=None, screen=None, ink=None, pen=None, touching=0.03,
frame=False, currency=False)``
    ``-> (bytes, Truth)``: one photo from a ``numpy.random.Generator``. ``size=(width,
    height)`` forces the frame; ``screen=False`` forbids (``True`` forces) the white-on-black
    screenshot style; ``ink`` forces a colour (one of ``INKS``); ``pen="hairline"`` thins every
    stroke to a fine ballpoint's; ``touching`` is the share of neighbouring digits written
    touching or overlapping; ``frame`` draws a circle or a box round the writing;
    ``currency`` writes an amount with a currency sign ("$ 25", "1 250 €"). ``digits`` may be
    None for ``"blank"``, ``"other"`` and ``"nondigit"``.

``photo_set(n, kind, seed=0, mnist_path=None, *, size=None, screen=None, test_digits=None,
digits=None, **style)`` ``-> list[(bytes, Truth)]``: n photos; photo i depends only on
    (seed, kind, i). Digits come from ``digits``, else ``test_digits`` (x_test, y_test), else
    MNIST's test split read from ``mnist_path``.

``form_border(rng, cell) -> (cell, which)``
    A scanned cell (uint8) with some of a form's printed border drawn in a few pixels from its
    edge, as a form's cell is cut from its scan; ``which`` is one of ``FORM_BORDERS``.

``Truth``: ``kind``; ``text`` (the digits of each line left to right, lines joined by "\n":
"7", "2026", "12\n345", "" for blank); ``boxes`` (x0, y0, x1, y1 per digit, exclusive ends, in
image pixels, in reading order); ``size`` (width, height); ``fmt`` ("jpeg" | "png"); ``style``
(e.g. "paper/squared", "screen", "pen/thin", "font/cmr10"); ``sources`` (indices into the
digit pool); ``meta`` (the random choices: digit height, angle, ink, blur, JPEG quality...).

What the photos look like
-------------------------
Paper: off-white with a colour cast and fibre texture, plain, ruled (blue/grey lines, sometimes a
red margin line; handwriting often sits on a line) or squared (light blue/grey grid, about one to
two cells per digit height). Seen through a phone camera: rotated up to +-10 degrees, often with
slight perspective, sometimes a page bowing like a notebook near its spine, uneven exposure and a
light gradient, daylight-to-lamp white balance, sometimes a soft shadow (a heavily blurred
polygon) or the table beyond the sheet's edge, dust specks, focus or motion blur, sensor noise and
JPEG quality 60-95. Frames are landscape or portrait, longest side <= 1280 px (Telegram's limit).
Ink is black, blue, pencil grey or (rarely) red, alpha-blended so its anti-aliased edge looks like
ink; MNIST's soft 28 px strokes are re-sharpened after scaling and, in half the photos, thinned
towards a ballpoint's width. A digit's height is 6-60% of the frame's short side, anywhere in the
frame, never clipped. A number is 2-5 digits (no leading zero) written in a row: similar heights,
a wobbly common baseline, gaps of 0.1-0.45 digit heights, each digit slightly rotated; rarely two
digits nearly touch. About one in ten digit and number photos is a screenshot instead: a light
digit drawn on a dark canvas, lossless PNG, no camera effects. Blank photos are paper (with
``screen=True``: an empty dark canvas). A ``"crop"`` is no photo but a digit cut out to its own
ink, as a scanner's cell or a dataset's image gives it: 16-300 px high, a margin of 0-2 px (so it
touches the frame), mostly dark on light, PNG or JPEG. ``"lines"`` are 2-3 numbers written one
under another (a list, a phone number under another). An ``"amount"`` is a number as written in
a cheque's amount field: groups of digits with separators ("12.500", "1 000 000", "07-45",
"1,250.-"), digits often touching, a fine pen, on a security-printed background (fine wavy
lines, a tint), cut tight around the field, often grey-scale; with ``currency``, a price: a
``$`` or a ``€`` written before or after it (for the bench: training never draws one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from model.data import DataError

KINDS = ("digit", "number", "blank", "other", "nondigit", "crop", "lines", "amount")
MAX_SIDE = 1280  # Telegram's largest photo side
PHOTO_SIZES = ((1280, 960), (960, 1280), (1280, 720), (720, 1280), (800, 600), (640, 480))
SCREEN_SIZES = ((720, 1280), (1280, 720), (800, 800), (1024, 768), (600, 600))
SCREEN_SHARE = 0.1  # of "digit" and "number" photos; blanks are always paper
HEIGHT_RANGE = (0.06, 0.60)  # digit height as a fraction of the frame's short side
MAX_ANGLE = 10.0  # degrees of camera rotation
# "other" digits, not MNIST: a round pen along hand-made centre lines (several ways of writing
# each digit), or a typeface. OpenCV 5's putText no longer has the single-stroke Hershey fonts
# (its FONT_HERSHEY_* now select a built-in TrueType sans or italic), so the pen strokes are ours.
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
TTF_FONTS = (
    "DejaVuSans",
    "DejaVuSans-Oblique",
    "DejaVuSans-Bold",
    "DejaVuSerif",
    "DejaVuSerif-Italic",
    "DejaVuSansMono",
    "cmr10",
    "cmss10",
    "cmtt10",
    "STIXGeneral",
    "STIXGeneralItalic",
)
CV_FONTS = {"cv-sans": cv2.FONT_HERSHEY_SIMPLEX, "cv-italic": cv2.FONT_HERSHEY_SCRIPT_SIMPLEX}
PEN_SHARE = 0.65  # of "other" photos; the rest are typefaces
# "nondigit": things people photograph that are not digits — a short word, a doodle, a smudge,
# hatching, a tick or a star — which must come back as no_digit. (Training's own non-digits are
# drawn differently: single OpenCV glyphs and random walks, never these fonts or shapes.)
NONDIGIT_WORDS = ("hey", "Kraft", "MAX", "wax", "Peru", "NEW", "fax", "cream", "HWY", "yew",
                  "Marc", "exam", "Rex", "CAFE", "mew", "Hank")
# Training draws its words from this list instead (model/dataset.py), never the bench's.
TRAIN_WORDS = ("name", "Tel", "date", "Anna", "WEEK", "note", "Kim", "reCAP", "vex", "MENU",
               "crew", "HACK", "yarn", "Fax", "Emma", "park", "TAXES", "new", "March", "Kw")
NONDIGIT_MARKS = ("word", "doodle", "smudge", "hatching", "tick", "star")
INKS = ("black", "blue", "pencil", "red", "lightblue", "green", "purple")
SEPARATORS = ".,- "  # between groups of digits in amounts; " " is a wider gap
DEFAULT_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"

Box = tuple[int, int, int, int]


@dataclass
class Truth:
    """What a generated photo shows."""

    kind: str
    text: str
    boxes: list[Box]
    size: tuple[int, int]
    fmt: str
    style: str
    sources: list[int] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    # which digit each pixel's ink belongs to (uint8, the photo's size): 0 none, k the k-th
    # digit in reading order (labels the segmenter's crops for training)
    owners: np.ndarray | None = field(default=None, repr=False)


def load_test_digits(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test split only (x_test uint8 (N, 28, 28), y_test int64) from a Keras .npz."""
    path = Path(path or os.environ.get("MNIST_PATH") or DEFAULT_MNIST)
    if not path.is_file():
        raise DataError(f"MNIST file not found: {path} (set MNIST_PATH or pass a Keras .npz)")
    with np.load(path, allow_pickle=False) as f:
        if "x_test" not in f.files or "y_test" not in f.files:
            raise DataError(f"{path} lacks x_test/y_test: expected the Keras MNIST layout")
        images, labels = f["x_test"].astype(np.uint8), f["y_test"].astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"{path}: expected x_test (N, 28, 28) with N labels, got {images.shape}")
    return images, labels


@dataclass
class Digits:
    """A pool of handwritten digits to draw from: MNIST-style 28×28 images (soft felt-tip
    strokes, re-sharpened when drawn) or scanned glyphs (ink coverage, pen-sharp)."""

    glyphs: list[np.ndarray]
    labels: np.ndarray
    soft: bool
    name: str

    def __post_init__(self) -> None:
        self._pools = {d: np.flatnonzero(self.labels == d) for d in range(10)}

    @classmethod
    def mnist(cls, images: np.ndarray, labels: np.ndarray, name: str = "mnist") -> Digits:
        return cls(list(images), np.asarray(labels, np.int64), soft=True, name=name)

    @classmethod
    def scans(cls, cells: list[np.ndarray], labels: np.ndarray, name: str = "scans") -> Digits:
        """Scanned cells (RGB or grey uint8, dark ink on light paper, one digit each)."""
        return cls([scan_glyph(c) for c in cells], np.asarray(labels, np.int64), soft=False,
                   name=name)

    def draw(self, rng: np.random.Generator, label: int) -> tuple[np.ndarray, int]:
        """A glyph of `label` (ink coverage cropped to the ink) and its index in the pool."""
        pool = self._pools[label]
        if not len(pool):
            raise ValueError(f"no glyph of digit {label} in {self.name}")
        i = int(rng.choice(pool))
        glyph = self.glyphs[i]
        return (_mnist_glyph(glyph) if self.soft else glyph), i


def scan_glyph(cell: np.ndarray) -> np.ndarray:
    """A scanned cell (dark ink on light paper) → the digit's ink coverage in [0, 1], cropped
    to it; specks (dust, a neighbour's stroke) far smaller than the digit are left out."""
    alpha, digit = scan_ink(cell)
    near = cv2.dilate(digit.astype(np.uint8), np.ones((5, 5), np.uint8))
    return _crop(alpha * near) if digit.any() else alpha


def scan_ink(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A scanned cell → (its ink coverage in [0, 1], where the digit is: the ink's pieces at
    least 5% the size of the biggest)."""
    grey = cell if cell.ndim == 2 else cell.min(axis=2)  # blue ink is dark in red and green
    grey = grey.astype(np.float32)
    paper = float(np.percentile(grey, 90))
    ink = float(np.percentile(grey, 1))
    alpha = np.clip((paper - grey) / max(paper - ink, 1.0) * 1.15, 0, 1)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > 0.3).astype(np.uint8),
                                                           connectivity=8)
    if n <= 1:
        return alpha, np.zeros(alpha.shape, bool)
    area = stats[1:, cv2.CC_STAT_AREA]
    return alpha, np.isin(labels, np.flatnonzero(area >= 0.05 * area.max()) + 1)


FORM_BORDERS = ("side", "two sides", "corner", "box", "part")


def form_border(rng: np.random.Generator, cell: np.ndarray) -> tuple[np.ndarray, str]:
    """A scanned cell (uint8, BGR or grey) as a form's cell is cut from its scan: with some of
    the form's printed border at its edge (one side, two, a corner, the whole box or a piece
    of a side), 1-3% of the cell thick and 0-5% in from the cut. Returns a copy and which."""
    out = cell.copy()
    h, w = out.shape[:2]
    which = str(rng.choice(FORM_BORDERS))
    colour = rng.integers(0, 90, 3 if out.ndim == 3 else 1).tolist()
    thick = max(1, round(rng.uniform(0.01, 0.03) * min(h, w)))
    sides = {"side": [int(rng.integers(4))], "two sides": list(rng.choice(4, 2, replace=False)),
             "corner": [int(rng.integers(2)), int(rng.integers(2, 4))], "box": [0, 1, 2, 3],
             "part": [int(rng.integers(4))]}[which]
    for side in sides:
        inset = round(rng.uniform(0, 0.05) * min(h, w)) + thick // 2
        start, end = (rng.uniform(0, 0.6), 0.0) if which == "part" else (0.0, 1.0)
        end = end or start + rng.uniform(0.2, 0.4)
        x = (inset, w - 1 - inset)[side % 2]  # sides 0, 1: left, right; 2, 3: top, bottom
        y = (inset, h - 1 - inset)[side % 2]
        if side < 2:
            ends = (x, round(start * h)), (x, round(end * h))
        else:
            ends = (round(start * w), y), (round(end * w), y)
        cv2.line(out, *ends, colour, thick)
    return out, which


# --- glyphs: alpha masks (float32, 1 = full ink) cropped to the ink ---------------------------


def _crop(alpha: np.ndarray, level: float = 0.05) -> np.ndarray:
    ys, xs = np.nonzero(alpha > level)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _mnist_glyph(image: np.ndarray) -> np.ndarray:
    """An MNIST digit as ink coverage; faint strokes (a thin line's anti-aliasing in the scan)
    are brought up to the ink of their neighbourhood, as the pen laid them down."""
    a = image.astype(np.float32) / 255.0
    local = cv2.dilate(a, np.ones((3, 3), np.uint8))
    return _crop(np.minimum(a / np.maximum(local, 0.35), 1.0), 0.1)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list:
    """Points along an ellipse arc, angles in degrees, y pointing down (so clockwise on screen)."""
    t = np.radians(np.linspace(a0, a1, max(8, int(abs(a1 - a0) / 8))))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


# Centre lines in a box x 0..0.6, y 0..1 (y down): digit -> ways of writing it -> strokes.
PEN_DIGITS: dict[int, list[list[list]]] = {
    0: [[_arc(0.3, 0.5, 0.28, 0.49, -100, 265)], [_arc(0.3, 0.5, 0.2, 0.49, -90, 280)]],
    1: [
        [[(0.3, 0), (0.3, 1)]],
        [[(0.08, 0.28), (0.36, 0), (0.36, 1)]],  # European: a long flag
        [[(0.12, 0.22), (0.33, 0), (0.33, 1)], [(0.1, 1), (0.56, 1)]],  # flag and foot
    ],
    2: [
        [_arc(0.3, 0.27, 0.27, 0.26, 195, 380) + [(0.02, 1), (0.6, 1)]],
        [_arc(0.3, 0.3, 0.27, 0.3, 180, 390) + [(0.03, 1), (0.6, 0.97)]],  # round back
    ],
    3: [
        [_arc(0.3, 0.26, 0.26, 0.25, 200, 450), _arc(0.3, 0.74, 0.29, 0.26, 270, 520)],
        [[(0.04, 0), (0.56, 0), (0.24, 0.42)] + _arc(0.3, 0.72, 0.28, 0.28, 250, 520)],  # flat top
    ],
    4: [
        [[(0.46, 1), (0.46, 0), (0.0, 0.68), (0.6, 0.68)]],  # closed
        [[(0.12, 0), (0.04, 0.62), (0.6, 0.62)], [(0.46, 0.2), (0.46, 1)]],  # open
    ],
    5: [
        [[(0.56, 0), (0.1, 0), (0.06, 0.45)] + _arc(0.3, 0.68, 0.28, 0.3, 220, 500)],
        [
            [(0.08, 0.02), (0.05, 0.45)] + _arc(0.3, 0.68, 0.28, 0.3, 220, 500),
            [(0.08, 0.02), (0.58, 0)],
        ],
    ],
    6: [
        [_arc(0.6, 0.62, 0.55, 0.62, 250, 180) + _arc(0.31, 0.72, 0.26, 0.27, 180, 540)],
        [[(0.45, 0), (0.1, 0.55)] + _arc(0.31, 0.73, 0.25, 0.26, 200, 560)],  # straight back
    ],
    7: [
        [[(0.02, 0), (0.58, 0), (0.2, 1)]],
        [[(0.02, 0.08), (0.04, 0), (0.58, 0), (0.22, 1)], [(0.14, 0.52), (0.5, 0.5)]],  # European
        [[(0.02, 0), (0.58, 0)] + _arc(1.0, 1.0, 0.72, 1.0, 270, 180)],  # curved stem
    ],
    8: [
        [_arc(0.3, 0.25, 0.22, 0.24, 0, 360), _arc(0.3, 0.72, 0.28, 0.27, 0, 360)],
        [
            _arc(0.3, 0.25, 0.2, 0.24, 330, 90)
            + _arc(0.3, 0.72, 0.28, 0.27, 270, 630)
            + _arc(0.3, 0.25, 0.2, 0.24, 90, -30)
        ],  # one stroke
    ],
    9: [
        [_arc(0.3, 0.28, 0.27, 0.27, 0, 360) + [(0.57, 0.28), (0.52, 1)]],
        [_arc(0.3, 0.28, 0.27, 0.27, 0, 360) + _arc(-0.1, 0.28, 0.67, 0.7, 0, 100)],  # curved tail
    ],
}


def _pen_glyph(rng: np.random.Generator, label: int, style: dict) -> tuple[np.ndarray, str]:
    """One way of writing `label` with a round pen, ~120 px tall; and which way it was."""
    variants = PEN_DIGITS[label]
    k = int(rng.integers(len(variants)))
    size, pad = 120, 40
    widen = style["width"]
    canvas = np.zeros((size + 2 * pad, round(0.6 * size * widen) + 2 * pad), np.uint8)
    thickness = max(1, round(style["pen"] * size))
    for stroke in variants[k]:
        # A hand is not a plotter: each stroke lands a little shifted and scaled.
        pts = np.array(stroke, np.float32) * rng.uniform(0.95, 1.05, 2) + rng.normal(0, 0.015, 2)
        pts = pts * [size * widen, size] + pad
        cv2.polylines(
            canvas,
            [np.round(pts * 16).astype(np.int32)],
            False,
            255,
            thickness,
            cv2.LINE_AA,
            shift=4,
        )
    return _distort(rng, canvas.astype(np.float32) / 255.0, style), f"{label}{'abc'[k]}"


def _font_glyph(rng: np.random.Generator, label: int, style: dict) -> tuple[np.ndarray, str]:
    """`label` in a typeface (matplotlib's TrueType files, or OpenCV's built-in ones)."""
    name = style["font"]
    if name in CV_FONTS:
        canvas = np.zeros((420, 420), np.uint8)
        cv2.putText(
            canvas, str(label), (110, 300), CV_FONTS[name], 5.0, 255, style["weight"], cv2.LINE_AA
        )
    else:
        image = Image.new("L", (420, 420))
        font = ImageFont.truetype(str(FONT_DIR / f"{name}.ttf"), 200)
        ImageDraw.Draw(image).text((110, 60), str(label), fill=255, font=font)
        canvas = np.asarray(image)
    return _distort(rng, canvas.astype(np.float32) / 255.0, style), str(label)


def _distort(rng: np.random.Generator, alpha: np.ndarray, style: dict) -> np.ndarray:
    """The writer's slant (varying a little per digit) and an elastic wobble."""
    alpha = np.pad(_crop(alpha), 30)
    h, w = alpha.shape
    slant = style["slant"] + rng.normal(0, 0.04)
    shear = np.array([[1, -slant, slant * h / 2], [0, 1, 0]], np.float32)
    alpha = cv2.warpAffine(alpha, shear, (w, h), flags=cv2.INTER_LINEAR)
    amp = style["wobble"] * h
    # Bilinear: cv2.INTER_CUBIC used to be passed here as the third positional argument, which
    # is `dst`, so OpenCV's default INTER_LINEAR made every photo so far (and the released model).
    dx = cv2.resize(rng.normal(0, amp, (4, 4)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_LINEAR)
    dy = cv2.resize(rng.normal(0, amp, (4, 4)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_LINEAR)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    alpha = cv2.remap(alpha, gx + dx, gy + dy, cv2.INTER_LINEAR)
    return _crop(alpha)


def _scale_glyph(
    rng: np.random.Generator,
    alpha: np.ndarray,
    height: float,
    soft: bool,
    bold: float,
    thin: float = 1.0,
) -> np.ndarray:
    """Scale a glyph to `height` px; `soft` glyphs (MNIST) get pen-sharp edges back."""
    k = height / alpha.shape[0]
    size = (max(1, round(alpha.shape[1] * k)), max(1, round(alpha.shape[0] * k)))
    interp = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    a = np.clip(cv2.resize(alpha, size, interpolation=interp), 0, 1)
    if soft:
        # MNIST's anti-aliasing is ~2 source px wide; scaled up it would look like a felt tip in
        # fog. Re-threshold to a ~1.5 px ramp; the threshold `bold` sets the stroke width.
        if k > 2:  # smooth away the 28 px grid first, or edges come out as staircases
            a = cv2.GaussianBlur(a, (0, 0), 0.35 * k)
        ramp = min(1.0, 0.75 / k)
        lo = max(0.02, bold - ramp / 2)
        a = np.clip((a - lo) / ramp, 0, 1)
        # MNIST strokes are felt-tip thick (~15% of the height); a ballpoint's are about half.
        # Eat `1 - thin` of the stroke's half-width from both sides (distance transform).
        # Never by more than most of the thinnest stroke's half-width, or the digit falls apart.
        if thin < 1:
            dist = cv2.distanceTransform((a > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
            ridge = dist[(dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))]
            if len(ridge) and np.percentile(ridge, 90) >= 3:
                eat = min((1 - thin) * np.percentile(ridge, 90), 0.6 * np.percentile(ridge, 10))
                a = np.clip(dist - eat, 0, 1)
    return a


def _rotate(alpha: np.ndarray, degrees: float) -> np.ndarray:
    h, w = alpha.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(w * c + h * s)) + 2, int(np.ceil(w * s + h * c)) + 2
    m[:, 2] += (nw - w) / 2, (nh - h) / 2
    out = cv2.warpAffine(alpha, m, (nw, nh), flags=cv2.INTER_LINEAR)
    return _crop(out, 0.02) if out.max() > 0.02 else alpha


def _ink_span(alpha: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last index along `axis` where the glyph has real ink (not its faint fringe)."""
    idx = np.flatnonzero(alpha.max(axis=axis) > 0.3)
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, alpha.shape[1 - axis])


Item = np.ndarray | str  # a digit's glyph, or a separator from SEPARATORS
Placed = tuple[np.ndarray, int, int, bool]  # glyph, x, y, is it a digit


def _hairline(alpha: np.ndarray) -> np.ndarray:
    """Every stroke redrawn with a fine ballpoint: 3.5% of the digit's height, at least 1.6 px
    (a 0.4 mm line on a 12 mm digit), along its centre line (a morphological skeleton)."""
    solid = cv2.GaussianBlur(alpha, (0, 0), max(0.7, 0.006 * alpha.shape[0])) > 0.4
    # uint8 0/1 throughout (OpenCV's stubs type its results integer-or-float: no `~`, `&`)
    shape: np.ndarray = cv2.morphologyEx(solid.astype(np.uint8), cv2.MORPH_CLOSE,
                                         np.ones((3, 3), np.uint8))
    skeleton = np.zeros_like(shape)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    # Lantuéjoul: what each erosion step's opening removes, until nothing is left: after at
    # most h + w steps, since OpenCV's erosion takes the outside for ink and a glyph that
    # fills its whole box (a bold "1" or a separator's bar, cut tight) would never go
    for _ in range(sum(shape.shape)):
        if not shape.any():
            break
        eroded: np.ndarray = cv2.erode(shape, cross)
        skeleton |= shape & ~cast(np.ndarray, cv2.dilate(eroded, cross))
        shape = eroded
    if solid.any() and not skeleton.any():  # no centre line to draw: the glyph keeps its pen
        return alpha
    width = max(1.6, 0.035 * alpha.shape[0])
    up = 4  # drawn at 4× and area-averaged down: an anti-aliased edge
    big = cv2.resize(skeleton, None, fx=up, fy=up, interpolation=cv2.INTER_NEAREST)
    r = max(1, round(width * up / 2))
    big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.resize(big.astype(np.float32), (alpha.shape[1], alpha.shape[0]),
                      interpolation=cv2.INTER_AREA)


# A currency sign written beside an amount, as centre lines in a box x 0..0.6, y 0..1 (y down)
# like PEN_DIGITS: an S with a stroke through it, a C with two bars. (Training never draws these:
# model/dataset.py has its own.)
CURRENCY: dict[str, list[list]] = {
    "$": [_arc(0.3, 0.3, 0.26, 0.2, 340, 90) + _arc(0.3, 0.7, 0.28, 0.2, 270, 520),
          [(0.32, -0.1), (0.29, 1.1)]],
    "€": [_arc(0.42, 0.5, 0.38, 0.48, 305, 55), [(0.0, 0.4), (0.5, 0.4)],
          [(0.0, 0.58), (0.46, 0.58)]],
}


def _separator(rng: np.random.Generator, sep: str, height: float, stroke: float) -> np.ndarray:
    """A dot, comma, dash or currency sign as a pen of width `stroke` writes it (ink coverage)."""
    s = max(1, round(stroke))
    if sep in CURRENCY:  # written with more care than a dot: a finer line than the row's pen
        s = max(1, round(stroke * rng.uniform(0.5, 0.9)))
        tall = height * rng.uniform(0.8, 1.0)
        pad = 2 * s + round(0.15 * tall)
        canvas = np.zeros((round(tall) + 2 * pad, round(0.6 * tall) + 2 * pad), np.uint8)
        for line in CURRENCY[sep]:
            pts = np.array([(pad + x * tall + rng.normal(0, 0.02) * tall,
                             pad + y * tall + rng.normal(0, 0.02) * tall) for x, y in line])
            cv2.polylines(canvas, [np.round(pts * 4).astype(np.int32)], False, 255, s,
                          cv2.LINE_AA, shift=2)
        return _crop(canvas.astype(np.float32) / 255.0)
    size = round(height * 0.6) + 4 * s
    canvas = np.zeros((size, size), np.uint8)
    c = size // 2
    if sep == "-":
        half = round(rng.uniform(0.12, 0.22) * height)
        cv2.line(canvas, (c - half, c), (c + half, c + round(rng.normal(0, 1))), 255, s,
                 cv2.LINE_AA)
    else:
        cv2.circle(canvas, (c, c), max(1, round(0.7 * s)), 255, -1, cv2.LINE_AA)
        if sep == ",":
            tail = round(rng.uniform(0.12, 0.22) * height)
            cv2.line(canvas, (c, c), (c - tail // 3, c + tail), 255, max(1, s - 1), cv2.LINE_AA)
    return _crop(canvas.astype(np.float32) / 255.0)


def _row(
    rng: np.random.Generator,
    items: list[Item],
    height: float,
    soft: bool,
    touching: float = 0.03,
    pen: str | None = None,
) -> tuple[list[Placed], int, int]:
    """Lay glyphs out as a person writes a number: placed glyphs and the row's w, h."""
    bold = rng.uniform(0.25, 0.5)  # higher would erase the faint strokes some MNIST digits have
    thin = rng.uniform(0.45, 0.85) if soft and rng.random() < 0.5 else 1.0
    stroke = 1.6 if pen == "hairline" else rng.uniform(0.07, 0.14) * height
    many = len(items) > 1
    placed: list[Placed] = []
    right, after_sep = 0.0, False
    for i, g in enumerate(items):
        if isinstance(g, str):
            if g == " ":
                right += rng.uniform(0.25, 0.7) * height
            else:
                a = _separator(rng, g, height, stroke)
                x = right + rng.uniform(0.04, 0.2) * height
                base = -a.shape[0] + (a.shape[0] * 0.3 if g == "," else 0)
                y = base - (0.45 * height - a.shape[0] / 2 if g == "-" else 0)
                placed.append((a, round(x), round(y + rng.normal(0, 0.03) * height), False))
                right = x + a.shape[1]
            after_sep = True
            continue
        h = height * (rng.uniform(0.93, 1.07) if many else 1.0)
        a = _scale_glyph(rng, g, h, soft, bold, thin)
        if pen == "hairline":
            a = _hairline(a)
        if many:
            a = _rotate(a, rng.normal(0, 2.5))
        left, ink_right = _ink_span(a, 0)
        top, bottom = _ink_span(a, 1)
        gap = 0.0
        if i:
            gap = rng.uniform(0.1, 0.45) * height
            if after_sep:
                gap = rng.uniform(0.04, 0.2) * height
            elif rng.random() < touching:  # written touching, or overlapping a little
                gap = rng.uniform(-0.15, 0.02) * height
        x = right + gap - left
        y = -bottom + (rng.normal(0, 0.04) * height if many else 0)  # on a common baseline
        placed.append((a, round(x), round(y), True))
        right, after_sep = x + ink_right, False
    return _normalize(placed)


def _normalize(placed: list[Placed]) -> tuple[list[Placed], int, int]:
    """Shift placed glyphs so the top-left is (0, 0); also returns the width and height."""
    x0 = min(p[1] for p in placed)
    y0 = min(p[2] for p in placed)
    placed = [(a, px - x0, py - y0, d) for a, px, py, d in placed]
    width = max(px + a.shape[1] for a, px, _, _ in placed)
    return placed, width, max(py + a.shape[0] for a, _, py, _ in placed)


def _block(
    rng: np.random.Generator,
    rows: list[list[Item]],
    height: float,
    soft: bool,
    touching: float = 0.03,
    pen: str | None = None,
) -> tuple[list[Placed], int, int]:
    """Rows written one under another (a list of numbers), left-aligned give or take."""
    placed: list[Placed] = []
    top = 0.0
    for items in rows:
        row, _, rh = _row(rng, items, height, soft, touching, pen)
        indent = rng.uniform(0, 0.6) * height if len(rows) > 1 else 0.0
        placed += [(a, round(px + indent), round(py + top), d) for a, px, py, d in row]
        top += rh + rng.uniform(0.3, 0.9) * height
    return _normalize(placed)


# --- the scene ---------------------------------------------------------------------------------


def _lowres_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    h, w = shape
    small = rng.normal(0, 1, (max(2, h // cells), max(2, w // cells))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _camera(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, float]:
    """Homography from flat paper (frame-sized) to the frame: rotation, maybe perspective."""
    angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    moved = corners @ m[:, :2].T + m[:, 2]
    if rng.random() < 0.5:
        moved += rng.uniform(-0.04, 0.04, (4, 2)) * np.array([w, h], np.float32)
    return cv2.getPerspectiveTransform(corners, moved.astype(np.float32)), angle


def _apply(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), hom).reshape(-1, 2)


def _paper_colour(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(0.84, 0.98)
    cast = rng.choice(["neutral", "warm", "cool"], p=[0.5, 0.35, 0.15])
    tint = {"neutral": (0, 0, 0), "warm": (0.02, 0.0, -0.05), "cool": (-0.03, 0.0, 0.02)}[cast]
    return np.clip(np.array([base, base, base], np.float32) + np.array(tint, np.float32), 0, 1)


def _ink(rng: np.random.Generator, kind: str | None = None) -> tuple[str, np.ndarray, float]:
    if kind is None:
        kind = rng.choice(INKS, p=[0.41, 0.36, 0.12, 0.05, 0.03, 0.015, 0.015])
    elif kind not in INKS:
        raise ValueError(f"ink must be one of {INKS}, not {kind!r}")
    if kind == "lightblue":  # a washed-out ballpoint or a gel pen
        colour = np.array([rng.uniform(0.3, 0.5), rng.uniform(0.5, 0.65), rng.uniform(0.8, 0.95)],
                          np.float32)
        return str(kind), colour, float(rng.uniform(0.75, 0.95))
    if kind == "green":
        colour = np.array([rng.uniform(0.05, 0.25), rng.uniform(0.45, 0.6),
                           rng.uniform(0.1, 0.3)], np.float32)
        return str(kind), colour, float(rng.uniform(0.8, 1.0))
    if kind == "purple":
        colour = np.array([rng.uniform(0.4, 0.55), rng.uniform(0.1, 0.25), rng.uniform(0.5, 0.7)],
                          np.float32)
        return str(kind), colour, float(rng.uniform(0.8, 1.0))
    if kind == "red":  # a teacher's pen: mid-grey once the colour is gone
        colour = np.array([rng.uniform(0.6, 0.8), 0.1, 0.15], np.float32)
        opacity = rng.uniform(0.8, 1.0)
    elif kind == "black":
        colour, opacity = np.full(3, rng.uniform(0.05, 0.2)), rng.uniform(0.85, 1.0)
    elif kind == "blue":
        colour = np.array([rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.25), rng.uniform(0.4, 0.6)],
                          np.float32)
        opacity = rng.uniform(0.8, 1.0)
    else:
        colour, opacity = np.full(3, rng.uniform(0.25, 0.4)), rng.uniform(0.6, 0.85)
    return str(kind), np.asarray(colour, np.float32), float(opacity)


def _draw_lines(
    rng: np.random.Generator, shape: tuple[int, int], ruling: str, spacing: float, phase: float
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha of the printed ruling (lines or grid) and its colour."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    thick = max(1, round(spacing / rng.uniform(35, 70)))
    ys = np.arange(phase % spacing, h, spacing)
    for y in ys:
        yy = round(y * 16)
        cv2.line(mask, (0, yy), (w * 16, yy), 255, thick, cv2.LINE_AA, shift=4)
    if ruling == "squared":
        for x in np.arange(rng.uniform(0, spacing), w, spacing):
            xx = round(x * 16)
            cv2.line(mask, (xx, 0), (xx, h * 16), 255, thick, cv2.LINE_AA, shift=4)
    colour = (
        np.array([0.45, 0.6, 0.85], np.float32)
        if rng.random() < 0.65
        else np.full(3, rng.uniform(0.45, 0.65))
    )
    strength = rng.uniform(0.25, 0.7)
    return mask.astype(np.float32) * (strength / 255.0), np.asarray(colour, np.float32)


def _blend(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Paint `colour` over `img` in place with coverage `alpha`, only where alpha > 0."""
    idx = np.flatnonzero(alpha)
    if not len(idx):
        return
    flat, a = img.reshape(-1, 3), alpha.reshape(-1)[idx, None]
    flat[idx] -= (flat[idx] - colour) * a


_GRAIN: list[np.ndarray] = []


def _grain(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A (h, w) view of standard normal sensor noise: a random window of one fixed bank."""
    if not _GRAIN:  # drawing 1.2 M normals per photo would cost more than the rest of it
        _GRAIN.append(np.random.default_rng(2026).standard_normal((1536, 1536), np.float32))
    bank = _GRAIN[0]
    y, x = int(rng.integers(0, 1537 - h)), int(rng.integers(0, 1537 - w))
    return bank[y : y + h, x : x + w]


def _lighting(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, dict]:
    """A multiplicative light field: exposure, gradient, vignette and maybe a soft shadow."""
    sw, sh = max(8, w // 8), max(8, h // 8)
    gx, gy = np.meshgrid(np.linspace(-1, 1, sw), np.linspace(-1, 1, sh))
    theta = rng.uniform(0, 2 * np.pi)
    grad = gx * np.cos(theta) + gy * np.sin(theta)
    depth = rng.uniform(0.0, 0.3)
    light = rng.uniform(0.78, 1.05) * (1 - depth * (grad + 1) / 2)
    light *= 1 - rng.uniform(0, 0.15) * (gx**2 + gy**2) / 2  # vignette
    meta = {"exposure_gradient": round(float(depth), 3)}
    if rng.random() < 0.45:
        # A hand or phone shadow: a polygon entering from one side, blurred heavily.
        mask: np.ndarray = np.zeros((sh, sw), np.float32)
        side = rng.integers(4)
        n = rng.integers(3, 6)
        pts = rng.uniform(0, 1, (n, 2)) * [sw, sh]
        reach = rng.uniform(0.2, 0.7)
        if side == 0:
            pts[:, 0] *= reach
            pts = np.vstack([pts, [[0, 0], [0, sh]]])
        elif side == 1:
            pts[:, 0] = sw - pts[:, 0] * reach
            pts = np.vstack([pts, [[sw, 0], [sw, sh]]])
        elif side == 2:
            pts[:, 1] *= reach
            pts = np.vstack([pts, [[0, 0], [sw, 0]]])
        else:
            pts[:, 1] = sh - pts[:, 1] * reach
            pts = np.vstack([pts, [[0, sh], [sw, sh]]])
        hull = cv2.convexHull(pts.astype(np.float32)).astype(np.int32)
        cv2.fillPoly(mask, [hull], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.03, 0.12) * min(sw, sh) * 1.0 + 1)
        darkness = rng.uniform(0.2, 0.5)
        light *= 1 - darkness * mask
        meta["shadow"] = round(float(darkness), 2)
    light = cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return light, meta


def _fit_height(rng: np.random.Generator, rows: list[list[Item]], w: int, h: int) -> float:
    """A digit height, log-uniform in HEIGHT_RANGE of the short side, capped so the rows fit."""
    short = min(w, h)
    aspect = max(sum(g.shape[1] / g.shape[0] if isinstance(g, np.ndarray) else 0.5 for g in row)
                 + 0.45 * (len(row) - 1) for row in rows)
    tall = len(rows) + 0.9 * (len(rows) - 1)
    cap = min(HEIGHT_RANGE[1] * short, 0.8 * w / aspect, 0.8 * h / tall)
    lo = min(HEIGHT_RANGE[0] * short, cap * 0.6)
    return float(np.exp(rng.uniform(np.log(lo), np.log(cap))))


def _frame(rng: np.random.Generator, coverage: np.ndarray, placed: list[Placed],
           height: float, pad: np.ndarray) -> str:
    """Draw a circle or a box round the writing into `coverage`, `pad` × the digits' height
    clear of it (x, y), with a pen about as wide as the digits'; returns which."""
    x0 = min(px for _, px, _, _ in placed)
    y0 = min(py for _, _, py, _ in placed)
    x1 = max(px + a.shape[1] for a, px, _, _ in placed)
    y1 = max(py + a.shape[0] for a, _, py, _ in placed)
    pad = pad * height
    width = max(2, round(rng.uniform(0.05, 0.1) * height))
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    angle = float(rng.normal(0, 3))
    mask = np.zeros(coverage.shape, np.uint8)
    shape = str(rng.choice(["circle", "box"]))
    if shape == "circle":  # an ellipse through the corners of the padded block, and round it
        axes = (np.hypot(1, 1) / 2 * (x1 - x0 + pad[0]), np.hypot(1, 1) / 2 * (y1 - y0 + pad[1]))
        cv2.ellipse(mask, (centre, (2 * axes[0], 2 * axes[1]), angle), 255, width, cv2.LINE_AA)
    else:
        size = (x1 - x0 + 2 * pad[0], y1 - y0 + 2 * pad[1])
        corners = cv2.boxPoints((centre, size, angle)).round().astype(np.int32)
        cv2.polylines(mask, [corners], True, 255, width, cv2.LINE_AA)
    np.maximum(coverage, mask.astype(np.float32) / 255, out=coverage)
    return shape


def _paper_photo(
    rng: np.random.Generator,
    w: int,
    h: int,
    rows: list[list[Item]],
    soft: bool,
    touching: float = 0.03,
    pen: str | None = None,
    ink: str | None = None,
    framed: bool = False,
) -> tuple[np.ndarray, list[Box], dict, np.ndarray]:
    """Render rows of glyphs (maybe none) written on paper and photographed; float RGB, the
    digits' boxes, meta and which digit owns each pixel of ink (see Truth)."""
    hom, angle = _camera(rng, w, h)
    inv = np.linalg.inv(hom)
    # A notebook page bows near its spine: sheet content at x moves down by bow(x) px.
    bend = float(rng.uniform(-0.02, 0.02) * h) if rng.random() < 0.3 else 0.0
    # Render only the part of the flat sheet the camera sees.
    seen = _apply(inv, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))
    x0, y0 = np.floor(seen.min(0)).astype(int) - 2 - [0, round(abs(bend))]
    x1, y1 = np.ceil(seen.max(0)).astype(int) + 2 + [0, round(abs(bend))]
    sw, sh = x1 - x0, y1 - y0
    to_frame = hom @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
    meta: dict = {"angle": round(float(angle), 1)}
    if bend:
        meta["bend"] = round(bend, 1)

    def bow(x: np.ndarray) -> np.ndarray:
        return bend * ((x - sw / 2) / (sw / 2)) ** 2

    # Where the writing goes (sheet coordinates), checked to land inside the frame.
    placed: list[Placed] = []
    if rows:
        height = _fit_height(rng, rows, w, h)
        margin = 0.02 * min(w, h) + abs(bend)
        # a frame round the writing (see _frame) stays in the photo too: it pads the block
        pad = rng.uniform(0.2, 0.45, 2) if framed else np.zeros(2)
        for attempt in range(60):
            placed, rw, rh = _block(rng, rows, height, soft, touching, pen)
            cx = rng.uniform(rw / 2 + margin, w - rw / 2 - margin) if w > rw + 2 * margin else w / 2
            cy = rng.uniform(rh / 2 + margin, h - rh / 2 - margin) if h > rh + 2 * margin else h / 2
            ox, oy = _apply(inv, np.array([[cx, cy]], np.float32))[0] - [x0 + rw / 2, y0 + rh / 2]
            # how far a box, or a circle through the padded block's corners, reaches beyond it
            fx, fy = (np.maximum(pad * height, 0.21 * np.array([rw, rh]) + 0.71 * pad * height)
                      if framed else (0.0, 0.0))
            box = np.array([[ox - fx, oy - fy], [ox + rw + fx, oy - fy],
                            [ox + rw + fx, oy + rh + fy], [ox - fx, oy + rh + fy]], np.float32)
            corners = _apply(to_frame, box)
            if (corners.min(0) >= margin).all() and (
                corners.max(0) <= [w - margin, h - margin]
            ).all():
                placed = [(a, round(ox) + px, round(oy) + py, d) for a, px, py, d in placed]
                break
            if attempt % 10 == 9:
                height *= 0.85
        else:
            raise RuntimeError("could not place the digits inside the frame")
        meta["digit_height"] = round(height)

    texture = _lowres_noise(rng, (sh, sw), 48)
    texture += _lowres_noise(rng, (sh, sw), 4)
    texture *= 0.006
    texture += 1
    img = texture[..., None] * _paper_colour(rng)
    ruling = str(rng.choice(["plain", "ruled", "squared"], p=[0.38, 0.28, 0.34]))
    meta["paper"] = ruling
    if ruling != "plain":
        if placed:
            dh = meta["digit_height"]
            spacing = dh * (rng.uniform(0.5, 1.2) if ruling == "squared" else rng.uniform(1.1, 2.0))
            bottom = max(py + a.shape[0] for a, _, py, _ in placed)
            # On ruled paper people mostly write on the line.
            on_line = ruling == "ruled" and rng.random() < 0.6
            phase = bottom + rng.uniform(-0.02, 0.08) * dh if on_line else rng.uniform(0, spacing)
        else:
            spacing = min(w, h) * rng.uniform(0.025, 0.12)
            phase = rng.uniform(0, spacing)
        spacing = max(spacing, 8.0)
        alpha, colour = _draw_lines(rng, (sh, sw), ruling, spacing, phase)
        _blend(img, alpha, colour)
        meta["spacing"] = round(float(spacing), 1)
        if ruling == "ruled" and rng.random() < 0.35:
            # A red margin line, left of the writing.
            left = min((px for _, px, _, _ in placed), default=sw)
            mx = rng.uniform(0.05, 0.2) * sw
            if mx < left - 0.05 * sw:
                margin_mask = np.zeros((sh, sw), np.uint8)
                cv2.line(margin_mask, (round(mx), 0), (round(mx), sh), 255, 2, cv2.LINE_AA)
                _blend(img, margin_mask * (0.6 / 255.0), np.array([0.85, 0.35, 0.35], np.float32))

    owner_sheet = np.zeros((sh, sw), np.uint8)
    if placed:
        coverage = np.zeros((sh, sw), np.float32)
        for a, px, py, _ in placed:
            region = coverage[py : py + a.shape[0], px : px + a.shape[1]]
            np.maximum(region, a, out=region)
        _own(owner_sheet, placed, 0, 0)
        if framed:
            meta["frame"] = _frame(rng, coverage, placed, meta["digit_height"], pad)
        ink_name, colour, opacity = _ink(rng, ink)
        coverage *= opacity
        _blend(img, coverage, colour)
        meta["ink"] = ink_name

    if rng.random() < 0.3:  # dust and paper specks, too small to be a digit
        for _ in range(rng.integers(1, 8)):
            c = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
            r = int(rng.integers(1, max(2, round(0.003 * min(w, h))) + 1))
            cv2.circle(
                img, c, r, tuple(float(v) for v in rng.uniform(0.3, 0.7, 3)), -1, cv2.LINE_AA
            )

    # Warping 8-bit is several times faster than float; noise comes after, so no banding shows.
    sheet8 = _to_uint8(img)
    if bend:
        # Where each frame pixel looks on the flat sheet, then back along the bow.
        u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        m = np.linalg.inv(to_frame).astype(np.float32)
        den = m[2, 0] * u + m[2, 1] * v + m[2, 2]
        map_x = (m[0, 0] * u + m[0, 1] * v + m[0, 2]) / den
        map_y = ((m[1, 0] * u + m[1, 1] * v + m[1, 2]) / den - bow(map_x)).astype(np.float32)
        frame8 = cv2.remap(sheet8, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        owners = cv2.remap(owner_sheet, map_x, map_y, cv2.INTER_NEAREST)
    else:
        frame8 = cv2.warpPerspective(
            sheet8, to_frame, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        owners = cv2.warpPerspective(owner_sheet, to_frame, (w, h), flags=cv2.INTER_NEAREST)
    frame = frame8.astype(np.float32)
    frame *= np.float32(1 / 255)
    boxes = []
    for a, px, py, is_digit in placed:
        if not is_digit:
            continue
        ys, xs = np.nonzero(a > 0.3)
        pts = np.stack([xs + px + 0.5, ys + py + 0.5], 1)
        pts[:, 1] += bow(pts[:, 0])
        q = _apply(to_frame, pts)
        bx0, by0 = np.floor(q.min(0)).astype(int)
        bx1, by1 = np.ceil(q.max(0)).astype(int)
        boxes.append((max(0, bx0), max(0, by0), min(w, bx1), min(h, by1)))

    if rng.random() < 0.15:
        _table_edge(rng, frame, boxes, meta)
    light, light_meta = _lighting(rng, w, h)
    # White balance: daylight is neutral-to-blue, a desk lamp is warm (orange, not green).
    warmth = rng.uniform(-0.3, 1.0)
    gains = np.array([1 + 0.02 * warmth, 1 - 0.03 * warmth, 1 - 0.12 * warmth], np.float32)
    frame *= light[..., None] * gains
    meta.update(light_meta)
    return frame, boxes, meta, owners


def _own(owners: np.ndarray, placed: list[Placed], ox: int, oy: int) -> None:
    """Mark which digit (1 = the first in reading order) each pixel of ink belongs to."""
    k = 0
    for a, px, py, is_digit in placed:
        if not is_digit:
            continue
        k += 1
        region = owners[oy + py : oy + py + a.shape[0], ox + px : ox + px + a.shape[1]]
        region[a[: region.shape[0], : region.shape[1]] > 0.3] = k


def _table_edge(rng: np.random.Generator, frame: np.ndarray, boxes: list[Box], meta: dict) -> None:
    """Show the table beyond the sheet's edge on one side, away from the writing."""
    h, w = frame.shape[:2]
    side = int(rng.integers(4))
    depth = rng.uniform(0.03, 0.15) * (w if side < 2 else h)
    tilt = rng.uniform(-0.05, 0.05) * (h if side < 2 else w)
    if side == 0:  # left
        clear = min((b[0] for b in boxes), default=w)
    elif side == 1:
        clear = w - max((b[2] for b in boxes), default=0)
    elif side == 2:
        clear = min((b[1] for b in boxes), default=h)
    else:
        clear = h - max((b[3] for b in boxes), default=0)
    if depth + abs(tilt) + 5 > clear:
        return
    a, b = depth - tilt / 2, depth + tilt / 2
    pts = {
        0: [[0, 0], [a, 0], [b, h], [0, h]],
        1: [[w, 0], [w - a, 0], [w - b, h], [w, h]],
        2: [[0, 0], [w, 0], [w, b], [0, a]],
        3: [[0, h], [w, h], [w, h - b], [0, h - a]],
    }[side]
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(np.array(pts, np.float32) * 16).astype(np.int32)], 1.0,
                 cv2.LINE_AA, 4)
    tables = [[0.35, 0.25, 0.18], [0.3, 0.3, 0.32], [0.55, 0.45, 0.35]]
    table = np.asarray(rng.choice(tables), np.float32)
    table = table * rng.uniform(0.6, 1.1)
    _blend(frame, mask, table)
    meta["table_edge"] = True


def _screen_photo(
    rng: np.random.Generator,
    w: int,
    h: int,
    rows: list[list[Item]],
    soft: bool,
    touching: float = 0.03,
    pen: str | None = None,
) -> tuple[np.ndarray, list[Box], dict, np.ndarray]:
    """A screenshot of a drawing app: light digits drawn on a dark canvas."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.asarray(rng.choice([[0.0, 0.0, 0.0], [0.1, 0.1, 0.1], [0.05, 0.07, 0.15]]),
                        np.float32)
    boxes: list[Box] = []
    meta: dict = {}
    owners = np.zeros((h, w), np.uint8)
    if rows:
        height = _fit_height(rng, rows, w, h)
        m = round(0.02 * min(w, h))  # anywhere on the canvas, not touching its edge
        placed, rw, rh = _block(rng, rows, height, soft, touching, pen)
        while rw > w - 2 * m or rh > h - 2 * m:
            height *= 0.9
            placed, rw, rh = _block(rng, rows, height, soft, touching, pen)
        ox = int(rng.integers(m, max(m + 1, w - rw - m)))
        oy = int(rng.integers(m, max(m + 1, h - rh - m)))
        ink = np.zeros((h, w), np.float32)
        for a, px, py, is_digit in placed:
            x, y = ox + px, oy + py
            region = ink[y : y + a.shape[0], x : x + a.shape[1]]
            np.maximum(region, a[: region.shape[0], : region.shape[1]], out=region)
            if not is_digit:
                continue
            ys, xs = np.nonzero(a > 0.3)
            boxes.append((x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1))
        colour = np.asarray(
            rng.choice([[1.0, 1.0, 1.0], [0.95, 0.95, 0.9], [1.0, 0.9, 0.3], [0.4, 0.9, 1.0]]),
            np.float32,
        )
        _blend(img, ink, colour)
        _own(owners, placed, ox, oy)
        meta["digit_height"] = round(height)
    return img, boxes, meta, owners


# --- photos ------------------------------------------------------------------------------------


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] to uint8, rounded and saturated (OpenCV's SIMD, not numpy's wrap)."""
    np.maximum(img, 0, out=img)
    return cv2.convertScaleAbs(img, alpha=255)


def _encode(img: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    bgr = cv2.cvtColor(_to_uint8(img), cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {fmt}")
    return buf.tobytes()


def _nondigit_glyph(rng: np.random.Generator, words: tuple[str, ...],
                    marks: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Ink that is not a digit (alpha mask) and what it is."""
    what = marks[int(rng.integers(len(marks)))]
    if what == "word":
        font = str(rng.choice(TTF_FONTS))
        word = str(rng.choice(words))
        image = Image.new("L", (160 * len(word), 320))
        draw = ImageDraw.Draw(image)
        draw.text((40, 40), word, fill=255, font=ImageFont.truetype(str(FONT_DIR / f"{font}.ttf"),
                                                                    180))
        style = {"slant": float(rng.uniform(-0.2, 0.2)), "wobble": float(rng.uniform(0, 0.01))}
        return _distort(rng, np.asarray(image, np.float32) / 255.0, style), f"word/{font}"
    canvas: np.ndarray = np.zeros((400, 400), np.uint8)
    pen = int(rng.integers(4, 22))
    if what == "doodle":  # a loose curve looping over itself: a cloud, a spiral, a cat
        t = np.linspace(0, rng.uniform(4, 9) * np.pi, 200)
        r = 120 * (0.5 + 0.5 * np.sin(t * rng.uniform(0.3, 0.8)))
        pts = np.stack([200 + r * np.cos(t), 200 + 0.7 * r * np.sin(t)], 1)
        cv2.polylines(canvas, [pts.astype(np.int32)], False, 255, pen, cv2.LINE_AA)
    elif what == "smudge":  # a thumb print or a coffee drop
        cv2.ellipse(canvas, (200, 200), (int(rng.integers(50, 150)), int(rng.integers(50, 150))),
                    float(rng.uniform(0, 180)), 0, 360, 255, -1)
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(5, 25))
    elif what == "hatching":  # shading a box
        gap = int(rng.integers(18, 40))
        for x in range(0, 400, gap):
            cv2.line(canvas, (x, 60), (x - 120, 340), 255, pen // 2 + 2, cv2.LINE_AA)
    elif what == "tick":  # a check mark in a box
        cv2.rectangle(canvas, (60, 60), (340, 340), 255, pen // 2 + 2, cv2.LINE_AA)
        tick = np.array([[110, 200], [180, 280], [320, 90]], np.int32)
        cv2.polylines(canvas, [tick], False, 255, pen, cv2.LINE_AA)
    else:  # a five-pointed star drawn in one stroke
        angles = np.pi / 2 + np.arange(6) * 4 * np.pi / 5
        pts = np.stack([200 + 150 * np.cos(angles), 200 - 150 * np.sin(angles)], 1)
        cv2.polylines(canvas, [pts.astype(np.int32)], False, 255, pen, cv2.LINE_AA)
    return _crop(canvas.astype(np.float32) / 255.0), what


def _other_style(rng: np.random.Generator) -> dict:
    """A writer (pen) or a typeface, for the whole photo."""
    if rng.random() < PEN_SHARE:
        pen = float(np.exp(rng.uniform(np.log(0.03), np.log(0.16))))  # fine liner .. marker
        name = "pen/" + ("thin" if pen < 0.05 else "medium" if pen < 0.09 else "marker")
        return {
            "name": name,
            "pen": pen,
            "width": float(rng.uniform(0.75, 1.2)),
            "slant": float(rng.uniform(-0.35, 0.35)),
            "wobble": float(rng.uniform(0, 0.03)),
        }
    font = str(rng.choice([*TTF_FONTS, *CV_FONTS]))
    return {
        "name": f"font/{font}",
        "font": font,
        "weight": int(rng.choice([1, 1, 5])),
        "slant": float(rng.uniform(-0.15, 0.15)),
        "wobble": float(rng.uniform(0, 0.015)),
    }


def _number_text(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 6))
    return str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, n - 1))


def _amount_text(rng: np.random.Generator, currency: bool = False) -> str:
    """An amount as people write it: "12.500", "1 000 000", "07-45", "1,250.-", "350"; with
    `currency`, a price: "$ 25", "€12.500", "1 250 $"."""
    if currency:
        sign = str(rng.choice(list(CURRENCY)))
        amount = _amount_text(rng)
        if rng.random() < 0.7:
            return sign + (" " if rng.random() < 0.5 else "") + amount
        return amount + " " + sign
    style = int(rng.integers(5))
    if style == 0:  # a plain number of 2-7 digits
        n = int(rng.integers(2, 8))
        return str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, n - 1))
    if style == 1:  # a time or a code: two groups of two
        return f"{rng.integers(0, 24):02d}{rng.choice(['-', '.'])}{rng.integers(0, 60):02d}"
    thousands = str(rng.choice([".", ",", " "]))
    value = int(np.exp(rng.uniform(np.log(1000), np.log(9_999_999))))
    if rng.random() < 0.5:
        value = value // 100 * 100  # amounts are round more often than not
    groups = f"{value:,}".split(",")
    text = thousands.join(groups)
    if style == 3:
        text += str(rng.choice([".-", "-", ",-"]))
    elif style == 4 and thousands != ",":
        text += "," + f"{rng.integers(0, 100):02d}"
    return text


def _items(rng: np.random.Generator, text: str, digits: Digits) -> tuple[list[Item], list[int]]:
    """A line of text → glyphs (digits drawn from the pool) and separators; the sources."""
    items: list[Item] = []
    sources = []
    for ch in text:
        if ch.isdigit():
            glyph, index = digits.draw(rng, int(ch))
            items.append(glyph)
            sources.append(index)
        else:
            items.append(ch)
    return items, sources


def make_photo(
    rng: np.random.Generator,
    digits: Digits | None,
    kind: str,
    *,
    size: tuple[int, int] | None = None,
    screen: bool | None = None,
    ink: str | None = None,
    pen: str | None = None,
    touching: float = 0.03,
    words: tuple[str, ...] = NONDIGIT_WORDS,
    marks: tuple[str, ...] = NONDIGIT_MARKS,
    frame: bool = False,
    currency: bool = False,
) -> tuple[bytes, Truth]:
    """One photo of `kind` and what it shows; handwriting drawn from `digits`. `frame`: the
    writer drew a circle or a box round the writing (paper photos of digits or numbers).
    `currency`: an amount written with a currency sign before or after it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if frame and (kind not in ("digit", "number") or screen):
        raise ValueError("frame is for paper photos of digits or numbers")
    if currency and kind != "amount":
        raise ValueError("currency is for amounts")
    if pen not in (None, "hairline"):
        raise ValueError(f"pen must be None or 'hairline', not {pen!r}")
    if ink is not None and ink not in INKS:
        raise ValueError(f"ink must be one of {INKS}, not {ink!r}")
    needs_digits = kind in ("digit", "number", "crop", "lines", "amount")
    if needs_digits and digits is None:
        raise ValueError(f"kind {kind!r} needs a pool of digits")
    sources: list[int] = []
    rows: list[list[Item]] = []
    style_meta: dict = {}
    soft = digits.soft if digits is not None else False
    if kind == "crop":
        assert digits is not None
        return _crop_photo(rng, digits)
    if kind == "amount":
        assert digits is not None
        return _amount_photo(rng, digits, size, ink, pen, touching, currency)
    if kind in ("digit", "number", "lines"):
        assert digits is not None
        if kind == "digit":
            lines = [str(rng.integers(0, 10))]
        elif kind == "number":
            lines = [_number_text(rng)]
        else:
            lines = [_number_text(rng) if rng.random() < 0.8 else str(rng.integers(0, 10))
                     for _ in range(int(rng.integers(2, 4)))]
        for line in lines:
            items, drawn = _items(rng, line, digits)
            rows.append(items)
            sources += drawn
        text = "\n".join(lines)
    elif kind == "other":
        text = str(rng.integers(0, 10)) if rng.random() < 0.7 else _number_text(rng)
        style_meta = _other_style(rng)
        make = _pen_glyph if style_meta["name"].startswith("pen/") else _font_glyph
        drawn_glyphs = [make(rng, int(ch), style_meta) for ch in text]
        rows = [[g for g, _ in drawn_glyphs]]
        style_meta["variants"] = [v for _, v in drawn_glyphs]
    elif kind == "nondigit":
        text = ""
        glyph, what = _nondigit_glyph(rng, words, marks)
        rows = [[glyph]]
        style_meta = {"name": f"nondigit/{what}"}
    else:
        text = ""
    if screen is None:
        # a frame is drawn on paper: framed writing is never a screenshot
        screen = not frame and kind in ("digit", "number", "lines") and rng.random() < SCREEN_SHARE
    sizes = SCREEN_SIZES if screen else PHOTO_SIZES
    w, h = size or sizes[rng.integers(len(sizes))]
    if max(w, h) > MAX_SIDE:
        raise ValueError(f"size {w}x{h} exceeds Telegram's {MAX_SIDE} px")

    if screen:
        img, boxes, meta, owners = _screen_photo(rng, w, h, rows, soft, touching, pen)
        fmt, style = "png", "screen"
    else:
        img, boxes, meta, owners = _paper_photo(rng, w, h, rows, soft, touching, pen, ink, frame)
        style = style_meta.get("name") or f"paper/{meta['paper']}"
        img = _optics(rng, img, meta)
        fmt = "jpeg"
    quality = int(rng.integers(60, 96))
    if fmt == "jpeg":
        meta["quality"] = quality
    if pen:
        meta["pen"] = pen
    meta.update({k: v for k, v in style_meta.items() if k != "name"})
    boxes = [cast(Box, tuple(int(v) for v in b)) for b in boxes]
    if kind == "nondigit":  # no digit to find; where the ink is stays in meta
        meta["ink_box"], boxes = boxes[0], []
        owners[:] = 0
    truth = Truth(kind, text, boxes, (w, h), fmt, style, sources, meta, owners)
    return _encode(img, fmt, quality), truth


def _optics(rng: np.random.Generator, img: np.ndarray, meta: dict) -> np.ndarray:
    """A phone camera's focus or motion blur, sensor noise and blotchy chroma noise."""
    h, w = img.shape[:2]
    sigma = rng.uniform(0.3, 1.4) * min(w, h) / 960
    img = cast(np.ndarray, cv2.GaussianBlur(img, (0, 0), sigma))  # keeps img's dtype
    meta["blur"] = round(float(sigma), 2)
    if rng.random() < 0.15:
        length = int(rng.integers(3, 8))
        kernel: np.ndarray = np.zeros((length, length), np.float32)
        cv2.line(kernel, (0, length // 2), (length - 1, length // 2), 1.0)
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        img = cast(np.ndarray, cv2.filter2D(img, -1, kernel / kernel.sum()))
        meta["motion_blur"] = length
    noise = rng.uniform(0.004, 0.025)
    img += (_grain(rng, h, w) * noise)[..., None]
    chroma = rng.standard_normal((max(1, h // 4), max(1, w // 4), 3), dtype=np.float32)
    img += cv2.resize(chroma * (noise / 2), (w, h), interpolation=cv2.INTER_LINEAR)
    meta["noise"] = round(float(noise), 3)
    return img


def _crop_photo(rng: np.random.Generator, digits: Digits) -> tuple[bytes, Truth]:
    """A digit cut out to its own ink (see the module's docstring)."""
    label = int(rng.integers(0, 10))
    glyph, index = digits.draw(rng, label)
    height = int(np.exp(rng.uniform(np.log(16), np.log(300))))
    width = max(1, round(glyph.shape[1] * height / glyph.shape[0]))
    shrinking = height < glyph.shape[0]
    alpha = cv2.resize(glyph, (width, height),
                       interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    margin = int(rng.integers(0, 3))
    alpha = cv2.copyMakeBorder(alpha.clip(0, 1), margin, margin, margin, margin,
                               cv2.BORDER_CONSTANT, value=0)
    dark_on_light = rng.random() < 0.8
    if dark_on_light:
        paper, ink = rng.uniform(0.8, 1.0), rng.uniform(0.0, 0.35)
    else:
        paper, ink = rng.uniform(0.0, 0.2), rng.uniform(0.75, 1.0)
    img = np.repeat((paper + (ink - paper) * alpha)[..., None], 3, axis=2).astype(np.float32)
    fmt = "png" if rng.random() < 0.5 else "jpeg"
    quality = int(rng.integers(70, 96))
    h, w = img.shape[:2]
    style = "crop/" + ("dark-on-light" if dark_on_light else "light-on-dark")
    meta = {"height": height, "margin": margin, **({"quality": quality} if fmt == "jpeg" else {})}
    truth = Truth("crop", str(label), [(margin, margin, w - margin, h - margin)], (w, h), fmt,
                  style, [index], meta, (alpha > 0.3).astype(np.uint8))
    return _encode(img, fmt, quality), truth


def _security_print(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A cheque's background: fine wavy lines or a dot screen at low contrast (ink coverage)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(3, 9)
    if rng.random() < 0.6:
        wave = rng.uniform(2, 12) * np.sin(xx / rng.uniform(15, 60) + rng.uniform(0, 6))
        pattern = 0.5 + 0.5 * np.cos(2 * np.pi * (yy + wave + rng.uniform(-0.3, 0.3) * xx) / period)
    else:
        pattern = (0.5 + 0.25 * np.cos(2 * np.pi * xx / period)
                   + 0.25 * np.cos(2 * np.pi * yy / period))
    return (pattern**3 * rng.uniform(0.1, 0.35)).astype(np.float32)


def _amount_photo(
    rng: np.random.Generator,
    digits: Digits,
    size: tuple[int, int] | None,
    ink: str | None,
    pen: str | None,
    touching: float,
    currency: bool = False,
) -> tuple[bytes, Truth]:
    """A cheque's amount field, cut tight: see the module's docstring."""
    text = _amount_text(rng, currency)
    items, sources = _items(rng, text, digits)
    height = float(rng.uniform(28, 90))
    placed, rw, rh = _row(rng, items, height, digits.soft, max(touching, 0.25),
                          pen or ("hairline" if rng.random() < 0.4 else None))
    mx, my = (int(rng.uniform(0.03, 0.5) * height) for _ in range(2))
    w, h = size or (rw + 2 * mx, rh + 2 * my)
    ox, oy = max(0, (w - rw) // 2), max(0, (h - rh) // 2)
    tint = np.array([rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0), rng.uniform(0.8, 1.0)],
                    np.float32)
    img = np.ones((h, w, 3), np.float32) * tint
    pattern_colour = tint * np.asarray(rng.uniform(0.3, 0.8, 3), np.float32)
    _blend(img, _security_print(rng, h, w), pattern_colour)
    meta: dict = {"digit_height": round(height), "tint": [round(float(v), 2) for v in tint]}
    if rng.random() < 0.4:  # the printed line the amount is written on, or the field's box
        line = np.zeros((h, w), np.uint8)
        y = min(h - 1, oy + rh + int(rng.integers(0, max(1, my))))
        cv2.line(line, (0, y), (w, y), 255, int(rng.integers(1, 3)))
        if rng.random() < 0.4:
            cv2.rectangle(line, (0, 0), (w - 1, h - 1), 255, int(rng.integers(1, 3)))
        _blend(img, line.astype(np.float32) / 255 * 0.8, np.array([0.3, 0.3, 0.35], np.float32))
        meta["printed_line"] = True
    coverage = np.zeros((h, w), np.float32)
    owners = np.zeros((h, w), np.uint8)
    _own(owners, placed, ox, oy)
    boxes = []
    for a, px, py, is_digit in placed:
        x, y = ox + px, oy + py
        region = coverage[y : y + a.shape[0], x : x + a.shape[1]]
        np.maximum(region, a[: region.shape[0], : region.shape[1]], out=region)
        if is_digit:
            ys, xs = np.nonzero(a[: region.shape[0], : region.shape[1]] > 0.3)
            boxes.append((x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1))
    ink_name, colour, opacity = _ink(rng, ink or str(rng.choice(["black", "blue", "blue"])))
    _blend(img, coverage * opacity, colour)
    img = _optics(rng, img, meta)
    if rng.random() < 0.6:  # archives keep cheques in grey
        grey = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2GRAY)
        img = np.repeat(grey[..., None], 3, axis=2)
        meta["grey"] = True
    fmt = "png" if rng.random() < 0.3 else "jpeg"
    quality = int(rng.integers(70, 96))
    meta.update({"ink": ink_name, "written": text, "pen": pen, "quality": quality})
    digits_only = "".join(ch for ch in text if ch.isdigit())
    boxes = [cast(Box, tuple(int(v) for v in b)) for b in boxes]
    truth = Truth("amount", digits_only, boxes, (w, h), fmt, f"amount/{ink_name}", sources,
                  meta, owners)
    return _encode(img, fmt, quality), truth


def photo_set(
    n: int,
    kind: str,
    seed: int = 0,
    mnist_path: str | os.PathLike | None = None,
    *,
    size: tuple[int, int] | None = None,
    screen: bool | None = None,
    test_digits: tuple[np.ndarray, np.ndarray] | None = None,
    digits: Digits | None = None,
    ink: str | None = None,
    pen: str | None = None,
    touching: float = 0.03,
    marks: tuple[str, ...] = NONDIGIT_MARKS,
    frame: bool = False,
    currency: bool = False,
) -> list[tuple[bytes, Truth]]:
    """n photos of `kind`; photo i depends only on (seed, kind, i) (and the pool of digits)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if digits is None and kind in ("digit", "number", "crop", "lines", "amount"):
        images, labels = test_digits if test_digits is not None else load_test_digits(mnist_path)
        digits = Digits.mnist(images, labels, "mnist-test")
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, KINDS.index(kind), i])
        out.append(make_photo(rng, digits, kind, size=size, screen=screen, ink=ink, pen=pen,
                              touching=touching, marks=marks, frame=frame,
                              currency=currency))
    return out
