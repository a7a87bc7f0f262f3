"""Hypothesis on the parsers user input reaches: any JSON document given to ``parse_problem`` yields a
problem or an ``InputError`` (never another exception), and any table — as CSV bytes, or a Parquet
or NPZ of random columns — given to the dataset spec and reader yields a dataset or an ``InputError``."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.problem import parse_problem

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
task_names = st.sampled_from(["a", "b", "c", "d"])
numbers = st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.sampled_from([0.0, 1.0, -1.0]))
matrices = st.integers(0, 4).flatmap(
    lambda n: st.lists(st.lists(numbers, min_size=n, max_size=n), min_size=n, max_size=n)
)
problem_like = st.fixed_dictionaries(
    {},
    optional={
        "tasks": st.lists(task_names, max_size=4) | json_values,
        "objective": st.sampled_from(["max_affinity", "min_loss", "max_score", "other"]) | json_values,
        "singletons": st.sampled_from(["forbid", "normalized", "allow"]) | json_values,
        "network_cost": numbers | json_values,
        "affinity": st.fixed_dictionaries({}, optional={"onto_row_from_column": matrices | json_values})
        | json_values,
        "networks": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "trains": st.lists(task_names, max_size=3),
                    "serves": st.lists(task_names, max_size=3),
                    "cost": numbers,
                    "loss": st.dictionaries(task_names, numbers, max_size=3),
                    "score": st.dictionaries(task_names, numbers, max_size=3),
                },
            ),
            max_size=4,
        )
        | json_values,
    },
)


@FUZZ
@given(json_values | problem_like)
def test_parse_problem_gives_a_problem_or_an_input_error(document: Any):
    try:
        parse_problem(document)
    except InputError as exc:
        assert exc.field and exc.reason


@pytest.mark.parametrize("objective", [[], {}])
def test_unhashable_objective_is_an_input_error(objective):
    with pytest.raises(InputError, match="objective"):
        parse_problem({"objective": objective})


column_values = {
    "float": st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=30),
    "int": st.lists(st.integers(-3, 3), min_size=1, max_size=30),
    "text": st.lists(st.sampled_from(["x", "y", "z", ""]), min_size=1, max_size=30),
}
columns = st.dictionaries(
    st.sampled_from(["f1", "f2", "label", "size", "split"]),
    st.sampled_from(list(column_values)).flatmap(lambda kind: column_values[kind]),
    min_size=1,
    max_size=5,
)
tasks = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["label", "size", "f1", "missing"]),
            "type": st.sampled_from(["binary", "multiclass", "regression"]),
        }
    ),
    min_size=1,
    max_size=3,
)


def try_load(path: Path, spec: dict[str, Any]) -> None:
    # ValidationError: the spec itself is invalid (what the API reports as a 422 on the body)
    with contextlib.suppress(InputError, ValidationError):
        load_dataset(DatasetSpec(source=str(path), **spec))


@FUZZ
@given(
    st.binary(max_size=300) | st.text(alphabet=',\n"ab1.5-xyz ', max_size=300).map(str.encode),
    tasks,
    st.sampled_from([None, "split"]),
)
def test_csv_bytes_give_a_dataset_or_an_input_error(content: bytes, task_list, split_column):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(b"label,f1\n" + content)
        try_load(path, {"tasks": task_list, "split": {"column": split_column}})


@FUZZ
@given(columns, tasks, st.sampled_from(["parquet", "npz"]), st.sampled_from([None, ["f1"], ["f1", "f2"]]))
def test_random_tables_give_a_dataset_or_an_input_error(table, task_list, fmt, features):
    n = min(len(v) for v in table.values())
    table = {name: values[:n] for name, values in table.items()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{fmt}"
        if fmt == "parquet":
            pd.DataFrame(table).to_parquet(path)
        else:
            buffer = io.BytesIO()
            np.savez(buffer, **{k: np.asarray(v) for k, v in table.items()})
            path.write_bytes(buffer.getvalue())
        try_load(path, {"tasks": task_list, "features": features})
