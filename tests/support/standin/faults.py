"""Faults the stand-in injects: error answers (429 with retry_after, 5xx, any 4xx, a redirect
loop), slow answers, and the whole server going away and coming back."""

from __future__ import annotations

import asyncio
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


class FaultsMixin(StandInCore):
    """``fail``, ``delay``, ``clear_faults``, ``go_down`` / ``come_back`` / ``outage``."""

    def _init_faults(self) -> None:
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []

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

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

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
