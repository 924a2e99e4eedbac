"""HTTP connection: aiohttp's client protocol, made safe against bytes no response owns.

A response that cannot have a body (204, 304, the answer to HEAD, or one whose headers
say "no body") ends with its headers. A sloppy receiver still sends one (``204`` with
``Content-Length: 2`` and ``ok``); aiohttp's parser reads those bytes as the start of
the next response on the same connection and fails with "Bad status line": the 204
attempt itself when the bytes arrive together with the headers, or the next delivery to
that host (maybe another company's) when they arrive later. curl and requests take the
204 as it is and drop the connection; so does this protocol:

- the head of a response is parsed before anything that follows it in the same read, so
  a bodyless response is complete before stray bytes are seen;
- bytes after a bodyless response are dropped, and the connection is closed, never
  pooled again;
- a bodyless response whose headers announce a body (``Content-Length`` other than 0,
  ``Transfer-Encoding``) marks its connection to be closed after it even when the body
  has not arrived yet.

Only one request is ever in flight on a connection (aiohttp does not pipeline), so
anything after a complete response and before the next request belongs to no response.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import RawResponseMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

_LOOK_BACK = 2  # bytes of the previous read that may begin an empty line


class StrictResponseHandler(ResponseHandler):
    """aiohttp's protocol, except that a bodyless response is never followed by anything
    on its connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._in_head = True  # the final response's head has not been parsed yet
        self._ended = False  # a final response without a body was parsed
        self._seen = b""  # the last bytes read while in the head

    def set_response_params(self, **params: Any) -> None:
        # Called for every request sent on this connection.
        self._in_head, self._ended, self._seen = True, False, b""
        super().set_response_params(**params)

    def feed_data(self, data: tuple[RawResponseMessage, StreamReader], size: int = 0) -> None:
        message, payload = data
        if message.code >= 200:  # 1xx answers come before the final response
            self._in_head = False
            if payload is EMPTY_PAYLOAD:
                self._ended = True
                if _announces_body(message):
                    self._should_close = True
        super().feed_data(data, size)

    def data_received(self, data: bytes) -> None:
        while data:
            if self._ended:
                self._drop_stray()
                return
            if not self._in_head:
                super().data_received(data)
                return
            split = self._head_end(data)
            if split is None:
                self._seen = (self._seen + data)[-_LOOK_BACK:]
                super().data_received(data)
                return
            # Parse up to the empty line first: if the response has no body, what follows
            # it is stray and must not reach the parser.
            self._seen = b""
            super().data_received(data[:split])
            if self._exception is not None:  # a malformed head: the parser gave up
                return
            data = data[split:]

    def _head_end(self, data: bytes) -> int | None:
        """Where, in ``data``, the first empty line after a header line ends."""
        seen = self._seen
        window = seen + data if seen else data
        crlf, lf = window.find(b"\n\r\n"), window.find(b"\n\n")
        if crlf < 0 and lf < 0:
            return None
        if lf < 0 or 0 <= crlf < lf:
            return crlf + 3 - len(seen)
        return lf + 2 - len(seen)

    def _drop_stray(self) -> None:
        self._should_close = True
        if self.transport is not None:
            # It may already sit in the pool: closed, it is never handed out again.
            self.transport.close()


def _announces_body(message: RawResponseMessage) -> bool:
    length = message.headers.get("Content-Length", "0").strip()
    return length != "0" or "Transfer-Encoding" in message.headers


class StrictConnector(aiohttp.TCPConnector):
    """A TCP connector whose connections use :class:`StrictResponseHandler`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # aiohttp has no public hook for the protocol class; its connectors all build
        # protocols from this factory (a partial of the subclass: mypy sees partials as
        # invariant).
        strict = functools.partial(StrictResponseHandler, loop=self._loop)
        self._factory = strict  # type: ignore[assignment]
