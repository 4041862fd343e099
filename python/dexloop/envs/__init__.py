"""Simulated robots for learning without an arm: a MuJoCo SO-101 follower and its tasks.

    import gymnasium as gym
    import dexloop.envs                                   # registers the environments
    env = gym.make("dexloop/SO101Push-v0")                # or dexloop.envs.SO101PushEnv(...)
    observation, info = env.reset(seed=0)                 # {"agent_pos", "pixels": {"top", "wrist"}}

``so101_push`` (:mod:`dexloop.envs.so101_push`): push a cube, which starts anywhere in a region in
front of the arm, onto a target; observations and actions in the units of LeRobot's SO-101 follower
(:mod:`dexloop.envs.so101`). :mod:`dexloop.envs.expert` is a scripted expert driving the tool through
:mod:`dexloop.kinematics`; :func:`record_demonstrations` records it into a LeRobot dataset.

Needs ``mujoco``, ``gymnasium`` and ``pin`` (Pinocchio); offscreen rendering uses ``MUJOCO_GL``
(``osmesa`` by default here, ``egl`` on a GPU machine).
"""

from __future__ import annotations

import gymnasium as gym

from .expert import PushExpert, run_expert_episode
from .record import dataset_features, record_demonstrations
from .so101 import MOTOR_NAMES, SO101_SIM_CALIBRATION, STATE_NAMES, MotorUnits
from .so101_push import EPISODE_LENGTH, FPS, TASK, SO101PushEnv

ENV_ID = "dexloop/SO101Push-v0"
# LeRobot's features_map of the env's observations (as its EnvConfig subclasses declare them).
FEATURES_MAP = {
    "action": "action",
    "agent_pos": "observation.state",
    "pixels/top": "observation.images.top",
    "pixels/wrist": "observation.images.wrist",
}

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="dexloop.envs.so101_push:SO101PushEnv",
        max_episode_steps=EPISODE_LENGTH,
    )

__all__ = [
    "ENV_ID",
    "EPISODE_LENGTH",
    "FEATURES_MAP",
    "FPS",
    "MOTOR_NAMES",
    "SO101_SIM_CALIBRATION",
    "STATE_NAMES",
    "TASK",
    "MotorUnits",
    "PushExpert",
    "SO101PushEnv",
    "dataset_features",
    "record_demonstrations",
    "run_expert_episode",
]
