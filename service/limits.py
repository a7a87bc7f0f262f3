"""Size limits of requests: body bytes (an ASGI middleware), tasks per job, problem size.

Bodies: a request announcing more than its limit (``Content-Length``) is refused with 413 before
it is read; one streaming more is cut off with 413 when the limit is crossed. ``POST /datasets``
may carry ``max_upload_bytes`` (plus multipart framing); every other request ``max_body_bytes``.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grouping.errors import InputError
from service.errors import problem
from service.settings import Settings

#: room for multipart boundaries and form fields around an upload
MULTIPART_OVERHEAD = 64 * 1024


class BodyLimit:
    """Refuse request bodies over the limit of their route (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, scope: Scope) -> int:
        if scope["method"] == "POST" and scope["path"].rstrip("/") == "/datasets":
            return self.settings.max_upload_bytes + MULTIPART_OVERHEAD
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, f"request body larger than {limit} bytes", limit=limit)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
            return message

        await self.app(scope, limited, send)


def check_job_size(n_tasks: int | None, settings: Settings) -> None:
    """``InputError`` on ``tasks`` when a job lists more than ``max_tasks`` tasks."""
    if n_tasks is not None and n_tasks > settings.max_tasks:
        raise InputError("tasks", f"{n_tasks} tasks; at most {settings.max_tasks} per job (max_tasks)")


def check_problem_size(problem: dict[str, Any], settings: Settings) -> None:
    """``InputError`` naming the field when a posted problem has more tasks (or matrix rows) than
    ``max_tasks`` or more candidate networks than ``max_networks`` — checked before it is parsed."""
    sizes = {
        "problem.tasks": (problem.get("tasks"), settings.max_tasks, "max_tasks"),
        "problem.networks": (problem.get("networks"), settings.max_networks, "max_networks"),
    }
    affinity = problem.get("affinity")
    if isinstance(affinity, dict):
        for name, matrix in affinity.items():
            sizes[f"problem.affinity.{name}"] = (matrix, settings.max_tasks, "max_tasks")
    for field, (value, most, setting) in sizes.items():
        if isinstance(value, list | dict) and len(value) > most:
            raise InputError(field, f"{len(value)} entries; at most {most} ({setting})")
