"""The HTTP client for the Bot API: python-telegram-bot's `BaseRequest` over aiohttp.

PTB's own HTTPXRequest spends 0.8–1.3 ms of CPU per request on this machine (httpx scans its
whole connection pool on every call); aiohttp spends ~0.13 ms. A photo costs 3–4 requests
(getFile, download, reply) on the event loop's thread, which also hands the GIL to the
recognition threads, so the client's CPU is the bot's capacity. `BaseRequest` is PTB's
documented place for another backend; PTB still parses answers and maps status codes.
"""

from __future__ import annotations

import re
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from telegram._utils.defaultvalue import DefaultValue  # as PTB's own HTTPXRequest resolves them
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from bot import metrics

if TYPE_CHECKING:
    from telegram._utils.types import ODVInput  # BaseRequest.do_request's own annotation


_TOKEN_IN_PATH = re.compile(r"/bot[^/\s'\"]+")


class AiohttpRequest(BaseRequest):
    """Keep-alive connections to the Bot API, at most `connection_pool_size` at once."""

    __slots__ = ("_connect", "_pool", "_pool_size", "_proxies", "_read", "_session")

    def __init__(
        self,
        connection_pool_size: int = 64,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 30.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read = read_timeout
        self._connect = connect_timeout
        self._pool = pool_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = self._read if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = self._connect if isinstance(connect_timeout, DefaultValue) else connect_timeout
        pool = self._pool if isinstance(pool_timeout, DefaultValue) else pool_timeout
        # aiohttp's `connect` covers waiting for a free pooled connection and connecting;
        # it has no write timeout: a stalled upload ends with the read timeout instead.
        timeout = aiohttp.ClientTimeout(
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(
                method, url, data=_body(request_data), timeout=timeout, proxy=self._proxy(url)
            ) as response:
                body = await response.read()
        except TimeoutError as exc:  # aiohttp's own timeout errors subclass it
            metrics.api_failed("timeout")
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            metrics.api_failed("network")
            # some aiohttp messages quote the URL, and its path holds the token
            message = _TOKEN_IN_PATH.sub("/bot<token>", str(exc))
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {message}") from exc
        metrics.api_answered(response.status)
        return response.status, body

    def _proxy(self, url: str) -> str | None:
        """HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment, as PTB's httpx client
        honours them; looked up once per host (aiohttp's trust_env does it on every request,
        in a thread)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(parts.scheme)
            bypass = not proxy or urllib.request.proxy_bypass(key[1])
            self._proxies[key] = None if bypass else proxy
        return self._proxies[key]


def _body(request_data: RequestData | None) -> aiohttp.FormData | dict[str, str] | None:
    """Parameters as a urlencoded form, or multipart/form-data when files go with them."""
    if request_data is None:
        return None
    fields = request_data.json_parameters
    files = request_data.multipart_data
    if not files:
        return fields
    form = aiohttp.FormData(fields)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
