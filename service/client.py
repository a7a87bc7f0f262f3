"""A typed Python client of the taskgrouper API (httpx), synchronous and asynchronous.

    with TaskgrouperClient("http://127.0.0.1:8000") as tg:
        job = tg.submit_job("digits-attributes", methods=["tag"], training={"epochs": 1})
        tg.wait(job.id)
        grouping = tg.groupings(job.id, budget=2)

    async with AsyncTaskgrouperClient("http://127.0.0.1:8000") as tg:   # the same methods, awaited
        job = await tg.submit_job("digits-attributes")
        job = await tg.wait(job.id)        # polls with asyncio.sleep: the event loop keeps running

Every result is a pydantic model of :mod:`service.schemas` (``JobOut``, ``JobPage``, ``JobLogOut``,
``GroupingOut``, …). Errors come back as :class:`ApiError` carrying the problem+json body (``field``,
``reason``, ``detail``, …); a server that cannot be reached at all raises :class:`ServerUnreachable`.

**Retries** (:func:`default_retry`, an ``httpx_retries`` transport): a request that could not connect
(the server is down or restarting) and an answer 429 (rate limited) or 503 (e.g. the job queue is
unavailable) are retried, up to 5 times, waiting what ``Retry-After`` says (at most 60 s) or else an
exponential backoff with jitter (0.5 s × 2^n, at most 60 s). A refused connection never reached the
server, and the rate limiter answers 429 before a request does anything, so those are retried for
every method. A 503 is retried only where repeating the request is safe: reads, ``PUT``/``DELETE``,
and a ``POST`` that carries an ``Idempotency-Key`` (``submit_job`` always sends one, a fresh one unless
given; ``POST /jobs`` releases the key of a job it could not queue, so the retry submits it anew); a
``POST`` without one (``POST /studies`` may have created its study before its 503) is not repeated.
Pass ``retry=Retry(...)`` for another policy or ``retry=None`` for none.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from http import HTTPMethod
from pathlib import Path
from typing import Any, TypeVar

import httpx
from httpx_retries import Retry, RetryTransport

from grouping.selection.solvers import DEFAULT_SOLVER
from service.schemas import (
    AffinityRunDetail,
    AffinityRunOut,
    AffinityRunPage,
    DatasetOut,
    GroupingCurve,
    GroupingOut,
    JobLogOut,
    JobOut,
    JobPage,
    SolutionOut,
)
from service.study_client import Study
from service.study_schemas import StudyOut

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
#: the environment variables the client (and ``taskgrouper jobs``) read: the server's URL and the key
SERVER_ENV = "TASKGROUPER_SERVER"
API_KEY_ENV = "TASKGROUPER_API_KEY"
DEFAULT_SERVER = "http://127.0.0.1:8000"

T = TypeVar("T")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)


class ApiError(Exception):
    """A non-2xx answer; ``problem`` is its problem+json body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('detail', problem)}")
        self.status = status
        self.problem = problem

    @property
    def field(self) -> str | None:
        """The input field at fault, when the API named one."""
        return self.problem.get("field")

    @property
    def reason(self) -> str:
        """Why: the first validation error's reason, else the problem's ``detail``."""
        errors = self.problem.get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        return str(first.get("reason") or self.problem.get("reason") or self.problem.get("detail") or "")


class ServerUnreachable(Exception):
    """No answer from the server: the connection failed (after the retries) or timed out."""


class JobFailed(Exception):
    """:meth:`TaskgrouperClient.wait` saw the job end ``failed`` or ``cancelled``."""

    def __init__(self, job: JobOut) -> None:
        reason = job.error.reason if job.error else job.status
        super().__init__(f"job {job.id} {job.status}: {reason}")
        self.job = job


def _request_options(retry: Retry | None, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` of one request, with a retry policy of its own for a ``POST`` without an
    ``Idempotency-Key``: ``retry`` less its 503 (see the module docstring)."""
    headers = kwargs.get("headers") or {}
    if retry is None or method.upper() != "POST" or "Idempotency-Key" in headers:
        return kwargs
    statuses = [status for status in retry.status_forcelist if status != 503]
    return {**kwargs, "extensions": {"retry": retry.copy_with(status_forcelist=statuses)}}


def default_retry(total: int = 5) -> Retry:
    """The client's retry policy (see the module docstring), with ``total`` retries at most."""
    return Retry(
        total=total,
        allowed_methods=list(HTTPMethod),
        status_forcelist=[429, 503],
        retry_on_exceptions=[httpx.ConnectError, httpx.ConnectTimeout],
        backoff_factor=0.5,
        max_backoff_wait=60.0,
    )


class _Api:
    """The endpoints, written once for both clients: each method builds its request and hands it to
    :meth:`_call`, which the synchronous client answers with the result and the asynchronous one with
    an awaitable of it (so ``AsyncTaskgrouperClient``'s methods return awaitables of these types)."""

    def _call(self, method: str, url: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        raise NotImplementedError

    # jobs
    def submit_job(
        self,
        dataset: str,
        *,
        methods: list[str] | None = None,
        tasks: list[dict[str, Any]] | None = None,
        model: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> JobOut:
        """``POST /jobs``; unset arguments take the server's defaults. Sent with ``idempotency_key``
        (default: a fresh one), so a retried submission never creates a second job."""
        body = {"dataset": dataset, "methods": methods, "tasks": tasks, "model": model, "training": training}
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self._call("POST", "/jobs", JobOut.model_validate, json=_opt(**body, **extra), headers=headers)

    def job(self, job_id: str) -> JobOut:
        """``GET /jobs/{id}``."""
        return self._call("GET", f"/jobs/{job_id}", JobOut.model_validate)

    def jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> JobPage:
        """``GET /jobs`` (one page, newest first)."""
        params = {"limit": limit, "offset": offset} | _opt(status=status)
        return self._call("GET", "/jobs", JobPage.model_validate, params=params)

    def cancel(self, job_id: str) -> JobOut:
        """``POST /jobs/{id}/cancel``."""
        return self._call("POST", f"/jobs/{job_id}/cancel", JobOut.model_validate)

    def delete_job(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``: the job, its results and checkpoints. A running job is asked to
        cancel and this raises :class:`ApiError` 409: call again once it has stopped."""
        return self._call("DELETE", f"/jobs/{job_id}", _none)

    def logs(self, job_id: str, *, after: int | None = None) -> JobLogOut:
        """``GET /jobs/{id}/logs``: the job's log entries (of every attempt), oldest first; ``after``
        an entry's ``id`` gives only the newer ones (to follow a running job)."""
        return self._call("GET", f"/jobs/{job_id}/logs", JobLogOut.model_validate, params=_opt(after=after))

    def affinity(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/affinity``: matrices and trajectories per method."""
        return self._call("GET", f"/jobs/{job_id}/affinity", _dict)

    # groupings
    def groupings(
        self,
        job_id: str,
        budget: float,
        *,
        method: str | None = None,
        solver: str | None = None,
        singletons: str | None = None,
    ) -> GroupingOut:
        """``GET /groupings`` at one budget (``.trust`` where the table has samples of its estimate);
        ``solver`` and ``singletons`` (affinity tables: forbid) default to the server's."""
        params = {"job_id": job_id, "budget": budget}
        params |= _opt(method=method, solver=solver, singletons=singletons)
        return self._call("GET", "/groupings", GroupingOut.model_validate, params=params)

    def grouping_curve(
        self,
        job_id: str,
        budgets: str,
        *,
        method: str | None = None,
        solver: str | None = None,
        singletons: str | None = None,
    ) -> GroupingCurve:
        """``GET /groupings?budgets=start:stop:step``."""
        params = {"job_id": job_id, "budgets": budgets}
        params |= _opt(method=method, solver=solver, singletons=singletons)
        return self._call("GET", "/groupings", GroupingCurve.model_validate, params=params)

    def solve(
        self, problem: dict[str, Any], budget: float, *, solver: str = DEFAULT_SOLVER,
        time_limit: float | None = None,
    ) -> SolutionOut:
        """``POST /groupings``: solve a problem without training."""
        body = {"problem": problem, "budget": budget, "solver": solver} | _opt(time_limit=time_limit)
        return self._call("POST", "/groupings", SolutionOut.model_validate, json=body)

    # affinity runs measured elsewhere
    def upload_affinity(
        self, run: Any, *, name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> AffinityRunOut:
        """``POST /affinity-runs``: store ``run`` — an ``AffinityRun`` (``AffinityTracker.result()``),
        its ``to_dict()`` form, or the path of a JSON file holding that form (or the problem document
        ``taskgrouper affinity --out`` writes) — under ``name`` (a file's name defaults to its stem),
        with ``metadata`` (model, optimizer, …) added to the run's. Its ``id`` is then a ``job_id``
        of :meth:`groupings`."""
        if isinstance(run, str | Path):
            name = name or Path(run).stem
            run = json.loads(Path(run).read_text())
        document = run_document(run.to_dict() if hasattr(run, "to_dict") else run)
        if not isinstance(document, dict):
            raise ValueError(f"an affinity run is a JSON object, not {type(document).__name__}")
        if not name:
            raise ValueError("name the run: upload_affinity(run, name=...)")
        body = {**document, "name": name, "metadata": {**document.get("metadata", {}), **(metadata or {})}}
        return self._call("POST", "/affinity-runs", AffinityRunOut.model_validate, json=body)

    def affinity_runs(self, *, limit: int = 50, offset: int = 0) -> AffinityRunPage:
        """``GET /affinity-runs`` (one page, newest first, without the matrices)."""
        params = {"limit": limit, "offset": offset}
        return self._call("GET", "/affinity-runs", AffinityRunPage.model_validate, params=params)

    def affinity_run(self, run_id: str) -> AffinityRunDetail:
        """``GET /affinity-runs/{id}``: the run with its matrices and trajectories."""
        return self._call("GET", f"/affinity-runs/{run_id}", AffinityRunDetail.model_validate)

    def delete_affinity_run(self, run_id: str) -> None:
        """``DELETE /affinity-runs/{id}``: the run and the groupings solved from it."""
        return self._call("DELETE", f"/affinity-runs/{run_id}", _none)

    # datasets
    def upload_dataset(self, path: str | Path, *, name: str | None = None) -> DatasetOut:
        """``POST /datasets`` (multipart) of a .parquet, .csv or .npz file."""
        path = Path(path)
        return self._call("POST", "/datasets", DatasetOut.model_validate, upload=path, data=_opt(name=name))

    def dataset(self, dataset_id: str) -> DatasetOut:
        """``GET /datasets/{id}``."""
        return self._call("GET", f"/datasets/{dataset_id}", DatasetOut.model_validate)

    def delete_dataset(self, dataset_id: str) -> None:
        """``DELETE /datasets/{id}``: the dataset and its uploaded file (:class:`ApiError` 409 while a
        queued or running job uses it)."""
        return self._call("DELETE", f"/datasets/{dataset_id}", _none)


def _http_client(
    http: H | None,
    kind: type[H],
    transport: type[httpx.BaseTransport] | type[httpx.AsyncBaseTransport],
    base_url: str | None,
    api_key: str | None,
    headers: dict[str, str] | None,
    timeout: float,
    retry: Retry | None,
) -> H:
    """``http`` with the headers added, else a new ``kind`` (``httpx.Client`` or ``httpx.AsyncClient``)
    over ``transport`` (wrapped in a ``RetryTransport`` when ``retry`` is set). The base URL is the
    argument, else ``TASKGROUPER_SERVER``, else :data:`DEFAULT_SERVER`; the headers carry
    ``Authorization: Bearer`` from ``api_key``, else ``TASKGROUPER_API_KEY``."""
    api_key = api_key or os.environ.get(API_KEY_ENV)
    headers = {**({"Authorization": f"Bearer {api_key}"} if api_key else {}), **(headers or {})}
    if http is not None:
        http.headers.update(headers)
        return http
    plain = transport()
    return kind(base_url=base_url or os.environ.get(SERVER_ENV) or DEFAULT_SERVER, timeout=timeout,
                headers=headers, transport=RetryTransport(plain, retry=retry) if retry else plain)


def _result(response: httpx.Response, parse: Callable[[Any], T]) -> T:
    """``parse`` of a successful response's JSON body (of ``None`` for 204); :class:`ApiError` for a
    status of 400 or more."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        raise ApiError(response.status_code, body if isinstance(body, dict) else {"detail": body})
    return parse(None if response.status_code == 204 else response.json())


def _unreachable(exc: httpx.TransportError, base_url: httpx.URL, url: str) -> ServerUnreachable:
    where = base_url.join(url)
    return ServerUnreachable(f"no answer from {where} (after retries): {type(exc).__name__}: {exc}")


class TaskgrouperClient(_Api):
    """Synchronous client of one taskgrouper server. ``base_url`` defaults to ``TASKGROUPER_SERVER``
    (else http://127.0.0.1:8000) and ``api_key`` to ``TASKGROUPER_API_KEY`` (sent as
    ``Authorization: Bearer``); ``retry`` as in the module docstring. Pass ``http`` to reuse an
    ``httpx.Client`` (e.g. a test client; it keeps its own transport)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        retry: Retry | None = default_retry(),
        http: httpx.Client | None = None,
    ) -> None:
        self.http = _http_client(http, httpx.Client, httpx.HTTPTransport, base_url, api_key, headers,
                                 timeout, retry)
        #: the retry policy (a request picks a narrower one, see :func:`_request_options`; with ``http``
        #: it applies where that client's transport is an ``httpx_retries.RetryTransport``)
        self.retry = retry

    def __enter__(self) -> TaskgrouperClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        upload: Path | None = kwargs.pop("upload", None)
        kwargs = _request_options(self.retry, method, kwargs)
        try:
            if upload is None:
                return _result(self.http.request(method, url, **kwargs), parse)
            with upload.open("rb") as handle:
                response = self.http.request(method, url, files={"file": (upload.name, handle)}, **kwargs)
            return _result(response, parse)
        except httpx.TransportError as exc:
            raise _unreachable(exc, self.http.base_url, url) from exc

    def wait(self, job_id: str, *, timeout: float = 3600.0, poll: float = 0.5, check: bool = True) -> JobOut:
        """Poll until the job ends; raises :class:`JobFailed` if it did not succeed (``check``), or
        ``TimeoutError`` after ``timeout`` seconds. Blocks this thread: from async code use
        :class:`AsyncTaskgrouperClient` (or ``asyncio.to_thread(client.wait, job_id)``)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if _finished(job, check):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout:g} s")
            time.sleep(poll)

    # studies (ask and tell: service.study_client)
    def create_study(self, tasks: list[str], **spec: Any) -> Study:
        """``POST /studies``: a study of ``tasks`` (``strategy``, ``value_kind``, ``budgets``, … as
        :class:`service.study_schemas.StudyCreate`); its :meth:`Study.trials` hands out trials."""
        out = self._call("POST", "/studies", StudyOut.model_validate, json={"tasks": tasks, **spec})
        return Study(self, out)

    def study(self, study_id: str) -> Study:
        """``GET /studies/{id}``: a study to ask trials of, or to read its state."""
        return Study(self, self._call("GET", f"/studies/{study_id}", StudyOut.model_validate))


class AsyncTaskgrouperClient(_Api):
    """Asynchronous client: the methods of :class:`TaskgrouperClient`, each returning an awaitable of
    the same result (``await tg.job(job_id)``), and :meth:`wait`, which polls without blocking the
    event loop. Same arguments as the synchronous client (``http``: an ``httpx.AsyncClient``)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        retry: Retry | None = default_retry(),
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = _http_client(http, httpx.AsyncClient, httpx.AsyncHTTPTransport, base_url, api_key,
                                 headers, timeout, retry)
        #: the retry policy (a request picks a narrower one, see :func:`_request_options`; with ``http``
        #: it applies where that client's transport is an ``httpx_retries.RetryTransport``)
        self.retry = retry

    async def __aenter__(self) -> AsyncTaskgrouperClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, url: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        upload: Path | None = kwargs.pop("upload", None)
        kwargs = _request_options(self.retry, method, kwargs)
        try:
            if upload is None:
                return _result(await self.http.request(method, url, **kwargs), parse)
            with upload.open("rb") as handle:
                content = handle.read()
            files = {"file": (upload.name, content)}
            return _result(await self.http.request(method, url, files=files, **kwargs), parse)
        except httpx.TransportError as exc:
            raise _unreachable(exc, self.http.base_url, url) from exc

    def _call(self, method: str, url: str, parse: Callable[[Any], T], **kwargs: Any) -> Any:
        return self._request(method, url, parse, **kwargs)

    async def wait(
        self, job_id: str, *, timeout: float = 3600.0, poll: float = 0.5, check: bool = True
    ) -> JobOut:
        """As :meth:`TaskgrouperClient.wait`, sleeping with ``asyncio.sleep`` between polls."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if _finished(job, check):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout:g} s")
            await asyncio.sleep(poll)


def _finished(job: JobOut, check: bool) -> bool:
    """Whether ``job`` has ended (:class:`JobFailed` when it did not succeed and ``check``)."""
    if job.status not in TERMINAL:
        return False
    if check and job.status != "succeeded":
        raise JobFailed(job)
    return True


def run_document(data: Any) -> dict[str, Any]:
    """The ``POST /affinity-runs`` form (``tasks``, ``matrices``, ``trajectories``, ``metadata``) of
    ``data``: an ``AffinityRun.to_dict()`` document as it is, or the problem document ``taskgrouper
    affinity`` writes (its run's matrices and trajectories under ``metadata``) taken apart. Anything
    else is sent as it is, for the server to say what is wrong with it."""
    if not isinstance(data, dict) or "matrices" in data:
        return data
    meta = data.get("metadata")
    if not isinstance(meta, dict) or "matrices" not in meta:
        return data
    rest = {k: v for k, v in meta.items() if k not in ("matrices", "trajectories", "method")}
    return {
        "tasks": data.get("tasks"),
        "matrices": meta["matrices"],
        "trajectories": meta.get("trajectories", {}),
        "metadata": rest,
    }


def _none(_: Any) -> None:
    return None


def _dict(body: Any) -> dict[str, Any]:
    return dict(body)


def _opt(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
