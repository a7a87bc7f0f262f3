"""Ordinary CSVs load: text feature columns are one-hot encoded (deterministically, capped per column),
and the data errors a new user meets are clear: a directory given as the dataset, a continuous column
declared multiclass, a non-finite number in a config."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from grouping.data import DatasetSpec, SplitSpec, TaskSpec, load_dataset
from grouping.data.features import MAX_CATEGORIES, encode_categorical, is_categorical
from grouping.data.spec import validated
from grouping.errors import InputError
from grouping.training import ModelConfig, TrainingConfig

TASKS = [TaskSpec(name="churn", type="binary"), TaskSpec(name="spend", type="regression")]


def customers(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "plan": rng.choice(["pro", "basic", "team"], n),
            "city": rng.choice(["Rome", "Oslo"], n),
            "churn": rng.choice(["yes", "no"], n),
            "spend": rng.standard_normal(n) * 10,
        }
    )


def load_csv(tmp_path, frame: pd.DataFrame, **spec) -> object:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return load_dataset(DatasetSpec(source=str(path), tasks=spec.pop("tasks", TASKS), **spec))


def test_text_feature_columns_are_one_hot_encoded(tmp_path):
    frame = customers()
    data = load_csv(tmp_path, frame)
    assert data.feature_names == ["age", "plan=basic", "plan=pro", "plan=team", "city=Oslo", "city=Rome"]
    assert data.input_shape == (6,)
    rows = len(data.train) + len(data.val) + len(data.test)
    assert rows == len(frame)
    # every row sets exactly one indicator per text column (checked before standardisation)
    encoded, names = encode_categorical("plan", frame["plan"].to_numpy())
    assert names == ["plan=basic", "plan=pro", "plan=team"]
    assert encoded.dtype == np.float32 and (encoded.sum(axis=1) == 1).all()
    assert [names[i].removeprefix("plan=") for i in encoded.argmax(axis=1)] == frame["plan"].tolist()


def test_encoding_depends_on_the_values_only(tmp_path):
    frame = customers()
    first = load_csv(tmp_path, frame)
    again = load_csv(tmp_path, frame)
    assert np.array_equal(first.train.x.numpy(), again.train.x.numpy())
    # the same values in another row order give the same categories and the same code per value
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a, names_a = encode_categorical("plan", frame["plan"].to_numpy())
    b, names_b = encode_categorical("plan", shuffled["plan"].to_numpy())
    assert names_a == names_b
    lookup = {value: tuple(row) for value, row in zip(frame["plan"], a, strict=True)}
    assert all(lookup[value] == tuple(row) for value, row in zip(shuffled["plan"], b, strict=True))


def test_missing_text_sets_no_indicator_and_the_features_default_includes_text(tmp_path):
    frame = customers().astype({"plan": object})
    frame.loc[[3, 7], "plan"] = None
    data = load_csv(tmp_path, frame, split=SplitSpec(fractions=(0.6, 0.2, 0.2)))
    assert "plan=basic" in data.feature_names  # features=None takes the text columns too
    encoded, _ = encode_categorical("plan", frame["plan"].to_numpy())
    assert encoded[3].sum() == encoded[7].sum() == 0 and encoded.sum() == len(frame) - 2


def test_too_many_categories_are_refused_naming_the_column(tmp_path):
    frame = customers(n=MAX_CATEGORIES + 40)
    frame["plan"] = [f"p{i % MAX_CATEGORIES}" for i in range(len(frame))]
    assert len(load_csv(tmp_path, frame).feature_names) == 1 + MAX_CATEGORIES + 2  # exactly the cap: fine
    frame["plan"] = [f"p{i % (MAX_CATEGORIES + 1)}" for i in range(len(frame))]
    with pytest.raises(InputError) as info:
        load_csv(tmp_path, frame)
    err = info.value
    assert err.field == "dataset.features"
    assert f"'plan' has {MAX_CATEGORIES + 1} distinct values" in err.reason
    assert f"at most {MAX_CATEGORIES} categories" in err.reason


def test_parquet_and_npz_text_columns(tmp_path):
    frame = customers()
    frame["tier"] = pd.Categorical(frame["plan"])
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    data = load_dataset(DatasetSpec(source=str(path), tasks=TASKS, features=["tier", "age"]))
    assert data.feature_names == ["tier=basic", "tier=pro", "tier=team", "age"]
    npz = tmp_path / "data.npz"
    np.savez(npz, colour=np.array(["red", "blue"] * 50), y=np.arange(100) % 2, z=np.arange(100.0))
    spec = DatasetSpec(source=str(npz), features=["colour"],
                       tasks=[TaskSpec(name="y", type="binary"), TaskSpec(name="z", type="regression")])
    assert load_dataset(spec).feature_names == ["colour=blue", "colour=red"]
    np.savez(npz, words=np.array([["a", "b"]] * 100), y=np.arange(100) % 2, z=np.arange(100.0))
    with pytest.raises(InputError, match="'words' is not numeric"):
        load_dataset(spec.model_copy(update={"features": ["words"]}))


def test_numeric_features_with_missing_values_are_still_refused(tmp_path):
    frame = customers().astype({"age": float})
    frame.loc[5, "age"] = np.nan
    with pytest.raises(InputError, match="'age' has NaN"):
        load_csv(tmp_path, frame)


def test_which_columns_are_categorical():
    assert is_categorical(np.array(["a", "b"]))
    assert is_categorical(np.array(["a", None, 1.5], dtype=object))
    assert not is_categorical(np.array([1.0, np.nan, 2], dtype=object))
    assert not is_categorical(np.array([True, False]))
    assert not is_categorical(np.array([[1, 2]]))


def test_a_continuous_column_declared_multiclass_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"x": rng.standard_normal(n), "price": rng.standard_normal(n) * 50 + 200,
                          "label": rng.integers(0, 150, n).astype(float)})
    with pytest.raises(InputError) as info:
        load_csv(tmp_path, frame, tasks=[TaskSpec(name="price", type="multiclass")], features=["x"])
    assert info.value.field == "dataset.tasks.price"
    assert "distinct non-integer" in info.value.reason and "regression" in info.value.reason
    # whole-number floats are class labels, however many (up to the cap)
    data = load_csv(tmp_path, frame, tasks=[TaskSpec(name="label", type="multiclass")], features=["x"])
    assert data.output_dims["label"] == len(np.unique(frame["label"]))
    ids = pd.DataFrame({"x": rng.standard_normal(1200), "id": np.arange(1200)})
    with pytest.raises(InputError, match="at most 1000 classes"):
        load_csv(tmp_path, ids, tasks=[TaskSpec(name="id", type="multiclass")], features=["x"])


def test_a_directory_as_the_dataset_is_named_as_one(tmp_path):
    folder = tmp_path / "exports.csv"
    folder.mkdir()
    for source in (str(tmp_path), str(folder), folder.as_uri()):
        with pytest.raises(InputError, match="is a directory") as info:
            load_dataset(DatasetSpec(source=source, tasks=TASKS))
        assert info.value.field == "dataset.source"


@pytest.mark.parametrize(("model", "data", "expected"), [
    (TrainingConfig, {"lr": math.nan}, "training.lr: must be a finite positive number <= 10, got nan"),
    (TrainingConfig, {"lr": math.inf}, "training.lr: must be a finite positive number <= 10, got inf"),
    (TrainingConfig, {"weight_decay": -math.inf}, "must be a finite non-negative number <= 1"),
    (ModelConfig, {"width": math.nan}, "model.width: must be a finite positive number <= 4"),
])
def test_non_finite_numbers_are_named_as_such(model, data, expected):
    field = "training" if model is TrainingConfig else "model"
    with pytest.raises(InputError) as info:
        validated(model, data, field)
    assert expected in str(info.value)
