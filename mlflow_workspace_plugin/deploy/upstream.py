"""The front process's client to one scoring server: aiohttp over the server's Unix socket.

Scoring servers listen on a Unix socket in the front's private (0700) folder, never on a TCP port,
so only this user's processes, the front among them, can reach a model without the endpoint key.
One :class:`Upstream` per server instance: a ``UnixConnector`` keeps connections alive between
requests (idle ones are dropped after 4 s, below uvicorn's 5 s keep-alive, so the server never
closes a connection we are about to reuse); the request is built once per call with no per-request
header dictionaries beyond the content type.
"""

from __future__ import annotations

import aiohttp
from multidict import CIMultiDict
from yarl import URL

IDLE_S = 4.0  # < uvicorn's 5 s keep-alive
_INVOCATIONS = URL("http://scoring-server/invocations")
_PING = URL("http://scoring-server/ping")
_SKIP = frozenset({"User-Agent", "Accept", "Accept-Encoding"})

# A server that went away (crashed, stopping, stale kept-alive connection): the caller may retry.
UPSTREAM_GONE = (aiohttp.ClientError, ConnectionError, OSError)


class Upstream:
    """Kept-alive HTTP/1.1 connections to the scoring server listening on ``socket_path``."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: needs the running event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket_path, limit=0, keepalive_timeout=IDLE_S),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), skip_auto_headers=_SKIP,
                auto_decompress=False)
        return self._session

    async def post(self, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        """``POST /invocations``: (status, content type, body) of the server's answer."""
        async with self._open().post(_INVOCATIONS, data=body,
                                     headers=CIMultiDict({"Content-Type": content_type})) as response:
            payload = await response.read()
            return response.status, response.headers.get("Content-Type", "application/json"), payload

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when ``GET /ping`` answers 200."""
        try:
            async with self._open().get(_PING, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                await response.read()
                return response.status == 200
        except (*UPSTREAM_GONE, TimeoutError):
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
