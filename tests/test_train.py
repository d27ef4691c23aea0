"""Training module: data loading, both architectures, the run directory, LiteRT agreement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import RELEASE_DIR
from model.data import DataError, load_mnist, load_npz

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "mnist_sample.npz"
RUN_FILES = ("model.keras", "model.tflite", "history.json", "metrics.json",
             "training_curves.png", "confusion_matrix.png", "samples.png")
METRIC_FIELDS = ("test_accuracy", "test_loss", "arch", "epochs_run", "train_seconds", "params",
                 "created_at", "data_sha256", "litert_agreement")
HISTORY_FIELDS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


def test_load_mnist_from_file(monkeypatch):
    monkeypatch.delenv("MNIST_PATH", raising=False)
    (x_train, y_train), (x_test, y_test) = load_mnist(SAMPLE)
    assert x_train.shape == (500, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (200, 28, 28) and len(y_test) == 200
    assert set(np.unique(y_train)) == set(range(10))
    monkeypatch.setenv("MNIST_PATH", str(SAMPLE))
    assert load_mnist()[0][0].shape == (500, 28, 28)


def test_load_mnist_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable"):
        load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 28, 28)))
    with pytest.raises(DataError, match="lacks x_train"):
        load_npz(tmp_path / "wrong.npz")


def test_offline_without_data_is_one_clear_line(tmp_path):
    """No MNIST_PATH and no network: exit 2 with what to set, not a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "MNIST_PATH"}
    # A dead proxy makes Keras' download fail here as it would offline, even on a networked CI.
    env.update(KERAS_HOME=str(tmp_path), HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="")
    proc = subprocess.run([sys.executable, "-m", "model.train", "--epochs", "1", "--out",
                           str(tmp_path / "run")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MNIST_PATH" in errors[0]
    assert "Traceback" not in proc.stderr


def check_run_dir(run: Path, arch: str, epochs: int) -> dict:
    for name in RUN_FILES:
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(field in metrics for field in METRIC_FIELDS)
    assert metrics["arch"] == arch and metrics["epochs_run"] == epochs
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["params"] > 0
    assert metrics["litert_agreement"] >= 0.999
    history = json.loads((run / "history.json").read_text())
    assert all(len(history[field]) == epochs for field in HISTORY_FIELDS)
    for name in RUN_FILES:
        if name.endswith(".png"):
            with Image.open(run / name) as img:
                img.load()
                assert img.width > 200 and img.height > 200
    return metrics


def test_cli_trains_cnn_one_epoch(tmp_path):
    """The CLI end to end: progress lines, every file, the JSON fields."""
    run = tmp_path / "cnn"
    proc = subprocess.run([sys.executable, "-m", "model.train", "--arch", "cnn", "--epochs", "1",
                           "--data", str(SAMPLE), "--out", str(run), "--seed", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    progress = [json.loads(line[len("PROGRESS "):]) for line in proc.stdout.splitlines()
                if line.startswith("PROGRESS ")]
    assert [p["epoch"] for p in progress] == [1] and progress[0]["epochs"] == 1
    assert 0.0 <= progress[0]["val_accuracy"] <= 1.0
    metrics = check_run_dir(run, "cnn", 1)
    assert metrics["params"] > 100_000


def test_cli_trains_the_line_reader(tmp_path):
    """`--arch line`: synthetic lines of real glyphs, the reader's files beside a release's,
    LiteRT reading the validation lines as Keras does."""
    run = tmp_path / "line"
    proc = subprocess.run([sys.executable, "-m", "model.train", "--arch", "line", "--epochs", "1",
                           "--scale", "0.005", "--data", str(SAMPLE), "--out", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "validation lines read exactly" in proc.stdout
    for name in ("line.keras", "line.tflite", "line_metrics.json", "line_history.json"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "line_metrics.json").read_text())
    assert metrics["arch"] == "line" and metrics["epochs_run"] == 1
    assert metrics["train_lines_from_photos"] >= 50  # most of 100 photos' lines
    assert metrics["train_lines"] == 400 + metrics["train_lines_from_photos"]
    assert metrics["litert_agreement"] >= 0.999
    assert 0.0 <= metrics["val_exact"] <= 1.0


def test_synthetic_lines_show_their_digits():
    """Each synthetic line holds ink across its digits, at the line reader's size, and its
    text is 1-9 digits; the same seed gives the same lines."""
    from model.dataset import line_examples
    from model.preprocess import LINE_H, LINE_W

    (x, y), _ = load_mnist(SAMPLE)
    pools = [(x, y.astype(np.int64))]
    lines, texts = line_examples(40, 3, pools)
    assert lines.shape == (40, LINE_H, LINE_W) and lines.dtype == np.uint8
    assert all(t.isdigit() and 1 <= len(t) <= 9 for t in texts)
    assert len({len(t) for t in texts}) >= 5
    for img, text in zip(lines, texts, strict=True):
        rows, cols = np.nonzero(img > 128)
        assert img.max() == 255 and rows.min() > 0 and rows.max() < LINE_H - 1
        assert cols.max() - cols.min() >= 6 * len(text)  # every digit is drawn
    again, texts_again = line_examples(40, 3, pools)
    assert np.array_equal(lines, again) and texts == texts_again


def test_lines_cut_from_photos_are_labelled_with_their_digits():
    """A line the segmenter cuts from a generated photo is labelled with the digits whose ink
    it holds; a line holding only part of a digit is left out."""
    from model.dataset import label_line
    from model.photos import photo_set
    from model.preprocess import segment

    (x, y), _ = load_mnist(SAMPLE)
    right = 0
    for data, truth in photo_set(12, "number", seed=11, test_digits=(x, y)):
        decoded, lines = segment(data, truth.owners)
        assert decoded.owner_ink is not None
        right += [label_line(ln.owners, decoded.owner_ink, truth.text)
                  for ln in lines if ln.owners is not None] == [truth.text]
    assert right >= 10
    owners, totals = np.zeros(256, np.int64), np.zeros(256, np.int64)
    totals[1:4], owners[1:4] = 100, [90, 100, 3]
    assert label_line(owners, totals, "507") == "50"
    owners[3] = 40  # part of the 7: unsure
    assert label_line(owners, totals, "507") is None


def test_mlp_fits_and_learns_with_corrections(tmp_path):
    """The seed MLP trains in-process; user corrections join the training data."""
    from model.dataset import MARK, PART, training_examples
    from model.train import EXTRA_REPEATS, MNIST_TRAIN, train

    (x_train, y_train), _ = load_mnist(SAMPLE)
    extra = tmp_path / "corrections.npz"
    np.savez(extra, x=x_train[:7], y=y_train[:7])
    metrics = train("mlp", 6, str(SAMPLE), str(extra), tmp_path / "mlp", seed=3)
    check_run_dir(tmp_path / "mlp", "mlp", 6)
    assert metrics["corrections"] == 7
    # the generated examples keep their share: a 450-image MNIST file gets 450/55,000 of them
    assert metrics["generated_scale"] == pytest.approx(450 / MNIST_TRAIN)
    more, _ = training_examples(3, metrics["generated_scale"], str(SAMPLE))
    assert metrics["train_images"] == 450 + len(more) + 7 * EXTRA_REPEATS
    counts = metrics["train_class_counts"]
    assert len(counts) == 12 and counts[MARK] > 0 and counts[PART] > 0
    assert metrics["test_accuracy"] > 0.5  # 450 images, 6 epochs: far above chance (0.1)


def test_nondigits_are_normalized_like_the_recognizer_crops():
    """Generated non-digits (MARK): deterministic, MNIST-like (white on black, 20×20 box,
    centred)."""
    from model.dataset import make_nondigits

    first, again = make_nondigits(40, seed=5), make_nondigits(40, seed=5)
    assert first.shape == (40, 28, 28) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, make_nondigits(40, seed=6))
    for crop in first:
        rows, cols = np.nonzero(crop > 30)
        assert max(rows.max() - rows.min(), cols.max() - cols.min()) <= 21
        ys, xs = np.mgrid[:28, :28]
        mass = crop.astype(float) / crop.sum()
        assert abs((mass * ys).sum() - 14) < 1 and abs((mass * xs).sum() - 14) < 1


def test_currency_signs_are_marks_in_training_and_no_digit_of_a_line(monkeypatch):
    """Training draws $ and € (its own way) among the MARK glyphs and before or after the
    composed lines, whose text stays the digits alone."""
    from model import dataset
    from model.preprocess import LINE_H, LINE_W

    rng = np.random.default_rng(0)
    for sign in dataset.SIGNS * 8:  # both ways of drawing a $: a font's and a pen's wave
        ink = dataset._sign(rng, sign, 40.0, 3.0)
        assert 0.6 * 40 <= ink.shape[0] <= 1.4 * 40 and 0.3 <= ink.shape[1] / ink.shape[0] <= 1
        assert dataset._mark(rng, sign, 20.0, 2.0)[1] == "digit"  # it stands on the baseline
    monkeypatch.setattr(dataset, "SIGN_SHARE", 1.0)
    signs = dataset.make_nondigits(8, seed=5)[::4]  # every 4th glyph is a letter or a sign
    monkeypatch.setattr(dataset, "SIGN_SHARE", 0.0)
    assert not np.array_equal(signs, dataset.make_nondigits(8, seed=5)[::4])
    (x, y), _ = load_mnist(SAMPLE)
    pools = [(x, y.astype(np.int64))]
    monkeypatch.setattr(dataset, "LINE_SIGNS", 1.0)
    lines, texts = dataset.line_examples(20, 3, pools)
    assert lines.shape == (20, LINE_H, LINE_W)
    assert all(t.isdigit() for t in texts)


def test_init_fine_tunes_the_release_rather_than_starting_afresh(tmp_path, capsys):
    """--init: one short epoch from the release keeps its reading (a fresh model could not
    reach it on 450 images at a twentieth of the learning rate); a wrong file is refused."""
    from model.train import main, train

    metrics = train("cnn", 1, str(SAMPLE), None, tmp_path / "ft", seed=5, init=RELEASE_DIR)
    check_run_dir(tmp_path / "ft", "cnn", 1)
    assert metrics["init"] == str(RELEASE_DIR)
    assert metrics["test_accuracy"] >= 0.95
    history = json.loads((tmp_path / "ft" / "history.json").read_text())
    assert history["lr"][0] < 1e-4  # the fine-tuning's rate, not a fresh run's 1e-3
    assert main(["--init", str(SAMPLE), "--data", str(SAMPLE),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--init" in capsys.readouterr().err


def test_bad_corrections_file_is_refused(tmp_path):
    extra = tmp_path / "bad.npz"
    np.savez(extra, x=np.zeros((3, 28, 28), np.uint8), y=np.array([1, 2, 12]))
    proc = subprocess.run([sys.executable, "-m", "model.train", "--arch", "mlp", "--epochs", "1",
                           "--data", str(SAMPLE), "--extra", str(extra),
                           "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "labels in 0-9" in proc.stderr


# The release reads 99.34% of MNIST's test split with its twelve outputs (a digit read as MARK
# or PART is a miss; 99.59% among the ten digits alone) — short of the 99.6% it is meant to
# reach; these floors keep it from sliding further.
RELEASE_FLOOR, RELEASE_DIGIT_FLOOR = 0.993, 0.995


def test_release_model_meets_its_metrics():
    """The shipped model: its floors on the MNIST test split, as metrics.json says (±0.1 pp)."""
    mnist = Path(os.environ.get("MNIST_PATH", ROOT.parent / "shared" / "data" / "mnist.npz"))
    if not mnist.is_file():
        pytest.skip("full MNIST not available (set MNIST_PATH)")
    import keras

    from model.data import to_model_input

    _, (x_test, y_test) = load_mnist(mnist)
    model = keras.models.load_model(RELEASE_DIR / "model.keras")
    probs = model.predict(to_model_input(x_test), batch_size=1000, verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == y_test))
    metrics = json.loads((RELEASE_DIR / "metrics.json").read_text())
    assert accuracy >= RELEASE_FLOOR  # a digit read as MARK or PART counts as a miss
    assert float(np.mean(probs[:, :10].argmax(1) == y_test)) >= RELEASE_DIGIT_FLOOR
    assert abs(accuracy - metrics["test_accuracy"]) <= 0.001
    assert metrics["nondigit_mark_share"] >= 0.9  # fresh non-digits are read as marks
    check_run_dir(RELEASE_DIR, "cnn", metrics["epochs_run"])


def test_crops_are_labelled_by_whose_ink_they_hold() -> None:
    """A crop holding (nearly) all of one digit's ink and little else is that digit; a piece
    of it, or two digits together, is PART; ink that belongs to no digit is MARK."""
    from model.dataset import MARK, PART, label_group

    totals = np.zeros(256)
    totals[1:3] = [400, 300]  # the photo's two digits, "4" and "7", as the segmenter sees them

    def owners(none: int, four: int, seven: int) -> np.ndarray:
        counts = np.zeros(256)
        counts[:3] = [none, four, seven]
        return counts

    assert label_group(owners(10, 395, 0), totals, "47") == 4  # a speck of paper with it
    assert label_group(owners(0, 0, 290), totals, "47") == 7
    assert label_group(owners(0, 200, 0), totals, "47") == PART  # half of the 4
    assert label_group(owners(0, 400, 300), totals, "47") == PART  # both
    assert label_group(owners(0, 30, 300), totals, "47") == PART  # a sliver of the 4 too
    assert label_group(owners(300, 400, 0), totals, "47") == PART  # the 4 and a rule's remnant
    assert label_group(owners(80, 5, 0), totals, "47") == MARK  # the remnant alone
    assert label_group(owners(5000, 290, 0), totals, "47") == PART  # a table's edge and the 7
    assert label_group(owners(50, 0, 0), np.zeros(256), "") == MARK  # a blank photo's speck


def test_training_examples_are_the_segmenters_crops(tmp_path, monkeypatch) -> None:
    """What the model learns beyond MNIST: crops the recognizer's own segmenter cuts, in the
    twelve classes, the same for the same seed (and cached)."""
    from model import dataset

    monkeypatch.setattr(dataset, "CACHE", tmp_path)
    x, y = dataset.training_examples(5, 0.004, str(SAMPLE))
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y) > 50
    assert set(np.unique(y)) <= set(range(12)) and {dataset.MARK, dataset.PART} <= set(y)
    assert len(set(y.tolist()) & set(range(10))) >= 5
    assert len(list(tmp_path.glob("train-*.npz"))) == 1
    again, _ = dataset.training_examples(5, 0.004, str(SAMPLE))
    assert np.array_equal(x, again)


def test_a_refit_adds_the_validation_writers_never_the_test_writers(tmp_path, monkeypatch):
    """`--writers train+val`: the training and validation writers' cells, the held-out test
    writers' never; its examples are cached apart from the usual run's."""
    from model import dataset
    from model.data import load_kensanata

    try:
        train, val, both, test = (load_kensanata(s) for s in ("train", "val", "train+val",
                                                               "test"))
    except DataError:
        pytest.skip("kensanata not available (set KENSANATA_PATH)")
    assert set(both.writers) == set(train.writers) | set(val.writers)
    assert len(both.files) == len(train.files) + len(val.files)
    assert not set(both.writers) & set(test.writers)
    with pytest.raises(ValueError, match="split must be"):
        load_kensanata("train+test")
    monkeypatch.setattr(dataset, "CACHE", tmp_path)
    x, _ = dataset.training_examples(5, 0.004, str(SAMPLE))
    refit, _ = dataset.training_examples(5, 0.004, str(SAMPLE), writers="train+val")
    assert len(list(tmp_path.glob("train-*.npz"))) == 2 and not np.array_equal(x, refit)
