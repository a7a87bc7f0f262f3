"""Acceptance: the paper's Tables 2-4 from its Table 1 (true MTL gains) and Tables 6-11 (scores).

Inputs and expected tables are transcribed in tests/data/its_a_match/. The published score matrices are
rounded to two decimals, which creates ties that were not ties in the authors' data; entries where the
score (or the gain) has tied partners are checked against the documented tie rules instead.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from grouping.evaluation.pair_matrices import PairMatrix, parse_gains, parse_scores
from grouping.evaluation.score_levels import evaluate_scores, true_best_partners

DATA = Path(__file__).parent / "data" / "its_a_match"


def load(name):
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="module")
def gain():
    return parse_gains(load("gains.json"))


@pytest.fixture(scope="module")
def scores(gain):
    return parse_scores(load("scores.json"), gain.tasks)


@pytest.fixture(scope="module")
def results(gain, scores):
    return evaluate_scores(gain, scores)


def tied(matrix: PairMatrix, target: str) -> bool:
    row = matrix.partners(matrix.tasks.index(target))[1]
    return len(np.unique(row)) < len(row)


def test_orientation_matches_the_papers_worked_examples(gain, scores):
    # "the task Edges performs 78.05% better than learned alone in STL when trained with Normal"
    assert gain.values[gain.tasks.index("Edges"), gain.tasks.index("Normal")] == 78.05
    # Table 4 caption: for Keypts, choosing Edges instead of Normal costs 1.26 - 29.56
    k = gain.tasks.index("Keypts")
    assert gain.values[k, gain.tasks.index("Edges")] == 1.26
    assert gain.values[k, gain.tasks.index("Normal")] == 29.56
    # the asymmetric Label injection: onto Keypts from Normal is +60.29, onto Normal from Keypts +1.42
    li = scores["LI"]
    assert li.values[k, li.tasks.index("Normal")] == 60.29
    assert li.values[li.tasks.index("Normal"), k] == 1.42


def test_table2_pearson_within_0_03(results):
    table2 = load("table2.json")
    for name, result in results.items():
        for target, r in result.pearson.items():
            assert r == pytest.approx(table2["pearson"][name][target], abs=0.03), (name, target)
        assert result.pearson_all == pytest.approx(table2["pearson_all"][name], abs=0.03), name


def test_table3_kendall_for_every_untied_entry(gain, scores, results):
    table3 = load("table3.json")
    checked = 0
    for name, result in results.items():
        untied = [t for t in gain.tasks if not tied(scores[name], t)]
        for target in untied:
            assert result.kendall[target] == pytest.approx(table3["kendall"][name][target], abs=0.006)
            checked += 1
        if len(untied) == len(gain.tasks):
            assert result.kendall_mean == pytest.approx(table3["kendall_mean"][name], abs=0.006)
    assert checked == 30 - 4  # TD SemSeg/Normal, IAS Depth and RSA SemSeg have tied (rounded) scores


def test_kendall_is_tau_b_and_the_papers_tied_td_entries_rank_ties_by_task_order(gain, scores, results):
    table3 = load("table3.json")
    td = scores["TD"]
    for target in ("SemSeg", "Normal"):
        g = gain.partners(gain.tasks.index(target))[1]
        s = td.partners(td.tasks.index(target))[1]
        assert results["TD"].kendall[target] == pytest.approx(stats.kendalltau(g, s, variant="b").statistic)
        # the published value: ordinal ranks (1 = highest score), the earlier task first among equal scores
        ordinal = stats.rankdata(-s, method="ordinal")
        published = stats.kendalltau(g, -ordinal).statistic
        assert published == pytest.approx(table3["kendall"]["TD"][target], abs=0.006)
        assert results["TD"].kendall[target] != pytest.approx(published, abs=0.006)


def test_table4_best_partner_and_gain_lost(gain, scores, results):
    table4 = load("table4.json")
    assert {t: b.label for t, b in true_best_partners(gain).items()} == table4["expected_partner"]
    for name, result in results.items():
        for target, best in result.best_partner.items():
            published = table4["best_partner"][name][target]
            if name == "RSA" and target == "SemSeg":
                continue  # a rounding tie: checked below
            assert best.label == published["chosen"], (name, target)
            assert best.gain_lost == pytest.approx(published["gain_lost"], abs=0.05 + 1e-9), (name, target)


def test_table4_ties(results):
    # a genuine tie, reported as in the paper: both partners, the mean gain lost (-1.23 and -8.55)
    td = results["TD"].best_partner["Normal"]
    assert td.chosen == ("SemSeg", "Depth")
    assert td.gain_lost == pytest.approx((0.95 - 2.18 + -6.37 - 2.18) / 2)
    # RSA onto SemSeg prints Depth 0.46 = Normal 0.46; the paper chose Depth (-32.2) from unrounded
    # values. From the published matrix it is a tie of Depth (-32.22) and Normal (0).
    rsa = results["RSA"].best_partner["SemSeg"]
    assert rsa.chosen == ("Depth", "Normal")
    assert rsa.gain_lost == pytest.approx((18.02 - 50.24 + 0.0) / 2)
