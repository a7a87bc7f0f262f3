"""Size limits of requests: body bytes (an ASGI middleware), tasks per job, problem size and values,
budgets per request.

Bodies: a request announcing more than its limit (``Content-Length``) is refused with 413 before
it is read; one streaming more is cut off with 413 when the limit is crossed. ``POST /datasets``
may carry ``max_upload_bytes`` (plus multipart framing), ``POST /affinity-runs`` (a run's matrices and
per-epoch trajectories) at least :data:`MAX_RUN_BODY_BYTES`; every other request ``max_body_bytes``.

Affinity runs: an uploaded run has at most ``max_tasks`` tasks and :data:`MAX_RUN_EPOCHS` epochs
(:func:`check_run_size`).

Problems: every number of a problem (affinity entries, losses, scores, costs) must be finite and at
most :data:`MAX_MAGNITUDE` in magnitude, every string acceptable text (see ``service.schemas``).
Budgets: one request asks for at most ``max_budgets`` budgets, whether as ``start:stop:step`` or as a
comma-separated list (:func:`requested_budgets`).

Warm-start jobs: the networks a job's ``warm_start`` table trains (:func:`warm_start_plan`) are at most
``max_warm_start_networks`` — checked at submission when the job's tasks are known there (named in
the request, or a built-in dataset's), and again by the runner on the loaded dataset.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grouping.errors import InputError
from grouping.problem import AffinityProblem, ExplicitProblem
from grouping.selection import parse_budgets
from service.errors import problem
from service.schemas import JobCreate, WarmStartOptions, text_problem
from service.settings import Settings

#: the members of a problem object that a problem form reads (``parse_problem`` ignores the others)
PROBLEM_FIELDS = frozenset(ExplicitProblem.model_fields) | frozenset(AffinityProblem.model_fields)
#: largest magnitude of a number in a problem: the solvers' floating-point tolerances hold with
#: several orders of magnitude to spare here (they failed from about 1e10 on); rescale larger values
MAX_MAGNITUDE = 1e6

#: room for multipart boundaries and form fields around an upload
MULTIPART_OVERHEAD = 64 * 1024
#: smallest body limit of ``POST /affinity-runs`` (``max_body_bytes`` when larger): 16 MiB carries, as
#: ``AffinityRun.to_dict()`` writes them, three methods' trajectories of about 100 epochs for 20 tasks
MAX_RUN_BODY_BYTES = 16 * 1024 * 1024
#: most epochs of an uploaded affinity run's trajectories
MAX_RUN_EPOCHS = 1000


class BodyLimit:
    """Refuse request bodies over the limit of their route (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, scope: Scope) -> int:
        if scope["method"] == "POST" and scope["path"].rstrip("/") == "/datasets":
            return self.settings.max_upload_bytes + MULTIPART_OVERHEAD
        if scope["method"] == "POST" and scope["path"].rstrip("/") == "/affinity-runs":
            return max(self.settings.max_body_bytes, MAX_RUN_BODY_BYTES)
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


def check_run_size(n_tasks: int, epochs: int, settings: Settings) -> None:
    """``InputError`` on ``tasks`` when an uploaded affinity run has more than ``max_tasks`` tasks, on
    ``trajectories`` when it has more than :data:`MAX_RUN_EPOCHS` epochs."""
    if n_tasks > settings.max_tasks:
        raise InputError("tasks", f"{n_tasks} tasks; at most {settings.max_tasks} per run (max_tasks)")
    if epochs > MAX_RUN_EPOCHS:
        raise InputError("trajectories", f"{epochs} epochs; at most {MAX_RUN_EPOCHS} per run (max epochs)")


def warm_start_plan(
    tasks: list[str], options: WarmStartOptions, settings: Settings
) -> tuple[list[list[str]] | None, list[list[str]]]:
    """``(subsets, extra_subsets)`` of a job's warm_start table over ``tasks``: the requested subsets
    (``None``: ``candidate_subsets``'s defaults) and, always added, every single task (the ``stl``
    normalisation divides by them) and the all-task set (the trust report's baseline, and budget 1).

    ``InputError`` on ``warm_start.subsets`` for a bad subset (empty, unknown or repeated task), on
    ``warm_start`` when the table would train more than ``max_warm_start_networks`` networks."""
    from grouping.tables.warm_start import network_count

    subsets = [list(s) for s in options.subsets] if options.subsets is not None else None
    extra = [*([task] for task in tasks), list(tasks)]
    try:
        count = network_count(tasks, subsets, extra, options.half_singletons)
    except InputError as exc:
        raise InputError("warm_start.subsets", exc.reason) from None
    most = settings.max_warm_start_networks
    if count > most:
        raise InputError(
            "warm_start",
            f"{count} networks to train for {len(tasks)} tasks; at most {most} per job "
            "(max_warm_start_networks): name fewer tasks or subsets",
        )
    return subsets, extra


def check_warm_start_size(request: JobCreate, settings: Settings) -> None:
    """:func:`warm_start_plan`'s checks at submission, for a job with ``warm_start`` whose tasks are
    known before its dataset is loaded (named in the request, or a built-in dataset's defaults)."""
    if request.warm_start is None:
        return
    tasks = [task.name for task in request.tasks] if request.tasks else builtin_task_names(request.dataset)
    if tasks is not None:
        warm_start_plan(tasks, request.warm_start, settings)


@lru_cache(maxsize=16)
def _builtin_tasks(name: str) -> tuple[str, ...]:
    from grouping.data import BUILTIN_DATASETS

    return tuple(task.name for task in BUILTIN_DATASETS[name].build({}).tasks)


def builtin_task_names(dataset: str) -> list[str] | None:
    """The default tasks of built-in dataset ``dataset`` (``None`` for any other dataset)."""
    from grouping.data import BUILTIN_DATASETS

    return list(_builtin_tasks(dataset)) if dataset in BUILTIN_DATASETS else None


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


def check_problem_values(problem: Any, field: str = "problem") -> None:
    """``InputError`` naming the first offending item (e.g. ``problem.affinity.onto_row_from_column[0][1]``)
    when a number anywhere in ``problem`` is not finite or exceeds :data:`MAX_MAGNITUDE` in magnitude,
    or a string or key is not acceptable text (``service.schemas.text_problem``). Booleans and
    ``null`` pass; the structure itself is left to ``parse_problem``. Of a problem object only the
    members a problem form reads are checked: others, such as ``metadata``, are ignored by the
    parser as well (a job's stored table carries its run's metadata: counts, timings)."""
    if isinstance(problem, dict):
        problem = {k: v for k, v in problem.items() if k in PROBLEM_FIELDS}
    stack: list[tuple[str, Any]] = [(field, problem)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
                raise InputError(
                    path, f"{value!r} is not a finite number of magnitude at most {MAX_MAGNITUDE:g}"
                )
        elif isinstance(value, str):
            reason = text_problem(value)
            if reason is not None:
                raise InputError(path, reason)
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                reason = text_problem(str(key))
                if reason is not None:
                    raise InputError(path, f"a key {reason}")
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))


def check_problem(problem: dict[str, Any], settings: Settings) -> None:
    """Both checks of a posted problem, before it is parsed: :func:`check_problem_size`, then
    :func:`check_problem_values`."""
    check_problem_size(problem, settings)
    check_problem_values(problem)


def requested_budgets(budget: float | None, budgets: str | None, settings: Settings) -> list[float]:
    """The budgets a request asks for: exactly one of ``budget`` (one budget) and ``budgets``
    (``start:stop:step`` or a comma-separated list), else ``InputError`` on ``budget``. More than
    ``max_budgets`` budgets, in either form, is an ``InputError`` on ``budgets`` — counted before a
    range is expanded."""
    if (budget is None) == (budgets is None):
        raise InputError("budget", "give exactly one of budget=B or budgets=start:stop:step (or a list)")
    if budget is not None:
        return [budget]
    count = _budget_count(budgets)
    most = settings.max_budgets
    if count is not None and count > most:
        asked = "more than 10^100" if count >= _TOO_MANY else str(count)
        raise InputError("budgets", f"{asked} budgets requested; at most {most} per request (max_budgets)")
    return parse_budgets(budgets)


def _budget_count(text: str) -> int | None:
    """How many budgets ``text`` asks for (``None`` when it is malformed: ``parse_budgets`` says why)."""
    parts = text.strip().split(":")
    if len(parts) == 1:
        return len([p for p in text.split(",") if p.strip()])
    if len(parts) != 3:
        return None
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        return None
    if not all(v.is_finite() for v in (start, stop, step)) or step <= 0 or stop < start:
        return None
    try:
        return int((stop - start) / step) + 1
    except ArithmeticError:  # the quotient overflows the decimal context: astronomically many
        return _TOO_MANY


#: the count of a range whose length overflows decimal arithmetic
_TOO_MANY = 10**100
