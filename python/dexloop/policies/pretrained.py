"""The base of every policy module: LeRobot's ``PreTrainedPolicy`` with its checkpoint format.

A checkpoint is a folder (or a Hub model repo) holding config.json and model.safetensors, the full
``state_dict()`` of the policy under LeRobot's parameter names. Both of LeRobot's layouts load:

- LeRobot >= 0.4: weights only; the normalisation lives in the processor files next to them
  (``policy_preprocessor.json`` ...), read by ``make_pre_post_processors``.
- LeRobot <= 0.3: the weights also hold the normalisation statistics as buffers
  (``normalize_inputs.buffer_observation_state.mean``, ``normalize_targets.*``,
  ``unnormalize_outputs.*``). They are set aside here — :func:`read_legacy_normalization_stats`
  turns them into processor statistics, as LeRobot's migration script does.

Keys of a ``torch.compile``-d model (``._orig_mod.``) are read without that infix. Unlike LeRobot,
which only logs them, a missing key, an unexpected key or a key of another shape is a CheckpointError
naming the file and the keys, and nothing is loaded.
"""

from __future__ import annotations

import abc
import logging
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from dexloop.errors import CheckpointError, PolicyConfigError, ProcessorError
from dexloop.policies.config import PreTrainedConfig, resolve_checkpoint_file
from dexloop.policies.utils import CONFIG_NAME, SAFETENSORS_SINGLE_FILE

T = TypeVar("T", bound="PreTrainedPolicy")
logger = logging.getLogger("dexloop.policies")

# Module prefixes under which LeRobot <= 0.3 kept normalisation statistics inside the weights.
LEGACY_NORMALIZATION_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


def strip_compile_prefix(key: str) -> str:
    """A parameter name without torch.compile's ``_orig_mod`` wrapper level."""
    key = key.replace("._orig_mod.", ".")
    return key.removeprefix("_orig_mod.")


def is_legacy_normalization_key(key: str) -> bool:
    return key.startswith(LEGACY_NORMALIZATION_PREFIXES)


def read_legacy_normalization_stats(
    model_file: str | Path, config: PreTrainedConfig
) -> dict[str, dict[str, Tensor]]:
    """The normalisation statistics a LeRobot <= 0.3 model.safetensors holds, by feature key
    (``{"observation.state": {"mean": ..., "std": ...}, "action": {...}}``); {} for a newer file.

    Buffer names spell a feature's dots as underscores (``buffer_observation_images_top``); they are
    matched against the config's features, so keys with underscores of their own
    (``observation.environment_state``) come back right."""
    from safetensors import safe_open

    features = {**(config.input_features or {}), **(config.output_features or {})}
    by_buffer_name = {key.replace(".", "_"): key for key in features}
    stats: dict[str, dict[str, Tensor]] = {}
    with safe_open(str(model_file), framework="pt", device="cpu") as f:
        names = list(f.keys())  # a safetensors handle, not a dict
        keys = [k for k in names if is_legacy_normalization_key(strip_compile_prefix(k))]

        # The inputs' and targets' normalisers win over the outputs' unnormaliser (they hold the same values).
        def module_rank(key: str) -> int:
            return next(
                i
                for i, p in enumerate(LEGACY_NORMALIZATION_PREFIXES)
                if strip_compile_prefix(key).startswith(p)
            )

        keys.sort(key=module_rank)
        for raw_key in keys:
            key = strip_compile_prefix(raw_key)
            rest = key.split(".", 1)[1]
            buffer_name, _, stat = rest.rpartition(".")
            if not buffer_name.startswith("buffer_") or not stat:
                raise CheckpointError(
                    f"{model_file}: normalisation entry {raw_key!r} is not '<module>.buffer_<feature>.<stat>'"
                )
            name = buffer_name.removeprefix("buffer_")
            feature = by_buffer_name.get(name, name.replace("_", "."))
            tensor = f.get_tensor(raw_key)
            if not torch.isfinite(tensor).all():
                raise ProcessorError(
                    f"{model_file}: normalisation statistic {raw_key!r} is not finite (the policy was saved "
                    "before it was given dataset statistics)"
                )
            stats.setdefault(feature, {}).setdefault(stat, tensor)
    return stats


class PreTrainedPolicy(nn.Module, abc.ABC):
    """Base class of policies: construction from a config, LeRobot's checkpoint files, and the
    interface the training loop and rollouts use (``forward`` for the loss, ``select_action`` one step
    at a time, ``predict_action_chunk``, ``reset`` between episodes)."""

    config_class: type[PreTrainedConfig] | None = None
    name: str | None = None

    def __init__(self, config: PreTrainedConfig, *inputs: Any, **kwargs: Any):
        super().__init__()
        if not isinstance(config, PreTrainedConfig):
            raise PolicyConfigError(
                f"{type(self).__name__}(config) needs a PreTrainedConfig, got {type(config).__name__}; "
                f"to load a checkpoint use {type(self).__name__}.from_pretrained(path)"
            )
        self.config = config

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "config_class", None):
            raise TypeError(f"Class {cls.__name__} must define 'config_class'")
        if not getattr(cls, "name", None):
            raise TypeError(f"Class {cls.__name__} must define 'name'")

    # ----------------------------------------------------------------------------- checkpoints

    def save_pretrained(
        self, save_directory: str | Path, *, state_dict: dict[str, Tensor] | None = None
    ) -> None:
        """Writes config.json and model.safetensors into ``save_directory`` (each file whole or not at
        all), as LeRobot's ``save_pretrained``."""
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(save_directory, state_dict=state_dict)

    def _save_pretrained(self, save_directory: Path, state_dict: dict[str, Tensor] | None = None) -> None:
        from safetensors.torch import save_file, save_model

        from dexloop.datasets.durable import write_atomically

        text = __import__("json").dumps(self.config.to_dict(), indent=4)
        write_atomically(save_directory / CONFIG_NAME, lambda p: p.write_text(text))
        model = self.module if hasattr(self, "module") else self
        if state_dict is None:
            write_atomically(save_directory / SAFETENSORS_SINGLE_FILE, lambda p: save_model(model, str(p)))
        else:
            tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
            write_atomically(save_directory / SAFETENSORS_SINGLE_FILE, lambda p: save_file(tensors, str(p)))

    @classmethod
    def from_pretrained(
        cls: type[T],
        pretrained_name_or_path: str | Path,
        *,
        config: PreTrainedConfig | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> T:
        """The policy of a checkpoint folder or Hub repo, in eval mode on ``config.device``.

        ``config`` replaces the checkpoint's config.json. Called on PreTrainedPolicy itself, the class
        is the one registered for the config's type. With ``strict=False`` missing and unexpected keys
        are only logged (LeRobot's behaviour); shapes must always match."""
        if config is None:
            config = PreTrainedConfig.from_pretrained(
                pretrained_name_or_path,
                revision=revision,
                token=token,
                cli_overrides=kwargs.pop("cli_overrides", None),
            )
        policy_cls: type[PreTrainedPolicy] = cls
        if cls is PreTrainedPolicy:
            from dexloop.policies.factory import get_policy_class

            policy_cls = get_policy_class(config.type)
        elif cls.config_class is not None and not isinstance(config, cls.config_class):
            raise PolicyConfigError(
                f"{CONFIG_NAME} of {pretrained_name_or_path}: type {config.type!r} is not a {cls.name!r} policy "
                f"({cls.__name__} needs a {cls.config_class.__name__})"
            )
        kwargs.pop("dataset_stats", None)
        kwargs.pop("dataset_meta", None)
        from dexloop.policies.backbones.resnet import backbone_weights_from_checkpoint

        with backbone_weights_from_checkpoint():
            instance = policy_cls(config, **kwargs)
        model_file = resolve_checkpoint_file(
            pretrained_name_or_path, SAFETENSORS_SINGLE_FILE, revision=revision, token=token
        )
        instance.load_weights(model_file, strict=strict)
        instance.to(config.device)
        instance.eval()
        return instance

    def load_weights(self, model_file: str | Path, *, strict: bool = True) -> None:
        """Loads model.safetensors into this policy; CheckpointError naming the file and the keys when
        they do not fit (nothing is loaded then)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            loaded = load_file(str(model_file), device="cpu")
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"{model_file}: not a readable safetensors file ({error})") from error
        state: dict[str, Tensor] = {}
        for raw_key, tensor in loaded.items():
            key = strip_compile_prefix(raw_key)
            if is_legacy_normalization_key(key):
                continue  # statistics, read by read_legacy_normalization_stats
            state[key] = tensor
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mismatched = [
            f"{key} (file {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
            for key in own
            if key in state and tuple(state[key].shape) != tuple(own[key].shape)
        ]
        if mismatched:
            raise CheckpointError(
                f"{model_file}: weight(s) of another shape than the model's: {', '.join(mismatched)}"
            )
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing key(s) {missing}")
            if unexpected:
                parts.append(f"unexpected key(s) {unexpected}")
            raise CheckpointError(
                f"{model_file}: the weights do not fit a {type(self).__name__} built from its config: "
                + "; ".join(parts)
            )
        if missing:
            logger.warning("Missing key(s) when loading %s: %s", model_file, missing)
        if unexpected:
            logger.warning("Unexpected key(s) when loading %s: %s", model_file, unexpected)
        own_dtypes = {k: v.dtype for k, v in own.items()}
        state = {k: v.to(own_dtypes[k]) for k, v in state.items() if k in own}
        self.load_state_dict(state, strict=False)

    # ----------------------------------------------------------------------------- interface

    @abc.abstractmethod
    def get_optim_params(self) -> Any:
        """The parameters (or parameter groups) the optimizer updates."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Clears the caches (action and observation queues); called when an episode starts."""

    @abc.abstractmethod
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict | None]:
        """The training loss of a normalised batch and a dict of logging-friendly numbers."""

    @abc.abstractmethod
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """The chunk of (normalised) actions for a batch of observations."""

    @abc.abstractmethod
    def select_action(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """The next action for a batch of observations, from the queued chunk when there is one."""

    def supports_rtc(self) -> bool:
        return False


__all__ = ["PreTrainedPolicy", "read_legacy_normalization_stats", "strip_compile_prefix"]
