"""The ASGI application: ``create_app(config)`` builds it from the worker's
configuration (its ``api:`` section and the store the workers use)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match

from media_worker import __version__
from media_worker.api import routes_mailbox, routes_messages
from media_worker.api.accounts import Accounts
from media_worker.api.auth import Authenticator
from media_worker.api.conversions import Busy, Conversions
from media_worker.api.limits import BodyLimit
from media_worker.api.methods import HeadAsGet
from media_worker.api.state import API_PREFIX, ApiState
from media_worker.changes import attach
from media_worker.config import WorkerConfig
from media_worker.provisioning.provision import (
    DatabaseUnavailable,
    ProvisionError,
    Refused,
    UserNotFound,
)
from storage.base import Storage
from storage.errors import (
    BackendUnavailable,
    BadIdentity,
    InvalidMessage,
    MessageNotFound,
    StorageError,
    StorageFull,
)
from storage.registry import open_storage

log = logging.getLogger("voicemail.api")
# Seconds a stopping server keeps trying to spool its last changes (a broken disk must
# not hold the shutdown).
SHUTDOWN_NOTICE_WAIT = 5.0

PACKAGE = Path(str(resources.files(__package__)))
STATIC = PACKAGE / "static"
APIDOCS = PACKAGE / "apidocs"
# What the page and the API may load: only our own origin (the page works offline), plus
# blob: URLs the page makes of fetched audio.
CSP = (
    "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# How long a browser that once reached us over HTTPS keeps to HTTPS (one year).
HSTS_MAX_AGE = 365 * 24 * 3600
# Exception -> HTTP status, most specific first.
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BadIdentity, 400),
    (MessageNotFound, 404),
    (InvalidMessage, 422),
    (StorageFull, 507),
    (BackendUnavailable, 503),
    (StorageError, 500),
    (UserNotFound, 404),
    (Refused, 422),
    (DatabaseUnavailable, 503),
    (ProvisionError, 500),
)


def _error_response(request: Request, exc: Exception) -> Response:
    status = next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))
    if status >= 500:
        log.error("api: %s %s: %s", request.method, request.url.path, exc)
    detail = str(exc) if status < 500 else f"{type(exc).__name__}: the server cannot do it now"
    return JSONResponse({"detail": detail}, status_code=status)


def _invalid_request(request: Request, exc: Exception) -> Response:
    """422 naming each bad field and why, without its value: a value JSON cannot carry
    (NaN, a lone surrogate) would break the answer, and a PIN is not echoed back."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"type": str(error.get("type")), "loc": list(error.get("loc", ())), "msg": error.get("msg")}
        for error in exc.errors()
    ]
    # ensure_ascii: a field name may be a lone surrogate too.
    body = json.dumps({"detail": errors}, ensure_ascii=True, default=str)
    return Response(body, status_code=422, media_type="application/json")


def _busy_response(request: Request, exc: Exception) -> Response:
    log.warning("api: %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})


def create_app(config: WorkerConfig, *, store: Storage | None = None) -> FastAPI:
    """The API for ``config`` (which must have an ``api:`` section). ``store``: use this
    one instead of opening ``storage.url`` (tests, benchmarks)."""
    api = config.api
    if api is None:
        raise ValueError("the configuration has no api: section")
    the_store = store if store is not None else open_storage(config.storage.url)
    accounts = Accounts(api.kamailio_db) if api.kamailio_db else None
    state = ApiState(
        config=api,
        store=the_store,
        accounts=accounts,
        authenticator=Authenticator(api.tokens, api.lockout, accounts.ha1 if accounts else None),
        conversions=Conversions(api.max_conversions),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_store.open()
        # Every change this process makes goes to the worker's change spool: process 0
        # moves the lamp and sends the webhooks, as for a change made on the phone.
        state.forwarder = attach(the_store, Path(config.data_dir), address_of=state.address_of)
        log.info(
            "api: serving %s with %s; changes to %s",
            the_store.describe(),
            accounts.url if accounts else "tokens only",
            state.forwarder.directory,
        )
        if accounts is not None:
            try:
                await accounts.ha1("", "")
            except ProvisionError as exc:
                # Tokens still work, and the database may come back: serve, but say so.
                log.error("api: %s; user logins get 503 until it answers", exc)
        try:
            yield
        finally:
            forwarder, state.forwarder = state.forwarder, None
            await forwarder.stop(give_up_after=SHUTDOWN_NOTICE_WAIT)
            if accounts is not None:
                await accounts.close()
            if store is None:
                await the_store.close()

    app = FastAPI(
        title="Kamailio voicemail API",
        version=__version__,
        description="Mailboxes, messages, greetings, PIN and settings of the voicemail "
        "system. Users log in with HTTP Basic as user@domain and their SIP password; "
        "operators with a bearer token.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = state
    for kind, _ in ERROR_STATUS:
        app.add_exception_handler(kind, _error_response)
    app.add_exception_handler(Busy, _busy_response)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(routes_mailbox.router, prefix=API_PREFIX)
    app.include_router(routes_messages.router, prefix=API_PREFIX)

    @app.api_route(
        API_PREFIX + "/{rest:path}",
        methods=["GET", "PUT", "PATCH", "DELETE", "POST"],
        include_in_schema=False,
    )
    async def no_such_resource(request: Request, rest: str) -> Response:
        # A name holding an encoded '/' reaches no route: say why instead of a bare 404.
        raw = request.scope.get("raw_path", b"").lower()
        if b"%2f" in raw or b"%5c" in raw:
            return JSONResponse(
                {"detail": "identity values and names must not contain '/' or '\\'"}, 400
            )
        # A resource that exists with other methods: 405 naming them, not 404.
        allowed: set[str] = set()
        inner = {**request.scope, "path": "/" + rest, "root_path": ""}
        for route in (*routes_mailbox.router.routes, *routes_messages.router.routes):
            if isinstance(route, APIRoute) and route.matches(inner)[0] is Match.PARTIAL:
                allowed |= route.methods or set()
        if allowed:
            allow = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
            detail = f"{request.method} is not allowed here: {allow}"
            return JSONResponse({"detail": detail}, 405, headers={"Allow": allow})
        return JSONResponse({"detail": f"no resource {request.url.path}"}, 404)

    describe = app.openapi

    def openapi() -> dict[str, Any]:
        # Authentication is our own dependency (lockout first), so FastAPI does not know
        # it: state it once for every operation.
        if app.openapi_schema is None:
            spec = describe()
            spec.setdefault("components", {})["securitySchemes"] = {
                "sipUser": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "user@domain and the SIP password",
                },
                "operatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token whose SHA-256 is in api.tokens",
                },
            }
            spec["security"] = [{"sipUser": []}, {"operatorToken": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(APIDOCS / "index.html", media_type="text/html")

    app.mount("/api/docs/", StaticFiles(directory=APIDOCS), name="apidocs")
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    app.add_middleware(
        BodyLimit, greeting_limit=api.greetings.max_bytes, body_timeout=api.request_timeout
    )
    app.add_middleware(HeadAsGet)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Content-Security-Policy", CSP)
        if api.tls_certfile is not None:
            # Served over HTTPS by us: the browser keeps to HTTPS for a year (RFC 6797).
            # Behind a TLS proxy it is the proxy's to send.
            headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}")
        if request.url.path.startswith("/api/v1/"):
            # Private mailboxes: never kept by a shared cache or the browser's disk cache.
            headers.setdefault("Cache-Control", "no-store")
            # Cached Basic credentials ride along with another site's <audio src> or
            # <img src>: such a page must not get the answer (an audio element would
            # tell it the message's duration).
            headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response

    return app
