"""/retrain off the serving cores: RETRAIN_COMMAND (training elsewhere), its contract, the low
CPU priority and the thread cap, with the real bot against the Bot API stand-in."""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.retrain import training_command
from tests.support import ADMIN_ID, ROOT, SAMPLE, BotApiStandIn, BotProcess
from tests.support.conversation import ask
from tests.support.web import free_port, scrape

pytestmark = pytest.mark.timeout(180)

REPLY_S = 60


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BotApiStandIn,
                                                                         BotProcess, Path, int]]:
    control = tmp_path_factory.mktemp("control")
    script = ROOT / "tests" / "support" / "remote_trainer.py"
    command = f"exec {shlex.join([sys.executable, str(script), str(control)])}"
    port = free_port()
    with BotApiStandIn().in_thread() as api:
        bot = BotProcess(api, tmp_path_factory.mktemp("remote") / "data", RETRAIN_COMMAND=command,
                         RETRAIN_NICE="7", METRICS_PORT=str(port)).start()
        try:
            yield api, bot, control, port
        finally:
            bot.stop_and_check_log()


def retrain(api: BotApiStandIn, epochs: str) -> tuple[str, list[str]]:
    """/retrain EPOCHS as the admin: the final report and the progress edits."""
    started = time.monotonic()
    ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", epochs))
    report = api.run(api.wait_message(
        ADMIN_ID, lambda c: c.method == "sendMessage" and "meanwhile" not in c.text,
        timeout=REPLY_S, after=started))
    edits = [c.text for c in api.calls_to("editMessageText")
             if c.chat_id == ADMIN_ID and c.time >= started]
    return report.text, edits


def test_retrain_command_trains_elsewhere_and_its_result_is_promoted(remote) -> None:
    api, bot, control, port = remote
    (control / "behaviour").write_text("ok")
    report, edits = retrain(api, "2")
    assert re.search(r"v2 is now serving \(not worse on the mnist_sample.npz test split "
                     r"\(200 images\): new (\d+\.\d\d%), v1 \1", report), report
    assert any("epoch 2/2, validation accuracy 99.00%" in e for e in edits), edits
    seen = json.loads((control / "seen.json").read_text())
    env = seen["env"]
    assert seen["nice"] == 7  # RETRAIN_NICE
    assert re.fullmatch(re.escape(str(bot.data_dir.resolve())) + r"/models/\.training-.+",
                        env["DIGITBOT_RUN_DIR"])
    assert env["DIGITBOT_DATA"] == str(SAMPLE) and env["DIGITBOT_EPOCHS"] == "2"
    assert env["DIGITBOT_EXTRA"] == "" and env["DIGITBOT_THREADS"] == "1"
    assert "BOT_TOKEN" not in env and api.token.split(":")[1] not in json.dumps(env)
    assert (bot.data_dir / "models" / "2" / "model.tflite").is_file()
    stats = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"))
    assert "Model v2 ·" in stats.text
    samples = scrape(port)
    assert samples['digitbot_retrain_runs_total{outcome="promoted"}'] == 1
    assert samples["digitbot_model_version"] == 2


def test_retrain_command_failures_are_reported_and_serving_goes_on(remote) -> None:
    api, bot, control, port = remote
    (control / "behaviour").write_text("fail")
    report, _ = retrain(api, "1")
    assert "Retraining failed (exit code 3): remote trainer: the GPU host is unreachable" in \
        report and "keeps serving" in report
    (control / "behaviour").write_text("no-model")
    report, _ = retrain(api, "1")
    assert "ended without writing model.tflite" in report and "keeps serving" in report
    assert not list((bot.data_dir / "models").glob(".training-*"))
    assert scrape(port)['digitbot_retrain_runs_total{outcome="failed"}'] == 2
    assert bot.alive()


def test_the_local_training_command_is_capped_and_gets_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:SECRET")
    monkeypatch.setenv("WEBHOOK_SECRET", "hook-secret")
    settings = Settings(_env_file=None, retrain_threads=2)
    extra = tmp_path / "corrections.npz"
    cmd, env = training_command(settings, tmp_path / "run", SAMPLE, extra, 4)
    assert cmd[:3] == [sys.executable, "-m", "model.train"]
    assert cmd[3:] == ["--data", str(SAMPLE), "--out", str(tmp_path / "run"), "--epochs", "4",
                       "--extra", str(extra), "--threads", "2"]
    assert "BOT_TOKEN" not in env and "WEBHOOK_SECRET" not in env
    assert env["DIGITBOT_EPOCHS"] == "4" and env["DIGITBOT_THREADS"] == "2"
    uncapped = Settings(_env_file=None, retrain_threads=0)
    cmd, env = training_command(uncapped, tmp_path / "run", SAMPLE, None, None)
    assert "--threads" not in cmd and "--epochs" not in cmd and "--extra" not in cmd
    assert env["DIGITBOT_EPOCHS"] == "" and env["DIGITBOT_EXTRA"] == ""
