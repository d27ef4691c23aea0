"""The photo generator behind training and bench/recognizer_bench.py: deterministic, honest,
well-formed."""

from __future__ import annotations

import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.photos import (
    CURRENCY,
    INKS,
    KINDS,
    MAX_SIDE,
    Digits,
    _hairline,
    _separator,
    load_test_digits,
    make_photo,
    photo_set,
)

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
SMALL = (640, 480)  # where the frame size does not matter: faster


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    return load_test_digits(SAMPLE)


def decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "the generator produced bytes OpenCV cannot decode"
    return img


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_photos_other_seed_other_photos(kind, test_digits):
    first = photo_set(3, kind, seed=7, test_digits=test_digits)
    again = photo_set(3, kind, seed=7, test_digits=test_digits)
    other = photo_set(3, kind, seed=8, test_digits=test_digits)
    assert [b for b, _ in first] == [b for b, _ in again]
    assert [t.text for _, t in first] == [t.text for _, t in again]
    assert [b for b, _ in first] != [b for b, _ in other]


def test_photo_i_does_not_depend_on_n(test_digits):
    short = photo_set(2, "number", seed=3, size=SMALL, test_digits=test_digits)
    longer = photo_set(4, "number", seed=3, size=SMALL, test_digits=test_digits)
    assert [b for b, _ in short] == [b for b, _ in longer[:2]]


@pytest.mark.parametrize("kind", KINDS)
def test_photos_decode_within_telegram_limits_and_match_truth(kind, test_digits):
    for data, truth in photo_set(8, kind, seed=1, test_digits=test_digits):
        img = decode(data)
        h, w = img.shape[:2]
        assert (w, h) == truth.size
        assert max(w, h) <= MAX_SIDE
        magic = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG"}[truth.fmt]
        assert data.startswith(magic)
        digits = truth.text.replace("\n", "")
        assert digits.isdigit() or (kind in ("blank", "nondigit") and truth.text == "")
        assert len(truth.boxes) == len(digits)
        for x0, y0, x1, y1 in truth.boxes:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # The ink really is where the boxes say: darker (or, on screens, lighter) than the page.
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        for x0, y0, x1, y1 in truth.boxes:
            inside = gray[y0:y1, x0:x1]
            page = np.median(gray)
            light_ink = truth.style in ("screen", "crop/light-on-dark")
            extreme = inside.max() if light_ink else inside.min()
            assert abs(extreme - page) > 40, (truth, extreme, page)


def test_blank_photos_have_no_digits(test_digits):
    photos = photo_set(6, "blank", seed=2)
    assert all(t.text == "" and t.boxes == [] and t.sources == [] for _, t in photos)
    # Blank pages are nearly uniform apart from ruling, shadows and specks: no dark ink strokes.
    for data, truth in photos:
        gray = cv2.cvtColor(decode(data), cv2.COLOR_BGR2GRAY)
        assert np.percentile(gray, 1) > 40 or truth.style == "screen"


def test_numbers_have_two_to_five_digits_left_to_right(test_digits):
    photos = photo_set(12, "number", seed=4, size=SMALL, test_digits=test_digits)
    lengths = {len(t.text) for _, t in photos}
    assert lengths <= {2, 3, 4, 5} and len(lengths) >= 3
    for _, truth in photos:
        assert truth.text[0] != "0"  # a number as a person writes it
        centres = [(x0 + x1) / 2 for x0, _, x1, _ in truth.boxes]
        assert centres == sorted(centres)


def test_sizes_vary_and_can_be_forced(test_digits):
    sizes = {t.size for _, t in photo_set(16, "digit", seed=5, test_digits=test_digits)}
    assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)
    forced = photo_set(2, "digit", seed=5, size=(1280, 960), screen=False, test_digits=test_digits)
    assert all(t.size == (1280, 960) and t.fmt == "jpeg" for _, t in forced)
    screens = photo_set(2, "digit", seed=5, screen=True, test_digits=test_digits)
    assert all(t.style == "screen" and t.fmt == "png" for _, t in screens)


def test_handwriting_comes_from_the_test_split_only(test_digits, tmp_path):
    images, labels = test_digits
    # Without a pool of digits, the generator draws from MNIST's test split.
    assert inspect.signature(photo_set).parameters["digits"].default is None
    for _, truth in photo_set(8, "number", seed=6, size=SMALL, test_digits=test_digits):
        assert [int(labels[i]) for i in truth.sources] == [int(c) for c in truth.text]
    # The loader never reads x_train: a file without it works, and a garbage x_train is ignored.
    only_test = tmp_path / "only_test.npz"
    np.savez(only_test, x_test=images, y_test=labels)
    junk_train = tmp_path / "junk_train.npz"
    np.savez(
        junk_train,
        x_train=np.full((3, 5), 255, np.uint8),
        y_train=np.zeros(1),
        x_test=images,
        y_test=labels,
    )
    reference = photo_set(2, "digit", seed=9, mnist_path=SAMPLE, size=SMALL)
    for path in (only_test, junk_train):
        assert [b for b, _ in photo_set(2, "digit", seed=9, mnist_path=path, size=SMALL)] == [
            b for b, _ in reference
        ]


def test_other_sources_use_no_mnist():
    photos = photo_set(4, "other", seed=3, size=SMALL)  # no MNIST path, no arrays: must still work
    assert all(t.sources == [] and t.text.isdigit() for _, t in photos)


def test_bad_requests_are_refused(test_digits):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        make_photo(rng, None, "digit")
    with pytest.raises(ValueError):
        photo_set(1, "selfie", seed=0)
    with pytest.raises(ValueError):
        make_photo(rng, Digits.mnist(*test_digits), "digit", size=(1600, 1200))
    with pytest.raises(ValueError):
        make_photo(rng, Digits.mnist(*test_digits), "digit", ink="gold")


def test_lines_are_read_top_to_bottom(test_digits):
    for _, truth in photo_set(6, "lines", seed=3, size=(1280, 960), test_digits=test_digits):
        lines = truth.text.split("\n")
        assert 2 <= len(lines) <= 3 and all(line.isdigit() for line in lines)
        # each line's boxes lie below the previous line's
        k = 0
        bottoms = []
        for line in lines:
            boxes = truth.boxes[k:k + len(line)]
            k += len(line)
            assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)
            bottoms.append((min(b[1] for b in boxes), max(b[3] for b in boxes)))
        assert all(top > 0.5 * (a[0] + a[1]) for a, (top, _) in zip(bottoms, bottoms[1:],
                                                                       strict=False))


def test_amounts_write_separators_that_are_not_in_the_text(test_digits):
    photos = photo_set(20, "amount", seed=2, test_digits=test_digits)
    written = [t.meta["written"] for _, t in photos]
    assert any(any(sep in w for sep in ".,- ") for w in written)
    for _, truth in photos:
        assert truth.text == "".join(ch for ch in truth.meta["written"] if ch.isdigit())
        assert len(truth.boxes) == len(truth.text)


def test_a_price_writes_its_currency_sign_as_ink_that_is_no_digit(test_digits):
    plain = photo_set(12, "amount", seed=3, test_digits=test_digits)
    priced = photo_set(12, "amount", seed=3, currency=True, test_digits=test_digits)
    signs = [next(c for c in t.meta["written"] if c in "$€") for _, t in priced]
    assert set(signs) == {"$", "€"}
    for _, truth in priced:
        assert truth.text == "".join(ch for ch in truth.meta["written"] if ch.isdigit())
        assert len(truth.boxes) == len(truth.text)
    assert not any(c in "$€" for _, t in plain for c in t.meta["written"])
    # each sign is drawn about as tall as a digit, narrower than tall
    for sign in CURRENCY:
        alpha = _separator(np.random.default_rng(0), sign, 60.0, 6.0)
        h, w = alpha.shape
        assert 0.6 * 60 <= h <= 1.4 * 60 and 0.3 * h <= w <= 0.9 * h
        assert (alpha > 0.5).mean() > 0.05
    with pytest.raises(ValueError, match="currency"):
        photo_set(1, "number", seed=3, currency=True, test_digits=test_digits)


def test_a_frame_is_drawn_round_the_writing_and_adds_no_digit(test_digits):
    plain = photo_set(12, "number", seed=5, screen=False, test_digits=test_digits)
    framed = photo_set(12, "number", seed=5, screen=False, frame=True, test_digits=test_digits)
    assert {t.meta["frame"] for _, t in framed} == {"circle", "box"}
    for (_, truth), (_, before) in zip(framed, plain, strict=True):
        assert "frame" not in before.meta
        assert truth.text == before.text and len(truth.boxes) == len(truth.text)  # no digit added
    # left to chance, a photo of framed writing is on paper, never a screenshot without its frame
    assert all("frame" in t.meta for _, t in photo_set(12, "digit", seed=6, frame=True,
                                                         test_digits=test_digits))
    with pytest.raises(ValueError, match="frame"):
        photo_set(1, "blank", seed=5, frame=True)


def test_pen_and_ink_can_be_forced(test_digits):
    for ink in INKS:
        (_, truth), = photo_set(1, "digit", seed=4, size=SMALL, screen=False, ink=ink,
                                test_digits=test_digits)
        assert truth.meta["ink"] == ink
    (data, truth), = photo_set(1, "digit", seed=4, size=SMALL, screen=False, pen="hairline",
                               test_digits=test_digits)
    assert truth.meta["pen"] == "hairline"
    # a hairline is thin: few pixels in the digit's box are dark
    gray = cv2.cvtColor(decode(data), cv2.COLOR_BGR2GRAY)
    x0, y0, x1, y1 = truth.boxes[0]
    box = gray[y0:y1, x0:x1]
    assert (box < np.median(gray) - 40).mean() < 0.2


def test_scanned_cells_become_glyphs():
    """A scanned cell (dark ink on light paper, a speck beside) → the digit's ink, cropped to
    it, the speck left out."""
    cell = np.full((90, 90, 3), 245, np.uint8)
    cv2.line(cell, (45, 10), (45, 80), (150, 60, 20), 5)  # a blue 1
    cell[5:7, 80:82] = 60  # a speck
    digits = Digits.scans([cell], np.array([1]))
    glyph, index = digits.draw(np.random.default_rng(0), 1)
    assert index == 0 and glyph.max() > 0.9
    assert glyph.shape[0] >= 70 and glyph.shape[1] <= 9


@pytest.mark.timeout(10)
def test_hairline_pen_thins_glyphs_that_fill_their_box() -> None:
    """A glyph solid from edge to edge (a bold 1 cut tight) has no centre line to erode down to:
    it keeps its own pen instead of looping forever (it once hung a training build)."""
    solid = np.ones((40, 12), np.float32)
    assert np.array_equal(_hairline(solid), solid)
    ring = np.zeros((40, 40), np.float32)
    cv2.circle(ring, (20, 20), 14, 1.0, 6)
    thin = _hairline(ring)
    assert 0 < thin.sum() < 0.6 * ring.sum()  # a ring is redrawn finer, not dropped
