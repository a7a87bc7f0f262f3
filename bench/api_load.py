"""Loopback load test of the API in server mode (2 uvicorn workers, PostgreSQL, Redis).

Starts ``taskgrouper serve --workers 2`` against a throw-away PostgreSQL database and Redis, stores
one finished job with a 10-task affinity table (no training: the row is written directly), solves its
grouping once, then drives, open-loop at a fixed arrival rate (latency measured from each request's
send, late sends counted):

* ``GET /groupings?job_id=…&budget=3`` (a stored solve read back from PostgreSQL), target p99 < 50 ms
  at 200 requests/s;
* ``POST /jobs`` (row insert + publish to Redis), target p99 < 100 ms;

and, closed-loop with 16 concurrent clients, the saturation throughput of each beside that of the
empty ``GET /healthz`` (the ceiling of the server and load generator on this machine). It prints
p50/p99, throughput, errors, each p99 as a ratio of its target (< 1 meets it) and each saturation
throughput as a ratio of the ceiling.

    python3 bench/api_load.py [--duration 15] [--get-rate 200] [--post-rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fixtures import (  # noqa: E402
    add_server_arguments,
    seed_succeeded_job,
    server_env,
    serving,
    throwaway_database,
)

from service.auth import create_api_key  # noqa: E402
from service.db import make_engine, make_session_factory  # noqa: E402

JOB_BODY = {"dataset": "digits-attributes", "methods": ["tag"], "training": {"epochs": 1}}


async def open_loop(client: httpx.AsyncClient, send, rate: float, duration: float) -> dict:
    """Requests at ``rate``/s for ``duration`` s; latency from each actual send."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter = Counter()
    late = 0
    start = loop.time() + 0.1

    async def one(i: int) -> None:
        nonlocal late
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.01:
            late += 1
        t0 = time.perf_counter()
        try:
            response = await send(client)
            statuses[response.status_code] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
        latencies.append(time.perf_counter() - t0)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(int(rate * duration))))
    return summary(latencies, statuses, time.perf_counter() - began, late=late)


async def closed_loop(client: httpx.AsyncClient, send, concurrency: int, duration: float) -> dict:
    """``concurrency`` clients sending back to back for ``duration`` s."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    deadline = time.perf_counter() + duration

    async def user() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                statuses[(await send(client)).status_code] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - t0)

    began = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return summary(latencies, statuses, time.perf_counter() - began)


def summary(latencies: list[float], statuses: Counter, elapsed: float, late: int = 0) -> dict:
    ms = np.array(latencies) * 1000.0
    return {
        "n": len(ms),
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "rps": len(ms) / elapsed,
        "statuses": dict(statuses),
        "late": late,
    }


def line(name: str, result: dict, target_ms: float | None = None) -> str:
    ratio = f"  p99/target {result['p99'] / target_ms:.2f}" if target_ms else ""
    late = f"  late sends {result['late']}" if result.get("late") else ""
    return (
        f"{name:<44} n={result['n']:>6}  p50 {result['p50']:7.2f} ms  p99 {result['p99']:7.2f} ms  "
        f"max {result['max']:7.1f} ms  {result['rps']:7.1f} req/s  {result['statuses']}{ratio}{late}"
    )


async def drive(base: str, job_id: str, key: str, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {key}"}  # server mode: every request authenticated and rate-counted
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, headers=headers) as client:
        params = {"job_id": job_id, "budget": 3}
        first = await client.get("/groupings", params=params)
        first.raise_for_status()
        stored = await client.get("/groupings", params=params)
        assert stored.headers["x-grouping-stored"] == "true", stored.text

        async def get(c: httpx.AsyncClient) -> httpx.Response:
            return await c.get("/groupings", params=params)

        async def post(c: httpx.AsyncClient) -> httpx.Response:
            return await c.post("/jobs", json=JOB_BODY)

        async def health(c: httpx.AsyncClient) -> httpx.Response:
            return await c.get("/healthz")

        await closed_loop(client, get, 8, 2.0)  # warm-up: connections, caches
        get_open = await open_loop(client, get, args.get_rate, args.duration)
        print(line(f"GET /groupings open loop @ {args.get_rate:g}/s", get_open, 50.0))
        post_open = await open_loop(client, post, args.post_rate, args.duration)
        print(line(f"POST /jobs open loop @ {args.post_rate:g}/s", post_open, 100.0))
        ceiling = await closed_loop(client, health, 16, args.duration)
        print(line("GET /healthz closed loop, 16 clients (ceiling)", ceiling))
        for name, send in (("GET /groupings", get), ("POST /jobs", post)):
            saturated = await closed_loop(client, send, 16, args.duration)
            print(
                line(f"{name} closed loop, 16 clients", saturated)
                + f"  throughput/ceiling {saturated['rps'] / ceiling['rps']:.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--get-rate", type=float, default=200.0)
    parser.add_argument("--post-rate", type=float, default=50.0)
    args = parser.parse_args()

    with throwaway_database(args.database_url) as database, TemporaryDirectory() as home:
        engine = make_engine(database.url)
        sessions = make_session_factory(engine)
        job_id = seed_succeeded_job(sessions, "default", "api_load")
        key = create_api_key(sessions, "default", name="api_load")[1]
        engine.dispose()
        env = server_env(database, args.redis_url, home)
        try:
            with serving(env, workers=2) as (base, _pid):
                print(
                    f"server mode: 2 uvicorn workers, PostgreSQL {database.name}, Redis {args.redis_url}; "
                    f"{os.cpu_count()} CPUs shared by server and load generator"
                )
                asyncio.run(drive(base, job_id, key, args))
        finally:
            redis.Redis.from_url(args.redis_url).delete(env["TASKGROUPER_TRAINING_QUEUE"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
