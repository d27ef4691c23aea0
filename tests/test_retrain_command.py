"""/retrain off the serving cores: RETRAIN_COMMAND (training elsewhere), its contract, the low
CPU priority and the thread cap. The bot is bot.app's Application in the test's event loop,
against the Bot API stand-in; the command is a real child (tests/support/remote_trainer.py)
playing a trainer on another machine."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bot.app import BotApplication
from bot.config import Settings
from bot.retrain import training_command
from tests.support import ADMIN_ID, ROOT, SAMPLE, BotApiStandIn
from tests.support.conversation import ask_async
from tests.support.in_process import running_bot

pytestmark = pytest.mark.timeout(180)

REPLY_S = 60
NICE = 7


@pytest.fixture
async def remote(api: BotApiStandIn, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[BotApplication, Path]]:
    """The bot with RETRAIN_COMMAND set, and the trainer's control directory. The secrets are
    in the environment, as for `python -m bot` with a .env: none may reach the command."""
    control = tmp_path / "control"
    control.mkdir()
    script = ROOT / "tests" / "support" / "remote_trainer.py"
    command = f"exec {shlex.join([sys.executable, str(script), str(control)])}"
    monkeypatch.setenv("BOT_TOKEN", api.token)
    monkeypatch.setenv("WEBHOOK_SECRET", "hook-secret")
    async with running_bot(api, tmp_path / "data", retrain_command=command,
                           retrain_nice=NICE) as app:
        yield app, control


def retrain_runs(outcome: str) -> float:
    """digitbot_retrain_runs_total{outcome} so far in this process."""
    value = REGISTRY.get_sample_value("digitbot_retrain_runs_total", {"outcome": outcome})
    assert value is not None
    return value


async def retrain(api: BotApiStandIn, epochs: str) -> tuple[str, list[str]]:
    """/retrain EPOCHS as the admin: the final report and the progress edits."""
    started = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", epochs))
    assert started.text.startswith("🏋️ Retraining started on mnist_sample.npz + 0 feedback "
                                   "samples. v"), started.text
    report = await api.wait_message(
        ADMIN_ID, lambda c: c.method == "sendMessage" and c.time > started.time, timeout=REPLY_S)
    edits = [c.text for c in api.calls_to("editMessageText")
             if c.chat_id == ADMIN_ID and c.time >= started.time]
    return report.text, edits


async def test_retrain_command_trains_elsewhere_and_its_result_is_promoted(
    api: BotApiStandIn, remote: tuple[BotApplication, Path]
) -> None:
    app, control = remote
    promoted = retrain_runs("promoted")
    (control / "behaviour").write_text("ok")
    report, edits = await retrain(api, "2")
    assert re.match(r"✅ v2 is now serving: not worse on held-out data\.\n"
                    r"• MNIST test split of mnist_sample\.npz \(200\): new (\d+\.\d\d%), "
                    r"v1 \1\n• real handwriting of held-out writers \(60\): new (\d+\.\d\d%), "
                    r"v1 \2", report), report
    assert any("epoch 2/2, validation accuracy 99.00%" in e for e in edits), edits
    seen = json.loads((control / "seen.json").read_text())
    env = seen["env"]
    assert seen["nice"] == min(19, os.nice(0) + NICE)  # RETRAIN_NICE, relative to the bot's
    data_dir = app.bot_data.services.settings.data_dir
    assert re.fullmatch(re.escape(str(data_dir.resolve())) + r"/models/\.training-.+",
                        env["DIGITBOT_RUN_DIR"])
    assert env["DIGITBOT_DATA"] == str(SAMPLE) and env["DIGITBOT_EPOCHS"] == "2"
    assert env["DIGITBOT_EXTRA"] == "" and env["DIGITBOT_THREADS"] == "1"
    assert "BOT_TOKEN" not in env and "WEBHOOK_SECRET" not in env
    assert api.token.split(":")[1] not in json.dumps(env)
    assert (data_dir / "models" / "2" / "model.tflite").is_file()
    assert app.bot_data.model.version == 2  # hot swap
    stats = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"))
    assert stats.text.startswith("Model v2 · ")
    assert retrain_runs("promoted") == promoted + 1


async def test_retrain_command_failures_are_reported_and_serving_goes_on(
    api: BotApiStandIn, remote: tuple[BotApplication, Path]
) -> None:
    app, control = remote
    failed = retrain_runs("failed")
    (control / "behaviour").write_text("fail")
    report, _ = await retrain(api, "1")
    assert report == ("❌ Retraining failed (exit code 3): remote trainer: the GPU host is "
                      "unreachable. v1 keeps serving."), report
    (control / "behaviour").write_text("no-model")
    report, _ = await retrain(api, "1")
    assert report == ("❌ Retraining failed: the training ended without writing model.tflite "
                      "into its run directory. v1 keeps serving.")
    data_dir = app.bot_data.services.settings.data_dir
    assert not list((data_dir / "models").glob(".training-*"))
    assert retrain_runs("failed") == failed + 2
    assert app.bot_data.model.version == 1


def test_the_local_training_command_is_capped_and_gets_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:SECRET")
    monkeypatch.setenv("WEBHOOK_SECRET", "hook-secret")
    settings = Settings(_env_file=None, retrain_threads=2)  # type: ignore[call-arg]
    extra = tmp_path / "corrections.npz"
    cmd, env = training_command(settings, tmp_path / "run", SAMPLE, extra, 4)
    assert cmd[:3] == [sys.executable, "-m", "model.train"]
    assert cmd[3:] == ["--data", str(SAMPLE), "--out", str(tmp_path / "run"), "--epochs", "4",
                       "--extra", str(extra), "--threads", "2"]
    assert "BOT_TOKEN" not in env and "WEBHOOK_SECRET" not in env
    assert env["DIGITBOT_EPOCHS"] == "4" and env["DIGITBOT_THREADS"] == "2"
    uncapped = Settings(_env_file=None, retrain_threads=0)  # type: ignore[call-arg]
    cmd, env = training_command(uncapped, tmp_path / "run", SAMPLE, None, None)
    assert "--threads" not in cmd and "--epochs" not in cmd and "--extra" not in cmd
    assert env["DIGITBOT_EPOCHS"] == "" and env["DIGITBOT_EXTRA"] == ""
    assert "--init" not in cmd and env["DIGITBOT_INIT"] == ""
    cmd, env = training_command(uncapped, tmp_path / "run", SAMPLE, None, None, tmp_path / "v3")
    assert cmd[-2:] == ["--init", str(tmp_path / "v3")] and env["DIGITBOT_INIT"] == cmd[-1]


def test_retrain_fine_tunes_only_a_serving_model_it_can_load(tmp_path: Path) -> None:
    """RETRAIN_FROM=serving starts from the version's model.keras; without one (a version a
    RETRAIN_COMMAND left as model.tflite alone), or with RETRAIN_FROM=scratch, a new model."""
    from bot.retrain import fine_tune_base
    from model import RELEASE_DIR

    serving = Settings(_env_file=None, bot_token="123:x")  # type: ignore[call-arg]
    scratch = Settings(_env_file=None, bot_token="123:x",  # type: ignore[call-arg]
                       retrain_from="scratch")
    assert serving.retrain_from == "serving"
    assert fine_tune_base(serving, RELEASE_DIR) == RELEASE_DIR
    assert fine_tune_base(scratch, RELEASE_DIR) is None
    (tmp_path / "model.tflite").write_bytes((RELEASE_DIR / "model.tflite").read_bytes())
    assert fine_tune_base(serving, tmp_path) is None
