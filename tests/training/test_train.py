"""The training loop end to end on tiny ACTs: LeRobot's checkpoint tree, exact resume, DDP with two
CPU processes (gloo) against one process, the `dexloop train` command, and bad inputs."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from support import DATA
from training_cases import CAMERA_DATASET, TINY_ACT, as_json, camera_dataset, dataset_flags, state_dataset

from dexloop.cli.train import main as train_main
from dexloop.errors import DatasetError, TrainingConfigError
from dexloop.training.checkpoints import update_last_checkpoint
from dexloop.training.config import TrainPipelineConfig, parse_train_config
from dexloop.training.data import eval_indices, make_train_eval_datasets, split_episodes
from dexloop.training.metrics import read_metrics
from dexloop.training.train import train

__all__ = ["camera_dataset", "state_dataset"]  # fixtures


def test_training_writes_lerobot_checkpoints_and_logs(camera_dataset, tmp_path, capsys):
    # Diffusion Policy on a camera: uint8 frames to float, ImageNet statistics, the preset's Adam and
    # warmup-cosine schedule; LeRobot 0.6.1's lerobot-train gave these losses for the same flags.
    reference = json.loads((DATA / "training" / "lerobot_diffusion_run" / "losses.json").read_text())
    assert reference["dataset"] == as_json(CAMERA_DATASET)
    out = tmp_path / "run"
    config = parse_train_config([*dataset_flags(camera_dataset), *reference["flags"], f"--output_dir={out}"])
    result = train(config)

    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["000001", "000002", "last"]
    assert str((checkpoints / "last").readlink()) == "000002"
    assert result.last_checkpoint == checkpoints / "000002" and result.step == 2
    pretrained = checkpoints / "last" / "pretrained_model"
    assert sorted(p.name for p in pretrained.iterdir()) == [
        "config.json",
        "model.safetensors",
        "policy_postprocessor.json",
        "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
        "policy_preprocessor.json",
        "policy_preprocessor_step_3_normalizer_processor.safetensors",
        "train_config.json",
    ]
    state = checkpoints / "last" / "training_state"
    assert sorted(p.name for p in state.iterdir()) == [
        "optimizer_param_groups.json",
        "optimizer_state.safetensors",
        "rng_state.safetensors",
        "scheduler_state.json",
        "training_step.json",
    ]
    assert json.loads((state / "training_step.json").read_text()) == {
        "step": 2,
        "num_processes": 1,
        "batch_size": 4,
    }
    assert json.loads((state / "scheduler_state.json").read_text())["last_epoch"] == 2
    # The camera is normalised with ImageNet's statistics (dataset.use_imagenet_stats).
    stats = load_file(str(pretrained / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    torch.testing.assert_close(
        stats["observation.images.top.mean"].flatten(), torch.tensor([0.485, 0.456, 0.406])
    )
    # train_config.json holds the features the run filled in and reads back.
    saved = TrainPipelineConfig.from_pretrained(pretrained)
    assert set(saved.policy.input_features) == {"observation.state", "observation.images.top"}
    assert (
        saved.policy.horizon == 8
        and saved.optimizer.type == "adam"
        and saved.scheduler.num_warmup_steps == 500
    )

    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert [r["loss"] for r in records] == pytest.approx(reference["losses"], rel=1e-5)
    # As LeRobot logs it: the lr after the step's scheduler update (warmup from 0 over 500 steps).
    assert [r["lr"] for r in records] == pytest.approx([1e-4 / 500, 2e-4 / 500])
    for record in records:
        assert {"grad_norm", "dataloading_s", "update_s", "samples_per_s"} <= set(record)
        assert 0 <= record["data_wait_share"] < 1
    assert 0 <= result.data_wait_share < 1 and result.samples_per_s > 0
    if result.loss_curve_path is not None:
        assert result.loss_curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    progress = capsys.readouterr().err
    assert "loss=" in progress and "lr=" in progress and "smp/s=" in progress and "data=" in progress
    assert "step:2 " in progress and "data_wait:" in progress


def _metrics(path):
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in read_metrics(path)]


def test_resume_reproduces_the_uninterrupted_run(state_dataset, tmp_path):
    # Dropout and the VAE's sampling draw random numbers every step, and 60 frames in batches of 8
    # end an epoch at step 8: the resumed run must restore generators and data order exactly.
    flags = [
        *dataset_flags(state_dataset),
        *TINY_ACT,
        "--use_policy_training_preset=false",
        "--optimizer.type=adamw",
        "--optimizer.lr=1e-3",
        "--scheduler.type=diffuser",
        "--scheduler.num_warmup_steps=3",
        "--batch_size=8",
        "--steps=12",
        "--save_freq=6",
        "--log_freq=0",
        "--num_workers=0",
    ]
    whole = tmp_path / "whole"
    train(parse_train_config([*flags, f"--output_dir={whole}"]), progress=False)
    expected = _metrics(whole / "metrics.jsonl")
    assert len({lr for _, _, lr, _ in expected}) > 5  # warmup then cosine

    # An interruption after step 9: checkpoint 6 is the last complete one, the log goes to step 9.
    crashed = tmp_path / "crashed"
    shutil.copytree(whole, crashed, symlinks=True)
    shutil.rmtree(crashed / "checkpoints" / "000012")
    update_last_checkpoint(crashed / "checkpoints" / "000006")
    lines = (crashed / "metrics.jsonl").read_text().splitlines()
    (crashed / "metrics.jsonl").write_text("\n".join(lines[:9]) + "\n")
    assert (crashed / "checkpoints" / "last" / "training_state" / "scheduler_state.json").is_file()

    config_path = crashed / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    resumed = parse_train_config(["--resume=true", f"--config_path={config_path}", f"--output_dir={crashed}"])
    result = train(resumed, progress=False)
    assert result.step == 12 and result.steps_run == 6
    assert _metrics(crashed / "metrics.jsonl") == expected
    for name in ("model.safetensors",):
        ours = load_file(str(crashed / "checkpoints" / "000012" / "pretrained_model" / name))
        theirs = load_file(str(whole / "checkpoints" / "000012" / "pretrained_model" / name))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_two_processes_give_the_single_process_loss_curve(state_dataset, tmp_path):
    # Without random draws in the model (no dropout, no VAE) and without padded actions (chunk 1),
    # the global batch's loss and gradients are the same sums in another order. 60 frames in global
    # batches of 6: epochs of 10 steps, so step 11 starts a new permutation.
    flags = [
        *dataset_flags(state_dataset),
        *TINY_ACT,
        "--policy.chunk_size=1",
        "--policy.n_action_steps=1",
        "--policy.dropout=0",
        "--policy.use_vae=false",
        "--steps=12",
        "--save_freq=0",
        "--log_freq=0",
        "--num_workers=0",
    ]
    single = tmp_path / "single"
    train(parse_train_config([*flags, "--batch_size=6", f"--output_dir={single}"]), progress=False)
    double = tmp_path / "double"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "dexloop.cli.train",
        *flags,
        "--batch_size=3",
        f"--output_dir={double}",
    ]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    one = read_metrics(single / "metrics.jsonl")
    two = read_metrics(double / "metrics.jsonl")
    assert [r["step"] for r in two] == list(range(1, 13))
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), a["step"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), a["step"]
    last = double / "checkpoints" / "last" / "training_state" / "training_step.json"
    assert json.loads(last.read_text()) == {"step": 12, "num_processes": 2, "batch_size": 3}


def test_train_command(state_dataset, tmp_path, capsys):
    assert train_main(["--help", "--policy.type=act"]) == 0
    assert "--policy.dim_model=int [512]" in capsys.readouterr().out

    assert train_main([*dataset_flags(state_dataset), *TINY_ACT, "--batch_size=zero"]) == 2
    assert "batch_size" in capsys.readouterr().err

    out = tmp_path / "run"
    flags = [*dataset_flags(state_dataset), *TINY_ACT, "--batch_size=4", "--steps=2", "--num_workers=0"]
    assert train_main([*flags, f"--output_dir={out}"]) == 0
    printed = capsys.readouterr().out
    assert f"last checkpoint: {out}/checkpoints/000002" in printed and "waiting for data" in printed
    # The output folder is never reused by a new run.
    assert train_main([*flags, f"--output_dir={out}"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_dataset_without_stats_is_a_typed_error(state_dataset, tmp_path):
    copy = tmp_path / "no_stats"
    shutil.copytree(state_dataset, copy)
    (copy / "meta" / "stats.json").unlink()
    config = parse_train_config(
        [*dataset_flags(copy), *TINY_ACT, "--steps=1", f"--output_dir={tmp_path}/run"]
    )
    with pytest.raises(DatasetError, match="stats.json"):
        train(config, progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_held_out_episodes_and_loss(state_dataset, tmp_path):
    # LeRobot's split: per task, the last ceil(n * eval_split) episodes are held out.
    assert split_episodes([["a"], ["b"], ["a"], ["a"]], [0, 1, 2, 3], 0.5) == ([0], [2, 3, 1])
    with pytest.raises(TrainingConfigError, match="leaves no training episode"):
        split_episodes([["a"]], [0], 0.5)

    out = tmp_path / "run"
    flags = [*dataset_flags(state_dataset), *TINY_ACT, "--batch_size=4", "--steps=4", "--num_workers=0"]
    config = parse_train_config([*flags, "--dataset.eval_split=0.4", "--eval_steps=2", f"--output_dir={out}"])
    trainer_datasets = make_train_eval_datasets(config)
    # Episodes 0 and 2 perform "pick the cube", 1 "place the cube": one of each task held out.
    assert trainer_datasets[0].episodes == [0] and sorted(trainer_datasets[1].episodes) == [1, 2]
    assert len(eval_indices(trainer_datasets[1], 6)) == 6
    train(config, progress=False)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if "eval_loss" in r] == [2, 4]
    assert all(math.isfinite(r["eval_loss"]) for r in records if "eval_loss" in r)
