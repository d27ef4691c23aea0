"""Photo bytes → MNIST-like 28×28 digit crops with their boxes in the original image.

The steps, each with OpenCV/Pillow:
  1. read the header only and refuse absurd sizes; decode JPEGs at reduced size (draft mode);
     apply the EXIF orientation; grayscale; scale to a bounded working resolution (640 px);
  2. find the ink: decide the polarity (dark ink on paper or a light drawing on a dark screen),
     flatten the illumination (divide by a morphological closing: the paper without strokes);
  3. ruled or squared paper: find the rules' angle (Hough), rotate them level, subtract them
     from the ink map (long thin runs across the page, or pieces of one that a digit
     interrupts) and mend the strokes they crossed;
  4. threshold (Otsu with a contrast floor); label blobs on a slightly grown mask so broken
     strokes stay whole; drop specks and anything touching the frame's edge (a table, a shadow,
     a cut-off digit; a bold blob tied to the edge only by a hairline loses the hairline);
     merge the pieces of one digit; keep the dominant row (anchored by the blob with the most
     contrast); separate digits that only the growth joined;
  5. make each digit look like MNIST: the box scaled into 20×20 keeping its aspect ratio,
     a typical MNIST stroke width, anti-aliased, centred by its centre of mass in 28×28 (and
     a second view scaled into 18×18, which the model reads too).
Hypotheses the pixels cannot settle (a wide blob = touching digits? two close blobs = one
broken digit?) come with their own crops in `Candidate.parts` / `.joined`; the recognizer
decides with the model, in the same single model call.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from PIL import (  # noqa: F401  (importing a plugin registers its format with Image.open)
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

MAX_PIXELS = 40_000_000  # a 40-megapixel photo is already far more than a digit needs
MAX_SIDE = 20_000  # absurd sides (a 1×30000 strip) are refused even under MAX_PIXELS
MIN_SIDE = 8  # a longest side under this cannot hold a readable digit
MIN_THIN_SIDE = 2  # ...nor a shortest side under this (a tight "1" may be 3 px wide)
WORK_SIDE = 640  # the longest side the segmentation works at
MIN_WORK_SIDE = 256  # tiny images are upscaled so that kernel sizes stay meaningful
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # (JPEG covers MPO); never EPS and co.

DARK_BACKGROUND = 100  # a median brightness under this is a dark screen or board, not paper
INK_FLOOR = 48  # ink strength (0–255) below which nothing is ink: ~19% darker than the paper
RULE_INK = 28  # ink strength that counts when looking for faint paper rules
RULE_SPREAD = np.radians(15)  # rules are sought within this angle of horizontal or vertical
MAX_COMPONENTS = 96  # the largest blobs of a photo; the rest are specks and texture
MIN_DIGIT_HEIGHT = 8  # px at working resolution
ROW_HEIGHT_RATIO = 0.45  # a digit of the row is within this ratio of the anchor's height
ROW_OVERLAP = 0.4  # ...and shares this fraction of its rows with a digit of the row
LINE_ELONGATION = 40  # length² / area above this is a line, not a digit
MAX_CANDIDATES = 24  # a number is one line of a few digits; more blobs are texture
SPECK_AREA = 0.02  # blobs with less ink than this share of the biggest blob are specks
SPLIT_ASPECT = 1.1  # a blob wider than this × its (or its row's) height may be touching digits
HAIRLINE_STROKE = 5  # px: blobs this bold may lose hair-thin lines (see _cut_hairlines)
BRIDGE = 0.5  # gaps up to this × the stroke width are bridged when labelling blobs
SIDE_BY_SIDE = 0.7  # blank-separated pieces this tall (× the blob's height) are separate digits
JOIN_GAP, JOIN_ASPECT = 0.08, 1.3  # neighbours this close may be pieces of one digit
FRAME_RATIO = 1.3  # a line this much wider than a blob above or below it is not its piece
CROP_MARGIN = 0.15  # margin (× the longest side) for a second look at a tightly cropped digit
MNIST_BOX = 20
ALT_BOX = 18  # a second view of each digit, a little smaller: the model reads both, averaged
STROKE_TARGET = 0.14  # MNIST's median stroke width / longest box side (measured on x_test)
STROKE_MIN = 0.10  # MNIST's 5th percentile: thinner pens are thickened to STROKE_TARGET
STROKE_MAX, STROKE_THIN_TO = 0.30, 0.22  # markers far bolder than MNIST's boldest are thinned
UPSAMPLE = 4  # crops are shaped at 4× the MNIST box, then area-averaged: anti-aliasing

TOO_LARGE = "That image is too large{size}; please send a photo under 40 megapixels."
NOT_AN_IMAGE = "That file isn't an image I can read."
DAMAGED = "That image file is damaged or incomplete, so I can't read it."
TOO_SMALL = "That image is too small to contain a digit."

# A photo's images are small (640 px): OpenCV's thread pool costs more in hand-offs than it
# saves, and a server reads several photos at once on its own threads.
cv2.setNumThreads(1)

_TRANSPOSE = {  # EXIF orientation → the Pillow transpose that undoes it (as ImageOps does)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(ValueError):
    """The bytes are not a usable photo; str(error) is a message for the user."""


@dataclass
class Decoded:
    """A grayscale working copy of a photo and how it maps to the original."""

    gray: np.ndarray  # uint8 (h, w) (or (h, w, 3) for RGB), orientation-corrected
    size: tuple[int, int]  # (width, height) of the orientation-corrected original
    scale: tuple[float, float]  # original px per working px, (x, y)
    offset: int = 0  # working px of margin added around the photo (`with_margin`)


@dataclass
class Candidate:
    """One digit-like blob: its MNIST-like crop, its box and shape measures."""

    crop: np.ndarray  # uint8 (28, 28), white ink on black
    alt: np.ndarray  # the same digit drawn a little smaller: a second view for the model
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image
    aspect: float  # width / height at working resolution
    density: float  # share of the crop's 20×20-fitted box that is ink (as MNIST measures it)
    row_aspect: float  # width / the median height of the digits in its row
    length: float  # ink area / stroke width²: how many stroke widths long its strokes are
    parts: list[Candidate] = field(default_factory=list)  # a wide blob read as touching digits
    joined: Candidate | None = None  # this blob and the next one read as one broken digit


def decode(data: bytes, side: int = WORK_SIDE, mode: str = "L") -> Decoded:
    """Bytes → orientation-corrected grayscale ("L") or RGB with the longest side near `side`.

    Raises ImageError with a human message for anything that is not a sane image; the size
    checks happen on the header, before any pixel is decoded.
    """
    if not data:
        raise ImageError(NOT_AN_IMAGE)
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, far above ours
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(pixels.group(1)) / 1e6:.0f} megapixels)" if pixels else ""
        raise ImageError(TOO_LARGE.format(size=size)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(NOT_AN_IMAGE) from exc
    with im:
        width, height = im.size
        if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
            raise ImageError(TOO_LARGE.format(size=f" ({width}×{height})"))
        if max(width, height) < MIN_SIDE or min(width, height) < MIN_THIN_SIDE:
            raise ImageError(TOO_SMALL)
        try:
            orientation = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "MPO") else 1
        except Exception:  # a broken EXIF block should not cost the photo
            orientation = 1
        transpose = _TRANSPOSE.get(orientation)
        if transpose in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                         Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            width, height = height, width
        factor = side / max(width, height)
        if factor < 1 and im.format in ("JPEG", "MPO"):
            # DCT scaling: decode straight to grayscale at 1/2, 1/4 or 1/8 of the size
            want = (max(1, int(im.size[0] * factor)), max(1, int(im.size[1] * factor)))
            im.draft(mode, want)
        try:
            im.seek(0)  # the first frame of a GIF/WebP animation
            im.load()
            im = _convert(im, mode)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageError(DAMAGED) from exc
    if transpose is not None:
        im = im.transpose(transpose)
    gray = np.asarray(im)
    long_side = max(gray.shape)
    # big photos come down to `side`; tiny ones go up so kernel sizes stay meaningful
    target = side if factor < 1 else max(long_side, min(side, MIN_WORK_SIDE))
    if target != long_side:
        f = target / long_side
        dsize = (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f)))
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        gray = cv2.resize(gray, dsize, interpolation=interp)
    return Decoded(
        gray=np.ascontiguousarray(gray),
        size=(width, height),
        scale=(width / gray.shape[1], height / gray.shape[0]),
    )


def _convert(im: Image.Image, mode: str) -> Image.Image:
    """Any Pillow mode → `mode`; transparency is laid on white paper (drawings with alpha)."""
    if im.mode == mode:
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert(mode)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return ImageOps.autocontrast(im.convert("F").convert("L")).convert(mode)  # 16-bit scans
    return im.convert(mode)


def shrink(image: np.ndarray, k: int) -> np.ndarray:
    """1/k of the size by area averaging. The last rows/columns beyond a multiple of k are
    left out: OpenCV has a fast path for whole factors, ~30× faster than its general one."""
    h, w = image.shape[:2]
    if h < k or w < k:
        return cv2.resize(image, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    return cv2.resize(image[: h - h % k, : w - w % k], (w // k, h // k),
                      interpolation=cv2.INTER_AREA)


def ink_map(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grayscale → (ink, inverted): uint8 ink strength, 0 = paper, 255 = full ink.

    The paper is estimated by a morphological closing (which removes dark strokes narrower
    than the kernel but keeps shadows and gradients) on a 1/4-size copy, and the photo is
    divided by it, which flattens uneven light. `inverted` is True for light-on-dark images.
    """
    h, w = gray.shape
    small = shrink(gray, 4)
    inverted = _light_on_dark(small)
    if inverted:
        gray, small = cv2.bitwise_not(gray), cv2.bitwise_not(small)
    k = max(9, min(small.shape) // 5) | 1
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(
        cv2.MORPH_RECT, (k, k)))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    paper = cv2.max(paper, 1)  # no division by zero
    flat = cv2.divide(gray, paper, scale=255)  # paper → 255, ink → its relative darkness
    return cv2.bitwise_not(flat), inverted


def _light_on_dark(small: np.ndarray) -> bool:
    """True when the strokes are lighter than the background (a screenshot, a blackboard).

    The median is the background. On a dark background the ink is whichever tail reaches
    further from it; a light background (paper) counts as light-on-dark only when the light
    tail clearly dominates, since paper has little headroom above it and a table beyond the
    sheet's edge is darker still.
    """
    lo, median, hi = _percentiles(small, (0.2, 50, 99.8))
    darker, lighter = median - lo, hi - median
    if median < DARK_BACKGROUND:
        return lighter >= darker
    return lighter > 2 * darker + 20



def _percentiles(image: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile of a uint8 image (same linear interpolation), from its histogram: 25×
    faster than sorting the pixels."""
    counts = np.cumsum(cv2.calcHist([image], [0], None, [256], [0, 256]).ravel())
    n = int(counts[-1])
    out = []
    for q in qs:
        rank = q / 100 * (n - 1)
        lo, hi = np.searchsorted(counts, [np.floor(rank) + 1, np.ceil(rank) + 1])
        out.append(float(lo + (hi - lo) * (rank - np.floor(rank))))
    return out


def threshold(ink: np.ndarray) -> tuple[np.ndarray, int]:
    """Ink map → (binary mask 0/255, the threshold used): Otsu, never below a contrast floor
    (paper texture and JPEG noise stay under it)."""
    otsu, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = int(max(otsu, INK_FLOOR))
    return cv2.threshold(ink, level, 255, cv2.THRESH_BINARY)[1], level




def rule_angle(ink: np.ndarray) -> float | None:
    """The angle (degrees) of ruled or squared paper lines, or None when there are none.

    A standard Hough transform, restricted to ±15° around horizontal and vertical, on the thin
    faint-or-stronger ink (what a small opening removes, so marker strokes do not vote) at
    half size; a rule is a straight line with ink along at least a third of the image.
    """
    h, w = ink.shape
    small = shrink(ink, 2)
    mask = cv2.threshold(small, RULE_INK, 255, cv2.THRESH_BINARY)[1]
    thin = cv2.subtract(mask, cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ELLIPSE5))
    angles = []
    for centre, extent in ((np.pi / 2, w // 2), (0.0, h // 2)):  # horizontal, vertical rules
        found = cv2.HoughLines(thin, 1, np.pi / 360, int(extent / 3),
                               min_theta=centre - RULE_SPREAD, max_theta=centre + RULE_SPREAD)
        if found is not None:
            angles.extend(np.degrees(found.reshape(-1, 2)[:8, 1] - centre))
    return float(np.median(angles)) if angles else None



def deskew(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate so the paper's rules are axis-aligned, on a canvas large enough to lose nothing.
    Also returns the 2×3 inverse transform and where the photo's own pixels landed (uint8
    mask: the rest of the canvas is outside the frame)."""
    h, w = image.shape
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    size = (int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos)))
    rot[0, 2] += (size[0] - w) / 2
    rot[1, 2] += (size[1] - h) / 2
    out = cv2.warpAffine(image, rot, size, flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = cv2.warpAffine(np.full_like(image, 255), rot, size, flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, cv2.invertAffineTransform(rot), inside


def suppress_rules(ink: np.ndarray) -> np.ndarray:
    """Subtract axis-aligned paper rules from the ink map (grayscale, before thresholding).

    A long 1-D opening keeps the straight runs, a short opening across them the thick ones
    (a marker bar); the thinner runs whose connected parts reach across much of the image are
    rules. Only up to the rules' own strength is subtracted, so a stroke lying on a rule keeps
    its ink, and a closing across the rule mends strokes that crossed it (ink on both sides).
    """
    h, w = ink.shape
    thick = max(5, min(h, w) // 40) | 1  # rules of a close-up photo are thick, too
    out = ink
    for axis in (1, 0):  # horizontal rules (along rows), then vertical ones
        long_k = max(15, (w if axis else h) // 16)
        along = np.ones((1, long_k) if axis else (long_k, 1), np.uint8)
        across = np.ones((thick, 1) if axis else (1, thick), np.uint8)
        runs = cv2.morphologyEx(ink, cv2.MORPH_OPEN, along)
        thin = cv2.subtract(runs, cv2.morphologyEx(runs, cv2.MORPH_OPEN, across))
        # long connected parts, found at half size (labelling is the costly step)
        half = shrink(thin, 2)
        present = cv2.threshold(half, RULE_INK // 2, 255, cv2.THRESH_BINARY)[1]
        n, labels, stats = _components(present)
        extent = (w if axis else h) / 2
        length = stats[1:, 2 if axis else 3]
        # a rule broken by a digit is still a rule: pieces on one line add up
        line = (stats[1:, 1 if axis else 0] + stats[1:, 3 if axis else 2] // 2) // 2
        band = np.bincount(line, weights=length, minlength=line.max(initial=0) + 2)
        band = band + np.roll(band, 1) + np.roll(band, -1)
        # 1: a rule across the page; 2: a piece of a rule that a digit interrupts (its ink
        # goes, but it is not mended: near a digit, mending would draw a bar into it)
        kind = np.zeros(n, np.uint8)
        kind[1:][(band[line] >= 0.5 * extent) & (length >= long_k)] = 2
        kind[1:][length >= 0.35 * extent] = 1
        if not kind.any():
            continue
        found = cv2.resize(np.take(kind, labels), (w, h), interpolation=cv2.INTER_NEAREST)
        found = cv2.bitwise_and(found, found, mask=(thin > RULE_INK // 2).view(np.uint8))
        on = found > 0
        strength = float(np.median(thin[on])) if on.any() else 0.0
        rules = cv2.dilate(on.view(np.uint8), _CROSS3)
        cap = min(255, int(1.3 * strength + 8))
        lift = cv2.threshold(cv2.dilate(thin, _CROSS3), cap, 255, cv2.THRESH_TRUNC)[1]
        out = cv2.subtract(out, cv2.bitwise_and(lift, lift, mask=rules))
        bridge = np.ones((2 * thick + 1, 1) if axis else (1, 2 * thick + 1), np.uint8)
        mended = cv2.morphologyEx(out, cv2.MORPH_CLOSE, bridge)
        mend = rules if kind.max() == 1 else cv2.dilate((found == 1).view(np.uint8), _CROSS3)
        out = cv2.copyTo(mended, mend, out)  # `out` is subtract's own new array
    return out


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected blobs: (count, labels, stats). 16-bit labels when there cannot be more
    blobs than they hold (fewer ink pixels than that): OpenCV is then ~3× faster."""
    ltype = cv2.CV_16U if cv2.countNonZero(mask) < np.iinfo(np.uint16).max else cv2.CV_32S
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=ltype)
    return n, labels, stats


_ELLIPSE5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_CROSS3 = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE3 = np.ones((3, 3), np.uint8)


def find_digits(data: bytes) -> tuple[Decoded, list[Candidate]]:
    """Photo bytes → the decoded photo and its digit candidates, left to right."""
    decoded = decode(data)
    return decoded, candidates_in(decoded)


def with_margin(decoded: Decoded) -> Decoded:
    """The photo on a wider sheet of its own paper (the median of its outermost pixels): a
    digit cropped tight (a scan's or a dataset's cell, a photo cut to the digit) touches the
    frame, where blobs are otherwise taken for cut-off things."""
    gray = decoded.gray
    rim = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    pad = max(4, round(CROP_MARGIN * max(gray.shape)))
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=int(np.median(rim)))
    return replace(decoded, gray=padded, offset=decoded.offset + pad)


def candidates_in(decoded: Decoded) -> list[Candidate]:
    """The digit candidates of a decoded photo, left to right."""
    ink, _ = ink_map(decoded.gray)
    inverse = None
    inside = np.full_like(ink, 255)
    angle = rule_angle(ink)
    if angle is not None:
        if abs(angle) > 0.25:
            ink, inverse, inside = deskew(ink, angle)
        ink = suppress_rules(ink)
    mask, level = threshold(ink)
    # the frame's edge: a blob reaching it is cut off (or is the frame, a table, a shadow)
    edge = cv2.copyMakeBorder(cv2.erode(inside, _SQUARE3)[1:-1, 1:-1], 1, 1, 1, 1,
                              cv2.BORDER_CONSTANT, value=0) == 0
    if angle is not None:
        mask = _cut_hairlines(mask, edge)
    candidates: list[Candidate] = []
    groups = _digit_groups(mask, edge, ink, level)
    row_height = float(np.median([g[3] - g[1] for g in groups])) if groups else 1.0
    for k, (x0, y0, x1, y1, region) in enumerate(groups):
        whole = _candidate(ink, region, (x0, y0, x1, y1), level, inverse, decoded)
        if whole is None:
            continue
        if k + 1 < len(groups):
            joined = _join(groups[k], groups[k + 1])
            if joined is not None:
                whole.joined = _candidate(ink, joined[4], joined[:4], level, inverse, decoded)
        whole.row_aspect = (x1 - x0) / row_height
        if max(whole.aspect, whole.row_aspect) > SPLIT_ASPECT:
            for sx0, sx1 in _split_touching(region):
                rows = np.flatnonzero(region[:, sx0:sx1].any(axis=1))
                if rows.size == 0:
                    continue
                r0, r1 = int(rows[0]), int(rows[-1]) + 1
                part = _candidate(ink, region[r0:r1, sx0:sx1], (x0 + sx0, y0 + r0, x0 + sx1,
                                  y0 + r1), level, inverse, decoded)
                if part is not None:
                    whole.parts.append(part)
            if len(whole.parts) < 2:
                whole.parts = []
        candidates.append(whole)
    return candidates


def _cut_hairlines(mask: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Blobs reaching the frame's edge lose their hair-thin lines (what is left of a paper rule
    that runs from a digit to the edge), when their strokes are clearly bolder than that: a
    3×3 opening keeps the strokes' cores, which regrow inside the mask."""
    at_edge = edge & (mask > 0)
    if not at_edge.any():
        return mask
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    reach = np.zeros(n, bool)
    reach[labels[at_edge]] = True
    reach[0] = False
    if not reach.any():
        return mask
    core = cv2.erode(mask, _SQUARE3)
    area = np.bincount(labels[mask > 0], minlength=n)
    rim = area - np.bincount(labels[core > 0], minlength=n)
    reach &= 2 * area >= HAIRLINE_STROKE * np.maximum(rim, 1)  # each blob's own stroke width
    if not reach.any():
        return mask
    blobs = reach[labels].view(np.uint8)
    core = cv2.dilate(core, _SQUARE3)  # the opening: the strokes' cores
    cleaned = cv2.bitwise_and(cv2.dilate(core, _SQUARE3), mask)
    return cv2.copyTo(cleaned, blobs, mask.copy())


def _join(a: tuple, b: tuple) -> tuple | None:
    """Two neighbouring blobs as one (a 9 whose loop is open), when they are close enough."""
    tall = max(a[3] - a[1], b[3] - b[1])
    if b[0] - a[2] > JOIN_GAP * tall:
        return None
    x0, y0, x1, y1 = min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])
    if x1 - x0 > JOIN_ASPECT * (y1 - y0):
        return None
    region = np.zeros((y1 - y0, x1 - x0), bool)
    for bx0, by0, bx1, by1, r in (a, b):
        region[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] |= r
    return x0, y0, x1, y1, region


def _candidate(ink: np.ndarray, region: np.ndarray, box: tuple[int, int, int, int], level: int,
               inverse: np.ndarray | None, decoded: Decoded) -> Candidate | None:
    x0, y0, x1, y1 = box
    shaped = mnist_views(ink[y0:y1, x0:x1], region, level)
    if shaped is None:
        return None
    (crop, alt), length = shaped
    return Candidate(
        crop=crop, alt=alt, box=_to_original(box, inverse, decoded),
        aspect=(x1 - x0) / max(1, y1 - y0),
        density=_crop_density(crop), row_aspect=(x1 - x0) / max(1, y1 - y0), length=length,
    )


def _crop_density(crop: np.ndarray) -> float:
    ink = crop > 127
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return 0.0
    return float(ink.sum()) / ((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))


def _to_original(box: tuple[int, int, int, int], inverse: np.ndarray | None,
                 decoded: Decoded) -> tuple[int, int, int, int]:
    """A box at working resolution (maybe deskewed) → x0, y0, x1, y1 in the original photo."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    if inverse is not None:
        corners = corners @ inverse[:, :2].T + inverse[:, 2]
    corners -= decoded.offset
    sx, sy = decoded.scale
    width, height = decoded.size
    return (
        max(0, int(corners[:, 0].min() * sx)), max(0, int(corners[:, 1].min() * sy)),
        min(width, int(np.ceil(corners[:, 0].max() * sx))),
        min(height, int(np.ceil(corners[:, 1].max() * sy))),
    )



def _digit_groups(mask: np.ndarray, edge: np.ndarray, ink: np.ndarray,
                  level: int) -> list[tuple[int, int, int, int, np.ndarray]]:
    """Binary mask → digit boxes (x0, y0, x1, y1, the digit's own pixels in the box), left to
    right.

    Components are labelled on a slightly grown mask, so a stroke broken by a faint or
    blurred spot stays one piece; the growth is a fraction of the typical stroke width.
    """
    h, w = mask.shape
    ink_px = cv2.countNonZero(mask)
    if ink_px == 0:
        return []
    rim = ink_px - cv2.countNonZero(cv2.erode(mask, _SQUARE3))
    stroke = 2 * ink_px / max(1, rim)
    r = int(np.clip(round(BRIDGE * stroke), 1, 4))
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    n, labels, stats = _components(grown)
    bw, bh = stats[1:, 2], stats[1:, 3]
    inked = mask > 0
    inked_labels = labels[inked]
    ink_area = np.bincount(inked_labels, minlength=n)  # the blob's own ink, not its growth
    # how much darker than the threshold its ink is, in all: a pen stroke outweighs a larger
    # but faint smudge (a shadow's tip that flattening left behind)
    contrast = np.bincount(inked_labels, weights=ink[inked].astype(np.float64) - (level - 1),
                           minlength=n)
    area = ink_area[1:]
    touching = np.zeros(n, bool)
    touching[labels[edge & inked]] = True
    ok = ~touching[1:] & (bh <= 0.95 * h) & (bw <= 0.95 * w)
    if not ok.any():
        return []
    ok &= area >= max(6, SPECK_AREA * area[ok].max())  # specks, relative to the main ink
    ids = np.flatnonzero(ok) + 1
    ids = ids[np.argsort(-ink_area[ids])][:MAX_COMPONENTS]
    boxes = [[int(stats[i, 0]) + r, int(stats[i, 1]) + r, int(stats[i, 0] + stats[i, 2]) - r,
              int(stats[i, 1] + stats[i, 3]) - r, [int(i)], int(ink_area[i]), float(contrast[i])]
             for i in ids]
    boxes = _merge_pieces(boxes)
    boxes = [b for b in boxes if b[3] - b[1] >= MIN_DIGIT_HEIGHT]
    if not boxes:
        return []
    out = []
    for x0, y0, x1, y1, members, *_ in _dominant_row(boxes):
        x0, y0 = max(0, x0 - r), max(0, y0 - r)
        region = np.isin(labels[y0:y1 + r, x0:x1 + r], members) & (mask[y0:y1 + r, x0:x1 + r] > 0)
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        if rows.size == 0:
            continue
        ty0, tx0 = int(rows[0]), int(cols[0])
        region = region[ty0:rows[-1] + 1, tx0:cols[-1] + 1]
        for sx0, sx1 in _side_by_side(region):
            part = region[:, sx0:sx1]
            prow = np.flatnonzero(part.any(axis=1))
            out.append((x0 + tx0 + sx0, y0 + ty0 + int(prow[0]), x0 + tx0 + sx1,
                        y0 + ty0 + int(prow[-1]) + 1, part[prow[0]:prow[-1] + 1]))
    out.sort(key=lambda b: b[0])
    return out[:MAX_CANDIDATES]


def _side_by_side(region: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges of a blob that bridging joined but blank columns separate: two digits
    written close together. Pieces much shorter than the blob (a 5's bar) stay with it."""
    h, w = region.shape
    inked = region.any(axis=0)
    edges = np.flatnonzero(np.diff(inked.astype(np.int8)))  # ink starts/ends between columns
    if edges.size == 0:
        return [(0, w)]
    bounds = [0, *(int(e) + 1 for e in edges), w]
    runs = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if inked[a]]
    tall = []
    for a, b in runs:
        rows = np.flatnonzero(region[:, a:b].any(axis=1))
        tall.append(rows[-1] + 1 - rows[0] >= SIDE_BY_SIDE * h)
    if sum(tall) < 2:
        return [(0, w)]
    # each short run joins its nearest tall neighbour
    cuts = [0]
    tall_idx = [k for k, t in enumerate(tall) if t]
    for left, right in zip(tall_idx, tall_idx[1:], strict=False):
        cuts.append(runs[right][0] if right == left + 1 else _nearest_cut(runs, left, right))
    cuts.append(w)
    return list(zip(cuts, cuts[1:], strict=False))


def _nearest_cut(runs: list[tuple[int, int]], left: int, right: int) -> int:
    """Where to cut between two tall runs with short runs between them: at the widest gap."""
    gaps = [(runs[k + 1][0] - runs[k][1], runs[k + 1][0]) for k in range(left, right)]
    return max(gaps)[1]


def _merge_pieces(boxes: list[list]) -> list[list]:
    """Union the pieces of one digit (a 5 whose bar is apart, a 4 in two strokes).

    Two pieces join when they overlap horizontally and are close vertically, or when one is
    much shorter than the other and sits next to it, within its height band.
    """
    while len(boxes) > 1:
        b = np.array([bb[:4] for bb in boxes], np.float64)
        x0, y0, x1, y1 = b.T
        bh = y1 - y0
        overlap = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
        narrow = np.minimum((x1 - x0)[:, None], (x1 - x0)[None])
        gap = np.maximum(y0[:, None], y0[None]) - np.minimum(y1[:, None], y1[None])
        tall = np.maximum(bh[:, None], bh[None])
        stacked = (overlap >= 0.5 * narrow) & (gap <= 0.3 * tall)
        # i is a small piece beside the bigger j: inside j's rows, a short hop away
        small = bh[:, None] <= 0.6 * bh[None]
        inside = (y0[:, None] >= y0[None] - 0.15 * bh[None]) & (
            y1[:, None] <= y1[None] + 0.15 * bh[None])
        beside = small & inside & (overlap >= -0.12 * bh[None])
        # a horizontal line wider than the blob above or below it (what rule removal left of
        # a form cell's frame, a rule's remnant) is not its piece
        w, h = x1 - x0, y1 - y0
        bar = np.array([_line_like(bb) for bb in boxes]) & (w > 4 * h)
        overlong = bar[:, None] & (w[:, None] > FRAME_RATIO * w[None])
        join = (stacked | beside | beside.T) & ~overlong & ~overlong.T
        np.fill_diagonal(join, False)
        if not join.any():
            break
        i, j = (int(v) for v in np.argwhere(join)[0])
        a, c = boxes[i], boxes[j]
        boxes[i] = [min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]), max(a[3], c[3]),
                    a[4] + c[4], a[5] + c[5], a[6] + c[6]]
        del boxes[j]
    return boxes


def _dominant_row(boxes: list[list]) -> list[list]:
    """The line of digits: the blob with the most ink (summed contrast), then, repeatedly,
    blobs of a similar height that share rows with a member (a number may be slanted or have a
    wobbly baseline).

    Blobs shaped like a long line are poor anchors (a table edge, a shadow's rim, a rule's
    remnant); they only anchor the row when nothing else is there.
    """

    def score(b: list) -> float:
        return b[6] * (0.1 if _line_like(b) else 1.0)

    anchor = max(boxes, key=score)
    ah = anchor[3] - anchor[1]
    row = [anchor]
    rest = [b for b in boxes if b is not anchor and not _line_like(b)]
    grew = True
    while grew:
        grew = False
        for b in list(rest):
            bh = b[3] - b[1]
            if not ROW_HEIGHT_RATIO * ah <= bh <= ah / ROW_HEIGHT_RATIO:
                continue
            for m in row:
                shared = min(b[3], m[3]) - max(b[1], m[1])
                if shared >= ROW_OVERLAP * min(bh, m[3] - m[1]):
                    row.append(b)
                    rest.remove(b)
                    grew = True
                    break
    return row


def _line_like(b: list) -> bool:
    """A long thin stroke (a table edge, a rule's remnant): length² / area is large."""
    return max(b[2] - b[0], b[3] - b[1]) ** 2 > LINE_ELONGATION * b[5]


def _split_touching(region: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges of the digits in a blob much wider than tall: cuts at ink minima."""
    h, w = region.shape
    n = max(2, round(w / (0.75 * h)))
    profile = region.sum(axis=0).astype(np.float32)
    cuts, start = [0], 0
    for k in range(1, n):
        expected = k * w / n
        lo = max(int(expected - 0.3 * w / n), start + 1)
        hi = min(int(expected + 0.3 * w / n) + 1, w - 1)
        if hi <= lo:
            continue
        cut = lo + int(np.argmin(profile[lo:hi]))
        cuts.append(cut)
        start = cut
    cuts.append(w)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def mnist_crop(ink: np.ndarray, region: np.ndarray,
               level: int) -> tuple[np.ndarray, float] | None:
    """One digit's ink (uint8, its box) → (uint8 28×28 like MNIST, its stroke length in stroke
    widths), or None if it is empty. See `mnist_views`."""
    views = mnist_views(ink, region, level, (MNIST_BOX,))
    return None if views is None else (views[0][0], views[1])


def mnist_views(ink: np.ndarray, region: np.ndarray, level: int,
                boxes: tuple[int, ...] = (MNIST_BOX, ALT_BOX),
                ) -> tuple[list[np.ndarray], float] | None:
    """One digit's ink (uint8, its box) → (uint8 28×28 images like MNIST, one per box size,
    its stroke length in stroke widths), or None if it is empty.

    The ink outside the digit's own components is masked out, the box is enlarged so its
    longest side is 4×20 px, the strokes are brought to MNIST's typical width, then the image
    is area-averaged down into box×box (20×20 as MNIST; that gives MNIST's anti-aliased edges)
    and placed in 28×28 with its centre of mass at the centre.
    """
    h, w = ink.shape
    if h == 0 or w == 0:
        return None
    keep = cv2.dilate(region.astype(np.uint8), _CROSS3)  # the anti-aliased rim, too
    ink = cv2.copyMakeBorder(ink * keep, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)
    big = MNIST_BOX * UPSAMPLE
    f = big / max(h, w)
    size = (max(1, round((w + 4) * f)), max(1, round((h + 4) * f)))
    up = cv2.resize(ink, size, interpolation=cv2.INTER_LINEAR if f >= 1 else cv2.INTER_AREA)
    binary = (up >= level).astype(np.uint8)
    ys, xs = np.nonzero(binary)
    if ys.size == 0:
        return None
    binary = binary[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    binary, width = _normalize_stroke(binary)
    length = float(np.count_nonzero(binary)) / max(width, 1.0) ** 2
    bh, bw = binary.shape
    binary = binary.astype(np.float32)
    views = []
    for box in boxes:
        f = box / max(bh, bw)
        small = cv2.resize(binary, (max(1, round(bw * f)), max(1, round(bh * f))),
                           interpolation=cv2.INTER_AREA)
        m = cv2.moments(small)
        if m["m00"] <= 0:
            return None
        cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
        shift = np.float32([[1, 0, 14 - cx], [0, 1, 14 - cy]])
        out = cv2.warpAffine(small, shift, (28, 28), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        views.append(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8))
    return views, length


def _normalize_stroke(binary: np.ndarray) -> tuple[np.ndarray, float]:
    """Thicken a thin pen or thin a marker so the stroke/size ratio is MNIST's; also returns
    the stroke width (px) before the change."""
    long_side = max(binary.shape)
    framed = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(framed, cv2.DIST_L2, 3)
    width = 4 * float(dist[framed > 0].mean())
    ratio = width / long_side
    if STROKE_MIN <= ratio <= STROKE_MAX:
        return binary, width
    target = (STROKE_TARGET if ratio < STROKE_MIN else STROKE_THIN_TO) * long_side
    radius = round(abs(target - width) / 2)
    if radius < 1:
        return binary, width
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    pad = cv2.copyMakeBorder(binary, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
    if ratio < STROKE_MIN:
        return cv2.dilate(pad, kernel), width
    thinner = cv2.erode(binary, kernel)
    return (thinner if thinner.any() else binary), width
