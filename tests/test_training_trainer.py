"""train_network: results, cost, seeds, early stopping, progress, cancellation, resume, bad input."""

import numpy as np
import pytest
import torch

from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.training import (
    Cancelled,
    ModelConfig,
    TrainingConfig,
    build_model,
    relative_cost,
    train_network,
)

SMALL = ModelConfig(hidden_units=32, representation=16, channels=4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 400, "n_clusters": 2}))


def test_mtl_and_stl_results(data):
    seen = []
    result = train_network(data, ["c0_t0", "c0_t1"], SMALL, TrainingConfig(epochs=3), progress=seen.append)
    assert set(result.val_loss) == set(result.test_loss) == {"c0_t0", "c0_t1"}
    assert result.epochs_run == 3 and result.cost == pytest.approx(1.0) and result.seconds > 0
    assert seen[-1].fraction == 1.0 and all(0 < p.fraction <= 1 for p in seen) and seen[-1].total_steps == 15
    assert [p.step for p in seen] == sorted(p.step for p in seen)
    stl = train_network(data, ["c1_t0"], SMALL.model_copy(update={"width": 0.5}), TrainingConfig(epochs=2))
    assert list(stl.test_loss) == ["c1_t0"] and 0.4 < stl.cost < 0.6


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_training_lowers_the_loss_and_is_seeded(data, optimizer):
    lr = 1e-3 if optimizer == "adam" else 0.03
    training = TrainingConfig(epochs=8, optimizer=optimizer, lr=lr, lr_schedule="cosine")
    one = train_network(data, ["c0_t0"], SMALL, training)
    two = train_network(data, ["c0_t0"], SMALL, training)
    short = train_network(data, ["c0_t0"], SMALL, training.model_copy(update={"epochs": 1}))
    assert one.val_loss == two.val_loss and one.val_loss["c0_t0"] < short.val_loss["c0_t0"]


def test_images_use_the_cnn_and_cost_scales_with_width():
    digits = load_dataset(DatasetSpec(source="digits-attributes"))
    result = train_network(
        digits, ["digit", "even"], SMALL, TrainingConfig(epochs=3, optimizer="adam", lr=3e-3)
    )
    assert result.test_loss["digit"] < np.log(10)
    shape, dims = digits.input_shape, {"digit": 10}
    for kind, input_shape in (("image", shape), ("tabular", (64,))):
        half = relative_cost(kind, input_shape, dims, ModelConfig(width=0.5))
        quarter = relative_cost(kind, input_shape, dims, ModelConfig(width=0.25))
        assert half == pytest.approx(0.5, abs=0.07) and quarter < half < 1.0


def test_early_stopping_keeps_the_best_epoch(data):
    result = train_network(data, ["x0_a"], SMALL, TrainingConfig(epochs=40, patience=2, lr=0.3))
    assert result.epochs_run < 40 and result.best_epoch == result.epochs_run - 2


def test_cancel_and_resume_match_a_straight_run(data, tmp_path):
    training = TrainingConfig(epochs=3)
    straight = train_network(data, ["c0_t0", "c1_t0"], SMALL, training)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 7

    with pytest.raises(Cancelled):
        train_network(
            data, ["c0_t0", "c1_t0"], SMALL, training, should_cancel=cancel, checkpoint_dir=tmp_path
        )
    resumed = train_network(data, ["c0_t0", "c1_t0"], SMALL, training, checkpoint_dir=tmp_path)
    assert resumed.val_loss == pytest.approx(straight.val_loss, rel=1e-6)
    assert resumed.test_loss == pytest.approx(straight.test_loss, rel=1e-6)


def test_bad_training_input(data):
    with pytest.raises(InputError, match="fewer than one batch"):
        train_network(data, ["c0_t0"], SMALL, TrainingConfig(batch_size=1000))
    with pytest.raises(InputError, match="listed twice"):
        train_network(data, ["c0_t0", "c0_t0"], SMALL, TrainingConfig())
    with pytest.raises(InputError, match="not in the dataset"):
        train_network(data, ["nope"], SMALL, TrainingConfig())
    with pytest.raises(InputError) as info:
        train_network(data, ["c0_t0", "c0_t1"], SMALL, TrainingConfig(lr=10.0, epochs=5))
    assert "became NaN" in info.value.reason and "step" in info.value.details
    assert info.value.details["task"] in {"c0_t0", "c0_t1"}
    with pytest.raises(InputError, match="needs image data"):
        train_network(data, ["c0_t0"], ModelConfig(backbone="cnn"), TrainingConfig())


@pytest.mark.parametrize("config", [
    TrainingConfig(),
    TrainingConfig(optimizer="momentum"),
    TrainingConfig(optimizer="momentum", momentum=0.5),
    TrainingConfig(optimizer="adam", weight_decay=0.01),
])
def test_training_config_survives_a_dump_and_reload(config):
    """Stored job specs are dumped configs: validating one again must give the same config."""
    assert TrainingConfig.model_validate(config.model_dump()) == config


def test_a_task_head_starts_the_same_whatever_the_other_tasks():
    """Head initialisation depends on (seed, task name) only, not on the task's position."""
    torch.manual_seed(0)
    alone = build_model("tabular", (10,), {"b": 3}, ModelConfig(), seed=7)
    torch.manual_seed(0)
    second = build_model("tabular", (10,), {"a": 2, "b": 3}, ModelConfig(), seed=7)
    torch.manual_seed(0)
    other_seed = build_model("tabular", (10,), {"b": 3}, ModelConfig(), seed=8)
    assert torch.equal(alone.heads["b"].weight, second.heads["b"].weight)
    assert torch.equal(alone.heads["b"].bias, second.heads["b"].bias)
    assert not torch.equal(alone.heads["b"].weight, other_seed.heads["b"].weight)


def test_a_checkpoint_that_is_not_plain_tensors_is_refused_not_run(tmp_path):
    """weights_only loading refuses pickled code; the run stops with an InputError naming the field."""
    import pickle

    from grouping.training.checkpoint import FILENAME, load_checkpoint

    class Payload:
        def __reduce__(self):
            return (print, ("executed!",))

    (tmp_path / FILENAME).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InputError, match="checkpoint_dir"):
        load_checkpoint(tmp_path, "any")
