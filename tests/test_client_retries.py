"""The Python client against real servers: it retries a refused connection until the server is up,
honours a real 429's Retry-After from the Redis rate limiter, and its asynchronous variant waits for a
job without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
import uvicorn
from child_processes import free_port
from conftest import TINY_JOB, make_key
from httpx_retries import RetryTransport
from test_hardening_server import serving, wait_until

from service.app import create_app
from service.client import (
    ApiError,
    AsyncTaskgrouperClient,
    ServerUnreachable,
    TaskgrouperClient,
    default_retry,
)

pytestmark = pytest.mark.services


class _Counting(httpx.HTTPTransport):
    """The plain transport, counting the attempts the retry layer makes through it."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.first = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        self.first.set()
        return super().handle_request(request)



def test_a_server_that_is_down_then_comes_up_is_reached_after_retries(embedded_settings):
    port = free_port()
    counting = _Counting()
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                        transport=RetryTransport(counting, retry=default_retry()))
    server = uvicorn.Server(uvicorn.Config(create_app(embedded_settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    # the server starts only once the client's first attempt has been refused
    starter = threading.Thread(target=lambda: counting.first.wait(60) and server.run(), daemon=True)
    starter.start()
    try:
        with TaskgrouperClient(http=http) as client:
            page = client.jobs()
        assert page.total == 0 and page.items == []
        assert counting.attempts >= 2  # refused at least once, then answered
    finally:
        server.should_exit = True
        starter.join(timeout=60)


def test_no_server_at_all_is_a_clear_error_after_the_retries(embedded_settings):
    retry = default_retry().copy_with(backoff_factor=0.01)
    with TaskgrouperClient(f"http://127.0.0.1:{free_port()}", retry=retry) as client, \
            pytest.raises(ServerUnreachable, match="no answer from http://127.0.0.1:.*/jobs"):
        client.jobs()


def test_a_real_429_is_retried_after_its_retry_after(server_settings):
    settings = server_settings.model_copy(update={"rate_limit_requests": 2, "rate_limit_window": 2})
    key = make_key(settings, settings.default_project)
    with serving(create_app(settings)) as url:
        with TaskgrouperClient(url, api_key=key, retry=None) as plain:
            answers = []
            for _ in range(4):
                try:
                    answers.append(plain.jobs().total)
                except ApiError as exc:
                    answers.append(exc)
            refused = [a for a in answers if isinstance(a, ApiError)]
            assert refused and refused[0].status == 429 and refused[0].problem["retry_after"] >= 1
        counting = _Counting()
        http = httpx.Client(base_url=url, transport=RetryTransport(counting, retry=default_retry()))
        with TaskgrouperClient(http=http, api_key=key) as client:
            before = counting.attempts
            for _ in range(3):  # over the limit within one window: answered after a 429 and its wait
                assert client.jobs().total == 0
            assert counting.attempts - before > 3


def test_the_async_client_waits_for_a_job_while_the_event_loop_runs(embedded_settings):
    with serving(create_app(embedded_settings)) as url:

        async def scenario() -> tuple[str, int, list[str]]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.05)

            async with AsyncTaskgrouperClient(url) as client:
                job = await client.submit_job(**TINY_JOB)
                beat = asyncio.create_task(ticker())
                done = await client.wait(job.id, timeout=240, poll=0.2)
                beat.cancel()
                log = await client.logs(job.id)
                return done.status, ticks, [e.step for e in log.entries]

        status, ticks, steps = asyncio.run(scenario())
    assert status == "succeeded"
    assert ticks > 1  # the loop kept running while wait() polled
    assert {"load_dataset", "affinity", "store_results"} <= set(steps)


def test_submit_job_retried_by_hand_with_its_key_creates_one_job(embedded_settings):
    with serving(create_app(embedded_settings)) as url, TaskgrouperClient(url) as client:
        first = client.submit_job(**TINY_JOB, idempotency_key="same-key")
        again = client.submit_job(**TINY_JOB, idempotency_key="same-key")
        assert again.id == first.id
        wait_until(lambda: client.job(first.id).status in ("succeeded", "failed"), 240, "the job")
        assert client.jobs().total == 1


def test_a_503_is_retried_for_a_post_with_an_idempotency_key_only(server_settings):
    settings = server_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0",
                                                  "rate_limit_url": server_settings.broker_url})
    key = make_key(settings, settings.default_project)
    with serving(create_app(settings)) as url:
        counting = _Counting()
        http = httpx.Client(base_url=url, timeout=120,  # the API tries the broker before its 503
                            transport=RetryTransport(counting, retry=default_retry(2)))
        with TaskgrouperClient(http=http, api_key=key, retry=default_retry(2)) as client:
            with pytest.raises(ApiError) as refused:
                client.submit_job(**TINY_JOB)  # sends a key: retried (the queue stays down)
            assert refused.value.status == 503 and counting.attempts == 3
            with pytest.raises(ApiError) as once:
                client._call("POST", "/jobs", dict, json=TINY_JOB)  # no key: answered at once
            assert once.value.status == 503 and counting.attempts == 4
