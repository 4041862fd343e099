"""The torch modules dexloop exports: a policy with its processors folded in, so the graph takes what the
robot gives (uint8 camera images, float state vectors) and returns actions in the dataset's units.

- ``ObservationInputs`` turns raw observations into the policy's normalised inputs: images HWC or CHW
  uint8 -> float CHW in [0, 1] -> the normaliser's formula with the checkpoint's statistics (kept as
  buffers, so they become graph constants); state vectors through the same formula.
- ``ACTChunkGraph``: observations -> ``(B, chunk_size, action_dim)`` unnormalised actions, the whole
  chunk prediction of ``ACTPolicy.predict_action_chunk`` (zero latent, as at inference).

The processors' other steps (batching, device moves) have no meaning in a graph; a rename map becomes
the graph's input names; any other step cannot be folded and is refused with ExportError.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dexloop.errors import ExportError
from dexloop.policies.processors.normalize import (
    NormalizerProcessorStep,
    UnnormalizerProcessorStep,
    apply_normalization,
)
from dexloop.policies.processors.steps import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    RenameObservationsProcessorStep,
)
from dexloop.policies.types import FeatureType, NormalizationMode
from dexloop.policies.utils import ACTION, OBS_ENV_STATE, OBS_IMAGES, OBS_STATE

IMAGE_LAYOUTS = ("HWC", "CHW")
_FOLDED_AWAY = (AddBatchDimensionProcessorStep, DeviceProcessorStep)


@dataclass(frozen=True)
class ObservationInput:
    """One observation input of an exported graph."""

    name: str  # the graph input's name: the robot-side key (before the processors' rename map)
    feature: str  # the policy's feature key
    feature_type: FeatureType
    shape: tuple[int, ...]  # per sample, in the graph's layout
    dtype: str  # numpy dtype name
    layout: str | None  # images only


class _Normalization(nn.Module):
    """One feature's normalisation (or its inverse) with frozen statistics."""

    def __init__(
        self, mode: NormalizationMode, low: Tensor | None, high: Tensor | None, eps: float, inverse: bool
    ):
        super().__init__()
        self.mode = mode
        self.eps = eps
        self.inverse = inverse
        if mode is not NormalizationMode.IDENTITY:
            self.register_buffer("low", low.detach().to(torch.float32).clone())
            self.register_buffer("high", high.detach().to(torch.float32).clone())

    def forward(self, x: Tensor) -> Tensor:
        if self.mode is NormalizationMode.IDENTITY:
            return x
        return apply_normalization(x, self.mode, self.low, self.high, self.eps, self.inverse)

    def manifest_entry(self) -> dict:
        """The normalisation as data, for a runtime that applies it outside the graphs (Diffusion's
        actions leave the sampler loop normalised)."""
        entry: dict = {"mode": self.mode.value, "eps": self.eps, "inverse": self.inverse}
        if self.mode is not NormalizationMode.IDENTITY:
            entry["low"] = self.low.flatten().tolist()
            entry["high"] = self.high.flatten().tolist()
        return entry


def _split_processors(
    preprocessor, postprocessor
) -> tuple[dict[str, str], NormalizerProcessorStep | None, UnnormalizerProcessorStep | None]:
    rename: dict[str, str] = {}
    normalizer = unnormalizer = None
    for step in preprocessor.steps:
        if isinstance(step, RenameObservationsProcessorStep):
            rename.update(step.rename_map)
        elif isinstance(step, NormalizerProcessorStep):
            normalizer = step
        elif not isinstance(step, _FOLDED_AWAY):
            raise ExportError(
                f"the pre-processor step {type(step).__name__} cannot be folded into an exported graph "
                "(dexloop folds rename, batching, device and normalisation steps)"
            )
    for step in postprocessor.steps:
        if isinstance(step, UnnormalizerProcessorStep):
            unnormalizer = step
        elif not isinstance(step, _FOLDED_AWAY):
            raise ExportError(
                f"the post-processor step {type(step).__name__} cannot be folded into an exported graph "
                "(dexloop folds the unnormaliser and device steps)"
            )
    return rename, normalizer, unnormalizer


def _normalization(step, key: str, feature_type: FeatureType, inverse: bool) -> _Normalization:
    if step is None:
        return _Normalization(NormalizationMode.IDENTITY, None, None, 0.0, inverse)
    mode, low, high = step.normalization_of(key, feature_type)
    return _Normalization(mode, low, high, step.eps, inverse)


class ObservationInputs(nn.Module):
    """Raw observations (in ``inputs`` order) -> the policy's normalised input dict."""

    def __init__(
        self, config, preprocessor, postprocessor, image_layout: str = "HWC", n_obs_steps: int | None = None
    ):
        super().__init__()
        if image_layout not in IMAGE_LAYOUTS:
            raise ExportError(f"image layout {image_layout!r}: expected one of {IMAGE_LAYOUTS}")
        rename, normalizer, self._unnormalizer = _split_processors(preprocessor, postprocessor)
        robot_name = {new: old for old, new in rename.items()}
        self.image_layout = image_layout
        # Diffusion's observation history: each input (B, n_obs_steps, ...), oldest step first.
        history = (n_obs_steps,) if n_obs_steps else ()
        inputs: list[ObservationInput] = []
        for key, ft in config.image_features.items():
            c, h, w = ft.shape
            shape = (*history, *((h, w, c) if image_layout == "HWC" else (c, h, w)))
            inputs.append(
                ObservationInput(
                    robot_name.get(key, key), key, FeatureType.VISUAL, shape, "uint8", image_layout
                )
            )
        for key, ft in ((OBS_STATE, config.robot_state_feature), (OBS_ENV_STATE, config.env_state_feature)):
            if ft is not None:
                inputs.append(
                    ObservationInput(
                        robot_name.get(key, key), key, ft.type, (*history, *ft.shape), "float32", None
                    )
                )
        if not inputs:
            raise ExportError("the policy has no observation input (no camera, no state): nothing to export")
        self.inputs = inputs
        self.normalizations = nn.ModuleList(
            [_normalization(normalizer, spec.feature, spec.feature_type, inverse=False) for spec in inputs]
        )

    def action_unnormalization(self) -> _Normalization:
        return _normalization(self._unnormalizer, ACTION, FeatureType.ACTION, inverse=True)

    def forward(self, tensors: list[Tensor]) -> dict[str, Tensor]:
        batch: dict[str, Tensor] = {}
        for spec, normalization, x in zip(self.inputs, self.normalizations, tensors, strict=True):
            if spec.feature_type is FeatureType.VISUAL:
                if self.image_layout == "HWC":
                    x = x.movedim(-1, -3)
                x = x.to(torch.float32) / 255.0
            batch[spec.feature] = normalization(x)
        return batch


class _ObservationGraph(nn.Module):
    """A graph fed raw observations: the folded processors, the policy's network, its image keys and
    the action unnormalisation."""

    def __init__(
        self, policy, network: nn.Module, preprocessor, postprocessor, image_layout: str, n_obs_steps=None
    ):
        super().__init__()
        self.observations = ObservationInputs(
            policy.config, preprocessor, postprocessor, image_layout, n_obs_steps
        )
        self.model = network
        self.image_keys = list(policy.config.image_features)
        self.unnormalize_action = self.observations.action_unnormalization()

    @property
    def inputs(self) -> list[ObservationInput]:
        return self.observations.inputs


class ACTChunkGraph(_ObservationGraph):
    """Raw observations -> the unnormalised action chunk ``(B, chunk_size, action_dim)``."""

    def __init__(self, policy, preprocessor, postprocessor, image_layout: str = "HWC"):
        super().__init__(policy, policy.model, preprocessor, postprocessor, image_layout)

    def forward(self, *tensors: Tensor) -> Tensor:
        batch = self.observations(list(tensors))
        if self.image_keys:
            batch[OBS_IMAGES] = [batch[key] for key in self.image_keys]
        actions = self.model(batch)[0]
        return self.unnormalize_action(actions)


class DiffusionEncoderGraph(_ObservationGraph):
    """Raw observation histories -> the U-Net's global conditioning ``(B, cond_dim)``.

    Inputs are ``(B, n_obs_steps, ...)``: each camera's images (uint8) and the state vectors of the
    last ``n_obs_steps`` steps, oldest first, as DiffusionPolicy's observation queues stack them."""

    def __init__(self, policy, preprocessor, postprocessor, image_layout: str = "HWC"):
        super().__init__(
            policy, policy.diffusion, preprocessor, postprocessor, image_layout, policy.config.n_obs_steps
        )

    def forward(self, *tensors: Tensor) -> Tensor:
        batch = self.observations(list(tensors))
        if self.image_keys:
            batch[OBS_IMAGES] = torch.stack([batch[key] for key in self.image_keys], dim=-4)
        return self.model._prepare_global_conditioning(batch)


class DiffusionDenoiserGraph(nn.Module):
    """One U-Net evaluation: (noisy actions ``(B, horizon, action_dim)``, timesteps ``(B,)`` int64,
    global conditioning) -> the model output (noise or sample prediction). The sampler loop that calls
    it runs in the runtime, so the number of denoising steps is chosen at run time."""

    def __init__(self, policy):
        super().__init__()
        self.unet = policy.diffusion.unet

    def forward(self, *tensors: Tensor) -> Tensor:
        # Var-positional like the other graphs, so the exporter gets one dynamic-shape spec per input.
        sample, timestep, global_cond = tensors
        return self.unet(sample, timestep, global_cond=global_cond)


__all__ = [
    "IMAGE_LAYOUTS",
    "ACTChunkGraph",
    "DiffusionDenoiserGraph",
    "DiffusionEncoderGraph",
    "ObservationInput",
    "ObservationInputs",
]
