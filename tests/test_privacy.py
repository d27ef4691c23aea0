"""What the bot keeps about users, in process (bot.app's Application polling the stand-in):
/forget deletes a user's rows in every per-user table (readings, digit crops, feedback, ✏️
questions, language choices, the inbox) and nobody else's, the retention job (PTB's JobQueue)
expires old rows while /stats's totals stay, and one user's flood of corrections enters a
retraining only up to the per-user cap."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot import replies
from bot.app import BotApplication
from bot.i18n import LANGUAGES, translator
from bot.inbox import DONE
from bot.storage import USER_TABLES, Storage, UserTable
from tests.support import ADMIN_ID, BotApiStandIn
from tests.support.conversation import REPLY_S, ask_async, buttons, press_async, until
from tests.support.in_process import running_bot
from tests.support.pictures import digit_photo, number_photo

pytestmark = pytest.mark.timeout(120)
DAY = 86400
EN = translator("en")


def rows(app: BotApplication, sql: str, *args: object) -> list[tuple[Any, ...]]:
    path = app.bot_data.services.settings.db_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def per_user(app: BotApplication, user: int) -> dict[str, int]:
    return {t.table: rows(app, f"SELECT COUNT(*) FROM {t.table} WHERE {t.user_column} = ?",
                          user)[0][0] for t in USER_TABLES}


async def settled(app: BotApplication) -> None:
    """Wait until every update in the inbox is done: a reply arrives a moment before its
    update is marked done, and an undone one still counts as its user's row."""
    await until(lambda: rows(app, "SELECT COUNT(*) FROM inbox WHERE state != ?", DONE) == [(0,)])


async def read_and_correct(api: BotApiStandIn, user: int, index: int) -> None:
    """The user sends a photo and corrects the reading (one prediction, one feedback row)."""
    image, label = digit_photo(index)
    mid = api.send_photo(user, image)
    reply = await api.wait_reply(user, mid, timeout=REPLY_S)
    prediction = buttons(reply)[0].split(":")[1]
    wrong = (label + 1) % 10
    answer = await press_async(api, user, reply.result["message_id"], f"fb:{prediction}:{wrong}")
    assert answer == replies.feedback_mark(EN, str(label), wrong)
    mark = await api.wait_message(user, lambda c: c.method.startswith("editMessage"),
                                  timeout=REPLY_S, after=reply.time)  # the mark under it
    assert mark.text.endswith(answer)


async def number_question(api: BotApiStandIn, app: BotApplication, user: int) -> int:
    """The user sends a number and taps ✏️ Correct: its digits are kept and the bot's question
    waits for the right number. The reading's prediction id."""
    mid = api.send_photo(user, number_photo())
    reply = await api.wait_reply(user, mid, timeout=REPLY_S)
    ok, fix = buttons(reply)
    prediction = int(fix.split(":")[1])
    assert (ok, fix) == (f"nb:{prediction}:ok", f"nb:{prediction}:fix")
    answer = await press_async(api, user, reply.result["message_id"], fix)
    assert answer == EN(replies.CORRECTION_ASKED)
    await until(lambda: rows(app, "SELECT COUNT(*) FROM correction_prompts WHERE"
                                  " prediction_id = ?", prediction) == [(1,)])
    return prediction


async def choose_language(api: BotApiStandIn, user: int, language: str) -> None:
    """/language, then the button: the choice is stored before the press is answered, then
    the menu turns into the confirmation."""
    menu = await ask_async(api, user, lambda: api.send_command(user, "language"))
    pressed = time.monotonic()
    answer = await press_async(api, user, menu.result["message_id"], f"lang:{language}")
    assert answer == translator(language)(replies.LANGUAGE_SET)
    edited = await api.wait_message(user, lambda c: c.method == "editMessageText",
                                    after=pressed, timeout=REPLY_S)
    assert edited.text == answer


async def stats_caption(api: BotApiStandIn, user: int) -> str:
    return (await ask_async(api, user, lambda: api.send_command(user, "stats"))).text


async def test_forget_deletes_the_senders_rows_and_no_one_elses(api: BotApiStandIn,
                                                                app: BotApplication) -> None:
    assert api.commands == [c.to_dict() for c in replies.bot_commands(EN)]
    assert {"command": "forget", "description": "Delete everything stored about you"} in (
        api.commands)
    for language in LANGUAGES.keys() - {"en"}:  # every language's menu has it, translated
        menu = api.commands_by_language[language]
        assert menu == [c.to_dict() for c in replies.bot_commands(translator(language))]
        assert "forget" in [c["command"] for c in menu]
    assert "/forget" in replies.help_text(EN)
    alice, bob = 1101, 1102
    for i, user in enumerate((alice, bob, alice)):
        await read_and_correct(api, user, i)
    numbers = {user: await number_question(api, app, user) for user in (alice, bob)}
    digits = {user: rows(app, "SELECT COUNT(*) FROM prediction_digits WHERE prediction_id = ?",
                         pid)[0][0] for user, pid in numbers.items()}
    assert min(digits.values()) >= 2
    await choose_language(api, alice, "de")
    await choose_language(api, bob, "es")
    before = await stats_caption(api, bob)
    await settled(app)
    storage = app.bot_data.services.storage  # a message of Alice's still waiting on disk
    waiting = api.update(api.update_ids[(alice, 1)])  # (its JSON: an update of hers)
    await storage.run(app.bot_data.services.inbox.inbox.accept, 1, alice, json.dumps(waiting),
                      False)
    assert per_user(app, alice) == {
        "feedback": 2, "prediction_digits": digits[alice], "correction_prompts": 1,
        "predictions": 3, "inbox": 1, "user_languages": 1}

    answer = await ask_async(api, alice, lambda: api.send_command(alice, "forget"))
    gone = {"feedback answers": 2, "digit crops": digits[alice],
            "questions waiting for a number": 1, "photo readings": 3,
            "messages waiting for an answer": 1, "language choices": 1}
    assert list(gone) == [t.what for t in USER_TABLES]
    assert answer.text == replies.forgotten(translator("de"), gone)  # in her language
    assert answer.text.startswith(
        f"🗑 Erledigt: Ich habe {8 + digits[alice]} Einträge über dich gelöscht (Rückmeldungen: 2,")
    await settled(app)  # /forget itself done: its row keeps no user id
    assert set(per_user(app, alice).values()) == {0}
    assert per_user(app, bob) == {
        "feedback": 1, "prediction_digits": digits[bob], "correction_prompts": 1,
        "predictions": 2, "inbox": 0, "user_languages": 1}
    assert await stats_caption(api, bob) == before  # totals are counts: they stay
    again = await ask_async(api, alice, lambda: api.send_command(alice, "forget"))
    # her /language choice went too: Telegram's language_code (English) speaks again
    assert again.text == replies.forgotten(EN, {}) == (
        "I have nothing stored about you — nothing to delete.")


async def test_the_retention_job_expires_old_rows_and_keeps_the_totals(
        api: BotApiStandIn, tmp_path: Path) -> None:
    user, other = 1201, 1202
    async with running_bot(api, tmp_path / "data", data_retention_days=180,
                           retrain_keep_runs=2) as app:
        for i, who in enumerate((user, user, other)):
            await read_and_correct(api, who, 10 + i)
        numbers = {who: await number_question(api, app, who) for who in (user, other)}
        for who in (user, other):
            await choose_language(api, who, "ru")
        storage = app.bot_data.services.storage
        # everything of `user`'s is 200 days old: readings (their digits' age is theirs),
        # feedback, the ✏️ question and the language choice
        for table, column in (("predictions", "created_at"), ("feedback", "created_at"),
                              ("correction_prompts", "created_at"),
                              ("user_languages", "updated_at")):
            await storage.run(storage.execute, f"UPDATE {table} SET {column} = {column} - ?"
                              " WHERE user_id = ?", (200 * DAY, user))
        old = [pid for (pid,) in rows(app, "SELECT id FROM predictions WHERE user_id = ?"
                                           " ORDER BY id", user)]
        assert len(old) == 3 and old[2] == numbers[user]
        runs = app.bot_data.services.settings.data_dir / "retrain"
        for stamp in ("20260101-000000", "20260201-000000", "20260301-000000"):
            (runs / stamp).mkdir(parents=True)
            (runs / stamp / "corrections.npz").write_bytes(b"crops")
        before = await stats_caption(api, other)
        await settled(app)
        recent = per_user(app, other)
        assert recent == {"feedback": 1, "prediction_digits": recent["prediction_digits"],
                          "correction_prompts": 1, "predictions": 2, "inbox": 0,
                          "user_languages": 1}

        (job,) = app.job_queue.get_jobs_by_name("retention")
        await job.run(app)  # what the JobQueue does every RETENTION_INTERVAL_S

        kept = rows(app, "SELECT id, user_id, chat_id, message_id IS NULL, crop IS NULL"
                         " FROM predictions WHERE id IN (?, ?, ?) ORDER BY id", *old)
        assert kept == [(pid, 0, 0, 1, 1) for pid in old]  # anonymised, kept for the counts
        assert rows(app, "SELECT COUNT(*) FROM prediction_digits WHERE prediction_id = ?",
                    numbers[user]) == [(0,)]  # the old number's digit crops: deleted
        assert per_user(app, user) == dict.fromkeys(recent, 0)
        assert per_user(app, other) == recent  # the recent rows are untouched
        assert await stats_caption(api, other) == before  # the totals stay
        assert sorted(p.name for p in runs.iterdir()) == ["20260201-000000", "20260301-000000"]
        await settled(app)
        (job,) = app.job_queue.get_jobs_by_name("retention")
        await job.run(app)  # nothing left to do: nothing changes
        assert rows(app, "SELECT COUNT(*) FROM predictions WHERE user_id = 0") == [(3,)]
        assert per_user(app, other) == recent


def add_corrections(storage: Storage, user: int, crops: list[np.ndarray], label: int) -> None:
    """`user` corrects one reading per crop to `label` (runs in the database thread)."""
    for crop in crops:
        pid = storage.add_prediction(user_id=user, chat_id=user, status="ok", reading="0",
                                     confidence=0.99, latency_ms=5.0, model_version=1,
                                     crop=crop)
        prediction = storage.prediction(pid)
        assert prediction is not None and storage.add_feedback(prediction, label)


async def test_one_users_thousand_corrections_count_only_up_to_the_cap(
        api: BotApiStandIn, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    flood = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(1000)]
    async with running_bot(api, tmp_path / "data", corrections_per_user=50,
                           corrections_user_share=0.25) as app:
        storage = app.bot_data.services.storage
        await storage.run(add_corrections, storage, 1301, flood, 7)  # 1,000 crops, all "7"
        await storage.run(add_corrections, storage, 1301, flood[:100], 7)  # the same again
        lone = storage.training_corrections(50, 0.25)
        # alone, the user may hold 25% of at least 50 samples: 12 (every 5th held out)
        assert (len(lone.y), lone.users, lone.duplicates, lone.per_user) == (12, 1, 100, 12)
        assert len(lone.held_y) == 200
        for user, label in ((1302, 1), (1303, 2), (1304, 3), (1305, 4)):
            crops = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(10)]
            await storage.run(add_corrections, storage, user, crops, label)

        started = await ask_async(api, ADMIN_ID,
                                  lambda: api.send_command(ADMIN_ID, "retrain", "1"))
        # 1,040 different crops (rows 1-1,140, each crop at its newest row): every 5th row is
        # held out for the promotion gate, 208; of the others' 40, 32 train; the flooder: the
        # largest L <= 50 with L <= 25% of max(L + 32, 50): 12
        assert started.text.splitlines()[-1] == (
            "Feedback used: 44 samples from 5 users (left out: 100 repeated crops, "
            "788 over the cap of 12 per user). Held out to test the new model: 208.")
        (run,) = (app.bot_data.services.settings.data_dir / "retrain").iterdir()
        with np.load(run / "corrections.npz") as data:
            x, y = data["x"], data["y"]
        assert x.shape == (44, 28, 28) and x.dtype == np.uint8
        assert sum(np.bincount(y, minlength=10)[1:5]) == 32 and np.sum(y == 7) == 12
        # the flooder's 12 newest left to train: crops sent again (each counted once)
        flooder = {x[i].tobytes() for i in np.flatnonzero(y == 7)}
        assert flooder <= {c.tobytes() for c in flood[80:100]}
        held = storage.training_corrections(50, 0.25)
        assert len(held.held_y) == 208 and not flooder & {c.tobytes() for c in held.held_x}
    # leaving the block stops the bot, and with it the training child


def test_a_table_reaching_its_user_through_another_is_one_line(tmp_path: Path) -> None:
    """A per-user table without user or time columns of its own (WITHOUT ROWID, its user
    through predictions): /forget and retention cover it with expressions in its UserTable."""
    storage = Storage(tmp_path / "db.sqlite3")
    storage.execute("CREATE TABLE digits (prediction_id INTEGER NOT NULL REFERENCES"
                    " predictions(id), position INTEGER NOT NULL, crop BLOB NOT NULL,"
                    " PRIMARY KEY (prediction_id, position)) WITHOUT ROWID")
    digits = UserTable(
        "digits", "digit crops",
        user_column="(SELECT user_id FROM predictions WHERE id = prediction_id)",
        time_column="(SELECT created_at FROM predictions WHERE id = prediction_id)")
    for user in (1, 1, 2):  # readings 1 and 2 are user 1's, 3 user 2's; two digits each
        pid = storage.add_prediction(user_id=user, chat_id=user, status="ok", reading="12",
                                     confidence=0.9, latency_ms=5.0, model_version=1, crop=None)
        for position in range(2):
            storage.execute("INSERT INTO digits VALUES (?, ?, ?)", (pid, position, b"crop"))
    storage.execute("UPDATE predictions SET created_at = created_at - ? WHERE id = 1", (DAY,))
    assert storage.expire_batch(digits, time.time() - DAY / 2, batch=1) == 2  # reading 1's
    assert storage.expire_batch(digits, time.time() - DAY / 2) == 0
    assert storage.forget_user(1, (digits,)) == {"digit crops": 2}  # reading 2's
    assert storage.execute("SELECT prediction_id FROM digits") == [(3,), (3,)]
    storage.close()
