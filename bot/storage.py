"""SQLite storage: predictions, feedback samples (labelled 28×28 crops), model versions, users'
languages and the questions asked to correct a number, the inbox of updates (bot/inbox.py) and
the counters /stats reads.

One connection behind a lock. The event loop never waits for SQLite: handlers call
`await storage.run(storage.method, ...)`, which runs the call in the database's own thread, in
the order the calls were made (a write awaited before an acknowledgement is committed before
it). Other threads (start-up, the retrain's install) may call methods directly.
WAL journal: readers never block the writer, and a commit survives the process being killed
at any moment, so a correction that was acknowledged to the user is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from bot.i18n import N_

CROP_SHAPE = (28, 28)
# Users' corrections held out of /retrain's training for the promotion gate: every 5th, once
# there are this many (fewer measure nothing: they all train)
HOLD_OUT_EVERY, HOLD_OUT_MIN = 5, 100
P = ParamSpec("P")
T = TypeVar("T")
ANONYMOUS = 0  # the user and chat id of readings older than DATA_RETENTION_DAYS

# A latency's histogram bucket: the value to 3 significant digits (±0.5%), so the median of
# any number of readings is a walk over a few thousand rows at most.
_BUCKET = """CASE WHEN {ms} < 10 THEN round({ms}, 2) WHEN {ms} < 100 THEN round({ms}, 1)
    WHEN {ms} < 1000 THEN round({ms}) ELSE round({ms} / 10) * 10 END"""
# Readings with feedback, ok = 1 when every digit of it was confirmed (as /stats counts them).
_READINGS_ANSWERED = "(SELECT MIN(confirmed) AS ok FROM feedback GROUP BY prediction_id)"

# Schema migrations, applied in order; PRAGMA user_version = how many have run.
MIGRATIONS = (
    """
    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER,              -- the bot's reply carrying the feedback buttons
        created_at REAL NOT NULL,
        status TEXT NOT NULL,            -- ok | no_digit | error
        reading TEXT NOT NULL,           -- digits left to right, '' unless ok
        confidence REAL,                 -- lowest digit confidence of the reading
        latency_ms REAL NOT NULL,        -- recognition time
        model_version INTEGER NOT NULL,
        crop BLOB                        -- 28×28 uint8, kept for single-digit readings only
    );
    CREATE INDEX predictions_user ON predictions(user_id);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        prediction_id INTEGER NOT NULL UNIQUE REFERENCES predictions(id),
        user_id INTEGER NOT NULL,
        label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
        confirmed INTEGER NOT NULL,      -- 1: the reading was right, 0: corrected to label
        crop BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE model_versions (
        version INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        test_accuracy REAL,
        created_at TEXT,
        promoted_at TEXT,                -- set once the version has served (rollback targets)
        active INTEGER NOT NULL DEFAULT 0,
        note TEXT
    );
    """,
    """
    -- one row, rewritten by /healthz: proof that the database takes writes
    CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at REAL NOT NULL);
    """,
    # 3 (issue 12: languages, correcting numbers). Per-user rows: /forget and retention must
    # cover user_languages, correction_prompts and (through predictions) prediction_digits.
    """
    -- the language a user chose with /language (else Telegram's language_code is used)
    CREATE TABLE user_languages (
        user_id INTEGER PRIMARY KEY,
        language TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    -- each digit of a reading with several digits, as the model saw it: a correction of the
    -- number labels them one by one
    CREATE TABLE prediction_digits (
        prediction_id INTEGER NOT NULL REFERENCES predictions(id),
        position INTEGER NOT NULL,       -- 0-based, reading order (line by line)
        line INTEGER NOT NULL,           -- 0 = the top line
        digit INTEGER NOT NULL CHECK (digit BETWEEN 0 AND 9),
        crop BLOB NOT NULL,              -- 28×28 uint8
        PRIMARY KEY (prediction_id, position)
    ) WITHOUT ROWID;
    -- "✏️ Correct" pressed: the bot's question (a ForceReply message) waiting for the number
    CREATE TABLE correction_prompts (
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,     -- the bot's question
        user_id INTEGER NOT NULL,        -- who may answer it: the reading's owner
        prediction_id INTEGER NOT NULL REFERENCES predictions(id),
        created_at REAL NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    );
    CREATE INDEX correction_prompts_user ON correction_prompts(user_id, chat_id, created_at);
    -- feedback: one row per digit (position 0 for single digits), so a number's digits are
    -- training samples each; UNIQUE(prediction_id) becomes UNIQUE(prediction_id, position)
    CREATE TABLE feedback_by_digit (
        id INTEGER PRIMARY KEY,
        prediction_id INTEGER NOT NULL REFERENCES predictions(id),
        position INTEGER NOT NULL DEFAULT 0,
        user_id INTEGER NOT NULL,
        label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
        confirmed INTEGER NOT NULL,      -- 1: the digit was read right, 0: corrected to label
        crop BLOB NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (prediction_id, position)
    );
    INSERT INTO feedback_by_digit (id, prediction_id, position, user_id, label, confirmed, crop,
                                   created_at)
        SELECT id, prediction_id, 0, user_id, label, confirmed, crop, created_at FROM feedback;
    DROP TABLE feedback;
    ALTER TABLE feedback_by_digit RENAME TO feedback;
    """,
    # 4 (issue 10): the inbox, counters for /stats, indexes for /forget and retention. After 3,
    # which rebuilt `feedback` (and so would have dropped its indexes and triggers).
    f"""
    CREATE TABLE inbox (                 -- every update, stored before Telegram is told
        update_id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        state INTEGER NOT NULL DEFAULT 0, -- 0 waiting, 1 in memory, 2 done, 3 expired
        not_before REAL NOT NULL DEFAULT 0, -- a retry that gave up waits until then
        attempts INTEGER NOT NULL DEFAULT 0,
        user_id INTEGER,                 -- the sender (for /forget); NULL once done
        payload TEXT                     -- the update's JSON; NULL once done
    );
    CREATE INDEX inbox_waiting ON inbox(update_id) WHERE state = 0;
    CREATE INDEX inbox_user ON inbox(user_id) WHERE user_id IS NOT NULL;
    CREATE INDEX inbox_received ON inbox(received_at);
    ALTER TABLE predictions ADD COLUMN update_id INTEGER;  -- handled again: the same row
    CREATE UNIQUE INDEX predictions_update ON predictions(update_id)
        WHERE update_id IS NOT NULL;
    CREATE INDEX predictions_identified ON predictions(created_at) WHERE user_id != {ANONYMOUS};
    CREATE INDEX feedback_user ON feedback(user_id);
    CREATE INDEX feedback_created ON feedback(created_at);
    CREATE INDEX correction_prompts_created ON correction_prompts(created_at);
    CREATE INDEX user_languages_updated ON user_languages(updated_at);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters (name, value) VALUES
        ('photos', (SELECT COUNT(*) FROM predictions)),
        ('users', (SELECT COUNT(DISTINCT user_id) FROM predictions)),
        ('confirmed', (SELECT COALESCE(SUM(ok), 0) FROM {_READINGS_ANSWERED})),
        ('corrected', (SELECT COUNT(*) - COALESCE(SUM(ok), 0) FROM {_READINGS_ANSWERED}));
    CREATE TABLE latency_histogram (bucket REAL PRIMARY KEY, photos INTEGER NOT NULL)
        WITHOUT ROWID;
    INSERT INTO latency_histogram (bucket, photos)
        SELECT {_BUCKET.format(ms="latency_ms")}, COUNT(*) FROM predictions GROUP BY 1;
    -- /stats's totals, kept on write: they survive /forget and retention (they are counts)
    CREATE TRIGGER predictions_counted AFTER INSERT ON predictions BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'photos';
        UPDATE counters SET value = value + 1 WHERE name = 'users' AND NOT EXISTS (
            SELECT 1 FROM predictions WHERE user_id = NEW.user_id AND id != NEW.id);
        INSERT INTO latency_histogram (bucket, photos)
            VALUES ({_BUCKET.format(ms="NEW.latency_ms")}, 1)
            ON CONFLICT (bucket) DO UPDATE SET photos = photos + 1;
    END;
    -- a reading counts once (a number has a feedback row per digit, all in one commit):
    -- its first row counts it, confirmed or corrected; the first corrected digit after
    -- confirmed ones moves it to corrected
    CREATE TRIGGER feedback_counted AFTER INSERT ON feedback WHEN NOT EXISTS (
        SELECT 1 FROM feedback WHERE prediction_id = NEW.prediction_id AND id != NEW.id)
    BEGIN
        UPDATE counters SET value = value + 1
            WHERE name = CASE WHEN NEW.confirmed THEN 'confirmed' ELSE 'corrected' END;
    END;
    CREATE TRIGGER feedback_recounted AFTER INSERT ON feedback WHEN NOT NEW.confirmed
        AND EXISTS (SELECT 1 FROM feedback
                    WHERE prediction_id = NEW.prediction_id AND id != NEW.id)
        AND NOT EXISTS (SELECT 1 FROM feedback
                        WHERE prediction_id = NEW.prediction_id AND id != NEW.id AND NOT confirmed)
    BEGIN
        UPDATE counters SET value = value - 1 WHERE name = 'confirmed';
        UPDATE counters SET value = value + 1 WHERE name = 'corrected';
    END;
    """,
    # 5 (issue 9): each version's scores on the promotion gate's held-out sets (bot/gate.py)
    """
    ALTER TABLE model_versions ADD COLUMN scores TEXT;  -- {"mnist": [accuracy, n], ...}
    """,
)


@dataclass(frozen=True)
class UserTable:
    """A table with rows about one user. /forget deletes the user's rows; rows older than
    DATA_RETENTION_DAYS are deleted, or anonymised with `anonymise` (a SET clause that also
    sets `user_column` to ANONYMOUS) where the table's other columns are worth keeping.
    `user_column` and `time_column` may be expressions, for a table that reaches its user
    through another one: "(SELECT user_id FROM predictions WHERE id = prediction_id)"."""

    table: str
    what: str  # how /forget names these rows to the user (marked for translation: N_)
    user_column: str = "user_id"
    time_column: str = "created_at"
    anonymise: str | None = None
    busy: str | None = None  # rows /forget leaves to finish (they keep no user data after)


# Every table holding data about a user, children before the tables they reference: /forget
# and the retention job go through this list, so a new per-user table is one more line here.
USER_TABLES = (
    UserTable("feedback", N_("feedback answers")),
    UserTable("prediction_digits", N_("digit crops"),
              user_column="(SELECT user_id FROM predictions WHERE id = prediction_id)",
              time_column="(SELECT created_at FROM predictions WHERE id = prediction_id)"),
    UserTable("correction_prompts", N_("questions waiting for a number")),
    UserTable("predictions", N_("photo readings"), anonymise=(
        f"user_id = {ANONYMOUS}, chat_id = {ANONYMOUS}, message_id = NULL, crop = NULL,"
        " update_id = NULL")),
    UserTable("inbox", N_("messages waiting for an answer"), time_column="received_at",
              busy="state = 1"),  # the updates being handled, /forget itself among them
    UserTable("user_languages", N_("language choices"), time_column="updated_at"),
)


@dataclass(frozen=True)
class Prediction:
    id: int
    user_id: int
    chat_id: int
    message_id: int | None
    reading: str
    crop: bytes | None


@dataclass(frozen=True)
class ReadingDigit:
    """One digit of a number reading as stored at prediction time."""

    position: int
    line: int
    digit: int
    crop: bytes


@dataclass(frozen=True)
class CorrectionPrompt:
    """The bot's question for the right number (its message carries a ForceReply)."""

    chat_id: int
    message_id: int
    user_id: int
    prediction_id: int
    created_at: float


@dataclass(frozen=True)
class ModelVersion:
    version: int
    path: Path
    test_accuracy: float | None
    created_at: str | None
    promoted_at: str | None
    active: bool
    note: str | None
    scores: dict[str, list[float]] | None = None  # the gate's held-out sets: [accuracy, n]


@dataclass(frozen=True)
class LiveStats:
    photos: int
    users: int
    confirmed: int
    corrected: int
    median_ms: float | None

    @property
    def confirmed_share(self) -> float | None:
        total = self.confirmed + self.corrected
        return self.confirmed / total if total else None


@dataclass(frozen=True)
class Corrections:
    """Feedback samples for a retraining, after the caps (see training_corrections)."""

    x: np.ndarray  # uint8 (N, 28, 28), white on black
    y: np.ndarray  # int64 (N,)
    users: int  # how many users they come from
    duplicates: int  # samples dropped: the same crop bytes as a newer sample
    over_cap: int  # samples dropped: beyond their user's cap
    per_user: int  # the cap that applied to each user
    held_x: np.ndarray  # held out of the training: the promotion gate's test (bot/gate.py)
    held_y: np.ndarray


class Storage:
    """The bot's database in DATA_DIR; created and migrated when opened."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # explicit transactions below; any thread, one at a time (the lock)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="db")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: commits survive a kill
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the whole migration then runs in one transaction.
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` (a method of this class, or code using them) in the database
        thread: the event loop goes on meanwhile, and calls run in the order they were made."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    def execute(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        """One statement (committed on its own), its rows."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on an exception), holding the lock throughout."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        with self._lock:
            self._db.close()

    def check_writable(self, timeout: float = 2.0) -> None:
        """A real, committed write on a connection of its own, so any thread may call it and
        a locked database waits there, not on the event loop (raises sqlite3.Error)."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=timeout)) as db, db:
            db.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (time.time(),),
            )

    # --- predictions and feedback -------------------------------------------------------

    def add_prediction(
        self,
        *,
        update_id: int | None = None,
        user_id: int,
        chat_id: int,
        status: str,
        reading: str,
        confidence: float | None,
        latency_ms: float,
        model_version: int,
        crop: np.ndarray | None,
    ) -> int:
        """The prediction's id. An update handled again (after a restart) keeps its row and
        id — its new reply carries the same buttons — and is counted once in /stats."""
        blob = None if crop is None else _crop_bytes(crop)
        with self.transaction() as db:
            if update_id is not None:
                row = db.execute("SELECT id FROM predictions WHERE update_id = ?",
                                 (update_id,)).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE predictions SET status = ?, reading = ?, confidence = ?,"
                        " model_version = ?, crop = ? WHERE id = ?",
                        (status, reading, confidence, model_version, blob, row[0]),
                    )
                    return int(row[0])
            cur = db.execute(
                "INSERT INTO predictions (user_id, chat_id, created_at, status, reading,"
                " confidence, latency_ms, model_version, crop, update_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, chat_id, time.time(), status, reading, confidence, latency_ms,
                 model_version, blob, update_id),
            )
            assert cur.lastrowid is not None  # an INSERT sets it
            return cur.lastrowid

    def set_reply_message(self, prediction_id: int, message_id: int) -> None:
        self.execute(
            "UPDATE predictions SET message_id = ? WHERE id = ?", (message_id, prediction_id)
        )

    def prediction(self, prediction_id: int) -> Prediction | None:
        rows = self.execute(
            "SELECT id, user_id, chat_id, message_id, reading, crop FROM predictions WHERE id = ?",
            (prediction_id,),
        )
        return Prediction(*rows[0]) if rows else None

    def add_feedback(self, prediction: Prediction, label: int) -> bool:
        """Store the label for a single-digit prediction; False if it already has feedback."""
        if prediction.crop is None:
            raise ValueError("feedback needs a single-digit prediction with its crop")
        try:
            self.execute(
                "INSERT INTO feedback (prediction_id, user_id, label, confirmed, crop, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (prediction.id, prediction.user_id, label, int(prediction.reading == str(label)),
                 prediction.crop, time.time()),
            )
        except sqlite3.IntegrityError:  # UNIQUE(prediction_id, position): pressed twice
            return False
        return True

    def training_corrections(self, per_user: int, share: float) -> Corrections:
        """Feedback for a retraining that no one user can steer: a crop sent again (the same
        bytes) counts once; each user adds at most `limit` samples (their newest), the largest
        limit ≤ `per_user` at which no user holds more than `share` of the samples used, the
        share taken of at least `per_user` samples (so the first users' feedback counts).
        The samples come in the order they were given (a number's digits in reading order).
        Reads on a connection of its own (call it in a worker thread): the database thread
        stays free for the users meanwhile."""
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT id, user_id, crop, label FROM feedback ORDER BY id DESC"
                              ).fetchall()
        unique = {crop for _, _, crop, _ in rows}
        # once there are enough to measure with, every HOLD_OUT_EVERY-th sample (by its row,
        # so the same ones each time) is the promotion gate's test, never trained on
        hold = len(unique) >= HOLD_OUT_MIN
        seen: set[bytes] = set()
        held: list[tuple[int, bytes, int]] = []
        by_user: dict[int, list[tuple[int, bytes, int]]] = {}  # newest first
        for row_id, user, crop, label in rows:
            if crop not in seen:
                seen.add(crop)
                if hold and row_id % HOLD_OUT_EVERY == 0:
                    held.append((row_id, crop, label))
                else:
                    by_user.setdefault(user, []).append((row_id, crop, label))
        counts = [len(samples) for samples in by_user.values()]
        limit = per_user
        while limit > 0 and limit > share * max(sum(min(n, limit) for n in counts), per_user):
            limit -= 1
        kept = sorted(sample for samples in by_user.values() for sample in samples[:limit])
        x, y = _samples([c for _, c, _ in kept], [label for _, _, label in kept])
        held_x, held_y = _samples([c for _, c, _ in held], [label for _, _, label in held])
        return Corrections(x, y, users=len(by_user) if limit else 0,
                           duplicates=len(rows) - len(seen),
                           over_cap=len(seen) - len(held) - len(kept), per_user=limit,
                           held_x=held_x, held_y=held_y)

    def live_stats(self) -> LiveStats:
        """/stats's figures from counters kept on write and the latency histogram: the same
        few milliseconds at a million readings as at ten."""
        with self._lock:
            counts = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            buckets = self._db.execute(
                "SELECT bucket, photos FROM latency_histogram ORDER BY bucket").fetchall()
        photos = counts["photos"]
        median = None
        middle = photos // 2  # the upper median, as an ORDER BY … OFFSET photos/2 would give
        for bucket, n in buckets:
            if middle < n:
                median = bucket
                break
            middle -= n
        return LiveStats(photos, counts["users"], counts["confirmed"], counts["corrected"],
                         median)

    def recent_latencies(self, limit: int = 1000) -> list[float]:
        rows = self.execute(
            "SELECT latency_ms FROM predictions ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [ms for (ms,) in rows]

    # --- languages and number corrections ----------------------------------------------

    def language(self, user_id: int) -> str | None:
        """The language the user chose with /language, if any."""
        rows = self.execute("SELECT language FROM user_languages WHERE user_id = ?", (user_id,))
        return rows[0][0] if rows else None

    def set_language(self, user_id: int, language: str) -> None:
        self.execute(
            "INSERT INTO user_languages (user_id, language, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET language = excluded.language,"
            " updated_at = excluded.updated_at",
            (user_id, language, time.time()),
        )

    def add_reading_digits(self, prediction_id: int, digits: list[tuple[int, int, np.ndarray]]
                           ) -> None:
        """Keep each digit of a number reading, (line, digit, crop) in reading order. An update
        handled again (after a restart) replaces the digits its first try stored."""
        with self.transaction() as db:
            db.execute("DELETE FROM prediction_digits WHERE prediction_id = ?", (prediction_id,))
            db.executemany(
                "INSERT INTO prediction_digits (prediction_id, position, line, digit, crop)"
                " VALUES (?, ?, ?, ?, ?)",
                [(prediction_id, position, line, digit, _crop_bytes(crop))
                 for position, (line, digit, crop) in enumerate(digits)],
            )

    def reading_digits(self, prediction_id: int) -> list[ReadingDigit]:
        rows = self.execute(
            "SELECT position, line, digit, crop FROM prediction_digits WHERE prediction_id = ?"
            " ORDER BY position",
            (prediction_id,),
        )
        return [ReadingDigit(*row) for row in rows]

    def has_feedback(self, prediction_id: int) -> bool:
        return bool(self.execute(
            "SELECT 1 FROM feedback WHERE prediction_id = ? LIMIT 1", (prediction_id,)
        ))

    def add_number_feedback(self, prediction: Prediction, labels: list[int]) -> bool:
        """Label every digit of a number reading (one feedback row per digit, one commit);
        False if the reading already has feedback (its questions are then answered)."""
        now = time.time()
        try:
            with self.transaction() as db:
                digits = self.reading_digits(prediction.id)
                if len(labels) != len(digits) or not digits:
                    raise ValueError(f"{len(labels)} labels for a reading of {len(digits)} digits")
                db.executemany(
                    "INSERT INTO feedback (prediction_id, position, user_id, label, confirmed,"
                    " crop, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(prediction.id, d.position, prediction.user_id, label, int(label == d.digit),
                      d.crop, now) for d, label in zip(digits, labels, strict=True)],
                )
        except sqlite3.IntegrityError:  # UNIQUE(prediction_id, position): answered twice
            return False
        return True

    def add_correction_prompt(self, chat_id: int, message_id: int, user_id: int,
                              prediction_id: int, expired_before: float) -> None:
        """Remember the bot's question; questions older than `expired_before` are dropped."""
        with self.transaction() as db:
            db.execute("DELETE FROM correction_prompts WHERE created_at < ?", (expired_before,))
            db.execute(
                "INSERT OR REPLACE INTO correction_prompts (chat_id, message_id, user_id,"
                " prediction_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (chat_id, message_id, user_id, prediction_id, time.time()),
            )

    def correction_prompt(self, chat_id: int, message_id: int) -> CorrectionPrompt | None:
        """The question that is bot message `message_id` in the chat."""
        rows = self.execute(
            "SELECT chat_id, message_id, user_id, prediction_id, created_at"
            " FROM correction_prompts WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        )
        return CorrectionPrompt(*rows[0]) if rows else None

    def latest_correction_prompt(self, user_id: int, chat_id: int, since: float
                                 ) -> CorrectionPrompt | None:
        """The user's newest question in the chat asked after `since` and not yet answered."""
        rows = self.execute(
            "SELECT chat_id, message_id, user_id, prediction_id, created_at"
            " FROM correction_prompts p WHERE user_id = ? AND chat_id = ? AND created_at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.prediction_id = p.prediction_id)"
            " ORDER BY created_at DESC LIMIT 1",
            (user_id, chat_id, since),
        )
        return CorrectionPrompt(*rows[0]) if rows else None

    # --- privacy: /forget and retention --------------------------------------------------

    def forget_user(self, user_id: int, tables: tuple[UserTable, ...] = USER_TABLES
                    ) -> dict[str, int]:
        """Delete every row about `user_id` (USER_TABLES), in one commit: {what: how many}."""
        gone: dict[str, int] = {}
        with self.transaction() as db:
            for t in tables:
                keep = f" AND NOT ({t.busy})" if t.busy else ""
                cur = db.execute(f"DELETE FROM {t.table} WHERE {t.user_column} = ?{keep}",
                                 (user_id,))
                gone[t.what] = cur.rowcount
        return gone

    def expire_batch(self, table: UserTable, cutoff: float, batch: int = 1000) -> int:
        """Delete or anonymise about `batch` of the oldest rows of `table` older than `cutoff`
        (Unix time); how many. Small batches: other work gets the database between them.
        (Batched by time, not rowid: WITHOUT ROWID tables have none.)"""
        when = table.time_column
        where = f"{when} < ?"
        if table.anonymise is None:
            action = f"DELETE FROM {table.table}"
        else:
            where += f" AND {table.user_column} != {ANONYMOUS}"
            action = f"UPDATE {table.table} SET {table.anonymise}"
        with self.transaction() as db:
            last = db.execute(f"SELECT {when} FROM {table.table} WHERE {where} ORDER BY {when}"
                              f" LIMIT 1 OFFSET ?", (cutoff, batch - 1)).fetchone()
            until = cutoff if last is None else last[0]  # fewer left: all of them
            return db.execute(f"{action} WHERE {where} AND {when} <= ?", (cutoff, until)
                              ).rowcount

    # --- model versions -----------------------------------------------------------------

    def model_versions(self) -> list[ModelVersion]:
        rows = self.execute(
            "SELECT version, path, test_accuracy, created_at, promoted_at, active, note, scores"
            " FROM model_versions ORDER BY version"
        )
        return [ModelVersion(v, Path(p), a, c, pr, bool(act), n, json.loads(sc) if sc else None)
                for v, p, a, c, pr, act, n, sc in rows]

    def add_model_version(
        self,
        version: int,
        path: Path,
        test_accuracy: float | None,
        created_at: str | None,
        *,
        activate: bool,
        note: str | None = None,
        scores: str | None = None,
    ) -> None:
        """Record a version; with activate=True it becomes the active one in the same commit."""
        with self.transaction() as db:
            if activate:
                db.execute("UPDATE model_versions SET active = 0 WHERE active = 1")
            db.execute(
                "INSERT INTO model_versions (version, path, test_accuracy, created_at,"
                " promoted_at, active, note, scores) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (version, str(path), test_accuracy, created_at,
                 _now_iso() if activate else None, int(activate), note, scores),
            )

    def set_scores(self, version: int, scores: str) -> None:
        """A version's latest scores on the gate's held-out sets (JSON, bot/gate.py)."""
        with self.transaction() as db:
            db.execute("UPDATE model_versions SET scores = ? WHERE version = ?", (scores, version))

    def activate(self, version: int) -> None:
        """Make `version` the active one (one commit: never zero or two active versions)."""
        with self.transaction() as db:
            db.execute("UPDATE model_versions SET active = 0 WHERE active = 1")
            db.execute(
                "UPDATE model_versions SET active = 1,"
                " promoted_at = COALESCE(promoted_at, ?) WHERE version = ?",
                (_now_iso(), version),
            )


def _samples(crops: list[bytes], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([np.frombuffer(c, np.uint8).reshape(CROP_SHAPE) for c in crops], np.uint8)
    return x.reshape(-1, *CROP_SHAPE), np.array(labels, np.int64)


def _crop_bytes(crop: np.ndarray) -> bytes:
    crop = np.asarray(crop)
    if crop.shape != CROP_SHAPE:
        raise ValueError(f"crop must be {CROP_SHAPE}, got {crop.shape}")
    return np.clip(crop, 0, 255).astype(np.uint8).tobytes()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
