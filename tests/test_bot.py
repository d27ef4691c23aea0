"""The real bot (`python -m bot`, a child process) against the local Bot API stand-in: what only
a process shows. Startup (the command menu, the first answer), the settings' errors, the token
kept out of the log, /retrain in its own training process (rejected when worse, promoted with a
hot swap, rolled back) and a graceful shutdown by SIGTERM. The handlers' answers are tested in
process (tests/test_handlers.py); faults and kills in tests/test_reliability.py.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from bot import replies
from bot.i18n import translator
from tests.support import ADMIN_ID, ROOT, BotApiStandIn, BotProcess
from tests.support.conversation import REPLY_S, ask, reading
from tests.support.pictures import digit_photo

pytestmark = pytest.mark.timeout(120)

RETRAIN_S = 150  # TensorFlow's start in the child dominates; ~15-40 s on a quiet machine


def db_rows(bot: BotProcess, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(f"file:{bot.data_dir / 'digitbot.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def bot(bot_factory: Callable[..., BotProcess]) -> BotProcess:
    """The bot as shipped: Telegram's rate limits, the release model."""
    return bot_factory("main")


# --- the process ---------------------------------------------------------------------------


def test_the_process_starts_registers_its_menu_and_answers(standin: BotApiStandIn,
                                                           bot: BotProcess) -> None:
    english = translator("en")
    assert standin.commands == [c.to_dict() for c in replies.bot_commands(english)]
    reply = ask(standin, 101, lambda: standin.send_command(101, "start"))
    assert reply.text == replies.help_text(english)
    admin = ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "help"))
    assert admin.text == replies.help_text(english, admin=True)


def test_missing_token_is_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("BOT_TOKEN is not set") and "Traceback" not in done.stderr
    env |= {"BOT_TOKEN": "123:SECRET", "ADMIN_IDS": "12,@boss"}
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Invalid setting ADMIN_IDS" in done.stderr
    assert "SECRET" not in done.stderr


def test_env_example_documents_every_setting() -> None:
    from bot.config import Settings

    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_the_token_filter_redacts_messages_and_tracebacks() -> None:
    from bot.logs import TokenFilter

    token = "123:SECRET"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TokenFilter(token))
    logger = logging.getLogger("test_token_filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("POST http://api/bot%s/getMe", token)
        try:
            raise RuntimeError(f"connect to /bot{token}/sendMessage failed")
        except RuntimeError:
            logger.exception("send failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "SECRET" not in text and text.count("<token>") == 2


def test_an_error_carrying_the_request_url_is_logged_without_the_token(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    """A Bot API behind a misconfigured proxy that redirects in a loop: aiohttp gives up with
    an error that quotes the request URL, and so the token; the bot logs the failed reply as it
    retries it (bot/retry.py). The log must show `<token>` where the token was (bot/request.py
    and bot/logs.py's filter)."""
    secret = standin.token.split(":")[1]
    standin.fail("sendMessage", status=302, times=1000)
    try:
        asked = standin.send_command(501, "help")
        log = bot.wait_log("TooManyRedirects")
        log = bot.wait_log("retrying in")
    finally:
        standin.clear_faults()
    assert secret not in log
    assert re.search(r"TooManyRedirects: .*/bot<token>/sendMessage", log), log[-3000:]
    # and it lives on: the proxy fixed, the retried reply arrives
    reply = standin.run(standin.wait_reply(501, asked, timeout=REPLY_S + 30))
    assert reply.text == replies.help_text(translator("en"))


# --- admins ----------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_retrain_that_is_worse_keeps_the_current_model(standin: BotApiStandIn,
                                                       bot: BotProcess) -> None:
    """One epoch on 450 images can't beat the release: reported with both accuracies."""
    started = time.monotonic()
    ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "retrain", "1"))
    busy = ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "retrain", "1"))
    assert "already running" in busy.text
    result = standin.run(standin.wait_message(
        ADMIN_ID, lambda c: "Kept v1" in c.text or "failed" in c.text, timeout=RETRAIN_S,
        after=started))
    assert re.search(r"Kept v1: the new model is worse on held-out data\. It is stored as v2, "
                     r"not serving\.\n• MNIST test split of mnist_sample\.npz \(200\): "
                     r"new \d+\.\d\d%, v1 \d+\.\d\d%\n• real handwriting of held-out writers "
                     r"\(60\): new \d+\.\d\d%, v1 \d+\.\d\d%", result.text), result.text
    # the feedback samples stored so far went to the training as --extra
    (samples,) = db_rows(bot, "SELECT COUNT(*) FROM feedback")[0]
    extra = list((bot.data_dir / "retrain").glob("*/corrections.npz"))
    if samples:
        assert len(extra) == 1 and np.load(extra[0])["x"].shape == (samples, 28, 28)
    progress = [c for c in standin.calls_to("editMessageText")
                if c.chat_id == ADMIN_ID and c.time > started]
    assert any("epoch 1/1, validation accuracy" in c.text for c in progress)
    versions = ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "models"))
    assert re.search(r"v1 · \S+ .*← serving", versions.text)
    assert re.search(r"v2 · \d+\.\d\d% · \d{4}-\d\d-\d\d \(retrained", versions.text)
    assert "← serving" not in versions.text.splitlines()[-1]
    stats = ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "stats"))
    assert "Model v1 ·" in stats.text
    assert bot.training_children() == []
    assert [p.name for p in (bot.data_dir / "models").iterdir()] == ["2"]


@pytest.mark.timeout(300)
def test_retrain_promotes_hot_swaps_and_rollback_returns(
    tmp_path: Path,
) -> None:
    """Promotion, hot swap and rollback. One epoch on the sample can't match the release, so
    this bot is told to accept any loss (PROMOTE_TOLERANCE=1); the default is tested above."""
    with BotApiStandIn().in_thread() as api:  # its own Bot API: one poller per server
        fresh = BotProcess(api, tmp_path / "data", PROMOTE_TOLERANCE="1").start()
        try:
            check_promotion_and_rollback(api, fresh)
        finally:
            assert fresh.stop() == 0
        assert api.token.split(":")[1] not in fresh.log()


def check_promotion_and_rollback(api: BotApiStandIn, fresh: BotProcess) -> None:
    user = 401
    started = time.monotonic()
    ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", "1"))
    image, label = digit_photo(8)  # users are answered while it trains
    during = ask(api, user, lambda: api.send_photo(user, image))
    assert during.reply_to is not None and reading(during) == str(label)
    assert fresh.training_children(), "the reply came after the training, not during it"
    result = api.run(api.wait_message(
        ADMIN_ID, lambda c: c.time > started and ("serving" in c.text or "failed" in c.text)
        and "keeps serving meanwhile" not in c.text, timeout=RETRAIN_S))
    assert re.search(r"v2 is now serving: worse on held-out data, but within PROMOTE_TOLERANCE"
                     r" \(100\.00 points\)\.\n• MNIST test split of mnist_sample\.npz \(200\): "
                     r"new \d+\.\d\d%, v1 \d+\.\d\d%", result.text), result.text

    stats = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"))
    assert "Model v2 ·" in stats.text  # hot swap, same process
    versions = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "models"))
    assert re.search(r"v2 · .*← serving\n    held out: MNIST \d+\.\d\d% \(200\), "
                     r"writers \d+\.\d\d% \(60\)", versions.text), versions.text

    back = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "rollback"))
    assert "v1 is serving (was v2)" in back.text
    stats = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"))
    assert "Model v1 ·" in stats.text
    again = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "rollback"))
    assert "Nothing to roll back to" in again.text
    assert fresh.alive() and fresh.training_children() == []


def test_graceful_shutdown_stops_the_training_and_closes_the_database(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    started = time.monotonic()
    ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "retrain", "1"))
    deadline = time.monotonic() + 30
    while not (children := bot.training_children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children, "no training process started"
    assert bot.stop() == 0  # SIGTERM
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE
                   for child in children)
    report = standin.run(standin.wait_message(
        ADMIN_ID, lambda c: "failed" in c.text and c.time > started, timeout=REPLY_S))
    assert "the bot is shutting down" in report.text and "v1 keeps serving" in report.text
    assert "Application.stop() complete" in bot.log()
    assert not list((bot.data_dir / "models").glob(".training-*"))
    db = Path(bot.data_dir / "digitbot.sqlite3")
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
