"""/retrain in process: the progress lines of the training child become throttled edits of one
message, and a new model that ties with the serving one is promoted ("not worse"). The child
is the real `python -m model.train`; the bot is bot.app's Application in the test's loop."""

from __future__ import annotations

import asyncio
import io
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
    async with running_bot(api, tmp_path / "data", mnist_path=tie_data) as app:
        started = await ask_async(api, ADMIN_ID,
                                  lambda: api.send_command(ADMIN_ID, "retrain", "1"))
        assert started.text.startswith("🏋️ Retraining started on tie.npz + 0 feedback samples.")
        result = await api.wait_message(
            ADMIN_ID, lambda c: c.method == "sendMessage" and c.time > started.time,
            timeout=RETRAIN_S)
        assert re.fullmatch(
            r"✅ v2 is now serving \(not worse on the tie\.npz test split \(10 images\): "
            r"new 10\.00%, v1 10\.00% \(training report: 10\.00%\)\)\.", result.text), result.text
        assert app.bot_data.model.version == 2  # hot swap
        active = app.bot_data.services.registry.active()
        assert active is not None and active.version == 2 and active.test_accuracy == 0.1
        stats = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"),
                                timeout=REPLY_S)
        assert stats.text.startswith("Model v2 · MNIST test accuracy 10.00% · ")
