"""Data order, per-process batches, random-number state and checkpoint folders, against LeRobot
0.6.1 / accelerate (reference values in tests/data/training/sampler.json and rng/)."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support import DATA

from dexloop.datasets.sampler import EpisodeAwareSampler, compute_sampler_state
from dexloop.errors import TrainingStateError
from dexloop.training.checkpoints import (
    get_step_checkpoint_dir,
    load_rng_state,
    load_training_state,
    load_training_step_file,
    save_checkpoint,
    save_rng_state,
    should_save_checkpoint,
    update_last_checkpoint,
)
from dexloop.training.data import ShardedBatchSampler
from dexloop.training.optimizers import AdamConfig

REFERENCE = DATA / "training"
STARTS, ENDS = [0, 7, 19, 20, 33], [7, 19, 20, 33, 45]


@pytest.fixture(scope="module")
def sampler_reference():
    return json.loads((REFERENCE / "sampler.json").read_text())


def test_episode_aware_sampler_orders_equal_lerobot(sampler_reference):
    for case in sampler_reference["samplers"]:
        sampler = EpisodeAwareSampler(STARTS, ENDS, **case["kwargs"])
        assert len(sampler) == case["len"]
        assert [list(sampler) for _ in range(2)] == case["epochs"], case["kwargs"]
    for case in sampler_reference["states"]:
        assert compute_sampler_state(*case["args"]) == case["state"]


def test_shards_equal_accelerate_batch_sampler_shard(sampler_reference):
    for case in sampler_reference["shards"]:
        world = case["num_processes"]
        for rank in range(world):
            sampler = EpisodeAwareSampler(STARTS, ENDS, shuffle=True, seed=1000)
            shard = ShardedBatchSampler(sampler, case["batch_size"], rank, world)
            assert list(shard) == case["batches"][rank], (case["batch_size"], world, rank)
            assert len(shard) == len(case["batches"][rank])


def test_processes_together_see_the_single_process_batches():
    # 2 processes x batch 4 = 1 process x batch 8, step by step (before the epoch's last round).
    single = list(ShardedBatchSampler(EpisodeAwareSampler(STARTS, ENDS, shuffle=True, seed=5), 8))
    ranks = [
        list(ShardedBatchSampler(EpisodeAwareSampler(STARTS, ENDS, shuffle=True, seed=5), 4, r, 2))
        for r in range(2)
    ]
    for step in range(len(single) - 1):
        assert ranks[0][step] + ranks[1][step] == single[step]


def test_single_process_batches_keep_the_short_last_one():
    sampler = EpisodeAwareSampler(STARTS, ENDS, shuffle=False)
    batches = list(ShardedBatchSampler(sampler, 10))
    assert [len(b) for b in batches] == [10, 10, 10, 10, 5]
    assert [index for batch in batches for index in batch] == list(range(45))


def test_rng_state_loads_lerobot_file():
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    load_rng_state(REFERENCE / "rng")
    expected = json.loads((REFERENCE / "rng" / "draws_after_load.json").read_text())
    assert [random.random() for _ in range(3)] == expected["random"]
    assert np.random.rand(3).tolist() == expected["numpy"]
    assert np.random.randn(3).tolist() == expected["numpy_normal"]
    assert torch.rand(3).tolist() == expected["torch"]


def test_rng_state_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    save_rng_state(tmp_path)
    expected = (random.random(), np.random.randn(2).tolist(), torch.randn(2).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    load_rng_state(tmp_path)
    assert (random.random(), np.random.randn(2).tolist(), torch.randn(2).tolist()) == expected
    reference = set(load_file(str(REFERENCE / "rng" / "rng_state.safetensors")))
    ours = set(load_file(str(tmp_path / "rng_state.safetensors")))
    assert ours == reference


def test_checkpoint_tree_and_last_link(tmp_path):
    assert get_step_checkpoint_dir(tmp_path, 100, 5).name == "000005"
    assert get_step_checkpoint_dir(tmp_path, 12_345_678, 5).name == "00000005"
    assert [s for s in range(1, 11) if should_save_checkpoint(s, 4, 10)] == [4, 8, 10]
    assert [s for s in range(1, 11) if should_save_checkpoint(s, 0, 10)] == [10]

    parameter = torch.nn.Parameter(torch.ones(2))
    optimizer = AdamConfig().build([parameter])
    parameter.sum().backward()
    optimizer.step()

    def save_pretrained(folder):
        (folder / "config.json").write_text("{}")

    for step in (2, 4):
        directory = save_checkpoint(
            get_step_checkpoint_dir(tmp_path, 4, step),
            step,
            save_pretrained,
            optimizer,
            num_processes=2,
            batch_size=3,
        )
        update_last_checkpoint(directory)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["000002", "000004", "last"]
    assert (checkpoints / "last").is_symlink() and str((checkpoints / "last").readlink()) == "000004"
    state = checkpoints / "last" / "training_state"
    assert sorted(p.name for p in state.iterdir()) == [
        "optimizer_param_groups.json",
        "optimizer_state.safetensors",
        "rng_state.safetensors",
        "training_step.json",
    ]
    assert json.loads((state / "training_step.json").read_text()) == {
        "step": 4,
        "num_processes": 2,
        "batch_size": 3,
    }
    assert (checkpoints / "000004" / "pretrained_model" / "config.json").is_file()

    fresh = AdamConfig().build([torch.nn.Parameter(torch.ones(2))])
    assert load_training_state(checkpoints / "last", fresh) == 4
    assert fresh.state_dict()["state"][0]["step"].item() == 1.0


def test_failed_save_leaves_the_previous_checkpoint(tmp_path):
    optimizer = AdamConfig().build([torch.nn.Parameter(torch.ones(2))])
    target = get_step_checkpoint_dir(tmp_path, 10, 10)
    save_checkpoint(target, 10, lambda folder: (folder / "config.json").write_text("old"), optimizer)

    def failing(folder):
        (folder / "config.json").write_text("new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, 10, failing, optimizer)
    assert (target / "pretrained_model" / "config.json").read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["000010"]


def test_damaged_training_step_is_a_typed_error(tmp_path):
    optimizer = AdamConfig().build([torch.nn.Parameter(torch.ones(2))])
    target = save_checkpoint(tmp_path / "checkpoints" / "000001", 1, lambda folder: None, optimizer)
    (target / "training_state" / "training_step.json").write_text('{"step": -3}')
    with pytest.raises(TrainingStateError, match="training_step.json: key 'step'"):
        load_training_step_file(target)
    shutil.rmtree(target / "training_state")
    with pytest.raises(TrainingStateError, match="no training_state folder"):
        load_training_state(target, optimizer)
    (tmp_path / "rng").mkdir()
    (tmp_path / "rng" / "rng_state.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(TrainingStateError, match="rng_state.safetensors"):
        load_rng_state(tmp_path / "rng")
