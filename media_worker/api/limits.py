"""A bound on request bodies, before any route reads them.

FastAPI reads a JSON body before it runs the authentication dependency, so without this
an anonymous client could make the server hold a body of any size. Greeting uploads get
their own, larger limit (the route enforces ``api.greetings.max_bytes`` itself too).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_LIMIT = 64 * 1024  # a PATCH or PUT of JSON is a few dozen bytes


class BodyLimit:
    """ASGI middleware: 413 for a body over its limit. Small (JSON) bodies are read here,
    counted as they arrive, and handed on whole; greeting uploads are checked by their
    Content-Length here and counted by the route as they stream in."""

    def __init__(self, app: App, greeting_limit: int, default_limit: int = JSON_LIMIT) -> None:
        self.app = app
        self.greeting_limit = greeting_limit
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = "/greetings/" in scope.get("path", "")
        limit = self.greeting_limit if streamed else self.default_limit
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit)
                return
        if streamed:
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                buffered.append(message)
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self._refuse(send, limit)
                return
            buffered.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"request body over the limit of {limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
