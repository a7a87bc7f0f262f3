"""End to end in the embedded mode: SQLite, in-process runner, no servers."""

from __future__ import annotations

from service.client import TaskgrouperClient


def test_job_to_grouping_embedded(embedded_client, job_flow):
    client = TaskgrouperClient(http=embedded_client)
    job = job_flow(client)
    assert client.jobs(status="succeeded").items[0].id == job.id
    curve = client.grouping_curve(job.id, "1:3:1")
    assert [p.budget for p in curve.curve] == [1.0, 2.0, 3.0]
    objectives = [p.objective for p in curve.curve]
    assert objectives == sorted(objectives)  # more budget never hurts
