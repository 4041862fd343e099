"""The normaliser and unnormaliser steps (``normalizer_processor``, ``unnormalizer_processor``): scale
a policy's inputs and targets with dataset statistics, and its predicted actions back.

The mode of each feature comes from its type through ``norm_map`` (the policy's
``normalization_mapping``), with LeRobot 0.6.1's formulas and eps rules (eps = 1e-8):

- MEAN_STD:   (x - mean) / (std + eps);               inverse x * std + mean
- MIN_MAX:    2 (x - min) / d - 1, d = max - min;     inverse (x + 1) / 2 * d + min
- QUANTILES:  as MIN_MAX with q01 / q99;  QUANTILE10: as MIN_MAX with q10 / q90
  (d is replaced by eps only where it is exactly 0)
- IDENTITY:   unchanged

Statistics are saved as the flat safetensors file LeRobot writes (``observation.state.mean``,
``observation.images.top.std`` of shape (C, 1, 1), ...). Where LeRobot lets a feature without
statistics pass unnormalised, dexloop raises a ProcessorError naming the feature, the statistic and the
file the statistics came from: a policy fed raw values where it expects normalised ones fails silently.
Statistics passed explicitly (``overrides={"normalizer_processor": {"stats": ...}}``) win over the
saved ones, as in LeRobot.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dexloop.errors import ProcessorError
from dexloop.policies.processors.converters import EnvTransition, TransitionKey, to_tensor
from dexloop.policies.processors.pipeline import ProcessorStep, ProcessorStepRegistry
from dexloop.policies.types import FeatureType, NormalizationMode, PolicyFeature
from dexloop.policies.utils import ACTION

# The statistics each mode needs.
REQUIRED_STATS = {
    NormalizationMode.MEAN_STD: ("mean", "std"),
    NormalizationMode.MIN_MAX: ("min", "max"),
    NormalizationMode.QUANTILES: ("q01", "q99"),
    NormalizationMode.QUANTILE10: ("q10", "q90"),
}


def _features(features: dict[str, Any] | None) -> dict[str, PolicyFeature]:
    result = {}
    for key, ft in (features or {}).items():
        if isinstance(ft, PolicyFeature):
            result[key] = PolicyFeature(type=FeatureType(ft.type), shape=tuple(ft.shape))
        elif isinstance(ft, dict):
            result[key] = PolicyFeature(type=FeatureType(ft["type"]), shape=tuple(ft["shape"]))
        else:
            raise ProcessorError(f"feature {key!r}: expected a PolicyFeature or {{type, shape}}, got {ft!r}")
    return result


def _norm_map(norm_map: dict[Any, Any] | None) -> dict[FeatureType, NormalizationMode]:
    try:
        return {FeatureType(k): NormalizationMode(v) for k, v in (norm_map or {}).items()}
    except ValueError as error:
        raise ProcessorError(f"norm_map {norm_map!r}: {error}") from error


def apply_normalization(
    tensor: Tensor, mode: NormalizationMode, low: Tensor, high: Tensor, eps: float, inverse: bool
) -> Tensor:
    """LeRobot's formula for ``mode`` (not IDENTITY) with its two statistics (mean/std, min/max or the
    quantile pair), or its inverse. Pure tensor arithmetic, so exported graphs (dexloop.export) trace it
    as the processors run it."""
    if mode is NormalizationMode.MEAN_STD:
        mean, std = low, high
        if inverse:
            return tensor * std + mean
        return (tensor - mean) / (std + eps)
    denom = high - low
    denom = torch.where(denom == 0, torch.tensor(eps, device=tensor.device, dtype=tensor.dtype), denom)
    if inverse:
        return (tensor + 1) / 2 * denom + low
    return 2 * (tensor - low) / denom - 1


class _NormalizationMixin(ProcessorStep):
    """Statistics, their tensors and the transform shared by the two steps."""

    def __init__(
        self,
        features: dict[str, Any] | None = None,
        norm_map: dict[Any, Any] | None = None,
        stats: dict[str, dict[str, Any]] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        eps: float = 1e-8,
        normalize_observation_keys: set[str] | list[str] | None = None,
    ):
        self.features = _features(features)
        self.norm_map = _norm_map(norm_map)
        self._stats_explicitly_provided = bool(stats)
        self.stats = stats or {}
        self.device = device
        self.dtype = dtype or torch.float32
        self.eps = eps
        self.normalize_observation_keys = (
            set(normalize_observation_keys) if normalize_observation_keys is not None else None
        )
        self._state_source = "the statistics given"
        self._tensor_stats = self._to_tensors(self.stats)
        if self._stats_explicitly_provided:
            self.check_stats()

    def _to_tensors(self, stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Tensor]]:
        tensors: dict[str, dict[str, Tensor]] = {}
        for key, sub in stats.items():
            if sub is None:
                continue
            if not isinstance(sub, dict):
                raise ProcessorError(
                    f"statistics of {key!r} must be a dict of arrays, got {type(sub).__name__}"
                )
            tensors[key] = {}
            for name, value in sub.items():
                if value is None:
                    continue
                try:
                    tensor = to_tensor(value, dtype=self.dtype, device=self.device)
                except (ProcessorError, TypeError, ValueError) as error:
                    raise ProcessorError(f"statistic {key}.{name} is not numeric ({error})") from error
                tensors[key][name] = tensor
        self._reshape_visual(tensors)
        return tensors

    def _reshape_visual(self, tensors: dict[str, dict[str, Tensor]]) -> None:
        # Statistics given per channel as (C,) broadcast over images as (C, 1, 1).
        for key, ft in self.features.items():
            if ft.type is FeatureType.VISUAL and key in tensors:
                for name, tensor in tensors[key].items():
                    if tensor.ndim == 1:
                        tensors[key][name] = tensor.reshape(-1, 1, 1)

    def check_stats(self) -> None:
        """Raises ProcessorError naming the first feature normalised by a mode whose statistics are
        missing or not finite."""
        for key, ft in self.features.items():
            mode = self.norm_map.get(ft.type, NormalizationMode.IDENTITY)
            if mode is NormalizationMode.IDENTITY:
                continue
            observed = self.normalize_observation_keys
            if observed is not None and ft.type is not FeatureType.ACTION and key not in observed:
                continue
            self._stats_for(key, mode)

    def normalization_of(
        self, key: str, feature_type: FeatureType
    ) -> tuple[NormalizationMode, Tensor | None, Tensor | None]:
        """The mode this step applies to feature ``key`` of ``feature_type`` and its two statistics
        (None, None for IDENTITY or a key this step leaves alone); ProcessorError where they are missing."""
        mode = self.norm_map.get(feature_type, NormalizationMode.IDENTITY)
        observed = self.normalize_observation_keys
        skipped = observed is not None and feature_type is not FeatureType.ACTION and key not in observed
        # The action is normalised when it has statistics even without a feature entry (as _transform).
        known = key in self.features or (feature_type is FeatureType.ACTION and key in self._tensor_stats)
        if mode is NormalizationMode.IDENTITY or skipped or not known:
            return NormalizationMode.IDENTITY, None, None
        low, high = self._stats_for(key, mode)
        return mode, low, high

    def _stats_for(self, key: str, mode: NormalizationMode) -> tuple[Tensor, Tensor]:
        needed = REQUIRED_STATS[mode]
        sub = self._tensor_stats.get(key)
        if sub is None:
            raise ProcessorError(
                f"{self._state_source}: no statistics for {key!r}, which {mode.value} normalisation needs "
                f"({'/'.join(needed)}); statistics are there for {sorted(self._tensor_stats)}"
            )
        for name in needed:
            if name not in sub:
                raise ProcessorError(
                    f"{self._state_source}: {key!r} has no {name!r} statistic, which {mode.value} normalisation "
                    f"needs (it has {sorted(sub)})"
                )
            if not torch.isfinite(sub[name]).all():
                raise ProcessorError(
                    f"{self._state_source}: statistic {key}.{name} is not finite: {sub[name]}"
                )
        return sub[needed[0]], sub[needed[1]]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if device is not None:
            self.device = device
        if dtype is not None:
            self.dtype = dtype
        # Rebuilt from the statistics as given (as LeRobot does), so a float64 input meets float64 statistics.
        self._tensor_stats = self._to_tensors(self.stats)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        return {
            f"{key}.{name}": t.cpu() for key, sub in self._tensor_stats.items() for name, t in sub.items()
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if self._stats_explicitly_provided:
            return
        tensors: dict[str, dict[str, Tensor]] = {}
        for flat_key, tensor in state.items():
            key, _, name = flat_key.rpartition(".")
            if not key:
                raise ProcessorError(
                    f"{self._state_source}: entry {flat_key!r} is not '<feature>.<statistic>'"
                )
            tensors.setdefault(key, {})[name] = tensor.to(dtype=torch.float32, device=self.device)
        self._reshape_visual(tensors)
        self._tensor_stats = tensors
        self.stats = {
            key: {name: (t.item() if t.numel() == 1 else t.detach().cpu().numpy()) for name, t in sub.items()}
            for key, sub in tensors.items()
        }
        self.check_stats()

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "eps": self.eps,
            "features": {
                key: {"type": ft.type.value, "shape": list(ft.shape)} for key, ft in self.features.items()
            },
            "norm_map": {ft_type.value: mode.value for ft_type, mode in self.norm_map.items()},
        }
        if self.normalize_observation_keys is not None:
            config["normalize_observation_keys"] = sorted(self.normalize_observation_keys)
        return config

    def _apply(self, tensor: Tensor, key: str, feature_type: FeatureType, inverse: bool) -> Tensor:
        mode = self.norm_map.get(feature_type, NormalizationMode.IDENTITY)
        if mode is NormalizationMode.IDENTITY:
            return tensor
        tensor = torch.as_tensor(tensor)
        first = next(iter(self._tensor_stats.get(key, {}).values()), None)
        if first is not None and (first.device != tensor.device or first.dtype != tensor.dtype):
            self.to(device=tensor.device, dtype=tensor.dtype)
        low, high = self._stats_for(key, mode)
        return apply_normalization(tensor, mode, low, high, self.eps, inverse)

    def _normalize_observation(self, observation: dict[str, Any], inverse: bool) -> dict[str, Any]:
        new = dict(observation)
        for key, ft in self.features.items():
            if self.normalize_observation_keys is not None and key not in self.normalize_observation_keys:
                continue
            if ft.type is not FeatureType.ACTION and key in new:
                new[key] = self._apply(new[key], key, ft.type, inverse)
        return new

    def _transform(self, transition: EnvTransition, inverse: bool) -> EnvTransition:
        new = dict(transition)
        observation = new.get(TransitionKey.OBSERVATION)
        if observation is not None:
            new[TransitionKey.OBSERVATION] = self._normalize_observation(observation, inverse)
        action = new.get(TransitionKey.ACTION)
        if action is None:
            return new
        if not isinstance(action, Tensor):
            raise ProcessorError(f"the action must be a tensor, got {type(action).__name__}")
        if ACTION in self.features or ACTION in self._tensor_stats:
            new[TransitionKey.ACTION] = self._apply(action, ACTION, FeatureType.ACTION, inverse)
        return new


@ProcessorStepRegistry.register(name="normalizer_processor")
class NormalizerProcessorStep(_NormalizationMixin):
    """Normalises the observation features and the action of a transition."""

    @classmethod
    def from_lerobot_dataset(
        cls, dataset, features, norm_map, *, normalize_observation_keys=None, eps=1e-8, device=None
    ):
        return cls(
            features=features,
            norm_map=norm_map,
            stats=dataset.meta.stats,
            normalize_observation_keys=normalize_observation_keys,
            eps=eps,
            device=device,
        )

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        return self._transform(transition, inverse=False)


@ProcessorStepRegistry.register(name="unnormalizer_processor")
class UnnormalizerProcessorStep(_NormalizationMixin):
    """Maps normalised values (the policy's predicted action) back to dataset units."""

    @classmethod
    def from_lerobot_dataset(cls, dataset, features, norm_map, *, device=None):
        return cls(features=features, norm_map=norm_map, stats=dataset.meta.stats, device=device)

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        return self._transform(transition, inverse=True)


def hotswap_stats(pipeline, stats: dict[str, dict[str, Any]]):
    """A copy of ``pipeline`` whose (un)normaliser steps use ``stats``."""
    import copy

    new = copy.deepcopy(pipeline)
    for step in new.steps:
        if isinstance(step, _NormalizationMixin):
            step.stats = stats
            step._stats_explicitly_provided = bool(stats)
            step._state_source = "the statistics given"
            step._tensor_stats = step._to_tensors(stats)
    return new


__all__ = ["NormalizerProcessorStep", "UnnormalizerProcessorStep", "apply_normalization", "hotswap_stats"]
