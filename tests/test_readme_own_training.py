"""The README's "Measure affinity in your own training" examples run as written (CPU, tiny): the plain
loop, the Lightning and Hugging Face examples that continue it, and the standalone 2-process DDP run."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from grouping.affinity.run import AffinityRun
from grouping.problem import parse_problem
from grouping.selection import solve

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Measure affinity in your own training"


def examples() -> list[str]:
    text = README.read_text()
    section = text[text.index(HEADING) :]
    section = section[: section.index("\n## ", len(HEADING))]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def scripts() -> dict[str, str]:
    """Each example as a script: the first alone, a continuation after it, a ``__main__`` one alone."""
    blocks = examples()
    first = blocks[0]
    named = {"plain loop": first}
    for block in blocks[1:]:
        name = re.search(r"from grouping\.affinity\.(\w+) import", block)
        if 'if __name__ == "__main__":' in block:
            named["distributed"] = block
        else:
            named[name.group(1) if name else f"example {len(named)}"] = first + "\n" + block
    return named


def test_the_section_has_the_four_examples():
    assert list(scripts()) == ["plain loop", "lightning", "huggingface", "distributed"]


@pytest.mark.parametrize("name", ["plain loop", "lightning", "huggingface", "distributed"])
def test_example_runs(name, tmp_path):
    if name in ("lightning", "huggingface"):
        pytest.importorskip({"lightning": "lightning.pytorch", "huggingface": "transformers"}[name])
    script = tmp_path / "example.py"
    script.write_text(scripts()[name])
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    if name != "distributed":
        problem = parse_problem(json.loads((tmp_path / "problem.json").read_text()))
        assert solve(problem, 2.0).status == "optimal"
    if name in ("lightning", "huggingface"):
        run = AffinityRun.from_dict(json.loads((tmp_path / "run.json").read_text()))
        assert run.tasks == ["price", "demand", "churn"] and run.metadata["affinity_steps"] > 0
    if name == "distributed":
        assert "tensor" not in done.stdout and done.stdout.count("[") >= 3  # rank 0 printed one matrix
