"""Faults the stand-in injects: error answers (429 with retry_after, 5xx, any 4xx, a redirect
loop), slow answers, the whole server going away and coming back, spells during which every
call fails (5xx) or hangs past the client's timeout, and a hook that runs the moment a call was
delivered (e.g. to kill the bot before it hears the answer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.standin.core import ApiError, Call, StandInCore

DESCRIPTIONS = {
    400: "Bad Request: injected fault", 403: "Forbidden: bot was blocked by the user",
    404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class _Fault:
    method: str
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Delay:
    method: str
    seconds: float
    remaining: int


@dataclass
class _Spell:
    until: float  # monotonic
    status: int
    hold: float  # seconds each call is held before its error answer (0: answered at once)


@dataclass
class _Hook:
    method: str
    callback: Callable[[Call], bool | None]
    remaining: int


class FaultsMixin(StandInCore):
    """``fail``, ``delay``, ``clear_faults``, ``go_down`` / ``come_back`` / ``outage``,
    ``fail_everything``, ``hang_everything``, ``on_delivered``."""

    def _init_faults(self) -> None:
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._spell: _Spell | None = None
        self._hooks: list[_Hook] = []

    def fail(self, method: str, status: int = 429, retry_after: int | None = None,
             times: int = 1, description: str | None = None) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" = any, "download" = the file
        endpoint) with an error. A 3xx answers with a redirect to the same URL: a client that
        follows redirects loops until it gives up (a misconfigured proxy)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = (f"Too Many Requests: retry after {retry_after}" if status == 429
                           else DESCRIPTIONS.get(status, f"Error {status}"))
        with self._lock:
            self._faults.append(_Fault(method.lower(), status, description, retry_after, times))

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` ("download" = file endpoint) ``seconds``."""
        with self._lock:
            self._delays.append(_Delay(method.lower(), seconds, times))

    def fail_everything(self, seconds: float, status: int = 502) -> None:
        """For ``seconds`` from now every call and download is answered ``status`` (a Bot API
        outage behind a working proxy: 502 Bad Gateway)."""
        with self._lock:
            self._spell = _Spell(time.monotonic() + seconds, status, 0.0)

    def hang_everything(self, seconds: float, hold: float) -> None:
        """For ``seconds`` from now every call and download is held ``hold`` seconds (longer
        than the client's read timeout: it gives up first), then answered 504."""
        with self._lock:
            self._spell = _Spell(time.monotonic() + seconds, 504, hold)

    def on_delivered(self, method: str, callback: Callable[[Call], bool | None],
                     times: int = 1) -> None:
        """Call ``callback(call)`` when a call of ``method`` has done its work (a message is
        delivered, updates are handed out), before the answer goes back to the bot; for the
        next ``times`` calls for which the callback does not return False. It runs on the
        stand-in's thread."""
        with self._lock:
            self._hooks.append(_Hook(method.lower(), callback, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._spell = None
            self._hooks.clear()

    async def _in_spell(self, call: Call) -> None:
        """Fail (or hold, then fail) a call that came during a fail/hang spell."""
        spell = self._spell
        if spell is None or time.monotonic() >= spell.until:
            return
        description = DESCRIPTIONS.get(spell.status, "Gateway Timeout")
        call.status, call.fault = spell.status, description  # recorded even if the bot hangs up
        self._wake()
        if spell.hold:
            await asyncio.sleep(spell.hold)
        raise ApiError(spell.status, description)

    def _after_delivery(self, call: Call) -> None:
        with self._lock:
            hooks = [h for h in self._hooks if h.remaining > 0
                     and h.method in (call.method.lower(), "*")]
        for hook in hooks:
            if hook.callback(call) is not False:
                with self._lock:
                    hook.remaining -= 1

    def _take(self, items: list[Any], method: str) -> Any:
        with self._lock:
            for item in items:
                if item.remaining > 0 and item.method in (method, "*"):
                    item.remaining -= 1
                    return item
        return None

    def _take_delay(self, method: str) -> float | None:
        slow = self._take(self._delays, method)
        return slow.seconds if slow else None

    def _raise_fault(self, call: Call, method: str, request: web.Request) -> None:
        fault = self._take(self._faults, method)
        if fault is None:
            return
        call.fault = fault.description
        headers = {"Location": str(request.url)} if 300 <= fault.status < 400 else None
        raise ApiError(fault.status, fault.description, fault.retry_after, headers)

    async def go_down(self) -> None:
        """Refuse connections and drop open ones (updates queued meanwhile are kept)."""
        self.is_down = True
        await self._close_server()

    async def come_back(self) -> None:
        """Listen again on the same port."""
        await self._listen()

    async def outage(self, seconds: float) -> None:
        await self.go_down()
        await asyncio.sleep(seconds)
        await self.come_back()
