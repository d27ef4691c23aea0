"""Logging set-up that never writes the bot token (the HTTP client logs URLs containing it)."""

from __future__ import annotations

import logging

REDACTED = "<token>"


class TokenFilter(logging.Filter):
    """Replaces the token in every record's message and traceback with "<token>"."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, REDACTED), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, REDACTED)
        return True


def setup_logging(level: str, token: str) -> None:
    """Root logging at LOG_LEVEL, httpx and apscheduler quiet, the token filtered out of every
    handler."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job run otherwise
    token_filter = TokenFilter(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(token_filter)
