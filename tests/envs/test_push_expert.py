"""The scripted expert solves ``so101_push``; a state-only (open-loop mean) behaviour does not."""

from __future__ import annotations

import numpy as np
import pytest

from dexloop.envs import PushExpert, SO101PushEnv, run_expert_episode
from dexloop.envs.baselines import expert_actions, mean_trajectory, open_loop_success, random_policy_success


@pytest.fixture(scope="module")
def env():
    env = SO101PushEnv(obs_type="agent_pos")
    yield env
    env.close()


def test_expert_solves_ten_seeds(env):
    expert = PushExpert()
    results = [run_expert_episode(env, seed, expert) for seed in range(10)]
    assert sum(r["success"] for r in results) >= 9, results
    assert all(r["max_ik_error"] < 0.01 for r in results)  # the planned tool path is reachable
    assert all(r["steps"] < 200 for r in results if r["success"])


def test_expert_actions_are_smooth(env):
    (actions,) = expert_actions([3], env)
    steps = np.abs(np.diff(actions, axis=0))
    assert steps[:, :5].max() < 6.0  # degrees per 1/30 s: no jumps between consecutive goals


def test_state_only_open_loop_fails_where_the_expert_succeeds(env):
    mean = mean_trajectory(expert_actions(range(10), env))
    eval_seeds = range(1000, 1020)
    expert_rate = np.mean([run_expert_episode(env, s)["success"] for s in eval_seeds])
    replay_rate = open_loop_success(mean, eval_seeds, env)
    assert expert_rate >= 0.9
    assert replay_rate <= 0.35, replay_rate
    assert random_policy_success(range(3), env) == 0.0


@pytest.mark.slow
def test_expert_solves_95_percent_of_100_seeds(env):
    expert = PushExpert()
    rate = np.mean([run_expert_episode(env, seed, expert)["success"] for seed in range(100)])
    assert rate >= 0.95, rate
