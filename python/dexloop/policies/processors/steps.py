"""The stateless steps of LeRobot's default policy pipelines, under LeRobot's registry names:
``rename_observations_processor`` (renames observation keys), ``to_batch_processor`` (adds the batch
dimension to a single observation) and ``device_processor`` (moves tensors to a device, optionally
casting floats)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from dexloop.errors import ProcessorError
from dexloop.policies.processors.converters import EnvTransition, TransitionKey
from dexloop.policies.processors.pipeline import ProcessorStep, ProcessorStepRegistry
from dexloop.policies.utils import (
    OBS_ENV_STATE,
    OBS_IMAGE,
    OBS_IMAGES,
    OBS_STATE,
    is_torch_device_available,
    logger,
)


@ProcessorStepRegistry.register(name="rename_observations_processor")
class RenameObservationsProcessorStep(ProcessorStep):
    """Renames observation keys by ``rename_map`` (old -> new); other keys keep their names."""

    def __init__(self, rename_map: dict[str, str] | None = None):
        self.rename_map = dict(rename_map or {})

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        observation = transition.get(TransitionKey.OBSERVATION)
        if observation is None:
            return transition
        new = dict(transition)
        new[TransitionKey.OBSERVATION] = {self.rename_map.get(k, k): v for k, v in observation.items()}
        return new

    def get_config(self) -> dict[str, Any]:
        return {"rename_map": self.rename_map}


@ProcessorStepRegistry.register(name="to_batch_processor")
class AddBatchDimensionProcessorStep(ProcessorStep):
    """Makes a single sample a batch of one: a 1-D action, 1-D ``observation.state`` /
    ``observation.environment_state``, 3-D images, a ``task`` string, 0-D ``index`` / ``task_index``."""

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        new = dict(transition)
        action = new.get(TransitionKey.ACTION)
        if isinstance(action, Tensor) and action.dim() == 1:
            new[TransitionKey.ACTION] = action.unsqueeze(0)
        observation = new.get(TransitionKey.OBSERVATION)
        if observation is not None:
            observation = dict(observation)
            for key in (OBS_STATE, OBS_ENV_STATE):
                value = observation.get(key)
                if isinstance(value, Tensor) and value.dim() == 1:
                    observation[key] = value.unsqueeze(0)
            for key, value in observation.items():
                is_image = key == OBS_IMAGE or key.startswith(f"{OBS_IMAGES}.")
                if is_image and isinstance(value, Tensor) and value.dim() == 3:
                    observation[key] = value.unsqueeze(0)
            new[TransitionKey.OBSERVATION] = observation
        complementary = new.get(TransitionKey.COMPLEMENTARY_DATA)
        if complementary is not None:
            complementary = dict(complementary)
            if isinstance(complementary.get("task"), str):
                complementary["task"] = [complementary["task"]]
            for key in ("index", "task_index"):
                value = complementary.get(key)
                if isinstance(value, Tensor) and value.dim() == 0:
                    complementary[key] = value.unsqueeze(0)
            complementary.pop("language_persistent", None)
            complementary.pop("language_events", None)
            new[TransitionKey.COMPLEMENTARY_DATA] = complementary
        return new


@ProcessorStepRegistry.register(name="device_processor")
class DeviceProcessorStep(ProcessorStep):
    """Moves every tensor of a transition to ``device`` and, with ``float_dtype``, casts its floating
    tensors ("float32", "bfloat16", ...). Tensors already on another CUDA device stay there (several
    GPUs under DDP)."""

    DTYPE_MAPPING: ClassVar[dict[str, torch.dtype]] = {
        "float16": torch.float16,
        "float32": torch.float32,
        "float64": torch.float64,
        "bfloat16": torch.bfloat16,
        "half": torch.float16,
        "float": torch.float32,
        "double": torch.float64,
    }

    def __init__(self, device: str = "cpu", float_dtype: str | None = None):
        device = str(device or "cpu")
        if not is_torch_device_available(device):
            # As the policy config does: a checkpoint saved on a GPU opens on a machine without one.
            logger.warning("device_processor: device %r is not available here; using 'cpu'", device)
            device = "cpu"
        self.tensor_device = torch.device(device)
        self.device = self.tensor_device.type
        self.non_blocking = "cuda" in self.device
        if float_dtype is not None and float_dtype not in self.DTYPE_MAPPING:
            raise ProcessorError(f"invalid float_dtype {float_dtype!r}; options: {list(self.DTYPE_MAPPING)}")
        self.float_dtype = float_dtype
        self._target = self.DTYPE_MAPPING[float_dtype] if float_dtype else None

    def _process(self, tensor: Tensor) -> Tensor:
        target = tensor.device if tensor.is_cuda and self.tensor_device.type == "cuda" else self.tensor_device
        if target.type == "mps" and tensor.dtype == torch.float64:
            tensor = tensor.to(dtype=torch.float32)
        if tensor.device != target:
            tensor = tensor.to(target, non_blocking=self.non_blocking)
        if self._target is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype=self._target)
        return tensor

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        new = dict(transition)
        for key in (TransitionKey.ACTION, TransitionKey.REWARD, TransitionKey.DONE, TransitionKey.TRUNCATED):
            value = transition.get(key)
            if isinstance(value, Tensor):
                new[key] = self._process(value)
        for key in (TransitionKey.OBSERVATION, TransitionKey.COMPLEMENTARY_DATA):
            data = transition.get(key)
            if data is not None:
                new[key] = {k: self._process(v) if isinstance(v, Tensor) else v for k, v in data.items()}
        return new

    def get_config(self) -> dict[str, Any]:
        return {"device": self.device, "float_dtype": self.float_dtype}
