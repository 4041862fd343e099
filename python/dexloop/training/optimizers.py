"""Optimizer configurations of LeRobot's training pipeline, and their checkpointed state.

``OptimizerConfig`` is a draccus choice registry with LeRobot 0.6.1's registered names (``adam``,
``adamw``, ``sgd``, ``multi_adam``), fields and defaults, so ``--optimizer.type=adamw
--optimizer.lr=1e-4`` and a LeRobot ``train_config.json`` parse the same way, and a policy's
``get_optimizer_preset()`` returns one of these. ``build(params)`` makes the torch optimizer.

The optimizer state is stored as LeRobot stores it in ``training_state/``: the tensors of
``optimizer.state_dict()["state"]`` flattened with ``/`` (``state/0/exp_avg``) in
``optimizer_state.safetensors``, the param groups in ``optimizer_param_groups.json``; a dict of
optimizers (``multi_adam``) gets one sub-folder per name. Checkpoints written here load in LeRobot
and the other way round.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import draccus
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dexloop.errors import TrainingConfigError, TrainingStateError
from dexloop.training._files import write_json_file, write_with

OPTIMIZER_STATE = "optimizer_state.safetensors"
OPTIMIZER_PARAM_GROUPS = "optimizer_param_groups.json"

OptimizerParams = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]] | dict[str, Any]


@dataclasses.dataclass
class OptimizerConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of the optimizer choices: every optimizer has a learning rate, a weight decay and the
    gradient-norm clipping threshold the training loop applies (``<= 0`` disables clipping)."""

    lr: float
    weight_decay: float
    grad_clip_norm: float

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    @classmethod
    def default_choice_name(cls) -> str | None:
        return "adam"

    @abc.abstractmethod
    def build(self, params: OptimizerParams) -> torch.optim.Optimizer | dict[str, torch.optim.Optimizer]:
        """The torch optimizer (or, for ``multi_adam``, a dict of them) over `params`: parameters,
        param-group dicts (``{"params": [...], "lr": ...}``), or a dict of named parameter groups."""

    def _torch_kwargs(self) -> dict[str, Any]:
        # Every field except the clipping threshold is a keyword of the torch optimizer.
        kwargs = dataclasses.asdict(self)
        kwargs.pop("grad_clip_norm")
        return kwargs


@OptimizerConfig.register_subclass("adam")
@dataclasses.dataclass
class AdamConfig(OptimizerConfig):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 10.0

    def build(self, params: OptimizerParams) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, **self._torch_kwargs())


@OptimizerConfig.register_subclass("adamw")
@dataclasses.dataclass
class AdamWConfig(OptimizerConfig):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    grad_clip_norm: float = 10.0

    def build(self, params: OptimizerParams) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, **self._torch_kwargs())


@OptimizerConfig.register_subclass("sgd")
@dataclasses.dataclass
class SGDConfig(OptimizerConfig):
    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    grad_clip_norm: float = 10.0

    def build(self, params: OptimizerParams) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, **self._torch_kwargs())


@OptimizerConfig.register_subclass("multi_adam")
@dataclasses.dataclass
class MultiAdamConfig(OptimizerConfig):
    """One Adam optimizer per named parameter group (e.g. actor / critic / temperature).
    ``optimizer_groups[name]`` may set ``lr``, ``betas``, ``eps``, ``weight_decay`` for a group;
    unset values are ``lr`` / ``weight_decay`` of this config, betas (0.9, 0.999) and eps 1e-5."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip_norm: float = 10.0
    optimizer_groups: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def build(self, params: OptimizerParams) -> dict[str, torch.optim.Optimizer]:
        if not isinstance(params, Mapping):
            raise TrainingConfigError(
                "optimizer.type=multi_adam needs a dict of named parameter groups "
                f"(name -> parameters), got {type(params).__name__}"
            )
        optimizers = {}
        for name, group_params in params.items():
            group = self.optimizer_groups.get(name, {})
            optimizers[name] = torch.optim.Adam(
                group_params,
                lr=group.get("lr", self.lr),
                betas=group.get("betas", (0.9, 0.999)),
                eps=group.get("eps", 1e-5),
                weight_decay=group.get("weight_decay", self.weight_decay),
            )
        return optimizers


def flatten_dict(nested: Mapping, parent_key: str = "", sep: str = "/") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (keys become strings), as LeRobot flattens states."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{parent_key}{sep}{key}" if parent_key else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_dict(value, name, sep))
        else:
            flat[name] = value
    return flat


def unflatten_dict(flat: Mapping[str, Any], sep: str = "/") -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(sep)
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def save_optimizer_state(
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer], save_dir: Path
) -> None:
    """Writes `optimizer`'s state into `save_dir` in LeRobot's files (one sub-folder per name for
    a dict of optimizers). Each file is written atomically."""
    save_dir = Path(save_dir)
    if isinstance(optimizer, Mapping):
        for name, single in optimizer.items():
            _save_single(single, save_dir / name)
    else:
        _save_single(optimizer, save_dir)


def _save_single(optimizer: torch.optim.Optimizer, save_dir: Path) -> None:
    state = optimizer.state_dict()
    param_groups = state.pop("param_groups")
    # safetensors holds tensors only; an optimizer keeps None for buffers it has not made yet
    # (and torch restores a missing entry as None), so those entries are left out.
    flat = {
        key: value.detach().cpu().contiguous()
        for key, value in flatten_dict(state).items()
        if isinstance(value, torch.Tensor)
    }
    write_with(save_dir / OPTIMIZER_STATE, lambda temporary: save_file(flat, str(temporary)))
    write_json_file(save_dir / OPTIMIZER_PARAM_GROUPS, param_groups)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer], save_dir: Path
) -> torch.optim.Optimizer | dict[str, torch.optim.Optimizer]:
    """Restores the state saved by ``save_optimizer_state`` (or LeRobot) into `optimizer`, which
    must have been built for the same parameters. Raises TrainingStateError naming the file and key
    when a file is missing or unreadable or its groups do not fit the optimizer. For a dict of
    optimizers, one whose sub-folder is absent keeps its fresh state, as LeRobot does."""
    save_dir = Path(save_dir)
    if isinstance(optimizer, Mapping):
        loaded = {}
        for name, single in optimizer.items():
            if (save_dir / name).exists():
                loaded[name] = _load_single(single, save_dir / name)
            else:
                loaded[name] = single
        return loaded
    return _load_single(optimizer, save_dir)


def _load_single(optimizer: torch.optim.Optimizer, save_dir: Path) -> torch.optim.Optimizer:
    state_path = save_dir / OPTIMIZER_STATE
    groups_path = save_dir / OPTIMIZER_PARAM_GROUPS
    for path in (state_path, groups_path):
        if not path.is_file():
            raise TrainingStateError(f"{path}: optimizer state file is missing")
    try:
        flat = load_file(str(state_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise TrainingStateError(f"{state_path}: not a readable safetensors file ({error})") from error
    try:
        saved_groups = json.loads(groups_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainingStateError(f"{groups_path}: not readable JSON ({error})") from error

    current = optimizer.state_dict()
    param_groups = _merge_param_groups(current["param_groups"], saved_groups, groups_path)
    # torch pairs the saved parameter ids with this optimizer's parameters in group order.
    known_ids = {index for group in param_groups for index in group["params"]}

    nested = unflatten_dict(flat)
    unexpected = sorted(set(nested) - {"state"})
    if unexpected:
        raise TrainingStateError(
            f"{state_path}: unexpected key {unexpected[0]!r} (expected 'state/<id>/...')"
        )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, entry in nested.get("state", {}).items():
        try:
            param_id = int(key)
        except ValueError:
            raise TrainingStateError(f"{state_path}: key 'state/{key}' is not a parameter index") from None
        if param_id not in known_ids or not isinstance(entry, dict):
            raise TrainingStateError(
                f"{state_path}: key 'state/{key}' names no parameter of this optimizer "
                f"({len(known_ids)} parameters)"
            )
        state[param_id] = entry
    try:
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (ValueError, RuntimeError, KeyError) as error:
        raise TrainingStateError(
            f"{save_dir}: optimizer state does not fit this optimizer ({error})"
        ) from error
    return optimizer


def _merge_param_groups(current: list[dict], saved: Any, path: Path) -> list[dict]:
    """The saved param groups, checked against the optimizer's own: same number of groups and of
    parameters in each. Saved values win (learning rates, betas, ``initial_lr``); options only the
    running torch knows keep their current value, so a checkpoint of another torch version loads."""
    if not isinstance(saved, list) or not all(isinstance(group, dict) for group in saved):
        raise TrainingStateError(f"{path}: expected a list of param-group objects")
    if len(saved) != len(current):
        raise TrainingStateError(
            f"{path}: {len(saved)} param groups saved, this optimizer has {len(current)}"
        )
    merged = []
    for index, (now, before) in enumerate(zip(current, saved, strict=True)):
        if "params" not in before or not isinstance(before["params"], list):
            raise TrainingStateError(f"{path}: param group {index} has no 'params' list")
        if len(before["params"]) != len(now["params"]):
            raise TrainingStateError(
                f"{path}: param group {index} holds {len(before['params'])} parameters, "
                f"this optimizer's holds {len(now['params'])}"
            )
        group = dict(now)
        for key, value in before.items():
            # JSON has no tuples: betas and similar come back as lists.
            group[key] = (
                tuple(value) if isinstance(now.get(key), tuple) and isinstance(value, list) else value
            )
        merged.append(group)
    return merged


__all__ = [
    "OPTIMIZER_PARAM_GROUPS",
    "OPTIMIZER_STATE",
    "AdamConfig",
    "AdamWConfig",
    "MultiAdamConfig",
    "OptimizerConfig",
    "SGDConfig",
    "flatten_dict",
    "load_optimizer_state",
    "save_optimizer_state",
    "unflatten_dict",
]
