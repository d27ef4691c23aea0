"""The recognizer: photo bytes → the digits in it, with LiteRT (TensorFlow only as a fallback).

    rec = Recognizer()                      # model/release/model.tflite, loaded once
    res = rec.recognize(open("photo.jpg", "rb").read())
    res.status, res.text, res.digits        # "ok", "2026", [Digit(2, 0.998, box, ...), ...]

`recognize` never raises for bad input: a broken or absurd file comes back as status "error"
with a message meant for the person who sent it.

The decision is the model's. The segmenter (model/preprocess.py) offers, for each line of
writing, every group of neighbouring pieces that may be one digit; the model reads all of them
in one call, each as a digit 0–9, as a MARK (ink that is no digit: a letter, a separator, a
doodle, a speck, the table's edge) or as a PART (a piece of a digit, or more than one digit).
Each line is then read as the split of its pieces into groups that the model finds most
likely to be whole units (a digit or a mark), by dynamic programming, once as a number and
once as writing (a unit that does not fit the kind costs, see OFF_KIND); the likelier reading's
digits are the line's number. Lines with no digit are left out.

A number is then read again whole by the line reader (model/release/line.tflite, trained by
`python -m model.train --arch line`): a CTC model over the line's columns that sees what no
cut can part, two 0s drawn into each other, a digit leaning on the next, a C-shaped 0. Its
reading replaces the segmenter's only where it finds the segmenter's READER_MARGIN less
likely than its own (the CTC forward algorithm scores any reading); each of its digits keeps
the box and crop of the segmenter's group that best covers it.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from model import RELEASE_DIR
from model.preprocess import (
    LINE_H,
    LINE_W,
    MIN_DIGIT_HEIGHT,
    Box,
    Decoded,
    ImageError,
    Line,
    decode,
    mnist_crop,
    segment,
)

CLASSES = 12  # the model's outputs: digits 0–9, MARK, PART
MARK, PART = 10, 11
# A model trained before MARK and PART existed has 10 outputs; its softmax was taught to be
# unsure of non-digits, so a reading under this confidence counts as a mark.
LEGACY_MARK = 0.5
# Passing over a piece the model has read costs as much as a reading it is 0.1% sure of (the
# last resort); a piece too faint for a crop of its own (empty at the threshold) was never read
# and is passed over freely, rather than forcing a wider group, a mark, to cover it.
SKIP = math.log(1e-3)
# A line is read two ways: as a number, where a mark is a separator or stray ink, and as
# writing, where a letter that looks like a digit ("l", "O", "Z") is no digit. Either way a
# unit that does not fit counts as if the model were OFF_KIND as sure of it, and the likelier
# reading stands: a number's "111" reads as three 1s, not as one MARK like a word's "lll", and
# a word's lone "l" or hatching's stray "1" stays a mark. Development seeds 7500 and 7600 (200
# photos a row, the validation writers): the rows' mean +0.9 and +1.1 points at 0.2 (+0.8 to
# +1.2 anywhere from 0.1 to 0.3): numbers +3.5/+3, amounts +5.5/+3.5, words and doodles
# +3/+2.5, hatching +2.5/+2.5; a lone digit beside a tall mark (a shadow's edge) is now and
# then read as writing (single MNIST digits +0/-1).
OFF_KIND = 0.2
# ...but a mark under half its line's height is no letter of a word: a separator, a speck, what
# is left of a rule or of a printed box around the digit; a number pays nothing for it (dev
# seeds: amounts +2 and +0.5 points, the writers' numbers -1 and +0, the rows' mean the same;
# a digit in a form's box, surrounded by what is left of the box, is read again).
LETTER_SHARE = 0.5
MIN_LINE_SHARE = 0.4
FRAME_REACH = 2  # working px: ink this close to the photo's side is cut by its frame
READER_STRIDE = 4  # input columns per line reader column
# A short line is read in fewer columns (a single digit in a quarter of the time): what the
# reader sees of the line is the same as long as READER_SLACK columns of paper follow it
# (its columns see about that far either side).
READER_WIDTHS = (64, 128, LINE_W)
READER_SLACK = 32
BLANK = 0  # the line reader's "none" class; digit d is class d + 1
# The segmenter's reading of a number stands unless the line reader finds it e**5 (~150) times
# less likely than its own. Chosen for the first reader on development seeds 7500 and 7600 (the
# bench's rows at 200 photos, the validation writers; 3,000 lines read both ways, then only the
# choice replayed): any margin from 5 to 10 read the lines 93.7-93.8% (the segmenter alone
# 92.1%, the reader alone 90.4%). With the second reader (trained also on lines cut from photos)
# 7 -> 5 on the same rows gained 4, 1.5 and 8 points summed over the six rows of numbers,
# amounts and lines (seeds 7500, 7600, 7700; touching numbers +2.5, -1, +2.5; amounts -1, +1,
# +2; circled numbers +1.5, +0.5, +2); single digits are never read again.
READER_MARGIN = 5.0
LINE_LEVEL = 128  # ink in the line reader's image (white on black, 0-255)
ANNOTATED_SIDE = 1280
CHUNK = 4  # crops per LiteRT call (per crop, two threads: 0.16 ms at 4 or 16, 0.18–0.22 alone)
# the model's calls are serialized (one lock per Recognizer), so each may use two cores: a
# call of 4 crops takes 0.64–0.67 ms instead of 1.26 ms on one thread (2-core machine)
MODEL_THREADS = min(2, os.cpu_count() or 1)

log = logging.getLogger(__name__)
_UNLOADED = object()


@dataclass
class Digit:
    """One digit read from a photo."""

    digit: int
    confidence: float
    box: Box  # x0, y0, x1, y1 in the original (orientation-corrected) image
    alternatives: list[tuple[int, float]]  # top-3 (digit, probability), best first
    crop: np.ndarray = field(repr=False)  # uint8 (28, 28): what the model saw
    line: int = 0  # which line of the photo (0 = the top one)


@dataclass
class Result:
    """What recognize() found in one photo."""

    status: str  # "ok" | "no_digit" | "error"
    text: str = ""  # the digits of each line, lines joined by "\n"
    digits: list[Digit] = field(default_factory=list)
    error: str | None = None
    # which error: not_an_image | damaged | too_small | too_large | failed (a bug, logged)
    error_code: str | None = None
    seconds: float = 0.0

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n") if self.text else []

    def to_json(self, file: str) -> dict:
        """The CLI's JSON object for this result."""
        out: dict = {
            "file": file,
            "status": self.status,
            "text": self.text,
            "digits": [
                {"digit": d.digit, "confidence": round(d.confidence, 4), "box": list(d.box),
                 "line": d.line}
                for d in self.digits
            ],
        }
        if self.status == "error":
            out["error"] = self.error
        return out


class Recognizer:
    """Loads the serving model once; recognize() and classify() are safe from any thread."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        path = Path(model_path) if model_path is not None else RELEASE_DIR
        if path.is_dir():
            tflite = path / "model.tflite"
            path = tflite if tflite.is_file() else path / "model.keras"
        if path.suffix == ".tflite" and not _litert_available():
            path = path.with_suffix(".keras")  # LiteRT is not installable here: Keras serves
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        self.model_path = path
        self._lock = threading.Lock()
        if path.suffix == ".tflite":
            self._load_tflite(path)
        elif path.suffix == ".keras":
            self._load_keras(path)
        else:
            raise ValueError(f"unknown model file type {path.suffix!r}: give a .tflite or .keras")
        # loaded at the first number it reads: a Recognizer that only classifies (a candidate
        # model checked before promotion) never starts the line reader's interpreters
        self._read_lines: Callable[[np.ndarray], np.ndarray] | None | object = _UNLOADED
        self._line_folder = path.parent

    def _load_line_reader(self, folder: Path):
        """The line reader beside the model, else the release's: a function from a line's
        image (float32, 1 × LINE_H × width × 1) to its column logits; None where there is
        none (a number is then read as the segmenter cut it)."""
        for base in (folder / "line", RELEASE_DIR / "line"):
            tflite, keras_file = base.with_suffix(".tflite"), base.with_suffix(".keras")
            if tflite.is_file() and _litert_available():
                from ai_edge_litert.interpreter import Interpreter

                readers = {}  # one interpreter per width, allocated once (as for the crops)
                for width in READER_WIDTHS:
                    interpreter = Interpreter(model_path=str(tflite), num_threads=MODEL_THREADS)
                    index = interpreter.get_input_details()[0]["index"]
                    interpreter.resize_tensor_input(index, [1, LINE_H, width, 1])
                    interpreter.allocate_tensors()
                    readers[width] = (interpreter, index,
                                      interpreter.get_output_details()[0]["index"])

                def read(x: np.ndarray, readers: dict = readers) -> np.ndarray:
                    interpreter, index, output = readers[x.shape[2]]
                    interpreter.set_tensor(index, x)
                    interpreter.invoke()
                    return interpreter.get_tensor(output)[0].copy()

                return read
            if keras_file.is_file():
                import keras

                model = keras.models.load_model(keras_file, compile=False)
                return lambda x: np.asarray(model(x, training=False))[0]
        return None

    def _load_tflite(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # Two interpreters with fixed batch sizes, allocated once: resizing one re-plans its
        # graph (about as long as reading ten crops), and padding a batch wastes a crop's time
        # per empty slot; crops go through CHUNK at a time, the last few one by one.
        self._interpreters = {}
        for batch in (CHUNK, 1):
            interpreter = Interpreter(model_path=str(path), num_threads=MODEL_THREADS)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, [batch, 28, 28, 1])
            interpreter.allocate_tensors()
            self._interpreters[batch] = (interpreter, index,
                                         interpreter.get_output_details()[0]["index"])
        self._predict = self._predict_tflite

    def _load_keras(self, path: Path) -> None:
        import keras  # only here: the bot process never needs TensorFlow

        self._keras = keras.models.load_model(path, compile=False)
        self._predict = lambda x: np.asarray(self._keras(x, training=False))

    def _predict_tflite(self, x: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), CHUNK):
            chunk = x[start : start + CHUNK]
            for part in [chunk] if len(chunk) == CHUNK else np.split(chunk, len(chunk)):
                interpreter, index, output = self._interpreters[len(part)]
                interpreter.set_tensor(index, part)
                interpreter.invoke()
                out.append(interpreter.get_tensor(output).copy())
        return np.concatenate(out) if out else np.zeros((0, CLASSES), np.float32)

    def classify(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) MNIST-like images → (N, 12) probabilities (digits, MARK, PART),
        in one model call. A 10-output model's rows are padded with zeros."""
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if len(images) == 0:
            return np.zeros((0, CLASSES), np.float32)
        x = (images.astype(np.float32) / 255.0)[..., None]
        with self._lock:
            probs = self._predict(x)
        if probs.shape[1] < CLASSES:
            probs = np.pad(probs, ((0, 0), (0, CLASSES - probs.shape[1])))
        return probs

    def recognize(self, image_bytes: bytes) -> Result:
        """Photo bytes → Result; never raises for bad input."""
        start = time.perf_counter()
        try:
            decoded, lines = segment(image_bytes)
            crops = [g.crop for line in lines for g in line.groups]
            probs = iter(self.classify(np.stack(crops)) if crops else [])
            readings = [read_line(line, [next(probs) for _ in line.groups]) for line in lines]
        except ImageError as exc:
            return Result("error", error=str(exc), error_code=exc.code,
                          seconds=time.perf_counter() - start)
        except Exception:  # a pathological image (or a bug) must not take the caller down
            log.exception("recognize failed on a %d-byte image", len(image_bytes))
            return Result("error", error="I couldn't process that image, sorry.",
                          error_code="failed", seconds=time.perf_counter() - start)
        # one hand writes its lines at about one size, set by the line the model is surest
        # holds digits (the most confidence summed over its digits): a line of digits under
        # MIN_LINE_SHARE of that, or over 1 / MIN_LINE_SHARE of it, is specks, a grid's
        # remnants or a shadow's edge beside the writing (read as 1s). Measured against the
        # tallest line as the size (dev seeds 7500/7600/7700: 7 photos won, none lost): a tall
        # edge read as a weak 1 no longer drops the writing beside it.
        size = max(((sum(d.confidence for d in r), ln.height)
                    for ln, r in zip(lines, readings, strict=True) if r), default=(0.0, 0.0))[1]
        kept = [(ln, r) for ln, r in zip(lines, readings, strict=True)
                if r and MIN_LINE_SHARE * size <= ln.height <= size / MIN_LINE_SHARE]
        # the writing the user framed lies inside the photo; a lone digit cut by the frame
        # beside it is what the frame cut through (the table's or the sheet's edge, a shadow's,
        # read as a 1; a neighbour's digit). A photo cropped tight to its writing (all of it
        # at the frame) keeps every line. Dev seeds 7500/7700, every row at 200 photos: 7 and
        # 9 photos won, none lost (single digits "1\n4" -> "4"; numbers, lines, coloured ink).
        cut = [any(_at_frame(d.box, decoded) for d in r) for _, r in kept]
        if not all(cut):
            kept = [(ln, r) for (ln, r), c in zip(kept, cut, strict=True) if not c or len(r) > 1]
        readings = [self._reread(ln, r) for ln, r in kept]
        digits = [replace_line(d, k) for k, r in enumerate(readings) for d in r]
        text = "\n".join("".join(str(d.digit) for d in r) for r in readings)
        return Result("ok" if digits else "no_digit", text=text, digits=digits,
                      seconds=time.perf_counter() - start)


    def line_logits(self, line: Line) -> np.ndarray | None:
        """The line reader's column logits (columns × 11) for a line; None without a reader."""
        if self._read_lines is _UNLOADED:
            with self._lock:
                if self._read_lines is _UNLOADED:
                    self._read_lines = self._load_line_reader(self._line_folder)
        if line.image is None or not callable(self._read_lines):
            return None
        # the narrowest width that holds the line and READER_SLACK of paper after it
        ink = np.flatnonzero(line.image.any(axis=0))
        end = int(ink[-1]) + 1 if ink.size else 0
        width = next((w for w in READER_WIDTHS if w >= end + READER_SLACK), LINE_W)
        x = (line.image[:, :width].astype(np.float32) / 255.0)[None, :, :, None]
        with self._lock:
            return self._read_lines(x)

    def _reread(self, line: Line, digits: list[Digit]) -> list[Digit]:
        """A line read as a number, read again whole by the line reader where there is one.
        The segmenter's reading stands unless the line reader finds it READER_MARGIN less
        likely than its own; the reader's digits take the box and crop of the segmenter's
        candidate group that best covers each."""
        # a lone digit stands as the model read it: a digit drawn or cropped wide (a postal
        # archive's flat 0, stretched to its frame) looks like two to a reader of lines (dev
        # seeds: tight crops +0.3 points, light-blue ink +0.6, touching numbers -2.4, where a
        # merged pair was read as one digit), and a single digit's photo is read no slower
        if len(digits) < 2 or (logits := self.line_logits(line)) is None:
            return digits
        text, spans = ctc_greedy(logits)
        mine = "".join(str(d.digit) for d in digits)
        if (not text or text == mine
                or ctc_log_likelihood(logits, mine)
                > ctc_log_likelihood(logits, text) - READER_MARGIN):
            return digits
        if len(text) == len(digits):  # the same units: the segmenter's boxes and crops stand
            return [d if d.digit == int(c) else Digit(int(c), r.confidence, d.box,
                                                      r.alternatives(), d.crop)
                    for d, c, r in zip(digits, text, spans, strict=True)]
        origin, step = line.image_x
        ranges = [(min(p.box[0] for p in line.pieces[g.start : g.end]),
                   max(p.box[2] for p in line.pieces[g.start : g.end])) for g in line.groups]
        # each digit's columns reach halfway to its neighbours' (a reader's digit is a peak
        # of a column or two, somewhere on its glyph)
        centres = [(r.first + r.last + 1) * READER_STRIDE / 2 for r in spans]
        bounds = [2.0, *[(a + b) / 2 for a, b in zip(centres, centres[1:], strict=False)],
                  max(p.box[2] for p in line.pieces)]
        bounds[-1] = (bounds[-1] - origin) / step
        picks = [max(range(len(ranges)), key=lambda i: _overlap(
            ranges[i], (origin + bounds[k] * step, origin + bounds[k + 1] * step)))
            for k in range(len(text))]
        out = []
        for k, (char, reading) in enumerate(zip(text, spans, strict=True)):
            g = line.groups[picks[k]]
            crop = g.crop
            if picks.count(picks[k]) > 1 and line.image is not None:
                # the group holds this digit and another: its crop would teach a correction
                # the wrong glyph, so the digit's own columns of the line make its crop
                cols = line.image[:, int(bounds[k]) : math.ceil(bounds[k + 1])]
                own = mnist_crop(cols, cols > 0, LINE_LEVEL)
                crop = g.crop if own is None else own
            out.append(Digit(digit=int(char), confidence=reading.confidence, box=g.box,
                             alternatives=reading.alternatives(), crop=crop))
        return out


def _at_frame(box: Box, decoded: Decoded) -> bool:
    """Whether a box (original pixels) reaches within FRAME_REACH working pixels of the
    photo's frame."""
    (w, h), (sx, sy) = decoded.size, decoded.scale
    return (box[0] <= FRAME_REACH * sx or box[1] <= FRAME_REACH * sy
            or box[2] >= w - FRAME_REACH * sx or box[3] >= h - FRAME_REACH * sy)


def _overlap(r: tuple[float, float], s: tuple[float, float]) -> float:
    """How much two ranges of x share, over what they cover together."""
    inter = min(r[1], s[1]) - max(r[0], s[0])
    return inter / (max(r[1], s[1]) - min(r[0], s[0]))


def read_line(line: Line, probs: list[np.ndarray]) -> list[Digit]:
    """The likeliest split of a line's pieces into whole units, read as a number and as
    writing (see OFF_KIND); the digits of the likelier reading, left to right."""
    digit, mark, letter = [], [], []  # each group's log score as a digit, as a mark; letter-tall?
    for g, p in zip(line.groups, probs, strict=True):
        pieces = line.pieces[g.start : g.end]
        tall = max(q.box[3] for q in pieces) - min(q.box[1] for q in pieces)
        # ink shorter than the smallest digit that keeps its shape is no digit, however the
        # model reads it blown up (a grain of a shadow read as a sure "1"): it is a unit of its
        # own (a speck, a dot) or a piece of a bigger one (a 5's bar) as the model weighs those
        readable = tall >= MIN_DIGIT_HEIGHT
        other = float(p[MARK] + p[PART])  # 0 from a 10-output model
        if other > 0:
            unit = float(p[MARK]) if readable else float(p[MARK]) / other
        else:
            unit = LEGACY_MARK if readable else 1.0
        digit.append(math.log(max(float(p[:MARK].max()), 1e-9)) if readable else -math.inf)
        mark.append(math.log(max(unit, 1e-9)))
        letter.append(tall >= LETTER_SHARE * line.height)
    off = math.log(OFF_KIND)
    number = _split(line, digit, [m + off if t else m for m, t in zip(mark, letter, strict=True)])
    writing = _split(line, [d + off for d in digit], mark)
    _, digits = max(number, writing, key=lambda reading: reading[0])  # a tie: a number
    return [_digit(line.groups[k].box, line.groups[k].crop, probs[k]) for k in digits]


def _split(line: Line, digit: list[float], mark: list[float]) -> tuple[float, list[int]]:
    """(log-likelihood, the groups read as digits, left to right) of the best split of a line
    into units, each group a digit or a mark by its better log score (`digit`, `mark`: the
    model's, with the line's kind's price); found by dynamic programming."""
    n = len(line.pieces)
    ending: list[list[int]] = [[] for _ in range(n + 1)]
    skip = [0.0] * n  # the price of passing over each piece
    for i, g in enumerate(line.groups):
        ending[g.end].append(i)
        if g.end - g.start == 1:
            skip[g.start] = SKIP
    best = [0.0] + [-math.inf] * n
    back: list[int | None] = [None] * (n + 1)  # a group's index; None: the path skips a piece
    for end in range(1, n + 1):
        best[end], back[end] = best[end - 1] + skip[end - 1], None
        for i in ending[end]:
            score = best[line.groups[i].start] + max(digit[i], mark[i])
            if score > best[end]:
                best[end], back[end] = score, i
    digits: list[int] = []
    end = n
    while end > 0:
        k = back[end]
        if k is None:
            end -= 1
            continue
        if digit[k] >= mark[k]:
            digits.append(k)
        end = line.groups[k].start
    return best[n], digits[::-1]


def ctc_greedy(logits: np.ndarray) -> tuple[str, list[Reading]]:
    """The line reader's column logits (columns × 11: "none", then 0–9) → its digits: the best
    class of each column, repeats collapsed and "none" dropped; with each digit's reading."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = z / z.sum(axis=-1, keepdims=True)
    best = probs.argmax(axis=-1)
    text: list[str] = []
    spans: list[Reading] = []
    for t, c in enumerate(best):
        if c and t and best[t - 1] == c:  # the same digit, one more column
            spans[-1].last = t
            if probs[t, c] > spans[-1].confidence:
                spans[-1].confidence, spans[-1].probs = float(probs[t, c]), probs[t, 1:]
        elif c:
            text.append(str(c - 1))
            spans.append(Reading(float(probs[t, c]), t, t, probs[t, 1:]))
    return "".join(text), spans


def ctc_log_likelihood(logits: np.ndarray, text: str) -> float:
    """log P(text) under the line reader: the CTC forward algorithm over its columns."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    if not text:
        return float(logp[:, BLANK].sum())
    labels = np.zeros(2 * len(text) + 1, np.int64)  # "none", d1, "none", d2, ..., "none"
    labels[1::2] = [int(c) + 1 for c in text]
    skip = np.zeros(len(labels), bool)  # d1 → d2 past the "none" between, unless d1 == d2
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    alpha = np.full(len(labels), -np.inf)
    alpha[:2] = logp[0, labels[:2]]
    for t in range(1, len(logp)):
        stay_or_step = np.logaddexp(alpha, np.concatenate([[-np.inf], alpha[:-1]]))
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        alpha = np.logaddexp(stay_or_step, jump) + logp[t, labels]
    return float(np.logaddexp(alpha[-1], alpha[-2]))


@dataclass
class Reading:
    """One digit the line reader read: its confidence, first and last column, and the
    digits' probabilities at its surest column."""

    confidence: float
    first: int
    last: int
    probs: np.ndarray = field(repr=False)

    def alternatives(self) -> list[tuple[int, float]]:
        order = np.argsort(self.probs)[::-1][:3]
        return [(int(k), float(self.probs[k])) for k in order]


def replace_line(d: Digit, line: int) -> Digit:
    d.line = line
    return d


def _digit(box: Box, crop: np.ndarray, p: np.ndarray) -> Digit:
    order = np.argsort(p[:MARK])[::-1][:3]
    return Digit(digit=int(order[0]), confidence=float(p[order[0]]), box=box,
                 alternatives=[(int(k), float(p[k])) for k in order], crop=crop)


def _litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def render_annotated(image_bytes: bytes, result: Result) -> bytes:
    """The photo (longest side ≤ 1280 px) with each digit's box and label; JPEG bytes.

    Never raises for bad input: an unreadable photo gives a small card with the message.
    """
    try:
        decoded = decode(image_bytes, side=ANNOTATED_SIDE, mode="RGB")
        canvas = cv2.cvtColor(decoded.image, cv2.COLOR_RGB2BGR)
        sx, sy = decoded.scale
    except ImageError as exc:
        canvas = np.full((90, 640, 3), 255, np.uint8)
        cv2.putText(canvas, str(exc)[:60], (10, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 200), 1,
                    cv2.LINE_AA)
        sx = sy = 1.0
        result = Result(result.status, error=result.error)
    h, w = canvas.shape[:2]
    thickness = max(2, round(max(h, w) / 400))
    font = max(0.5, max(h, w) / 1000)
    for d in result.digits:
        x0, y0, x1, y1 = d.box
        p0 = (int(x0 / sx), int(y0 / sy))
        p1 = (int(x1 / sx), int(y1 / sy))
        colour = (40, 170, 40) if d.confidence >= 0.9 else (0, 140, 255)
        cv2.rectangle(canvas, p0, p1, colour, thickness)
        label = f"{d.digit} {d.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thickness)
        ty = p0[1] - 4 if p0[1] - th - 6 >= 0 else min(h - 2, p1[1] + th + 4)
        cv2.rectangle(canvas, (p0[0], ty - th - 4), (p0[0] + tw + 4, ty + base), colour, -1)
        cv2.putText(canvas, label, (p0[0] + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:  # cannot happen for a valid BGR image; keep the promise of bytes anyway
        return io.BytesIO().getvalue()
    return encoded.tobytes()
