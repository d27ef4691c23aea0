"""The real bot (`python -m bot`, a child process) against the local Bot API stand-in.

The tests play users: photos of MNIST test digits written dark on white paper, a number, a
blank page, the feedback buttons (and forged ones), /stats, bad input of every kind, and the
admin commands: /retrain refused, rejected (worse) and promoted (hot swap), /models, /rollback.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from tests.botapi_standin import BotApiStandIn, Call
from tests.conftest import ADMIN_ID, ROOT, SAMPLE, BotProcess

pytestmark = pytest.mark.timeout(120)

REPLY_S = 20
RETRAIN_S = 150  # TensorFlow's start in the child dominates; ~15-40 s on a quiet machine
NUMBER = "2026"
SORRY = "something went wrong"


# --- pictures ------------------------------------------------------------------------------


@cache
def mnist_test_split() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SAMPLE) as data:
        return data["x_test"], data["y_test"]


def on_paper(crops: list[np.ndarray], side: int = 160, fmt: str = "JPEG") -> bytes:
    """MNIST crops (white on black) as dark ink on white paper, side by side."""
    ink = [255 - np.asarray(Image.fromarray(c).resize((side, side), Image.BICUBIC)) for c in crops]
    row = np.concatenate(ink, axis=1)
    page = np.full((row.shape[0] + 2 * side, row.shape[1] + 2 * side), 255, np.uint8)
    page[side:-side, side:-side] = row
    out = io.BytesIO()
    Image.fromarray(page).convert("RGB").save(out, fmt, quality=90)
    return out.getvalue()


def digit_photo(index: int) -> tuple[bytes, int]:
    """The ``index``-th sample test digit that the serving model reads right on paper: these
    tests are about the bot (bench/recognizer_bench.py measures accuracy)."""
    x, y = mnist_test_split()
    i = readable_digits()[index]
    return on_paper([x[i]]), int(y[i])


@cache
def readable_digits() -> list[int]:
    from model.recognize import Recognizer

    recognizer = Recognizer()
    x, y = mnist_test_split()
    return [i for i in range(len(y)) if recognizer.recognize(on_paper([x[i]])).text == str(y[i])]


def number_photo(text: str = NUMBER) -> bytes:
    x, y = mnist_test_split()
    readable = np.array(readable_digits())
    pick = [readable[y[readable] == int(ch)][text[:k].count(ch)] for k, ch in enumerate(text)]
    return on_paper([x[i] for i in pick])


def blank_photo() -> bytes:
    rng = np.random.default_rng(0)
    page = np.clip(rng.normal(235, 4, (600, 800)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(page).save(out, "JPEG", quality=85)
    return out.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit white PNG of width×height written row by row (tiny file, 400 Mpx)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(
        b"IEND", b"")


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(out, "PNG")
    return out.getvalue()


# --- talking to the bot ---------------------------------------------------------------------


def ask(api: BotApiStandIn, user: int, send: Callable[[], int], timeout: float = REPLY_S) -> Call:
    """Queue a user message and wait for the bot's next message to that chat about it."""
    sent_at = time.monotonic()
    mid = send()
    return api.run(api.wait_message(
        user, lambda c: c.reply_to in (None, mid), timeout=timeout, after=sent_at))


def reading(call: Call) -> str | None:
    """The first number of a reply: the bot's reading."""
    match = re.search(r"\d+", call.text)
    return match.group(0) if match else None


def buttons(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def press(api: BotApiStandIn, user: int, message_id: int, data: str, **kw: int) -> str:
    """Press a button; the text the bot answered the callback query with."""
    query = api.press(user, message_id, data, **kw)
    answer = api.run(api.wait_callback_answer(query, timeout=REPLY_S))
    return str(answer.params.get("text", ""))


def db_rows(bot: BotProcess, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(f"file:{bot.data_dir / 'digitbot.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def training_children(bot: BotProcess) -> list[psutil.Process]:
    """The bot's `python -m model.train` children still running."""
    found = []
    for child in psutil.Process(bot.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "model.train" in " ".join(
                child.cmdline()
            ):
                found.append(child)
        except psutil.Error:  # it just ended
            continue
    return found


@pytest.fixture(scope="module")
def bot(bot_factory: Callable[..., BotProcess]) -> BotProcess:
    """The bot as shipped: Telegram's rate limits, the release model."""
    return bot_factory("main")


# --- users -----------------------------------------------------------------------------------


def test_start_help_and_commands(standin: BotApiStandIn, bot: BotProcess) -> None:
    commands = {c["command"] for c in standin.commands}
    assert {"start", "help", "stats", "retrain", "models", "rollback"} <= commands
    for command in ("start", "help"):
        reply = ask(standin, 101, lambda c=command: standin.send_command(101, c))
        assert "photo" in reply.text and "/stats" in reply.text
    admin = ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "help"))
    assert "/retrain" in admin.text


def test_single_digits_are_read_with_feedback_buttons(standin: BotApiStandIn,
                                                      bot: BotProcess) -> None:
    user, right = 102, 0
    for index in range(6):
        image, label = digit_photo(index)
        mid = standin.send_photo(user, image)
        reply = standin.run(standin.wait_reply(user, mid, timeout=REPLY_S))
        right += reading(reply) == str(label)
        assert re.search(r"\d+(\.\d+)?% sure", reply.text), reply.text
        data = buttons(reply)
        assert len(data) == 11 and all(re.fullmatch(r"fb:\d+:\d", d) for d in data)
        assert data[0].endswith(f":{reading(reply)}")  # ✅ confirms the reading
    assert right >= 5, f"only {right}/6 digits read right"
    rows = db_rows(bot, "SELECT status, length(crop) FROM predictions WHERE user_id = ?", user)
    assert rows == [("ok", 28 * 28)] * 6


def test_a_number_comes_back_as_an_annotated_photo(standin: BotApiStandIn,
                                                   bot: BotProcess) -> None:
    mid = standin.send_photo(103, number_photo())
    reply = standin.run(standin.wait_reply(103, mid, timeout=REPLY_S))
    assert reply.method == "sendPhoto" and reading(reply) == NUMBER, reply
    assert buttons(reply) == []  # feedback is for single digits
    annotated = Image.open(io.BytesIO(reply.photo_bytes[0]))
    annotated.load()
    assert min(annotated.size) > 100


def test_blank_page_gets_an_explanation_and_tips(standin: BotApiStandIn,
                                                 bot: BotProcess) -> None:
    mid = standin.send_photo(104, blank_photo())
    reply = standin.run(standin.wait_reply(104, mid, timeout=REPLY_S))
    assert "couldn't find any digit" in reply.text and "Tips" in reply.text
    assert reading(reply) is None and buttons(reply) == []


def test_feedback_confirm_and_correct_are_stored_with_their_crop(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    user = 105
    replies = []
    for index in (0, 1):
        image, _ = digit_photo(index)
        mid = standin.send_photo(user, image)
        replies.append(standin.run(standin.wait_reply(user, mid, timeout=REPLY_S)))
    confirm_reply, correct_reply = replies
    confirm_data = buttons(confirm_reply)[0]
    prediction = int(confirm_data.split(":")[1])
    answer = press(standin, user, confirm_reply.result["message_id"], confirm_data)
    assert "Confirmed" in answer

    wrong = (int(reading(correct_reply)) + 1) % 10
    correct_data = f"{buttons(correct_reply)[1].rsplit(':', 1)[0]}:{wrong}"
    answer = press(standin, user, correct_reply.result["message_id"], correct_data)
    assert f"Corrected to {wrong}" in answer

    rows = db_rows(bot, "SELECT f.prediction_id, f.label, f.confirmed, f.crop, p.crop "
                        "FROM feedback f JOIN predictions p ON p.id = f.prediction_id "
                        "WHERE f.user_id = ? ORDER BY f.id", user)
    assert [(r[1], r[2]) for r in rows] == [(int(reading(confirm_reply)), 1), (wrong, 0)]
    assert rows[0][0] == prediction
    for *_, crop, predicted_crop in rows:
        assert crop == predicted_crop and len(crop) == 28 * 28
        assert np.frombuffer(crop, np.uint8).max() > 128  # a white-on-black digit, not blank
    # the reading messages were marked and lost their keyboards
    edits = [standin.run(standin.wait_message(
        user, lambda c, m=message: c.method == "editMessageText" and c.params["message_id"] == m,
        timeout=REPLY_S)) for message in (r.result["message_id"] for r in replies)]
    assert all("reply_markup" not in c.params for c in edits)
    assert "Confirmed" in edits[0].text and f"Corrected to {wrong}" in edits[1].text
    # a second press on the same reading changes nothing
    assert "Already noted" in press(standin, user, confirm_reply.result["message_id"],
                                    confirm_data)


def test_forged_callback_data_is_refused_and_writes_nothing(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    user, stranger = 106, 107
    image, _ = digit_photo(2)
    mid = standin.send_photo(user, image)
    reply = standin.run(standin.wait_reply(user, mid, timeout=REPLY_S))
    bot_mid = reply.result["message_id"]
    prediction = buttons(reply)[0].split(":")[1]
    other = ask(standin, user, lambda: standin.send_command(user, "help")).result["message_id"]
    number_mid = standin.send_photo(user, number_photo())
    number_reply = standin.run(standin.wait_reply(user, number_mid, timeout=REPLY_S))
    (number_prediction,) = db_rows(bot, "SELECT id FROM predictions WHERE user_id = ? AND "
                                        "length(reading) > 1", user)[0]
    before = db_rows(bot, "SELECT COUNT(*) FROM feedback")

    forged = [
        (user, bot_mid, "hello", {}),  # not our format
        (user, bot_mid, f"fb:{prediction}:10", {}),  # digit out of range
        (user, bot_mid, f"fb:{prediction}:-1", {}),
        (user, bot_mid, "fb:999999:3", {}),  # no such prediction
        (user, other, f"fb:{prediction}:3", {}),  # another message of the same chat
        (stranger, bot_mid, f"fb:{prediction}:3", {"chat_id": user}),  # someone else's
        (user, number_reply.result["message_id"], f"fb:{number_prediction}:2", {}),  # a number
    ]
    for presser, message_id, data, kw in forged:
        answer = press(standin, presser, message_id, data, **kw)
        assert answer and ("isn't one of mine" in answer or "doesn't belong" in answer), data
    assert db_rows(bot, "SELECT COUNT(*) FROM feedback") == before
    assert bot.alive()


def test_stats_sends_the_model_charts_with_live_figures(standin: BotApiStandIn,
                                                        bot: BotProcess) -> None:
    reply = ask(standin, 108, lambda: standin.send_command(108, "stats"))
    assert reply.method in ("sendMediaGroup", "sendPhoto")
    assert re.search(r"Model v1 · MNIST test accuracy (\d+\.\d+%|n/a) · trained \d{4}-\d\d-\d\d",
                     reply.text), reply.text
    assert re.search(r"Photos read: \d+ · users: \d+", reply.text)
    assert re.search(r"confirmed correct: (\d+\.\d% \(\d+ of \d+\)|no feedback yet)", reply.text)
    assert re.search(r"Median recognition time: \d+ ms", reply.text)
    assert reply.photo_bytes
    for png in reply.photo_bytes:
        picture = Image.open(io.BytesIO(png))
        picture.load()
        assert picture.format == "PNG" and min(picture.size) >= 200


def test_courtesy_calls_failing_cost_no_answer(standin: BotApiStandIn, bot: BotProcess) -> None:
    """A Bot API server that lacks (404) the chat action or the edit of a reading still gets
    the /stats charts, and a feedback press is still stored and acknowledged."""
    standin.fail("sendChatAction", status=404)
    reply = ask(standin, 109, lambda: standin.send_command(109, "stats"))
    assert reply.method in ("sendMediaGroup", "sendPhoto") and reply.photo_bytes
    image, _ = digit_photo(0)
    mid = standin.send_photo(109, image)
    reading_reply = standin.run(standin.wait_reply(109, mid, timeout=REPLY_S))
    standin.fail("editMessageText", status=404)
    assert "Confirmed" in press(standin, 109, reading_reply.result["message_id"],
                                buttons(reading_reply)[0])
    assert db_rows(bot, "SELECT confirmed FROM feedback WHERE user_id = 109") == [(1,)]
    assert bot.alive()


BAD_INPUT = {
    "plain text": lambda api, u: api.send_text(u, "hello, what can you do?"),
    "unknown command": lambda api, u: api.send_command(u, "frobnicate", "now"),
    "sticker": lambda api, u: api.send_sticker(u),
    "pdf": lambda api, u: api.send_document(u, b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "scan.pdf",
                                             "application/pdf"),
    "zip": lambda api, u: api.send_document(u, b"PK\x03\x04" + bytes(40), "digits.zip",
                                             "application/zip"),
    "corrupt jpeg photo": lambda api, u: api.send_photo(u, b"\xff\xd8\xff\xe0" + bytes(500),
                                                        width=640, height=480),
    "corrupt jpeg file": lambda api, u: api.send_document(u, digit_photo(3)[0][:300],
                                                          "photo.jpg", "image/jpeg"),
    "empty file": lambda api, u: api.send_document(u, b"", "empty.png", "image/png"),
    "20000x20000 png": lambda api, u: api.send_document(u, huge_png(), "huge.png",
                                                         "image/png"),
    "3x3 image": lambda api, u: api.send_document(u, tiny_png(), "tiny.png", "image/png"),
    "photo without a digit": lambda api, u: api.send_photo(u, blank_photo()),
}


@pytest.mark.parametrize("kind", list(BAD_INPUT))
def test_bad_input_gets_a_helpful_reply_and_the_bot_lives_on(
    standin: BotApiStandIn, bot: BotProcess, kind: str
) -> None:
    user = 200 + list(BAD_INPUT).index(kind)
    reply = ask(standin, user, lambda: BAD_INPUT[kind](standin, user))
    assert len(reply.text) > 20 and SORRY not in reply.text, reply.text
    assert buttons(reply) == []
    image, label = digit_photo(4)
    mid = standin.send_photo(user, image)
    after = standin.run(standin.wait_reply(user, mid, timeout=REPLY_S))
    assert reading(after) == str(label) and bot.alive()


def test_a_flood_of_photos_is_read_one_by_one_without_starving_others(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    flooder, other = 150, 151
    sent = [standin.send_photo(flooder, digit_photo(i)[0]) for i in range(6)]
    image, label = digit_photo(6)
    other_mid = standin.send_photo(other, image)
    other_reply = standin.run(standin.wait_reply(other, other_mid, timeout=REPLY_S))
    flood_replies = [standin.run(standin.wait_reply(flooder, mid, timeout=REPLY_S))
                     for mid in sent]
    assert reading(other_reply) == str(label)
    assert other_reply.time < flood_replies[-1].time  # not queued behind the flood
    notes = [c for c in standin.messages_to(flooder) if "one by one" in c.text]
    assert len(notes) == 1 and "Every photo will be answered" in notes[0].text
    assert len({c.reply_to for c in flood_replies}) == len(sent)  # nothing lost


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


# --- admins ----------------------------------------------------------------------------------


def test_admin_commands_refuse_other_users_and_start_nothing(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    user = 301  # not in ADMIN_IDS; even a username like the admin's wouldn't matter
    for command, args in (("retrain", "1"), ("retrain", ""), ("models", ""), ("rollback", "")):
        reply = ask(standin, user, lambda c=command, a=args: standin.send_command(user, c, a))
        assert "only for the bot's admins" in reply.text
    time.sleep(0.5)
    assert training_children(bot) == []
    assert not [p for p in (bot.data_dir / "models").iterdir()]
    assert db_rows(bot, "SELECT version, active FROM model_versions") == [(1, 1)]


@pytest.mark.parametrize(("args", "answer"), [
    ("abc", "can't read “abc” as epochs"),
    ("100000", "100000 epochs is out of range"),
    ("0", "0 epochs is out of range"),
    ("1 2", "can't read “1 2” as epochs"),
    ("²", "can't read “²” as epochs"),
])
def test_retrain_arguments_get_a_clear_answer(standin: BotApiStandIn, bot: BotProcess,
                                              args: str, answer: str) -> None:
    reply = ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "retrain", args))
    assert answer in reply.text and "1 to 50" in reply.text
    assert training_children(bot) == []


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
    assert re.search(r"Kept v1: the new model is worse on the mnist_sample.npz test split "
                     r"\(200 images\): new \d+\.\d\d%, v1 \d+\.\d\d%", result.text), result.text
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
    assert training_children(bot) == []
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
    assert training_children(fresh), "the reply came after the training, not during it"
    result = api.run(api.wait_message(
        ADMIN_ID, lambda c: c.time > started and ("serving" in c.text or "failed" in c.text)
        and "keeps serving meanwhile" not in c.text, timeout=RETRAIN_S))
    assert re.search(r"v2 is now serving: worse on the mnist_sample.npz test split "
                     r"\(200 images\): new \d+\.\d\d%, v1 \d+\.\d\d%.*within PROMOTE_TOLERANCE",
                     result.text), result.text

    stats = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"))
    assert "Model v2 ·" in stats.text  # hot swap, same process
    versions = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "models"))
    assert re.search(r"v2 · .*← serving", versions.text)

    back = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "rollback"))
    assert "v1 is serving (was v2)" in back.text
    stats = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "stats"))
    assert "Model v1 ·" in stats.text
    again = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "rollback"))
    assert "Nothing to roll back to" in again.text
    assert fresh.alive() and training_children(fresh) == []


def test_graceful_shutdown_stops_the_training_and_closes_the_database(
    standin: BotApiStandIn, bot: BotProcess
) -> None:
    started = time.monotonic()
    ask(standin, ADMIN_ID, lambda: standin.send_command(ADMIN_ID, "retrain", "1"))
    deadline = time.monotonic() + 30
    while not (children := training_children(bot)) and time.monotonic() < deadline:
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
