"""Request isolation: each HTTP request and websocket runs in a task of its own."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send


class RequestIsolation:
    """Run each request in a task of its own, so per-request context never leaks.

    (The database scope a request binds, ``app.web.roles``, is a context variable: in a
    task of its own, the binding ends with the request.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def handle() -> None:
            await self.app(scope, receive, send)

        await asyncio.create_task(handle())
