"""Training checkpoints in LeRobot's tree, and the random-number state that makes resume exact.

    <output_dir>/checkpoints/
        000500/                       step, zero-padded to max(6, len(str(steps))) digits
            pretrained_model/         config.json, model.safetensors, train_config.json,
                                      policy_preprocessor*.json|safetensors, policy_postprocessor*
            training_state/           optimizer_state.safetensors, optimizer_param_groups.json,
                                      scheduler_state.json, rng_state.safetensors, training_step.json
        last -> 000500                relative symlink to the newest checkpoint

These are LeRobot 0.6.1's file names and contents (``training_step.json`` holds the step, the number
of processes and the per-process batch size that produced it; ``rng_state.safetensors`` Python's,
NumPy's and torch's generator states under LeRobot's keys), so LeRobot resumes a dexloop run and the
other way round. A checkpoint is assembled in a temporary folder next to its final name and renamed
into place once complete, so an interrupted save never leaves a half-written step folder, and an
existing checkpoint is replaced only by a complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dexloop.datasets.durable import fsync_directory
from dexloop.errors import TrainingStateError
from dexloop.training._files import write_json_file, write_with
from dexloop.training.optimizers import (
    flatten_dict,
    load_optimizer_state,
    save_optimizer_state,
    unflatten_dict,
)
from dexloop.training.schedulers import load_scheduler_state, save_scheduler_state

CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT_LINK = "last"
PRETRAINED_MODEL_DIR = "pretrained_model"
TRAINING_STATE_DIR = "training_state"
RNG_STATE = "rng_state.safetensors"
TRAINING_STEP = "training_step.json"


def get_step_identifier(step: int, total_steps: int) -> str:
    return f"{step:0{max(6, len(str(total_steps)))}d}"


def get_step_checkpoint_dir(output_dir: Path, total_steps: int, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR / get_step_identifier(step, total_steps)


def should_save_checkpoint(step: int, save_freq: int, total_steps: int) -> bool:
    """Every `save_freq` steps (when positive) and after the last step."""
    return (save_freq > 0 and step % save_freq == 0) or step == total_steps


# --- random-number state -------------------------------------------------------------------------


def serialize_rng_state() -> dict[str, torch.Tensor]:
    """The generators' states as flat tensors, under LeRobot's keys."""
    version, internal, _ = random.getstate()
    kind, values, position, has_gauss, cached_gaussian = np.random.get_state()
    if kind != "MT19937":
        raise TrainingStateError(
            f"NumPy's global generator is {kind}, not MT19937: its state cannot be saved"
        )
    state = {
        "py_rng_version": torch.tensor([version], dtype=torch.int64),
        "py_rng_state": torch.tensor(internal, dtype=torch.int64),
        "np_rng_state_values": torch.tensor(values, dtype=torch.int64),
        "np_rng_state_index": torch.tensor([position], dtype=torch.int64),
        "np_rng_has_gauss": torch.tensor([has_gauss], dtype=torch.int64),
        # LeRobot stores float32, which rounds a cached Gaussian; float64 keeps it exact and LeRobot
        # reads either (it takes ``.item()``).
        "np_rng_cached_gaussian": torch.tensor([cached_gaussian], dtype=torch.float64),
        "torch_rng_state": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda_rng_state"] = torch.cuda.get_rng_state()
    return state


def deserialize_rng_state(state: dict[str, torch.Tensor], source: Path | str = RNG_STATE) -> None:
    missing = [
        key
        for key in (
            "py_rng_version",
            "py_rng_state",
            "np_rng_state_values",
            "np_rng_state_index",
            "np_rng_has_gauss",
            "np_rng_cached_gaussian",
            "torch_rng_state",
        )
        if key not in state
    ]
    if missing:
        raise TrainingStateError(f"{source}: key {missing[0]!r} is missing")
    try:
        random.setstate((int(state["py_rng_version"].item()), tuple(state["py_rng_state"].tolist()), None))
        np.random.set_state(
            (
                "MT19937",
                state["np_rng_state_values"].numpy().astype(np.uint32),
                int(state["np_rng_state_index"].item()),
                int(state["np_rng_has_gauss"].item()),
                float(state["np_rng_cached_gaussian"].item()),
            )
        )
        torch.set_rng_state(state["torch_rng_state"])
        if torch.cuda.is_available() and "torch_cuda_rng_state" in state:
            torch.cuda.set_rng_state(state["torch_cuda_rng_state"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise TrainingStateError(f"{source}: not a generator state ({error})") from error


def save_rng_state(save_dir: Path) -> None:
    state = flatten_dict(serialize_rng_state())
    write_with(Path(save_dir) / RNG_STATE, lambda temporary: save_file(state, str(temporary)))


def load_rng_state(save_dir: Path) -> None:
    path = Path(save_dir) / RNG_STATE
    if not path.is_file():
        raise TrainingStateError(f"{path}: random-number state file is missing")
    try:
        state = unflatten_dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as error:
        raise TrainingStateError(f"{path}: not a readable safetensors file ({error})") from error
    deserialize_rng_state(state, path)


# --- training state ------------------------------------------------------------------------------


def save_training_step(
    step: int, save_dir: Path, num_processes: int | None = None, batch_size: int | None = None
) -> None:
    state: dict[str, int] = {"step": step}
    if num_processes is not None:
        state["num_processes"] = num_processes
    if batch_size is not None:
        state["batch_size"] = batch_size
    write_json_file(Path(save_dir) / TRAINING_STEP, state)


def load_training_step_file(checkpoint_dir: Path) -> dict[str, int]:
    """training_step.json of a checkpoint: ``step`` and, when recorded, ``num_processes`` and
    ``batch_size``."""
    path = Path(checkpoint_dir) / TRAINING_STATE_DIR / TRAINING_STEP
    if not path.is_file():
        raise TrainingStateError(f"{path}: training step file is missing")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainingStateError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(content, dict) or not isinstance(content.get("step"), int) or content["step"] < 0:
        raise TrainingStateError(f"{path}: key 'step' must be a non-negative integer, got {content!r}")
    for key in ("num_processes", "batch_size"):
        if key in content and not (isinstance(content[key], int) and content[key] > 0):
            raise TrainingStateError(f"{path}: key {key!r} must be a positive integer, got {content[key]!r}")
    return content


def save_training_state(
    checkpoint_dir: Path,
    step: int,
    optimizer: Any = None,
    scheduler: Any = None,
    num_processes: int | None = None,
    batch_size: int | None = None,
) -> None:
    save_dir = Path(checkpoint_dir) / TRAINING_STATE_DIR
    save_dir.mkdir(parents=True, exist_ok=True)
    save_training_step(step, save_dir, num_processes=num_processes, batch_size=batch_size)
    save_rng_state(save_dir)
    if optimizer is not None:
        save_optimizer_state(optimizer, save_dir)
    if scheduler is not None:
        save_scheduler_state(scheduler, save_dir)


def load_training_state(
    checkpoint_dir: Path, optimizer: Any, scheduler: Any = None, restore_rng: bool = True
) -> int:
    """Restores the optimizer, scheduler and (unless `restore_rng` is false, for a caller that
    restores them later with ``load_rng_state``) the generators of a checkpoint; returns its step."""
    save_dir = Path(checkpoint_dir) / TRAINING_STATE_DIR
    if not save_dir.is_dir():
        raise TrainingStateError(f"{save_dir}: the checkpoint has no {TRAINING_STATE_DIR} folder")
    step = load_training_step_file(checkpoint_dir)["step"]
    load_optimizer_state(optimizer, save_dir)
    if scheduler is not None:
        load_scheduler_state(scheduler, save_dir)
    if restore_rng:
        # Last, so that nothing above consumes random numbers after the restore.
        load_rng_state(save_dir)
    return step


def save_checkpoint(
    checkpoint_dir: Path,
    step: int,
    save_pretrained: Callable[[Path], None],
    optimizer: Any,
    scheduler: Any = None,
    num_processes: int | None = None,
    batch_size: int | None = None,
) -> Path:
    """Writes checkpoint `checkpoint_dir` (``.../checkpoints/<step>``): `save_pretrained(folder)`
    fills ``pretrained_model/`` (policy, processors, train_config.json), then the training state.
    The folder appears under its name only once everything is on disk."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
    building = checkpoint_dir.with_name(f".{checkpoint_dir.name}.partial")
    shutil.rmtree(building, ignore_errors=True)
    try:
        pretrained = building / PRETRAINED_MODEL_DIR
        pretrained.mkdir(parents=True)
        save_pretrained(pretrained)
        save_training_state(
            building, step, optimizer, scheduler, num_processes=num_processes, batch_size=batch_size
        )
        replaced = None
        if checkpoint_dir.exists():
            replaced = checkpoint_dir.with_name(f".{checkpoint_dir.name}.replaced")
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(checkpoint_dir, replaced)
        os.replace(building, checkpoint_dir)
        fsync_directory(checkpoint_dir.parent)
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return checkpoint_dir


def update_last_checkpoint(checkpoint_dir: Path) -> Path:
    """Points ``checkpoints/last`` at `checkpoint_dir` (a relative link, swapped atomically)."""
    checkpoint_dir = Path(checkpoint_dir)
    link = checkpoint_dir.parent / LAST_CHECKPOINT_LINK
    temporary = checkpoint_dir.parent / f".{LAST_CHECKPOINT_LINK}.partial"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(checkpoint_dir.name)
    os.replace(temporary, link)
    return link


__all__ = [
    "CHECKPOINTS_DIR",
    "LAST_CHECKPOINT_LINK",
    "PRETRAINED_MODEL_DIR",
    "RNG_STATE",
    "TRAINING_STATE_DIR",
    "TRAINING_STEP",
    "deserialize_rng_state",
    "get_step_checkpoint_dir",
    "get_step_identifier",
    "load_rng_state",
    "load_training_state",
    "load_training_step_file",
    "save_checkpoint",
    "save_rng_state",
    "save_training_state",
    "save_training_step",
    "serialize_rng_state",
    "should_save_checkpoint",
]
