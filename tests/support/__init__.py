"""Test support: the Bot API stand-in, the bot as a process or in process, pictures to send.

Tests and benches import from here (``from tests.support import ...``); nothing edits
``sys.path``. Benches run from the repository root as modules: ``python -m bench.bot_bench``.

Modules
-------
``standin/``      the Bot API stand-in (``BotApiStandIn``): an aiohttp server speaking the Bot
                  API over HTTP, playing the users, recording every call, injecting faults.
                  One class, its methods by concern: ``core.py`` (server, routing, token,
                  parameter validation, recording, ``wait_for``), ``users.py`` (users and
                  updates: getMe, getUpdates, ``send_*``/``press``), ``webhook.py``
                  (setWebhook/deleteWebhook/getWebhookInfo; updates POSTed to
                  ``webhook_target`` with the secret header while a webhook is set,
                  ``webhook_deliveries``, ``wait_delivery``), ``files.py`` (getFile,
                  downloads), ``messages.py`` (send*/edit*/answerCallbackQuery/
                  sendChatAction/deleteMessage/the command menu, and ``wait_reply``/
                  ``messages_to``), ``faults.py`` (errors, delays, outages).
``bot_process.py`` ``BotProcess``: ``python -m bot`` as a child process pointed at a stand-in
                  (``start(python=...)`` waits until ``wait_ready()``: its first getUpdates,
                  a subclass may wait for setWebhook; ``cwd``; ``stop()``, ``kill()``,
                  ``log()``, ``wait_log(text)``, ``training_children()``,
                  ``stop_and_check_log()``: no token in the log, no unknown method called).
                  ``ADMIN_ID``, ``SAMPLE`` (tests/data/mnist_sample.npz), ``ROOT``.
``in_process.py`` ``running_bot(api, data_dir, **settings)``: bot.app's own Application polling
                  the stand-in in the test's event loop (``bot_settings`` builds its Settings).
``conversation.py`` ``ask``/``press`` (sync, stand-in in a thread), ``ask_async``/
                  ``press_async`` (async tests), ``reading(call)``, ``buttons(call)``,
                  ``REPLY_S``.
``pictures.py``   ``digit_photo(i)`` (a sample digit the release model reads right, on paper,
                  and its label), ``number_photo("2026")``, ``lines_photo(("12", "345"))``
                  (numbers on lines one under the other), ``blank_photo()``, ``huge_png()``,
                  ``tiny_png()``. Realistic phone photos: ``model.photos``.
``web.py``        plain HTTP to the bot's own server: ``free_port()``, ``http(...)``,
                  ``healthz(port)``, ``scrape(port)`` (/metrics, parsed); sync, so async tests
                  call them through ``asyncio.to_thread``.
``remote_trainer.py`` a script playing a RETRAIN_COMMAND on another machine.

Fixtures (tests/conftest.py)
----------------------------
``api``            a stand-in in the test's own event loop (async tests; pytest-asyncio runs
                   every ``async def`` test, asyncio_mode = "auto").
``app``            the bot's Application polling ``api`` in process (the release model,
                   Telegram's limits, ADMIN_ID as admin). Prefer it: handler-level tests need
                   no child process. Other settings: ``async with running_bot(api, tmp_path /
                   "data", rate_limit=False) as app:``.
``standin``        one stand-in per module in a background thread (sync tests, bot processes).
``bot_factory``    ``bot_factory(name, **env)`` starts a ``BotProcess`` on ``standin``; all are
                   stopped and their logs checked at the end of the module. A process is for
                   what only a process shows: startup, signals, kill -9, the log file.

Writing a test
--------------
In process (async)::

    async def test_x(api: BotApiStandIn, app: BotApplication) -> None:
        mid = api.send_photo(101, digit_photo(0)[0])
        reply = await api.wait_reply(101, mid)          # a Call: method, params, text, ...
        assert reply.text.startswith("7 · ")
        assert app.bot_data.services.storage.live_stats().photos == 1

With a process (sync)::

    def test_y(standin: BotApiStandIn, bot_factory) -> None:
        bot = bot_factory("y", RATE_LIMIT="0")
        reply = ask(standin, 101, lambda: standin.send_command(101, "start"))

Compare replies with the texts in bot/replies.py, not "any text". Wait for events
(``wait_reply``, ``wait_message``, ``wait_callback_answer``, ``wait_polling``,
``BotProcess.wait_log``), never for fixed times.

Users (private chats: chat id == user id): ``add_user(id, first_name=, username=,
language_code=, is_bot=)``; ``send_text``, ``send_command(user, "retrain", "3")``,
``send_photo(user, bytes, caption=)``, ``send_document(user, bytes, name, mime)``,
``send_sticker``, ``press(user, message_id, data, chat_id=)`` -> callback query id.
Groups: ``add_group(-100123, "title", kind="supergroup")``; the send helpers take
``chat_id=`` (a group: any user may send there) and ``reply_to=`` (a message id of that chat:
the update carries ``reply_to_message``); texts and captions get Telegram's ``bot_command``
and ``mention`` entities (``"@digitbot_test_bot look"``).
Recording: ``calls`` (``Call``: method, params, files, time, status, result, fault; ``ok``,
``chat_id``, ``text``, ``reply_to``, ``photo_bytes``), ``calls_to(*methods)``,
``messages_to(chat)``, ``replies_to(chat, mid)``, ``answered_callbacks``, ``bot_messages``,
``commands`` (the menu for everyone), ``commands_by_language`` ("de": the German menu),
``unknown_methods``, ``pending_updates``, ``max_rate``, ``rate``.

Adding a Bot API method to the stand-in
---------------------------------------
In the module of its concern, a coroutine marked with ``bot_method(name, *required)``::

    @bot_method("sendSticker", "chat_id", "sticker")
    async def _send_sticker(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        ...
        return self._bot_message(chat_id, params, sticker=...)

The core finds it by name (any case, like Telegram), answers 400 when a required parameter is
missing or empty (the description from ``core.MISSING``, else 'parameter "x" is required'),
records the call, and turns ``raise ApiError(400, "Bad Request: ...")`` into Telegram's error
answer. A method that isn't marked doesn't exist: 404 ``Not Found``, recorded in
``unknown_methods`` (``BotProcess.stop_and_check_log`` fails on any). Add the method to
``test_every_method_declares_its_required_parameters`` and a case to the 400 test in
tests/test_standin.py.

Injecting faults
----------------
``api.fail(method, status=429, retry_after=1, times=1)`` answers the next ``times`` calls with
an error (``"*"``: any method; ``"download"``: the file endpoint; a 3xx: a redirect loop);
``api.delay(method, seconds, times=1)`` holds them; ``api.clear_faults()``.
``await api.go_down()`` / ``await api.come_back()`` / ``await api.outage(seconds)``: the server
refuses connections, then listens again on the same port (updates queued meanwhile are kept).
From sync code: ``standin.run(standin.go_down())``. ``api.fail_everything(seconds, 502)``: every
call and download fails for a while; ``api.hang_everything(seconds, hold=6)``: each is held past
the bot's read timeout, then answered 504. ``api.on_delivered(method, callback)``: the callback
runs (on the stand-in's thread) once a call has done its work and before the bot hears the
answer — e.g. ``bot.proc.kill()`` in the instant after a send; it returns False to wait for a
later call. ``with api.at_once():`` what users send inside is handed out by one getUpdates;
``api.update_ids[(chat, mid)]``, ``api.pending_update_ids``, ``api.redeliver(update_id)`` (an
update sent again, as Telegram does when the bot's confirmation was lost).
"""

from tests.support.bot_process import ADMIN_ID, ROOT, SAMPLE, BotProcess, kill_on
from tests.support.standin import BotApiStandIn, Call, most_in_window

__all__ = ["ADMIN_ID", "ROOT", "SAMPLE", "BotApiStandIn", "BotProcess", "Call", "kill_on",
           "most_in_window"]
