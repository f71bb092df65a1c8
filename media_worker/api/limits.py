"""A bound on request bodies, before any route reads them.

FastAPI reads a JSON body before it runs the authentication dependency, so without this
an anonymous client could make the server hold a body of any size. Greeting uploads get
their own, larger limit (the route enforces ``api.greetings.max_bytes`` itself too).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_LIMIT = 64 * 1024  # a PATCH or PUT of JSON is a few dozen bytes
# The one route that streams its body (after authentication): PUT of a greeting. Matched
# by method and by the exact segment layout, so that a domain, user or name that reads
# "greetings" does not lift the limit on a JSON body read before authentication.
GREETING_UPLOAD = re.compile(r"/api/v1/mailboxes/[^/]+/[^/]+/greetings/[^/]+")


class BodyLimit:
    """ASGI middleware: 413 for a body over its limit. Small (JSON) bodies are read here,
    counted as they arrive, and handed on whole; greeting uploads are checked by their
    Content-Length here and counted by the route as they stream in."""

    def __init__(
        self,
        app: App,
        greeting_limit: int,
        default_limit: int = JSON_LIMIT,
        body_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.greeting_limit = greeting_limit
        self.default_limit = default_limit
        self.body_timeout = body_timeout  # for a buffered body, whole: 408 past it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = scope.get("method") == "PUT" and bool(
            GREETING_UPLOAD.fullmatch(scope.get("path", ""))
        )
        limit = self.greeting_limit if streamed else self.default_limit
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, 413, f"request body over the limit of {limit} bytes")
                return
        if streamed:
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        try:
            # Read before anyone is authenticated: a client that dribbles it must not
            # hold the connection (and its place among max_connections) for long.
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        buffered.append(message)
                        break
                    size += len(message.get("body", b""))
                    if size > limit:
                        await self._refuse(
                            send, 413, f"request body over the limit of {limit} bytes"
                        )
                        return
                    buffered.append(message)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._refuse(send, 408, f"request body not in within {self.body_timeout:g} s")
            return

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
