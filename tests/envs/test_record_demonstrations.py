"""record_demonstrations: expert episodes into a LeRobot dataset that dexloop's reader reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dexloop.envs.record as record_module
from dexloop.datasets import LeRobotDataset
from dexloop.envs import STATE_NAMES, TASK, PushExpert, SO101PushEnv, record_demonstrations
from dexloop.errors import DatasetExistsError, EnvError

SIZE = (64, 80)


def test_records_expert_episodes(tmp_path):
    root = tmp_path / "so101_push"
    summary = record_demonstrations("dexloop/so101_push", root, 2, seed=5, image_size=SIZE, progress=False)
    assert summary["episodes"] == 2 and summary["failed_seeds"] == [] and summary["next_seed"] == 7
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["fps"] == 30 and info["robot_type"] == "so101_follower" and info["total_episodes"] == 2
    assert info["features"]["observation.state"]["names"] == STATE_NAMES
    assert info["features"]["observation.images.wrist"]["dtype"] == "video"
    assert info["features"]["observation.images.top"]["shape"] == [64, 80, 3]

    dataset = LeRobotDataset("dexloop/so101_push", root=root)
    assert len(dataset) == summary["frames"]
    # The states and actions are the ones a fresh run of the same seed produces.
    env = SO101PushEnv(image_size=SIZE)
    expert = PushExpert()
    observation, _ = env.reset(seed=5)
    expert.reset(env)
    length = int(dataset.meta.episodes["length"][0])
    states, actions, tops = [], [], []
    for _ in range(length):
        action = expert.act()
        states.append(observation["agent_pos"])
        actions.append(action)
        tops.append(observation["pixels"]["top"])
        observation, _, terminated, _, info = env.step(action)
    env.close()
    assert terminated and info["is_success"]  # episodes end at the expert's success
    for index in (0, length // 2, length - 1):
        item = dataset[index]
        np.testing.assert_array_equal(item["observation.state"].numpy(), states[index])
        np.testing.assert_array_equal(item["action"].numpy(), actions[index])
        assert item["task"] == TASK
        image = item["observation.images.top"]
        assert tuple(image.shape) == (3, 64, 80)
        decoded = (image.permute(1, 2, 0).numpy() * 255).astype(np.float64)
        assert np.abs(decoded - tops[index]).mean() < 12  # lossy video, the same picture
    assert int(dataset[length]["episode_index"]) == 1


def test_failed_attempts_are_skipped(tmp_path, monkeypatch):
    class FirstAttemptFails(PushExpert):
        attempts = 0

        def reset(self, env):
            super().reset(env)
            FirstAttemptFails.attempts += 1
            self.failing = FirstAttemptFails.attempts == 1

        def act(self):
            action = super().act()
            if self.failing:  # stay at home: the cube is never pushed
                return self._env.units.to_motor(self._env.joint_positions).astype(np.float32)
            return action

    monkeypatch.setattr(record_module, "PushExpert", FirstAttemptFails)
    monkeypatch.setattr(record_module.SO101PushEnv, "__init__", _short_episodes(SO101PushEnv.__init__))
    summary = record_demonstrations("x/y", tmp_path / "d", 1, seed=3, image_size=SIZE, progress=False)
    assert summary["failed_seeds"] == [3] and summary["episodes"] == 1 and summary["next_seed"] == 5
    dataset = LeRobotDataset("x/y", root=tmp_path / "d")
    assert dataset.num_episodes == 1 and len(dataset) == summary["frames"]


def _short_episodes(init):
    def wrapped(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "episode_length": 120})

    return wrapped


def test_bad_arguments(tmp_path):
    with pytest.raises(EnvError, match="n_episodes"):
        record_demonstrations("x/y", tmp_path / "a", 0, progress=False)
    (tmp_path / "b").mkdir()
    with pytest.raises(DatasetExistsError):
        record_demonstrations("x/y", tmp_path / "b", 1, image_size=SIZE, progress=False)
