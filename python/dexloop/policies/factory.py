"""Building policies, their configs and their processors by type name (LeRobot's ``policies.factory``).

Types resolve as in LeRobot: the config class registered under a name (``@PreTrainedConfig.
register_subclass("act")``) lives in a ``configuration_<x>`` module, its policy ``<X>Policy`` in the
sibling ``modeling_<x>`` and its processors ``make_<type>_pre_post_processors`` in ``processor_<x>``.
dexloop's own policy packages (``act``, ``diffusion``) are imported on first use, so their types are
known without importing every model up front.

``make_pre_post_processors`` loads a checkpoint's processors in either of LeRobot's layouts: the
processor json files (LeRobot >= 0.4), or, for an older checkpoint without them, pipelines built from
its config with the statistics kept inside model.safetensors.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path
from typing import Any

from dexloop.errors import PolicyConfigError, PolicyFeatureError, PolicyNotFoundError, ProcessorError
from dexloop.policies.config import PreTrainedConfig, resolve_checkpoint_file
from dexloop.policies.pretrained import PreTrainedPolicy, read_legacy_normalization_stats
from dexloop.policies.processors import (
    PolicyProcessorPipeline,
    batch_to_transition,
    policy_action_to_transition,
    transition_to_batch,
    transition_to_policy_action,
)
from dexloop.policies.types import FeatureType, PolicyFeature
from dexloop.policies.utils import (
    ACTION,
    OBS_ENV_STATE,
    OBS_STR,
    POLICY_POSTPROCESSOR_DEFAULT_NAME,
    POLICY_PREPROCESSOR_DEFAULT_NAME,
    SAFETENSORS_SINGLE_FILE,
)

logger = logging.getLogger("dexloop.policies")

# dexloop's policy packages: importing one registers its config type.
POLICY_PACKAGES = {
    "act": "dexloop.policies.act.configuration_act",
    "diffusion": "dexloop.policies.diffusion.configuration_diffusion",
}


def _register_known_types() -> None:
    for module in POLICY_PACKAGES.values():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name is None or not module.startswith(error.name):
                raise  # the package is there but one of its imports is not


def available_policies() -> list[str]:
    """The registered policy types."""
    _register_known_types()
    return sorted(PreTrainedConfig.get_known_choices())


def _config_class(name: str) -> type[PreTrainedConfig]:
    _register_known_types()
    if name not in PreTrainedConfig.get_known_choices():
        raise PolicyConfigError(f"Unknown policy type {name!r}. Available policies: {available_policies()}")
    return PreTrainedConfig.get_choice_class(name)


def _sibling(config_cls: type, prefix: str) -> Any:
    module_path = config_cls.__module__.replace("configuration_", prefix)
    if module_path == config_cls.__module__:
        raise PolicyConfigError(f"{config_cls.__name__} is not defined in a configuration_<name> module")
    return importlib.import_module(module_path)


def get_policy_class(name: str) -> type[PreTrainedPolicy]:
    """The policy class of a registered type ("act" -> ACTPolicy)."""
    config_cls = _config_class(name)
    model_name = config_cls.__name__.removesuffix("Config")
    if model_name == config_cls.__name__:
        raise PolicyConfigError(f"config class {config_cls.__name__!r} does not end with 'Config'")
    module = _sibling(config_cls, "modeling_")
    policy_cls = getattr(module, model_name + "Policy", None)
    if policy_cls is None:
        raise PolicyConfigError(f"{module.__name__} has no {model_name}Policy for policy type {name!r}")
    return policy_cls


def make_policy_config(policy_type: str, **kwargs: Any) -> PreTrainedConfig:
    """A config of ``policy_type`` with ``kwargs`` for its fields."""
    config_cls = _config_class(policy_type)
    try:
        return config_cls(**kwargs)
    except TypeError as error:
        raise PolicyConfigError(f"policy type {policy_type!r}: {error}") from error


def dataset_to_policy_features(features: dict[str, dict]) -> dict[str, PolicyFeature]:
    """Policy features from a dataset's ``info.json`` features (LeRobot's rules): images and videos
    are VISUAL (channels first), ``observation.environment_state`` ENV, other ``observation*`` STATE,
    ``action*`` ACTION; the rest (timestamps, indices) is not a policy feature."""
    policy_features = {}
    for key, ft in features.items():
        shape = tuple(ft["shape"])
        if ft["dtype"] in ("image", "video"):
            kind = FeatureType.VISUAL
            if len(shape) != 3:
                raise PolicyFeatureError(f"Number of dimensions of {key} != 3 (shape={shape})")
            names = ft.get("names") or []
            if len(names) == 3 and names[2] in ("channel", "channels"):  # (h, w, c) -> (c, h, w)
                shape = (shape[2], shape[0], shape[1])
        elif key == OBS_ENV_STATE:
            kind = FeatureType.ENV
        elif key.startswith(OBS_STR):
            kind = FeatureType.STATE
        elif key.startswith(ACTION):
            kind = FeatureType.ACTION
        else:
            continue
        policy_features[key] = PolicyFeature(type=kind, shape=shape)
    return policy_features


def env_to_policy_features(env_cfg: Any) -> dict[str, PolicyFeature]:
    """Policy features of an environment config with LeRobot's ``features`` ({env key: PolicyFeature})
    and ``features_map`` ({env key: policy key}); images become channels first."""
    policy_features = {}
    for key, ft in env_cfg.features.items():
        if ft.type is FeatureType.VISUAL:
            if len(ft.shape) != 3:
                raise PolicyFeatureError(f"Number of dimensions of {key} != 3 (shape={ft.shape})")
            h, w, c = ft.shape
            shape = (c, h, w) if c < h and c < w else tuple(ft.shape)
            ft = PolicyFeature(type=ft.type, shape=shape)
        policy_features[env_cfg.features_map[key]] = ft
    return policy_features


def _check_features_present(cfg: PreTrainedConfig, features: dict[str, PolicyFeature], source: str) -> None:
    """Raises PolicyFeatureError when the config needs an input the data lacks or has in another shape."""
    for key, ft in (cfg.input_features or {}).items():
        if key not in features:
            raise PolicyFeatureError(
                f"the policy's config.json needs input {key!r} ({ft.type.value}, shape {tuple(ft.shape)}), which "
                f"{source} does not have (its features: {sorted(features)})"
            )
        if tuple(features[key].shape) != tuple(ft.shape):
            raise PolicyFeatureError(
                f"input {key!r} has shape {tuple(features[key].shape)} in {source}, the policy's config.json "
                f"{tuple(ft.shape)}"
            )
    for key, ft in (cfg.output_features or {}).items():
        if key in features and tuple(features[key].shape) != tuple(ft.shape):
            raise PolicyFeatureError(
                f"output {key!r} has shape {tuple(features[key].shape)} in {source}, the policy's config.json "
                f"{tuple(ft.shape)}"
            )


def make_policy(
    cfg: PreTrainedConfig,
    ds_meta: Any = None,
    env_cfg: Any = None,
    rename_map: dict[str, str] | None = None,
) -> PreTrainedPolicy:
    """A policy for ``cfg``, its features taken from dataset metadata (dexloop's or LeRobot's
    LeRobotDatasetMetadata) or an environment config; with ``cfg.pretrained_path`` its weights come
    from that checkpoint, whose inputs the dataset must provide."""
    if (ds_meta is None) == (env_cfg is None):
        raise PolicyConfigError("Either one of a dataset metadata or a sim env must be provided.")
    policy_cls = get_policy_class(cfg.type)
    if ds_meta is not None:
        features = dataset_to_policy_features(ds_meta.features)
        source = f"the dataset {getattr(ds_meta, 'repo_id', '')!r} at {getattr(ds_meta, 'root', '?')}"
    else:
        features = env_to_policy_features(env_cfg)
        source = f"the environment {getattr(env_cfg, 'type', type(env_cfg).__name__)!r}"
    if rename_map:
        features = {rename_map.get(k, k): ft for k, ft in features.items()}
    if cfg.pretrained_path or cfg.input_features:
        _check_features_present(cfg, features, source)
    cfg.output_features = {key: ft for key, ft in features.items() if ft.type is FeatureType.ACTION}
    if not cfg.input_features:
        cfg.input_features = {key: ft for key, ft in features.items() if key not in cfg.output_features}
    if not cfg.pretrained_path and cfg.use_peft:
        raise PolicyConfigError("use_peft=True needs a pretrained checkpoint (pretrained_path)")
    if cfg.pretrained_path:
        policy = policy_cls.from_pretrained(cfg.pretrained_path, config=cfg, revision=cfg.pretrained_revision)
    else:
        kwargs: dict[str, Any] = {"config": cfg}
        if ds_meta is not None:
            kwargs["dataset_stats"] = getattr(ds_meta, "stats", None)
            kwargs["dataset_meta"] = ds_meta
        policy = policy_cls(**kwargs)
    policy.to(cfg.device)
    return policy


def _apply_overrides(
    pipeline: PolicyProcessorPipeline, overrides: dict[str, Any] | None, source: str
) -> PolicyProcessorPipeline:
    """Rebuilds ``pipeline`` with constructor overrides keyed by registry name (for pipelines that were
    not read from a json file, where from_pretrained applies them)."""
    if not overrides:
        return pipeline
    config = pipeline.get_config()
    return PolicyProcessorPipeline.from_config(
        config,
        state_dict=pipeline.state_dict(),
        overrides=overrides,
        to_transition=pipeline.to_transition,
        to_output=pipeline.to_output,
        source=source,
    )


def make_pre_post_processors(
    policy_cfg: PreTrainedConfig,
    pretrained_path: str | Path | None = None,
    pretrained_revision: str | None = None,
    *,
    dataset_stats: dict[str, dict[str, Any]] | None = None,
    dataset_meta: Any = None,
    preprocessor_overrides: dict[str, Any] | None = None,
    postprocessor_overrides: dict[str, Any] | None = None,
    preprocessor_config_filename: str = f"{POLICY_PREPROCESSOR_DEFAULT_NAME}.json",
    postprocessor_config_filename: str = f"{POLICY_POSTPROCESSOR_DEFAULT_NAME}.json",
) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """The (pre-processor, post-processor) of a policy: loaded from ``pretrained_path`` (a checkpoint
    folder or Hub repo, either layout) with overrides keyed by step registry name, or made from the
    config with ``dataset_stats`` (or ``dataset_meta.stats``)."""
    if pretrained_path:
        try:
            resolve_checkpoint_file(
                pretrained_path, preprocessor_config_filename, revision=pretrained_revision
            )
        except PolicyNotFoundError:
            legacy = _legacy_processors(policy_cfg, pretrained_path, pretrained_revision)
            if legacy is None:
                raise
            pre, post = legacy
            return (
                _apply_overrides(pre, preprocessor_overrides, str(pretrained_path)),
                _apply_overrides(post, postprocessor_overrides, str(pretrained_path)),
            )
        pre = PolicyProcessorPipeline.from_pretrained(
            pretrained_path,
            config_filename=preprocessor_config_filename,
            overrides=preprocessor_overrides or {},
            to_transition=batch_to_transition,
            to_output=transition_to_batch,
            revision=pretrained_revision,
        )
        post = PolicyProcessorPipeline.from_pretrained(
            pretrained_path,
            config_filename=postprocessor_config_filename,
            overrides=postprocessor_overrides or {},
            to_transition=policy_action_to_transition,
            to_output=transition_to_policy_action,
            revision=pretrained_revision,
        )
        return pre, post

    if dataset_stats is None and dataset_meta is not None:
        dataset_stats = getattr(dataset_meta, "stats", None)
        if not dataset_stats:
            raise ProcessorError(
                f"the dataset at {getattr(dataset_meta, 'root', '?')} has no statistics (meta/stats.json), which "
                "the policy's normalisation needs; compute them (dexloop dataset tools) first"
            )
    module = _sibling(type(policy_cfg), "processor_")
    function = getattr(module, f"make_{policy_cfg.type}_pre_post_processors", None)
    if function is None:
        raise PolicyConfigError(f"{module.__name__} has no make_{policy_cfg.type}_pre_post_processors")
    kwargs: dict[str, Any] = {"dataset_stats": dataset_stats}
    if "dataset_meta" in inspect.signature(function).parameters:
        kwargs["dataset_meta"] = dataset_meta
    pre, post = function(policy_cfg, **kwargs)
    return (
        _apply_overrides(pre, preprocessor_overrides, "the policy's config"),
        _apply_overrides(post, postprocessor_overrides, "the policy's config"),
    )


def _legacy_processors(policy_cfg, pretrained_path, revision):
    """Processors of a LeRobot <= 0.3 checkpoint (statistics inside model.safetensors), or None when
    the checkpoint has no such statistics."""
    try:
        model_file = resolve_checkpoint_file(pretrained_path, SAFETENSORS_SINGLE_FILE, revision=revision)
    except PolicyNotFoundError:
        return None
    stats = read_legacy_normalization_stats(model_file, policy_cfg)
    if not stats:
        return None
    logger.info(
        "%s holds its normalisation statistics (LeRobot <= 0.3 layout); building processors from them",
        model_file,
    )
    try:
        pre, post = make_pre_post_processors(policy_cfg, dataset_stats=stats)
    except ProcessorError as error:
        raise ProcessorError(f"{model_file}: {error}") from error
    for pipeline in (pre, post):
        for step in pipeline.steps:
            if hasattr(step, "_state_source"):
                step._state_source = str(model_file)
    return pre, post


__all__ = [
    "available_policies",
    "dataset_to_policy_features",
    "env_to_policy_features",
    "get_policy_class",
    "make_policy",
    "make_policy_config",
    "make_pre_post_processors",
]
