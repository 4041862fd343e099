"""The training configuration: LeRobot 0.6.1's ``TrainPipelineConfig`` and its parts, parsed by draccus.

The dataclasses have LeRobot's field names, nesting and defaults, so ``dexloop train`` takes
``lerobot-train``'s flags (``--dataset.repo_id``, ``--policy.type=act``, ``--batch_size``, ``--steps``,
``--optimizer.lr``, ...), and the ``train_config.json`` written into each checkpoint reads in LeRobot
and the other way round. ``parse_train_config(argv)`` is LeRobot's ``parser.wrap`` logic:
``--policy.path=<checkpoint>`` loads that policy's config (``--policy.<field>`` flags override it),
``--config_path=<train_config.json>`` starts from a saved configuration (with ``--resume=true``, the
run continues from that checkpoint), ``--help`` lists every flag with its default.

Options of LeRobot that need what dexloop does not have (Weights & Biases, PEFT adapters, HF Jobs,
torchvision image augmentations, reward models, sample weighting, in-training simulator evaluation)
are kept as fields, so LeRobot's files round-trip, but ``validate()`` refuses to run with them set
rather than ignoring them.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import draccus

from dexloop.errors import TrainingConfigError
from dexloop.policies.config import PreTrainedConfig
from dexloop.training._files import write_json_file
from dexloop.training.optimizers import OptimizerConfig
from dexloop.training.schedulers import LRSchedulerConfig

TRAIN_CONFIG_NAME = "train_config.json"
PRETRAINED_MODEL_DIR = "pretrained_model"


def _policy_config_class() -> type:
    """``PreTrainedConfig``, with every policy type of dexloop ("act", "diffusion") registered."""
    from dexloop.policies.factory import available_policies

    available_policies()
    return PreTrainedConfig


@dataclasses.dataclass
class ImageTransformConfig:
    """One augmentation: ``type`` names a torchvision ``transforms.v2`` class or a LeRobot one,
    ``kwargs`` its parameter ranges, ``weight`` its chance of being drawn."""

    weight: float = 1.0
    type: str = "Identity"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _default_image_transforms() -> dict[str, ImageTransformConfig]:
    return {
        "brightness": ImageTransformConfig(weight=1.0, type="ColorJitter", kwargs={"brightness": (0.8, 1.2)}),
        "contrast": ImageTransformConfig(weight=1.0, type="ColorJitter", kwargs={"contrast": (0.8, 1.2)}),
        "saturation": ImageTransformConfig(weight=1.0, type="ColorJitter", kwargs={"saturation": (0.5, 1.5)}),
        "hue": ImageTransformConfig(weight=1.0, type="ColorJitter", kwargs={"hue": (-0.05, 0.05)}),
        "sharpness": ImageTransformConfig(
            weight=1.0, type="SharpnessJitter", kwargs={"sharpness": (0.5, 1.5)}
        ),
        "affine": ImageTransformConfig(
            weight=1.0, type="RandomAffine", kwargs={"degrees": (-5.0, 5.0), "translate": (0.05, 0.05)}
        ),
    }


@dataclasses.dataclass
class ImageTransformsConfig:
    """LeRobot's training-time image augmentations (off by default)."""

    enable: bool = False
    max_num_transforms: int = 3
    random_order: bool = False
    tfs: dict[str, ImageTransformConfig] = dataclasses.field(default_factory=_default_image_transforms)


@dataclasses.dataclass
class DatasetConfig:
    """The dataset to train on: a LeRobot dataset ``repo_id``, read from ``root`` when given (else
    from the cache, downloaded when missing), optionally only some ``episodes``."""

    repo_id: str
    repo_type: str = "dataset"
    root: str | None = None
    episodes: list[int] | None = None
    image_transforms: ImageTransformsConfig = dataclasses.field(default_factory=ImageTransformsConfig)
    revision: str | None = None
    # Camera statistics replaced by ImageNet's, as LeRobot does for pretrained backbones.
    use_imagenet_stats: bool = True
    # Accepted for LeRobot's files; dexloop always decodes with its own FFmpeg decoder.
    video_backend: str = "torchcodec"
    return_uint8: bool = False
    depth_output_unit: str = "mm"
    streaming: bool = False
    # Fraction of each task's episodes held out for an evaluation loss (0: none).
    eval_split: float = 0.0

    def __post_init__(self) -> None:
        if self.repo_type not in ("dataset", "bucket"):
            raise TrainingConfigError(
                f"dataset.repo_type must be 'dataset' or 'bucket', got {self.repo_type!r}"
            )
        if self.repo_type == "bucket" and not self.streaming:
            raise TrainingConfigError(
                "dataset.repo_type='bucket' is streaming-only: set dataset.streaming=true"
            )
        if self.depth_output_unit not in ("m", "mm"):
            raise TrainingConfigError(
                f"dataset.depth_output_unit must be 'm' or 'mm', got {self.depth_output_unit!r}"
            )
        if not 0.0 <= self.eval_split < 1.0:
            raise TrainingConfigError(f"dataset.eval_split must be in [0.0, 1.0), got {self.eval_split}")
        if self.episodes is not None:
            negative = [episode for episode in self.episodes if episode < 0]
            if negative:
                raise TrainingConfigError(f"dataset.episodes must be non-negative, got {negative}")
            duplicates = sorted({episode for episode in self.episodes if self.episodes.count(episode) > 1})
            if duplicates:
                raise TrainingConfigError(f"dataset.episodes has duplicates: {duplicates}")


@dataclasses.dataclass
class EvalConfig:
    """Rollouts of the in-training simulator evaluation (LeRobot's ``--eval.*``)."""

    n_episodes: int = 50
    # Environments run side by side; 0 picks one from the CPU count, as LeRobot does.
    batch_size: int = 0
    use_async_envs: bool = True
    recording: bool = False
    recording_repo_id: str | None = None
    recording_private: bool = False

    def __post_init__(self) -> None:
        if self.recording_repo_id is not None and not self.recording:
            raise TrainingConfigError("eval.recording_repo_id requires eval.recording=true")
        if self.batch_size == 0:
            # About one core per environment worker, with headroom for the main process.
            self.batch_size = min(max(1, math.floor((os.cpu_count() or 4) * 0.7)), self.n_episodes, 64)
        self.batch_size = min(self.batch_size, self.n_episodes)


@dataclasses.dataclass
class WandBConfig:
    enable: bool = False
    disable_artifact: bool = False
    project: str = "lerobot"
    entity: str | None = None
    notes: str | None = None
    run_id: str | None = None
    mode: str | None = None
    add_tags: bool = True


@dataclasses.dataclass
class PeftConfig:
    target_modules: list[str] | str | None = None
    full_training_modules: list[str] | None = None
    method_type: str = "LORA"
    init_type: str | None = None
    r: int = 16
    lora_alpha: int | None = None


@dataclasses.dataclass
class JobConfig:
    """Where training runs: here (``target`` None or "local"), or an HF Jobs flavor."""

    target: str | None = None
    image: str = "huggingface/lerobot-gpu:latest"
    timeout: str | None = "2d"
    detach: bool = False
    tags: list[str] = dataclasses.field(default_factory=list)

    @property
    def is_remote(self) -> bool:
        return self.target not in (None, "local")


@dataclasses.dataclass
class SampleWeightingConfig:
    type: str = "rabc"
    progress_path: str | None = None
    head_mode: str = "sparse"
    kappa: float = 0.01
    epsilon: float = 1e-6
    extra_params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainPipelineConfig:
    """Everything a training run needs, with LeRobot 0.6.1's ``lerobot-train`` flags and defaults."""

    dataset: DatasetConfig
    # LeRobot's simulator-environment config; dexloop evaluates with ``dexloop eval`` instead.
    env: dict[str, Any] | None = None
    policy: PreTrainedConfig | None = None
    reward_model: dict[str, Any] | None = None
    # Where checkpoints, logs and the loss curve go; must not exist unless resuming.
    output_dir: Path | None = None
    job_name: str | None = None
    resume: bool = False
    seed: int | None = 1000
    cudnn_deterministic: bool = False
    num_workers: int = 4
    batch_size: int = 8
    prefetch_factor: int = 4
    persistent_workers: bool = True
    dataloader_multiprocessing_context: str | None = "spawn"
    steps: int = 100_000
    env_eval_freq: int = 20_000
    log_freq: int = 200
    # Held-out loss every N steps (needs dataset.eval_split > 0); 0 disables it.
    eval_steps: int = 0
    max_eval_samples: int = 0
    tolerance_s: float = 1e-4
    save_checkpoint: bool = True
    # A checkpoint every save_freq steps and after the last; <= 0 keeps only the last one.
    save_freq: int = 20_000
    use_policy_training_preset: bool = True
    optimizer: OptimizerConfig | None = None
    scheduler: LRSchedulerConfig | None = None
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    wandb: WandBConfig = dataclasses.field(default_factory=WandBConfig)
    peft: PeftConfig | None = None
    job: JobConfig = dataclasses.field(default_factory=JobConfig)
    save_checkpoint_to_hub: bool = False
    sample_weighting: SampleWeightingConfig | None = None
    rename_map: dict[str, str] = dataclasses.field(default_factory=dict)
    checkpoint_path: Path | None = dataclasses.field(init=False, default=None)

    @property
    def trainable_config(self) -> PreTrainedConfig:
        if self.policy is None:
            raise TrainingConfigError(
                "no policy configured: pass --policy.type=<act|diffusion> or --policy.path=<checkpoint>"
            )
        return self.policy

    def validate(self, policy_path: str | None = None, policy_overrides: Sequence[str] = ()) -> None:
        """Completes and checks the configuration as LeRobot's ``validate()`` does: loads the policy
        config of ``policy_path`` (``--policy.path``), points a resumed run at its checkpoint, names
        the job and the output folder, fills the optimizer and scheduler from the policy's presets.
        Raises TrainingConfigError for what cannot run."""
        contexts = multiprocessing.get_all_start_methods()
        if (
            self.dataloader_multiprocessing_context is not None
            and self.dataloader_multiprocessing_context not in contexts
        ):
            raise TrainingConfigError(
                f"dataloader_multiprocessing_context must be null or one of {contexts}, "
                f"got {self.dataloader_multiprocessing_context!r}"
            )
        if policy_path:
            self.policy = _policy_config_class().from_pretrained(
                policy_path, cli_overrides=list(policy_overrides)
            )
            self.policy.pretrained_path = Path(policy_path)
        elif self.resume:
            self._resolve_resume_checkpoint()
        self._refuse_unsupported()
        policy = self.trainable_config
        if self.rename_map and policy.pretrained_path is None:
            raise TrainingConfigError(
                "rename_map needs a pretrained policy (--policy.path): a new policy takes its feature names from the dataset"
            )
        if not self.job_name:
            self.job_name = policy.type
        if not self.resume and isinstance(self.output_dir, Path) and self.output_dir.is_dir():
            raise TrainingConfigError(
                f"output_dir {self.output_dir} already exists and resume is false: choose another output_dir "
                "(or --resume=true --config_path=<checkpoint>/pretrained_model/train_config.json)"
            )
        if not self.output_dir:
            now = dt.datetime.now()
            self.output_dir = Path("outputs/train") / f"{now:%Y-%m-%d}/{now:%H-%M-%S}_{self.job_name}"
        if self.steps <= 0:
            raise TrainingConfigError(f"steps must be positive, got {self.steps}")
        if self.batch_size <= 0:
            raise TrainingConfigError(f"batch_size must be positive, got {self.batch_size}")
        if not self.use_policy_training_preset and (self.optimizer is None or self.scheduler is None):
            raise TrainingConfigError(
                "optimizer and scheduler must be set (--optimizer.type, --scheduler.type) when "
                "use_policy_training_preset=false"
            )
        if self.use_policy_training_preset and not self.resume:
            self.optimizer = policy.get_optimizer_preset()
            self.scheduler = policy.get_scheduler_preset()
        if self.optimizer is None:
            raise TrainingConfigError("no optimizer configured (--optimizer.type=adam|adamw|sgd|multi_adam)")
        if self.eval_steps > 0 and self.dataset.eval_split == 0.0:
            raise TrainingConfigError(
                "eval_steps > 0 needs dataset.eval_split > 0 to hold out evaluation episodes"
            )
        if getattr(policy, "push_to_hub", False) and not policy.repo_id:
            raise TrainingConfigError(
                "policy.push_to_hub is true but policy.repo_id is not set: pass --policy.repo_id=<user/name> "
                "or --policy.push_to_hub=false"
            )
        if self.save_checkpoint_to_hub and not policy.repo_id:
            raise TrainingConfigError("save_checkpoint_to_hub needs --policy.repo_id")
        if getattr(policy, "push_to_hub", False):
            raise TrainingConfigError(
                "policy.push_to_hub=true: dexloop train does not upload the trained policy; pass "
                "--policy.push_to_hub=false and upload OUTPUT_DIR/checkpoints/last/pretrained_model yourself"
            )

    def _resolve_resume_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            raise TrainingConfigError(
                f"resume=true needs --config_path=<output_dir>/checkpoints/<step>/{PRETRAINED_MODEL_DIR}/{TRAIN_CONFIG_NAME}"
            )
        if self.policy is not None:
            self.policy.pretrained_path = self.checkpoint_path / PRETRAINED_MODEL_DIR

    def _refuse_unsupported(self) -> None:
        unsupported = {
            "wandb.enable=true (Weights & Biases logging)": self.wandb.enable,
            "peft (PEFT adapters)": self.peft is not None,
            "job.target (HF Jobs)": self.job.is_remote,
            "dataset.image_transforms.enable=true (torchvision augmentations)": self.dataset.image_transforms.enable,
            "dataset.streaming=true": self.dataset.streaming,
            "reward_model": self.reward_model is not None,
            "sample_weighting": self.sample_weighting is not None,
            "env (in-training simulator evaluation; use `dexloop eval` on a checkpoint)": self.env
            is not None,
            "save_checkpoint_to_hub=true": self.save_checkpoint_to_hub,
        }
        chosen = [name for name, is_set in unsupported.items() if is_set]
        if chosen:
            raise TrainingConfigError(f"not supported by dexloop train: {', '.join(chosen)}")

    def to_dict(self) -> dict[str, Any]:
        return draccus.encode(self)

    def save_pretrained(self, save_directory: str | Path) -> None:
        """Writes train_config.json into `save_directory` (atomically), as LeRobot writes it."""
        write_json_file(Path(save_directory) / TRAIN_CONFIG_NAME, self.to_dict())

    @classmethod
    def from_pretrained(
        cls: builtins.type[TrainPipelineConfig], path: str | Path, cli_args: Sequence[str] = ()
    ) -> TrainPipelineConfig:
        """The configuration saved in `path` (a train_config.json, or a folder holding one), with
        `cli_args` (``["--steps=2000"]``) applied on top."""
        path = Path(path)
        if path.is_dir():
            path = path / TRAIN_CONFIG_NAME
        if not path.is_file():
            raise TrainingConfigError(f"{path}: training configuration not found")
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise TrainingConfigError(f"{path}: not a readable JSON file ({error})") from error
        if not isinstance(content, dict):
            raise TrainingConfigError(f"{path}: expected a JSON object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(content) - known)
        if unknown:
            raise TrainingConfigError(f"{path}: unknown key(s) {unknown} (not fields of TrainPipelineConfig)")
        _policy_config_class()
        # checkpoint_path is set by resuming, never read back.
        content.pop("checkpoint_path", None)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(content, handle)
        try:
            return _parse(cls, list(cli_args), config_path=handle.name, source=str(path))
        finally:
            os.unlink(handle.name)


def _parse(cls: type, args: list[str], config_path: str | None = None, source: str = "command line"):
    try:
        with draccus.config_type("json"):
            return draccus.parse(config_class=cls, config_path=config_path, args=args)
    except TrainingConfigError:
        raise
    except SystemExit as error:
        # draccus (argparse) has printed what it refused; give the caller an exception instead.
        raise TrainingConfigError(f"{source}: invalid training options {args}") from error
    except Exception as error:
        # draccus wraps what a dataclass's __post_init__ raised; that one names the option.
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, TrainingConfigError):
                raise TrainingConfigError(f"{source}: {cause}") from error
            cause = cause.__cause__ or cause.__context__
        raise TrainingConfigError(f"{source}: {error}") from error


def arg_value(name: str, args: Sequence[str]) -> str | None:
    """The value of the flag ``--name`` in a command line (``--name=v`` or ``--name v``), or None: what
    must be known (a type, a path) before draccus parses the rest against the classes it selects."""
    option = f"--{name}"
    for index, arg in enumerate(args):
        if arg.startswith(option + "="):
            return arg[len(option) + 1 :]
        if arg == option and index + 1 < len(args) and not args[index + 1].startswith("--"):
            return args[index + 1]
    return None


def _without(args: Sequence[str], predicate) -> list[str]:
    """`args` without the options whose name satisfies `predicate` (and their separate values)."""
    kept: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        if name is not None and predicate(name):
            index += 1
            if "=" not in arg and index < len(args) and not args[index].startswith("--"):
                index += 1
            continue
        kept.append(arg)
        index += 1
    return kept


USAGE = (
    "usage: dexloop train --dataset.repo_id=REPO_ID [--dataset.root=DIR] "
    "(--policy.type=act|diffusion | --policy.path=CHECKPOINT) [--batch_size=8] [--steps=100000] "
    "[--output_dir=DIR] [--OPTION=VALUE ...]\n"
    "       dexloop train --resume=true --config_path=DIR/checkpoints/last/pretrained_model/train_config.json"
)


def format_help(args: Sequence[str] = ()) -> str:
    """Every flag with its type, default and meaning. Choice options (``--policy``,
    ``--optimizer``, ``--scheduler``) list their types, and the fields of the type chosen in
    `args` (``--policy.type=act``), as LeRobot's scoped help does."""
    _policy_config_class()
    lines = [
        USAGE,
        "",
        "Trains a policy on a LeRobot dataset as lerobot-train does (LeRobot 0.6.1's flags and defaults).",
        "Checkpoints: OUTPUT_DIR/checkpoints/<step>/{pretrained_model,training_state}, and last;",
        "OUTPUT_DIR/metrics.jsonl has one line per step, OUTPUT_DIR/loss_curve.png the loss curve.",
        "Several processes: torchrun --nproc_per_node=N -m dexloop.cli.train ... (batch_size is per process).",
        "",
        "options (default in brackets):",
        "  --config_path=FILE  a train_config.json to start from (the other flags override it)",
    ]
    describe_fields(TrainPipelineConfig, "", list(args), lines)
    return "\n".join(lines) + "\n"


def print_help(args: Sequence[str] = (), file=None) -> None:
    print(format_help(args), end="", file=file or sys.stdout)


def describe_fields(cls: type, prefix: str, args: list[str], lines: list[str]) -> None:
    """Appends one ``--prefix.field=TYPE [default]  comment`` line per field of dataclass ``cls`` to
    `lines` (nested dataclasses flattened, choice types listed), as the commands' ``--help`` shows."""
    from draccus.wrappers.docstring import get_attribute_docstring, get_preferred_help_text

    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        name = prefix + field.name
        hint = hints.get(field.name, field.type)
        choice = _choice_registry(hint)
        try:
            comment = get_preferred_help_text(get_attribute_docstring(cls, field.name)) or ""
        except Exception:  # the class's source is not available
            comment = ""
        comment = " ".join(comment.split())
        if choice is not None:
            known = sorted(choice.get_known_choices())
            selected = arg_value(f"{name}.type", args)
            extra = " | --policy.path=CHECKPOINT" if name == "policy" else ""
            lines.append(f"  --{name}.type={{{','.join(known)}}}{extra}  {comment}".rstrip())
            if selected in known:
                lines.append(f"    ({selected}'s options:)")
                describe_fields(choice.get_choice_class(selected), name + ".", args, lines)
            else:
                lines.append(f"    (add --{name}.type=<type> to list that type's options)")
            continue
        default = _default_of(field)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            describe_fields(hint, name + ".", args, lines)
            continue
        text = f"  --{name}={_type_name(hint)} [{_show(default)}]"
        lines.append(f"{text}  {comment}" if comment else text)


def _choice_registry(hint: Any) -> type | None:
    candidates = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    )
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, draccus.ChoiceRegistry):
            return candidate
    return None


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list | tuple) or dataclasses.is_dataclass(value):
        try:
            text = json.dumps(draccus.encode(value))
        except Exception:
            text = str(value)
        return text if len(text) <= 90 else text[:87] + "..."
    return (
        str(value.value)
        if hasattr(value, "value") and not isinstance(value, int | float | str)
        else str(value)
    )


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _type_name(args[0])
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return hint.__name__
    # "dict[str, dexloop.policies.types.PolicyFeature]" -> "dict[str, PolicyFeature]"
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(hint))


def parse_train_config(args: Sequence[str]) -> TrainPipelineConfig:
    """The validated TrainPipelineConfig of ``lerobot-train``-style arguments.

    ``--policy.path=P`` loads the policy config saved in checkpoint P (``--policy.<field>=v`` override
    it; ``--policy.type`` may not be given with it). ``--config_path=F`` starts from train_config.json
    F, the other flags overriding it; with ``--resume=true`` F must be a checkpoint's and the run
    continues from that checkpoint.
    """
    args = list(args)
    _policy_config_class()
    policy_path = arg_value("policy.path", args)
    policy_overrides: list[str] = []
    if policy_path:
        if arg_value("policy.type", args):
            raise TrainingConfigError("give either --policy.path or --policy.type, not both")
        policy_overrides = [
            "--" + arg[len("--policy.") :]
            for arg in args
            if arg.startswith("--policy.") and not arg.startswith(("--policy.path", "--policy.type"))
        ]
        args = _without(args, lambda name: name.startswith("policy."))
    config_path = arg_value("config_path", args)
    args = _without(args, lambda name: name == "config_path")
    if config_path:
        config = TrainPipelineConfig.from_pretrained(config_path, cli_args=args)
        if config.resume:
            file = Path(config_path)
            pretrained_dir = file.parent if file.is_file() else file
            config.checkpoint_path = pretrained_dir.parent
    else:
        config = _parse(TrainPipelineConfig, args)
    config.validate(policy_path=policy_path, policy_overrides=policy_overrides)
    return config


__all__ = [
    "PRETRAINED_MODEL_DIR",
    "TRAIN_CONFIG_NAME",
    "DatasetConfig",
    "EvalConfig",
    "ImageTransformConfig",
    "ImageTransformsConfig",
    "JobConfig",
    "PeftConfig",
    "SampleWeightingConfig",
    "TrainPipelineConfig",
    "WandBConfig",
    "describe_fields",
    "format_help",
    "parse_train_config",
    "print_help",
]
