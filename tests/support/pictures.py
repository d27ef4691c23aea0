"""Pictures the tests send: MNIST test digits written dark on white paper, numbers, a blank
page and broken or extreme image files. Realistic phone photos come from model/photos.py."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
from PIL import Image

from tests.support.bot_process import SAMPLE

NUMBER = "2026"


@cache
def mnist_test_split() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SAMPLE) as data:
        return data["x_test"], data["y_test"]


def on_paper(crops: list[np.ndarray], side: int = 160, fmt: str = "JPEG") -> bytes:
    """MNIST crops (white on black) as dark ink on white paper, side by side."""
    ink = [255 - np.asarray(Image.fromarray(c).resize((side, side), Image.BICUBIC)) for c in crops]
    row = np.concatenate(ink, axis=1)
    page = np.full((row.shape[0] + 2 * side, row.shape[1] + 2 * side), 255, np.uint8)
    page[side:-side, side:-side] = row
    out = io.BytesIO()
    Image.fromarray(page).convert("RGB").save(out, fmt, quality=90)
    return out.getvalue()


@cache
def readable_digits() -> list[int]:
    """Indices of the sample's test digits that the release model reads right on paper."""
    from model.recognize import Recognizer

    recognizer = Recognizer()
    x, y = mnist_test_split()
    return [i for i in range(len(y)) if recognizer.recognize(on_paper([x[i]])).text == str(y[i])]


def digit_photo(index: int) -> tuple[bytes, int]:
    """The ``index``-th sample test digit that the serving model reads right, on paper, and its
    label: the bot tests are about the bot (bench/recognizer_bench.py measures accuracy)."""
    x, y = mnist_test_split()
    i = readable_digits()[index]
    return on_paper([x[i]]), int(y[i])


def _number_crops(text: str, skip: str = "") -> list[np.ndarray]:
    """Readable sample digits writing `text`, each one a different writer's (none of those
    already used for `skip`)."""
    x, y = mnist_test_split()
    readable = np.array(readable_digits())
    pick = [readable[y[readable] == int(ch)][(skip + text[:k]).count(ch)]
            for k, ch in enumerate(text)]
    return [x[i] for i in pick]


def number_photo(text: str = NUMBER) -> bytes:
    """A number written with readable sample digits (each digit from a different writer)."""
    return on_paper(_number_crops(text))


def lines_photo(lines: tuple[str, ...] = ("12", "345"), side: int = 120) -> bytes:
    """Numbers written on lines one under the other, left-aligned, a digit's height apart."""
    rows, written = [], ""
    for text in lines:
        crops = _number_crops(text, skip=written)
        written += text
        ink = [255 - np.asarray(Image.fromarray(c).resize((side, side), Image.BICUBIC))
               for c in crops]
        rows.append(np.concatenate(ink, axis=1))
    width = max(row.shape[1] for row in rows)
    page = np.full((side * (2 * len(rows) + 1), width + 2 * side), 255, np.uint8)
    for k, row in enumerate(rows):
        top = side * (2 * k + 1)
        page[top : top + side, side : side + row.shape[1]] = row
    out = io.BytesIO()
    Image.fromarray(page).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def blank_photo() -> bytes:
    """A photo of a blank page (paper grain, no ink)."""
    rng = np.random.default_rng(0)
    page = np.clip(rng.normal(235, 4, (600, 800)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(page).save(out, "JPEG", quality=85)
    return out.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit white PNG of width×height written row by row (tiny file, 400 Mpx)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(
        b"IEND", b"")


def tiny_png() -> bytes:
    """A 3×3 black PNG: too small to hold a digit."""
    out = io.BytesIO()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(out, "PNG")
    return out.getvalue()
