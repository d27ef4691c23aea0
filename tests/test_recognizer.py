"""The recognizer on real images made here from MNIST *test* digits, with the real release model.

Photos are composed with OpenCV: dark ink on off-white paper (with a light gradient, ruled or
squared lines, rotation, JPEG), white-on-black screenshots, and every kind of broken input.
The dev model is not perfect, so the digits used are the sample's test digits that it reads
surely on their own 28×28; accuracy checks over several photos allow one miss.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from model.data import load_kensanata
from model.photos import KINDS, Digits, Truth, form_border, make_photo, photo_set
from model.preprocess import (
    INK_FLOOR,
    MAX_SPAN,
    ImageError,
    Piece,
    _runs,
    decode,
    ink_map,
    mnist_crop,
)
from model.recognize import (
    BLANK,
    CLASSES,
    MARK,
    PART,
    READER_STRIDE,
    Digit,
    Recognizer,
    Result,
    read_line,
    render_annotated,
)
from tests.support.paper import (
    encode,
    number_photo,
    overlaps,
    paper,
    png_header,
    put_digit,
    rotate,
    sure_digits,
)

ROOT = Path(__file__).resolve().parents[1]
RNG_SEED = 7


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer()


@pytest.fixture(scope="module")
def digits(rec: Recognizer) -> dict[int, list[np.ndarray]]:
    """Sample test digits per label that the model reads with ≥ 99% on their own."""
    return sure_digits(rec)


# --- the API -----------------------------------------------------------------------------


def test_result_fields_and_json(rec: Recognizer, digits: dict) -> None:
    data, boxes = number_photo(digits, "7", np.random.default_rng(RNG_SEED))
    res = rec.recognize(data)
    assert isinstance(res, Result)
    assert (res.status, res.text, res.error) == ("ok", "7", None)
    assert 0 < res.seconds < 5
    (d,) = res.digits
    assert isinstance(d, Digit) and d.digit == 7 and 0.5 < d.confidence <= 1
    assert d.crop.shape == (28, 28) and d.crop.dtype == np.uint8 and d.crop.max() > 200
    assert [k for k, _ in d.alternatives][0] == 7 and len(d.alternatives) == 3
    assert [p for _, p in d.alternatives] == sorted((p for _, p in d.alternatives), reverse=True)
    assert overlaps(d.box, boxes[0])
    x0, y0, x1, y1 = d.box
    assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 960
    out = res.to_json("a.jpg")
    assert out == {"file": "a.jpg", "status": "ok", "text": "7", "digits": [
        {"digit": 7, "confidence": round(d.confidence, 4), "box": list(d.box), "line": 0}]}
    assert res.lines == ["7"]
    assert rec.model_path.name == "model.tflite"


def test_classify_batch_matches_single(rec: Recognizer, digits: dict) -> None:
    batch = np.stack([digits[k][0] for k in range(10)])
    probs = rec.classify(batch)
    assert probs.shape == (10, CLASSES)  # the digits, MARK and PART
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert list(probs.argmax(axis=1)) == list(range(10))
    for k in (0, 5, 9):
        assert np.allclose(rec.classify(batch[k:k + 1])[0], probs[k], atol=1e-5)
    for n in (3, 4, 5, 8):  # whole chunks of CHUNK, a remainder, or both
        assert np.allclose(rec.classify(batch[:n]), probs[:n], atol=1e-5)
    assert rec.classify(np.zeros((0, 28, 28), np.uint8)).shape == (0, CLASSES)


def test_one_model_call_per_photo(rec: Recognizer, digits: dict, monkeypatch) -> None:
    calls = []
    predict = rec._predict
    monkeypatch.setattr(rec, "_predict", lambda x: calls.append(len(x)) or predict(x))
    data, _ = number_photo(digits, "3141", np.random.default_rng(RNG_SEED), height=120, x=150)
    assert rec.recognize(data).text == "3141"
    assert len(calls) == 1 and calls[0] >= 4


# --- where, how big, which polarity, which paper ---------------------------------------------


POSITIONS = [  # (x, y, height) in a 1280×960 photo: corners, centre, tiny to most of the frame
    (30, 30, 60), (1150, 40, 80), (40, 820, 100), (1100, 700, 200), (560, 400, 160),
    (300, 100, 700), (700, 200, 40), (900, 500, 30), (100, 350, 300), (600, 30, 880),
]


def test_positions_and_sizes(rec: Recognizer, digits: dict) -> None:
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for k, (x, y, height) in enumerate(POSITIONS):
        label = k % 10
        img = paper(1280, 960, rng)
        box = put_digit(img, digits[label][k % len(digits[label])], x, y, height)
        res = rec.recognize(encode(img))
        if res.text == str(label) and overlaps(res.digits[0].box, box):
            right += 1
    assert right >= 9, f"{right}/10 positions read right"


def test_white_on_black_screenshot(rec: Recognizer, digits: dict) -> None:
    right = 0
    for label in range(10):
        canvas = np.zeros((720, 720, 3), np.float32) + 18
        put_digit(canvas, digits[label][1], 260, 200, 300, ink=(250.0, 250.0, 250.0))
        right += rec.recognize(encode(canvas, ".png")).text == str(label)
    assert right >= 9, f"{right}/10 screenshots read right"


def test_digits_cropped_tight_to_their_ink(rec: Recognizer, digits: dict) -> None:
    """A digit cut out to its own box (a scan's cell, a dataset's image, a photo cropped to the
    digit) touches every side of the frame; it is read all the same, at 16 px as at 200 px."""
    right = 0
    for label in range(10):
        glyph = digits[label][0]
        ys, xs = np.nonzero(glyph > 40)
        tight = 255 - glyph[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        for height in (16, 200):
            width = max(1, round(tight.shape[1] * height / tight.shape[0]))
            img = cv2.resize(tight, (width, height), interpolation=cv2.INTER_AREA
                             if height < tight.shape[0] else cv2.INTER_CUBIC)
            res = rec.recognize(encode(img, ".png"))
            right += res.text == str(label) and res.digits[0].box[3] > 0.6 * height
    assert right >= 18, f"{right}/20 tight crops read right"


def test_wide_digits_cut_tight(rec: Recognizer, digits: dict) -> None:
    """A digit half again as wide as tall, cut tight to its ink and binarized (a postal
    archive's crop, a flat 0), is sliced where touching digits would part; the whole digit is
    still offered to the model though it spans more slices than a group may (before: 149/158)."""
    right = total = 0
    for label in (0, 2, 3, 4, 5, 6, 7, 8, 9):  # a 1 that wide is no 1
        for glyph in digits[label]:
            ys, xs = np.nonzero(glyph > 40)
            tight = glyph[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            img = cv2.resize(tight, (96, 64), interpolation=cv2.INTER_CUBIC)
            binary = np.where(img > 100, 0, 255).astype(np.uint8)
            right += rec.recognize(encode(binary, ".png")).text == str(label)
            total += 1
    assert right >= 0.97 * total, f"{right}/{total} wide tight crops read right"


@pytest.mark.parametrize("white_on_black", [False, True], ids=["dark-on-light", "light-on-dark"])
def test_bold_digits_cut_tight(rec: Recognizer, digits: dict, white_on_black: bool) -> None:
    """A marker's digit cut tight to its ink (a postal archive's crop, MNIST's own images)
    covers most of its image: the frame, not the median, is the paper, and strokes wider than
    the light-flattening kernel stay ink. (Before: 10/20 dark on light, 3/20 light on dark.)"""
    right = 0
    for label in range(10):
        for glyph in digits[label][:2]:
            bold = cv2.dilate(glyph, np.ones((3, 3), np.uint8))
            ys, xs = np.nonzero(bold > 40)
            tight = bold[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            width = max(1, round(tight.shape[1] * 120 / tight.shape[0]))
            img = cv2.resize(tight, (width, 120), interpolation=cv2.INTER_CUBIC)
            res = rec.recognize(encode(img if white_on_black else 255 - img, ".png"))
            right += res.text == str(label)
    assert right >= 18, f"{right}/20 bold tight crops read right"


def test_digit_written_in_a_printed_box(rec: Recognizer, digits: dict) -> None:
    """A form's cell around the digit: its long sides look like paper rules and go; what is
    left of its top and bottom is wider than the digit, in slices the model reads as marks.
    The release reads 9 of these 10 (an open 4 is cut into slices with the box); the old
    geometric rules read 9 but lost tight crops. What is left of the box is no word's letter:
    a line reads as a number beside it (recognize.LETTER_SHARE; without, 4 of 10)."""
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for label in range(10):
        img = paper(640, 480, rng)
        cv2.rectangle(img, (220, 120), (420, 360), (120.0, 110.0, 100.0), 2)
        put_digit(img, digits[label][0], 280, 160, 160)
        right += rec.recognize(encode(img)).text == str(label)
    assert right >= 8, f"{right}/10 boxed digits read right"


@pytest.mark.parametrize("lines", ["ruled", "squared"])
def test_lined_and_squared_paper(rec: Recognizer, digits: dict, lines: str) -> None:
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for label in range(10):
        img = paper(1280, 960, rng, lines, spacing=int(rng.integers(36, 90)))
        height = int(rng.integers(90, 260))
        # written on the lines: the rules cross the digit
        put_digit(img, digits[label][0], int(rng.integers(50, 900)), int(rng.integers(50, 600)),
                  height)
        right += rec.recognize(encode(img)).text == str(label)
    assert right >= 9, f"{right}/10 on {lines} paper"


def test_rotated_photos(rec: Recognizer, digits: dict) -> None:
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for label, degrees in zip(range(10), (10, -10, 8, -8, 10, -6, 10, -10, 5, -9), strict=True):
        img = paper(1280, 960, rng, "squared" if label % 2 else None)
        put_digit(img, digits[label][0], 500, 300, 260)
        right += rec.recognize(encode(rotate(img, degrees))).text == str(label)
    assert right >= 9, f"{right}/10 rotated photos"


def test_pen_colour_and_thickness(rec: Recognizer, digits: dict) -> None:
    """Blue ballpoint-thin strokes and thick marker strokes both read."""
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for label in range(10):
        img = paper(1280, 960, rng)
        x0, y0, x1, y1 = put_digit(img, digits[label][0], 500, 300, 300, ink=(150.0, 60.0, 20.0))
        region = img[y0:y1, x0:x1]
        ink = (region.mean(axis=2) < 180).astype(np.uint8)
        kernel = np.ones((9, 9), np.uint8)
        changed = cv2.erode(ink, kernel) if label % 2 else cv2.dilate(ink, kernel)
        region[:] = np.where(changed[..., None] > 0, (150.0, 60.0, 20.0), 228.0)
        right += rec.recognize(encode(img)).text == str(label)
    assert right >= 9, f"{right}/10 thin or thick strokes"


def test_a_stroke_two_pixels_wide_in_its_crop_keeps_its_mass() -> None:
    """A straight 1 about a tenth as wide as tall comes out 2 px wide in MNIST's 20-px box;
    OpenCV's moments took such an array for a contour's points, and the crop was lost."""
    for width in (7, 8, 9, 10):  # 2 px wide in the box (1 px at 6, 3 px at 11)
        ink = np.zeros((100, width + 4), np.uint8)
        ink[:, 2 : 2 + width] = 255
        crop = mnist_crop(ink, ink > 0, 128)
        assert crop is not None, f"a stroke {width} px wide lost"
        ys, xs = np.nonzero(crop)
        weights = crop[ys, xs].astype(float)
        assert abs(np.average(xs, weights=weights) - 14) < 0.6
        assert abs(np.average(ys, weights=weights) - 14) < 0.6
        assert ys.max() - ys.min() >= 19  # the stroke's whole height, centred


def test_narrow_1s_are_read(rec: Recognizer, digits: dict) -> None:
    """MNIST's 1s squeezed to 0.4-0.8 of their width, on paper and on a dark screen: the
    narrowest came out 2 px wide in the crop and were lost (111 of these 126 read before the fix;
    see the test above)."""
    rng = np.random.default_rng(RNG_SEED)
    right = n = 0
    for glyph in digits[1]:
        for squeeze in (0.4, 0.6, 0.8):
            narrow = cv2.resize(glyph, (round(28 * squeeze), 28), interpolation=cv2.INTER_AREA)
            for screen in (False, True):
                img = np.zeros((960, 1280, 3), np.float32) + 12 if screen else paper(1280, 960, rng)
                ink = (255.0, 230.0, 102.0) if screen else (150.0, 60.0, 20.0)
                put_digit(img, narrow, 500, 200, 400, ink=ink)
                right += rec.recognize(encode(img, ".png" if screen else ".jpg")).text == "1"
                n += 1
    assert right >= 0.95 * n, f"{right}/{n} narrow 1s read"


def test_light_blue_ink_on_cream_paper(rec: Recognizer, digits: dict) -> None:
    """Light-blue gel ink on cream paper in warm light: the ink is barely darker than the
    paper's weak blue channel, but far darker than its red one (read as nothing before the
    paper's colour was made grey)."""
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for label in range(10):
        img = paper(1280, 960, rng) * np.float32([0.75, 0.92, 1.0])  # BGR
        put_digit(img, digits[label][0], 500, 300, 200, ink=(225.0, 185.0, 150.0))
        right += rec.recognize(encode(img)).text == str(label)
    assert right >= 9, f"{right}/10 light-blue digits on cream paper"


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026", "907", "41", "58313"])
def test_numbers_read_left_to_right(rec: Recognizer, digits: dict, text: str) -> None:
    data, boxes = number_photo(digits, text, np.random.default_rng(len(text)), height=130, x=120)
    res = rec.recognize(data)
    assert res.status == "ok"
    assert res.text == text
    got = [d.box for d in res.digits]
    assert [b[0] for b in got] == sorted(b[0] for b in got)
    assert all(overlaps(g, b) for g, b in zip(got, boxes, strict=True))


def test_touching_zeros_of_a_round_amount(rec: Recognizer, digits: dict) -> None:
    """"500" with its two 0s touching, as amounts end: two rings meet where the column
    profile is thickest, so the piece is also offered cut where equal-width digits would part
    (before: 17/24)."""
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for first in digits[0][3:11]:
        for second in digits[0][:3]:
            img = paper(1280, 960, rng)
            box = put_digit(img, digits[5][0], 200, 380, 150)
            box = put_digit(img, first, box[2] + 40, 380, 150)
            put_digit(img, second, box[2] - 6, 380, 150)  # 6 px into the first 0
            right += rec.recognize(encode(img)).text == "500"
    assert right >= 20, f"{right}/24 read 500"


def overlapping_zeros(digits: dict, rng: np.random.Generator, first: np.ndarray,
                      zeros: list[np.ndarray]) -> bytes:
    """A round amount whose 0s are each drawn a quarter of their width into the one before."""
    img = paper(1280, 960, rng)
    box = put_digit(img, first, 200, 380, 150)
    x = box[2] + 30
    for zero in zeros:
        box = put_digit(img, zero, x, 380, 150)
        x = box[2] - (box[2] - box[0]) // 4
    return encode(img)


def test_zeros_drawn_into_each_other_are_read_by_the_line_reader(rec: Recognizer,
                                                                 digits: dict) -> None:
    """"3000" with its 0s overlapping: no straight cut parts two rings drawn into each other,
    so the segmenter's reading drops 0s; the line reader reads the line whole."""
    rng = np.random.default_rng(RNG_SEED)
    photos = []
    for k in range(12):
        zeros = [digits[0][(k + j) % len(digits[0])] for j in range(2 + k % 2)]
        first = digits[(3, 5, 2, 7)[k % 4]][k // 4]
        photos.append((overlapping_zeros(digits, rng, first, zeros),
                       f"{(3, 5, 2, 7)[k % 4]}{'0' * len(zeros)}"))
    segmenter_only = Recognizer()
    segmenter_only._read_lines = None
    whole = sum(rec.recognize(data).text == text for data, text in photos)
    cut = sum(segmenter_only.recognize(data).text == text for data, text in photos)
    assert whole >= 10 and cut <= whole - 3, (whole, cut)


def test_a_digit_the_reader_finds_inside_a_group_gets_a_crop_of_its_own(digits: dict) -> None:
    """Where the line reader reads two digits in the columns of one of the segmenter's groups
    ("31" read as "311": two 1s the segmenter took for one), each gets a crop cut from its own
    columns of the line, so that a user's correction never labels one crop with two digits.
    The reader here is a hand-made one, sure of "311", to make the case happen."""
    img = paper(1280, 960, np.random.default_rng(RNG_SEED))
    x = put_digit(img, digits[3][0], 200, 380, 150)[2] + 40
    put_digit(img, digits[1][0], x, 380, 150)
    data = encode(img)
    reader = Recognizer()

    def read(x: np.ndarray) -> np.ndarray:  # the reader's columns, as sure as can be: "311"
        ink = np.flatnonzero(x[0, :, :, 0].max(axis=0) > 0.5)
        gap = int(np.argmax(np.diff(ink)))  # between the 3 and the 1
        one = ink[gap + 1]
        logits = np.zeros((x.shape[2] // READER_STRIDE, 11), np.float32)
        logits[:, BLANK] = 30
        start = one // READER_STRIDE  # two 1s, a "none" column between them
        for col, d in ((ink[0] + ink[gap]) // 2 // READER_STRIDE, 3), (start, 1), (start + 2, 1):
            logits[col, d + 1] = 60
        return logits

    reader._read_lines = read
    res, alone = reader.recognize(data), Recognizer().recognize(data)
    assert (alone.text, res.text) == ("31", "311")
    assert res.digits[1].box == res.digits[2].box == alone.digits[1].box  # one group, two 1s
    crops = {d.crop.tobytes() for d in res.digits}
    assert len(crops) == 3 and all(d.crop.shape == (28, 28) and d.crop.max() > 200
                                   for d in res.digits)


def test_number_on_ruled_paper_slanted(rec: Recognizer, digits: dict) -> None:
    img = paper(1280, 960, np.random.default_rng(RNG_SEED), "ruled", spacing=60)
    x = 200
    for ch in "1984":
        x = put_digit(img, digits[int(ch)][0], x, 360, 140)[2] + 30
    assert rec.recognize(encode(rotate(img, 7))).text == "1984"


# --- nothing to read --------------------------------------------------------------------------


def test_blank_pages_have_no_digit(rec: Recognizer) -> None:
    rng = np.random.default_rng(RNG_SEED)
    pages = [paper(1280, 960, rng, lines) for lines in (None, "ruled", "squared")]
    shadowed = paper(960, 1280, rng, "ruled")
    shadowed[:, 500:] *= 0.7  # a hard shadow edge across the sheet
    pages.append(cv2.GaussianBlur(shadowed, (0, 0), 3))
    pages.append(np.full((600, 800, 3), 20, np.float32))  # an empty dark screen
    beside = paper(1280, 960, rng, "ruled")
    beside[:, 1130:] = (60.0, 85.0, 120.0)  # the table beyond the sheet's edge, along one side
    pages.append(beside)
    for page in pages:
        res = rec.recognize(encode(page))
        assert (res.status, res.text, res.digits) == ("no_digit", "", []), res


def test_smudges_and_lines_are_not_digits(rec: Recognizer) -> None:
    """Blobs that are no digit's shape are rejected: an ink blot, a long stroke across the
    page, a dotted line, a frame drawn along the photo's edge."""
    rng = np.random.default_rng(RNG_SEED)
    blot = paper(1280, 960, rng)
    cv2.circle(blot, (600, 450), 120, (60.0, 60.0, 60.0), -1)
    stroke = paper(1280, 960, rng)
    cv2.line(stroke, (100, 500), (1200, 470), (40.0, 40.0, 40.0), 12)
    dots = paper(1280, 960, rng)
    for x in range(200, 1100, 40):
        cv2.circle(dots, (x, 480), 5, (40.0, 40.0, 40.0), -1)
    frame = paper(1280, 960, rng)
    cv2.rectangle(frame, (3, 3), (1276, 956), (40.0, 40.0, 40.0), 6)
    for name, img in (("blot", blot), ("stroke", stroke), ("dots", dots), ("frame", frame)):
        res = rec.recognize(encode(img))
        assert (res.status, res.digits) == ("no_digit", []), (name, res.text)


# --- broken and hostile input -------------------------------------------------------------


def tiny_png(size: int = 3) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (size, size), 255).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty", b"", "isn't an image"),
    ("pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "isn't an image"),
    ("text", b"2026 in words", "isn't an image"),
    ("random", np.random.default_rng(1).bytes(5000), "isn't an image"),
    ("huge png", png_header(20000, 20000), "too large (400 megapixels)"),
    ("50 MP png", png_header(10000, 5000), "too large (10000×5000)"),
    ("tall strip", png_header(30, 30000), "too large"),
    ("3x3", tiny_png(3), "too small"),
])
def test_bad_input_is_an_error_with_a_message(rec: Recognizer, name: str, data: bytes,
                                              message: str) -> None:
    start = time.perf_counter()
    res = rec.recognize(data)
    assert res.status == "error" and message in res.error, (name, res)
    assert (res.text, res.digits) == ("", [])
    assert time.perf_counter() - start < 1.0  # refused from the header, nothing decoded


def test_truncated_jpeg(rec: Recognizer, digits: dict) -> None:
    data, _ = number_photo(digits, "5", np.random.default_rng(RNG_SEED))
    for cut in (len(data) // 2, 300, 2):
        res = rec.recognize(data[:cut])
        assert res.status in ("error", "no_digit"), cut
        if res.status == "error":
            assert res.error and "image" in res.error


def test_exif_rotated_jpeg(rec: Recognizer, digits: dict) -> None:
    """A phone stores the sensor's landscape pixels and says "rotate 90°" in EXIF."""
    img = paper(960, 1280, np.random.default_rng(RNG_SEED))  # upright portrait, as seen
    box = put_digit(img, digits[4][0], 300, 800, 250)
    sensor = cv2.rotate(np.clip(img, 0, 255).astype(np.uint8), cv2.ROTATE_90_COUNTERCLOCKWISE)
    pil = Image.fromarray(cv2.cvtColor(sensor, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    res = rec.recognize(buf.getvalue())
    assert res.text == "4"
    assert overlaps(res.digits[0].box, box)  # in the upright image's coordinates
    assert max(res.digits[0].box[2], res.digits[0].box[0]) <= 960


def test_jpeg_decoded_as_pillow_would() -> None:
    """libjpeg-turbo's reduced-scale decoding gives Pillow's own pixels, for colour and grey
    JPEGs; a CMYK one is left to Pillow; a damaged one is still refused."""
    page = np.clip(paper(1280, 960, np.random.default_rng(RNG_SEED)), 0, 255).astype(np.uint8)
    for mode in ("RGB", "L", "CMYK"):
        buf = io.BytesIO()
        Image.fromarray(page).convert(mode).save(buf, "JPEG", quality=90)
        pil = Image.open(io.BytesIO(buf.getvalue()))
        pil.draft("RGB", (640, 480))
        got = decode(buf.getvalue()).image
        assert got.shape == (480, 640, 3) and np.array_equal(got, pil.convert("RGB")), mode
    with pytest.raises(ImageError, match="damaged"):
        decode(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_gif_first_frame_and_rgba_png(rec: Recognizer, digits: dict) -> None:
    img = np.clip(paper(640, 480, np.random.default_rng(RNG_SEED)), 0, 255).astype(np.uint8)
    put_digit(img, digits[6][0], 250, 120, 220)
    first = Image.fromarray(img[..., 0])
    second = Image.new("L", (640, 480), 255)
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[second], duration=100)
    assert rec.recognize(buf.getvalue()).text == "6"
    # a drawing with a transparent background: dark ink on nothing
    rgba = np.zeros((400, 400, 4), np.uint8)
    alpha = np.zeros((400, 400, 3), np.float32)
    put_digit(alpha, digits[3][0], 120, 60, 280, ink=(255.0, 255.0, 255.0))
    rgba[..., 3] = alpha[..., 0].clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    assert rec.recognize(buf.getvalue()).text == "3"


# --- serving properties -----------------------------------------------------------------------


def test_thread_safe(rec: Recognizer, digits: dict) -> None:
    photos = [number_photo(digits, text, np.random.default_rng(i), height=120, x=100)[0]
              for i, text in enumerate(["12", "345", "6789", "50"])]
    expected = [rec.recognize(p).text for p in photos]
    results: dict[int, list[str]] = {}

    def work(k: int) -> None:
        results[k] = [rec.recognize(p).text for p in photos * 3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == expected * 3 for k in range(4))


def test_bot_side_never_imports_tensorflow(tmp_path: Path) -> None:
    img = paper(640, 480, np.random.default_rng(RNG_SEED))
    cv2.rectangle(img, (100, 100), (200, 300), (30.0, 30.0, 30.0), 12)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(encode(img))
    code = (
        "import sys\n"
        "from model.recognize import Recognizer\n"
        f"res = Recognizer().recognize(open({str(photo)!r}, 'rb').read())\n"
        "assert res.status in ('ok', 'no_digit'), res\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def test_keras_fallback_agrees_with_litert(rec: Recognizer, digits: dict) -> None:
    keras_rec = Recognizer(ROOT / "model" / "release" / "model.keras")
    assert keras_rec.model_path.suffix == ".keras"
    batch = np.stack([digits[k][0] for k in range(10)])
    assert np.allclose(keras_rec.classify(batch), rec.classify(batch), atol=1e-4)


def test_model_path_forms(tmp_path: Path) -> None:
    release = ROOT / "model" / "release"
    assert Recognizer(release).model_path == release / "model.tflite"
    assert Recognizer(release / "model.tflite").model_path == release / "model.tflite"
    with pytest.raises(FileNotFoundError):
        Recognizer(tmp_path)
    (tmp_path / "model.keras").write_bytes((release / "model.keras").read_bytes())
    assert Recognizer(tmp_path).model_path == tmp_path / "model.keras"  # a dir without LiteRT
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError):
        Recognizer(tmp_path / "model.onnx")


def test_render_annotated(rec: Recognizer, digits: dict) -> None:
    data, boxes = number_photo(digits, "42", np.random.default_rng(RNG_SEED), size=(2000, 1500),
                               height=300, x=500, y=600)
    res = rec.recognize(data)
    assert res.text == "42"
    out = render_annotated(data, res)
    drawn = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    assert drawn is not None and max(drawn.shape[:2]) == 1280
    plain = cv2.imdecode(np.frombuffer(render_annotated(data, Result("no_digit")), np.uint8),
                         cv2.IMREAD_COLOR)
    # the boxes are drawn in colour where the plain photo is grey paper
    colourful = np.abs(drawn.astype(int) - plain.astype(int)).sum(axis=2) > 120
    x0, y0, x1, y1 = (round(v * 1280 / 2000) for v in boxes[0])
    assert colourful[y0 - 8:y1 + 8, x0 - 8:x1 + 8].any()
    # never raises, even for bytes that are no image
    broken = render_annotated(b"not an image", rec.recognize(b"not an image"))
    assert cv2.imdecode(np.frombuffer(broken, np.uint8), cv2.IMREAD_COLOR) is not None


# --- the segmentation's harder cases -------------------------------------------------------


def test_faint_smudge_does_not_hide_the_digit(rec: Recognizer, digits: dict) -> None:
    """A large faint smudge (a shadow's tip that flattening leaves) has more pixels than a
    small digit but far less contrast; the digit's row wins and is read."""
    rng = np.random.default_rng(RNG_SEED)
    right = 0
    for label in range(5):
        img = paper(1280, 960, rng)
        smudge = np.zeros((960, 1280), np.float32)
        cv2.circle(smudge, (400, 400), 90, 1.0, -1)
        smudge = cv2.GaussianBlur(smudge, (0, 0), 25)[..., None]
        img = img * (1 - 0.24 * smudge)
        put_digit(img, digits[label][0], 1000, 760, 70)
        right += rec.recognize(encode(img)).text == str(label)
    assert right >= 4, f"{right}/5 digits beside a smudge"


def test_broken_rule_pieces_are_removed() -> None:
    """A rule interrupted by a bold digit is removed on both sides, even where the piece on
    one side is short: the pieces on one line add up to a rule."""
    from model.preprocess import suppress_rules

    ink = np.zeros((480, 640), np.uint8)
    ink[240:242, :] = 90  # a rule across the page...
    ink[200:300, 420:470] = 0
    cv2.circle(ink, (445, 250), 40, 220, 12)  # ...interrupted by a bold digit
    ink[240:242, 560:640] = 90  # the piece right of it is only 80 px long
    ink[236:246, 430:460] = 0
    out = suppress_rules(ink)
    assert out[240:242, 20:380].max() < 48 and out[240:242, 570:630].max() < 48
    assert out[250, 405:409].max() > 150, "the digit's stroke was removed"


# --- real handwriting, and the generator's hard cases ------------------------------------------

HELD_OUT = ROOT / "tests" / "data" / "heldout_writers"
# The release reads 295/300 of these frozen cells; a change that costs real handwriting more
# than a few of them fails here (bench/recognizer_bench.py measures all 2,373 cells).
HELD_OUT_FLOOR = 0.97


def test_real_handwriting_of_held_out_writers(rec: Recognizer) -> None:
    """300 real scanned digits by four writers that training and tuning never saw (mostly Swiss:
    a 1 with a long upstroke, a crossed 7), each cell as scanned, touching its edge."""
    rows = (HELD_OUT / "labels.csv").read_text().splitlines()[1:]
    assert len(rows) == 300
    right = 0
    misread = []
    for row in rows:
        name, label, _ = row.split(",")
        res = rec.recognize((HELD_OUT / name).read_bytes())
        right += res.text == label
        if res.text != label:
            misread.append(f"{name}: {res.text or res.status}")
    assert right / len(rows) >= HELD_OUT_FLOOR, f"{right}/300 read right; misread: {misread}"
    assert not set(load_kensanata("train").writers) & {r.split(",")[2] for r in rows}


def test_cells_cut_at_their_printed_border(rec: Recognizer) -> None:
    """A form's cell scanned with its printed border as the outermost pixels: the border is
    no background (the frame's outer tenth is mostly paper), so the digit is read as ink.
    (Taking only the outermost pixels as the frame read none of them.)"""
    rows = (HELD_OUT / "labels.csv").read_text().splitlines()[1:41]
    right = 0
    for row in rows:
        name, label, _ = row.split(",")
        cell = cv2.imread(str(HELD_OUT / name), cv2.IMREAD_COLOR)
        cv2.rectangle(cell, (0, 0), (cell.shape[1] - 1, cell.shape[0] - 1), (30, 30, 30), 2)
        right += rec.recognize(encode(cell, ".png")).text == label
    assert right >= 36, f"{right}/40 bordered cells read right"


def test_cells_cut_with_a_forms_border(rec: Recognizer) -> None:
    """A form's cell as cut from its scan: some of its printed border (a side, two, a corner,
    the whole box, a piece of a side) a few pixels in from the cut, the digit often touching
    it. The border is no digit and takes none with it (before it was cut off: 46/60)."""
    rows = (HELD_OUT / "labels.csv").read_text().splitlines()[1::5]
    rng = np.random.default_rng(RNG_SEED)
    misread = []
    for row in rows:
        name, label, _ = row.split(",")
        cell, which = form_border(rng, cv2.imread(str(HELD_OUT / name), cv2.IMREAD_COLOR))
        text = rec.recognize(encode(cell, ".png")).text
        if text != label:
            misread.append(f"{name} with {which}: {text or 'no digit'}")
    assert len(rows) == 60 and len(misread) <= 6, misread


@pytest.fixture(scope="module")
def writers() -> Digits:
    """Digits of the held-out writers (the frozen cells), as the generator's hand."""
    rows = [r.split(",") for r in (HELD_OUT / "labels.csv").read_text().splitlines()[1:]]
    cells = [cv2.imread(str(HELD_OUT / name), cv2.IMREAD_COLOR) for name, _, _ in rows]
    return Digits.scans(cells, np.array([int(label) for _, label, _ in rows]), "held-out")


# What the release reads of 20 photos each (seed 11, held-out writers), less a margin; the
# bench measures the same rows on 200-500 photos (README): these floors catch regressions.
# (the release with the paper made grey: 16, 10, 19, 20, 18, 18 of 20; before, with each line
# read as a number or as writing: 16, 9, 19, 20, 17, 18; before that 15, 8, 18, 20, 17, 18)
# A circle or a box drawn round the writing: 19 and 15 of 20 (before frames were left out of
# the lines: 0 and 1; before frames touching a number were erased: 19 and 11).
HARD_CASES = [
    ("lines", {}, 14), ("amount", {}, 8), ("digit", {"pen": "hairline"}, 17),
    ("digit", {"ink": "red"}, 17), ("digit", {"ink": "lightblue"}, 16), ("crop", {}, 16),
    ("digit", {"frame": True, "screen": False}, 16),
    ("number", {"frame": True, "screen": False}, 13),
]


@pytest.mark.parametrize(("kind", "style", "floor"), HARD_CASES)
def test_generated_hard_cases(rec: Recognizer, writers: Digits, kind: str, style: dict,
                              floor: int) -> None:
    """Several lines, cheque amounts with separators and touching digits, a hairline pen,
    coloured ink, tight crops, circled or boxed writing: 20 photos each by held-out writers, at
    least `floor` right."""
    photos = photo_set(20, kind, seed=11, digits=writers, **style)
    got = [rec.recognize(data).text for data, _ in photos]
    wrong = [(t.text, g) for (_, t), g in zip(photos, got, strict=True) if g != t.text]
    assert len(photos) - len(wrong) >= floor, wrong


def test_several_lines_top_to_bottom(rec: Recognizer, digits: dict) -> None:
    """Two numbers one under the other (a list): every line, top to bottom, joined by a
    newline; each digit keeps its box and knows its line."""
    rng = np.random.default_rng(RNG_SEED)
    img = paper(1280, 960, rng)
    boxes = []
    for y, text in ((200, "305"), (520, "71")):
        x = 300
        for ch in text:
            boxes.append(put_digit(img, digits[int(ch)][0], x, y, 160))
            x = boxes[-1][2] + 40
    res = rec.recognize(encode(img))
    assert res.text == "305\n71" and res.lines == ["305", "71"]
    assert [d.line for d in res.digits] == [0, 0, 0, 1, 1]
    assert all(overlaps(d.box, b) for d, b in zip(res.digits, boxes, strict=True))


def test_close_lines_of_a_list_stay_apart(rec: Recognizer, digits: dict) -> None:
    """Two lines written close (a fifth of a digit's height between them, each digit right
    under one above): they are two numbers, not one line of stacked pieces."""
    rng = np.random.default_rng(RNG_SEED)
    img = paper(1280, 960, rng)
    for y, text in ((250, "358"), (250 + 192, "724")):
        x = 360
        for ch in text:
            x = put_digit(img, digits[int(ch)][0], x, y, 160)[2] + 50
    assert rec.recognize(encode(img)).lines == ["358", "724"]


def test_table_edge_beside_slanted_ruled_paper(rec: Recognizer, digits: dict) -> None:
    """A ruled sheet photographed at a slant with the dark table along its right side: the
    levelled photo's sides are slanted, and the table there is still no digit nor a link that
    joins every line into one."""
    img = paper(1280, 960, np.random.default_rng(RNG_SEED), "ruled", spacing=70)
    for y, text in ((250, "62"), (520, "49")):
        x = 600  # near enough to the table that the old test linked both lines through it
        for ch in text:
            x = put_digit(img, digits[int(ch)][0], x, y, 150)[2] + 40
    img = rotate(img, 6)
    img[:, 1130:] = (60.0, 70.0, 85.0)  # the table beyond the sheet's edge
    assert rec.recognize(encode(img)).lines == ["62", "49"]


@pytest.mark.parametrize("index", [89, 370])
def test_table_beyond_a_slanted_sheet_is_no_digit(rec: Recognizer, writers: Digits,
                                                  index: int) -> None:
    """A squared or ruled sheet turned 9° on a table that shows along the photo's right side:
    levelled by its rules, the photo's side is slanted, and so is the table's strip. The strip
    is the table because of how far in it reaches across that side, not across its upright box
    (before: the strip, a tall "1", made the writer's 1 too small a line, read as nothing)."""
    rng = np.random.default_rng([11, KINDS.index("digit"), index])  # photo_set(.., seed=11)[i]
    data, truth = make_photo(rng, writers, "digit")
    assert truth.meta["table_edge"] and abs(truth.meta["angle"]) > 9
    assert rec.recognize(data).text == truth.text == "1"


@pytest.mark.parametrize(("kind", "index"), [("digit", 81), ("number", 329), ("lines", 350),
                                             ("lines", 353)])
def test_an_edge_read_as_a_tall_1_does_not_hide_the_writing(rec: Recognizer, writers: Digits,
                                                            kind: str, index: int) -> None:
    """A hand's shadow or the table's edge, three to six times the writing's height, read as
    a 1 (at 56–95%): the line the model is surest of sets the writing's size, and the edge is
    too tall to be a line of it (before: the tallest line set the size, and each photo read
    "1")."""
    rng = np.random.default_rng([11, KINDS.index(kind), index])  # photo_set(.., seed=11)[i]
    data, truth = make_photo(rng, writers, kind)
    assert rec.recognize(data).text == truth.text


def test_separators_are_not_digits(rec: Recognizer, digits: dict) -> None:
    """12.500, 07-45 and 1 000: the dot, the dash and the space separate groups; the text is
    the digits."""
    rng = np.random.default_rng(RNG_SEED)
    for text in ("12.500", "07-45", "1 000"):
        img = paper(1280, 960, rng)
        x = 120
        for ch in text:
            if ch == ".":
                cv2.circle(img, (x + 10, 520), 7, (40.0, 30.0, 30.0), -1)
                x += 40
            elif ch == "-":
                cv2.line(img, (x + 6, 460), (x + 46, 460), (40.0, 30.0, 30.0), 10)
                x += 60
            elif ch == " ":
                x += 80
            else:
                x = put_digit(img, digits[int(ch)][0], x, 400, 130)[2] + 25
        assert rec.recognize(encode(img)).text == text.replace(".", "").replace(
            "-", "").replace(" ", ""), text


def p(label: int, sure: float) -> np.ndarray:
    """Made-up model outputs: `label` at `sure`, the rest shared evenly."""
    out = np.full(CLASSES, (1 - sure) / (CLASSES - 1))
    out[label] = sure
    return out


def test_a_line_is_read_as_its_likeliest_split() -> None:
    """The decision alone, on made-up model outputs: a wide blob the model reads as PART is
    read as the two digits its halves are; a group the model reads as one digit beats its
    pieces; a MARK (a dot) between digits is passed over; a piece without a crop of its own
    costs nothing to pass over."""
    from model.preprocess import Group, Line, Piece

    def line(spans: list[tuple[int, int]]) -> Line:
        pieces = [Piece(k, (10 * k, 0, 10 * k + 9, 20)) for k in range(3)]
        crop = np.zeros((28, 28), np.uint8)
        groups = [Group(a, b, (10 * a, 0, 10 * b, 20), crop) for a, b in spans]
        return Line(pieces, groups, 20.0)

    spans = [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3), (0, 3)]
    # pieces 4 | 2 | . , the pair (4, 2) is PART, the dot a MARK
    probs = [p(4, 0.9), p(2, 0.9), p(MARK, 0.9), p(PART, 0.9), p(PART, 0.8), p(PART, 0.9)]
    assert [d.digit for d in read_line(line(spans), probs)] == [4, 2]
    # the left two pieces are one 5 (its bar and its body): the pair wins
    probs = [p(PART, 0.7), p(PART, 0.6), p(1, 0.95), p(5, 0.97), p(PART, 0.9), p(PART, 0.9)]
    assert [d.digit for d in read_line(line(spans), probs)] == [5, 1]
    # nothing but marks: no digit
    probs = [p(MARK, 0.9)] * 3 + [p(PART, 0.9)] * 3
    assert read_line(line(spans), probs) == []
    # the right piece is too faint for a crop of its own: it is passed over, not swallowed
    # with the 4 and the 2 into a mark (before: "42" read as nothing)
    spans = [(0, 1), (1, 2), (0, 2), (1, 3), (0, 3)]
    probs = [p(4, 0.9), p(2, 0.9), p(PART, 0.9), p(MARK, 0.5), p(MARK, 0.7)]
    assert [d.digit for d in read_line(line(spans), probs)] == [4, 2]


def test_a_line_is_read_as_a_number_or_as_writing() -> None:
    """The decision alone, on made-up model outputs: in a number, two 1s the model also reads
    together as a letter pair ("ll", a MARK) stay two 1s (before: "6117" read "67"); in a
    word, a letter the model half takes for a 1 stays a letter (before: a word read "1")."""
    from model.preprocess import Group, Line, Piece

    def read(units: list[tuple[int, int, np.ndarray]]) -> list[int]:
        n = max(b for _, b, _ in units)
        pieces = [Piece(k, (10 * k, 0, 10 * k + 9, 20)) for k in range(n)]
        crop = np.zeros((28, 28), np.uint8)
        groups = [Group(a, b, (10 * a, 0, 10 * b, 20), crop) for a, b, _ in units]
        return [d.digit for d in read_line(Line(pieces, groups, 20.0), [q for *_, q in units])]

    number = [(0, 1, p(6, 0.99)), (1, 2, p(1, 0.9)), (2, 3, p(1, 0.9)), (3, 4, p(7, 0.99)),
              (1, 3, p(MARK, 0.95))]
    assert read(number) == [6, 1, 1, 7]
    word = [(0, 1, p(MARK, 0.9)), (1, 2, p(1, 0.6)), (2, 3, p(MARK, 0.9))]
    word[1][2][MARK] = 0.35
    assert read(word) == []
    # a separator is a mark in a number: "12.5"
    amount = [(0, 1, p(1, 0.95)), (1, 2, p(2, 0.95)), (2, 3, p(MARK, 0.95)), (3, 4, p(5, 0.95))]
    assert read(amount) == [1, 2, 5]


def test_ink_shorter_than_a_readable_digit_is_no_digit() -> None:
    """The decision alone, on made-up model outputs: a speck a few pixels tall that the model,
    seeing it blown up to 20 px, reads as a sure 1 (a grain of a shadow's texture on a blank
    page) is passed over; a digit of MIN_DIGIT_HEIGHT px beside it is read."""
    from model.preprocess import MIN_DIGIT_HEIGHT, Group, Line, Piece

    crop = np.zeros((28, 28), np.uint8)
    speck = Piece(0, (0, 10, 4, 10 + MIN_DIGIT_HEIGHT - 1))
    seven = Piece(1, (20, 0, 26, MIN_DIGIT_HEIGHT))
    line = Line([speck, seven], [Group(0, 1, speck.box, crop), Group(1, 2, seven.box, crop),
                                 Group(0, 2, (0, 0, 26, 20), crop)], MIN_DIGIT_HEIGHT)
    assert [d.digit for d in read_line(line, [p(1, 0.96), p(7, 0.9), p(PART, 0.9)])] == [7]
    alone = Line([speck], [Group(0, 1, speck.box, crop)], MIN_DIGIT_HEIGHT)
    assert read_line(alone, [p(1, 0.99)]) == []


@pytest.mark.parametrize("index", [3, 106])
def test_a_grain_of_a_blank_page_is_no_digit(rec: Recognizer, index: int) -> None:
    """Blank pages (squared, plain with a shadow) whose only reading was a grain of texture 3–6
    px tall at working size, read as a sure 1 (0.87, 0.96): now no digit."""
    rng = np.random.default_rng([13500, KINDS.index("blank"), index])  # photo_set(.., 13500)
    data, truth = make_photo(rng, None, "blank")
    assert truth.text == "" and rec.recognize(data).status == "no_digit"


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    """The test's MNIST sample (200 test digits): a hand for generated photos."""
    with np.load(Path(__file__).parent / "data" / "mnist_sample.npz") as data:
        return {k: data[k] for k in data.files}


def sample_photo(sample: dict[str, np.ndarray], seed: int, kind: str, index: int,
                 **options: Any) -> tuple[bytes, Truth]:
    """A generated photo of `kind` written with the test's MNIST sample, as the bench's rows
    draw them: the same (seed, kind, index) always gives the same photo."""
    hand = Digits.mnist(sample["x_test"], sample["y_test"], "sample")
    return make_photo(np.random.default_rng([seed, KINDS.index(kind), index]), hand, kind,
                      **options)


@pytest.mark.parametrize(("index", "text"), [(31, "57998"), (300, "21")])
def test_a_stroke_cut_by_the_frame_beside_the_writing_is_no_line(
    rec: Recognizer, sample: dict[str, np.ndarray], index: int, text: str
) -> None:
    """Numbers on ruled and squared paper whose sheet's or table's edge, cut by the photo's
    frame, was read as one more line, a "1" ("57998\n1", "1\n21"): now the number alone."""
    data, truth = sample_photo(sample, 13600, "number", index)
    assert truth.text == text and rec.recognize(data).text == text


def test_a_tight_crop_of_two_lines_keeps_both(
    rec: Recognizer, sample: dict[str, np.ndarray]
) -> None:
    """A crop cut tight to two lines of writing has both at its frame: neither is dropped as
    cut by it (a lone digit cut by the frame goes only beside writing wholly inside)."""
    x, y = sample["x_test"], sample["y_test"]

    def tight(k: int, right: int = 0) -> np.ndarray:
        rows, cols = np.nonzero(x[k] > 40)
        ink = x[k][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        return np.pad(ink, ((0, 20 - ink.shape[0]), (0, right)))

    top, low = tight(1), np.hstack([tight(4, 4), tight(8)])
    page = np.vstack([np.pad(top, ((0, 6), (0, low.shape[1] - top.shape[1]))), low])
    page = cv2.resize(255 - page, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    result = rec.recognize(cv2.imencode(".png", page)[1].tobytes())
    assert result.text == f"{y[1]}\n{y[4]}{y[8]}"


def test_a_shadow_deepening_toward_the_frame_is_no_ink() -> None:
    """Paper darkening over its last fifth to 62% of its brightness at the frame (a shadow)
    stays paper, and a stroke on the page stays ink: the light-flattening closing had taken
    the shadow's paper for as bright as further in (ink strength 61 there, over INK_FLOOR)."""
    page = np.full((480, 640), 210, np.uint8)
    page[-96:] = np.linspace(210, 130, 96).astype(np.uint8)[:, None]
    page[200:260, 300:306] = 40
    ink = ink_map(page)
    assert ink[-96:].max() < INK_FLOOR <= ink[200:260, 300:306].min()


@pytest.mark.parametrize(("index", "text"), [(85, "5"), (423, "2")])
def test_a_digit_beside_a_shadow_at_the_frame_is_read(
    rec: Recognizer, sample: dict[str, np.ndarray], index: int, text: str
) -> None:
    """Generated photos (seed 13700, the test's MNIST sample as the hand) whose digit near a
    shadow or the table at the photo's frame was read as nothing: the shadow became ink,
    joined the digit and was left out with it as the table's edge."""
    data, truth = sample_photo(sample, 13700, "digit", index)
    assert truth.text == text and rec.recognize(data).text == text


@pytest.mark.parametrize(("index", "text"), [(0, "39167"), (1, "428"), (15, "6443")])
def test_a_number_touched_by_the_frame_drawn_round_it_is_read(
    rec: Recognizer, sample: dict[str, np.ndarray], index: int, text: str
) -> None:
    """Generated photos (seed 13800, the test's MNIST sample as the hand) of a box or a circle
    drawn round a number and touching it: frame and digits were one piece, read as a mark (or
    all but the digit that touched). The frame's ring is erased and the number read."""
    data, truth = sample_photo(sample, 13800, "number", index, frame=True, screen=False)
    assert truth.text == text and rec.recognize(data).text == text


def test_a_digits_own_loop_is_no_frame() -> None:
    """Real writers' digits — loops closed with a second pass, a stroke ending inside its
    loop — are no frames holding writing: nothing of them is erased (the validation writers'
    cells chose FRAME_DEEP: without it, 3 of their 1,182 cells lost their outline)."""
    import model.preprocess as preprocess

    rows = [r.split(",") for r in (HELD_OUT / "labels.csv").read_text().splitlines()[1:]]
    loops = [HELD_OUT / name for name, _, _ in rows] + load_kensanata("val").files
    erased = []
    found = preprocess._frames

    def spy(*args: object) -> int:
        erased.append(found(*args))  # type: ignore[arg-type]
        return erased[-1]

    preprocess._frames = spy
    try:
        for path in loops:
            preprocess.segment(path.read_bytes())
    finally:
        preprocess._frames = found
    assert len(erased) == len(loops) > 1000 and sum(erased) == 0


@pytest.mark.parametrize(("index", "text"), [(159, "1117"), (395, "3066")])
def test_a_printed_line_at_the_frame_is_cut_off_the_digits_it_touches(
    rec: Recognizer, sample: dict[str, np.ndarray], index: int, text: str
) -> None:
    """Generated cheque amounts (seed 13900, the test's MNIST sample as the hand) whose digits
    touch the field's printed line or box at the photo's frame: "1117", standing on a line
    that runs along the whole bottom, was one piece with it and read "412"; "3066", touching
    the box's sides, went with them as the table's edge and read "066"."""
    data, truth = sample_photo(sample, 13900, "amount", index)
    assert truth.text == text and rec.recognize(data).text == text


@pytest.mark.parametrize(("index", "text"), [(58, "1187"), (71, "1314"), (128, "1130")])
def test_a_digits_stem_in_a_wide_strip_is_no_rule(
    rec: Recognizer, sample: dict[str, np.ndarray], index: int, text: str
) -> None:
    """Generated cheque amounts (seed 13900, the test's MNIST sample as the hand) with no
    printed line: the slanted 1s, a third of the strip's height, were taken for rules (9.75 to
    12.75 degrees), and subtracted: they read "87", "314" and "130"."""
    data, truth = sample_photo(sample, 13900, "amount", index)
    assert truth.text == text and rec.recognize(data).text == text


def test_a_close_ups_thick_rule_is_found_and_taken_off_the_digit(
    rec: Recognizer, sample: dict[str, np.ndarray]
) -> None:
    """A generated close-up (seed 13900, the MNIST sample's 5, 277 px tall in an 800x600 photo)
    standing on a ruled line tilted 9.7 degrees: the line, thicker than the rule search's
    opening, went unseen, and the 5 was left out with it (read as nothing)."""
    data, truth = sample_photo(sample, 13900, "digit", 837)
    assert truth.text == "5" and truth.meta["paper"] == "ruled"
    assert rec.recognize(data).text == "5"


@pytest.mark.parametrize("index", [27, 93, 118])
def test_the_table_beyond_a_blank_sheet_is_left_out_whole(rec: Recognizer, index: int) -> None:
    """Generated blank photos (seed 13900) with the table or a shadow along a side: such a
    strip is too thick to be a printed line, so it is not cut (what was left of it beyond the
    cut was read as a "1"), and it goes whole as the table's edge."""
    data, _ = make_photo(np.random.default_rng([13900, KINDS.index("blank"), index]), None,
                         "blank")
    assert rec.recognize(data).status == "no_digit"


def test_the_line_readers_decoding() -> None:
    """Greedy CTC on made-up column logits: repeats collapse, "none" parts two equal digits,
    each digit has its columns and alternatives; the forward algorithm scores the greedy text
    above its near misses, and all texts' probabilities sum to at most 1."""
    from model.recognize import ctc_greedy, ctc_log_likelihood

    cols = [0, 2, 2, 0, 2, 0, 0, 1, 1, 0]  # "none", 1, 1, "none", 1, "none", "none", 0, 0
    logits = np.full((len(cols), 11), -4.0)
    logits[np.arange(len(cols)), cols] = 4.0
    text, readings = ctc_greedy(logits)
    assert text == "110"
    assert [(r.first, r.last) for r in readings] == [(1, 2), (4, 4), (7, 8)]
    assert all(0.99 < r.confidence <= 1 and r.alternatives()[0][0] == int(c)
               for r, c in zip(readings, text, strict=True))
    best = ctc_log_likelihood(logits, text)
    assert all(best > ctc_log_likelihood(logits, t) + 5 for t in ("10", "1110", "111", "710"))
    assert -0.1 < best <= 0
    flat = np.zeros((3, 11))  # every column uniform: 11**-3 per path
    texts = ["", *(str(n) for n in range(10)), *(f"{n:02d}" for n in range(100)),
             *(f"{n:03d}" for n in range(1000))]
    total = sum(np.exp(ctc_log_likelihood(flat, t)) for t in texts)
    assert total == pytest.approx(1.0)


def test_every_piece_gets_its_own_crop_before_any_pair() -> None:
    """A line of many pieces (a shadow's specks beside a number) is offered shortest runs first,
    so the crops a line may cost (MAX_LINE_GROUPS) reach the pieces at its right end too (before:
    spent from the left, the number after 54 specks got none); a wide digit sliced in five is
    offered whole, a run of five slices of different pieces is not."""
    specks = [Piece(k, (10 * k, 0, 10 * k + 6, 40)) for k in range(60)]
    runs = _runs(specks)
    assert runs[:60] == [(k, k + 1) for k in range(60)]
    assert all(b - a <= MAX_SPAN for a, b in runs)
    zero = [Piece(1, (20 * k, 0, 20 * k + 20, 80)) for k in range(5)]  # one piece, 100×80
    assert (0, 5) in _runs(zero)
    five = [Piece(k, (20 * k, 0, 20 * k + 20, 80)) for k in range(5)]
    assert (0, 5) not in _runs(five)
