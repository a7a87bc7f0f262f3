"""Studies on MTG-Net's ETTm1 table (``shared/data/mtgnet2022``: all 127 combinations of 7 tasks
trained by the authors, each member's gain on validation and test): a client that answers every
trial from the published table reproduces, for the exhaustive strategy, the selections of solving
that table directly; the adaptive strategy reaches its selections with fewer trials (printed, and
its regret against the exhaustive optimum on the same table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grouping.problem import CandidateNetwork, ExplicitProblem, parse_problem
from grouping.selection import solve_curve
from service.client import TaskgrouperClient

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtgnet2022"
TASKS = [f"t{k}" for k in range(7)]
BUDGETS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/mtgnet2022 is not present")


def published(name: str) -> dict[tuple[str, ...], dict[str, float]]:
    """Each trained task set's gains per member, from ``ETTm1_x.csv`` and the gains file ``name``."""
    flags = np.loadtxt(DATA / "ETTm1_x.csv")
    gains = np.loadtxt(DATA / name)
    table = {}
    for members, row in zip(flags, gains, strict=True):
        group = tuple(t for t, f in zip(TASKS, members, strict=True) if f)
        table[group] = {t: float(row[TASKS.index(t)]) for t in group}
    return table


def run_study(client: TaskgrouperClient, strategy: str, val: dict, test: dict):
    study = client.create_study(TASKS, strategy=strategy, value_kind="score", budgets=BUDGETS)
    for trial in study.trials(heartbeat=False):
        group = tuple(trial.tasks)
        trial.tell(val[group], test=test[group])
    assert study.refresh().state == "complete"
    return study


def test_exhaustive_reproduces_the_table_and_adaptive_needs_fewer_trials(embedded_client):
    val, test = published("ETTm1_val_y.csv"), published("ETTm1_y.csv")
    direct = ExplicitProblem(tasks=TASKS, objective="max_score", networks=[
        CandidateNetwork(tasks=list(g), size="full", cost=1.0, score=v) for g, v in val.items()])
    truth = solve_curve(direct, BUDGETS)
    client = TaskgrouperClient(http=embedded_client, retry=None)

    exhaustive = run_study(client, "exhaustive", val, test)
    assert exhaustive.out.progress.succeeded == 127
    curve = embedded_client.get("/groupings", params={"study_id": exhaustive.id, "budgets": "1:7:1"}).json()
    assert curve["trials"] == 127 and curve["strategy"] == "exhaustive"
    for expected, got in zip(truth, curve["curve"], strict=True):
        assert got["objective"] == pytest.approx(expected.objective, abs=1e-9)
        assert sorted(map(sorted, (n["trains"] for n in got["networks"]))) == \
            sorted(map(sorted, (n.trains for n in expected.networks)))
    exported = parse_problem(exhaustive.table())
    objectives = [s.objective for s in solve_curve(exported, BUDGETS)]
    assert objectives == pytest.approx([s.objective for s in truth])
    test_table = exhaustive.table("test")
    assert len(test_table["networks"]) == 127 and test_table["metadata"]["split"] == "test"

    adaptive = run_study(client, "adaptive", val, test)
    trials = adaptive.out.progress.succeeded
    answer = embedded_client.get("/groupings", params={"study_id": adaptive.id, "budgets": "1:7:1"}).json()
    assert answer["trials"] == trials
    regrets = []
    for expected, got in zip(truth, answer["curve"], strict=True):
        # the adaptive selection, scored on the published table (its networks are all measured)
        chosen = {tuple(n["trains"]) for n in got["networks"]}
        achieved = sum(max(val[g][t] for g in chosen if t in g) for t in TASKS)
        assert achieved == pytest.approx(got["objective"], abs=1e-9)
        regrets.append(round(expected.objective - achieved, 4))
    print(f"\nETTm1: exhaustive 127 trials, adaptive {trials} trials over {adaptive.out.rounds} rounds; "
          f"adaptive regret (sum of val gains) at budgets 1..7: {regrets}")
    assert trials < 127
    assert all(r >= -1e-9 for r in regrets) and max(regrets) <= 0.05  # measured: 0.0352
