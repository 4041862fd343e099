"""An exported policy (dexloop.inference.Runtime) where the evaluation loop expects a torch policy:
``dexloop eval --policy.runtime=onnx`` rolls the ONNX graph out on the same seeds as the checkpoint.

The loop hands the policy LeRobot's preprocessed batch (images float CHW in [0, 1], from the env's
uint8); the graph takes the uint8 images back (exact: they were k/255), so both runtimes see the same
pixels. Normalisation is inside the graph: the pre- and post-processors are identities here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dexloop.inference import Runtime

RUNTIMES = ("torch", "onnx")


class RuntimePolicy:
    """``reset`` / ``select_action`` / ``eval`` / ``train`` over a Runtime, as rollout() calls them."""

    training = False

    def __init__(self, runtime: Runtime, rename_map: dict[str, str] | None = None) -> None:
        self.runtime = runtime
        self.rename_map = dict(rename_map or {})

    def eval(self) -> RuntimePolicy:
        return self

    def train(self, mode: bool = True) -> RuntimePolicy:
        return self

    def reset(self) -> None:
        self.runtime.reset()

    def observation(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        batch = {self.rename_map.get(key, key): value for key, value in batch.items()}
        observation = {}
        for spec in self.runtime.inputs:
            value = batch.get(spec.feature, batch.get(spec.name))
            if isinstance(value, torch.Tensor) and spec.dtype == "uint8" and value.is_floating_point():
                value = (value * 255).round().clamp(0, 255).to(torch.uint8)
                if spec.layout == "HWC":
                    value = value.movedim(-3, -1)
            observation[spec.name] = value.cpu().numpy() if isinstance(value, torch.Tensor) else value
        return observation

    def select_action(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.runtime.select_action(self.observation(batch))))


def identity(value: Any) -> Any:
    return value


__all__ = ["RUNTIMES", "RuntimePolicy", "identity"]
