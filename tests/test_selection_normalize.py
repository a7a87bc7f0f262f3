"""``"normalize": "stl"`` on explicit ``min_loss`` problems: every loss is divided by the loss of the task's
full-size single-task network, in selection and in the grouping-quality regret."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grouping.errors import InputError
from grouping.evaluation import grouping_quality
from grouping.problem import parse_problem
from grouping.selection import SOLVERS, min_feasible_budget, solve

# a: a loss on a large scale (cross-entropy-like), b: a small one (squared error on normalised labels).
# The pair helps a by 0.4 (20 % of its single-task loss) and hurts b by 0.2 (200 % of its own).
NETWORKS = [
    {"tasks": ["a"], "loss": {"a": 2.0}},
    {"tasks": ["b"], "loss": {"b": 0.1}},
    {"tasks": ["a", "b"], "loss": {"a": 1.6, "b": 0.3}},
    {"tasks": ["a"], "size": "half", "loss": {"a": 2.2}},
    {"tasks": ["b"], "size": "half", "loss": {"b": 0.12}},
]


def table(normalize="stl", networks=NETWORKS, **extra):
    return {"tasks": ["a", "b"], "objective": "min_loss", "normalize": normalize, "networks": networks,
            **extra}


def test_losses_are_relative_to_the_single_task_networks():
    problem = parse_problem(table())
    relative = {(frozenset(n.tasks), n.size): n.loss for n in problem.networks}
    # hand-computed: L(n, t) / L(s_t, t) with L(s_a, a) = 2.0, L(s_b, b) = 0.1
    assert relative[frozenset("a"), "full"] == {"a": 1.0}
    assert relative[frozenset("b"), "full"] == {"b": 1.0}
    assert relative[frozenset("ab"), "full"] == pytest.approx({"a": 0.8, "b": 3.0})
    assert relative[frozenset("a"), "half"] == pytest.approx({"a": 1.1})
    assert relative[frozenset("b"), "half"] == pytest.approx({"b": 1.2})


@pytest.mark.parametrize("solver", SOLVERS)
def test_normalised_selection_differs_from_raw(solver):
    # budget 1: the pair (raw 1.6 + 0.3 = 1.9, relative 0.8 + 3.0 = 3.8) or both half networks
    # (raw 2.2 + 0.12 = 2.32, relative 1.1 + 1.2 = 2.3): a's large loss decides the raw choice
    raw = solve(parse_problem(table("none")), 1.0, solver=solver)
    assert raw.objective == pytest.approx(1.9)
    assert [(n.trains, n.size) for n in raw.networks] == [(["a", "b"], "full")]
    relative = solve(parse_problem(table()), 1.0, solver=solver)
    assert relative.objective == pytest.approx(2.3) and relative.bound == pytest.approx(2.3)
    assert relative.per_task == pytest.approx({"a": 1.1, "b": 1.2})
    assert sorted((n.trains, n.size) for n in relative.networks) == [(["a"], "half"), (["b"], "half")]


def test_grouping_quality_on_a_normalised_truth_table():
    pair = [{"trains": ["a", "b"], "serves": ["a", "b"], "size": "full", "cost": 1.0}]
    q = grouping_quality(table(), pair, 1.0)
    # groupings within budget 1: the pair (3.8) and both half networks (2.3); the optimum is the latter
    assert q.method == pytest.approx(3.8) and q.optimal == pytest.approx(2.3)
    assert q.random == pytest.approx((3.8 + 2.3) / 2) and q.pessimal == pytest.approx(3.8)
    assert q.regret == pytest.approx((3.8 - 2.3) / ((3.8 + 2.3) / 2 - 2.3))
    raw = grouping_quality(table("none"), pair, 1.0)
    assert raw.method == pytest.approx(1.9) and raw.optimal == pytest.approx(1.9) and raw.regret == 0.0


@pytest.mark.parametrize("normalize", ["none", "stl"])
def test_round_trip(normalize):
    problem = parse_problem(table(normalize))
    data = problem.to_dict()
    assert data["normalize"] == normalize
    assert parse_problem(data) == problem
    assert parse_problem(parse_problem(data).to_dict()) == problem


def test_default_is_none():
    data = table()
    del data["normalize"]
    problem = parse_problem(data)
    assert problem.normalize == "none" and problem.networks[2].loss == {"a": 1.6, "b": 0.3}


def single_a(loss):
    return {"tasks": ["a"], "loss": {"a": loss}}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (table(objective="max_score", networks=[{"tasks": ["a", "b"], "score": {"a": 1, "b": 1}}]),
         "needs objective 'min_loss'"),
        (table(networks=[n for n in NETWORKS if n != NETWORKS[1]]), "only 'b'"),  # b has only a half network
        (table(networks=[single_a(0.0), *NETWORKS[1:]]), "task 'a', which must be > 0"),
        (table(networks=[single_a(-1.0), *NETWORKS[1:]]), "task 'a', which must be > 0"),
        (table(networks=[single_a(1e-310), *NETWORKS[1:]]), "overflows"),
        (table("relative"), "'none' or 'stl'"),
    ],
)
def test_errors_name_normalize(data, reason):
    with pytest.raises(InputError) as err:
        parse_problem(data)
    assert err.value.field == "normalize" and reason in err.value.reason


@st.composite
def tables_with_single_task_networks(draw):
    n = draw(st.integers(1, 4))
    tasks = [f"t{i}" for i in range(n)]
    loss = st.floats(0.01, 10).map(lambda v: round(v, 3))
    networks = [{"tasks": [t], "size": "full", "loss": {t: draw(loss)}} for t in tasks]
    seen = {(frozenset([t]), False) for t in tasks}
    for _ in range(draw(st.integers(0, 6))):
        trains = draw(st.lists(st.sampled_from(tasks), min_size=1, max_size=n, unique=True))
        half = len(trains) == 1 and draw(st.booleans())
        if (frozenset(trains), half) in seen:
            continue
        seen.add((frozenset(trains), half))
        served = draw(st.lists(st.sampled_from(trains), min_size=1, max_size=len(trains), unique=True))
        networks.append({"tasks": trains, "size": "half" if half else "full",
                         "loss": {t: draw(loss) for t in served}})
    return tasks, networks


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_with_single_task_networks(), st.sampled_from([1.0, 1.5, 2.0, 3.0]))
def test_solvers_see_the_relative_losses(data, budget):
    tasks, networks = data
    single = {n["tasks"][0]: n["loss"][n["tasks"][0]] for n in networks
              if len(n["tasks"]) == 1 and n["size"] == "full"}
    divided = [{**n, "loss": {t: v / single[t] for t, v in n["loss"].items()}} for n in networks]
    normalised = parse_problem({"tasks": tasks, "normalize": "stl", "networks": networks})
    by_hand = parse_problem({"tasks": tasks, "networks": divided})
    assert [n.loss for n in normalised.networks] == [n.loss for n in by_hand.networks]
    if budget < min_feasible_budget(normalised):
        return
    for solver in SOLVERS:
        assert solve(normalised, budget, solver=solver).objective == pytest.approx(
            solve(by_hand, budget, solver="brute_force").objective)
