"""Errors as ``application/problem+json`` (RFC 9457), each naming the offending field when there is one.

Every error body has ``type``, ``title``, ``status`` and ``detail``; validation errors add ``field``
(the first offending field, dotted) and ``errors`` (all of them, each ``{field, reason}``); library
:class:`~grouping.errors.InputError` details (e.g. ``min_budget``) are merged into the body.

An unexpected exception is answered by :class:`CatchAll` with a 500 problem body, logged with its
traceback, and goes no further: the server neither sees it nor closes the client's keep-alive
connection, which the client would otherwise find reset on its next request.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grouping.errors import InputError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """An HTTP error with a problem+json body; ``extra`` keys are added to the body, ``headers`` to
    the response (e.g. ``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


#: the JSON schema of every error body (RFC 9457 members plus ours; more members may appear)
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": ["string", "null"], "description": "the offending input field, dotted"},
        "reason": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting each status as a problem+json body."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status, text in descriptions.items()
    }


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem+json response (a 503 says ``Retry-After: 1`` unless ``headers`` say otherwise)."""
    phrase = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": phrase, "status": status, "detail": detail, **extra}
    return JSONResponse(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers or ({"Retry-After": "1"} if status == 503 else None),
    )


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "training", "epochs")`` → ``training.epochs``; list indices as ``tasks[0]``."""
    parts: list[str] = []
    for item in loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "form") else loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or str(loc[0] if loc else "body")


def input_error_response(exc: InputError, prefix: str = "") -> JSONResponse:
    """422 for a library :class:`InputError`, keeping its ``details`` (e.g. ``min_budget``)."""
    name = f"{prefix}{exc.field}" if prefix else exc.field
    return problem(
        422,
        f"{name}: {exc.reason}",
        field=name,
        reason=exc.reason,
        errors=[{"field": name, "reason": exc.reason}],
        **exc.details,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through :func:`problem` so no request ever gets a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(InputError)
    async def _input_error(_request: Request, exc: InputError) -> JSONResponse:
        return input_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_path(err.get("loc", ())), "reason": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "reason": "invalid"}
        return problem(
            422,
            f"{first['field']}: {first['reason']}",
            field=first["field"],
            reason=first["reason"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # the last resort, for an error outside CatchAll (the server then closes the connection)
        return internal_error(exc)


def allowed_methods(request: Request) -> list[str]:
    """Every method the app answers at the request's path, sorted — the ``Allow`` header of a 405
    (RFC 9110 §15.5.6): the methods its OpenAPI document lists under each path template matching
    the path, and those of the app's own undocumented routes (``/docs``, ``/openapi.json``).
    Starlette's own ``Allow`` names only the methods of the first route matching the path, although
    a path such as ``/jobs/{job_id}`` is served by one route per method."""
    app = request.app
    templates = getattr(app.state, "path_methods", None)
    if templates is None:
        templates = [
            (compile_path(path)[0], {m.upper() for m in operations if m.upper() in _HTTP_METHODS})
            for path, operations in app.openapi().get("paths", {}).items()
        ]
        app.state.path_methods = templates
    path = request.scope.get("path", "")
    methods = {m for regex, found in templates if regex.match(path) for m in found}
    for route in app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods.update(route.methods or ())
    return sorted(methods)


#: the methods an OpenAPI path item may list
_HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


def internal_error(exc: BaseException) -> JSONResponse:
    """The 500 problem response of an unexpected exception (its type only: details stay in the log)."""
    return problem(500, f"internal error ({type(exc).__name__}); see the server log")


class CatchAll:
    """ASGI middleware: an exception no handler turned into a response becomes a logged 500 problem
    response, and is not raised further — so the server keeps the connection open for the client's
    next request, as after any other response. An exception after the response has started (half a
    body sent) is re-raised: only closing the connection can end that response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await internal_error(exc)(scope, receive, send)
