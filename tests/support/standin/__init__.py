"""A local Telegram Bot API stand-in: an aiohttp server that speaks the Bot API over HTTP.

The real python-telegram-bot bot runs against it unmodified: point ``TELEGRAM_API_URL`` at
``standin.url`` (the bot then uses ``<url>/bot`` and ``<url>/file/bot``). The stand-in plays the
users (it queues their updates for ``getUpdates``), records every call the bot makes, and injects
the faults Telegram and networks produce.

Served like Telegram:
    POST/GET ``/bot<token>/<method>``  JSON, form-encoded or multipart bodies (files as parts,
                                        ``attach://<name>`` references in ``media``)
    GET ``/file/bot<token>/<file_path>``  file download (after ``getFile``)
    answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
    "description": "...", "parameters": {"retry_after": N}}``; a wrong token gets 401; a method
    that doesn't exist gets 404 ``Not Found`` (recorded in ``unknown_methods``); a missing
    required parameter gets Telegram's 400 ("Bad Request: chat_id is empty", "Bad Request:
    message text is empty", ...).

One class, its methods by concern (each module's docstring says what it holds):
``core.py`` server, routing, token, validation, recording, ``wait_for``; ``users.py`` users and
updates (getMe, getUpdates); ``webhook.py`` setWebhook/deleteWebhook/getWebhookInfo and the
updates POSTed to the bot's webhook while one is set; ``files.py`` getFile and downloads;
``messages.py`` send*/edit*/answerCallbackQuery/sendChatAction/deleteMessage/the command menu;
``faults.py`` injected errors, delays and outages. See tests/support/__init__.py for the guide.
"""

from __future__ import annotations

from tests.support.standin.core import (
    DEFAULT_TOKEN,
    EDIT_METHODS,
    SEND_METHODS,
    ApiError,
    Call,
    Upload,
    bot_method,
    most_in_window,
)
from tests.support.standin.faults import FaultsMixin
from tests.support.standin.messages import MessagesMixin
from tests.support.standin.webhook import WebhookDelivery, WebhookMixin

__all__ = ["DEFAULT_TOKEN", "EDIT_METHODS", "SEND_METHODS", "ApiError", "BotApiStandIn", "Call",
           "Upload", "WebhookDelivery", "bot_method", "most_in_window"]


class BotApiStandIn(MessagesMixin, WebhookMixin, FaultsMixin):
    """The Bot API server plus the users it plays. See tests/support/__init__.py."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1", port: int = 0,
                 bot_username: str = "digitbot_test_bot", strict_chats: bool = True,
                 thumbnails: bool = True) -> None:
        super().__init__(token, host, port)
        self._init_files(thumbnails)
        self._init_users(bot_username)
        self._init_messages(strict_chats)
        self._init_webhook()
        self._init_faults()
