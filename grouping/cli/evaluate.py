"""``taskgrouper evaluate-scores``: the three "It's a Match" levels of affinity scores against true MTL gains.

Reads ``--gains`` and ``--scores`` (formats in :mod:`grouping.evaluation.pair_matrices`) and prints one
table per level (rows = targets, columns = scores, as the paper's Tables 2-4), or with ``--json``::

    {"scores": {NAME: {"pearson": {target: r}, "pearson_all": r, "kendall": {target: tau},
                       "kendall_mean": tau, "best_partner": {target: {"chosen": task, "gain_lost": x}}}}}

Undefined correlations (a constant score row) are ``null`` in JSON and ``n/a`` in the tables.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from grouping.errors import InputError
from grouping.evaluation.pair_matrices import parse_gains, parse_scores
from grouping.evaluation.score_levels import ScoreEvaluation, evaluate_scores, true_best_partners


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate-scores``."""
    parser = subparsers.add_parser(
        "evaluate-scores",
        help="rate affinity scores against true MTL gains (Pearson, Kendall, best partner)",
        description="Evaluate affinity scores against the true pairwise MTL gains at the three levels of "
        '"It\'s a Match" (section 3.2): per-target Pearson correlation and all-at-once, per-target '
        "Kendall tau-b and its mean, and the best partner with the MTL gain lost by choosing it.",
    )
    parser.add_argument("--gains", required=True, type=Path, metavar="GAINS.json",
                        help='{"tasks": [...], "gain": {"onto_row_from_column": M}} (percent)')
    parser.add_argument("--scores", required=True, type=Path, metavar="SCORES.json",
                        help='{"tasks": [...], "scores": {NAME: {"onto_row_from_column": M}}}')
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load, evaluate, print; bad input raises :class:`InputError` (exit 2 via the console script)."""
    gain = parse_gains(_load_json(args.gains, "gains"))
    scores = parse_scores(_load_json(args.scores, "scores"), gain.tasks)
    results = evaluate_scores(gain, scores)
    if args.json:
        print(json.dumps({"scores": {name: r.to_dict() for name, r in results.items()}}, indent=2))
    else:
        expected = {t: b.label for t, b in true_best_partners(gain).items()}
        print(format_report(gain.tasks, results, expected))
    return 0


def format_report(
    tasks: Sequence[str], results: Mapping[str, ScoreEvaluation], expected: Mapping[str, str]
) -> str:
    """Tables 2, 3 and 4 of the paper for ``results``; ``expected`` is each target's true best partner."""
    names = list(results)

    def level(title: str, cell: Callable[[ScoreEvaluation, str], str], summary: tuple[str, Callable] | None,
              extra: tuple[str, Callable[[str], str]] | None = None) -> str:
        header = ["target"] + ([extra[0]] if extra else []) + names
        rows = [[t] + ([extra[1](t)] if extra else []) + [cell(results[n], t) for n in names] for t in tasks]
        if summary:
            rows.append([summary[0]] + [_number(summary[1](results[n])) for n in names])
        return f"{title}\n{_table(header, rows)}"

    return "\n\n".join([
        level("Level 1 - predictive power: Pearson r of score vs true MTL gain, per target",
              lambda r, t: _number(r.pearson[t]), ("all-at-once", lambda r: r.pearson_all)),
        level("Level 2 - partners ranking: Kendall tau-b of score vs true MTL gain, per target",
              lambda r, t: _number(r.kendall[t]), ("mean", lambda r: r.kendall_mean)),
        level("Level 3 - best partner by score (MTL gain lost vs the true best partner, points)",
              lambda r, t: f"{r.best_partner[t].label} ({r.best_partner[t].gain_lost:.1f})", None,
              ("true best", lambda t: expected[t])),
    ])


def _number(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [[c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
             for r in [header, *rows]]
    return "\n".join("  ".join(line).rstrip() for line in lines)


def _load_json(path: Path, field: str) -> Any:
    """The JSON document at ``path``; a directory, an unreadable or an invalid file is an
    :class:`InputError` on ``field``."""
    if path.is_dir():
        raise InputError(field, f"{path} is a directory, not a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(field, f"{path} is not valid JSON: {exc}") from None
