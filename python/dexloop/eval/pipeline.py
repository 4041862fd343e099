"""``dexloop eval``'s configuration and run: LeRobot 0.6.1's ``EvalPipelineConfig`` and ``eval_main``.

The flags are ``lerobot-eval``'s (draccus, ``--a.b=c``): ``--policy.path=<checkpoint>`` (its
config.json, ``--policy.<field>=v`` overriding fields; without a path, ``--policy.type=act`` makes a
policy with random weights), ``--env.type=pusht|so101_push`` and the env's fields
(``--env.episode_length=100``), ``--eval.n_episodes`` (50), ``--eval.batch_size`` (envs run side by
side; 0 picks one from the CPU count), ``--eval.use_async_envs`` (worker processes when more than one
env), ``--seed`` (1000: the first episode's seed, and the global torch / numpy / random seed),
``--output_dir`` (default ``outputs/eval/<date>/<time>_<env>_<policy>``) and ``--rename_map``.

``eval_main`` does what ``lerobot-eval`` does in its order (seed, envs, policy from the env's
features, processors with the device and rename map overridden, rollouts without gradients, autocast
when the policy's ``use_amp``), then writes ``<output_dir>/eval_info.json`` (LeRobot's layout) and
up to 10 videos under ``<output_dir>/videos/<env>_0/``. A policy whose inputs the environment does
not provide (or provides in another shape) is refused before any rollout with PolicyFeatureError.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import json
import logging
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import draccus

from dexloop.envs.configs import EnvConfig, available_envs, close_envs, make_env
from dexloop.errors import DexloopError, EnvError, PolicyConfigError
from dexloop.policies.config import PreTrainedConfig
from dexloop.policies.types import FeatureType, PolicyFeature
from dexloop.training.config import EvalConfig, arg_value

logger = logging.getLogger("dexloop.eval")

EVAL_INFO_NAME = "eval_info.json"


@dataclasses.dataclass
class EvalPipelineConfig:
    """Everything an evaluation needs, with LeRobot 0.6.1's ``lerobot-eval`` flags and defaults."""

    env: EnvConfig
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    policy: PreTrainedConfig | None = None
    output_dir: Path | None = None
    job_name: str | None = None
    seed: int | None = 1000
    # Renames of observation keys before the policy sees them ({env key: policy key}).
    rename_map: dict[str, str] = dataclasses.field(default_factory=dict)
    # Accepted for LeRobot's flags; dexloop runs no environment code from the Hub.
    trust_remote_code: bool = False
    # What runs the policy (--policy.runtime): torch, or onnx (the checkpoint exported to ONNX in
    # OUTPUT_DIR/onnx and run by ONNX Runtime on the CPU).
    policy_runtime: str = "torch"
    # The export's precision with --policy.runtime=onnx (--policy.precision): fp32, fp16, int8 (calibrated
    # on the training dataset when train_config.json names one on this machine) or int8-dynamic.
    policy_precision: str = "fp32"

    def validate(self) -> None:
        """Names the job and the output folder as LeRobot does; refuses what cannot run."""
        if self.policy is None:
            raise PolicyConfigError(
                "no policy: pass --policy.path=<checkpoint> (or --policy.type=act|diffusion for random weights)"
            )
        from dexloop.eval.runtime_policy import RUNTIMES

        if self.policy_runtime not in RUNTIMES:
            raise PolicyConfigError(
                f"--policy.runtime={self.policy_runtime}: expected one of {', '.join(RUNTIMES)}"
            )
        from dexloop.export.onnx_export import PRECISIONS

        if self.policy_precision not in PRECISIONS:
            raise PolicyConfigError(
                f"--policy.precision={self.policy_precision}: expected one of {', '.join(PRECISIONS)}"
            )
        if self.policy_runtime != "torch" and self.policy.pretrained_path is None:
            raise PolicyConfigError(
                f"--policy.runtime={self.policy_runtime} runs an exported checkpoint: pass --policy.path"
            )
        if self.eval.recording:
            raise EnvError(
                "eval.recording=true (recording rollouts as a dataset) is not supported by dexloop eval"
            )
        if self.eval.n_episodes < 1:
            raise EnvError(f"eval.n_episodes must be at least 1, got {self.eval.n_episodes}")
        if self.eval.batch_size < 1:
            raise EnvError(
                f"eval.batch_size must be at least 1 (or 0 for automatic), got {self.eval.batch_size}"
            )
        if not self.job_name:
            self.job_name = f"{self.env.type}_{self.policy.type}"
        if not self.output_dir:
            now = dt.datetime.now()
            self.output_dir = Path("outputs/eval") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{self.job_name}"
        self.output_dir = Path(self.output_dir)


def _without_policy(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(`args` without ``--policy.*``, those options as overrides of the policy config)."""
    kept: list[str] = []
    overrides: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--policy."):
            option = arg if "=" in arg or index + 1 >= len(args) else f"{arg}={args[index + 1]}"
            if "=" not in arg and index + 1 < len(args):
                index += 1
            if not option.startswith(("--policy.path=", "--policy.type=")):
                overrides.append("--" + option[len("--policy.") :])
        else:
            kept.append(arg)
        index += 1
    return kept, overrides


def _unwrap(error: BaseException) -> DexloopError | None:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, DexloopError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def parse_eval_config(args: Sequence[str]) -> EvalPipelineConfig:
    """The validated EvalPipelineConfig of ``lerobot-eval``-style arguments (EnvError for an unknown
    or missing ``--env.type`` and unusable options, PolicyConfigError / PolicyNotFoundError for the
    policy; ``--eval.*`` checks shared with ``dexloop train`` raise TrainingConfigError)."""
    from dexloop.policies.factory import available_policies

    args = list(args)
    available_policies()  # registers every policy type
    env_type = arg_value("env.type", args)
    if env_type is None:
        raise EnvError(f"no environment: pass --env.type=<{'|'.join(available_envs())}>")
    if env_type not in available_envs():
        raise EnvError(f"Environment type {env_type!r} is not registered. Available: {available_envs()}")
    for option in ("runtime", "precision"):  # dexloop's runtime choice, not fields of the policy config
        value = arg_value(f"policy.{option}", args)
        flag = f"--policy.{option}"
        kept: list[str] = []
        for index, arg in enumerate(args):
            given_apart = index > 0 and args[index - 1] == flag and not arg.startswith("--")
            if not (arg == flag or arg.startswith(flag + "=") or given_apart):
                kept.append(arg)
        args = kept
        if value is not None:
            args.append(f"--policy_{option}={value}")
    policy_path = arg_value("policy.path", args)
    policy_cfg = None
    if policy_path:
        if arg_value("policy.type", args):
            raise PolicyConfigError("give either --policy.path or --policy.type, not both")
        args, overrides = _without_policy(args)
        policy_cfg = PreTrainedConfig.from_pretrained(policy_path, cli_overrides=overrides)
        policy_cfg.pretrained_path = Path(policy_path)
    try:
        with draccus.config_type("json"):
            cfg = draccus.parse(config_class=EvalPipelineConfig, args=args)
    except SystemExit as error:
        raise EnvError(f"invalid evaluation options {args} (see dexloop eval --help)") from error
    except DexloopError:
        raise
    except Exception as error:
        cause = _unwrap(error)
        if cause is not None:
            raise cause from error
        raise EnvError(f"invalid evaluation options {args}: {error}") from error
    if policy_cfg is not None:
        cfg.policy = policy_cfg
    cfg.validate()
    return cfg


def _space_at(space: Any, key: str) -> Any:
    for part in key.split("/"):
        if not hasattr(space, "spaces") or part not in space.spaces:
            return None
        space = space.spaces[part]
    return space


def observed_env_config(env_cfg: EnvConfig, vec_env: Any) -> EnvConfig:
    """``env_cfg`` with its ``features`` shaped as the built env really observes and acts (LeRobot's
    PushT config describes 384 x 384 images while gym-pusht observes 96 x 96; policies are checked
    against what they will be given)."""
    observed = copy.copy(env_cfg)
    features: dict[str, PolicyFeature] = {}
    for key, ft in env_cfg.features.items():
        space = (
            vec_env.single_action_space
            if ft.type is FeatureType.ACTION
            else _space_at(vec_env.single_observation_space, key)
        )
        shape = tuple(space.shape) if space is not None and space.shape is not None else tuple(ft.shape)
        features[key] = PolicyFeature(type=ft.type, shape=shape)
    observed.features = features
    return observed


def _onnx_policy(cfg: EvalPipelineConfig, output_dir: Path):
    """The checkpoint exported to ONNX (``--policy.precision``) in OUTPUT_DIR/onnx, with the config's action-selection
    settings (``--policy.n_action_steps`` / ``--policy.temporal_ensemble_coeff`` overrides included),
    run by ONNX Runtime behind the policy interface the loop calls."""
    from dexloop.eval.runtime_policy import RuntimePolicy, identity
    from dexloop.export import ExportManifest, export_policy
    from dexloop.inference import Runtime

    folder = output_dir / "onnx"
    export_policy(cfg.policy.pretrained_path, folder, precision=cfg.policy_precision, overwrite=True)
    manifest = ExportManifest.load(folder)
    manifest.n_action_steps = cfg.policy.n_action_steps
    manifest.temporal_ensemble_coeff = getattr(cfg.policy, "temporal_ensemble_coeff", None)
    manifest.save(folder)
    runtime = Runtime.load(folder)
    logger.info("Running the policy exported to %s with ONNX Runtime.", folder)
    return RuntimePolicy(runtime, cfg.rename_map), identity, identity


def eval_main(cfg: EvalPipelineConfig, progress: bool = True) -> dict[str, Any]:
    """Runs the evaluation ``cfg`` describes; returns what it writes to ``eval_info.json``."""
    import torch

    from dexloop.datasets.durable import write_atomically
    from dexloop.eval.rollout import MAX_EPISODES_RENDERED, eval_policy_all
    from dexloop.policies.factory import make_policy, make_pre_post_processors
    from dexloop.training.train import set_seed

    cfg.validate()
    # LeRobot's GPU settings (speed; TF32 matmuls), so GPU figures are comparable with its own.
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    if cfg.seed is not None:
        set_seed(cfg.seed)
    output_dir = Path(cfg.output_dir)
    logger.info("Output dir: %s", output_dir)
    logger.info("Making environment (batch_size=%d, async=%s).", cfg.eval.batch_size, cfg.eval.use_async_envs)
    envs = make_env(cfg.env, n_envs=cfg.eval.batch_size, use_async_envs=cfg.eval.use_async_envs)
    try:
        first_env = next(iter(next(iter(envs.values())).values()))
        logger.info("Making policy.")
        if cfg.policy_runtime == "onnx":
            policy, preprocessor, postprocessor = _onnx_policy(cfg, output_dir)
            autocast = contextlib.nullcontext()
        else:
            policy = make_policy(
                cfg.policy, env_cfg=observed_env_config(cfg.env, first_env), rename_map=cfg.rename_map
            )
            policy.eval()
            preprocessor, postprocessor = make_pre_post_processors(
                cfg.policy,
                pretrained_path=cfg.policy.pretrained_path,
                preprocessor_overrides={
                    "device_processor": {"device": str(policy.config.device)},
                    "rename_observations_processor": {"rename_map": cfg.rename_map},
                },
            )
            autocast = (
                torch.autocast(device_type=torch.device(policy.config.device).type)
                if cfg.policy.use_amp
                else contextlib.nullcontext()
            )
        with torch.no_grad(), autocast:
            info = eval_policy_all(
                envs,
                policy,
                preprocessor,
                postprocessor,
                cfg.eval.n_episodes,
                max_episodes_rendered=MAX_EPISODES_RENDERED,
                videos_dir=output_dir / "videos",
                start_seed=cfg.seed,
                progress=progress,
            )
    finally:
        close_envs(envs)
    logger.info("Overall aggregated metrics: %s", info["overall"])

    def write(path: Path) -> None:
        path.write_text(json.dumps(info, indent=2), encoding="utf-8")

    write_atomically(output_dir / EVAL_INFO_NAME, write)
    return info


USAGE = (
    "usage: dexloop eval (--policy.path=CHECKPOINT | --policy.type=act|diffusion) "
    f"--env.type={{{','.join(available_envs())}}} [--eval.n_episodes=50] [--eval.batch_size=0] "
    "[--eval.use_async_envs=true] [--seed=1000] [--output_dir=DIR] [--rename_map=JSON] [--OPTION=VALUE ...]"
)


def _show(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list | tuple):
        text = json.dumps(draccus.encode(value))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def _field_lines(cls: type, prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    hints = typing.get_type_hints(cls)
    lines = []
    for field in dataclasses.fields(cls):
        if not field.init or field.name in skip:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        hint = hints.get(field.name, field.type)
        name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "").replace("pathlib.", "")
        lines.append(f"  --{prefix}{field.name}={name} [{_show(default)}]")
    return lines


def format_help(args: Sequence[str] = ()) -> str:
    """The flags with their defaults; ``--env.type=<type>`` in `args` adds that env's options."""
    lines = [
        USAGE,
        "",
        "Rolls a policy out in a simulated environment and reports pc_success, avg_sum_reward and",
        "avg_max_reward as lerobot-eval does (LeRobot 0.6.1's flags and defaults). Writes",
        "OUTPUT_DIR/eval_info.json and videos of the first episodes under OUTPUT_DIR/videos/.",
        "",
        "options (default in brackets):",
        "  --policy.path=CHECKPOINT  a pretrained_model folder (config.json, model.safetensors, processors)",
        "  --policy.type={act,diffusion}  a policy with random weights, when no --policy.path",
        "  --policy.<field>=VALUE  overrides a field of the policy's config",
        f"  --env.type={{{','.join(available_envs())}}}  required",
    ]
    env_type = arg_value("env.type", args)
    if env_type in available_envs():
        lines.append(f"    ({env_type}'s options:)")
        lines.extend(
            "  " + line
            for line in _field_lines(
                EnvConfig.get_choice_class(env_type), "env.", ("features", "features_map")
            )
        )
    else:
        lines.append("    (add --env.type=<type> to list that env's options)")
    lines.extend(_field_lines(EvalConfig, "eval."))
    lines.extend(_field_lines(EvalPipelineConfig, "", ("env", "eval", "policy")))
    return "\n".join(lines) + "\n"


def print_help(args: Sequence[str] = (), file: Any = None) -> None:
    print(format_help(args), end="", file=file or sys.stdout)


__all__ = [
    "EVAL_INFO_NAME",
    "EvalPipelineConfig",
    "eval_main",
    "format_help",
    "observed_env_config",
    "parse_eval_config",
    "print_help",
]
