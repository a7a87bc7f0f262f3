"""Epoch-boundary checkpoints: written atomically, loaded only into the run they came from."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Protocol

import torch

from grouping.errors import InputError

FILENAME = "checkpoint.pt"


class CheckpointStore(Protocol):
    """Where a run keeps its epoch-end checkpoints instead of a directory (e.g. a database every
    worker reaches). A checkpoint is the dict :func:`save_checkpoint` writes: ``fingerprint``, the
    model, optimizer, scheduler and data-order generator states, and the loop's state (epoch, step,
    early stopping, best weights)."""

    def load(self, fingerprint: str) -> dict[str, Any] | None:
        """The newest checkpoint saved for run ``fingerprint``, or ``None`` to start afresh."""

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Called after each of the run's epochs (``epoch`` epochs done) with its checkpoint, which
        holds live tensors: keep a copy (e.g. serialise it) before returning, or skip this epoch."""


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of the run's defining settings (dataset, tasks, model, training)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``directory/checkpoint.pt`` (temporary file + rename, so a crash never
    leaves a torn checkpoint)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (FILENAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, directory / FILENAME)


def load_checkpoint(directory: Path | None, expected_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or ``None`` when there is none; ``InputError`` when it belongs
    to a run with other settings or cannot be read."""
    if directory is None or not (directory / FILENAME).is_file():
        return None
    try:
        state = torch.load(directory / FILENAME, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # weights_only refuses code
        raise InputError("checkpoint_dir", f"cannot read {directory / FILENAME}: {exc}") from None
    if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
        raise InputError("checkpoint_dir", f"{directory} holds a checkpoint of a run with other settings")
    return state
