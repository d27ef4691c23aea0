"""Photo bytes → lines of ink → candidate digit crops (MNIST-like 28×28) with their boxes.

The data flows one way: decode → ink → mask → pieces → lines → groups → crops. Nothing here
decides what is a digit: every group of neighbouring pieces that could be one digit becomes a
crop, and the recognizer's model reads them all (one call) and picks the reading of each line.

  1. decode: read the header only and refuse absurd sizes; decode JPEGs at reduced size (DCT
     scaling, libjpeg-turbo); apply the EXIF orientation; scale to a bounded working resolution
     (640 px);
  2. ink: the darkest colour channel once the paper is made grey (red or light-blue ink keeps
     its contrast, on cream paper too), polarity (dark ink on paper or a light drawing on a
     dark screen), illumination flattened (divide by a morphological closing: the paper
     without its strokes, never under half the whole photo's paper, so a tight crop's bold
     strokes stay ink); ruled or squared paper's lines found (Hough), levelled and subtracted;
  3. mask: Otsu's threshold with a contrast floor; 8-connected pieces (labelled on a mask grown
     by one pixel, so a stroke broken by a pixel stays one piece); specks too small to hold a
     digit dropped, and frames drawn round writing (a closed piece whose inside holds a number:
     its ring erased; a hollow piece holding a digit-sized one);
  4. lines: pieces that share a band of rows and sit near each other, chained left to right (a
     slanted number stays one line); lines top to bottom, pieces by their centre, left to right;
  5. touching digits: a piece wider than a digit is cut into slices at the thin places of its
     column profile and where equal-width digits would part (the candidates; the model decides
     which cuts are real);
  6. groups: each run of up to MAX_SPAN neighbouring pieces of a line (a piece's slices count
     as one when the run holds them all) that is not wider than a digit can be becomes one
     crop, shortest runs first, made like MNIST: the box scaled into 20×20 keeping its aspect
     ratio, the pen brought to MNIST's stroke width, anti-aliased by area averaging, centred by
     its centre of mass in 28×28.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg
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
# The paper under a stroke is taken as at least this share of the photo's own paper: deeper
# shadows than that are rare, and digits cut tight to their ink (bold strokes wider than the
# light-flattening kernel) read 94.5% → 97.5% with it on dev seeds (0.4 and 0.6: 97.0, 97.5%).
PAPER_FLOOR = 0.5
# The light-flattening closing sees the photo go on beyond its frame, as it is at the frame, for
# this share of its kernel: a shadow deepening toward the frame had been taken for paper as
# bright as further in, and became ink that joined a digit near it (the digit was then left
# out with the "table edge"). Dev seeds 7500/7700, every row at 200 photos: the rows' sums
# +12.5/+9.5 points at a quarter (amounts -1.5/0, the writers' numbers +3.5/-0.5), +16.5/+7.5
# at a half, which also took a dark table beyond the sheet for paper (its texture read as
# digits: blank pages +0.5/-1.5, single digits +0.5/-0.5). Tight crops are closed as they are.
FRAME_PAD = 0.25
INK_FLOOR = 48  # ink strength (0–255) below which nothing is ink: ~19% darker than the paper
# ...and Otsu's threshold is never above this: a dark table edge or a black frame pulls it far
# above the faintest ink people write with (pencil, light-blue gel: ~30% darker than paper)
INK_CAP = 72
# ink this share of the threshold (never under WEAK_FLOOR) counts where it joins ink above it:
# a light-blue or pencil stroke fades along its way, most in JPEG's half-resolution colour
HYSTERESIS, WEAK_FLOOR = 0.5, 30
# Ink strength that counts when looking for faint paper rules. A fainter grid is left alone: at
# 20 a small digit on faint squared paper (whose crossings alone reach the threshold) was read
# again, but subtracting rules that never reached the threshold took ink from the faint thin
# strokes crossing them (a 2 read 7): dev seeds 7500/7700, every row at 200 photos, the rows'
# sums -8.5/-5.5 points; -8.5/-6.5 with the subtraction kept to rules whose ink reaches
# INK_FLOOR.
RULE_INK = 28
RULE_SPREAD = np.radians(15)  # rules are sought within this angle of horizontal or vertical
CLOSE_UP_SPAN = 0.75  # a close-up's thick rule runs this share of the photo (see rule_angle)
# Below these a piece of ink is a speck, not worth a model call: a digit narrower than 8 px at
# working resolution has nothing left of its shape once it is scaled into 20×20.
MIN_PIECE_AREA = 4
MIN_DIGIT_HEIGHT = 8
MAX_PIECES = 160  # the biggest pieces of a photo; the rest are texture (and cost time)
# Ink along half of one side of the photo that reaches less than a third of the way in is the
# table beyond the sheet or the sheet's own shadowed edge, not writing: in the generator's
# photos such strips were read as a "1" (a tight crop's digit reaches across its photo, and a
# digit touches a side only for a stroke's width).
EDGE_SHARE, EDGE_DEPTH = 0.5, 1 / 3
# A form's cell cut from its scan has its printed border a few pixels in from the cut, paper
# beyond it: ink that runs along FRAME_SIDE of a side within FRAME_BAND of the photo's extent
# from it counts as running along that side. (Half the side within the band took a tight
# crop's 6 and the last 3 of an amount for strips; no digit runs along nearly all of it.) A
# blob that does so along two sides that meet is a printed frame's corner or its box: its
# strips are cut whatever their depth, where no thicker than PRINTED_LINE of the side (the
# borders drawn into cells: 0.005-0.055; a tight crop's 7 whose stem runs down its side: 0.15).
# The validation writers' cells with a border drawn in (bench: `form_border`) 73.1% → 93.7%;
# development seeds' rows' sums 0.0 / +0.5 points.
FRAME_BAND, FRAME_SIDE, PRINTED_LINE = 0.1, 0.9, 0.08
# Such a strip that the writing touches (a printed line at the field's edge, a form's box, the
# table joined to a digit by a shadow) would take the digit with it, or make one piece of the
# line: the strip is cut off first, as deep as it runs along half the side, and what reaches
# further in is read. A blob reaching further in than EDGE_DEPTH is cut only when it runs
# along the side more than MAX_GROUP_ASPECT times as far as it reaches in (no digit is that
# wide: a tight crop's 7 keeps its bar); a blob reaching less far, only when its strip is
# thinner than the smallest digit: printed lines are 2-5 px, the table beyond the sheet 11-95
# px, whose ragged remains were read as 1s when cut (dev seeds 7500/7700: blank -3/-3.5
# points). As it is, the rows' sums +4/+1 (amounts +2/0, circled digits +2/+0.5), none lower.
# A frame drawn round writing (a circled answer, a box on a form, a cheque's amount box) is no
# unit of its line: a piece whose box holds a digit-sized piece (at least MARK_SIZE of its
# height) with a gap of FRAME_GAP × its height all round, and that is hollow (at most HOLLOW of
# its ink in the middle of its box, FRAME_INSET of each side in), is left out, so what it holds
# is read on its own. A digit's own detached stroke (a 4's bar, a 6's loop) touches its box's
# side or its ink crosses the middle. Dev seeds 7500/7600/7700 (the bench's rows, 200 photos
# each): two photos lost (ticked checkboxes: the tick alone is read "1"), one won; the bench's
# circled or boxed digits at seed 7500 1.5% → 71%, numbers 5.5% → 46%. A gap of 0.05 without
# the hollowness lost seven more photos (a 4's inner stroke, an amount's box joined to digits).
FRAME_GAP, FRAME_INSET, HOLLOW = 0.1, 0.2, 0.05
# A frame that touches the writing is one piece with it, so frames are sought among the pieces
# first. A piece that closes round a hole is a frame round a number when what lies inside it,
# deeper than its ring (FRAME_RING pen widths and the mask's growth from the paper outside it),
# holds two pieces side by side at least MARK_SIZE of the inside's height: its ring is erased
# — with what of the writing touches it there — and what it held is read on its own. At
# least FRAME_DEEP of that ink lies twice as deep: a digit's own strokes inside its loop (a
# 6's closing stroke, a 0 drawn twice round) hug the loop (of the validation writers' 1,182
# cells, 3 lost their outline without this test, none with it); and at most FRAME_HELD of the
# inside is ink (not a scribble). A lone digit touching its frame is not freed: a ticked box
# and a doodle of a loop in a loop were then read as a 1, a 0 or an 8 once their outer ring
# was gone — the model has never seen them alone (development seeds 7500/7700: hatching and
# ticks -12.5/-12 points, words and doodles -4.5/-10.5).
FRAME_RING, FRAME_DEEP, FRAME_HELD = 1.5, 0.4, 0.5
FRAME_SPARSE, MAX_FRAMES = 0.75, 8  # a frame is little ink in its box; a few at most are looked at
# Lines: two pieces are neighbours when they share this much of the shorter one's rows and the
# gap between them is under a multiple of the taller one's height (a space in "1 000 000" is
# about one digit wide); marks far smaller than their neighbour (a dot, a comma, a 5's bar)
# join it when closer.
LINE_OVERLAP = 0.5
LINE_GAP, MARK_GAP, MARK_SIZE = 1.5, 0.6, 0.35
MARK_REACH = 3.0  # ...and within this many of its own heights (a digit is no dot of a table)
# ...and pieces stacked one over the other (a 3 or a 5 broken across, a pen lifted) are one
# line when they share half the narrower one's columns and the gap between them is small
# against the taller: the lines of a list are further apart than that.
STACK_OVERLAP, STACK_GAP = 0.5, 0.25
# ...and together no taller than this × the taller one: the digits of two lines written close
# (one's tail almost on the next one's top) are more than twice a digit's height together
# (dev seeds: two- and three-line photos 81% → 86% right, single digits and numbers alike).
STACK_SPAN = 1.8
# ...and a mark within CAP_GAP × the taller one's height of a digit-sized piece, both across and
# down, is on its line: a Swiss 5's bar, drawn apart and reaching far right of its body, was a
# line of its own (9 of the 11 such 5s of kensanata's training writers are now one line).
CAP_GAP = 0.1
# Cuts: a piece wider than CUT_ASPECT × its line's height gets candidate cuts at the thin
# places of its column profile, at least MIN_SLICE × the height apart. Measured on MNIST's and
# kensanata's training digits: a lone digit is 0.75× as wide as tall (median), 1.3× at the
# 99th percentile; two touching digits are wider than one.
CUT_ASPECT, MIN_SLICE = 0.8, 0.25
MAX_CUT_ASPECT = 6.0  # wider still is a rule, a table's edge: not a run of touching digits
# ...and cuts where it would part into k equal digits, each at least EQUAL_PART × the height
# wide (dev seeds, 200 photos a row: amounts +5.5 and +5 points, every digit touching +3.5 and
# +4; a Swiss 1 with a long upstroke, 1.1× as wide as tall, became "17" once in 1,182 cells)
MAX_EQUAL_PARTS, EQUAL_PART = 4, 0.5
# pieces in one group (a piece's slices count once when the group holds them all): a digit
# broken into more is read as its biggest pieces
MAX_SPAN = 4
MAX_GROUP_ASPECT = 1.6  # several pieces wider than this × their height are no digit (p99.9)
MAX_LINE_GROUPS = 120  # crops per line: bounds the time a photo of texture can take
BRIDGE, MAX_BRIDGE = 0.5, 4  # pieces are joined across gaps of this × the stroke width (px)
MNIST_BOX = 20
STROKE_TARGET = 0.14  # MNIST's median stroke width / longest box side (measured on x_test)
STROKE_MIN = 0.10  # MNIST's 5th percentile: a line's thinner pen is thickened to STROKE_TARGET
STROKE_MAX, STROKE_THIN_TO = 0.30, 0.22  # markers far bolder than MNIST's boldest are thinned
UPSAMPLE = 4  # crops are shaped at 4× the MNIST box, then area-averaged: anti-aliasing
# The line reader's input: a whole line, its digits as tall as MNIST's box, in LINE_H × LINE_W
# (a longer line is shrunk to fit: nine digits and their separators fit at full size)
LINE_H, LINE_W, LINE_DIGIT = 32, 256, MNIST_BOX

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

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


class ImageError(ValueError):
    """The bytes are not a usable photo; str(error) is a message for the user, `code` says
    which: not_an_image | damaged | too_small | too_large (for translations)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Decoded:
    """A working copy of a photo and how it maps to the original."""

    image: np.ndarray  # uint8 (h, w, 3) RGB or (h, w) grey, orientation-corrected
    size: tuple[int, int]  # (width, height) of the orientation-corrected original
    scale: tuple[float, float]  # original px per working px, (x, y)
    owner_ink: np.ndarray | None = None  # training only: ink pixels per owner (see segment)


@dataclass(frozen=True)
class Piece:
    """A connected piece of ink, or a vertical slice of one, at working resolution."""

    label: int  # its component in the photo's label image
    box: Box  # deskewed working coordinates


@dataclass
class Group:
    """A run of neighbouring pieces of a line that may be one digit, as the model sees it."""

    start: int  # pieces [start, end) of its line
    end: int
    box: Box  # in the original photo
    crop: np.ndarray  # uint8 (28, 28), white ink on black, like MNIST
    owners: np.ndarray | None = None  # training only: its ink pixels per owner (see segment)


@dataclass
class Line:
    """One line of writing: its pieces left to right and every group that may be a digit."""

    pieces: list[Piece]
    groups: list[Group]
    height: float  # the height of its tall pieces, working px
    image: np.ndarray | None = None  # uint8 (LINE_H, LINE_W) for the line reader; None: one group
    image_x: tuple[float, float] = (0.0, 1.0)  # working x of the image's column 0, px per column
    owners: np.ndarray | None = None  # training only: its ink pixels per owner (see segment)


def decode(data: bytes, side: int = WORK_SIDE, mode: str = "RGB") -> Decoded:
    """Bytes → orientation-corrected RGB (or grey, `mode="L"`) with the longest side near `side`.

    Raises ImageError with a human message for anything that is not a sane image; the size
    checks happen on the header, before any pixel is decoded.
    """
    if not data:
        raise ImageError(NOT_AN_IMAGE, "not_an_image")
    try:
        im: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, far above ours
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else ""
        raise ImageError(TOO_LARGE.format(size=size), "too_large") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(NOT_AN_IMAGE, "not_an_image") from exc
    with im:
        width, height = im.size
        if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
            raise ImageError(TOO_LARGE.format(size=f" ({width}×{height})"), "too_large")
        if max(width, height) < MIN_SIDE or min(width, height) < MIN_THIN_SIDE:
            raise ImageError(TOO_SMALL, "too_small")
        try:
            orientation = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "MPO") else 1
        except Exception:  # a broken EXIF block should not cost the photo
            orientation = 1
        transpose = _TRANSPOSE.get(orientation)
        if transpose in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                         Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            width, height = height, width
        factor = side / max(width, height)
        want = (max(1, int(im.size[0] * factor)), max(1, int(im.size[1] * factor)))
        turbo = factor < 1 and im.format == "JPEG" and im.mode in ("RGB", "L")
        pixels = _turbo_jpeg(data, im.size, want, mode) if turbo else None
        if pixels is None:
            if factor < 1 and im.format in ("JPEG", "MPO"):
                im.draft(mode, want)  # DCT scaling: decoded straight at 1/2, 1/4 or 1/8
            try:
                im.seek(0)  # the first frame of a GIF/WebP animation
                im.load()
                im = _convert(im, mode)
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise ImageError(DAMAGED, "damaged") from exc
            pixels = np.asarray(im)
    if transpose is not None:
        pixels = np.asarray(Image.fromarray(pixels).transpose(transpose))
    long_side = max(pixels.shape[:2])
    # big photos come down to `side`; tiny ones go up so kernel sizes stay meaningful
    target = side if factor < 1 else max(long_side, min(side, MIN_WORK_SIDE))
    if target != long_side:
        f = target / long_side
        dsize = (max(1, round(pixels.shape[1] * f)), max(1, round(pixels.shape[0] * f)))
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, dsize, interpolation=interp)
    return Decoded(
        image=np.ascontiguousarray(pixels),
        size=(width, height),
        scale=(width / pixels.shape[1], height / pixels.shape[0]),
    )


def _turbo_jpeg(data: bytes, size: tuple[int, int], want: tuple[int, int],
                mode: str) -> np.ndarray | None:
    """A colour or grey JPEG decoded straight at the smallest DCT scale still at least `want`
    (the same pixels as Pillow's draft mode, ~0.6 ms sooner a photo: Pillow feeds its decoder
    in chunks), or None for what libjpeg-turbo calls damaged: Pillow then decides, as before."""
    # the largest power of two (up to 8) by which the photo is still at least `want`, as Pillow
    # picks it (libjpeg-turbo could scale by 7/8, 3/4...: other pixels than before)
    width, height = size
    scale = 1 << min(3, max(0, min(width // want[0], height // want[1])).bit_length() - 1)
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB" if mode == "RGB" else "GRAY",
                                        min_factor=scale, min_width=-(-width // scale),
                                        min_height=-(-height // scale))
    except ValueError:
        return None
    return pixels if mode == "RGB" else pixels[..., 0]


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


def ink_map(image: np.ndarray, crop: bool = False) -> np.ndarray:
    """RGB or grey → uint8 ink strength: 0 = paper, 255 = full ink.

    Ink is what is darker than the paper's own colour in any channel (the darkest channel of
    the photo with its paper made grey keeps red and light-blue ink as strong as black), or,
    on a dark screen, lighter in any channel. The paper is estimated by a morphological
    closing (which removes strokes narrower than the kernel but keeps shadows and gradients)
    on a 1/4-size copy, and the photo is divided by it, which flattens uneven light. `crop`:
    the image is too small to be a photo (see MIN_WORK_SIDE), so its frame is its background.
    """
    if image.ndim == 3:
        # grey first, then shrunk: a third of the pixels to average (same result to ±1)
        if _light_on_dark(shrink(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 4), crop):
            image = cv2.bitwise_not(image)
        r, g, b = _grey_paper(cv2.split(image))
        chan = cv2.min(cv2.min(r, g), b)
    else:
        chan = image
        if _light_on_dark(shrink(image, 4), crop):
            chan = cv2.bitwise_not(image)
    h, w = chan.shape
    small = shrink(chan, 4)
    # an image too small to be a photo (a tight crop) has no shadow at its frame: its ink
    # touching the frame must not go on beyond it
    paper = _closing(small, min(small.shape) // 5, frame=not crop)
    # ...but never darker than PAPER_FLOOR × the paper of the whole photo: in a tight crop a
    # bold stroke is wider than the kernel, and the closing alone takes it for paper
    # (a quantity that smooth is found at a quarter of that size again, 16× fewer pixels:
    # padded at full size it cost 0.4 ms a photo)
    tiny = shrink(small, 4)
    floor = cv2.convertScaleAbs(_closing(tiny, min(tiny.shape), frame=not crop),
                                alpha=PAPER_FLOOR)
    floor = cv2.resize(floor, small.shape[::-1], interpolation=cv2.INTER_LINEAR)
    paper = cv2.max(paper, floor)
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    # no division by zero (OpenCV takes a scalar for src2; its stubs list only arrays)
    paper = cv2.max(paper, 1)  # type: ignore[call-overload]
    flat = cv2.divide(chan, paper, scale=255)  # paper → 255, ink → its relative darkness
    return cv2.bitwise_not(flat)


def _grey_paper(channels: Sequence[np.ndarray]) -> list[np.ndarray]:
    """An RGB photo's channels, each scaled so that the paper (the median) is grey: darker
    than the paper in any channel then means darker than the paper's own colour. On cream
    paper or in warm light, light-blue ink is barely darker than the paper's weak blue
    channel, but far darker than its red one. Dev seeds 7500/7600/7700 (200 photos a row):
    light-blue ink +10/+8/+8 points, the rows' mean +0.4/+0.35/+0.2; blue rules gain contrast
    too, and their remnants cost lines -0.5/-2/-2.5 and the writers' numbers -1/-2.5/-1.5."""
    # the median of every 4th pixel of every 4th row: the paper's colour, at 1/16 of the cost
    paper = np.maximum([_percentiles(np.ascontiguousarray(c[::4, ::4]), (50,))[0]
                        for c in channels], 1)
    gain = paper.min() / paper  # ≤ 1: nothing saturates; a grey photo stays as it is
    return [c if k == 1 else cv2.convertScaleAbs(c, alpha=float(k))
            for c, k in zip(channels, gain, strict=True)]


def _closing(image: np.ndarray, size: int, frame: bool = True) -> np.ndarray:
    """A morphological closing by a square of about `size` (odd, at least 9): the paper with
    the strokes narrower than that removed. `frame`: the photo goes on beyond its frame, as it
    is there, for FRAME_PAD of the square (why: see FRAME_PAD)."""
    k = max(9, size) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    if not frame:
        return cv2.morphologyEx(image, cv2.MORPH_CLOSE, kernel)
    pad = int(FRAME_PAD * k)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    h, w = image.shape
    return cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)[pad : pad + h, pad : pad + w]


def _light_on_dark(small: np.ndarray, crop: bool = False) -> bool:
    """True when the strokes are lighter than the background (a screenshot, a blackboard).

    The background is the median, or the photo's frame (its outer tenth: a form cell's printed
    border is thinner) where the median is ink: in a `crop` (an image too small to be a photo:
    a dataset's digit, a crop cut tight to the ink) and wherever the median is dark but the
    frame is light (a bold 1 or a marker's 0 cut tight covers most of its image). Dev seeds:
    tight crops 94.7% → 98.0%; bold MNIST test digits cut tight at 120 px, 10/20 → 20/20 dark on
    light and 3/20 → 19/20 light on dark; validation writers' cells with a 2 px printed border
    394/400 (with the outermost pixels as the frame, the test's 40 such cells read 0/40).

    On a dark background the ink is whichever tail reaches further from it; a light background
    (paper) counts as light-on-dark only when the light tail clearly dominates, since paper has
    little headroom above it and a table beyond the sheet's edge is darker still.
    """
    lo, background, hi = _percentiles(small, (0.2, 50, 99.8))
    k = max(1, round(0.1 * min(small.shape)))
    frame = float(np.median(np.concatenate([small[:k].ravel(), small[-k:].ravel(),
                                            small[:, :k].ravel(), small[:, -k:].ravel()])))
    if crop or (background < DARK_BACKGROUND <= frame):
        background = frame
    darker, lighter = background - lo, hi - background
    if background < DARK_BACKGROUND:
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
    (paper texture and JPEG noise stay under it) nor above INK_CAP, with hysteresis: fainter
    ink joined to ink above the threshold is ink too (a fine pen's stroke fades and thins)."""
    otsu, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = int(np.clip(otsu, INK_FLOOR, INK_CAP))
    strong = cv2.threshold(ink, level, 255, cv2.THRESH_BINARY)[1]
    weak = cv2.threshold(ink, max(WEAK_FLOOR, int(HYSTERESIS * level)), 255,
                         cv2.THRESH_BINARY)[1]
    n, labels = cv2.connectedComponents(weak, connectivity=8, ltype=_label_type(weak))
    joined = np.zeros(n, np.uint8)
    joined[labels[strong > 0]] = 255
    joined[0] = 0
    return _lookup(joined, labels), level


def _lookup(table: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`table[labels]` for a uint8 table: OpenCV's byte lookup (half numpy's time) when the
    labels fit in a byte, as they do for 92% of photos."""
    if len(table) <= 256:
        return cv2.LUT(labels.astype(np.uint8), np.pad(table, (0, 256 - len(table))))
    return np.take(table, labels)


def rule_thickness(h: int, w: int) -> int:
    """The thickest paper rule (px, odd) in a working image of h × w: a close-up's rules are
    thick, too."""
    return max(5, min(h, w) // 40) | 1


def rule_angle(ink: np.ndarray) -> float | None:
    """The angle (degrees) of ruled or squared paper lines, or None when there are none.

    A standard Hough transform, restricted to ±15° around horizontal and vertical, on the thin
    faint-or-stronger ink (what a 5-px opening removes, so marker strokes do not vote) at half
    size; a rule is a straight line with ink along at least a third of the image's longer
    side, across it as along it: in a wide strip (a cheque's amount field) a digit's stem
    spans a third of the height, and slanted 1s were taken for rules, the strip levelled by
    their slant and the 1s subtracted.

    Where none is found, a close-up's rules are sought: as thick as suppress_rules takes them
    (7 px at half size for a 4:3 photo), and running CLOSE_UP_SPAN of the photo's width or
    height, as a rule runs from side to side. With the thicker opening alone a box drawn by
    hand round the writing voted, the photo was levelled by the box's tilt and its sides
    subtracted (dev seeds 7500/7700: circled numbers -2.0/0 points, the rows' sums -0.5/+1.0;
    at 9 px amounts -3.5/+0.5, their digits' stems voting); with the span, +2.0/+2.0, no row
    lower (a 5 standing on a thick rule had been left out with it).
    """
    h, w = ink.shape
    small = shrink(ink, 2)
    mask = cv2.threshold(small, RULE_INK, 255, cv2.THRESH_BINARY)[1]
    angles = _rule_angles(mask, _ELLIPSE5, (max(w, h) // 2 // 3,) * 2)
    if not angles:  # a close-up's rules are thicker, and run across the whole photo
        size = max(5, (rule_thickness(h, w) // 2) | 1)  # odd, at half size
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        angles = _rule_angles(mask, disc, (int(CLOSE_UP_SPAN * w / 2), int(CLOSE_UP_SPAN * h / 2)))
    return float(np.median(angles)) if angles else None


def _rule_angles(mask: np.ndarray, disc: np.ndarray, votes: tuple[int, int]) -> list[float]:
    """The angles of up to 8 horizontal and 8 vertical lines in what an opening by `disc`
    removes from a half-size mask, each with at least `votes` (horizontal, vertical) pixels."""
    thin = cv2.subtract(mask, cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc))
    angles: list[float] = []
    for centre, least in zip((np.pi / 2, 0.0), votes, strict=True):
        found = cv2.HoughLines(thin, 1, np.pi / 360, least,
                               min_theta=centre - RULE_SPREAD, max_theta=centre + RULE_SPREAD)
        if found is not None:
            angles.extend(np.degrees(found.reshape(-1, 2)[:8, 1] - centre))
    return angles


def deskew(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate so the paper's rules are axis-aligned, on a canvas large enough to lose nothing;
    also returns the 2×3 inverse transform."""
    h, w = image.shape
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    size = (int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos)))
    rot[0, 2] += (size[0] - w) / 2
    rot[1, 2] += (size[1] - h) / 2
    out = cv2.warpAffine(image, rot, size, flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, cv2.invertAffineTransform(rot)


def suppress_rules(ink: np.ndarray) -> np.ndarray:
    """Subtract axis-aligned paper rules from the ink map (grayscale, before thresholding).

    A long 1-D opening keeps the straight runs, a short opening across them the thick ones
    (a marker bar); the thinner runs whose connected parts reach across much of the image are
    rules. Only up to the rules' own strength is subtracted, so a stroke lying on a rule keeps
    its ink, and a closing across the rule mends strokes that crossed it (ink on both sides).
    """
    h, w = ink.shape
    thick = rule_thickness(h, w)
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
        found = cv2.resize(_lookup(kind, labels), (w, h), interpolation=cv2.INTER_NEAREST)
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
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8,
                                                           ltype=_label_type(mask))
    return n, labels, stats


def _label_type(mask: np.ndarray) -> int:
    return cv2.CV_16U if cv2.countNonZero(mask) < np.iinfo(np.uint16).max else cv2.CV_32S


_ELLIPSE5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_CROSS3 = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE3 = np.ones((3, 3), np.uint8)


def segment(data: bytes, owners: np.ndarray | None = None) -> tuple[Decoded, list[Line]]:
    """Photo bytes → the decoded photo and its lines of writing, top to bottom, each with the
    crops of every group of pieces that may be a digit. Raises ImageError for bad input.

    `owners` is for making training data: which digit owns each pixel of the photo (uint8, the
    photo's size, 0 for none; model/photos.py draws it). Each group then counts its ink pixels
    by owner (`Group.owners`, and `Line.owners` where the line has an image), and
    `Decoded.owner_ink` counts all ink pixels by owner.
    """
    decoded = decode(data)
    ink = ink_map(decoded.image, crop=max(decoded.size) < MIN_WORK_SIDE)
    owned = None
    if owners is not None:  # grown by a pixel first: a hairline survives the shrinking
        owned = cv2.resize(cv2.dilate(owners, _SQUARE3), ink.shape[::-1],
                           interpolation=cv2.INTER_NEAREST)
    inverse = None
    h, w = ink.shape
    frame = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    angle = rule_angle(ink)
    if angle is not None:
        if abs(angle) > 0.25:
            ink, inverse = deskew(ink, angle)
            forward = cv2.invertAffineTransform(inverse)
            frame = frame @ forward[:, :2].T + forward[:, 2]
            if owned is not None:
                owned = cv2.warpAffine(owned, forward, ink.shape[::-1],
                                       flags=cv2.INTER_NEAREST)
        ink = suppress_rules(ink)
    mask, level = threshold(ink)
    # labels from a mask grown by half a stroke's width: a stroke broken by faint spots (a
    # dry pen, a textured scan) stays one piece
    grow = int(np.clip(round(BRIDGE * _stroke(mask)), 1, MAX_BRIDGE))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    n, labels, stats = _components(cv2.dilate(mask, disc))
    framed = _frames(mask, labels, stats, n, grow)
    if framed:  # what a frame held is its own pieces once the frame is gone
        n, labels, stats = _components(cv2.dilate(mask, disc))
    edges = _edges(labels, mask > 0, stats, n, frame)
    if edges and _strips(mask, labels, stats, edges, frame):
        n, labels, stats = _components(cv2.dilate(mask, disc))
        edges = _edges(labels, mask > 0, stats, n, frame)
    inked = mask > 0
    if owned is not None:
        decoded.owner_ink = np.bincount(owned[inked], minlength=256)
    area = np.bincount(labels[inked], minlength=n)
    edge = np.zeros(n, bool)
    edge[[i for _, i, shallow, _ in edges if shallow]] = True
    keep = np.flatnonzero((area >= MIN_PIECE_AREA) & (np.arange(n) > 0) & ~edge)
    keep = keep[np.argsort(-area[keep])][:MAX_PIECES]
    boxes = [(int(stats[i, 0]) + grow, int(stats[i, 1]) + grow,  # the growth's rim back off
              int(stats[i, 0] + stats[i, 2]) - grow, int(stats[i, 1] + stats[i, 3]) - grow)
             for i in keep]
    pieces = _unframed([Piece(int(i), b) for i, b in zip(keep, boxes, strict=True)
                        if b[2] > b[0] and b[3] > b[1]], labels, inked)
    lines: list[Line] = []
    for members in _lines(pieces):
        height = _line_height(members)
        if height < MIN_DIGIT_HEIGHT:
            continue
        sliced = [s for p in members for s in _slices(p, labels, inked, height)]
        sliced.sort(key=lambda p: (p.box[0] + p.box[2], p.box[1]))
        line = Line(sliced, [], height)
        for first, last in _runs(sliced)[:MAX_LINE_GROUPS]:
            box = _union([p.box for p in sliced[first:last]])
            region = _group_region(sliced[first:last], box, labels, inked)
            x0, y0, x1, y1 = box
            crop = mnist_crop(ink[y0:y1, x0:x1], region, level)
            if crop is not None:
                group = Group(first, last, _to_original(box, inverse, decoded), crop)
                if owned is not None:
                    group.owners = np.bincount(owned[y0:y1, x0:x1][region], minlength=256)
                line.groups.append(group)
        if len(line.groups) >= 2:  # one group is one digit at most: the reader has no say
            x0, y0, x1, y1 = _union([p.box for p in sliced])
            region = _group_region(sliced, (x0, y0, x1, y1), labels, inked)
            line.image, (left, scale) = line_crop(ink[y0:y1, x0:x1], region, level, height,
                                                  _line_slope(sliced, height))
            line.image_x = (x0 + left, scale)
            if owned is not None:
                line.owners = np.bincount(owned[y0:y1, x0:x1][region], minlength=256)
        if line.groups:
            lines.append(line)
    lines.sort(key=lambda ln: float(np.median([(p.box[1] + p.box[3]) / 2 for p in ln.pieces])))
    return decoded, lines


def _edges(labels: np.ndarray, inked: np.ndarray, stats: np.ndarray, n: int,
           frame: np.ndarray) -> list[tuple[int, int, bool, bool]]:
    """The blobs that run along a side of the photo, as (side, blob, shallow, corner): shallow
    ones are the table, the sheet's edge or a printed line (EDGE_SHARE, FRAME_BAND); deeper
    ones are listed only when they run along the side MAX_GROUP_ASPECT times as far as they
    reach in, or are a printed frame's corner (strips to cut).

    `frame` holds the photo's corners (clockwise from the top left) where the segmentation
    sees them: a deskewed photo's sides are slanted lines inside a larger canvas, and its
    pixels next to them are blended with the canvas, so they are looked at 2 px further in.
    How far in a blob reaches is measured across its side: along a slanted side, a strip of
    table has a wide upright box (dev seeds: 4 photos more of 7,200, none fewer).
    """
    h, w = inked.shape
    ends = np.roll(frame, -1, axis=0)  # side k runs from corner k to corner k + 1
    length = np.hypot(*(ends - frame).T)
    across = np.roll(length, -1)  # the photo's extent away from each side
    steps = np.maximum(2, np.rint(length).astype(int) + 1)
    side = np.repeat(np.arange(4), steps)
    t = np.concatenate([np.linspace(0, 1, s) for s in steps])[:, None]
    pts = frame[side] + t * (ends - frame)[side]
    inward = frame.mean(axis=0) - (frame + ends) / 2
    inward /= np.hypot(*inward.T)[:, None]  # each side's unit step into the photo
    first = 2 if frame[0, 1] != frame[1, 1] else 0  # deskewed: the top side is no pixel row

    def pixel(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points (x, y) → the rows and columns of their nearest pixels in the photo."""
        return (np.clip(np.rint(at[:, 1]).astype(int), 0, h - 1),
                np.clip(np.rint(at[:, 0]).astype(int), 0, w - 1))

    ys, xs = pixel(pts + first * inward[side] if first else pts)
    hit = inked[ys, xs]
    along = np.bincount(side[hit] * n + labels[ys[hit], xs[hit]], minlength=4 * n).reshape(4, n)
    # the share of each side a blob runs along within FRAME_BAND of it (a place along the side
    # once, however many of the band's rows it inks there), for blobs whose box spans nearly a
    # side (tilted up to RULE_SPREAD; most photos have none) at every other place and row: a
    # printed line is 2 px or more at the working size, and every place and row cost a wide
    # blob's photo 2.4 ms
    spans = (stats[1:n, [2, 3, 2, 3]] >= FRAME_SIDE * np.cos(RULE_SPREAD) * length).T
    wide = np.flatnonzero(spans.any(axis=0)) + 1
    near = np.zeros((4, n))
    if wide.size:
        places = np.flatnonzero(spans.any(axis=1)[side])[::2]
        band = np.arange(first, first + max(1, round(FRAME_BAND * float(across.min()))), 2)
        ys, xs = pixel((pts[places] + band[:, None, None] * inward[side[places]]).reshape(-1, 2))
        which = np.full(n, -1)
        which[wide] = np.arange(wide.size)
        blob = which[labels[ys, xs]]
        hit = inked[ys, xs] & (blob >= 0)
        covered = np.zeros((wide.size, places.size), bool)
        covered[blob[hit], np.tile(np.arange(places.size), band.size)[hit]] = True
        for k in np.flatnonzero(spans.any(axis=1)):
            near[k, wide] = covered[:, side[places] == k].mean(axis=1)
    runs = along >= EDGE_SHARE * (length[:, None] + 1)
    full: np.ndarray = near >= FRAME_SIDE
    corner = (full & np.roll(full, -1, axis=0)).any(axis=0)
    edge = []
    for k, i in np.argwhere(runs | full):
        if frame[0, 1] == frame[1, 1]:  # the photo's own sides: a box's height or width
            depth = stats[i, 3 if k % 2 == 0 else 2]
        else:  # a slanted side: how far in its ink reaches, across the side (not its box)
            x0, y0, bw, bh = stats[i, :4]
            ys_i, xs_i = np.nonzero(labels[y0 : y0 + bh, x0 : x0 + bw] == i)
            offset = _offsets(frame, k, xs_i + x0, ys_i + y0)
            depth = np.ptp(offset) if offset.size else 0
        shallow = depth < EDGE_DEPTH * (across[k] + 1)
        if (shallow or full[k, i] and corner[i]
                or runs[k, i] and along[k, i] >= MAX_GROUP_ASPECT * depth):
            edge.append((int(k), int(i), bool(shallow), bool(full[k, i] and corner[i])))
    return edge


def _offsets(frame: np.ndarray, k: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """How far points lie from side k of the frame (corner k to corner k + 1)."""
    start, end = frame[k], frame[(k + 1) % 4]
    normal = np.array([end[1] - start[1], start[0] - end[0]]) / np.hypot(*(end - start))
    return np.abs((np.stack([xs, ys], axis=1) - start) @ normal)


def _strips(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray,
            edges: list[tuple[int, int, bool, bool]], frame: np.ndarray) -> int:
    """Erase from `mask` the strip by which each blob of `edges` runs along its side, where
    what reaches further in is writing that touches it (see EDGE_SHARE), and every strip of a
    printed frame's corner or box (see FRAME_BAND); how many were cut."""
    cut = 0
    for k, i, shallow, corner in edges:
        x0, y0, bw, bh = (int(v) for v in stats[i, :4])
        ys, xs = np.nonzero((labels[y0:y0 + bh, x0:x0 + bw] == i)
                            & (mask[y0:y0 + bh, x0:x0 + bw] > 0))
        offset = _offsets(frame, k, xs + x0, ys + y0).astype(int)
        # the strip: from where the blob first runs along half the side to where it stops
        side = np.hypot(*(frame[(k + 1) % 4] - frame[k])) + 1
        along = np.bincount(offset, minlength=1) >= EDGE_SHARE * side
        first = int(np.argmax(along))
        end = first + int(np.argmin(along[first:])) if not along[first:].all() else along.size
        strip = offset <= end
        thick = (end - first > PRINTED_LINE * side if corner
                 else shallow and end - first >= MIN_DIGIT_HEIGHT)
        if not along.any() or strip.all() and not corner or thick:
            continue
        mask[ys[strip] + y0, xs[strip] + x0] = 0
        cut += 1
    return cut


def _stroke(mask: np.ndarray) -> float:
    """A mask's stroke width, cheaply: twice its ink over its rim (the pixels an erosion takes)."""
    ink = cv2.countNonZero(mask)
    return 2 * ink / max(1, ink - cv2.countNonZero(cv2.erode(mask, _SQUARE3)))


def _frames(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray, n: int, grow: int) -> int:
    """Erase from `mask` the frames drawn round a number, touching it or not (see FRAME_RING);
    how many were erased. `labels` and `stats` are the pieces of the mask grown by `grow`."""
    w, h, area = stats[1:n, 2:5].T
    big = (h >= 2 * MIN_DIGIT_HEIGHT + 2 * grow) & (w >= 2 * MIN_DIGIT_HEIGHT + 2 * grow)
    found = 0
    for i in np.flatnonzero(big & (area <= FRAME_SPARSE * w * h))[:MAX_FRAMES] + 1:
        x0, y0, bw, bh = (int(v) for v in stats[i, :4])
        piece = (labels[y0:y0 + bh, x0:x0 + bw] == i).astype(np.uint8)
        outside = cv2.copyMakeBorder(piece, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        if cv2.floodFill(outside, None, (0, 0), 2)[0] + cv2.countNonZero(piece) == outside.size:
            continue  # no hole: it holds nothing
        # how far each pixel of the piece, holes filled, lies from the paper outside it
        depth = cv2.distanceTransform((outside != 2).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        ink = mask[y0:y0 + bh, x0:x0 + bw] > 0
        own = (ink & (piece > 0)).view(np.uint8)
        ring = grow + FRAME_RING * _stroke(own) + 1
        inside = depth > ring
        held = ink & inside
        deep = held & (depth > 2 * ring)
        rows = np.flatnonzero(deep.any(axis=1))
        if (rows.size == 0 or rows[-1] - rows[0] + 1 < MIN_DIGIT_HEIGHT
                or deep.sum() < FRAME_DEEP * held.sum()
                or held.sum() > FRAME_HELD * inside.sum()
                or not _side_by_side(held, MARK_SIZE * np.count_nonzero(inside.any(axis=1)))):
            continue
        mask[y0:y0 + bh, x0:x0 + bw][(own > 0) & (depth <= ring)] = 0
        found += 1
    return found


def _side_by_side(held: np.ndarray, least: float) -> bool:
    """Whether the ink holds two pieces at least `least` tall side by side: not stacked (see
    STACK_OVERLAP), as two digits of a number are."""
    k, _, stats, _ = cv2.connectedComponentsWithStats(held.view(np.uint8), connectivity=8)
    x, _, w, h = stats[1:k, :4][stats[1:k, 3] >= max(MIN_DIGIT_HEIGHT, least)].T
    shared = np.minimum(x + w, (x + w)[:, None]) - np.maximum(x, x[:, None])
    apart = shared < STACK_OVERLAP * np.minimum(w, w[:, None])
    return bool(apart[np.triu_indices(len(x), 1)].any())


def _unframed(pieces: list[Piece], labels: np.ndarray, inked: np.ndarray) -> list[Piece]:
    """The pieces less the frames drawn round writing (see FRAME_GAP)."""
    if len(pieces) < 2:
        return pieces
    x0, y0, x1, y1 = np.array([p.box for p in pieces], np.float64).T
    h = y1 - y0
    gap = FRAME_GAP * h[:, None]  # rows: the frame; columns: what it may hold
    holds = ((x0[None] - x0[:, None] >= gap) & (x1[:, None] - x1[None] >= gap)
             & (y0[None] - y0[:, None] >= gap) & (y1[:, None] - y1[None] >= gap)
             & (h[None] >= MARK_SIZE * h[:, None]) & (h[None] >= MIN_DIGIT_HEIGHT)).any(axis=1)
    kept = []
    for piece, frame in zip(pieces, holds, strict=True):
        if frame:
            bx0, by0, bx1, by1 = piece.box
            own = (labels[by0:by1, bx0:bx1] == piece.label) & inked[by0:by1, bx0:bx1]
            dy, dx = round(FRAME_INSET * (by1 - by0)), round(FRAME_INSET * (bx1 - bx0))
            if own[dy : by1 - by0 - dy, dx : bx1 - bx0 - dx].sum() <= HOLLOW * own.sum():
                continue
        kept.append(piece)
    return kept


def _lines(pieces: list[Piece]) -> list[list[Piece]]:
    """Pieces → lines of writing (union of neighbour links, see LINE_OVERLAP)."""
    if not pieces:
        return []
    b = np.array([p.box for p in pieces], np.float64)
    x0, y0, x1, y1 = b.T
    h = y1 - y0
    shared = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])
    small, tall = np.minimum(h[:, None], h[None]), np.maximum(h[:, None], h[None])
    gap = np.maximum(x0[:, None] - x1[None], x0[None] - x1[:, None])
    alike = small >= MARK_SIZE * tall
    near = np.where(alike, gap <= LINE_GAP * tall,
                    (gap <= MARK_GAP * tall) & (gap <= MARK_REACH * small))
    w = x1 - x0
    span = np.maximum(y1[:, None], y1[None]) - np.minimum(y0[:, None], y0[None])
    stacked = (-gap >= STACK_OVERLAP * np.minimum(w[:, None], w[None])) & (
        -shared <= STACK_GAP * tall) & (span <= STACK_SPAN * tall)
    capping = ~alike & (gap <= CAP_GAP * tall) & (shared >= -CAP_GAP * tall) & (
        span <= STACK_SPAN * tall)
    link = ((shared >= LINE_OVERLAP * small) & near) | stacked | capping
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in np.argwhere(np.triu(link, 1)):
        parent[root(int(i))] = root(int(j))
    lines: dict[int, list[Piece]] = {}
    for i, p in enumerate(pieces):
        lines.setdefault(root(i), []).append(p)
    return list(lines.values())


def _line_height(members: list[Piece]) -> float:
    """The height of a line's digits: the median of its pieces at least half as tall as its
    tallest (a dot, a comma or a 5's detached bar does not count)."""
    heights = np.array([p.box[3] - p.box[1] for p in members], np.float64)
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def _slices(piece: Piece, labels: np.ndarray, inked: np.ndarray, height: float) -> list[Piece]:
    """A piece wider than a digit → vertical slices at the thin places of its column profile
    (touching digits part there) and where equal-width digits would part; a narrower piece
    as it is."""
    x0, y0, x1, y1 = piece.box
    width = x1 - x0
    if not CUT_ASPECT * height < width <= MAX_CUT_ASPECT * height:
        return [piece]
    region = (labels[y0:y1, x0:x1] == piece.label) & inked[y0:y1, x0:x1]
    profile = region.sum(axis=0).astype(np.float64)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")  # a pixel's noise is no valley
    step = max(1, round(MIN_SLICE * height))
    inner = np.arange(step, width - step)
    if inner.size == 0:
        return [piece]
    valleys = inner[(profile[inner] <= profile[inner - 1]) & (profile[inner] <= profile[inner + 1])]
    cuts: list[int] = []
    for x in valleys[np.argsort(profile[valleys], kind="stable")]:
        if all(abs(int(x) - c) >= step for c in cuts):
            cuts.append(int(x))
        if len(cuts) >= int(width / step) - 1:
            break
    # ...and where it would part into 2, 3 or 4 digits of equal width: two rings touching
    # ("00", "80") meet where the profile is thickest, not at a thin place
    for k in range(2, min(MAX_EQUAL_PARTS, int(width / (EQUAL_PART * height))) + 1):
        for i in range(1, k):
            x = round(width * i / k)
            if all(abs(x - c) >= step // 2 for c in cuts):
                cuts.append(x)
    out = []
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), width], strict=True):
        rows = np.flatnonzero(region[:, a:b].any(axis=1))
        if rows.size:
            out.append(Piece(piece.label, (x0 + a, y0 + int(rows[0]), x0 + b,
                                           y0 + int(rows[-1]) + 1)))
    return out


def _runs(sliced: list[Piece]) -> list[tuple[int, int]]:
    """The runs of neighbouring slices [first, last) that may be one digit, shortest first: a
    line of many pieces (texture, a shadow's specks) spends MAX_LINE_GROUPS on every piece's
    own crop before any pair, not on its left end alone.

    A run holds at most MAX_SPAN pieces and is no wider than MAX_GROUP_ASPECT × its height; a
    run of more than MAX_SPAN slices only when it holds its pieces whole (a wide 0 cut tight to
    its ink is sliced in five).
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, p in enumerate(sliced):
        first.setdefault(p.label, k)
        last[p.label] = k
    runs = []
    for start in range(len(sliced)):
        held: set[int] = set()
        x0, y0, x1, y1 = sliced[start].box
        for end in range(start + 1, len(sliced) + 1):  # the run grows by one slice at a time
            piece = sliced[end - 1]
            held.add(piece.label)
            if len(held) > MAX_SPAN:
                break
            x0, y0, x1, y1 = _union([(x0, y0, x1, y1), piece.box])
            if end - start > MAX_SPAN and not all(
                    first[k] >= start and last[k] < end for k in held):
                continue
            if end - start > 1 and x1 - x0 > MAX_GROUP_ASPECT * (y1 - y0):
                continue
            runs.append((start, end))
    return sorted(runs, key=lambda r: (r[1] - r[0], r[0]))


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _group_region(pieces: list[Piece], box: Box, labels: np.ndarray,
                  inked: np.ndarray) -> np.ndarray:
    """A group's own ink in its box (bool): its pieces' pixels, not a neighbour's."""
    x0, y0, x1, y1 = box
    region = np.zeros((y1 - y0, x1 - x0), bool)
    for p in pieces:
        px0, py0, px1, py1 = p.box
        region[py0 - y0:py1 - y0, px0 - x0:px1 - x0] |= (
            labels[py0:py1, px0:px1] == p.label) & inked[py0:py1, px0:px1]
    return region


def _to_original(box: Box, inverse: np.ndarray | None, decoded: Decoded) -> Box:
    """A box at working resolution (maybe deskewed) → x0, y0, x1, y1 in the original photo."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    if inverse is not None:
        corners = corners @ inverse[:, :2].T + inverse[:, 2]
    sx, sy = decoded.scale
    width, height = decoded.size
    return (
        max(0, int(corners[:, 0].min() * sx)), max(0, int(corners[:, 1].min() * sy)),
        min(width, int(np.ceil(corners[:, 0].max() * sx))),
        min(height, int(np.ceil(corners[:, 1].max() * sy))),
    )


def mnist_crop(ink: np.ndarray, region: np.ndarray, level: int) -> np.ndarray | None:
    """One digit's ink (uint8, its box) → uint8 28×28 like MNIST, or None if it is empty.

    The ink outside the digit's own pieces is masked out, the box is enlarged so its longest
    side is 4×20 px, a marker's strokes are thinned (`_thin_marker`), then the image is
    area-averaged down into 20×20 (as MNIST; that gives MNIST's anti-aliased edges) and placed
    in 28×28 with its centre of mass at the centre.
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
    x, y, bw, bh = cv2.boundingRect(binary)
    if bw == 0:
        return None
    binary = _thin_marker(binary[y : y + bh, x : x + bw])
    bh, bw = binary.shape
    f = MNIST_BOX / max(bh, bw)
    small = cv2.resize(binary.astype(np.float32), (max(1, round(bw * f)), max(1, round(bh * f))),
                       interpolation=cv2.INTER_AREA)
    # the centre of mass from the row and column sums, not cv2.moments: OpenCV takes an N×2
    # float array for the N points of a contour, so a crop 2 px wide (a narrow 1) was measured
    # as a polygon, and lost or centred in a corner
    rows, cols = small.sum(axis=1, dtype=np.float64), small.sum(axis=0, dtype=np.float64)
    total = float(rows.sum())
    if total <= 0:
        return None
    cx, cy = float(cols @ np.arange(cols.size)) / total, float(rows @ np.arange(rows.size)) / total
    shift = np.array([[1, 0, 14 - cx], [0, 1, 14 - cy]], np.float32)
    out = cv2.warpAffine(small, shift, (28, 28), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def _thin_marker(binary: np.ndarray) -> np.ndarray:
    """Thin a marker far bolder than MNIST's boldest (STROKE_MAX) to STROKE_THIN_TO.

    A thin pen is left thin: the model learns thin strokes from MNIST's own and from its
    augmentation, and a thickened hairline fills a small loop (a 9's, an 8's) that the model
    then misses. Dev seeds 7500/7600/7700 (the bench's rows at 200 photos, the validation
    writers), with the model trained on thickened crops: the rows' sums +5.4, +2.9, +2.9
    points, the validation writers' cells 98.7 -> 99.1% (1,167 -> 1,171 of 1,182).
    """
    long_side = max(binary.shape)
    width = _pen_width(binary)
    if width <= STROKE_MAX * long_side:
        return binary
    return _set_pen(binary, width, STROKE_THIN_TO * long_side)


def _pen_width(binary: np.ndarray) -> float:
    """The mean stroke width of a 0/1 image, in px: 4 × the mean distance of ink to paper."""
    framed = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(framed, cv2.DIST_L2, 3)
    return 4 * float(dist[framed > 0].mean())


def _set_pen(binary: np.ndarray, width: float, target: float) -> np.ndarray:
    """The strokes dilated or eroded from `width` to about `target` px (unchanged under a
    pixel's difference, or where erosion would leave nothing)."""
    radius = round(abs(target - width) / 2)
    if radius < 1:
        return binary
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    changed = cv2.dilate(binary, kernel) if target > width else cv2.erode(binary, kernel)
    return np.asarray(changed if changed.any() else binary, np.uint8)


def _line_slope(pieces: list[Piece], height: float) -> float:
    """The slope of a line's writing: a least-squares line through its tall pieces' centres."""
    boxes = np.array([p.box for p in pieces if p.box[3] - p.box[1] >= 0.5 * height], np.float64)
    if len(boxes) < 3:
        return 0.0
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    if np.ptp(cx) < 2 * height:
        return 0.0
    return float(np.clip(np.polyfit(cx, cy, 1)[0], -0.3, 0.3))


def line_crop(ink: np.ndarray, region: np.ndarray, level: int, height: float,
              slope: float = 0.0) -> tuple[np.ndarray, tuple[float, float]]:
    """A line's ink (uint8, its box) → the line reader's input, uint8 LINE_H × LINE_W, white on
    black: levelled, its digits LINE_DIGIT px tall (shrunk to fit), a thin pen thickened to
    MNIST's median width and a marker thinned (`mnist_crop` only thins), centred, from column
    2; and (the input's column 0 in the box, box px per column), to find a digit the reader
    reads."""
    ink = ink * cv2.dilate(region.astype(np.uint8), _CROSS3)
    out = np.zeros((LINE_H, LINE_W), np.uint8)
    left = 0
    if abs(slope) > 0.02:  # a rising or falling line is levelled about its middle
        h, w = ink.shape
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(np.degrees(np.arctan(slope))), 1.0)
        pad = int(abs(slope) * w / 2) + 2
        turn[1, 2] += pad
        ink = cv2.warpAffine(ink, turn, (w, h + 2 * pad), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(ink >= level)
    if ys.size == 0:
        return out, (0.0, 1.0)
    left = int(xs.min())
    ink = ink[ys.min() : ys.max() + 1, left : xs.max() + 1]
    h, w = ink.shape
    f = min(LINE_DIGIT / height, (LINE_H - 2) / h, (LINE_W - 4) / w)
    up = f * UPSAMPLE
    size = (max(1, round(w * up)), max(1, round(h * up)))
    binary = (cv2.resize(ink, size, interpolation=cv2.INTER_LINEAR if up >= 1 else cv2.INTER_AREA)
              >= level).astype(np.uint8)
    digit = height * up
    ratio = _pen_width(binary) / digit if binary.any() else STROKE_TARGET
    if not STROKE_MIN <= ratio <= STROKE_MAX:
        target = STROKE_TARGET if ratio < STROKE_MIN else STROKE_THIN_TO
        binary = _set_pen(binary, ratio * digit, target * digit)
    small = cv2.resize(binary.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA)[:LINE_H, : LINE_W - 2]
    top = (LINE_H - small.shape[0]) // 2
    out[top : top + small.shape[0], 2 : 2 + small.shape[1]] = np.clip(
        small * 255 / max(float(small.max()), 1e-3), 0, 255)
    return out, (left - 2 / f, 1 / f)
