"""Request-scoped dependencies: the app's session factory, executor, settings and the caller's project.

They are ``async`` because they mostly read ``app.state``: FastAPI runs a sync dependency in the
thread pool, a hop per dependency per request (an API key not verified recently takes that hop).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.auth import unauthorized
from service.executor import JobExecutor
from service.settings import Settings


async def session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


async def read_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.read_session_factory


async def executor(request: Request) -> JobExecutor:
    return request.app.state.executor


async def settings(request: Request) -> Settings:
    return request.app.state.settings


bearer = HTTPBearer(auto_error=False, description="an API key: `taskgrouper create-api-key --project NAME`")


async def project(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The caller's project: that of the API key presented (``Authorization: Bearer``), else — only
    where keys are not required (embedded mode) — ``default_project``. Every query is scoped by it.
    The request counts against the key's rate limit (or the client address's, without a key)."""
    state = request.app.state
    if credentials is None:
        if state.settings.auth_required or request.headers.get("authorization"):
            raise unauthorized("an API key is required: Authorization: Bearer <key>")
        identity, owner = (
            f"ip:{request.client.host if request.client else '-'}",
            state.settings.default_project,
        )
    else:
        verifier = state.key_verifier
        key_id, owner = verifier.cached(credentials.credentials) or await run_in_threadpool(
            verifier.verify, credentials.credentials
        )
        identity = f"key:{key_id}"
    if state.rate_limiter is not None:
        await state.rate_limiter.hit(identity)
    return owner
