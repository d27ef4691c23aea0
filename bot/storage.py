"""SQLite storage: predictions, feedback samples (labelled 28×28 crops), model versions, users'
languages and the questions asked to correct a number.

One connection, used from the event loop only (statements take well under a millisecond).
WAL journal: readers never block the writer, and a commit survives the process being killed
at any moment, so a correction that was acknowledged to the user is never lost.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CROP_SHAPE = (28, 28)

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


class Storage:
    """The bot's database in DATA_DIR; created and migrated when opened."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
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

    def close(self) -> None:
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
        user_id: int,
        chat_id: int,
        status: str,
        reading: str,
        confidence: float | None,
        latency_ms: float,
        model_version: int,
        crop: np.ndarray | None,
    ) -> int:
        blob = None if crop is None else _crop_bytes(crop)
        cur = self._db.execute(
            "INSERT INTO predictions (user_id, chat_id, created_at, status, reading, confidence,"
            " latency_ms, model_version, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, chat_id, time.time(), status, reading, confidence, latency_ms,
             model_version, blob),
        )
        assert cur.lastrowid is not None  # an INSERT sets it
        return cur.lastrowid

    def set_reply_message(self, prediction_id: int, message_id: int) -> None:
        self._db.execute(
            "UPDATE predictions SET message_id = ? WHERE id = ?", (message_id, prediction_id)
        )

    def prediction(self, prediction_id: int) -> Prediction | None:
        row = self._db.execute(
            "SELECT id, user_id, chat_id, message_id, reading, crop FROM predictions WHERE id = ?",
            (prediction_id,),
        ).fetchone()
        return Prediction(*row) if row else None

    def add_feedback(self, prediction: Prediction, label: int) -> bool:
        """Store the label for a single-digit prediction; False if it already has feedback."""
        if prediction.crop is None:
            raise ValueError("feedback needs a single-digit prediction with its crop")
        try:
            self._db.execute(
                "INSERT INTO feedback (prediction_id, user_id, label, confirmed, crop, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (prediction.id, prediction.user_id, label, int(prediction.reading == str(label)),
                 prediction.crop, time.time()),
            )
        except sqlite3.IntegrityError:  # UNIQUE(prediction_id, position): pressed twice
            return False
        return True

    def feedback_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """All human-labelled crops: x uint8 (N, 28, 28) white on black, y int64 (N,)."""
        rows = self._db.execute("SELECT crop, label FROM feedback ORDER BY id").fetchall()
        x = np.array([np.frombuffer(c, np.uint8).reshape(CROP_SHAPE) for c, _ in rows], np.uint8)
        y = np.array([label for _, label in rows], np.int64)
        return x.reshape(-1, *CROP_SHAPE), y

    def live_stats(self) -> LiveStats:
        photos, users = self._db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM predictions"
        ).fetchone()
        # a reading counts once: confirmed when every digit of it was (numbers have several)
        confirmed, total = self._db.execute(
            "SELECT COALESCE(SUM(ok), 0), COUNT(*) FROM"
            " (SELECT MIN(confirmed) AS ok FROM feedback GROUP BY prediction_id)"
        ).fetchone()
        median = None
        if photos:
            (median,) = self._db.execute(
                "SELECT latency_ms FROM predictions ORDER BY latency_ms LIMIT 1 OFFSET ?",
                (photos // 2,),
            ).fetchone()
        return LiveStats(photos, users, confirmed, total - confirmed, median)

    def recent_latencies(self, limit: int = 1000) -> list[float]:
        rows = self._db.execute(
            "SELECT latency_ms FROM predictions ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [ms for (ms,) in rows]

    # --- languages and number corrections ----------------------------------------------

    def language(self, user_id: int) -> str | None:
        """The language the user chose with /language, if any."""
        row = self._db.execute(
            "SELECT language FROM user_languages WHERE user_id = ?", (user_id,)
        ).fetchone()
        return row[0] if row else None

    def set_language(self, user_id: int, language: str) -> None:
        self._db.execute(
            "INSERT INTO user_languages (user_id, language, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET language = excluded.language,"
            " updated_at = excluded.updated_at",
            (user_id, language, time.time()),
        )

    def add_reading_digits(self, prediction_id: int, digits: list[tuple[int, int, np.ndarray]]
                           ) -> None:
        """Keep each digit of a number reading, (line, digit, crop) in reading order."""
        self._db.executemany(
            "INSERT INTO prediction_digits (prediction_id, position, line, digit, crop)"
            " VALUES (?, ?, ?, ?, ?)",
            [(prediction_id, position, line, digit, _crop_bytes(crop))
             for position, (line, digit, crop) in enumerate(digits)],
        )

    def reading_digits(self, prediction_id: int) -> list[ReadingDigit]:
        rows = self._db.execute(
            "SELECT position, line, digit, crop FROM prediction_digits WHERE prediction_id = ?"
            " ORDER BY position",
            (prediction_id,),
        ).fetchall()
        return [ReadingDigit(*row) for row in rows]

    def has_feedback(self, prediction_id: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM feedback WHERE prediction_id = ? LIMIT 1", (prediction_id,)
        ).fetchone()
        return row is not None

    def add_number_feedback(self, prediction: Prediction, labels: list[int]) -> bool:
        """Label every digit of a number reading (one feedback row per digit, one commit);
        False if the reading already has feedback (its questions are then answered)."""
        digits = self.reading_digits(prediction.id)
        if len(labels) != len(digits) or not digits:
            raise ValueError(f"{len(labels)} labels for a reading of {len(digits)} digits")
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO feedback (prediction_id, position, user_id, label, confirmed, crop,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(prediction.id, d.position, prediction.user_id, label, int(label == d.digit),
                  d.crop, now) for d, label in zip(digits, labels, strict=True)],
            )
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError:  # UNIQUE(prediction_id, position): answered twice
            self._db.execute("ROLLBACK")
            return False
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return True

    def add_correction_prompt(self, chat_id: int, message_id: int, user_id: int,
                              prediction_id: int, expired_before: float) -> None:
        """Remember the bot's question; questions older than `expired_before` are dropped."""
        self._db.execute("DELETE FROM correction_prompts WHERE created_at < ?",
                         (expired_before,))
        self._db.execute(
            "INSERT OR REPLACE INTO correction_prompts (chat_id, message_id, user_id,"
            " prediction_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (chat_id, message_id, user_id, prediction_id, time.time()),
        )

    def correction_prompt(self, chat_id: int, message_id: int) -> CorrectionPrompt | None:
        """The question that is bot message `message_id` in the chat."""
        row = self._db.execute(
            "SELECT chat_id, message_id, user_id, prediction_id, created_at"
            " FROM correction_prompts WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        ).fetchone()
        return CorrectionPrompt(*row) if row else None

    def latest_correction_prompt(self, user_id: int, chat_id: int, since: float
                                 ) -> CorrectionPrompt | None:
        """The user's newest question in the chat asked after `since` and not yet answered."""
        row = self._db.execute(
            "SELECT chat_id, message_id, user_id, prediction_id, created_at"
            " FROM correction_prompts p WHERE user_id = ? AND chat_id = ? AND created_at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.prediction_id = p.prediction_id)"
            " ORDER BY created_at DESC LIMIT 1",
            (user_id, chat_id, since),
        ).fetchone()
        return CorrectionPrompt(*row) if row else None

    # --- model versions -----------------------------------------------------------------

    def model_versions(self) -> list[ModelVersion]:
        rows = self._db.execute(
            "SELECT version, path, test_accuracy, created_at, promoted_at, active, note"
            " FROM model_versions ORDER BY version"
        ).fetchall()
        return [ModelVersion(v, Path(p), a, c, pr, bool(act), n) for v, p, a, c, pr, act, n in rows]

    def add_model_version(
        self,
        version: int,
        path: Path,
        test_accuracy: float | None,
        created_at: str | None,
        *,
        activate: bool,
        note: str | None = None,
    ) -> None:
        """Record a version; with activate=True it becomes the active one in the same commit."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if activate:
                self._db.execute("UPDATE model_versions SET active = 0 WHERE active = 1")
            self._db.execute(
                "INSERT INTO model_versions (version, path, test_accuracy, created_at,"
                " promoted_at, active, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version, str(path), test_accuracy, created_at,
                 _now_iso() if activate else None, int(activate), note),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def activate(self, version: int) -> None:
        """Make `version` the active one (one commit: never zero or two active versions)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("UPDATE model_versions SET active = 0 WHERE active = 1")
            self._db.execute(
                "UPDATE model_versions SET active = 1,"
                " promoted_at = COALESCE(promoted_at, ?) WHERE version = ?",
                (_now_iso(), version),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


def _crop_bytes(crop: np.ndarray) -> bytes:
    crop = np.asarray(crop)
    if crop.shape != CROP_SHAPE:
        raise ValueError(f"crop must be {CROP_SHAPE}, got {crop.shape}")
    return np.clip(crop, 0, 255).astype(np.uint8).tobytes()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
