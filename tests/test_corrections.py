"""Numbers: readings on several lines, ✅ and ✏️ Correct under a number, the typed answer
checked against the reading's shape and stored digit by digit, /stats counting numbers, and
the next /retrain training on those digits (--extra). In process: the bot's Application polls
the stand-in in the test's loop; the /retrain child is the real `python -m model.train`."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from bot import corrections, replies
from bot.app import BotApplication
from bot.i18n import translator
from bot.storage import MIGRATIONS, Storage
from tests.support import ADMIN_ID, BotApiStandIn, Call
from tests.support.conversation import REPLY_S, ask_async, buttons, press_async, until
from tests.support.pictures import digit_photo, lines_photo, number_photo

pytestmark = pytest.mark.timeout(120)

EN = translator("en")
RETRAIN_S = 200  # TensorFlow's start in the child dominates; ~15-40 s on a quiet machine


def db_rows(app: BotApplication, sql: str, *args: object) -> list[tuple[Any, ...]]:
    path = app.bot_data.services.settings.db_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


async def number_reading(api: BotApiStandIn, user: int, image: bytes,
                         chat_id: int | None = None) -> tuple[int, Call, int]:
    """Send a photo of a number: its message id, the bot's reading, the prediction id."""
    mid = api.send_photo(user, image, chat_id=chat_id)
    reply = await api.wait_reply(user if chat_id is None else chat_id, mid, timeout=REPLY_S)
    ok, fix = buttons(reply)
    prediction = int(ok.split(":")[1])
    assert (ok, fix) == (f"nb:{prediction}:ok", f"nb:{prediction}:fix"), buttons(reply)
    return mid, reply, prediction


async def say(api: BotApiStandIn, user: int, text: str, **kw: Any) -> Call:
    """The user writes `text` (kw: chat_id=, reply_to=); the bot's reply to it."""
    mid = api.send_text(user, text, **kw)
    return await api.wait_reply(kw.get("chat_id") or user, mid, timeout=REPLY_S)


async def question(api: BotApiStandIn, chat: int, after: float) -> Call:
    """The bot's question for the right number (the message with a ForceReply)."""
    return await api.wait_message(
        chat, lambda c: "force_reply" in (c.params.get("reply_markup") or {}), after=after,
        timeout=REPLY_S)


# --- what the user types -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected", "labels"), [
    ("13\n345", [2, 3], [1, 3, 3, 4, 5]),
    ("13 345", [2, 3], [1, 3, 3, 4, 5]),  # all on one line: digit by digit
    (" 1.3 \n\n 3,4 5 ", [2, 3], [1, 3, 3, 4, 5]),  # separators and blank lines don't count
    ("١٢\n٣٤٥", [2, 3], [1, 2, 3, 4, 5]),  # Arabic-Indic digits are digits
    ("2028", [4], [2, 0, 2, 8]),
    ("133\n45", [2, 3], None),  # five digits, but not line by line
    ("1234", [2, 3], None),
    ("12\n34\n5", [2, 3], None),
    ("²³", [2], None),  # superscripts are not decimal digits
    ("hello", [4], None),
    ("", [4], None),
])
def test_the_typed_number_must_fit_the_reading(text: str, expected: list[int],
                                               labels: list[int] | None) -> None:
    assert corrections.labels_for(text, expected) == labels


def test_only_numbers_count_as_unasked_answers_in_groups() -> None:
    assert corrections.looks_like_a_number("2 028")
    assert corrections.looks_like_a_number("12\n345")
    assert not corrections.looks_like_a_number("lol 2028")
    assert not corrections.looks_like_a_number("see you at 5")
    assert not corrections.looks_like_a_number("...")


# --- readings on several lines ---------------------------------------------------------------


def boxes_by_row(jpeg: bytes) -> list[int]:
    """The annotated photo's digit boxes (hollow rectangles in the label colours, green for
    sure and orange for unsure digits), counted per row from the top."""
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    green = (np.abs(rgb - (40, 170, 40)) < 50).all(axis=2)
    orange = (np.abs(rgb - (255, 140, 0)) < 60).all(axis=2)
    count, _, stats, _ = cv2.connectedComponentsWithStats((green | orange).astype(np.uint8))
    boxes = [s for s in stats[1:] if s[cv2.CC_STAT_AREA] > 100  # not JPEG specks
             and s[cv2.CC_STAT_AREA] < 0.5 * s[cv2.CC_STAT_WIDTH] * s[cv2.CC_STAT_HEIGHT]]
    rows: list[list[int]] = []  # tops of the boxes of each row
    for top in sorted(int(s[cv2.CC_STAT_TOP]) for s in boxes):
        if rows and top - rows[-1][0] < 40:
            rows[-1].append(top)
        else:
            rows.append([top])
    return [len(row) for row in rows]


async def test_a_reading_on_two_lines_shows_one_line_each_and_boxes_every_digit(
    api: BotApiStandIn, app: BotApplication
) -> None:
    _, reply, prediction = await number_reading(api, 700, lines_photo(("12", "345")))
    assert reply.method == "sendPhoto"
    # a digit the model is less sure of adds a "Not sure — …" line before the question
    first, second, sure, digits, *unsure, ask = reply.text.splitlines()
    assert all(line.startswith("Not sure — line ") for line in unsure), unsure
    assert (first, second) == ("12", "345")
    assert re.fullmatch(r"\d+\.\d% sure", sure), sure
    assert re.fullmatch(r"digits: 1 \d+%, 2 \d+% / 3 \d+%, 4 \d+%, 5 \d+%", digits), digits
    assert ask == "Did I read it right? Tap ✅, or ✏️ Correct to type the right number."
    assert boxes_by_row(reply.photo_bytes[0]) == [2, 3]
    stored = db_rows(app, "SELECT position, line, digit, length(crop) FROM prediction_digits "
                          "WHERE prediction_id = ? ORDER BY position", prediction)
    assert stored == [(0, 0, 1, 784), (1, 0, 2, 784), (2, 1, 3, 784), (3, 1, 4, 784),
                      (4, 1, 5, 784)]
    assert db_rows(app, "SELECT reading, crop FROM predictions WHERE id = ?", prediction) == [
        ("12\n345", None)]


# --- ✏️ Correct -------------------------------------------------------------------------------


async def test_correcting_a_number_by_replying_to_the_question(api: BotApiStandIn,
                                                             app: BotApplication) -> None:
    user = 701
    photo_mid, reply, prediction = await number_reading(api, user, lines_photo(("12", "345")))
    pressed = time.monotonic()
    answer = await press_async(api, user, reply.result["message_id"], f"nb:{prediction}:fix")
    assert answer == "✏️ Reply with the right number."
    asked = await question(api, user, pressed)
    assert asked.text == replies.correction_prompt(EN, [2, 3]) == (
        "✏️ Which numbers are they? Reply to this message with the right ones, one line each "
        "as in the photo (2 digits + 3 digits).")
    assert asked.params["reply_markup"] == {"force_reply": True, "selective": True,
                                            "input_field_placeholder": "12 345"}
    assert asked.reply_to == photo_mid  # selective: aimed at whoever sent the photo

    mid = api.send_text(user, "13\n345", reply_to=asked.result["message_id"])
    thanks = await api.wait_reply(user, mid, timeout=REPLY_S)
    assert thanks.text == "✏️ Thank you! 1 digit corrected: 12 345 → 13 345. I'll learn from it."
    rows = db_rows(app, "SELECT f.position, f.label, f.confirmed, f.user_id, f.crop = d.crop "
                        "FROM feedback f JOIN prediction_digits d ON d.prediction_id = "
                        "f.prediction_id AND d.position = f.position WHERE f.prediction_id = ? "
                        "ORDER BY f.position", prediction)
    assert rows == [(0, 1, 1, user, 1), (1, 3, 0, user, 1), (2, 3, 1, user, 1),
                    (3, 4, 1, user, 1), (4, 5, 1, user, 1)]
    crops = db_rows(app, "SELECT crop FROM feedback WHERE prediction_id = ?", prediction)
    assert all(np.frombuffer(c, np.uint8).max() > 128 for (c,) in crops)  # digits, not blanks
    assert app.bot_data.services.storage.latest_correction_prompt(user, user, 0) is None
    # the reading lost its buttons; a second answer or press changes nothing
    edit = await api.wait_message(user, lambda c: c.method == "editMessageReplyMarkup",
                                  timeout=REPLY_S)
    assert edit.params["message_id"] == reply.result["message_id"]
    assert "reply_markup" not in api.bot_messages[(user, reply.result["message_id"])]
    again = await press_async(api, user, reply.result["message_id"], f"nb:{prediction}:fix")
    assert again == "Already noted — thank you!"
    late = await say(api, user, "12\n345", reply_to=asked.result["message_id"])
    assert late.text == "Already noted — thank you!"
    assert len(db_rows(app, "SELECT id FROM feedback WHERE prediction_id = ?", prediction)) == 5


async def test_a_number_that_does_not_fit_is_explained_and_the_next_message_counts(
    api: BotApiStandIn, app: BotApplication
) -> None:
    user = 702
    _, reply, prediction = await number_reading(api, user, number_photo("2026"))
    pressed = time.monotonic()
    await press_async(api, user, reply.result["message_id"], f"nb:{prediction}:fix")
    asked = await question(api, user, pressed)
    assert asked.text == ("✏️ Which number is it? Reply to this message with the right one "
                          "(4 digits).")
    for typed, got in (("202", "3 digits"), ("twenty", "no digits"),
                       ("20\n28", "2 digits + 2 digits")):
        mid = api.send_text(user, typed)  # not a reply: the open question is taken
        retry = await api.wait_reply(user, mid, timeout=REPLY_S)
        assert retry.text == (f"That doesn't fit: I need 4 digits, and your message has {got}. "
                              "Please reply again — or just send me a new photo.")
        assert retry.params["reply_markup"]["force_reply"] is True
    assert db_rows(app, "SELECT COUNT(*) FROM feedback") == [(0,)]
    thanks = await say(api, user, "2 0 2 8")
    assert thanks.text == "✏️ Thank you! 1 digit corrected: 2026 → 2028. I'll learn from it."
    assert db_rows(app, "SELECT label, confirmed FROM feedback WHERE prediction_id = ? "
                        "ORDER BY position", prediction) == [(2, 1), (0, 1), (2, 1), (8, 0)]
    after = await say(api, user, "1999")  # the question is closed
    assert after.text == replies.TEXT_ONLY


async def test_an_old_question_expires(api: BotApiStandIn, app: BotApplication) -> None:
    user = 703
    _, reply, prediction = await number_reading(api, user, number_photo("2026"))
    pressed = time.monotonic()
    await press_async(api, user, reply.result["message_id"], f"nb:{prediction}:fix")
    asked = await question(api, user, pressed)
    # the bot stores the question once it is sent (it needs the message's id): wait for it
    await until(lambda: db_rows(app, "SELECT COUNT(*) FROM correction_prompts WHERE user_id = ?",
                                user) == [(1,)])
    path = app.bot_data.services.settings.db_path
    with sqlite3.connect(path) as db:  # the question was asked 16 minutes ago
        db.execute("UPDATE correction_prompts SET created_at = created_at - ?",
                   (corrections.PROMPT_TTL_S + 60,))
    late = await say(api, user, "2028", reply_to=asked.result["message_id"])
    assert late.text == "That was a while ago — please tap ✏️ Correct under the reading again."
    plain = await say(api, user, "2028")
    assert plain.text == replies.TEXT_ONLY
    assert db_rows(app, "SELECT COUNT(*) FROM feedback") == [(0,)]


async def test_only_the_photos_sender_can_use_a_numbers_buttons(api: BotApiStandIn,
                                                               app: BotApplication) -> None:
    user, stranger = 704, 705
    _, reply, prediction = await number_reading(api, user, number_photo("2026"))
    single = await api.wait_reply(user, api.send_photo(user, digit_photo(0)[0]),
                                  timeout=REPLY_S)
    single_prediction = int(buttons(single)[0].split(":")[1])
    mid = reply.result["message_id"]
    not_mine = "That button isn't one of mine."
    not_yours = "This button doesn't belong to that reading."
    for presser, message_id, data, kw, expected in (
        (stranger, mid, f"nb:{prediction}:fix", {"chat_id": user}, not_yours),
        (stranger, mid, f"nb:{prediction}:ok", {"chat_id": user}, not_yours),
        (user, mid, f"nb:{prediction}:maybe", {}, not_mine),
        (user, mid, "nb:0:ok", {}, not_mine),
        (user, mid, f"nb:{prediction}:fix:1", {}, not_mine),
        (user, mid, "nb:999999:ok", {}, not_yours),  # no such reading
        (user, single.result["message_id"], f"nb:{single_prediction}:ok", {},
         not_yours),  # a single digit has its own buttons
        (user, single.result["message_id"], f"nb:{prediction}:ok", {}, not_yours),
        (user, mid, f"fb:{prediction}:2", {}, not_yours),  # a number has no single crop
    ):
        assert await press_async(api, presser, message_id, data, **kw) == expected, data
    assert not [c for c in api.messages_to(user) if "force_reply" in str(c.params)]
    assert db_rows(app, "SELECT COUNT(*) FROM feedback") == [(0,)]


async def test_confirmed_and_corrected_numbers_count_in_stats(api: BotApiStandIn,
                                                             app: BotApplication) -> None:
    # a number confirmed with ✅, a single digit confirmed, a number corrected
    _, reply, prediction = await number_reading(api, 706, number_photo("2026"))
    answer = await press_async(api, 706, reply.result["message_id"], f"nb:{prediction}:ok")
    assert answer == "✅ Confirmed — thank you!"
    caption = await api.wait_message(706, lambda c: c.method == "editMessageCaption",
                                     timeout=REPLY_S)
    assert caption.text == f"{reply.text}\n\n✅ Confirmed — thank you!"
    assert db_rows(app, "SELECT label, confirmed FROM feedback WHERE prediction_id = ? ORDER BY "
                        "position", prediction) == [(2, 1), (0, 1), (2, 1), (6, 1)]
    single = await api.wait_reply(707, api.send_photo(707, digit_photo(1)[0]), timeout=REPLY_S)
    await press_async(api, 707, single.result["message_id"], buttons(single)[0])
    _, reply, prediction = await number_reading(api, 708, number_photo("75"))
    pressed = time.monotonic()
    await press_async(api, 708, reply.result["message_id"], f"nb:{prediction}:fix")
    await question(api, 708, pressed)
    await say(api, 708, "76")
    stats = await ask_async(api, 709, lambda: api.send_command(709, "stats"))
    assert "\nReadings confirmed correct: 66.7% (2 of 3)\n" in stats.text, stats.text
    live = app.bot_data.services.storage.live_stats()
    assert (live.confirmed, live.corrected) == (2, 1)


# what /stats counted before the counters: a reading once, confirmed when all its digits were
PER_READING = ("SELECT COALESCE(SUM(ok), 0), COUNT(*) - COALESCE(SUM(ok), 0) FROM"
               " (SELECT MIN(confirmed) AS ok FROM feedback GROUP BY prediction_id)")


def test_the_stats_counters_count_each_reading_once_as_its_digits_say(tmp_path: Path) -> None:
    """/stats's confirmed and corrected totals are counters kept by triggers (storage
    migration 4): from a database that had feedback before them, and for every number or digit
    answered after, they are what counting the feedback reading by reading gives."""
    path = tmp_path / "digitbot.sqlite3"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:  # issue 12's
        for number, script in enumerate(MIGRATIONS[:3], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
        for pid, labels in ((1, [(7, 1)]), (2, [(3, 0)]), (3, [(1, 1), (2, 1), (3, 1)]),
                            (4, [(1, 1), (5, 0), (3, 1)])):
            db.execute("INSERT INTO predictions (id, user_id, chat_id, created_at, status,"
                       " reading, latency_ms, model_version) VALUES (?, 1, 1, 0, 'ok', '', 5, 1)",
                       (pid,))
            db.executemany("INSERT INTO feedback (prediction_id, position, user_id, label,"
                           " confirmed, crop, created_at) VALUES (?, ?, 1, ?, ?, ?, 0)",
                           [(pid, i, label, ok, bytes([pid, i]) * 392)
                            for i, (label, ok) in enumerate(labels)])
    storage = Storage(path)  # migrated to the counters
    try:
        live = storage.live_stats()
        assert (live.confirmed, live.corrected) == storage.execute(PER_READING)[0] == (2, 2)
        crop = np.full((28, 28), 200, np.uint8)
        for read, typed in (("123", [1, 2, 3]), ("123", [9, 2, 3]), ("123", [1, 2, 9]),
                            ("45", [4, 6]), ("7", None), ("8", [5])):
            pid = storage.add_prediction(user_id=2, chat_id=2, status="ok", reading=read,
                                         confidence=0.9, latency_ms=5.0, model_version=1,
                                         crop=crop if len(read) == 1 else None)
            prediction = storage.prediction(pid)
            assert prediction is not None
            if len(read) == 1:
                assert storage.add_feedback(prediction, int(read) if typed is None else typed[0])
            else:
                storage.add_reading_digits(pid, [(0, int(d), crop) for d in read])
                assert storage.add_number_feedback(prediction, typed or [])
                assert not storage.add_number_feedback(prediction, typed or [])  # once only
            live = storage.live_stats()
            assert (live.confirmed, live.corrected) == storage.execute(PER_READING)[0]
        assert (live.confirmed, live.corrected) == (4, 6)
    finally:
        storage.close()


def test_a_number_handled_again_after_a_restart_is_stored_once(tmp_path: Path) -> None:
    """The inbox handles an update again when the process died before it was done: the
    number's reading keeps its row and id (its buttons stay valid) and its digits are
    replaced, not inserted twice (which the digits' primary key would refuse)."""
    storage = Storage(tmp_path / "digitbot.sqlite3")
    try:
        crops = [np.full((28, 28), value, np.uint8) for value in (50, 100, 150)]
        ids = []
        for digits in ("123", "124"):  # the second try (a new model, say) reads it otherwise
            pid = storage.add_prediction(update_id=4242, user_id=3, chat_id=3, status="ok",
                                         reading=digits, confidence=0.9, latency_ms=5.0,
                                         model_version=1, crop=None)
            storage.add_reading_digits(pid, [(0, int(d), c) for d, c in zip(digits, crops,
                                                                            strict=True)])
            ids.append(pid)
        assert ids[0] == ids[1]
        assert [(d.position, d.digit) for d in storage.reading_digits(ids[0])] == [
            (0, 1), (1, 2), (2, 4)]
        assert storage.live_stats().photos == 1
    finally:
        storage.close()


# --- the next /retrain --------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_a_corrected_number_is_trained_on_digit_by_digit(api: BotApiStandIn,
                                                              app: BotApplication) -> None:
    user = 710
    _, reply, prediction = await number_reading(api, user, lines_photo(("12", "345")))
    pressed = time.monotonic()
    await press_async(api, user, reply.result["message_id"], f"nb:{prediction}:fix")
    await question(api, user, pressed)
    await say(api, user, "17\n345")
    crops = [np.frombuffer(c, np.uint8).reshape(28, 28) for (c,) in db_rows(
        app, "SELECT crop FROM prediction_digits WHERE prediction_id = ? ORDER BY position",
        prediction)]

    started = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", "1"))
    assert started.text.startswith(
        "🏋️ Retraining started on mnist_sample.npz + 5 feedback samples."), started.text
    await api.wait_message(  # the run's report: promoted, kept or failed, it is over
        ADMIN_ID, lambda c: c.method == "sendMessage" and c.time > started.time,
        timeout=RETRAIN_S)
    (run,) = (app.bot_data.services.settings.data_dir / "retrain").iterdir()
    with np.load(run / "corrections.npz") as extra:  # what --extra handed to model.train
        assert extra["y"].tolist() == [1, 7, 3, 4, 5]
        assert np.array_equal(extra["x"], np.stack(crops))
    # model.train read them before fitting (whether one epoch on the sample then succeeds is
    # the training's business, tested with it)
    assert "5 corrections)" in (run / "train.log").read_text()
