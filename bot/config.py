"""The bot's settings, read from the environment and `.env` (every one is in .env.example)."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model import RELEASE_DIR

SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    """Everything an operator can set; the defaults are Telegram's limits and safe choices."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    telegram_api_url: str = "https://api.telegram.org"
    data_dir: Path = Path("var")
    mnist_path: Path | None = None
    release_model_dir: Path = RELEASE_DIR
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Outgoing rate limits (Telegram's published limits); RATE_LIMIT=0 lifts all of them.
    rate_limit: bool = True
    rate_overall_per_s: float = Field(30, ge=0)
    rate_group_per_min: float = Field(20, ge=0)
    rate_chat_per_s: float = Field(1, ge=0)
    rate_chat_burst: int = Field(1, ge=1)
    rate_max_retries: int = Field(5, ge=0)  # retries after a 429 (retry_after honoured)

    # Outages (bot/retry.py): transient failures of any call are retried with exponential
    # backoff and jitter, each update for up to RETRY_DEADLINE_S from its first failure; then
    # it waits in the inbox and is tried again later.
    retry_deadline_s: float = Field(300, ge=0)
    retry_base_s: float = Field(0.5, gt=0)  # the first wait; doubles after each failure
    retry_max_s: float = Field(30, gt=0)  # the longest wait between two tries
    # The inbox (bot/inbox.py): unfinished updates younger than this are handled again after a
    # restart (Telegram keeps undelivered updates for 24 h); done ones are forgotten after it.
    inbox_max_age: timedelta = timedelta(hours=24)
    inbox_retry_after_s: float = Field(60, gt=0)  # an update that gave up waits this long

    # Serving.
    max_concurrent_updates: int = Field(1024, ge=1)
    recognize_threads: int = Field(2, ge=1)
    # Keep-alive connections to the Bot API: with Telegram ~0.1 s away, 30 replies/s plus the
    # getFile calls and downloads keep a dozen busy; spare ones cost nothing.
    http_connections: int = Field(64, ge=1)
    user_in_flight: int = Field(1, ge=1)  # photos of one user read at the same time
    queue_notice_after: int = Field(3, ge=1)  # waiting photos before the "one by one" note
    max_file_mb: float = Field(20, gt=0)  # Telegram lets bots download up to 20 MB
    doubt_threshold: float = Field(0.90, ge=0, le=1)  # below: show alternatives + the photo
    # Groups: photos that mention the bot or reply to it are always read; True: every other
    # photo Telegram delivers too (all of them once privacy mode is off or the bot is an
    # admin), answered only when it holds digits.
    group_read_all: bool = True

    # Data kept (bot/retention.py): after DATA_RETENTION_DAYS a reading loses its user and chat
    # ids and its crop, and feedback is deleted; /stats's totals are counters and stay.
    data_retention_days: float = Field(180, gt=0)
    retention_interval_s: float = Field(3600, gt=0)  # how often the retention job runs
    retrain_keep_runs: int = Field(10, ge=1)  # DATA_DIR/retrain/<stamp>/ directories kept

    # Retraining.
    retrain_default_epochs: int | None = Field(None, ge=1)  # None: model.train's own default
    retrain_max_epochs: int = Field(50, ge=1)
    # "serving": fine-tune the serving model (`model.train --init`: two epochs, minutes);
    # "scratch": train a new one (14 epochs, ~40 minutes on two cores with every core).
    retrain_from: Literal["serving", "scratch"] = "serving"
    retrain_edit_interval_s: float = Field(2.0, ge=0)  # throttle for progress-message edits
    # Accuracy (fraction) a new model may lose on the test split and still be promoted;
    # 0: only a model that is not worse replaces the serving one.
    promote_tolerance: float = Field(0.0, ge=0, le=1)
    # Cells of real handwriting by held-out writers the gate reads with both models (0: none);
    # where kensanata is (default: ../shared/data/kensanata beside the checkout; absent: none).
    retrain_eval_cells: int = Field(600, ge=0)
    kensanata_path: Path | None = None
    # The training runs this much nicer than the bot (0..19) with at most this many
    # TensorFlow threads (0: TensorFlow's own choice), so serving keeps its cores.
    retrain_nice: int = Field(10, ge=0, le=19)
    retrain_threads: int = Field(1, ge=0)
    # A shell command that trains instead of the local `python -m model.train` (another
    # machine, a container, a Kubernetes Job); see docs/operations.md for its contract.
    retrain_command: str | None = None
    # Feedback one user may add to a retraining: at most this many samples, and at most this
    # share of all samples used (of at least CORRECTIONS_PER_USER samples in all).
    corrections_per_user: int = Field(100, ge=1)
    corrections_user_share: float = Field(0.2, gt=0, le=1)

    # Webhook mode (WEBHOOK_URL set) instead of long polling; Telegram needs HTTPS.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(8443, ge=1, le=65535)
    # Telegram sends it in X-Telegram-Bot-Api-Secret-Token with every update: 1-256 of
    # A-Z a-z 0-9 _ -. Required in webhook mode.
    webhook_secret: SecretStr | None = None
    # /healthz and /metrics in polling mode (off when unset); on WEBHOOK_PORT in webhook mode.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_listen: str = "127.0.0.1"
    # /healthz fails when no Bot API call succeeded for this long (after one getMe to check).
    health_api_max_age_s: float = Field(120, gt=0)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """ADMIN_IDS=123,456 (commas or spaces) → {123, 456}; numeric ids only."""
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
            raise ValueError("give the public https:// address Telegram posts updates to")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_chars(cls, value: SecretStr | None) -> SecretStr | None:
        """Telegram's rule for secret_token (the value itself is never echoed)."""
        if value is not None and not SECRET_RE.fullmatch(value.get_secret_value()):
            raise ValueError("use 1 to 256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def api_root(self) -> str:
        return self.telegram_api_url.rstrip("/")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "digitbot.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def webhook_path(self) -> str:
        """Where the webhook server takes updates: the path of WEBHOOK_URL (a reverse proxy
        forwards it unchanged)."""
        return urlsplit(self.webhook_url or "").path or "/"


def load_settings() -> Settings:
    """Settings, or one clear line on stderr and exit code 2 (values are never echoed)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            if name == "BOT_TOKEN" and error["type"] == "missing":
                print(
                    "BOT_TOKEN is not set: put BOT_TOKEN=<token from @BotFather> in the "
                    "environment or in .env (see .env.example)",
                    file=sys.stderr,
                )
            else:
                print(f"Invalid setting {name}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    if settings.webhook_url and settings.webhook_secret is None:
        print(
            "WEBHOOK_SECRET is not set: webhook mode (WEBHOOK_URL) needs it, so that only "
            "Telegram can post updates: put WEBHOOK_SECRET=<1-256 of A-Z a-z 0-9 _ -> in the "
            "environment or in .env (see .env.example)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return settings
