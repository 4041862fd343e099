"""TrainPipelineConfig: LeRobot 0.6.1's flags, defaults and train_config.json (reference made by
tools/lerobot_reference/make_training_reference.py), --policy.path, --config_path, --help."""

from __future__ import annotations

import copy
import json

import draccus
import pytest
from support import DATA

from dexloop.errors import TrainingConfigError
from dexloop.policies import make_policy_config
from dexloop.training.config import (
    DatasetConfig,
    EvalConfig,
    TrainPipelineConfig,
    format_help,
    parse_train_config,
)
from dexloop.training.optimizers import AdamConfig, AdamWConfig
from dexloop.training.schedulers import DiffuserSchedulerConfig

REFERENCE = json.loads((DATA / "training" / "train_config.json").read_text())


def _with_eval_batch(encoded: dict, value: int) -> dict:
    # eval.batch_size=0 resolves from the CPU count of the machine (the reference: LeRobot's here).
    encoded = copy.deepcopy(encoded)
    encoded["eval"]["batch_size"] = value
    return encoded


def test_defaults_encode_as_lerobot():
    ours = draccus.encode(TrainPipelineConfig(dataset=DatasetConfig(repo_id="user/dataset")))
    assert _with_eval_batch(ours, 1) == _with_eval_batch(REFERENCE["train_config"], 1)
    assert EvalConfig().batch_size >= 1


@pytest.mark.parametrize("policy_type", ["act", "diffusion"])
def test_validated_config_equals_lerobot_train_config(policy_type, tmp_path):
    reference = REFERENCE["validated"][policy_type]
    config = parse_train_config(reference["flags"])
    assert config.to_dict() == reference["train_config"]
    # Written and read back through train_config.json, as a checkpoint holds it.
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved == json.loads(json.dumps(reference["train_config"]))
    again = TrainPipelineConfig.from_pretrained(tmp_path / "train_config.json")
    assert again.to_dict() == config.to_dict()


def test_presets_and_explicit_optimizer():
    flags = [
        "--dataset.repo_id=u/d",
        "--policy.push_to_hub=false",
        "--policy.device=cpu",
        "--output_dir=/nonexistent/x",
    ]
    act = parse_train_config([*flags, "--policy.type=act"])
    assert act.optimizer == AdamWConfig(lr=1e-5, weight_decay=1e-4) and act.scheduler is None
    assert act.job_name == "act"
    diffusion = parse_train_config([*flags, "--policy.type=diffusion"])
    assert isinstance(diffusion.optimizer, AdamConfig) and diffusion.optimizer.lr == 1e-4
    assert diffusion.scheduler == DiffuserSchedulerConfig(name="cosine", num_warmup_steps=500)
    own = parse_train_config(
        [
            *flags,
            "--policy.type=act",
            "--use_policy_training_preset=false",
            "--optimizer.type=sgd",
            "--optimizer.lr=0.5",
            "--scheduler.type=constant_with_warmup",
            "--scheduler.num_warmup_steps=3",
        ]
    )
    assert own.optimizer.type == "sgd" and own.optimizer.lr == 0.5 and own.scheduler.num_warmup_steps == 3
    with pytest.raises(TrainingConfigError, match="optimizer and scheduler must be set"):
        parse_train_config([*flags, "--policy.type=act", "--use_policy_training_preset=false"])


def test_policy_path_loads_the_checkpoint_config(tmp_path):
    checkpoint = tmp_path / "pretrained_model"
    make_policy_config(
        "act", dim_model=64, chunk_size=10, n_action_steps=10, push_to_hub=False
    ).save_pretrained(checkpoint)
    flags = [
        "--dataset.repo_id=u/d",
        f"--policy.path={checkpoint}",
        "--policy.chunk_size=7",
        f"--output_dir={tmp_path}/out",
    ]
    config = parse_train_config([*flags, "--policy.n_action_steps=7"])
    assert config.policy.type == "act"
    assert (config.policy.dim_model, config.policy.chunk_size) == (64, 7)
    assert config.policy.pretrained_path == checkpoint
    with pytest.raises(TrainingConfigError, match="either --policy.path or --policy.type"):
        parse_train_config([*flags, "--policy.type=act"])


def test_resume_points_at_the_checkpoint(tmp_path):
    flags = [
        "--dataset.repo_id=u/d",
        "--policy.type=act",
        "--policy.push_to_hub=false",
        f"--output_dir={tmp_path}/run",
    ]
    config = parse_train_config([*flags, "--steps=50"])
    pretrained = tmp_path / "run" / "checkpoints" / "000010" / "pretrained_model"
    pretrained.mkdir(parents=True)
    config.save_pretrained(pretrained)
    resumed = parse_train_config(
        ["--resume=true", f"--config_path={pretrained / 'train_config.json'}", "--steps=80"]
    )
    assert resumed.resume and resumed.steps == 80
    assert resumed.checkpoint_path == pretrained.parent
    assert resumed.policy.pretrained_path == pretrained
    # The saved optimizer stands; presets are not applied again.
    assert resumed.optimizer == config.optimizer
    with pytest.raises(TrainingConfigError, match="already exists and resume is false"):
        parse_train_config(["--resume=false", f"--config_path={pretrained}"])
    with pytest.raises(TrainingConfigError, match="resume=true needs --config_path"):
        parse_train_config([*flags, "--resume=true"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--policy.type=act", "--batch_size=zero"], "batch_size.*Couldn't parse 'zero'"),
        (["--policy.type=act", "--no_such_flag=1"], "invalid training options"),
        (["--policy.type=nope"], "invalid training options"),
        ([], "no policy configured"),
        (["--policy.type=act", "--wandb.enable=true"], r"wandb.enable=true \(Weights & Biases"),
        (["--policy.type=act", "--dataset.image_transforms.enable=true"], "torchvision augmentations"),
        (["--policy.type=act", "--dataset.episodes=[1,1]"], "duplicates"),
        (["--policy.type=act", "--policy.push_to_hub=true"], "policy.repo_id is not set"),
        (["--policy.type=act", "--policy.push_to_hub=true", "--policy.repo_id=u/p"], "does not upload"),
        (["--policy.type=act", "--steps=0"], "steps must be positive"),
        (["--policy.type=act", "--eval_steps=10"], "eval_split"),
    ],
)
def test_unusable_configurations_are_typed_errors(flags, message):
    base = ["--dataset.repo_id=u/d", "--output_dir=/nonexistent/run"]
    if "--policy.push_to_hub=true" not in flags and any(f.startswith("--policy.type") for f in flags):
        base.append("--policy.push_to_hub=false")
    with pytest.raises(TrainingConfigError, match=message):
        parse_train_config(base + flags)


def test_bad_config_path_is_a_typed_error(tmp_path):
    with pytest.raises(TrainingConfigError, match="not found"):
        parse_train_config([f"--config_path={tmp_path / 'missing.json'}"])
    (tmp_path / "train_config.json").write_text('{"dataset": {"repo_id": "u/d"}, "surprise": 1}')
    with pytest.raises(TrainingConfigError, match=r"unknown key\(s\) \['surprise'\]"):
        parse_train_config([f"--config_path={tmp_path / 'train_config.json'}"])


def test_help_lists_flags_with_defaults():
    text = format_help()
    for line in (
        "--batch_size=int [8]",
        "--steps=int [100000]",
        "--seed=int [1000]",
        "--num_workers=int [4]",
    ):
        assert line in text
    assert "--dataset.repo_id=str [required]" in text
    assert "--policy.type={act,diffusion} | --policy.path=CHECKPOINT" in text
    assert "--policy.dim_model" not in text
    act = format_help(["--policy.type=act", "--scheduler.type=diffuser"])
    assert "--policy.dim_model=int [512]" in act and "--policy.kl_weight=float [10.0]" in act
    assert "--scheduler.name=str [cosine]" in act
