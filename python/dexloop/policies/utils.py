"""Key names and small helpers shared by dexloop's policies, with LeRobot's spellings.

The batch keys are LeRobot's (``lerobot.utils.constants``): datasets, environments and checkpoints
written by LeRobot use them, so a policy finds its inputs under the same names in both libraries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from dexloop.errors import PolicyFeatureError

OBS_PREFIX = "observation."
OBS_STR = "observation"
OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGE = "observation.image"
OBS_IMAGES = "observation.images"
ACTION = "action"
REWARD = "next.reward"
DONE = "next.done"
TRUNCATED = "next.truncated"
INFO = "info"

CONFIG_NAME = "config.json"
SAFETENSORS_SINGLE_FILE = "model.safetensors"
POLICY_PREPROCESSOR_DEFAULT_NAME = "policy_preprocessor"
POLICY_POSTPROCESSOR_DEFAULT_NAME = "policy_postprocessor"

logger = logging.getLogger("dexloop.policies")


def auto_select_torch_device() -> torch.device:
    """The best device here, in LeRobot's order of preference: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def is_torch_device_available(device: str) -> bool:
    """Whether ``device`` ("cpu", "cuda", "cuda:1", "mps") can be used here."""
    kind = str(device).split(":")[0]
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return False


def is_amp_available(device: str) -> bool:
    """Automatic mixed precision is used on CUDA and CPU; LeRobot refuses it elsewhere."""
    return str(device).split(":")[0] in ("cuda", "cpu")


def require_batch_keys(batch: Mapping[str, Any], keys: list[str], policy: str) -> None:
    """Raises PolicyFeatureError naming the first key of ``keys`` that ``batch`` lacks."""
    for key in keys:
        if key not in batch:
            present = sorted(k for k in batch if isinstance(k, str))
            raise PolicyFeatureError(
                f"{policy}: the batch has no {key!r}, which the policy's config declares as an input "
                f"(batch keys: {present})"
            )


def populate_queues(
    queues: dict[str, Any], batch: Mapping[str, torch.Tensor], exclude_keys: list[str] | None = None
):
    """Appends the batch's entries to the observation queues of the same names; an empty queue is
    filled with copies of the first observation (LeRobot's ``populate_queues``, used by policies that
    look at several past observations)."""
    exclude_keys = exclude_keys or []
    for key in batch:
        if key not in queues or key in exclude_keys:
            continue
        if len(queues[key]) != queues[key].maxlen:
            while len(queues[key]) != queues[key].maxlen:
                queues[key].append(batch[key])
        else:
            queues[key].append(batch[key])
    return queues


def get_device_from_parameters(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter."""
    return next(iter(module.parameters())).device


def get_dtype_from_parameters(module: torch.nn.Module) -> torch.dtype:
    """The dtype of a module's first parameter."""
    return next(iter(module.parameters())).dtype
