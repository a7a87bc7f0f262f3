"""A surrogate network's size is bounded before anything is allocated: by the configuration alone
where the data does not matter, and by the whole network once the data's shape is known."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.training import ModelConfig, TrainingConfig
from grouping.training.config import MAX_PARAMETERS
from grouping.training.loop import fit
from grouping.training.model import build_model, parameter_count


def test_the_configuration_alone_refuses_billions_of_parameters() -> None:
    with pytest.raises(ValidationError, match="parameters"):
        ModelConfig(width=4, hidden_units=8192, hidden_layers=16)  # 4.3 B parameters
    ModelConfig(hidden_units=1024, hidden_layers=4)  # 3 × 1024² = 3.1 M: fine


def test_parameter_count_matches_the_built_network() -> None:
    config = ModelConfig(hidden_units=32, hidden_layers=2, representation=8)
    model = build_model("tabular", (10,), {"a": 1, "b": 3}, config)
    assert parameter_count("tabular", (10,), {"a": 1, "b": 3}, config) == sum(
        p.numel() for p in model.parameters())


def test_fit_refuses_a_network_too_large_for_the_data_before_training() -> None:
    data = load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 200, "n_features": 4096}))
    config = ModelConfig(hidden_units=8192, hidden_layers=1, representation=8192)  # 4096·8192 + 8192²
    with pytest.raises(InputError) as caught:
        fit(data, data.task_names, config, TrainingConfig(epochs=1, device="cpu"))
    assert caught.value.field == "model" and f"{MAX_PARAMETERS:,}" in caught.value.reason


def test_the_api_refuses_the_red_team_model_with_a_422(api_client) -> None:
    response = api_client.post("/jobs", json={"dataset": "synthetic", "model": {
        "width": 4, "hidden_units": 8192, "hidden_layers": 16}})
    assert response.status_code == 422
    assert "model" in response.text and "parameters" in response.text
