"""A thin, typed Python client of the taskgrouper API (httpx).

    with TaskgrouperClient("http://127.0.0.1:8000") as tg:
        job = tg.submit_job("digits-attributes", methods=["tag"], training={"epochs": 1})
        tg.wait(job.id)
        grouping = tg.groupings(job.id, budget=2)

Errors come back as :class:`ApiError` carrying the problem+json body (``field``, ``detail``, …).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from grouping.selection.solvers import DEFAULT_SOLVER
from service.schemas import DatasetOut, GroupingCurve, GroupingOut, JobOut, JobPage, SolutionOut

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class ApiError(Exception):
    """A non-2xx answer; ``problem`` is its problem+json body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('detail', problem)}")
        self.status = status
        self.problem = problem


class JobFailed(Exception):
    """:meth:`TaskgrouperClient.wait` saw the job end ``failed`` or ``cancelled``."""

    def __init__(self, job: JobOut) -> None:
        reason = job.error.reason if job.error else job.status
        super().__init__(f"job {job.id} {job.status}: {reason}")
        self.job = job


class TaskgrouperClient:
    """Client of one taskgrouper server; pass ``http`` to reuse an ``httpx.Client`` (e.g. a test client).
    ``api_key`` (default: ``TASKGROUPER_API_KEY``) is sent as ``Authorization: Bearer``."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("TASKGROUPER_API_KEY")
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = http or httpx.Client(
            base_url=base_url, timeout=timeout, headers={**auth, **(headers or {})}
        )
        if http is not None and auth:
            self.http.headers.update(auth)

    def __enter__(self) -> TaskgrouperClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a successful response (``None`` for 204 No Content); an
        :class:`ApiError` for a status of 400 or more."""
        response = self.http.request(method, url, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text}
            raise ApiError(response.status_code, body)
        return None if response.status_code == 204 else response.json()

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
        """``POST /jobs``; unset arguments take the server's defaults."""
        body = {
            "dataset": dataset,
            "methods": methods,
            "tasks": tasks,
            "model": model,
            "training": training,
            **extra,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return JobOut.model_validate(
            self._call(
                "POST", "/jobs", json={k: v for k, v in body.items() if v is not None}, headers=headers
            )
        )

    def job(self, job_id: str) -> JobOut:
        """``GET /jobs/{id}``."""
        return JobOut.model_validate(self._call("GET", f"/jobs/{job_id}"))

    def jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> JobPage:
        """``GET /jobs`` (one page)."""
        params = {"limit": limit, "offset": offset} | ({"status": status} if status else {})
        return JobPage.model_validate(self._call("GET", "/jobs", params=params))

    def cancel(self, job_id: str) -> JobOut:
        """``POST /jobs/{id}/cancel``."""
        return JobOut.model_validate(self._call("POST", f"/jobs/{job_id}/cancel"))

    def delete_job(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``: the job, its results and checkpoints. A running job is asked to
        cancel and this raises :class:`ApiError` 409: call again once it has stopped."""
        self._call("DELETE", f"/jobs/{job_id}")

    def wait(self, job_id: str, *, timeout: float = 3600.0, poll: float = 0.5, check: bool = True) -> JobOut:
        """Poll until the job ends; raises :class:`JobFailed` if it did not succeed (``check``), or
        ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.status in TERMINAL:
                if check and job.status != "succeeded":
                    raise JobFailed(job)
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout:g} s")
            time.sleep(poll)

    def affinity(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/affinity``: matrices and trajectories per method."""
        return self._call("GET", f"/jobs/{job_id}/affinity")

    # groupings
    def groupings(
        self,
        job_id: str,
        budget: float,
        *,
        method: str | None = None,
        solver: str = "bip",
        singletons: str | None = None,
    ) -> GroupingOut:
        """``GET /groupings`` at one budget (``.trust`` where the table has samples of its estimate);
        ``singletons`` applies to affinity tables (the server's default: forbid)."""
        params = {"job_id": job_id, "budget": budget, "solver": solver}
        return GroupingOut.model_validate(
            self._call("GET", "/groupings", params=params | _opt(method=method, singletons=singletons))
        )

    def grouping_curve(
        self,
        job_id: str,
        budgets: str,
        *,
        method: str | None = None,
        solver: str = "bip",
        singletons: str | None = None,
    ) -> GroupingCurve:
        """``GET /groupings?budgets=start:stop:step``."""
        params = {"job_id": job_id, "budgets": budgets, "solver": solver}
        return GroupingCurve.model_validate(
            self._call("GET", "/groupings", params=params | _opt(method=method, singletons=singletons))
        )

    def solve(
        self, problem: dict[str, Any], budget: float, *, solver: str = DEFAULT_SOLVER,
        time_limit: float | None = None,
    ) -> SolutionOut:
        """``POST /groupings``: solve a problem without training."""
        body = {"problem": problem, "budget": budget, "solver": solver} | _opt(time_limit=time_limit)
        return SolutionOut.model_validate(self._call("POST", "/groupings", json=body))

    # datasets
    def upload_dataset(self, path: str | Path, *, name: str | None = None) -> DatasetOut:
        """``POST /datasets`` (multipart) of a .parquet, .csv or .npz file."""
        path = Path(path)
        with path.open("rb") as handle:
            return DatasetOut.model_validate(
                self._call("POST", "/datasets", files={"file": (path.name, handle)}, data=_opt(name=name))
            )

    def dataset(self, dataset_id: str) -> DatasetOut:
        """``GET /datasets/{id}``."""
        return DatasetOut.model_validate(self._call("GET", f"/datasets/{dataset_id}"))

    def delete_dataset(self, dataset_id: str) -> None:
        """``DELETE /datasets/{id}``: the dataset and its uploaded file (:class:`ApiError` 409 while a
        queued or running job uses it)."""
        self._call("DELETE", f"/datasets/{dataset_id}")


def _opt(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
