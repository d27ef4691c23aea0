"""/retrain in process: the progress lines of the training child become throttled edits of one
message, and a new model that ties with the serving one is promoted ("not worse"). The child
is the real `python -m model.train`; the bot is bot.app's Application in the test's loop."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from telegram import Bot

from bot.models import ModelRegistry
from bot.retrain import Retrainer
from bot.storage import Storage
from tests.support import ADMIN_ID, SAMPLE, BotApiStandIn
from tests.support.conversation import REPLY_S, ask_async
from tests.support.in_process import bot_settings, running_bot

RETRAIN_S = 200  # TensorFlow's start in the child dominates; ~15-40 s on a quiet machine


def progress(epoch: int, epochs: int, val: float) -> bytes:
    return f'PROGRESS {{"epoch": {epoch}, "epochs": {epochs}, "val_accuracy": {val}}}\n'.encode()


async def test_progress_lines_become_throttled_edits_of_one_message(
    api: BotApiStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bot_settings(api, tmp_path / "data", retrain_edit_interval_s=60)
    storage = Storage(settings.db_path)
    registry = ModelRegistry(storage, settings.models_dir, settings.release_model_dir)
    retrainer = Retrainer(settings, registry, serving=lambda: registry.load(registry.versions()[0]),
                          swap=lambda model: None)  # only the progress part runs here
    api.add_user(ADMIN_ID)
    stream = asyncio.StreamReader()
    for line in (b"Epoch 1/3 - loss: 0.3\n", progress(1, 3, 0.912), b"PROGRESS {not json\n",
                 b'PROGRESS {"epoch": 2}\n', progress(2, 3, 0.95), progress(3, 3, 0.9675)):
        stream.feed_data(line)
    stream.feed_eof()
    log = io.StringIO()
    async with Bot(api.token, base_url=api.base_url) as bot:
        message = await bot.send_message(ADMIN_ID, "🏋️ Retraining started")
        await retrainer._follow(stream, bot, ADMIN_ID, message.message_id, log)
    storage.close()
    edits = [c.text for c in api.calls_to("editMessageText")]
    # epoch 2 came within the edit interval: skipped; the last epoch is always shown
    assert edits == ["🏋️ Retraining: epoch 1/3, validation accuracy 91.20%",
                     "🏋️ Retraining: epoch 3/3, validation accuracy 96.75%"]
    assert log.getvalue().startswith("Epoch 1/3 - loss: 0.3\nPROGRESS ")  # all of it logged
    unreadable = [r.getMessage() for r in caplog.records if "Unreadable progress" in r.message]
    assert len(unreadable) == 2


@pytest.fixture
def tie_data(tmp_path: Path) -> Path:
    """The sample's training images, and a test split on which every model scores exactly
    10%: one image ten times, labelled 0 to 9 (a model gives it one label, right once)."""
    with np.load(SAMPLE) as sample:
        x_train, y_train, x_test = sample["x_train"], sample["y_train"], sample["x_test"]
    path = tmp_path / "tie.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=np.repeat(x_test[:1], 10, axis=0),
             y_test=np.arange(10))
    return path


@pytest.mark.timeout(300)
async def test_a_model_that_ties_is_promoted_as_not_worse(api: BotApiStandIn, tmp_path: Path,
                                                          tie_data: Path) -> None:
    # MNIST's tie alone decides: no real handwriting for the gate here
    async with running_bot(api, tmp_path / "data", mnist_path=tie_data,
                           retrain_eval_cells=0) as app:
        started = await ask_async(api, ADMIN_ID,
                                  lambda: api.send_command(ADMIN_ID, "retrain", "1"))
        assert started.text.startswith("🏋️ Retraining started on tie.npz + 0 feedback samples.")
        result = await api.wait_message(
            ADMIN_ID, lambda c: c.method == "sendMessage" and c.time > started.time,
            timeout=RETRAIN_S)
        assert re.fullmatch(
            r"✅ v2 is now serving: not worse on held-out data\.\n• MNIST test split of tie\.npz "
            r"\(10\): new 10\.00%, v1 10\.00%\n\(the training's own report: \d+\.\d\d% on "
            r"MNIST's test split\)", result.text), result.text
        assert app.bot_data.model.version == 2  # hot swap
        active = app.bot_data.services.registry.active()
        assert active is not None and active.version == 2 and active.test_accuracy == 0.1
        stats = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"),
                                timeout=REPLY_S)
        assert stats.text.startswith("Model v2 · MNIST test accuracy ")


def test_the_gate_scores_both_models_on_every_held_out_set(tmp_path: Path) -> None:
    """MNIST's test split, real handwriting of held-out writers (as scanned) and held-out
    corrections: each scored, each must not get worse; /models shows the scores."""
    from bot import gate
    from bot.replies import models_text
    from bot.storage import ModelVersion
    from model import RELEASE_DIR

    with np.load(SAMPLE) as sample:
        x, y = sample["x_test"][:40], sample["y_test"][:40]
    held = gate.load_held_out(SAMPLE, 20, (x[:10], y[:10]))
    assert len(held.mnist[1]) == 200 and len(held.writers) == 20 and len(held.corrections[1]) == 10
    scores = gate.score(RELEASE_DIR / "model.tflite", held)
    assert [s.name for s in scores] == ["mnist", "writers", "corrections"]
    assert [s.n for s in scores] == [200, 20, 10]
    assert scores[0].accuracy >= 0.95 and scores[1].accuracy >= 0.8
    worse = [gate.Score(s.name, s.n, s.accuracy - 0.02) for s in scores]
    assert gate.not_worse(scores, scores, 0.0) and not gate.not_worse(worse, scores, 0.0)
    assert gate.not_worse(worse, scores, 0.05)
    text = gate.describe(worse, scores, held, 1)
    assert text.splitlines()[1].startswith("• real handwriting of held-out writers (20): new ")
    # no kensanata, no corrections: MNIST alone
    bare = gate.load_held_out(SAMPLE, 20, (x[:0], y[:0]), tmp_path / "nowhere")
    assert [s.name for s in gate.score(RELEASE_DIR / "model.tflite", bare)] == ["mnist"]
    version = ModelVersion(2, tmp_path, 0.99, "2026-12-01", None, True, None,
                           json.loads(gate.to_json(scores)))
    assert "held out: MNIST" in models_text([version])


@pytest.mark.timeout(300)
async def test_retrain_fine_tunes_the_serving_model_by_default(api: BotApiStandIn,
                                                               tmp_path: Path) -> None:
    """RETRAIN_FROM=serving (the default): the child starts from the serving version's
    model.keras, so one short epoch on the sample reads the held-out sets as the release does
    (a new model from one epoch on 450 images reads far worse: test_bot.py's "kept" case)."""
    from model import RELEASE_DIR

    data = tmp_path / "data"
    async with running_bot(api, data, retrain_from="serving"):
        started = await ask_async(api, ADMIN_ID,
                                  lambda: api.send_command(ADMIN_ID, "retrain", "1"))
        assert "v1 keeps serving meanwhile; fine-tuning v1's weights." in started.text
        result = await api.wait_message(
            ADMIN_ID, lambda c: c.method == "sendMessage" and c.time > started.time,
            timeout=RETRAIN_S)
    figures = re.findall(r"\((\d+)\): new (\d+\.\d\d)%, v1 (\d+\.\d\d)%", result.text)
    assert len(figures) == 2, result.text  # MNIST's test split and the held-out writers
    for n, new, old in figures:  # within two items of the release on each
        assert abs(float(new) - float(old)) <= 200 / int(n) + 0.01, result.text
    metrics = json.loads((data / "models" / "2" / "metrics.json").read_text())
    assert Path(metrics["init"]) == RELEASE_DIR.resolve() and metrics["epochs_run"] == 1
