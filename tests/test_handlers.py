"""The bot's handlers, in process: bot.app's own Application polls the Bot API stand-in in the
test's event loop (real HTTP, rate limiter, SQLite, model, handlers; no child process).

The tests play users: photos of MNIST test digits on paper, a number, a blank page, the
feedback buttons (and forged ones), /stats, bad input of every kind, and the admin commands a
user may not run. Replies are compared with the texts in bot/replies.py.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot import replies
from bot.app import BotApplication
from bot.i18n import translator
from bot.models import ModelRegistry
from bot.storage import Storage
from model import RELEASE_DIR
from tests.support import ADMIN_ID, BotApiStandIn
from tests.support.conversation import REPLY_S, ask_async, buttons, press_async, reading
from tests.support.in_process import running_bot
from tests.support.pictures import (
    NUMBER,
    blank_photo,
    digit_photo,
    huge_png,
    number_photo,
    tiny_png,
)

pytestmark = pytest.mark.timeout(120)

EN = translator("en")


def db_rows(app: BotApplication, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows from the bot's database file, read through a connection of our own."""
    path = app.bot_data.services.settings.db_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


async def photo_reply(api: BotApiStandIn, user: int, image: bytes) -> tuple[int, Any]:
    """Send a photo; its message id and the bot's reply to it."""
    mid = api.send_photo(user, image)
    return mid, await api.wait_reply(user, mid, timeout=REPLY_S)


# --- users -----------------------------------------------------------------------------------


async def test_start_and_help_say_what_the_bot_does(api: BotApiStandIn,
                                                    app: BotApplication) -> None:
    assert api.commands == [c.to_dict() for c in replies.bot_commands(EN)]  # set at start
    for user, command in ((101, "start"), (102, "help")):
        mid = api.send_command(user, command)
        reply = await api.wait_reply(user, mid, timeout=REPLY_S)  # quoted: Defaults(do_quote)
        assert reply.text == replies.help_text(EN)
    mid = api.send_command(ADMIN_ID, "help")
    admin = await api.wait_reply(ADMIN_ID, mid, timeout=REPLY_S)
    assert admin.text == replies.help_text(EN, admin=True)


async def test_single_digits_are_read_with_feedback_buttons(api: BotApiStandIn,
                                                            app: BotApplication) -> None:
    users = range(110, 116)  # one photo each: Telegram's 1 message/s per chat stays out of it
    labels = []
    for index, user in enumerate(users):
        image, label = digit_photo(index)
        labels.append(label)
        api.send_photo(user, image)
    for user, label in zip(users, labels, strict=True):
        reply = await api.wait_message(user, timeout=REPLY_S)
        assert reading(reply) == str(label), reply
        assert re.fullmatch(rf"{label} · \d+\.\d% sure\n(.*\n)?Did I read it right\? Tap ✅ or "
                            r"the right digit\.", reply.text), reply.text
        data = buttons(reply)
        assert len(data) == 11 and all(re.fullmatch(r"fb:\d+:\d", d) for d in data)
        assert data[0].endswith(f":{label}")  # ✅ confirms the reading
    rows = db_rows(app, "SELECT status, length(crop) FROM predictions WHERE user_id BETWEEN "
                        "110 AND 115")
    assert rows == [("ok", 28 * 28)] * 6


async def test_a_number_comes_back_as_an_annotated_photo(api: BotApiStandIn,
                                                         app: BotApplication) -> None:
    _, reply = await photo_reply(api, 120, number_photo())
    assert reply.method == "sendPhoto" and reading(reply) == NUMBER, reply
    assert reply.text.startswith(f"{NUMBER} · ") and "\ndigits: 2 " in reply.text
    prediction = buttons(reply)[0].split(":")[1]  # a number: ✅ or ✏️ Correct
    assert buttons(reply) == [f"nb:{prediction}:ok", f"nb:{prediction}:fix"]
    annotated = Image.open(io.BytesIO(reply.photo_bytes[0]))
    annotated.load()
    assert min(annotated.size) > 100


async def test_blank_page_gets_the_no_digit_answer(api: BotApiStandIn,
                                                   app: BotApplication) -> None:
    _, reply = await photo_reply(api, 121, blank_photo())
    assert reply.text == replies.no_digit(EN) and buttons(reply) == []
    assert db_rows(app, "SELECT status, reading FROM predictions WHERE user_id = 121") == [
        ("no_digit", "")]


async def test_feedback_confirm_and_correct_are_stored_with_their_crop(
    api: BotApiStandIn, app: BotApplication
) -> None:
    user = 130
    first, second = [(await photo_reply(api, user, digit_photo(i)[0]))[1] for i in (0, 1)]
    confirm_data = buttons(first)[0]
    prediction = int(confirm_data.split(":")[1])
    answer = await press_async(api, user, first.result["message_id"], confirm_data)
    assert answer == replies.feedback_mark(EN, reading(first) or "", int(reading(first) or -1))
    assert answer == "✅ Confirmed — thank you!"

    wrong = (int(reading(second) or 0) + 1) % 10
    correct_data = f"{buttons(second)[1].rsplit(':', 1)[0]}:{wrong}"
    answer = await press_async(api, user, second.result["message_id"], correct_data)
    assert answer == f"✏️ Corrected to {wrong} — thank you, I'll learn from it."

    rows = db_rows(app, "SELECT f.prediction_id, f.label, f.confirmed, f.crop, p.crop "
                        "FROM feedback f JOIN predictions p ON p.id = f.prediction_id "
                        "WHERE f.user_id = ? ORDER BY f.id", user)
    assert [(r[1], r[2]) for r in rows] == [(int(reading(first) or -1), 1), (wrong, 0)]
    assert rows[0][0] == prediction
    for *_, crop, predicted_crop in rows:
        assert crop == predicted_crop and len(crop) == 28 * 28
        assert np.frombuffer(crop, np.uint8).max() > 128  # a white-on-black digit, not blank
    # the reading messages were marked and lost their keyboards
    edits = [await api.wait_message(
        user, lambda c, m=m: c.method == "editMessageText" and c.params["message_id"] == m,
        timeout=REPLY_S) for m in (first.result["message_id"], second.result["message_id"])]
    assert all("reply_markup" not in c.params for c in edits)
    assert edits[0].text == f"{first.text}\n\n✅ Confirmed — thank you!"
    assert edits[1].text.endswith(f"\n\n✏️ Corrected to {wrong} — thank you, I'll learn from it.")
    # a second press on the same reading changes nothing
    again = await press_async(api, user, first.result["message_id"], confirm_data)
    assert again == "Already noted — thank you!"
    assert len(db_rows(app, "SELECT id FROM feedback WHERE user_id = ?", user)) == 2


async def test_forged_callback_data_is_refused_and_writes_nothing(
    api: BotApiStandIn, app: BotApplication
) -> None:
    user, stranger = 140, 141
    _, reply = await photo_reply(api, user, digit_photo(2)[0])
    bot_mid = reply.result["message_id"]
    prediction = buttons(reply)[0].split(":")[1]
    other = (await ask_async(api, user, lambda: api.send_command(user, "help")))
    _, number_reply = await photo_reply(api, user, number_photo())
    ((number_prediction,),) = db_rows(app, "SELECT id FROM predictions WHERE user_id = ? AND "
                                           "length(reading) > 1", user)
    not_mine = "That button isn't one of mine."
    not_yours = "This button doesn't belong to that reading."
    forged = [
        (user, bot_mid, "hello", {}, not_mine),  # not our format
        (user, bot_mid, f"fb:{prediction}:10", {}, not_mine),  # digit out of range
        (user, bot_mid, f"fb:{prediction}:-1", {}, not_mine),
        (user, bot_mid, "fb:999999:3", {}, not_yours),  # no such prediction
        (user, other.result["message_id"], f"fb:{prediction}:3", {}, not_yours),  # other message
        (stranger, bot_mid, f"fb:{prediction}:3", {"chat_id": user}, not_yours),  # not theirs
        (user, number_reply.result["message_id"], f"fb:{number_prediction}:2", {},
         not_yours),  # a number has no single crop
    ]
    for presser, message_id, data, kw, expected in forged:
        assert await press_async(api, presser, message_id, data, **kw) == expected, data
    assert db_rows(app, "SELECT COUNT(*) FROM feedback") == [(0,)]


async def test_stats_sends_the_model_charts_with_live_figures(api: BotApiStandIn,
                                                              app: BotApplication) -> None:
    await photo_reply(api, 150, digit_photo(0)[0])
    mid = api.send_command(151, "stats")
    reply = await api.wait_reply(151, mid, timeout=REPLY_S)
    assert reply.method in ("sendMediaGroup", "sendPhoto")
    assert re.fullmatch(
        r"Model v1 · MNIST test accuracy \d+\.\d\d% · trained \d{4}-\d\d-\d\d\n"
        r"Photos read: 1 · users: 1\n"
        r"Readings confirmed correct: no feedback yet\n"
        r"Median recognition time: \d+ ms\n?", reply.text), reply.text
    assert [c.params["action"] for c in api.calls_to("sendChatAction")] == ["upload_photo"]
    assert reply.photo_bytes
    for png in reply.photo_bytes:
        picture = Image.open(io.BytesIO(png))
        picture.load()
        assert picture.format == "PNG" and min(picture.size) >= 200


async def test_courtesy_calls_failing_cost_no_answer(api: BotApiStandIn,
                                                     app: BotApplication) -> None:
    """A Bot API server that lacks (404) the chat action or the edit of a reading still gets
    the /stats charts, and a feedback press is still stored and acknowledged."""
    api.fail("sendChatAction", status=404)
    reply = await ask_async(api, 160, lambda: api.send_command(160, "stats"))
    assert reply.method in ("sendMediaGroup", "sendPhoto") and reply.photo_bytes
    _, reading_reply = await photo_reply(api, 161, digit_photo(0)[0])
    api.fail("editMessageText", status=404)
    assert await press_async(api, 161, reading_reply.result["message_id"],
                             buttons(reading_reply)[0]) == "✅ Confirmed — thank you!"
    assert db_rows(app, "SELECT confirmed FROM feedback WHERE user_id = 161") == [(1,)]


UNREADABLE_FILE = "That file isn't an image I can read."
BAD_INPUT = {  # what the user sends -> what the reply must say
    "plain text": (lambda api, u: api.send_text(u, "hello, what can you do?"),
                   replies.TEXT_ONLY),
    "unknown command": (lambda api, u: api.send_command(u, "frobnicate", "now"),
                        replies.unknown_command(EN, "/frobnicate")),
    "sticker": (lambda api, u: api.send_sticker(u), replies.TEXT_ONLY),
    "pdf": (lambda api, u: api.send_document(u, b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "scan.pdf",
                                             "application/pdf"), replies.PDF),
    "pdf without a mime type": (lambda api, u: api.send_document(u, b"%PDF-1.4\n", "SCAN.PDF",
                                                                 None), replies.PDF),
    "zip": (lambda api, u: api.send_document(u, b"PK\x03\x04" + bytes(40), "digits.zip",
                                             "application/zip"), replies.NOT_AN_IMAGE),
    "corrupt jpeg photo": (lambda api, u: api.send_photo(u, b"\xff\xd8\xff\xe0" + bytes(500),
                                                         width=640, height=480),
                           UNREADABLE_FILE),
    "corrupt jpeg file": (lambda api, u: api.send_document(u, digit_photo(3)[0][:300],
                                                           "photo.jpg", "image/jpeg"),
                          UNREADABLE_FILE),
    "empty file": (lambda api, u: api.send_document(u, b"", "empty.png", "image/png"),
                   UNREADABLE_FILE),
    "20000x20000 png": (lambda api, u: api.send_document(u, huge_png(), "huge.png", "image/png"),
                        "That image is too large (400 megapixels)"),
    "3x3 image": (lambda api, u: api.send_document(u, tiny_png(), "tiny.png", "image/png"),
                  "That image is too small to contain a digit."),
    "photo without a digit": (lambda api, u: api.send_photo(u, blank_photo()),
                              replies.no_digit(EN)),
}


@pytest.mark.parametrize("kind", list(BAD_INPUT))
async def test_bad_input_gets_its_own_clear_answer(api: BotApiStandIn, app: BotApplication,
                                                   kind: str) -> None:
    send, expected = BAD_INPUT[kind]
    mid = send(api, 200)
    reply = await api.wait_reply(200, mid, timeout=REPLY_S)
    assert reply.text.startswith(expected), reply.text
    assert buttons(reply) == []
    image, label = digit_photo(4)  # and the next photo is read as usual
    _, after = await photo_reply(api, 200, image)
    assert reading(after) == str(label)


async def test_a_file_over_the_limit_is_refused_before_download(api: BotApiStandIn,
                                                                app: BotApplication) -> None:
    limit = app.bot_data.services.settings.max_file_bytes
    big = b"\x89PNG" + bytes(limit)
    mid = api.send_document(210, big, "scan.png", "image/png")
    reply = await api.wait_reply(210, mid, timeout=REPLY_S)
    assert reply.text == replies.too_big(EN, len(big), limit)
    assert reply.text.startswith("That file is too big for me (20.0 MB; up to 20 MB).")
    assert not api.calls_to("getFile")  # the size in the update was enough


async def test_a_flood_of_photos_is_read_one_by_one_without_starving_others(
    api: BotApiStandIn, app: BotApplication
) -> None:
    flooder, other = 220, 221
    sent = [api.send_photo(flooder, digit_photo(i)[0]) for i in range(6)]
    image, label = digit_photo(6)
    other_mid = api.send_photo(other, image)
    other_reply = await api.wait_reply(other, other_mid, timeout=REPLY_S)
    flood_replies = [await api.wait_reply(flooder, mid, timeout=REPLY_S) for mid in sent]
    assert reading(other_reply) == str(label)
    assert other_reply.time < flood_replies[-1].time  # not queued behind the flood
    notes = [c for c in api.messages_to(flooder) if c.reply_to is None]
    told_at = app.bot_data.services.settings.queue_notice_after  # once, when this many wait
    assert [n.text for n in notes] == [replies.queued(EN, told_at)]
    assert len({c.reply_to for c in flood_replies}) == len(sent)  # nothing lost


# --- admins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "args"), [
    ("retrain", "1"), ("retrain", ""), ("models", ""), ("rollback", ""),
    ("retrain@digitbot_test_bot", "1"),
])
async def test_admin_commands_refuse_other_users_and_start_nothing(
    api: BotApiStandIn, app: BotApplication, command: str, args: str
) -> None:
    user = 301  # not in ADMIN_IDS; the same username as an admin wouldn't matter (ids only)
    api.add_user(user, first_name="Admin", username="admin")
    reply = await ask_async(api, user, lambda: api.send_command(user, command, args))
    name = command.split("@")[0]
    assert reply.text == f"Sorry, /{name} is only for the bot's admins."
    assert not app.bot_data.services.retrainer.busy
    assert db_rows(app, "SELECT version, active FROM model_versions") == [(1, 1)]
    assert not api.messages_to(ADMIN_ID)


@pytest.mark.parametrize(("args", "answer"), [
    ("abc", "I can't read “abc” as epochs."),
    ("100000", "100000 epochs is out of range."),
    ("0", "0 epochs is out of range."),
    ("1 2", "I can't read “1 2” as epochs."),
    ("²", "I can't read “²” as epochs."),
    ("-1", "I can't read “-1” as epochs."),
])
async def test_retrain_arguments_get_a_clear_answer(api: BotApiStandIn, app: BotApplication,
                                                    args: str, answer: str) -> None:
    reply = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", args))
    assert reply.text == f"{answer} Usage: /retrain [EPOCHS], EPOCHS a whole number from 1 to 50."
    await asyncio.sleep(0)  # a training would have been started by now
    assert not app.bot_data.services.retrainer.busy


async def test_models_and_a_rollback_with_nothing_before(api: BotApiStandIn,
                                                         app: BotApplication) -> None:
    models = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "models"))
    versions = app.bot_data.services.registry.versions()
    assert models.text == replies.models_text(versions) and "v1 · " in models.text
    back = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "rollback"))
    assert back.text == "Nothing to roll back to: v1 is the first."
    assert app.bot_data.model.version == 1


async def test_rollback_loads_the_previous_version_off_the_loop_and_swaps_it_in(
    api: BotApiStandIn, tmp_path: Path
) -> None:
    """v2 (a copy of the release, installed as a retrain would) serves; /rollback loads v1 in a
    thread, records the switch in one commit and serves v1 from the next photo on."""
    data_dir = tmp_path / "data"
    storage = Storage(data_dir / "digitbot.sqlite3")
    registry = ModelRegistry(storage, data_dir / "models", RELEASE_DIR)
    registry.recover()
    run_dir = registry.training_dir()
    shutil.copytree(RELEASE_DIR, run_dir)
    assert registry.install(run_dir, 0.99, activate=True, note="test") == 2
    storage.close()
    async with running_bot(api, data_dir) as app:
        assert app.bot_data.model.version == 2
        back = await ask_async(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "rollback"))
        assert back.text == "↩️ Rolled back: v1 is serving (was v2)."
        assert app.bot_data.model.version == 1 and app.bot_data.model.path == RELEASE_DIR
        assert db_rows(app, "SELECT version FROM model_versions WHERE active") == [(1,)]
        await photo_reply(api, 240, digit_photo(0)[0])
        assert db_rows(app, "SELECT model_version FROM predictions WHERE user_id = 240") == [
            (1,)]


async def test_every_call_the_bot_makes_is_a_real_bot_api_method(api: BotApiStandIn,
                                                                 app: BotApplication) -> None:
    """The stand-in answers a misspelt or made-up method with 404, as Telegram does: after a
    photo, a press, /stats and an edit, the bot has called none."""
    started = time.monotonic()
    _, reply = await photo_reply(api, 230, digit_photo(0)[0])
    await press_async(api, 230, reply.result["message_id"], buttons(reply)[0])
    await ask_async(api, 231, lambda: api.send_command(231, "stats"))
    assert {c.method for c in api.calls if c.time >= started} >= {
        "getUpdates", "getFile", "sendMessage", "answerCallbackQuery", "editMessageText",
        "sendChatAction"}
    assert api.unknown_methods == []
    assert all(c.ok for c in api.calls if c.method != "getUpdates"), [
        c for c in api.calls if not c.ok]
