"""Service commands of ``taskgrouper``: ``serve``, ``worker``, ``migrate``, ``demo``,
``create-api-key`` and ``revoke-api-key``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from grouping.cli import positive_int
from grouping.errors import InputError
from service.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the service sub-commands."""
    serve = subparsers.add_parser(
        "serve", help="run the REST API (embedded SQLite + in-process runner by default)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (server mode only); with more than one, /metrics sums their "
        "counters through PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder unless it is set)",
    )
    serve.set_defaults(handler=_serve)

    worker = subparsers.add_parser("worker", help="run a Celery worker (needs TASKGROUPER_BROKER_URL)")
    worker.add_argument(
        "--queues", default=None, help="comma-separated queues (default: the training and solve queues)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="processes; keep 1 per GPU on the training queue"
    )
    worker.add_argument(
        "--pool",
        default=None,
        help="Celery pool (default: solo at concurrency 1, so SIGTERM requeues a running job; else prefork)",
    )
    worker.add_argument(
        "--name",
        default=None,
        help="the worker's node name, NAME@HOST (Celery --hostname; %%h is this host's name). "
        "Default: <first queue>-<process id>@%%h, unique among the workers of a host",
    )
    worker.add_argument(
        "--nice",
        type=int,
        choices=range(0, 20),
        default=0,
        metavar="0..19",
        help="lower the worker's CPU priority by this much (os.nice): on a host it shares with the API, "
        "training and solves then wait for the API's requests instead of the other way round (default 0)",
    )
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(handler=_worker)

    migrate = subparsers.add_parser("migrate", help="upgrade the database schema to the latest revision")
    migrate.add_argument("--revision", default="head")
    migrate.add_argument("--json", action="store_true", help="print the result as JSON")
    migrate.set_defaults(handler=_migrate)

    create_key = subparsers.add_parser(
        "create-api-key", help="create an API key of a project (printed once; only its hash is stored)"
    )
    create_key.add_argument("--project", required=True, help="the project the key sees (1-64 characters)")
    create_key.add_argument("--name", default=None, help="a label for the key (who or what uses it)")
    create_key.add_argument("--json", action="store_true",
                            help="print {key, key_id, project, name} as JSON (the key is still shown once)")
    create_key.set_defaults(handler=_create_api_key)

    revoke_key = subparsers.add_parser("revoke-api-key", help="revoke an API key by its id (tg_<id>_…)")
    revoke_key.add_argument("key_id", help="the id part of the key, or the whole key")
    revoke_key.add_argument("--json", action="store_true", help="print the result as JSON")
    revoke_key.set_defaults(handler=_revoke_api_key)

    demo = subparsers.add_parser(
        "demo", help="the default job on a built-in dataset -> groupings with trust -> report"
    )
    demo.add_argument("--dataset", default="digits-attributes", help="a built-in dataset")
    demo.add_argument(
        "--method",
        default=None,
        help="tag_first_order (the default job method: half-size single-task networks allowed), "
        "another affinity method (tag, grad_cosine) or warm_start",
    )
    demo.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="training epochs of the all-task network (default 10; an affinity method needs at least 2, "
        "its trust report resamples them)",
    )
    demo.add_argument(
        "--out", default=None, help="report folder (default: TASKGROUPER_HOME/reports/<job id>)"
    )
    demo.add_argument("--json", action="store_true",
                      help="print the job id, report folder and groupings by budget as JSON (the text goes "
                      "to standard error)")
    demo.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.logs import logging_config

    settings = Settings()
    if args.workers < 1:
        raise InputError("--workers", "must be at least 1")
    if settings.embedded and args.workers > 1:
        raise InputError(
            "--workers",
            "the embedded mode runs jobs in-process: use 1 worker, or set "
            "TASKGROUPER_BROKER_URL for server mode",
        )
    if not 0 < args.port < 65536:
        raise InputError("--port", f"{args.port} is not a TCP port")
    mode = "embedded (in-process jobs)" if settings.embedded else "server (Celery workers)"
    print(f"taskgrouper API on http://{args.host}:{args.port}  mode: {mode}  dashboard: /  docs: /docs",
          flush=True)
    created = multiprocess_metrics_dir(args.workers)
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=logging_config(settings.log_format, settings.log_level),
            log_level=settings.log_level.lower(),
            access_log=True,
        )
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
    return 0


#: the environment variable of prometheus-client's multiprocess mode (see ``service.metrics``)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_metrics_dir(workers: int, environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Prepare the metrics of ``workers`` API processes: with more than one, point
    ``PROMETHEUS_MULTIPROC_DIR`` in ``environ`` (default: this process's environment, which the
    worker processes inherit) at a fresh, empty temporary folder, so each process writes its counters
    there and every scrape sums them across processes. Returns the folder it created, for the caller
    to remove when the server stops; ``None`` (and ``environ`` unchanged) for a single process or
    when the variable is already set (the operator's folder is used as it is and never removed)."""
    environ = os.environ if environ is None else environ
    if workers <= 1 or environ.get(MULTIPROC_ENV):
        return None
    folder = Path(tempfile.mkdtemp(prefix="taskgrouper-metrics-"))
    environ[MULTIPROC_ENV] = str(folder)
    return folder


def _worker(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.embedded:
        raise InputError(
            "TASKGROUPER_BROKER_URL", "not set: a worker needs the broker (e.g. redis://host:6379/0)"
        )
    from worker.celery_app import app

    if args.nice:
        os.nice(args.nice)
    queues = args.queues or f"{settings.training_queue},{settings.solve_queue}"
    app.worker_main(
        [
            "worker",
            "--hostname",
            args.name or default_worker_name(queues),
            "--queues",
            queues,
            "--concurrency",
            str(args.concurrency),
            "--pool",
            args.pool or ("solo" if args.concurrency == 1 else "prefork"),
            "--loglevel",
            args.loglevel,
            "--prefetch-multiplier",
            "1",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def default_worker_name(queues: str, pid: int | None = None) -> str:
    """``<first queue>-<pid>@%h``: distinct for every worker process of a host (Celery's own default,
    ``celery@<host>``, is the same for all of them, so their jobs' histories and logs could not tell
    them apart). In containers, whose processes share a pid, the host part (the container) differs."""
    first = next((q.strip() for q in queues.split(",") if q.strip()), "worker")
    return f"{first}-{pid if pid is not None else os.getpid()}@%h"


def _migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from service.migrate import upgrade

    url = Settings().resolved_database_url
    upgrade(url, args.revision)
    database = make_url(url).render_as_string(hide_password=True)
    if args.json:
        print(json.dumps({"database": database, "revision": args.revision}))
    else:
        print(f"database {database} is at revision {args.revision}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    return run_demo(
        dataset=args.dataset, method=args.method, epochs=args.epochs, out=args.out, as_json=args.json
    )


def _key_sessions() -> object:
    from service.db import make_engine, make_session_factory
    from service.migrate import upgrade

    url = Settings().resolved_database_url
    if url.startswith("sqlite"):
        upgrade(url)  # the embedded database may not exist yet
    return make_session_factory(make_engine(url, pool_size=1))


def _create_api_key(args: argparse.Namespace) -> int:
    from service.auth import create_api_key

    project = args.project.strip()
    if not 1 <= len(project) <= 64 or not project.isprintable():
        raise InputError("--project", "must be 1 to 64 printable characters")
    row, key = create_api_key(_key_sessions(), project, name=args.name)
    print(json.dumps({"key": key, "key_id": row.key_id, "project": project, "name": args.name}) if args.json
          else key)
    print(
        f"key id {row.key_id} for project {project!r}: store it now, it is not shown again", file=sys.stderr
    )
    return 0


def _revoke_api_key(args: argparse.Namespace) -> int:
    from service.auth import revoke_api_key

    parts = args.key_id.split("_")
    key_id = parts[1] if len(parts) >= 3 and parts[0] == "tg" else args.key_id
    if not revoke_api_key(_key_sessions(), key_id):
        raise InputError("key_id", f"no active API key {key_id!r}")
    print(json.dumps({"revoked": key_id}) if args.json else f"revoked key {key_id}")
    return 0
