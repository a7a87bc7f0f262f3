"""``taskgrouper evaluate-scores``: output formats and input errors (exit 2, field named, no traceback)."""

import json
from pathlib import Path

import pytest

from service.cli import main

DATA = Path(__file__).parent / "data" / "its_a_match"
GAINS = str(DATA / "gains.json")
SCORES = str(DATA / "scores.json")


def run(capsys, *argv):
    code = main(["evaluate-scores", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_has_exactly_the_documented_shape(capsys):
    code, out, _ = run(capsys, "--gains", GAINS, "--scores", SCORES, "--json")
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["scores"]
    assert list(doc["scores"]) == ["TD", "IAS", "RSA", "LI", "GS", "GT"]
    tasks = ["SemSeg", "Keypts", "Edges", "Depth", "Normal"]
    for entry in doc["scores"].values():
        assert list(entry) == ["pearson", "pearson_all", "kendall", "kendall_mean", "best_partner"]
        assert list(entry["pearson"]) == tasks and list(entry["kendall"]) == tasks
        assert all(set(b) == {"chosen", "gain_lost"} for b in entry["best_partner"].values())
    li = doc["scores"]["LI"]
    assert li["pearson_all"] == pytest.approx(0.47, abs=0.005)
    assert li["kendall_mean"] == pytest.approx(0.47, abs=0.005)
    assert li["best_partner"]["Normal"] == {"chosen": "Depth", "gain_lost": pytest.approx(-8.55)}
    assert doc["scores"]["TD"]["best_partner"]["Normal"]["chosen"] == "SemSeg/Depth"


def test_human_readable_output_prints_one_table_per_level(capsys):
    code, out, _ = run(capsys, "--gains", GAINS, "--scores", SCORES)
    assert code == 0
    assert out.count("Level ") == 3
    assert "all-at-once" in out and "mean" in out
    assert "SemSeg/Depth (-4.9)" in out and "Keypts (-86.7)" in out


def test_scores_in_another_task_order_are_reordered(tmp_path, capsys):
    scores = json.loads(Path(SCORES).read_text())
    perm = [4, 2, 0, 3, 1]
    scores["tasks"] = [scores["tasks"][i] for i in perm]
    for entry in scores["scores"].values():
        m = entry["onto_row_from_column"]
        entry["onto_row_from_column"] = [[m[i][j] for j in perm] for i in perm]
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(scores))
    _, expected, _ = run(capsys, "--gains", GAINS, "--scores", SCORES, "--json")
    _, out, _ = run(capsys, "--gains", GAINS, "--scores", str(path), "--json")
    assert json.loads(out) == json.loads(expected)


def test_constant_score_rows_give_null_correlations(tmp_path, capsys):
    gains = tmp_path / "g.json"
    gains.write_text(json.dumps({"tasks": ["a", "b", "c"], "gain": {"onto_row_from_column": [
        [None, 1, 2], [3, None, 4], [5, 6, None]]}}))
    scores = tmp_path / "s.json"
    scores.write_text(json.dumps({"tasks": ["a", "b", "c"], "scores": {"flat": {"onto_row_from_column": [
        [0, 1, 1], [2, 0, 3], [4, 5, 0]]}}}))
    code, out, _ = run(capsys, "--gains", str(gains), "--scores", str(scores), "--json")
    flat = json.loads(out)["scores"]["flat"]
    assert code == 0
    assert flat["pearson"]["a"] is None and flat["kendall"]["a"] is None
    assert flat["pearson"]["b"] == pytest.approx(1.0) and flat["kendall_mean"] == pytest.approx(1.0)
    assert flat["best_partner"]["a"] == {"chosen": "b/c", "gain_lost": pytest.approx(-0.5)}
    _, text, _ = run(capsys, "--gains", str(gains), "--scores", str(scores))
    assert "n/a" in text


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


M = [[0, 1, 2], [3, 0, 4], [5, 6, 0]]
GOOD_GAIN = {"tasks": ["a", "b", "c"], "gain": {"onto_row_from_column": M}}
GOOD_SCORES = {"tasks": ["a", "b", "c"], "scores": {"x": {"onto_row_from_column": M}}}


@pytest.mark.parametrize(
    ("gains", "scores", "field"),
    [
        ({**GOOD_GAIN, "tasks": ["a", "b"]}, GOOD_SCORES, "gains.gain.onto_row_from_column"),
        ({**GOOD_GAIN, "gain": {"onto_row_from_column": [[0, 1], [3, 0], [5, 6]]}}, GOOD_SCORES,
         "gains.gain.onto_row_from_column"),
        ({**GOOD_GAIN, "gain": {"onto_row_from_column": [[0, 1, 2], [3, 0, "x"], [5, 6, 0]]}}, GOOD_SCORES,
         "gains.gain.onto_row_from_column[1][2]"),
        ('{"tasks": ["a", "b", "c"], "gain": {"onto_row_from_column": [[0, NaN, 2], [3, 0, 4], [5, 6, 0]]}}',
         GOOD_SCORES, "gains.gain.onto_row_from_column[0][1]"),
        ({**GOOD_GAIN, "tasks": ["a", "a", "c"]}, GOOD_SCORES, "gains.tasks"),
        ({"tasks": ["a", "b", "c"], "gain": [[0]]}, GOOD_SCORES, "gains.gain"),
        ("{not json", GOOD_SCORES, "gains"),
        (GOOD_GAIN, {**GOOD_SCORES, "tasks": ["a", "b", "d"]}, "scores.tasks"),
        (GOOD_GAIN, {**GOOD_SCORES, "scores": {}}, "scores.scores"),
        (GOOD_GAIN, {**GOOD_SCORES, "scores": {"x": {"onto_row_from_column": [M[0], [3, 0, None], M[2]]}}},
         "scores.scores.x.onto_row_from_column[1][2]"),
        (GOOD_GAIN, [1, 2], "scores"),
    ],
)
def test_bad_input_is_an_error_naming_the_field(tmp_path, capsys, gains, scores, field):
    code, out, err = run(capsys, "--gains", _write(tmp_path, "g.json", gains),
                         "--scores", _write(tmp_path, "s.json", scores))
    assert code == 2
    assert out == ""
    assert err.startswith(f"taskgrouper evaluate-scores: error: {field}: ")
    assert "Traceback" not in err


def test_missing_file_is_an_error(tmp_path, capsys):
    code, _, err = run(capsys, "--gains", str(tmp_path / "nope.json"), "--scores", SCORES)
    assert code == 2
    assert err.startswith("taskgrouper evaluate-scores: error: gains: cannot read")
