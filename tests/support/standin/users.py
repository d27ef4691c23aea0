"""Users and updates: the people the stand-in plays (their messages, photos, files, button
presses become updates, in their private chats or in groups) and how the bot receives them by
long polling (getMe, getUpdates); webhook.py delivers them instead while a webhook is set."""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Iterator
from typing import Any

from tests.support.standin.core import ApiError, Call, StandInCore, Upload, bot_method
from tests.support.standin.files import FilesMixin

# What Telegram's clients turn into entities: a leading /command, @username mentions.
COMMAND_RE = re.compile(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z][A-Za-z0-9_]{3,31}")


def _utf16(text: str) -> int:
    """Telegram counts entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def entities(text: str) -> list[dict[str, Any]]:
    """The bot_command and mention entities Telegram attaches to a text or caption."""
    found = []
    match = COMMAND_RE.match(text)
    if match:
        found.append({"type": "bot_command", "offset": 0, "length": _utf16(match.group(0))})
    for mention in MENTION_RE.finditer(text):
        if match and mention.start() < match.end():
            continue  # the @bot of /command@bot
        found.append({"type": "mention", "offset": _utf16(text[:mention.start()]),
                      "length": _utf16(mention.group(0))})
    return found


class UsersMixin(FilesMixin, StandInCore):
    """``add_user``, ``add_group``, ``send_text`` / ``send_command`` / ``send_photo`` /
    ``send_document`` / ``send_sticker`` (``chat_id=`` a group, ``reply_to=`` a message id) /
    ``press``, ``at_once``, ``update_ids``, ``update``, ``redeliver``, ``pending_updates``,
    ``pending_update_ids``, ``wait_polling``."""

    def _init_users(self, bot_username: str) -> None:
        self.bot_user: dict[str, Any] = {
            "id": int(self.token.split(":", 1)[0]), "is_bot": True, "first_name": "DigitBot",
            "username": bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self.users: dict[int, dict[str, Any]] = {}
        self.groups: dict[int, dict[str, Any]] = {}  # group and supergroup chats
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
                 last_name: str | None = None, language_code: str | None = "en",
                 is_bot: bool = False) -> dict[str, Any]:
        """Register (or update) a user (``is_bot``: another bot); helpers auto-register
        unknown ids. ``language_code`` None: the client didn't say (Telegram omits it)."""
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot,
                                "first_name": first_name or f"User{user_id}"}
        if language_code is not None:
            user["language_code"] = language_code
        if username:
            user["username"] = username
        if last_name:
            user["last_name"] = last_name
        with self._lock:
            self.users[user_id] = user
        return user

    def add_group(self, chat_id: int, title: str | None = None,
                  kind: str = "supergroup") -> dict[str, Any]:
        """Register a group chat (``kind`` "group" or "supergroup"; ids are negative, a
        supergroup's -100…) whose members are any users who send to it."""
        if chat_id >= 0 or kind not in ("group", "supergroup"):
            raise ValueError("a group has a negative id and is a group or a supergroup")
        chat = {"id": chat_id, "type": kind, "title": title or f"Group {chat_id}"}
        with self._lock:
            self.groups[chat_id] = chat
        return chat

    def _user(self, user_id: int) -> dict[str, Any]:
        return self.users.get(user_id) or self.add_user(user_id)

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self.groups:
            return dict(self.groups[chat_id])
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
        self._updates_queued()
        return update_id

    def _user_message(self, user_id: int, chat_id: int | None = None,
                      reply_to: int | None = None, **fields: Any) -> int:
        """Queue a message from the user into their private chat or ``chat_id`` (a group),
        replying to message ``reply_to`` of that chat."""
        user = self._user(user_id)
        chat_id = user_id if chat_id is None else chat_id
        if chat_id < 0 and chat_id not in self.groups:
            self.add_group(chat_id)
        mid = self._message_id(chat_id)
        message = {"message_id": mid, "date": int(time.time()), "chat": self._chat(chat_id),
                   "from": user, **fields}
        if reply_to is not None:
            replied = self.user_messages.get((chat_id, reply_to)) or self.bot_messages.get(
                (chat_id, reply_to))
            if replied is None:
                raise ValueError(f"no message {reply_to} in chat {chat_id} to reply to")
            message["reply_to_message"] = {k: v for k, v in replied.items()
                                           if k != "reply_to_message"}
        with self._lock:
            self.user_messages[(chat_id, mid)] = message
            self.update_ids[(chat_id, mid)] = self._queue("message", message)
        return mid

    def redeliver(self, update_id: int) -> None:
        """Hand out an update again, as Telegram does when the bot's confirmation (the next
        getUpdates offset) was lost."""
        with self._lock:
            self._updates.append(self._sent_updates[update_id])
            self._updates.sort(key=lambda u: u["update_id"])
        self._wake()
        self._updates_queued()

    def update(self, update_id: int) -> dict[str, Any]:
        """An update as the stand-in handed it out (JSON-like)."""
        return self._sent_updates[update_id]

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """What users send inside arrives together: one getUpdates hands it all out."""
        with self._lock:
            yield

    def send_text(self, user_id: int, text: str, *, chat_id: int | None = None,
                  reply_to: int | None = None) -> int:
        """A text message from the user; a leading /command and @mentions get entities."""
        fields: dict[str, Any] = {"text": text}
        if found := entities(text):
            fields["entities"] = found
        return self._user_message(user_id, chat_id, reply_to, **fields)

    def send_command(self, user_id: int, command: str, args: str = "", *,
                     chat_id: int | None = None) -> int:
        """``/command args`` from the user (command given with or without the slash)."""
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return self.send_text(user_id, text, chat_id=chat_id)

    def send_photo(self, user_id: int, image: bytes, caption: str | None = None, *,
                   width: int | None = None, height: int | None = None,
                   media_group_id: str | None = None, chat_id: int | None = None,
                   reply_to: int | None = None, via_bot: int | None = None) -> int:
        """A photo from the user (Telegram's PhotoSize list); returns the message id.
        ``via_bot``: sent through that inline bot (a registered user with is_bot)."""
        fields: dict[str, Any] = {"photo": self._photo_sizes(image, width, height)}
        if via_bot is not None:
            fields["via_bot"] = self._user(via_bot)
        if caption is not None:
            fields["caption"] = caption
            if found := entities(caption):
                fields["caption_entities"] = found
        if media_group_id:
            fields["media_group_id"] = media_group_id
        return self._user_message(user_id, chat_id, reply_to, **fields)

    def send_document(self, user_id: int, data: bytes, file_name: str = "file.bin",
                      mime_type: str | None = "application/octet-stream",
                      caption: str | None = None, *, chat_id: int | None = None,
                      reply_to: int | None = None) -> int:
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
            if found := entities(caption):
                fields["caption_entities"] = found
        return self._user_message(user_id, chat_id, reply_to, **fields)

    def send_sticker(self, user_id: int, emoji: str = "👍", *, chat_id: int | None = None) -> int:
        """A regular (static webp) sticker."""
        file_id = self.register_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", kind="stickers",
                                     suffix=".webp")
        sticker = {"file_id": file_id, "file_unique_id": self._files[file_id].file_unique_id,
                   "type": "regular", "width": 512, "height": 512, "is_animated": False,
                   "is_video": False, "emoji": emoji, "file_size": 14}
        return self._user_message(user_id, chat_id, sticker=sticker)

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

    @bot_method("getUpdates")
    async def _get_updates(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates") or None
        if conflict := self._polling_refused():
            raise ApiError(409, conflict)
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

    # Provided by webhook.py.
    def _polling_refused(self) -> str | None:
        """Why getUpdates is refused now (a webhook is set), or None."""
        raise NotImplementedError

    def _updates_queued(self) -> None:
        """A new update is pending: deliver it when a webhook is set."""
        raise NotImplementedError
