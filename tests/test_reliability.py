"""Reliability: the real bot (``python -m bot``) against the Bot API stand-in, with faults.

Bot API faults (429, 5xx, slow downloads, the server gone for 10 s), crashes (SIGKILL during
feedback presses, a killed training run, a kill at every step of a model promotion) and abuse
(a flooding user, forged callback data, admin impersonation, odd text and arguments).
The stand-in runs in a thread of the test process; the bot is a separate OS process.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bot import replies
from bot.i18n import translator
from bot.models import RELEASE_VERSION, ModelRegistry
from bot.storage import Storage
from model import RELEASE_DIR
from tests.support import BotApiStandIn, BotProcess, Call
from tests.support.conversation import REPLY_S, ask, buttons, reading
from tests.support.pictures import digit_photo

ADMIN = 900_001
ADMIN_USERNAME = "boss"
EN = translator("en")
REFUSED = "Sorry, /{command} is only for the bot's admins."

pytestmark = pytest.mark.timeout(180)


# --------------------------------------------------------------------------- helpers
def db_counts(db: Path) -> dict[str, int]:
    """Rows per table, but the inbox: it records every update received, forged or not."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                  if r[0] != "inbox"]
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.fixture
def api() -> Iterator[BotApiStandIn]:
    standin = BotApiStandIn(thumbnails=False)
    with standin.in_thread():
        standin.add_user(ADMIN, first_name="Ada", username=ADMIN_USERNAME)
        yield standin


@pytest.fixture
def start_bot(api: BotApiStandIn, tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start the bot (env overrides as keyword arguments); stopped and log-checked after."""
    bots: list[BotProcess] = []

    def start(**env: str) -> BotProcess:
        bot = BotProcess(api, tmp_path / "data", ADMIN_IDS=str(ADMIN), **env).start()
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop_and_check_log()


def photo_reply(api: BotApiStandIn, user: int, index: int) -> tuple[Call, int]:
    """Send MNIST test digit ``index`` as a photo; the bot's reply to it and the true label."""
    image, label = digit_photo(index)
    mid = api.send_photo(user, image)
    return api.run(api.wait_reply(user, mid, timeout=REPLY_S)), label


# --------------------------------------------------------------------------- promotion
def _copy_release(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    for file in RELEASE_DIR.iterdir():
        if file.is_file():
            shutil.copyfile(file, run_dir / file.name)


def _install_killed_at(db: Path, models_dir: Path, run_dir: Path, kill_at: int) -> int:
    """Fork; the child promotes ``run_dir`` and SIGKILLs itself before step ``kill_at``.

    Steps are every fsync, the rename and every SQL statement of ModelRegistry.install.
    Returns the number of steps the child saw (it finishes when kill_at is beyond them).
    """
    read_fd, write_fd = os.pipe()
    # the parent's dead Recognizers are freed here, not in the child: a LiteRT interpreter's
    # thread pool does not survive fork, and freeing it there crashes the child (SIGSEGV)
    gc.collect()
    pid = os.fork()
    if pid == 0:  # child: no pytest code runs here, it exits or is killed
        try:
            os.close(read_fd)
            import bot.models as models

            steps = 0

            def step() -> None:
                nonlocal steps
                steps += 1
                if steps == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            storage = Storage(db)
            registry = ModelRegistry(storage, models_dir, RELEASE_DIR)
            real_fsync, real_replace, real_db = models._fsync, models.os.replace, storage._db

            class KillingConnection:
                def execute(self, *args: object) -> sqlite3.Cursor:
                    step()
                    return real_db.execute(*args)  # type: ignore[arg-type]

                def __getattr__(self, name: str) -> object:
                    return getattr(real_db, name)

            models._fsync = lambda path: (step(), real_fsync(path))[1]  # type: ignore[assignment]
            models.os.replace = lambda a, b: (step(), real_replace(a, b))[1]  # type: ignore[assignment]
            storage._db = KillingConnection()  # type: ignore[assignment]
            registry.install(run_dir, 0.999, activate=True, note="kill test")
            os.write(write_fd, str(steps).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        seen = pipe.read()
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return kill_at
    return int(seen or 0)


def test_kill_at_every_step_of_promotion_leaves_old_or_new_model(tmp_path: Path) -> None:
    """A SIGKILL before each step of promotion: on restart one complete model serves."""
    from model.recognize import CLASSES, Recognizer

    db, models_dir = tmp_path / "digitbot.sqlite3", tmp_path / "models"
    storage = Storage(db)
    registry = ModelRegistry(storage, models_dir, RELEASE_DIR)
    registry.recover()
    storage.close()
    release_bytes = (RELEASE_DIR / "model.tflite").read_bytes()
    outcomes: set[int] = set()
    kill_at, total_steps = 1, None
    while total_steps is None or kill_at <= total_steps:
        run_dir = models_dir / f".training-kill{kill_at}"
        _copy_release(run_dir)
        seen = _install_killed_at(db, models_dir, run_dir, kill_at)
        if seen < kill_at:  # ran to completion: every step has been covered
            total_steps = seen
        # "restart": what the bot does at start, then the invariants
        storage = Storage(db)
        registry = ModelRegistry(storage, models_dir, RELEASE_DIR)
        registry.recover()
        versions = registry.versions()
        active = [v for v in versions if v.active]
        assert len(active) == 1, f"kill at step {kill_at}: {len(active)} active versions"
        (current,) = active
        model_file = current.path / "model.tflite"
        assert model_file.read_bytes() == release_bytes, f"kill at step {kill_at}: torn model"
        blank = np.zeros((1, 28, 28), np.uint8)
        assert Recognizer(model_file).classify(blank).shape == (1, CLASSES)
        on_disk = sorted(p.name for p in models_dir.iterdir())
        assert on_disk == sorted(str(v.version) for v in versions
                                 if v.version != RELEASE_VERSION), on_disk
        (check,) = storage._db.execute("PRAGMA integrity_check").fetchone()
        assert check == "ok"
        outcomes.add(current.version)
        storage.close()
        kill_at += 1
    assert total_steps is not None and total_steps >= 5
    # both outcomes happened: killed early -> the old version, late -> the new one
    assert RELEASE_VERSION in outcomes and len(outcomes) >= 2


# --------------------------------------------------------------------------- Bot API faults
def test_429_on_send_is_retried_after_retry_after(api: BotApiStandIn, start_bot) -> None:
    start_bot()
    api.fail("sendMessage", status=429, retry_after=1)
    reply = ask(api, 501, lambda: api.send_command(501, "help"))
    attempts = [c for c in api.calls_to("sendMessage", ok_only=False) if c.chat_id == 501]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].time - attempts[0].time >= 1.0  # retry_after honoured
    assert reply is attempts[1] and reply.text == replies.help_text(EN)


def test_5xx_and_slow_getfile_are_survived(api: BotApiStandIn, start_bot) -> None:
    start_bot()
    user = 502
    api.fail("sendMessage", status=500)
    api.fail("sendPhoto", status=502)
    first, label = photo_reply(api, user, 0)
    assert reading(first) == str(label)
    api.delay("getFile", 3.0)
    started = time.monotonic()
    slow, label = photo_reply(api, user, 1)
    assert reading(slow) == str(label) and time.monotonic() - started >= 3.0
    api.delay("download", 3.0)
    slow_download, label = photo_reply(api, user, 2)
    assert reading(slow_download) == str(label)
    api.delay("download", 12.0)  # longer than the HTTP read timeout: the download fails
    stuck, label = photo_reply(api, user, 3)  # ... and is retried (bot/retry.py)
    assert reading(stuck) == str(label)
    held, retried = api.calls_to("download", ok_only=False)[-2:]
    assert retried.ok and retried.time - held.time >= 4.5  # after the 5 s read timeout
    for index in (4, 5):  # and the next photos are answered as usual
        reply, label = photo_reply(api, user, index)
        assert reading(reply) == str(label)
    statuses = {c.status for c in api.calls_to("sendMessage", "sendPhoto", ok_only=False)}
    assert {500, 200} <= statuses


def test_bot_api_gone_for_10s_then_back(api: BotApiStandIn, start_bot) -> None:
    bot = start_bot()
    before, label = photo_reply(api, 503, 5)
    assert reading(before) == str(label)
    asked = []
    api.run(api.go_down())
    went_down = time.monotonic()
    try:
        for i, user in enumerate((503, 504, 505)):  # users write while the server is away
            image, label = digit_photo(10 + i)
            asked.append((user, api.send_photo(user, image), label))
        asked.append((506, api.send_command(506, "start"), None))
        time.sleep(10)
    finally:
        api.run(api.come_back())
    assert bot.alive()
    for user, mid, label in asked:
        if label is None:  # the command
            reply = api.run(api.wait_reply(user, mid, timeout=40))
            assert reply.text == replies.help_text(EN)
        else:
            reply = api.run(api.wait_reply(user, mid, timeout=40))
            assert reading(reply) == str(label)
    back_after = reply.time - went_down
    assert back_after < 10 + 15, f"answers came {back_after:.1f} s after the outage began"
    polls = [c for c in api.calls_to("getUpdates") if c.time > went_down]
    assert polls, "polling did not resume"


# --------------------------------------------------------------------------- crashes
def test_sigkill_during_feedback_presses_keeps_every_acknowledged_correction(
    api: BotApiStandIn, start_bot, tmp_path: Path
) -> None:
    bot = start_bot(RATE_LIMIT="0")
    users = list(range(600, 640))
    sent = {user: api.send_photo(user, digit_photo(i)[0]) for i, user in enumerate(users)}
    presses = []  # (user, bot message id, callback data)
    for user, mid in sent.items():
        reply = api.run(api.wait_reply(user, mid, timeout=REPLY_S))
        confirm = buttons(reply)[0]  # "fb:<prediction>:<reading>"
        prediction, read = confirm.split(":")[1:]
        correction = (int(read) + 1) % 10
        presses.append((user, reply.result["message_id"], f"fb:{prediction}:{correction}"))

    queries: dict[str, str] = {}  # query id -> data
    acknowledged_before_kill = None
    for user, message_id, data in presses:
        queries[api.press(user, message_id, data)] = data
        time.sleep(0.01)
        if acknowledged_before_kill is None and len(api.answered_callbacks) >= 8:
            bot.kill()
            acknowledged_before_kill = set(api.answered_callbacks)
    if acknowledged_before_kill is None:
        bot.kill()
        acknowledged_before_kill = set(api.answered_callbacks)
    assert 0 < len(acknowledged_before_kill) < len(presses), "the kill was not mid-stream"
    db = tmp_path / "data" / "digitbot.sqlite3"
    with sqlite3.connect(db) as con:  # what the killed process left
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = set(con.execute("SELECT prediction_id, label FROM feedback"))
    for query_id in acknowledged_before_kill:
        prediction, label = queries[query_id].split(":")[1:]
        assert (int(prediction), int(label)) in stored, f"acknowledged {queries[query_id]} lost"
        assert api.answered_callbacks[query_id].params["text"] == (
            f"✏️ Corrected to {label} — thank you, I'll learn from it.")

    # Restart. Presses the dead bot never fetched are delivered again by Telegram; the ones
    # it had fetched but not answered wait in its inbox: every press is answered, none has
    # to be pressed again.
    restarted = start_bot(RATE_LIMIT="0")
    for query_id in queries:
        api.run(api.wait_callback_answer(query_id, timeout=REPLY_S))
    assert restarted.stop() == 0
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = con.execute("SELECT prediction_id, label FROM feedback").fetchall()
    expected = {tuple(int(x) for x in data.split(":")[1:]) for data in queries.values()}
    assert sorted(rows) == sorted(expected)  # every correction exactly once, none invented


def test_killed_training_keeps_the_model_serving_and_next_retrain_works(
    api: BotApiStandIn, start_bot
) -> None:
    bot = start_bot()
    started = time.monotonic()
    api.send_command(ADMIN, "retrain", "30")
    progress = api.run(api.wait_message(
        ADMIN, lambda c: "epoch 1/30" in c.text, timeout=90, after=started))
    assert progress.method == "editMessageText"
    (child,) = bot.training_children()
    child.kill()  # mid-training: 29 epochs to go
    report = api.run(api.wait_message(
        ADMIN, lambda c: c.method == "sendMessage" and "❌" in c.text, timeout=REPLY_S,
        after=progress.time))
    assert report.text.startswith("❌ Retraining failed (killed by signal 9)"), report.text
    assert report.text.endswith("v1 keeps serving."), report.text
    reply, label = photo_reply(api, 701, 20)  # the current model still answers
    assert reading(reply) == str(label) and bot.alive()
    models = ask(api, ADMIN, lambda: api.send_command(ADMIN, "models"))
    assert re.fullmatch(r"Model versions:\nv1 · \S+ · \S* \(release\) ← serving", models.text), (
        models.text)

    again = time.monotonic()
    api.send_command(ADMIN, "retrain", "1")
    result = api.run(api.wait_message(
        ADMIN, lambda c: c.method == "sendMessage" and bool(re.search(r"now serving|Kept", c.text)),
        timeout=90, after=again))
    assert "v2" in result.text
    assert not bot.training_children()


# --------------------------------------------------------------------------- abuse
def test_a_flood_of_100_photos_does_not_starve_others(api: BotApiStandIn, start_bot) -> None:
    from model.recognize import Recognizer

    start_bot(RATE_LIMIT="0")  # the bot's own fairness, not Telegram's per-chat pacing
    flooder, other = 801, 802
    recognizer = Recognizer()
    photos = [digit_photo(i)[0] for i in range(100)]
    expected = [recognizer.recognize(p).text or None for p in photos]  # what each must read
    flood = [api.send_photo(flooder, p) for p in photos]  # all queued at once
    image, label = digit_photo(150)
    theirs = api.send_photo(other, image)  # sent after the whole flood
    reply = api.run(api.wait_reply(other, theirs, timeout=REPLY_S))
    assert reading(reply) == str(label)
    answers = [api.run(api.wait_reply(flooder, mid, timeout=60)) for mid in flood]
    # nothing lost or mixed up: each photo got its own reading, exactly once
    assert [reading(a) for a in answers] == expected
    assert all(len(api.replies_to(flooder, mid)) == 1 for mid in flood)
    # the other user was not served last: well before the flood's 100th answer
    ahead = sum(a.time < reply.time for a in answers)
    assert ahead < 20, f"the other user waited behind {ahead} of the flood's answers"
    notes = [c for c in api.messages_to(flooder) if c.reply_to is None]
    assert notes and all(n.text == replies.queued(EN, 3) for n in notes), notes
    assert len(notes) <= 3, notes  # once per burst, not once per photo


def test_forged_callback_data_is_rejected_without_writing(
    api: BotApiStandIn, start_bot, tmp_path: Path
) -> None:
    start_bot()
    alice, mallory = 811, 812
    reply_a, _ = photo_reply(api, alice, 30)
    reply_m, _ = photo_reply(api, mallory, 31)
    second_a, _ = photo_reply(api, alice, 32)
    pid_a = int(buttons(reply_a)[0].split(":")[1])
    msg_a, msg_m = reply_a.result["message_id"], reply_m.result["message_id"]
    db = tmp_path / "data" / "digitbot.sqlite3"
    before = db_counts(db)
    forgeries = [
        (alice, msg_a, "junk"),
        (alice, msg_a, "fb:1:12"),  # out-of-range digit
        (alice, msg_a, f"fb:{pid_a}:-1"),
        (alice, msg_a, f"fb:{pid_a}:3:extra"),
        (alice, msg_a, f"fb:{pid_a}"),
        (alice, msg_a, "fb:999999999:3"),  # no such prediction
        (alice, msg_a, f"fb:0{pid_a}:3"),
        (alice, msg_a, "fb:" + "9" * 60),  # Telegram allows up to 64 bytes
        (alice, second_a.result["message_id"], f"fb:{pid_a}:3"),  # another message's button
        (mallory, msg_m, f"fb:{pid_a}:3"),  # another user's prediction on one's own message
        (mallory, msg_a, f"fb:{pid_a}:3"),  # pressed "on" a message of another chat
        (alice, msg_a, "fb:١:٣"),  # Arabic-Indic digits
    ]
    for user, message_id, data in forgeries:
        query_id = api.press(user, message_id, data, chat_id=alice if message_id == msg_a
                             else None)
        answer = api.run(api.wait_callback_answer(query_id, timeout=REPLY_S))
        assert answer.params.get("text") in (  # the user is told why
            "That button isn't one of mine.", "This button doesn't belong to that reading."), data
    assert db_counts(db) == before
    assert api.messages_to(alice)[-1] is second_a  # and nothing was edited or sent
    assert not [c for c in api.calls_to("editMessageText", "editMessageCaption")]
    genuine = api.press(alice, msg_a, f"fb:{pid_a}:3")  # the real button still works
    api.run(api.wait_callback_answer(genuine, timeout=REPLY_S))
    assert db_counts(db)["feedback"] == before["feedback"] + 1


def test_admin_commands_check_the_numeric_id_only(api: BotApiStandIn, start_bot,
                                                  tmp_path: Path) -> None:
    bot = start_bot()
    namesake, called_admin = 821, 822
    api.add_user(namesake, first_name="Ada", username=ADMIN_USERNAME)
    api.add_user(called_admin, first_name="admin", username="admin")
    db = tmp_path / "data" / "digitbot.sqlite3"
    before = db_counts(db)
    for user in (namesake, called_admin):
        for command, args in (("retrain", "1"), ("retrain", ""), ("models", ""),
                              ("rollback", "")):
            answer = ask(api, user, lambda u=user, c=command, a=args: api.send_command(u, c, a))
            assert answer.text == REFUSED.format(command=command), answer.text
    time.sleep(1.0)
    assert not bot.training_children() and db_counts(db) == before
    assert not api.messages_to(ADMIN)  # the real admin heard nothing about it
    models = ask(api, ADMIN, lambda: api.send_command(ADMIN, "models")).text
    assert models.startswith("Model versions:\nv1 · ")


def test_odd_text_and_junk_arguments_get_clear_answers(api: BotApiStandIn, start_bot) -> None:
    bot = start_bot()
    user = 831
    image, label = digit_photo(40)
    caption = ("🔢 " + "مرحبا بالعالم " * 80)[:1024]  # Telegram's longest caption, RTL + emoji
    mid = api.send_photo(user, image, caption=caption)
    assert reading(api.run(api.wait_reply(user, mid, timeout=REPLY_S))) == str(label)
    for text, expected in (
        ("👋🏽 שלום עולם ‏123‏", replies.TEXT_ONLY), ("x" * 4096, replies.TEXT_ONLY),
        ("\u200f\u202e\u0000", replies.TEXT_ONLY), ("/start junk ✨", replies.help_text(EN)),
        ("/stats extra args", "Model v1 · MNIST test accuracy "),
        ("/help@digitbot_test_bot", replies.help_text(EN)),
        ("/nosuchcommand 1 2 3", replies.unknown_command(EN, "/nosuchcommand")),
    ):
        answer = ask(api, user, lambda t=text: api.send_text(user, t))
        assert answer.text.startswith(expected), (text, answer.text)
    for args, needle in (("abc", "can't read"), ("100000", "out of range"), ("-1", "can't read"),
                         ("0", "out of range"), ("1 2", "can't read"),
                         ("9" * 200, "can't read")):
        answer = ask(api, ADMIN, lambda a=args: api.send_command(ADMIN, "retrain", a))
        assert needle in answer.text and "Usage: /retrain" in answer.text, (args, answer.text)
    time.sleep(0.5)
    assert not bot.training_children() and bot.alive()
    assert not [c for c in api.calls if c.status and not c.ok]  # every answer was valid
