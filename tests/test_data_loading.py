"""Datasets: built-ins, Parquet/CSV/NPZ files, splits, and clear errors for bad input."""

import numpy as np
import pandas as pd
import pytest

from grouping.data import BUILTIN_DATASETS, DatasetSpec, SplitSpec, TaskSpec, load_dataset
from grouping.data.spec import validated
from grouping.errors import InputError


def _frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "f1": rng.standard_normal(n),
            "f2": rng.standard_normal(n),
            "label": rng.choice(["cat", "dog", "eel"], n),
            "flag": rng.integers(0, 2, n).astype(bool),
            "price": rng.standard_normal(n) * 100 + 5,
            "part": np.tile(["train"] * 6 + ["val"] * 2 + ["test"] * 2, n // 10),
        }
    )


TASKS = [
    TaskSpec(name="label", type="multiclass"),
    TaskSpec(name="flag", type="binary"),
    TaskSpec(name="cost", column="price", type="regression", loss="l1", weight=2.0),
]


def test_builtins_load_with_their_default_tasks():
    for name, builtin in BUILTIN_DATASETS.items():
        options = {"n_samples": 300} if name != "digits-attributes" else {}
        data = load_dataset(DatasetSpec(source=name, options=options))
        assert data.task_names and builtin.default_epochs > 0
        assert len(data.train) > len(data.val) > 0 and len(data.test) > 0
    digits = load_dataset(DatasetSpec(source="digits-attributes"))
    assert digits.input_kind == "image" and digits.input_shape == (1, 8, 8) and len(digits.tasks) == 8
    assert digits.output_dims["digit"] == 10 and digits.output_dims["even"] == 1
    multi = load_dataset(DatasetSpec(source="multidigits", options={"n_samples": 200}))
    assert multi.task_names == ["left", "right"] and multi.input_shape == (1, 12, 12)
    synthetic = load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 200}))
    assert synthetic.input_kind == "tabular" and len(synthetic.info["clusters"]) == 3
    assert all(len(pair) == 2 for pair in synthetic.info["conflicting_pairs"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_files_with_split_column(tmp_path, fmt):
    frame = _frame()
    path = tmp_path / f"data.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    spec = DatasetSpec(source=str(path), tasks=TASKS, split=SplitSpec(column="part"))
    data = load_dataset(spec)
    assert data.feature_names == ["f1", "f2"] and data.input_shape == (2,)
    assert (len(data.train), len(data.val), len(data.test)) == (72, 24, 24)
    assert data.encodings["label"].classes == ["cat", "dog", "eel"] and data.output_dims["label"] == 3
    assert data.task("cost").loss == "l1" and data.task("cost").weight == 2.0
    assert abs(float(data.train.y["cost"].mean())) < 1e-5  # regression targets standardised on train
    assert abs(float(data.train.x.mean())) < 1e-5
    assert load_dataset(spec.model_copy(update={"source": path.as_uri()})).task_names == data.task_names


def test_npz_images_and_fraction_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "img.npz"
    np.savez(path, pixels=rng.random((200, 6, 6)), y=rng.integers(0, 4, 200), z=rng.standard_normal(200))
    spec = DatasetSpec(
        source=str(path),
        features=["pixels"],
        tasks=[TaskSpec(name="y", type="multiclass"), TaskSpec(name="z", type="regression")],
        split=SplitSpec(fractions=(0.5, 0.25, 0.25), seed=3),
    )
    data = load_dataset(spec)
    assert data.input_kind == "image" and data.input_shape == (1, 6, 6)
    assert (len(data.train), len(data.val), len(data.test)) == (100, 50, 50)
    again = load_dataset(spec)
    assert np.array_equal(again.val.x.numpy(), data.val.x.numpy())


def _error(tmp_path, frame, tasks, **spec):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as info:
        load_dataset(DatasetSpec(source=str(path), tasks=tasks, **spec))
    return info.value


def test_bad_targets_name_the_cause(tmp_path):
    frame = _frame()
    err = _error(tmp_path, frame, [TaskSpec(name="missing", type="binary")])
    assert err.field == "dataset.tasks.missing.column" and "not found" in err.reason
    nan = frame.assign(price=frame.price.where(frame.index != 5))
    assert "NaN" in _error(tmp_path, nan, [TaskSpec(name="price", type="regression")]).reason
    inf = frame.assign(price=frame.price.where(frame.index != 7, np.inf))
    assert "infinite" in _error(tmp_path, inf, [TaskSpec(name="price", type="regression")]).reason
    const = frame.assign(price=3.0)
    assert "constant" in _error(tmp_path, const, [TaskSpec(name="price", type="regression")]).reason
    one = frame.assign(label="cat")
    assert "one class" in _error(tmp_path, one, [TaskSpec(name="label", type="multiclass")]).reason
    assert (
        "constant" in _error(tmp_path, frame.assign(flag=True), [TaskSpec(name="flag", type="binary")]).reason
    )
    assert "exactly 2" in _error(tmp_path, frame, [TaskSpec(name="label", type="binary")]).reason
    # a text feature is one-hot encoded (tests/test_data_categorical.py), unless it has too many values
    text = frame.assign(f2=[f"v{i}" for i in range(len(frame))])
    assert "'f2' has 120 distinct" in _error(tmp_path, text, [TaskSpec(name="flag", type="binary")]).reason
    assert (
        "split"
        in _error(
            tmp_path,
            frame.assign(part="train"),
            [TaskSpec(name="flag", type="binary")],
            split=SplitSpec(column="part"),
        ).field
    )


def test_bad_specs_and_sources():
    with pytest.raises(InputError, match="listed twice"):
        validated(DatasetSpec, {"source": "x.csv", "tasks": [{"name": "a", "type": "binary"}] * 2}, "dataset")
    with pytest.raises(InputError, match=r"dataset\.tasks\.0.*does not fit a binary"):
        validated(
            DatasetSpec,
            {"source": "x.csv", "tasks": [{"name": "a", "type": "binary", "loss": "mse"}]},
            "dataset",
        )
    with pytest.raises(InputError, match="sum to 1"):
        validated(DatasetSpec, {"source": "x.csv", "split": {"fractions": [0.5, 0.2, 0.2]}}, "dataset")
    for source, reason in [
        ("s3://bucket/data.parquet", "not supported"),
        ("/nope/data.csv", "does not exist"),
        ("unknown-builtin", "neither a built-in"),
    ]:
        with pytest.raises(InputError, match=reason):
            load_dataset(DatasetSpec(source=source, tasks=[TaskSpec(name="a", type="binary")]))
    with pytest.raises(InputError, match="n_samples"):
        load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 3}))
