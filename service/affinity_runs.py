"""Affinity runs measured elsewhere and uploaded (``POST /affinity-runs``): checked, stored, listed,
deleted, and served to ``GET /groupings`` as a source of affinity network tables like a job's.

A run is what ``grouping.affinity.AffinityRun.to_dict()`` writes (``AffinityTracker.result()`` in the
user's own training): its tasks, one matrix per method (``onto_row_from_column``), per method one
matrix per epoch, and metadata. :func:`check_run` refuses, naming the field, what the request schema
cannot state: a matrix that is not n x n for the run's n tasks, a trajectory of a method without a
matrix, tasks listed twice, more than ``max_tasks`` tasks or :data:`service.limits.MAX_RUN_EPOCHS`
epochs, ``metadata`` nested deeper than :data:`MAX_METADATA_DEPTH`. The scores themselves are finite
and bounded by the schema (``service.schemas.Score``).

The network tables of an affinity run, a job's (stored by the runner) or an uploaded one's (built
when ``GET /groupings`` needs one, :func:`run_table`), come from :func:`affinity_tables`; an uploaded
run's groupings are stored like a job's, keyed by the run (``groupings.run_id``), and deleted with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grouping.affinity import AFFINITY_METHODS
from grouping.affinity.run import AffinityRun
from grouping.errors import InputError
from grouping.problem import parse_problem
from service.db import transaction
from service.errors import ApiError
from service.jsonsafe import json_safe
from service.limits import check_run_size
from service.models import AffinityRunRecord, utcnow
from service.schemas import AffinityRunCreate, AffinityRunDetail, AffinityRunOut
from service.settings import Settings

#: deepest nesting of objects and arrays in a run's ``metadata`` (it is stored and sent back as it is)
MAX_METADATA_DEPTH = 32
#: the singleton rules an affinity network table is made for (``grouping.problem.affinity``)
SINGLETON_RULES = ("forbid", "normalized")
#: whether an affinity network table allows half-size singletons (cost 0.5, scoring 0): on, as
#: ``AffinityRun.to_problem_dict``'s default — selections that may buy one had the lower regret in
#: ``bench/results/grouping_quality.md``
HALF_SINGLETONS = True


def affinity_tables(run: AffinityRun, method: str) -> dict[str, dict[str, Any]]:
    """The network tables of ``run``'s ``method`` matrix: per rule of :data:`SINGLETON_RULES` that the
    matrix admits (``normalized`` needs positive self-affinities), the ``max_affinity`` problem of
    :meth:`AffinityRun.to_problem_dict` with :data:`HALF_SINGLETONS`, as :func:`json_safe` data. The
    tables differ only in their ``singletons`` key."""
    base = json_safe(run.to_problem_dict(method, singletons="forbid", half_singletons=HALF_SINGLETONS))
    tables = {}
    for rule in SINGLETON_RULES:
        problem = {**base, "singletons": rule}
        try:
            parse_problem(problem)
        except InputError:
            continue
        tables[rule] = problem
    return tables


def check_run(body: AffinityRunCreate, settings: Settings) -> None:
    """``InputError`` naming the field (see the module docstring) when ``body`` is not a coherent run."""
    tasks = body.tasks
    if len(set(tasks)) != len(tasks):
        raise InputError("tasks", "a task name is listed twice")
    epochs = max((len(seq) for seq in body.trajectories.values()), default=0)
    check_run_size(len(tasks), epochs, settings)
    for method in [*body.matrices, *body.trajectories]:
        if method not in AFFINITY_METHODS:
            field = "matrices" if method in body.matrices else "trajectories"
            raise InputError(
                f"{field}.{method}", f"unknown affinity method; choose from {list(AFFINITY_METHODS)}"
            )
    n = len(tasks)
    for method, matrix in body.matrices.items():
        _check_square(f"matrices.{method}", matrix, n)
    _check_depth("metadata", body.metadata, MAX_METADATA_DEPTH)
    for method, seq in body.trajectories.items():
        if method not in body.matrices:
            raise InputError(
                f"trajectories.{method}",
                f"a trajectory of a method without a matrix (matrices has {list(body.matrices)})",
            )
        for epoch, matrix in enumerate(seq):
            _check_square(f"trajectories.{method}[{epoch}]", matrix, n)


def _check_depth(field: str, value: Any, most: int) -> None:
    """``InputError`` on ``field`` when ``value`` nests objects and arrays more than ``most`` deep."""
    level = [value]
    for _ in range(most + 1):
        level = [
            item
            for node in level
            if isinstance(node, dict | list)
            for item in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return
    raise InputError(field, f"nested more than {most} levels deep")


def _check_square(field: str, matrix: list[list[Any]], n: int) -> None:
    shape = f"the run has {n} tasks, so the matrix is {n} x {n}"
    if len(matrix) != n:
        raise InputError(field, f"{len(matrix)} rows; {shape}")
    for i, row in enumerate(matrix):
        if len(row) != n:
            raise InputError(f"{field}[{i}]", f"{len(row)} columns; {shape}")


def create_run(
    session_factory: sessionmaker[Session], body: AffinityRunCreate, *, project: str, settings: Settings
) -> AffinityRunRecord:
    """Check ``body`` (:func:`check_run`) and store it as a run of ``project``."""
    check_run(body, settings)
    steps = body.metadata.get("affinity_steps")
    record = AffinityRunRecord(
        project=project,
        name=body.name,
        tasks=list(body.tasks),
        methods=list(body.matrices),
        epochs=max((len(seq) for seq in body.trajectories.values()), default=0),
        steps=steps if type(steps) is int and 0 <= steps < 2**31 else None,
        matrices=body.matrices,
        trajectories=body.trajectories,
        meta=json_safe(body.metadata),
        created_at=utcnow(),
    )
    with transaction(session_factory) as session:
        session.add(record)
    return record


def get_run(session_factory: sessionmaker[Session], run_id: str, project: str) -> AffinityRunRecord:
    """The project's run ``run_id``, or a 404 (another project's run is not found)."""
    with session_factory() as session:
        return owned(session.get(AffinityRunRecord, run_id), run_id, project)


def owned(record: AffinityRunRecord | None, run_id: str, project: str) -> AffinityRunRecord:
    """``record`` if it exists and belongs to ``project``, else a 404 naming ``run_id``."""
    if record is None or record.project != project:
        raise ApiError(404, f"no affinity run {run_id}", field="run_id")
    return record


def list_runs(
    session_factory: sessionmaker[Session], project: str, *, limit: int, offset: int
) -> tuple[list[AffinityRunRecord], int]:
    """A page of the project's runs, newest first, and how many it has."""
    where = AffinityRunRecord.project == project
    with session_factory() as session:
        total = session.scalar(select(func.count()).select_from(AffinityRunRecord).where(where)) or 0
        rows = session.scalars(
            select(AffinityRunRecord)
            .where(where)
            .order_by(AffinityRunRecord.created_at.desc(), AffinityRunRecord.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    return list(rows), total


def delete_run(session_factory: sessionmaker[Session], run_id: str, project: str) -> None:
    """Delete the project's run ``run_id`` (its groupings go with it: foreign key cascade); 404 otherwise."""
    with transaction(session_factory) as session:
        session.delete(owned(session.get(AffinityRunRecord, run_id), run_id, project))


def run_links(run_id: str) -> dict[str, str]:
    """Where to go from a run."""
    return {"self": f"/affinity-runs/{run_id}", "groupings": f"/groupings?job_id={run_id}&budget=2"}


def run_out(record: AffinityRunRecord) -> AffinityRunOut:
    """The API view of a run, without its matrices."""
    return AffinityRunOut(**_summary(record))


def run_detail(record: AffinityRunRecord) -> AffinityRunDetail:
    """The API view of a run with its matrices and trajectories."""
    return AffinityRunDetail(**_summary(record), matrices=record.matrices, trajectories=record.trajectories)


def _summary(record: AffinityRunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "tasks": record.tasks,
        "methods": record.methods,
        "epochs": record.epochs,
        "steps": record.steps,
        "metadata": record.meta,
        "created_at": record.created_at,
        "links": run_links(record.id),
    }


def affinity_run(record: AffinityRunRecord) -> AffinityRun:
    """The stored run as the library's :class:`AffinityRun`."""
    return AffinityRun.from_dict(
        {
            "tasks": record.tasks,
            "matrices": record.matrices,
            "trajectories": record.trajectories,
            "metadata": record.meta,
        }
    )


def run_table(record: AffinityRunRecord, method: str, singletons: str) -> dict[str, Any] | None:
    """The uploaded run's network table of ``method`` under the rule ``singletons``
    (:func:`affinity_tables`), or ``None`` when it has no such matrix or the matrix does not admit
    the rule."""
    if method not in record.matrices:
        return None
    return affinity_tables(affinity_run(record), method).get(singletons)
