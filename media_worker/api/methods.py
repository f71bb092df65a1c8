"""HEAD as GET without the body, for every API resource (RFC 9110 requires HEAD wherever
GET works: download tools and some players ask for the length first). FastAPI's routes
answer only the methods they list, and listing HEAD on each would describe every
operation twice in the OpenAPI document."""

from __future__ import annotations

from media_worker.api.limits import App, Message, Receive, Scope, Send
from media_worker.api.state import API_PREFIX


class HeadAsGet:
    """ASGI middleware: a HEAD under /api/v1 runs as a GET (authenticated alike); its
    status and headers (Content-Length included) are sent, its body is not."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "HEAD"
            or not scope.get("path", "").startswith(API_PREFIX + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
