"""A 40-task pairwise study (820 trials of a tiny model) on 2 Celery workers, while GET /groupings
of the study is asked for: the API's latency as trials keep ending (target p99 <= 50 ms).

Starts ``taskgrouper serve --workers 2`` and two ``taskgrouper worker`` processes against a
throw-away PostgreSQL database and Redis, creates a builtin study (``synthetic`` with 8 clusters of
5 tasks, 400 rows; a 16-unit MLP, one epoch), then asks ``GET /groupings?study_id=…&budget=40``
(the single-task networks alone are affordable: answers from the 40th trial on) ``--rate`` times
a second (open loop; latency from each send) until the study is complete or ``--max-seconds``
have passed. Prints and writes (``--out``) p50/p99 of the answers (200s; the 202s before the
first stored answer and the 422s before every task has a measured network are counted apart),
how many answers were current, trials per second and the load.

    python3 bench/studies_load.py [--rate 20] [--max-seconds 1200] [--worker-nice 10] [--out FILE]

``--worker-nice`` starts the workers with ``taskgrouper worker --nice``: on a host shared with the
API, training and solves then run at a lower CPU priority than the API's requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
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

from _fixtures import add_server_arguments, server_env, serving, throwaway_database  # noqa: E402

from service.auth import create_api_key  # noqa: E402
from service.db import make_engine, make_session_factory  # noqa: E402

STUDY = {
    "tasks": [f"c{c}_t{t}" for c in range(8) for t in range(5)],
    "strategy": "pairwise",
    "execution": "builtin",
    "dataset": "synthetic",
    "dataset_options": {"n_clusters": 8, "tasks_per_cluster": 5, "n_samples": 400},
    "model": {"hidden_units": 16, "hidden_layers": 1, "representation": 8},
    "training": {"epochs": 1, "batch_size": 128},
    "lease_seconds": 120,
}
BUDGET = 40
TARGET_MS = 50.0


async def drive(base: str, key: str, study_id: str, rate: float, max_seconds: float) -> dict:
    """GET /groupings at ``rate``/s until the study completes; latencies by status, progress samples."""
    latencies: dict[int, list[float]] = {}
    statuses: Counter = Counter()
    samples: list[tuple[float, int, int]] = []  # (seconds, whether current, trials the answer rests on)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []

        async def one() -> None:
            sent = time.perf_counter()
            try:
                response = await client.get("/groupings", params={"study_id": study_id, "budget": BUDGET})
            except httpx.TimeoutException:
                statuses["timeout"] += 1
                return
            ms = (time.perf_counter() - sent) * 1000
            statuses[response.status_code] += 1
            latencies.setdefault(response.status_code, []).append(ms)
            if response.status_code == 200:
                body = response.json()
                samples.append((loop.time() - start, int(body["current"]), body["trials"]))

        k = 0
        while loop.time() - start < max_seconds:
            k += 1
            await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
            tasks.append(asyncio.create_task(one()))
            if k % int(rate * 5) == 0:
                study = (await client.get(f"/studies/{study_id}")).json()
                print(f"  {loop.time() - start:6.0f} s: {study['progress']}", flush=True)
                if study["state"] == "complete":
                    break
        await asyncio.gather(*tasks)
        study = (await client.get(f"/studies/{study_id}")).json()
        elapsed = loop.time() - start
    return {"latencies": latencies, "statuses": statuses, "study": study, "elapsed": elapsed,
            "samples": samples}


def report(result: dict, args: argparse.Namespace, load: tuple[float, float, float]) -> str:
    ok = np.array(result["latencies"].get(200, [0.0]))
    p50, p99 = np.percentile(ok, 50), np.percentile(ok, 99)
    study = result["study"]
    done = study["progress"]["succeeded"]
    lines = [
        "# Studies under load: GET /groupings while 2 workers train a 40-task pairwise study",
        "",
        f"- machine: {os.cpu_count()} CPUs shared by PostgreSQL, Redis, 2 uvicorn workers, 2 Celery "
        f"workers (`--nice {args.worker_nice}`) and the load generator; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        f"- study: {study['progress']['total']} trials (40 single-task + 780 pair networks), state "
        f"{study['state']} after {result['elapsed']:.0f} s: {done} succeeded, "
        f"{study['progress']['failed']} failed ({done / result['elapsed']:.2f} trials/s)",
        f"- GET /groupings?study_id=…&budget={BUDGET} at {args.rate:g}/s: {dict(result['statuses'])}",
        f"- 200 answers: n={len(ok)}, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ok.max():.1f} ms; "
        f"target p99 <= {TARGET_MS:g} ms: {'met' if p99 <= TARGET_MS else 'NOT met'}",
    ]
    for status, what in ((202, "not solved yet, a solve queued"), (422, "a task not yet measured")):
        if status in result["latencies"]:
            early = np.array(result["latencies"][status])
            lines.append(f"- {status} answers ({what}): n={len(early)}, p50 "
                         f"{np.percentile(early, 50):.1f} ms, p99 {np.percentile(early, 99):.1f} ms")
    rests = [s[2] for s in result["samples"]]
    if rests:
        current = sum(s[1] for s in result["samples"])
        lines.append(f"- the answers rested on {min(rests)} to {max(rests)} trials; {current} of "
                     f"{len(rests)} were current (no trial ended since their solve)")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--worker-nice", type=int, default=0, choices=range(0, 20), metavar="0..19",
                        help="the workers' `taskgrouper worker --nice` (their CPU priority below the API's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with throwaway_database(args.database_url) as database, TemporaryDirectory() as home:
        engine = make_engine(database.url)
        key = create_api_key(make_session_factory(engine), "default", name="studies_load")[1]
        engine.dispose()
        env = server_env(database, args.redis_url, home,
                         TASKGROUPER_SOLVE_QUEUE=f"bench-solve-{database.tag}")
        cli = [shutil.which("taskgrouper") or sys.executable, *([] if shutil.which("taskgrouper")
                                                                else ["-m", "service.cli"])]
        command = [*cli, "worker", "--loglevel", "WARNING", "--nice", str(args.worker_nice)]
        workers = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            with serving(env, workers=2) as (base, _pid):
                made = httpx.post(f"{base}/studies", json=STUDY, headers={"Authorization": f"Bearer {key}"},
                                  timeout=120)
                made.raise_for_status()
                print(f"study {made.json()['id']}: {made.json()['progress']['total']} trials", flush=True)
                result = asyncio.run(drive(base, key, made.json()["id"], args.rate, args.max_seconds))
            text = report(result, args, os.getloadavg())
            print(text)
            if args.out:
                args.out.write_text(text)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
            redis.Redis.from_url(args.redis_url).delete(env["TASKGROUPER_TRAINING_QUEUE"],
                                                        env["TASKGROUPER_SOLVE_QUEUE"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
