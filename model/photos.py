"""Realistic phone photos of handwritten digits and numbers, for training, tests and benches.

Honesty first: the handwriting comes from MNIST's *test* split only (``x_test``, ``y_test``). The
model trains on ``x_train``, so these photos never show it a digit it has seen. `load_test_digits`
reads only the two test arrays from the .npz, and `make_photo` / `photo_set` take test arrays
only; each `Truth` lists the ``x_test`` indices it drew (``sources``). The ``"other"`` kind uses
no MNIST at all and stands in for writers and scanners the project has never seen: digits drawn
with a round pen (thin liner to marker) along hand-made centre lines, several ways of writing each
digit (European 1 with flag or foot, crossed 7, open 4...), or typefaces (DejaVu, Computer Modern,
STIX, OpenCV's own), slanted and elastically wobbled, then photographed like the rest.

API
---
``KINDS = ("digit", "number", "blank", "other", "nondigit", "crop")``

``load_test_digits(path=None) -> (x_test, y_test)``
    uint8 (N, 28, 28) and int labels from a Keras-layout mnist.npz (path, else $MNIST_PATH, else
    ../shared/data/mnist.npz). ``x_train`` is never read.

``make_photo(rng, test_images, test_labels, kind, *, size=None, screen=None) -> (bytes, Truth)``
    One photo from a ``numpy.random.Generator``. ``size=(width, height)`` forces the frame;
    ``screen=False`` forbids (``True`` forces) the white-on-black screenshot style. The images
    may be None for ``"blank"`` and ``"other"``.

``photo_set(n, kind, seed=0, mnist_path=None, *, size=None, screen=None, test_digits=None)``
    ``-> list[(bytes, Truth)]``: n photos; photo i depends only on (seed, kind, i).

``Truth``: ``kind``; ``text`` (the digits left to right: "7", "2026", "" for blank); ``boxes``
(x0, y0, x1, y1 per digit, exclusive ends, in image pixels, left to right); ``size`` (width,
height); ``fmt`` ("jpeg" | "png"); ``style`` (e.g. "paper/squared", "screen",
"pen/thin", "font/cmr10"); ``sources`` (x_test indices); ``meta`` (the random choices: digit
height, angle, ink, blur, JPEG quality...).

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
touches the frame), mostly dark on light, PNG or JPEG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from model.data import DataError

KINDS = ("digit", "number", "blank", "other", "nondigit", "crop")
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
        pts = np.float32(stroke) * rng.uniform(0.95, 1.05, 2) + rng.normal(0, 0.015, 2)
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
    shear = np.float32([[1, -slant, slant * h / 2], [0, 1, 0]])
    alpha = cv2.warpAffine(alpha, shear, (w, h), flags=cv2.INTER_LINEAR)
    amp = style["wobble"] * h
    dx = cv2.resize(rng.normal(0, amp, (4, 4)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
    dy = cv2.resize(rng.normal(0, amp, (4, 4)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
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


def _row(
    rng: np.random.Generator, glyphs: list[np.ndarray], height: float, soft: bool
) -> tuple[list[tuple[np.ndarray, int, int]], int, int]:
    """Lay glyphs out as a person writes a number: (patch, x, y) list and the row's w, h."""
    bold = rng.uniform(0.25, 0.5)  # higher would erase the faint strokes some MNIST digits have
    thin = rng.uniform(0.45, 0.85) if soft and rng.random() < 0.5 else 1.0
    many = len(glyphs) > 1
    placed, right = [], 0.0
    for i, g in enumerate(glyphs):
        h = height * (rng.uniform(0.93, 1.07) if many else 1.0)
        a = _scale_glyph(rng, g, h, soft, bold, thin)
        if many:
            a = _rotate(a, rng.normal(0, 2.5))
        left, ink_right = _ink_span(a, 0)
        top, bottom = _ink_span(a, 1)
        gap = 0.0
        if i:
            gap = rng.uniform(0.1, 0.45) * height
            if rng.random() < 0.03:  # rarely, two digits nearly touch
                gap = rng.uniform(0.0, 0.04) * height
        x = right + gap - left
        y = -bottom + (rng.normal(0, 0.04) * height if many else 0)  # on a common baseline
        placed.append((a, round(x), round(y)))
        right = x + ink_right
    x0 = min(p[1] for p in placed)
    y0 = min(p[2] for p in placed)
    placed = [(a, px - x0, py - y0) for a, px, py in placed]
    width = max(px + a.shape[1] for a, px, _ in placed)
    return placed, width, max(py + a.shape[0] for a, _, py in placed)


# --- the scene ---------------------------------------------------------------------------------


def _lowres_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    h, w = shape
    small = rng.normal(0, 1, (max(2, h // cells), max(2, w // cells))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _camera(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, float]:
    """Homography from flat paper (frame-sized) to the frame: rotation, maybe perspective."""
    angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners @ m[:, :2].T + m[:, 2]
    if rng.random() < 0.5:
        moved += rng.uniform(-0.04, 0.04, (4, 2)) * np.float32([w, h])
    return cv2.getPerspectiveTransform(corners, moved.astype(np.float32)), angle


def _apply(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), hom).reshape(-1, 2)


def _paper_colour(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(0.84, 0.98)
    cast = rng.choice(["neutral", "warm", "cool"], p=[0.5, 0.35, 0.15])
    tint = {"neutral": (0, 0, 0), "warm": (0.02, 0.0, -0.05), "cool": (-0.03, 0.0, 0.02)}[cast]
    return np.clip(np.float32([base, base, base]) + np.float32(tint), 0, 1)


def _ink(rng: np.random.Generator) -> tuple[str, np.ndarray, float]:
    kind = rng.choice(["black", "blue", "pencil", "red"], p=[0.43, 0.38, 0.14, 0.05])
    if kind == "red":  # a teacher's pen: mid-grey once the colour is gone
        colour, opacity = np.float32([rng.uniform(0.6, 0.8), 0.1, 0.15]), rng.uniform(0.8, 1.0)
    elif kind == "black":
        colour, opacity = np.full(3, rng.uniform(0.05, 0.2)), rng.uniform(0.85, 1.0)
    elif kind == "blue":
        colour = np.float32([rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.25), rng.uniform(0.4, 0.6)])
        opacity = rng.uniform(0.8, 1.0)
    else:
        colour, opacity = np.full(3, rng.uniform(0.25, 0.4)), rng.uniform(0.6, 0.85)
    return str(kind), np.float32(colour), float(opacity)


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
        np.float32([0.45, 0.6, 0.85])
        if rng.random() < 0.65
        else np.full(3, rng.uniform(0.45, 0.65))
    )
    strength = rng.uniform(0.25, 0.7)
    return mask.astype(np.float32) * (strength / 255.0), np.float32(colour)


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
        mask = np.zeros((sh, sw), np.float32)
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


def _fit_height(rng: np.random.Generator, glyphs: list[np.ndarray], w: int, h: int) -> float:
    """A digit height, log-uniform in HEIGHT_RANGE of the short side, capped so the row fits."""
    short = min(w, h)
    aspect = sum(g.shape[1] / g.shape[0] for g in glyphs) + 0.45 * (len(glyphs) - 1)
    cap = min(HEIGHT_RANGE[1] * short, 0.8 * w / aspect, 0.8 * h)
    lo = min(HEIGHT_RANGE[0] * short, cap * 0.6)
    return float(np.exp(rng.uniform(np.log(lo), np.log(cap))))


def _paper_photo(
    rng: np.random.Generator,
    w: int,
    h: int,
    glyphs: list[np.ndarray],
    soft: bool,
) -> tuple[np.ndarray, list[Box], dict]:
    """Render glyphs (maybe none) written on paper and photographed; float RGB, boxes, meta."""
    hom, angle = _camera(rng, w, h)
    inv = np.linalg.inv(hom)
    # A notebook page bows near its spine: sheet content at x moves down by bow(x) px.
    bend = float(rng.uniform(-0.02, 0.02) * h) if rng.random() < 0.3 else 0.0
    # Render only the part of the flat sheet the camera sees.
    seen = _apply(inv, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
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
    placed: list[tuple[np.ndarray, int, int]] = []
    if glyphs:
        height = _fit_height(rng, glyphs, w, h)
        margin = 0.02 * min(w, h) + abs(bend)
        for attempt in range(60):
            placed, rw, rh = _row(rng, glyphs, height, soft)
            cx = rng.uniform(rw / 2 + margin, w - rw / 2 - margin) if w > rw + 2 * margin else w / 2
            cy = rng.uniform(rh / 2 + margin, h - rh / 2 - margin) if h > rh + 2 * margin else h / 2
            ox, oy = _apply(inv, np.float32([[cx, cy]]))[0] - [x0 + rw / 2, y0 + rh / 2]
            box = np.float32([[ox, oy], [ox + rw, oy], [ox + rw, oy + rh], [ox, oy + rh]])
            corners = _apply(to_frame, box)
            if (corners.min(0) >= margin).all() and (
                corners.max(0) <= [w - margin, h - margin]
            ).all():
                placed = [(a, round(ox) + px, round(oy) + py) for a, px, py in placed]
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
            bottom = max(py + a.shape[0] for a, _, py in placed)
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
            left = min((px for _, px, _ in placed), default=sw)
            mx = rng.uniform(0.05, 0.2) * sw
            if mx < left - 0.05 * sw:
                margin_mask = np.zeros((sh, sw), np.uint8)
                cv2.line(margin_mask, (round(mx), 0), (round(mx), sh), 255, 2, cv2.LINE_AA)
                _blend(img, margin_mask * (0.6 / 255.0), np.float32([0.85, 0.35, 0.35]))

    if placed:
        ink = np.zeros((sh, sw), np.float32)
        for a, px, py in placed:
            region = ink[py : py + a.shape[0], px : px + a.shape[1]]
            np.maximum(region, a, out=region)
        ink_name, colour, opacity = _ink(rng)
        ink *= opacity
        _blend(img, ink, colour)
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
    else:
        frame8 = cv2.warpPerspective(
            sheet8, to_frame, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    frame = frame8.astype(np.float32)
    frame *= np.float32(1 / 255)
    boxes = []
    for a, px, py in placed:
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
    gains = np.float32([1 + 0.02 * warmth, 1 - 0.03 * warmth, 1 - 0.12 * warmth])
    frame *= light[..., None] * gains
    meta.update(light_meta)
    return frame, boxes, meta


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
    cv2.fillPoly(mask, [np.round(np.float32(pts) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    table = np.float32(rng.choice([[0.35, 0.25, 0.18], [0.3, 0.3, 0.32], [0.55, 0.45, 0.35]]))
    table = table * rng.uniform(0.6, 1.1)
    _blend(frame, mask, table)
    meta["table_edge"] = True


def _screen_photo(
    rng: np.random.Generator, w: int, h: int, glyphs: list[np.ndarray]
) -> tuple[np.ndarray, list[Box], dict]:
    """A screenshot of a drawing app: a light digit drawn on a dark canvas."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.float32(rng.choice([[0, 0, 0], [0.1, 0.1, 0.1], [0.05, 0.07, 0.15]]))
    boxes: list[Box] = []
    meta: dict = {}
    if glyphs:
        height = _fit_height(rng, glyphs, w, h)
        m = round(0.02 * min(w, h))  # anywhere on the canvas, not touching its edge
        placed, rw, rh = _row(rng, glyphs, height, soft=True)
        while rw > w - 2 * m or rh > h - 2 * m:
            height *= 0.9
            placed, rw, rh = _row(rng, glyphs, height, soft=True)
        ox = int(rng.integers(m, max(m + 1, w - rw - m)))
        oy = int(rng.integers(m, max(m + 1, h - rh - m)))
        ink = np.zeros((h, w), np.float32)
        for a, px, py in placed:
            x, y = ox + px, oy + py
            region = ink[y : y + a.shape[0], x : x + a.shape[1]]
            np.maximum(region, a[: region.shape[0], : region.shape[1]], out=region)
            ys, xs = np.nonzero(a > 0.3)
            boxes.append((x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1))
        colour = np.float32(
            rng.choice([[1, 1, 1], [0.95, 0.95, 0.9], [1, 0.9, 0.3], [0.4, 0.9, 1]])
        )
        _blend(img, ink, colour)
        meta["digit_height"] = round(height)
    return img, boxes, meta


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


def _nondigit_glyph(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Ink that is not a digit (alpha mask) and what it is."""
    what = ("word", "doodle", "smudge", "hatching", "tick", "star")[int(rng.integers(6))]
    if what == "word":
        font = str(rng.choice(TTF_FONTS))
        word = str(rng.choice(NONDIGIT_WORDS))
        image = Image.new("L", (160 * len(word), 320))
        draw = ImageDraw.Draw(image)
        draw.text((40, 40), word, fill=255, font=ImageFont.truetype(str(FONT_DIR / f"{font}.ttf"),
                                                                    180))
        style = {"slant": float(rng.uniform(-0.2, 0.2)), "wobble": float(rng.uniform(0, 0.01))}
        return _distort(rng, np.asarray(image, np.float32) / 255.0, style), f"word/{font}"
    canvas = np.zeros((400, 400), np.uint8)
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
        cv2.polylines(canvas, [np.int32([[110, 200], [180, 280], [320, 90]])], False, 255, pen,
                      cv2.LINE_AA)
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


def make_photo(
    rng: np.random.Generator,
    test_images: np.ndarray | None,
    test_labels: np.ndarray | None,
    kind: str,
    *,
    size: tuple[int, int] | None = None,
    screen: bool | None = None,
) -> tuple[bytes, Truth]:
    """One photo of `kind` and what it shows; handwriting only from MNIST's test split."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    sources: list[int] = []
    glyphs: list[np.ndarray] = []
    style_meta: dict = {}
    if kind == "crop":
        if test_images is None or test_labels is None:
            raise ValueError("kind 'crop' needs MNIST test images and labels")
        return _crop_photo(rng, test_images, test_labels)
    if kind == "digit" or kind == "number":
        if test_images is None or test_labels is None:
            raise ValueError(f"kind {kind!r} needs MNIST test images and labels")
        text = str(rng.integers(0, 10)) if kind == "digit" else _number_text(rng)
        for ch in text:
            pool = np.flatnonzero(test_labels == int(ch))
            if not len(pool):
                raise ValueError(f"no test image of digit {ch}")
            sources.append(int(rng.choice(pool)))
        glyphs = [_mnist_glyph(test_images[i]) for i in sources]
    elif kind == "other":
        text = str(rng.integers(0, 10)) if rng.random() < 0.7 else _number_text(rng)
        style_meta = _other_style(rng)
        make = _pen_glyph if style_meta["name"].startswith("pen/") else _font_glyph
        drawn = [make(rng, int(ch), style_meta) for ch in text]
        glyphs = [g for g, _ in drawn]
        style_meta["variants"] = [v for _, v in drawn]
    elif kind == "nondigit":
        text = ""
        glyph, what = _nondigit_glyph(rng)
        glyphs = [glyph]
        style_meta = {"name": f"nondigit/{what}"}
    else:
        text = ""
    if screen is None:
        screen = kind in ("digit", "number") and rng.random() < SCREEN_SHARE
    sizes = SCREEN_SIZES if screen else PHOTO_SIZES
    w, h = size or sizes[rng.integers(len(sizes))]
    if max(w, h) > MAX_SIDE:
        raise ValueError(f"size {w}x{h} exceeds Telegram's {MAX_SIDE} px")

    if screen:
        img, boxes, meta = _screen_photo(rng, w, h, glyphs)
        fmt, style = "png", "screen"
    else:
        img, boxes, meta = _paper_photo(rng, w, h, glyphs, soft=kind in ("digit", "number"))
        style = style_meta.get("name") or f"paper/{meta['paper']}"
        # Optics and sensor: focus or motion blur, then noise, then the JPEG encoder.
        sigma = rng.uniform(0.3, 1.4) * min(w, h) / 960
        img = cv2.GaussianBlur(img, (0, 0), sigma)
        meta["blur"] = round(float(sigma), 2)
        if rng.random() < 0.15:
            length = int(rng.integers(3, 8))
            kernel = np.zeros((length, length), np.float32)
            cv2.line(kernel, (0, length // 2), (length - 1, length // 2), 1.0)
            rot = cv2.getRotationMatrix2D(
                ((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1
            )
            kernel = cv2.warpAffine(kernel, rot, (length, length))
            img = cv2.filter2D(img, -1, kernel / kernel.sum())
            meta["motion_blur"] = length
        noise = rng.uniform(0.004, 0.025)
        img += (_grain(rng, h, w) * noise)[..., None]
        # Phones' chroma noise is blotchy: low resolution, upscaled.
        chroma = rng.standard_normal((h // 4, w // 4, 3), dtype=np.float32) * (noise / 2)
        img += cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
        meta["noise"] = round(float(noise), 3)
        fmt = "jpeg"
    quality = int(rng.integers(60, 96))
    if fmt == "jpeg":
        meta["quality"] = quality
    meta.update({k: v for k, v in style_meta.items() if k != "name"})
    boxes = [tuple(int(v) for v in b) for b in boxes]
    if kind == "nondigit":  # no digit to find; where the ink is stays in meta
        meta["ink_box"], boxes = boxes[0], []
    truth = Truth(kind, text, boxes, (w, h), fmt, style, sources, meta)
    return _encode(img, fmt, quality), truth


def _crop_photo(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray
                ) -> tuple[bytes, Truth]:
    """A digit cut out to its own ink (see the module's docstring)."""
    label = int(rng.integers(0, 10))
    index = int(rng.choice(np.flatnonzero(labels == label)))
    glyph = _mnist_glyph(images[index])
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
                  style, [index], meta)
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
) -> list[tuple[bytes, Truth]]:
    """n photos of `kind`; photo i depends only on (seed, kind, i)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    images = labels = None
    if kind in ("digit", "number", "crop"):
        images, labels = test_digits if test_digits is not None else load_test_digits(mnist_path)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, KINDS.index(kind), i])
        out.append(make_photo(rng, images, labels, kind, size=size, screen=screen))
    return out
