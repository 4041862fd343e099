"""The PushT evaluation case compared with LeRobot 0.6.1, shared by the reference script
(tools/lerobot_reference/make_eval_reference.py, run with LeRobot) and the tests (run with dexloop).

A tiny random-weight ACT for LeRobot's PushT (``pixels_agent_pos``: ``observation.image`` 3 x 96 x 96
and ``observation.state`` 2, action 2) with made-up but fixed dataset statistics. Its ResNet-18
backbone is not stored: every ``model.backbone.*`` tensor gets the value
tests/policies/act_reference_cases.py's ``backbone_tensor`` computes from its key, on both sides.
LeRobot's ``lerobot-eval`` runs it with the arguments of ``EVAL_ARGS``; its eval_info.json is what
``dexloop eval`` must reproduce. LeRobot's ``eval_policy`` also runs it on ``make_countdown_env``, a
scripted env whose episodes end at different steps.

Only numpy (and gymnasium, for the scripted env) here: the module is imported by both interpreters.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

CHECKPOINT = "act_pusht"
ACT_CONFIG = {
    "chunk_size": 10,
    "n_action_steps": 10,
    "dim_model": 16,
    "n_heads": 2,
    "dim_feedforward": 32,
    "n_encoder_layers": 1,
    "n_decoder_layers": 1,
    "use_vae": False,
    "dropout": 0.1,
    "pretrained_backbone_weights": None,
}
INPUTS = {"observation.image": ("VISUAL", (3, 96, 96)), "observation.state": ("STATE", (2,))}
ACTION_DIM = 2
# Three episodes in batches of two: the last batch's second episode is run and dropped, as LeRobot does.
EVAL_ARGS = [
    "--env.type=pusht",
    "--env.episode_length=40",
    "--eval.n_episodes=3",
    "--eval.batch_size=2",
    "--eval.use_async_envs=false",
    "--seed=1000",
]


def dataset_stats() -> dict[str, dict[str, np.ndarray]]:
    """PushT-like statistics (pixels in [0, 512]); actions spread wide so the agent moves about."""
    return {
        "observation.image": {
            "mean": np.full((3, 1, 1), 0.5, dtype=np.float32),
            "std": np.full((3, 1, 1), 0.25, dtype=np.float32),
        },
        "observation.state": {
            "mean": np.array([256.0, 256.0], dtype=np.float32),
            "std": np.array([120.0, 110.0], dtype=np.float32),
        },
        "action": {
            "mean": np.array([250.0, 262.0], dtype=np.float32),
            "std": np.array([160.0, 150.0], dtype=np.float32),
        },
    }


# A scripted environment whose episodes end at different steps, some by success: it checks the
# done-mask arithmetic (an episode's rewards are summed up to one step past its first end), the
# successes read from final_info and the autoreset of sub-envs that finished early, against
# LeRobot's eval_policy on the same env. Its observations are PushT-shaped so the same policy runs.
COUNTDOWN_MAX_STEPS = 12
COUNTDOWN_EPISODES = 5
COUNTDOWN_BATCH = 3
COUNTDOWN_START_SEED = 7


def make_countdown_env():
    """The scripted env in a TimeLimit of COUNTDOWN_MAX_STEPS (gymnasium is in both interpreters)."""
    import gymnasium as gym
    from gymnasium import spaces
    from gymnasium.wrappers import TimeLimit

    class CountdownEnv(gym.Env):
        metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

        def __init__(self):
            self.render_mode = "rgb_array"
            self.observation_space = spaces.Dict(
                {
                    "pixels": spaces.Box(0, 255, (96, 96, 3), dtype=np.uint8),
                    "agent_pos": spaces.Box(0, 512, (2,), dtype=np.float64),
                }
            )
            self.action_space = spaces.Box(0, 512, (2,), dtype=np.float32)

        def _obs(self):
            image = np.zeros((96, 96, 3), dtype=np.uint8)
            image[..., 0] = (self.pos[0] / 2) % 256
            image[::2, :, 1] = 40 * self.t % 256
            image[:, ::3, 2] = self.length * 20
            return {"pixels": image, "agent_pos": self.pos.copy()}

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.length = int(self.np_random.integers(2, 9))  # 2..8 steps; some episodes truncate
            self.success = bool(self.np_random.integers(0, 2))
            self.pos = self.np_random.uniform(50, 450, 2)
            self.t = 0
            return self._obs(), {"is_success": False}

        def step(self, action):
            action = np.asarray(action, dtype=np.float64)
            self.t += 1
            self.pos = 0.5 * self.pos + 0.5 * np.clip(action, 0, 512)
            reward = float(self.t) + float(np.abs(self.pos - 256).sum()) / 1000.0
            terminated = self.t >= self.length
            return self._obs(), reward, terminated, False, {"is_success": terminated and self.success}

        def render(self):
            return self._obs()["pixels"]

    return TimeLimit(CountdownEnv(), max_episode_steps=COUNTDOWN_MAX_STEPS)
