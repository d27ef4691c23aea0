"""Photos composed by hand for the recognizer's tests: MNIST test digits from the sample as
ink on paper (a light gradient, grain, ruled or squared lines), rotated, as JPEG or PNG; and
a bomb's header. Realistic phone photos come from model/photos.py."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from model.recognize import Recognizer
from tests.support.bot_process import SAMPLE


def sure_digits(rec: Recognizer) -> dict[int, list[np.ndarray]]:
    with np.load(SAMPLE) as f:
        x, y = f["x_test"], f["y_test"]
    probs = rec.classify(x)
    out: dict[int, list[np.ndarray]] = {k: [] for k in range(10)}
    for img, label, p in zip(x, y, probs, strict=True):
        if p.argmax() == label and p.max() >= 0.99:
            out[int(label)].append(img)
    assert all(len(v) >= 2 for v in out.values()), "the sample lacks sure digits of some label"
    return out


def paper(width: int, height: int, rng: np.random.Generator, lines: str | None = None,
          spacing: int = 48) -> np.ndarray:
    """Off-white paper (BGR float) with a light gradient, grain and optional ruling."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 225 + 20 * (xx / width - 0.5) - 25 * (yy / height - 0.5)
    img = np.repeat(shade[..., None], 3, axis=2) * np.float32([0.97, 1.0, 1.0])
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    blue = (205.0, 170.0, 140.0)
    if lines in ("ruled", "squared"):
        for y in range(spacing // 2, height, spacing):
            cv2.line(img, (0, y), (width, y), blue, 2, cv2.LINE_AA)
    if lines == "squared":
        for x in range(spacing // 2, width, spacing):
            cv2.line(img, (x, 0), (x, height), blue, 2, cv2.LINE_AA)
    return img


def put_digit(img: np.ndarray, digit: np.ndarray, x: int, y: int, height: int,
              ink: tuple[float, float, float] = (40.0, 30.0, 30.0)) -> tuple[int, int, int, int]:
    """Blend an MNIST digit (cropped to its ink, scaled to `height`) as ink; returns its box."""
    ys, xs = np.nonzero(digit > 40)
    glyph = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    width = max(1, round(glyph.shape[1] * height / glyph.shape[0]))
    glyph = cv2.resize(glyph, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    alpha = glyph[..., None]
    region = img[y:y + height, x:x + width]
    region[:] = region * (1 - alpha) + np.float32(ink) * alpha
    return x, y, x + width, y + height


def encode(img: np.ndarray, fmt: str = ".jpg", quality: int = 85) -> bytes:
    img = np.clip(img, 0, 255).astype(np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else []
    ok, data = cv2.imencode(fmt, img, params)
    assert ok
    return data.tobytes()


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def number_photo(digits: dict[int, list[np.ndarray]], text: str, rng: np.random.Generator,
                 size: tuple[int, int] = (1280, 960), height: int = 150, x: int = 200,
                 y: int = 380, lines: str | None = None) -> tuple[bytes, list[tuple]]:
    """A JPEG of `text` written left to right; returns it with the digits' boxes."""
    img = paper(*size, rng, lines)
    boxes = []
    for ch in text:
        pool = digits[int(ch)]
        box = put_digit(img, pool[int(rng.integers(len(pool)))], x, y, height)
        boxes.append(box)
        x = box[2] + height // 4
    return encode(img), boxes


def overlaps(a: tuple, b: tuple) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width×height, with one tiny IDAT: a bomb's
    header, made without allocating the pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
