"""The recognizer: photo bytes → the digits in it, with LiteRT (TensorFlow only as a fallback).

    rec = Recognizer()                      # model/release/model.tflite, loaded once
    res = rec.recognize(open("photo.jpg", "rb").read())
    res.status, res.text, res.digits        # "ok", "2026", [Digit(2, 0.998, box, ...), ...]

`recognize` never raises for bad input: a broken or absurd file comes back as status "error"
with a message meant for the person who sent it.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from model import RELEASE_DIR
from model.preprocess import (
    Candidate,
    ImageError,
    candidates_in,
    decode,
    find_digits,
    with_margin,
)

# Rejection: a blob is reported as a digit only when it is shaped like one (aspect, ink
# density, strokes rather than a patch of ink) and the model is sure enough of it.
MIN_CONFIDENCE = 0.65
# A photo whose only digit-shaped blob is an odd but real digit (a filled-loop 6) gets a lower
# bar: the shape gates already passed, and the model was trained to be unsure of non-digits.
LONE_MIN_CONFIDENCE = 0.50
# ...or, beside a digit read with ROW_ANCHOR_CONFIDENCE, one of its height read with this much
ROW_MIN_CONFIDENCE, ROW_ANCHOR_CONFIDENCE, ROW_HEIGHT_SHARE = 0.40, 0.90, 0.7
MIN_ASPECT, MAX_ASPECT = 0.06, 3.0  # width / height of a digit's box
MIN_HEIGHT_SHARE = 0.025  # a digit's height / the photo's short side (24 px of 960)
# share of the normalized crop's box covered by ink; MNIST's digits other than 1 stay under
# 0.70 (99.5th percentile), a narrow 1 may fill its box
MIN_DENSITY, MAX_DENSITY, MAX_DENSITY_NARROW = 0.10, 0.75, 0.98
MAX_DENSITY_SURE = 0.85  # a bold marker digit read with BLOB_CONFIDENCE may fill this much
MIN_LENGTH, BLOB_CONFIDENCE = 3.0, 0.90  # ink area / stroke width²: strokes are long
# ...but a "1" longer than this many stroke widths is a hairline: a paper rule's remnant, a
# crease, a hair (MNIST-like 1s stay under 30 even from a fine pen)
MAX_ONE_LENGTH = 30.0
# Touching digits and broken digits (see _prefer_split and _prefer_join).
SPLIT_WHOLE_BELOW, SPLIT_MARGIN, SPLIT_PARTS_SURE = 0.9, 0.2, 0.9
SPLIT_ROW_ASPECT = 1.6  # width / the row's height: surely more than one digit's width
# ...but a blob the model reads as one digit this surely stays whole unless it is wider than
# any single digit: the halves of a wide 5 read as two surely written 5s, too
SPLIT_WHOLE_SURE, SPLIT_SURE_ASPECT = 0.99, 2.2
JOIN_BOTH_BELOW, JOIN_MARGIN, JOIN_SURE, JOIN_UNEQUAL = 0.7, 0.2, 0.9, 0.75
SLIVER_ASPECT, SLIVER_OVERLAP = 0.3, 0.5  # see _sliver
# A photo with no digit is looked at again on a wider margin (a digit cropped tight touches
# the frame); what that finds counts only if it spans this share of the photo both ways.
CROP_FILL = 0.6
ANNOTATED_SIDE = 1280

log = logging.getLogger(__name__)


@dataclass
class Digit:
    """One digit read from a photo."""

    digit: int
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original (orientation-corrected) image
    alternatives: list[tuple[int, float]]  # top-3 (digit, probability), best first
    crop: np.ndarray = field(repr=False)  # uint8 (28, 28): what the model saw


@dataclass
class Result:
    """What recognize() found in one photo."""

    status: str  # "ok" | "no_digit" | "error"
    text: str = ""
    digits: list[Digit] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def to_json(self, file: str) -> dict:
        """The CLI's JSON object for this result."""
        out: dict = {
            "file": file,
            "status": self.status,
            "text": self.text,
            "digits": [
                {"digit": d.digit, "confidence": round(d.confidence, 4), "box": list(d.box)}
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

    def _load_tflite(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0  # the batch size the interpreter's tensors are allocated for
        self._predict = self._predict_tflite

    def _load_keras(self, path: Path) -> None:
        import keras  # only here: the bot process never needs TensorFlow

        self._keras = keras.models.load_model(path, compile=False)
        self._predict = lambda x: np.asarray(self._keras(x, training=False))

    def _predict_tflite(self, x: np.ndarray) -> np.ndarray:
        # Batches are padded to a power of two so the tensors are rarely reallocated.
        n = len(x)
        batch = 1 << max(0, (n - 1).bit_length())
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input, [batch, 28, 28, 1])
            self._interpreter.allocate_tensors()
            self._batch = batch
        if batch != n:
            x = np.concatenate([x, np.zeros((batch - n, 28, 28, 1), np.float32)])
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[:n].copy()

    def classify(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) MNIST-like images → (N, 10) probabilities, in one model call."""
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if len(images) == 0:
            return np.zeros((0, 10), np.float32)
        x = (images.astype(np.float32) / 255.0)[..., None]
        with self._lock:
            return self._predict(x)

    def recognize(self, image_bytes: bytes) -> Result:
        """Photo bytes → Result; never raises for bad input."""
        start = time.perf_counter()
        try:
            decoded, candidates = find_digits(image_bytes)
            digits = self._read(candidates, min(decoded.size))
            if not digits:  # a digit cropped tight touches the frame: look again with a margin
                again = self._read(candidates_in(with_margin(decoded)), min(decoded.size))
                if _fills_frame(again, decoded.size):
                    digits = again
        except ImageError as exc:
            return Result("error", error=str(exc), seconds=time.perf_counter() - start)
        except Exception:  # a pathological image (or a bug) must not take the caller down
            log.exception("recognize failed on a %d-byte image", len(image_bytes))
            return Result("error", error="I couldn't process that image, sorry.",
                          seconds=time.perf_counter() - start)
        status = "ok" if digits else "no_digit"
        return Result(status, text="".join(str(d.digit) for d in digits), digits=digits,
                      seconds=time.perf_counter() - start)

    def _read(self, candidates: list[Candidate], short_side: int) -> list[Digit]:
        """Classify every crop and every hypothesis in one model call; keep the sure digits.

        A wide blob may be touching digits (its `parts`), two neighbours may be the pieces of
        one broken digit (`joined`); each is taken only when the model reads it clearly
        better than the plain blobs, since both are rarer than whole, separate digits.
        """
        crops = [c.crop for c in candidates] + [c.alt for c in candidates]
        crops += [p.crop for c in candidates for p in c.parts]
        crops += [c.joined.crop for c in candidates if c.joined is not None]
        if not crops:
            return []
        probs = iter(self.classify(np.stack(crops)))
        whole = [next(probs) for _ in candidates]
        # each blob is read in two views (its box scaled to 20 and to 18 px) and the readings
        # averaged: steadier on borderline shapes, and a wrong digit is rarely sure in both
        whole = [(p + next(probs)) / 2 for p in whole]
        parts = [[(part, next(probs)) for part in c.parts] for c in candidates]
        joined = [next(probs) if c.joined is not None else None for c in candidates]
        readings: list[tuple[Candidate, np.ndarray]] = []
        k = 0
        while k < len(candidates):
            c, p = candidates[k], whole[k]
            q = joined[k]
            if (q is not None and k + 1 < len(candidates)
                    and _prefer_join(c, candidates[k + 1], p, whole[k + 1], q)):
                readings.append((c.joined, q))
                k += 2
                continue
            if parts[k] and _prefer_split(c, p, [r for _, r in parts[k]]):
                readings.extend(parts[k])
            else:
                readings.append((c, p))
            k += 1
        # a patch of ink with no stroke to speak of (a blot, a smudge, a bold digit whose
        # loops filled up) is taken only when the model is sure of it (BLOB_CONFIDENCE)
        # specks far smaller than anything one photographs to have it read (dust, a square
        # of the paper's grid) are not digits, however surely the model reads them
        low = MIN_HEIGHT_SHARE * short_side
        readings = [(blob, q) for blob, q in readings if blob.box[3] - blob.box[1] >= low
                    and _digit_shaped(blob, certain := float(q.max()) >= BLOB_CONFIDENCE)
                    and (blob.length >= MIN_LENGTH or certain)
                    and not (int(q.argmax()) == 1 and blob.length > MAX_ONE_LENGTH)]
        readings = [(blob, q) for k, (blob, q) in enumerate(readings)
                    if not _sliver(blob, [b for b, _ in readings[max(0, k - 1):k + 2]])]
        sure = [blob for blob, q in readings if float(q.max()) >= ROW_ANCHOR_CONFIDENCE]
        height = float(np.median([b.box[3] - b.box[1] for b in sure])) if sure else 0.0

        def keep(blob: Candidate, q: np.ndarray) -> bool:
            if float(q.max()) >= MIN_CONFIDENCE:
                return True
            if len(readings) == 1:
                return float(q.max()) >= LONE_MIN_CONFIDENCE
            # an unsure digit among sure ones of its size is reported, with its low
            # confidence: leaving it out would misread the number just the same
            return (bool(sure) and float(q.max()) >= ROW_MIN_CONFIDENCE
                    and blob.box[3] - blob.box[1] >= ROW_HEIGHT_SHARE * height)

        return [_digit(blob, q) for blob, q in readings if keep(blob, q)]


def _fills_frame(digits: list[Digit], size: tuple[int, int]) -> bool:
    """Whether the digits span most of the photo both ways, as in a photo cropped to them
    (and unlike the table's edge or a shadow along one side of a blank page)."""
    if not digits:
        return False
    x0 = min(d.box[0] for d in digits)
    y0 = min(d.box[1] for d in digits)
    x1 = max(d.box[2] for d in digits)
    y1 = max(d.box[3] for d in digits)
    return x1 - x0 >= CROP_FILL * size[0] and y1 - y0 >= CROP_FILL * size[1]


def _prefer_join(a: Candidate, b: Candidate, pa: np.ndarray, pb: np.ndarray,
                 q: np.ndarray) -> bool:
    """Whether two neighbours are the pieces of one broken digit (a 2 whose tail is apart).

    Digits of a number have similar heights; pieces of one digit mostly do not. So pieces of
    unequal height join when the union reads surely and no worse than either piece; pieces of
    equal height only when one of them is an unsure digit and the union reads much better.
    """
    worst = min(float(pa.max()), float(pb.max()))
    joined = float(q.max())
    ha, hb = a.box[3] - a.box[1], b.box[3] - b.box[1]
    if min(ha, hb) <= JOIN_UNEQUAL * max(ha, hb):
        return joined >= max(JOIN_SURE, float(pa.max()) - 0.02, float(pb.max()) - 0.02)
    return worst < JOIN_BOTH_BELOW and joined >= max(JOIN_SURE, worst + JOIN_MARGIN)


def _prefer_split(whole: Candidate, p: np.ndarray, parts: list[np.ndarray]) -> bool:
    """Whether a wide blob is touching digits rather than one wide digit.

    The model reads halves of a digit surely, too, so geometry leads: a blob the model reads
    as one digit all but certainly stays whole unless it is wider than any digit; a blob far
    wider than its row is tall is split when every part reads surely; one that is only a little
    wide
    only when it is itself an unsure digit (wide single digits are common, touching digits
    rare), or when its parts read much better than it.
    """
    sure = [float(q.max()) for q in parts]
    aspect = max(whole.aspect, whole.row_aspect)
    whole_p = float(p.max())
    if whole_p >= SPLIT_WHOLE_SURE and aspect < SPLIT_SURE_ASPECT:
        return False
    if min(sure) >= SPLIT_PARTS_SURE and aspect >= SPLIT_ROW_ASPECT:
        return True
    if whole_p >= SPLIT_WHOLE_BELOW:
        return False
    split = float(np.exp(np.mean(np.log(np.maximum(sure, 1e-9)))))
    return split > whole_p + SPLIT_MARGIN


def _sliver(c: Candidate, near: list[Candidate]) -> bool:
    """A thin blob lying half across a neighbour's box (a grid line's remnant beside a digit,
    a loose piece of it): not a digit of its own, though it reads as a sure 1."""
    width = c.box[2] - c.box[0]
    if c.aspect >= SLIVER_ASPECT:
        return False
    return any(n is not c and min(c.box[2], n.box[2]) - max(c.box[0], n.box[0])
               >= SLIVER_OVERLAP * width for n in near)


def _digit(c: Candidate, p: np.ndarray) -> Digit:
    order = np.argsort(p)[::-1][:3]
    return Digit(digit=int(order[0]), confidence=float(p[order[0]]), box=c.box,
                 alternatives=[(int(k), float(p[k])) for k in order], crop=c.crop)


def _digit_shaped(c: Candidate, certain: bool = False) -> bool:
    """Shaped like a handwritten digit: not a hair-thin line, a flat dash or a filled blob
    (a little denser when the model is `certain` of it, BLOB_CONFIDENCE: a marker's bold 8)."""
    if not MIN_ASPECT <= c.aspect <= MAX_ASPECT or c.density < MIN_DENSITY:
        return False
    limit = MAX_DENSITY_SURE if certain else MAX_DENSITY
    return c.density <= (MAX_DENSITY_NARROW if c.aspect < 0.5 else limit)


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
        canvas = cv2.cvtColor(decoded.gray, cv2.COLOR_RGB2BGR)
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
