"""Transitions and the converters between them and batches, as LeRobot's processor pipelines use them.

A pipeline step works on an ``EnvTransition``: a dict with the observation (the ``observation.*``
keys), the action, reward, done, truncated, info and complementary data (``*_is_pad`` flags, ``task``,
indices). The converters here turn a training/inference batch into one and back, and a bare action
tensor into one and back (the post-processor's input and output), with LeRobot's rules.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np
import torch

from dexloop.errors import ProcessorError
from dexloop.policies.utils import ACTION, DONE, INFO, OBS_PREFIX, REWARD, TRUNCATED


class TransitionKey(str, Enum):
    """Keys of an EnvTransition's parts (LeRobot's ``TransitionKey``)."""

    OBSERVATION = "observation"
    ACTION = "action"
    REWARD = "reward"
    DONE = "done"
    TRUNCATED = "truncated"
    INFO = "info"
    COMPLEMENTARY_DATA = "complementary_data"


EnvTransition = dict[TransitionKey, Any]
PolicyAction = torch.Tensor

# Batch keys that travel with a transition as complementary data (besides every ``*_is_pad`` flag).
COMPLEMENTARY_KEYS = (
    "task",
    "index",
    "task_index",
    "episode_index",
    "timestamp",
    "language_persistent",
    "language_events",
    "messages",
    "message_streams",
    "target_message_indices",
)


def to_tensor(
    value: Any, *, dtype: torch.dtype | None = torch.float32, device: torch.device | str | None = None
):
    """Tensors from tensors, arrays, scalars, lists, and dicts of them (recursively; None values are
    dropped), cast to ``dtype`` (None keeps it) and moved to ``device``."""
    if isinstance(value, dict):
        return {
            key: to_tensor(sub, dtype=dtype, device=device) for key, sub in value.items() if sub is not None
        }
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray):
        tensor = torch.tensor(value.item()) if value.ndim == 0 else torch.from_numpy(value)
    elif isinstance(value, (int, float, np.integer, np.floating, list, tuple)):
        tensor = torch.tensor(value, dtype=dtype)
    else:
        raise ProcessorError(f"cannot convert a {type(value).__name__} to a tensor")
    if dtype is not None:
        tensor = tensor.to(dtype=dtype)
    if device is not None:
        tensor = tensor.to(device=device)
    return tensor


def create_transition(
    observation: dict[str, Any] | None = None,
    action: Any = None,
    reward: Any = 0.0,
    done: Any = False,
    truncated: Any = False,
    info: dict[str, Any] | None = None,
    complementary_data: dict[str, Any] | None = None,
) -> EnvTransition:
    return {
        TransitionKey.OBSERVATION: observation,
        TransitionKey.ACTION: action,
        TransitionKey.REWARD: reward,
        TransitionKey.DONE: done,
        TransitionKey.TRUNCATED: truncated,
        TransitionKey.INFO: info if info is not None else {},
        TransitionKey.COMPLEMENTARY_DATA: complementary_data if complementary_data is not None else {},
    }


def batch_to_transition(batch: dict[str, Any]) -> EnvTransition:
    """A batch dict (``observation.*``, ``action``, ``*_is_pad``, ``task``...) as a transition."""
    if not isinstance(batch, dict):
        raise ProcessorError(f"a batch must be a dict, got {type(batch).__name__}")
    action = batch.get(ACTION)
    if action is not None and not isinstance(action, torch.Tensor):
        raise ProcessorError(f"the batch's {ACTION!r} must be a tensor, got {type(action).__name__}")
    observation = {k: v for k, v in batch.items() if k.startswith(OBS_PREFIX)}
    complementary = {k: v for k, v in batch.items() if "_is_pad" in k}
    complementary.update({k: batch[k] for k in COMPLEMENTARY_KEYS if k in batch})
    return create_transition(
        observation=observation or None,
        action=action,
        reward=batch.get(REWARD, 0.0),
        done=batch.get(DONE, False),
        truncated=batch.get(TRUNCATED, False),
        info=batch.get(INFO, {}),
        complementary_data=complementary or None,
    )


def transition_to_batch(transition: EnvTransition) -> dict[str, Any]:
    """The inverse of batch_to_transition."""
    batch = {
        ACTION: transition.get(TransitionKey.ACTION),
        REWARD: transition.get(TransitionKey.REWARD, 0.0),
        DONE: transition.get(TransitionKey.DONE, False),
        TRUNCATED: transition.get(TransitionKey.TRUNCATED, False),
        INFO: transition.get(TransitionKey.INFO, {}),
    }
    batch.update(transition.get(TransitionKey.COMPLEMENTARY_DATA) or {})
    observation = transition.get(TransitionKey.OBSERVATION)
    if isinstance(observation, dict):
        batch.update(observation)
    return batch


def policy_action_to_transition(action: PolicyAction) -> EnvTransition:
    """A policy's action tensor as a transition (the post-processor's input)."""
    if not isinstance(action, torch.Tensor):
        raise ProcessorError(f"a policy action must be a tensor, got {type(action).__name__}")
    return create_transition(action=action)


def transition_to_policy_action(transition: EnvTransition) -> PolicyAction:
    """The action tensor of a transition (the post-processor's output)."""
    action = transition.get(TransitionKey.ACTION)
    if not isinstance(action, torch.Tensor):
        raise ProcessorError(f"the transition's action must be a tensor, got {type(action).__name__}")
    return action


def identity_transition(transition: EnvTransition) -> EnvTransition:
    return transition
