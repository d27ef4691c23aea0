"""Train the recognizer's model and write a complete, servable run directory.

    python -m model.train [--arch cnn|mlp|line] [--epochs N] [--data PATH] [--extra PATH]
                          [--out DIR] [--seed S] [--scale F] [--threads N] [--init DIR]

The model reads a 28×28 MNIST-like crop as one of twelve classes: the digits 0–9, MARK (ink
that is no digit) and PART (a piece of a digit, or several digits). It learns from MNIST's
training split, kensanata's training writers and crops the recognizer's own segmenter cuts from
generated photos (model/dataset.py); user corrections (--extra) count EXTRA_REPEATS times.
With --init the crop model starts from a run directory's model.keras and fine-tunes it at a
twentieth of the learning rate for FINE_TUNE_EPOCHS (minutes, where a fresh start takes ~40).

DIR receives model.keras (best epoch on validation), model.tflite (checked against Keras with
LiteRT), history.json, metrics.json and three plots. One `PROGRESS {json}` line per finished
epoch goes to stdout, so a parent process (the bot's /retrain) can follow the run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.data import DataError, data_hash, load_mnist, to_model_input
from model.dataset import (
    CLASSES,
    MARK,
    PART,
    line_examples,
    line_pools,
    make_nondigits,
    photo_lines,
    training_examples,
    validation_examples,
)
from model.preprocess import LINE_H, LINE_W
from model.recognize import ctc_greedy

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner off the terminal

import keras  # noqa: E402  (after the log-level setting above)
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

ARCHS = ("cnn", "mlp", "line")
DEFAULT_EPOCHS = {"cnn": 14, "mlp": 20, "line": 7}
PEAK_LR = {"cnn": 2e-3, "mlp": 1e-3, "line": 2e-3}
WARMUP_EPOCHS = 1
FINAL_LR_FRACTION = 0.01
BATCH_SIZE = 128
VAL_SIZE = 5000  # held out from x_train; the test split is only ever used for the final report
EXTRA_REPEATS = 10  # a user correction counts this many times: there are few of them
MNIST_TRAIN = 55_000  # MNIST's training split less VAL_SIZE: what the release trains on
EARLY_STOP_PATIENCE = 6
# Fine-tuning a trained model (--init): two epochs at Adam 1e-4 kept MNIST and read the
# bench's development rows better than a fresh 14-epoch run did (docs/experiments.md).
FINE_TUNE_EPOCHS = 2
FINE_TUNE_LR_FRACTION = 0.05
LITERT_MIN_AGREEMENT = 0.999

# Augmentation prepares for photographed handwriting: the recognizer's normalized crops differ
# from MNIST in slant, placement, scale, pen width and focus.
ROTATION_DEGREES = 10
SHIFT_FRACTION = 0.08
ZOOM_FRACTION = 0.12
STROKE_CHANGE_PROB = 0.4  # share of images made thicker or thinner
BLUR_PROB = 0.2

NONDIGIT_EVAL = 1000  # fresh generated non-digits (another seed) for the MARK report


def build_mlp() -> keras.Model:
    """The project's original baseline: one hidden layer of 128 units."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(CLASSES, activation="softmax"),
        ],
        name="mlp",
    )


def conv_bn(x, filters: int, kernel: int | tuple[int, int], strides: int = 1,
            padding: str = "valid"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_cnn() -> keras.Model:
    """Two blocks of 3×3 convolutions with a learned 5×5 stride-2 downsampling, then a 4×4 head.

    Batch-normalized and dropout-regularized; about 0.33M parameters and 15M multiply-adds per
    image, sized so that a full training run fits in minutes on two CPU cores.
    """
    inputs = keras.Input((28, 28, 1))
    x = conv_bn(inputs, 32, 3)
    x = conv_bn(x, 32, 3)
    x = conv_bn(x, 32, 5, strides=2, padding="same")
    x = layers.Dropout(0.4)(x)
    x = conv_bn(x, 64, 3)
    x = conv_bn(x, 64, 3)
    x = conv_bn(x, 64, 5, strides=2, padding="same")
    x = layers.Dropout(0.4)(x)
    x = conv_bn(x, 128, 4)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


# The line reader: one line of writing → its digits, by CTC (Graves et al. 2006): the model
# reads the line in LINE_W / 4 columns, each as a digit or "none" (BLANK); repeats collapse.
LINE_TRAIN = 80_000  # composed lines (model/dataset.py) at --scale 1, and LINE_PHOTOS' lines
LINE_VAL = 4_000  # lines of the validation writers' glyphs, for choosing the epoch
LINE_MAX_DIGITS = 12
BLANK = 0  # the CTC "none" class; digit d is class d + 1


def build_line_reader() -> keras.Model:
    """Convolutions down to 4 rows by a quarter of the columns, a 4×1 convolution to one row,
    two 1-D convolutions across the columns (each column then sees about two digits either
    side), and each column's logits over BLANK and the 10 digits. About 0.26M parameters.
    Trained on LINE_W columns; any width reads (a short line is read in fewer columns)."""
    inputs = keras.Input((LINE_H, None, 1))
    x = conv_bn(inputs, 16, 3, padding="same")
    x = layers.MaxPooling2D(2)(x)
    x = conv_bn(x, 32, 3, padding="same")
    x = layers.MaxPooling2D(2)(x)
    x = conv_bn(x, 64, 3, padding="same")
    x = conv_bn(x, 64, 3, padding="same")
    x = layers.MaxPooling2D((2, 1))(x)
    x = conv_bn(x, 128, (LINE_H // 8, 1))
    x = layers.Reshape((-1, 128))(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv1D(128, 5, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv1D(128, 5, padding="same", activation="relu")(x)
    outputs = layers.Dense(11)(x)
    return keras.Model(inputs, outputs, name="line")


BUILDERS = {"cnn": build_cnn, "mlp": build_mlp, "line": build_line_reader}


def make_augment(seed: int, geometry: bool = True):
    """A batch → batch function: geometry (not for lines: they are drawn slanted and tilted),
    then pen width, then focus."""
    shapes = keras.Sequential(
        [
            layers.RandomRotation(ROTATION_DEGREES / 360, fill_mode="constant", seed=seed),
            layers.RandomZoom(ZOOM_FRACTION, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(
                SHIFT_FRACTION, SHIFT_FRACTION, fill_mode="constant", seed=seed + 2
            ),
        ]
    )
    blur = layers.RandomGaussianBlur(factor=1.0, kernel_size=3, sigma=(0.5, 1.0),
                                     value_range=(0, 1), seed=seed + 3)

    def augment(images, labels):
        if geometry:
            images = shapes(images, training=True)
        n = tf.shape(images)[0]
        # Grey-level dilation / erosion blended in: a thicker or thinner pen.
        thicker = tf.nn.max_pool2d(images, 3, 1, "SAME")
        thinner = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
        amount = tf.random.uniform([n, 1, 1, 1], 0.3, 1.0, seed=seed + 4)
        pick = tf.random.uniform([n, 1, 1, 1], seed=seed + 5)
        half = STROKE_CHANGE_PROB / 2
        images = tf.where(pick < half, images + amount * (thicker - images), images)
        images = tf.where((pick >= half) & (pick < 2 * half),
                          images + amount * (thinner - images), images)
        blurred = blur(images, training=True)
        images = tf.where(tf.random.uniform([n, 1, 1, 1], seed=seed + 6) < BLUR_PROB,
                          blurred, images)
        return tf.clip_by_value(images, 0.0, 1.0), labels

    return augment


def lr_schedule(arch: str, epochs: int, fine_tune: bool = False):
    """Linear warm-up, then cosine decay to a small fraction of the peak."""
    peak = PEAK_LR[arch] * (FINE_TUNE_LR_FRACTION if fine_tune else 1.0)

    def schedule(epoch: int, _lr: float | None = None) -> float:
        if epoch < WARMUP_EPOCHS:
            return peak * (epoch + 1) / (WARMUP_EPOCHS + 1)
        progress = (epoch - WARMUP_EPOCHS) / max(1, epochs - WARMUP_EPOCHS - 1)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)

    return schedule


def split_train_val(x: np.ndarray, y: np.ndarray, seed: int):
    """Hold out VAL_SIZE training images (a tenth for small files) for model selection."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = min(VAL_SIZE, len(x) // 10)
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def load_extra(path: str | None) -> tuple[np.ndarray, np.ndarray]:
    """User corrections: `x` uint8 (N, 28, 28) MNIST-like crops and their labels `y`."""
    if not path:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"].astype(np.uint8), f["y"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"--extra {path}: expected an .npz with x (N, 28, 28), y: {exc}") from exc
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y) or np.any((y < 0) | (y > 9)):
        raise DataError(f"--extra {path}: expected x (N, 28, 28) and N labels in 0-9")
    return x, y


class Progress(keras.callbacks.Callback):
    """One machine-readable line per epoch for a parent process, flushed at once."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        fields = ("loss", "accuracy", "val_loss", "val_accuracy")
        report: dict[str, float] = {"epoch": epoch + 1, "epochs": self.epochs}
        report.update({k: round(float(logs[k]), 5) for k in fields if k in logs})
        print("PROGRESS " + json.dumps(report), flush=True)


def load_init(path: Path) -> keras.Model:
    """The crop model to fine-tune: a run directory's model.keras (or the file itself)."""
    file = path / "model.keras" if path.is_dir() else path
    try:
        model = keras.models.load_model(file, compile=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"--init {path}: not a crop model's .keras file: {exc}") from exc
    if model.input_shape[1:3] != (28, 28) or model.output_shape[-1] != CLASSES:
        raise DataError(f"--init {path}: expected 28×28 in and {CLASSES} classes out, got "
                        f"{model.input_shape} → {model.output_shape}")
    return model


def litert_predict(tflite_path: Path, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Softmax outputs of the exported model, run by LiteRT as the bot serves it."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(inp, (batch, 28, 28, 1))
    interpreter.allocate_tensors()
    probs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        padded = np.zeros((batch, 28, 28, 1), np.float32)
        padded[: len(chunk)] = chunk
        interpreter.set_tensor(inp, padded)
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out)[: len(chunk)].copy())
    return np.concatenate(probs)


def train(arch: str, epochs: int, data: str | None, extra: str | None, out: Path,
          seed: int, scale: float | None = None, threads: int = 0,
          writers: str = "train", init: Path | None = None) -> dict:
    """Train (or fine-tune `init`), select the best epoch on validation, evaluate on test,
    export and plot."""
    from model import plots

    split = load_mnist(data)
    (x_all, y_all), (x_test, y_test) = split
    x_extra, y_extra = load_extra(extra)
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_val, y_val) = split_train_val(x_all, y_all, seed)
    if scale is None:  # the generated share of the training set stays the same
        scale = min(1.0, len(x_train) / MNIST_TRAIN)
    x_more, y_more = training_examples(seed, scale, data or os.environ.get("MNIST_PATH"),
                                       workers=threads, writers=writers)
    x_cells, y_cells = validation_examples()
    x_val, y_val = np.concatenate([x_val, x_cells]), np.concatenate([y_val, y_cells])
    x_train = np.concatenate([x_train, x_more, *[x_extra] * EXTRA_REPEATS])
    y_train = np.concatenate([y_train, y_more, *[y_extra] * EXTRA_REPEATS])
    counts = np.bincount(y_train, minlength=CLASSES)
    print(f"{arch}: {len(x_train)} training images ({len(x_more)} beyond MNIST: "
          f"{counts[MARK]} MARK, {counts[PART]} PART; {len(x_extra)} corrections), "
          f"{len(x_val)} validation ({len(x_cells)} from kensanata's validation writers"
          f"{', also trained on' if 'val' in writers else ''}), {len(x_test)} test", flush=True)

    train_ds = (
        tf.data.Dataset.from_tensor_slices((to_model_input(x_train), y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
        .map(make_augment(seed), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    model = load_init(init) if init else BUILDERS[arch]()
    model.compile(
        optimizer=keras.optimizers.Adam(PEAK_LR[arch]),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.keras"
    callbacks = [
        keras.callbacks.LearningRateScheduler(lr_schedule(arch, epochs, init is not None)),
        keras.callbacks.ModelCheckpoint(model_path, monitor="val_accuracy", save_best_only=True),
        # Not before the schedule's second half: a lucky epoch at a high learning rate must
        # not end the run before the learning rate has come down.
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=EARLY_STOP_PATIENCE,
                                      restore_best_weights=True, start_from_epoch=epochs // 2),
        keras.callbacks.TerminateOnNaN(),
        Progress(epochs),
    ]
    started = time.monotonic()
    history = model.fit(
        train_ds,
        validation_data=(to_model_input(x_val), y_val),
        epochs=epochs,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    train_seconds = time.monotonic() - started

    best = keras.models.load_model(model_path)  # evaluate exactly the file that ships
    test_x = to_model_input(x_test)
    probs = best.predict(test_x, batch_size=1000, verbose=0)
    predicted = probs.argmax(1)  # a digit read as MARK or PART is a miss
    test_accuracy = float(np.mean(predicted == y_test))
    test_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_test)), y_test], 1e-7, 1))))
    other = best.predict(to_model_input(make_nondigits(NONDIGIT_EVAL, seed + 1)),
                         batch_size=1000, verbose=0).argmax(1)
    cells = (best.predict(to_model_input(x_cells), batch_size=1000, verbose=0).argmax(1)
             if len(x_cells) else np.zeros(0, np.int64))

    tflite_path = out / "model.tflite"
    tflite_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(best).convert())
    agreement = float(np.mean(litert_predict(tflite_path, test_x).argmax(1) == predicted))
    if agreement < LITERT_MIN_AGREEMENT:
        raise RuntimeError(f"LiteRT and Keras agree on only {agreement:.2%} of the test split")

    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    hist["lr"] = hist.pop("learning_rate", [])
    metrics = {
        "arch": arch,
        "classes": CLASSES,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        # the digit it ranks first among 0-9 (what a reading shows when it is a digit)
        "test_digit_accuracy": float(np.mean(probs[:, :MARK].argmax(1) == y_test)),
        "best_val_accuracy": max(hist["val_accuracy"]),
        "val_cells_accuracy": float(np.mean(cells == y_cells)) if len(cells) else None,
        "epochs_run": len(hist["loss"]),
        "epochs_requested": epochs,
        "train_seconds": round(train_seconds, 1),
        "params": int(best.count_params()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_sha256": data_hash(split),
        "train_images": int(len(x_train)),
        "train_class_counts": [int(c) for c in counts],
        "generated_scale": scale,
        "corrections": int(len(x_extra)),
        "validation_images": int(len(x_val)),
        "test_images": int(len(x_test)),
        "seed": seed,
        "writers": writers,  # kensanata's writers trained on: "train", or "train+val" (a refit)
        "init": str(init) if init else None,  # the model fine-tuned, else a fresh start
        "batch_size": BATCH_SIZE,
        "litert_agreement": agreement,
        # fresh generated non-digit glyphs (another seed) the model reads as MARK
        "nondigit_mark_share": float(np.mean(other == MARK)),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    (out / "history.json").write_text(json.dumps(hist, indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plots.training_curves(hist, out / "training_curves.png")
    plots.confusion_matrix(y_test, predicted, out / "confusion_matrix.png")
    plots.samples(x_test, y_test, predicted, probs.max(1), out / "samples.png")
    return metrics


def ctc_loss(y_true, y_pred):
    """CTC loss of padded digit labels (classes 1–10, 0 past the end) against column logits."""
    y_true = tf.cast(y_true, tf.int32)
    label_length = tf.reduce_sum(tf.cast(y_true != BLANK, tf.int32), axis=1)
    logit_length = tf.fill([tf.shape(y_pred)[0]], tf.shape(y_pred)[1])
    return keras.ops.ctc_loss(y_true, y_pred, label_length, logit_length, mask_index=BLANK)


def encode_lines(texts: list[str]) -> np.ndarray:
    labels = np.full((len(texts), LINE_MAX_DIGITS), BLANK, np.int32)
    for i, text in enumerate(texts):
        labels[i, : len(text)] = [int(c) + 1 for c in text]
    return labels


class ExactLines(keras.callbacks.Callback):
    """`val_exact`: the share of validation lines read exactly right (for the checkpoint)."""

    def __init__(self, x: np.ndarray, texts: list[str]) -> None:
        super().__init__()
        self.x, self.texts = x, texts

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logits = self.model.predict(self.x, batch_size=500, verbose=0)
        if logs is not None:
            logs["val_exact"] = exact_share(logits, self.texts)


def exact_share(logits: np.ndarray, texts: list[str]) -> float:
    return float(np.mean([ctc_greedy(z)[0] == t for z, t in zip(logits, texts, strict=True)]))


def train_lines(epochs: int, data: str | None, out: Path, seed: int, scale: float | None,
                threads: int) -> dict:
    """Train the line reader on composed lines and lines cut from photos; the best epoch by
    validation lines read exactly right (the validation writers' glyphs) ships as line.tflite."""
    keras.utils.set_random_seed(seed)
    n = max(256, round(LINE_TRAIN * (scale or 1.0)))
    mnist_path = data or os.environ.get("MNIST_PATH")
    x_train, texts = line_examples(n, seed, line_pools(mnist_path))
    x_cut, cut_texts = photo_lines(seed, scale or 1.0, mnist_path, workers=threads)
    x_train, texts = np.concatenate([x_train, x_cut]), texts + cut_texts
    val_pools = line_pools(split="val")
    if not len(val_pools[0][0]):  # no kensanata: lines of MNIST's glyphs (another seed)
        val_pools = line_pools(mnist_path)[:1]
    x_val, val_texts = line_examples(max(64, round(LINE_VAL * (scale or 1.0))), seed + 1,
                                     val_pools)
    print(f"line: {len(x_train)} training lines ({len(x_cut)} cut from photos), {len(x_val)} "
          "validation lines", flush=True)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((to_model_input(x_train), encode_lines(texts)))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
        .map(make_augment(seed, geometry=False), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_x = to_model_input(x_val)
    model = build_line_reader()
    model.compile(optimizer=keras.optimizers.Adam(PEAK_LR["line"]), loss=ctc_loss)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "line.keras"
    started = time.monotonic()
    history = model.fit(
        train_ds,
        validation_data=(val_x, encode_lines(val_texts)),
        epochs=epochs,
        callbacks=[
            keras.callbacks.LearningRateScheduler(lr_schedule("line", epochs)),
            ExactLines(val_x, val_texts),
            keras.callbacks.ModelCheckpoint(model_path, monitor="val_exact", mode="max",
                                            save_best_only=True),
            keras.callbacks.TerminateOnNaN(),
            Progress(epochs),
        ],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    train_seconds = time.monotonic() - started
    best = keras.models.load_model(model_path, compile=False)
    logits = best.predict(val_x, batch_size=500, verbose=0)
    tflite_path = out / "line.tflite"
    tflite_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(best).convert())
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    inp = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(inp, [1, LINE_H, LINE_W, 1])
    interpreter.allocate_tensors()
    outp = interpreter.get_output_details()[0]["index"]
    agree = []
    for x, z in zip(val_x, logits, strict=True):
        interpreter.set_tensor(inp, x[None])
        interpreter.invoke()
        agree.append(ctc_greedy(interpreter.get_tensor(outp)[0])[0] == ctc_greedy(z)[0])
    agreement = float(np.mean(agree))
    if agreement < LITERT_MIN_AGREEMENT:
        raise RuntimeError(f"LiteRT and Keras agree on only {agreement:.2%} of the lines")
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    metrics = {
        "arch": "line",
        "val_exact": exact_share(logits, val_texts),
        "epochs_run": len(hist["loss"]),
        "epochs_requested": epochs,
        "train_seconds": round(train_seconds, 1),
        "params": int(best.count_params()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_lines": len(x_train),
        "train_lines_from_photos": len(x_cut),
        "validation_lines": len(x_val),
        "seed": seed,
        "litert_agreement": agreement,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    (out / "line_history.json").write_text(json.dumps(hist, indent=1))
    (out / "line_metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=ARCHS, default="cnn")
    parser.add_argument("--epochs", type=int, help="default: " + ", ".join(
        f"{n} for {arch}" for arch, n in DEFAULT_EPOCHS.items())
        + f"; {FINE_TUNE_EPOCHS} with --init")
    parser.add_argument("--data", help="Keras mnist.npz (default: $MNIST_PATH, else download)")
    parser.add_argument("--extra", help=".npz of user corrections (x: N×28×28 uint8, y: labels)")
    parser.add_argument("--out", default="runs/latest", type=Path, help="run directory to write")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float,
                        help="generated examples, as a share of the release's (default: as "
                             "much as the MNIST file is of the full one, at most 1)")
    parser.add_argument("--writers", choices=("train", "train+val"), default="train",
                        help="kensanata's writers to learn from: the training writers, or "
                             "with the validation writers too, a refit once the choices they "
                             "informed are made (its validation figures are then seen data)")
    parser.add_argument("--threads", type=int, default=0,
                        help="cap the threads (TensorFlow's) and processes (making the "
                             "examples) it uses (0: all cores)")
    parser.add_argument("--init", type=Path,
                        help="fine-tune this run directory's crop model (its model.keras) "
                             "instead of starting afresh; --arch is then the file's")
    args = parser.parse_args(argv)
    if args.threads > 0:  # before TensorFlow runs anything: it fixes its pools at first use
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    epochs = args.epochs or (FINE_TUNE_EPOCHS if args.init else DEFAULT_EPOCHS[args.arch])
    if epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.arch == "line" and args.writers != "train":
        parser.error("--writers is for the crop model: the line reader's glyphs are its own")
    if args.arch == "line" and args.init:
        parser.error("--init is for the crop model: the line reader is trained afresh")
    try:
        if args.arch == "line":
            metrics = train_lines(epochs, args.data, args.out, args.seed, args.scale,
                                  args.threads)
            print(f"validation lines read exactly {metrics['val_exact']:.2%}, "
                  f"{metrics['epochs_run']} epochs in {metrics['train_seconds']:.0f} s "
                  f"→ {args.out}")
            return 0
        metrics = train(args.arch, epochs, args.data, args.extra, args.out, args.seed,
                        args.scale, args.threads, args.writers, args.init)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"test accuracy {metrics['test_accuracy']:.2%} (loss {metrics['test_loss']:.4f}), "
          f"{metrics['epochs_run']} epochs in {metrics['train_seconds']:.0f} s → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
