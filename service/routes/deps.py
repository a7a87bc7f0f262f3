"""Request-scoped dependencies: the app's session factory, executor, settings and the caller's project.

They are ``async`` because they only read ``app.state``: FastAPI runs a sync dependency in the
thread pool, a hop per dependency per request.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

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


async def project(request: Request) -> str:
    """The caller's project (one project until API keys arrive; every query is already scoped by it)."""
    return request.app.state.settings.default_project
