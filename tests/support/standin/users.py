"""Users and updates: the people the stand-in plays (their messages, photos, files, button
presses become updates) and how the bot receives them (getMe, getUpdates long polling, the
webhook methods polling needs)."""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Iterator
from typing import Any

from tests.support.standin.core import ApiError, Call, StandInCore, Upload, bot_method
from tests.support.standin.files import FilesMixin


class UsersMixin(FilesMixin, StandInCore):
    """``add_user``, ``send_text`` / ``send_command`` / ``send_photo`` / ``send_document`` /
    ``send_sticker`` / ``press``, ``at_once``, ``update_ids``, ``update``, ``redeliver``,
    ``pending_updates``, ``pending_update_ids``, ``wait_polling``."""

    def _init_users(self, bot_username: str) -> None:
        self.bot_user: dict[str, Any] = {
            "id": int(self.token.split(":", 1)[0]), "is_bot": True, "first_name": "DigitBot",
            "username": bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self.users: dict[int, dict[str, Any]] = {}
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.bot_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self.update_ids: dict[tuple[int, int], int] = {}  # (chat, message id) -> update_id
        self._sent_updates: dict[int, dict[str, Any]] = {}
        self._update_ids = itertools.count(10_000)
        self._callback_ids = itertools.count(7_000_000)
        self._next_message_id: dict[int, int] = {}
        self._pending_callbacks: set[str] = set()
        self._poll_generation = 0

    # ----------------------------------------------------------------- people and chats
    def add_user(self, user_id: int, first_name: str | None = None, username: str | None = None,
                 last_name: str | None = None, language_code: str = "en") -> dict[str, Any]:
        """Register (or update) a user; helpers auto-register unknown ids."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False,
                                "first_name": first_name or f"User{user_id}",
                                "language_code": language_code}
        if username:
            user["username"] = username
        if last_name:
            user["last_name"] = last_name
        with self._lock:
            self.users[user_id] = user
        return user

    def _user(self, user_id: int) -> dict[str, Any]:
        return self.users.get(user_id) or self.add_user(user_id)

    def _chat(self, chat_id: int) -> dict[str, Any]:
        user = self.users.get(chat_id)
        chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        if user:
            chat["first_name"] = user["first_name"]
            if "username" in user:
                chat["username"] = user["username"]
        elif chat_id < 0:
            chat["title"] = f"Group {chat_id}"
        return chat

    def _message_id(self, chat_id: int) -> int:
        """The chat's next message id (users' and the bot's messages share the sequence)."""
        with self._lock:
            mid = self._next_message_id.get(chat_id, 1)
            self._next_message_id[chat_id] = mid + 1
        return mid

    # ----------------------------------------------------------------- what users do
    def _queue(self, kind: str, payload: dict[str, Any]) -> int:
        with self._lock:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, kind: payload})
            self._sent_updates[update_id] = self._updates[-1]
        self._wake()
        return update_id

    def _user_message(self, user_id: int, **fields: Any) -> int:
        user = self._user(user_id)
        mid = self._message_id(user_id)
        message = {"message_id": mid, "date": int(time.time()), "chat": self._chat(user_id),
                   "from": user, **fields}
        with self._lock:
            self.user_messages[(user_id, mid)] = message
            self.update_ids[(user_id, mid)] = self._queue("message", message)
        return mid

    def redeliver(self, update_id: int) -> None:
        """Hand out an update again, as Telegram does when the bot's confirmation (the next
        getUpdates offset) was lost."""
        with self._lock:
            self._updates.append(self._sent_updates[update_id])
            self._updates.sort(key=lambda u: u["update_id"])
        self._wake()

    def update(self, update_id: int) -> dict[str, Any]:
        """An update as the stand-in handed it out (JSON-like)."""
        return self._sent_updates[update_id]

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """What users send inside arrives together: one getUpdates hands it all out."""
        with self._lock:
            yield

    def send_text(self, user_id: int, text: str) -> int:
        """A text message from the user; a leading /command gets its bot_command entity."""
        fields: dict[str, Any] = {"text": text}
        match = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if match:
            fields["entities"] = [{"type": "bot_command", "offset": 0,
                                   "length": len(match.group(0).encode("utf-16-le")) // 2}]
        return self._user_message(user_id, **fields)

    def send_command(self, user_id: int, command: str, args: str = "") -> int:
        """``/command args`` from the user (command given with or without the slash)."""
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return self.send_text(user_id, text)

    def send_photo(self, user_id: int, image: bytes, caption: str | None = None, *,
                   width: int | None = None, height: int | None = None,
                   media_group_id: str | None = None) -> int:
        """A photo from the user (Telegram's PhotoSize list); returns the message id."""
        fields: dict[str, Any] = {"photo": self._photo_sizes(image, width, height)}
        if caption is not None:
            fields["caption"] = caption
        if media_group_id:
            fields["media_group_id"] = media_group_id
        return self._user_message(user_id, **fields)

    def send_document(self, user_id: int, data: bytes, file_name: str = "file.bin",
                      mime_type: str | None = "application/octet-stream",
                      caption: str | None = None) -> int:
        """A file sent as a document (any bytes, name and mime type)."""
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        file_id = self.register_file(data, kind="documents", suffix=suffix)
        document: dict[str, Any] = {"file_id": file_id,
                                    "file_unique_id": self._files[file_id].file_unique_id,
                                    "file_name": file_name, "file_size": len(data)}
        if mime_type:
            document["mime_type"] = mime_type
        fields: dict[str, Any] = {"document": document}
        if caption is not None:
            fields["caption"] = caption
        return self._user_message(user_id, **fields)

    def send_sticker(self, user_id: int, emoji: str = "👍") -> int:
        """A regular (static webp) sticker."""
        file_id = self.register_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", kind="stickers",
                                     suffix=".webp")
        sticker = {"file_id": file_id, "file_unique_id": self._files[file_id].file_unique_id,
                   "type": "regular", "width": 512, "height": 512, "is_animated": False,
                   "is_video": False, "emoji": emoji, "file_size": 14}
        return self._user_message(user_id, sticker=sticker)

    def press(self, user_id: int, message_id: int, data: str, *,
              chat_id: int | None = None) -> str:
        """The user presses an inline button with ``data`` on bot message ``message_id``.

        ``chat_id`` defaults to the user's chat; the message need not exist (forgeries).
        Returns the callback query id the bot must answer.
        """
        chat_id = user_id if chat_id is None else chat_id
        message = self.bot_messages.get((chat_id, message_id)) or {
            "message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id),
            "from": self.bot_user, "text": "?"}
        query_id = str(next(self._callback_ids))
        with self._lock:
            self._pending_callbacks.add(query_id)
        self._queue("callback_query", {"id": query_id, "from": self._user(user_id),
                                       "message": message, "chat_instance": f"ci{chat_id}",
                                       "data": data})
        return query_id

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._lock:
            return len(self._updates)

    @property
    def pending_update_ids(self) -> set[int]:
        """The update_ids queued and not yet confirmed by a getUpdates offset."""
        with self._lock:
            return {u["update_id"] for u in self._updates}

    async def wait_polling(self, after: float = 0.0, timeout: float = 10.0) -> Call:
        """A getUpdates call received after monotonic time ``after`` (the bot is polling)."""
        deadline = time.monotonic() + timeout
        while True:
            for call in list(self.calls):
                if call.method == "getUpdates" and call.time >= after:
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no getUpdates after t={after:.2f} within {timeout}s")
            await self._wait_change(remaining)

    # ----------------------------------------------------------------- Bot API
    @bot_method("getMe")
    async def _get_me(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return self.bot_user

    @bot_method("close")
    async def _close(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return True

    @bot_method("logOut")
    async def _log_out(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return True

    @bot_method("deleteWebhook")
    async def _delete_webhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        return True

    @bot_method("getWebhookInfo")
    async def _get_webhook_info(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return {"url": "", "has_custom_certificate": False,
                "pending_update_count": self.pending_updates}

    @bot_method("getUpdates")
    async def _get_updates(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates") or None
        with self._lock:
            if offset > 0:  # confirms every update below offset
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            self._poll_generation += 1
            generation = self._poll_generation
        self._wake()  # ends an older poll with 409 Conflict, like Telegram
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                        "make sure that only one bot instance is running")
                ready = [u for u in self._updates
                         if allowed is None or any(k in allowed for k in u if k != "update_id")]
            if ready or time.monotonic() >= deadline:
                return ready[:limit]
            await self._wait_change(deadline - time.monotonic())
