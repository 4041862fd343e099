"""A scripted expert for ``so101_push``: end-effector motions turned into joint goals by inverse kinematics.

Every episode has the same structure, so demonstrations are consistent enough for a policy to learn
from a few dozen of them:

1. move the tool (the point between the jaw tips, pointing down) above a point behind the cube, on
   the line from the cube to the target, turning the jaws square to that line;
2. lower it to just above the table;
3. push along the line until the cube's centre reaches the target.

Each segment follows a minimum-jerk profile, so the joint goals are smooth. The plan is made at the
episode's start from the cube's pose (privileged simulator state: the expert, unlike a policy, knows
where the cube is); at every step the tool pose on the plan is solved by
:meth:`dexloop.kinematics.RobotKinematics.ik`, warm-started from the previous solution, and the
answer is given in the follower's ``<motor>.pos`` units like any other action.
"""

from __future__ import annotations

import numpy as np

from dexloop.kinematics import RobotKinematics, pose_matrix

from .so101_push import CUBE_HALF_SIZE, FPS, SO101PushEnv

# The jaws' capsules reach this far ahead of the tool frame along the push direction (metres).
JAW_RADIUS = 0.006
HOVER_HEIGHT = 0.06  # tool height while moving above the table
PUSH_HEIGHT = 0.008  # tool height while pushing: the jaws meet the cube's lower half
STANDOFF = 0.025  # gap between the jaws and the cube before the push
OVERSHOOT = 0.01  # the push aims this far past the target, so the cube's centre gets there
APPROACH_S = 1.4
DESCEND_S = 0.6
PUSH_SPEED = 0.09  # m/s along the push line
SETTLE_S = 0.2

# dexloop's model places the arm's base frame on the table turned a quarter turn about z (the
# published model's arm reaches along its -y); world = BASE_ROTATION @ base.
_BASE_FROM_WORLD = np.linalg.inv(pose_matrix([0.0, 0.0, 0.0], [[0, -1, 0], [1, 0, 0], [0, 0, 1]]))


def _min_jerk(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * s * (10 - 15 * s + 6 * s * s)


def tool_pose(position: np.ndarray, yaw: float) -> np.ndarray:
    """The tool pose (in the arm's base frame) at world `position`, pointing down, with the jaws
    square to the horizontal direction `yaw` (its x axis along it, its y axis up)."""
    push = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    return _BASE_FROM_WORLD @ pose_matrix(position, np.column_stack([push, up, np.cross(push, up)]))


class PushExpert:
    """The scripted expert of ``so101_push``: ``reset(env)`` at each episode's start, then
    ``act()`` once per step gives the action (six ``<motor>.pos`` goals, float32)."""

    def __init__(self, kinematics: RobotKinematics | None = None, gripper: float = 0.0) -> None:
        self.kinematics = kinematics or RobotKinematics.so101()
        self.gripper = gripper  # radians: jaws closed, a pushing paddle
        self._env: SO101PushEnv | None = None
        self._segments: list[tuple[float, np.ndarray, np.ndarray, float, float]] = []
        self._q = np.zeros(self.kinematics.n_joints)
        self._t = 0.0
        self.max_ik_error = 0.0

    def reset(self, env: SO101PushEnv) -> None:
        """Plans the episode from `env`'s state (call right after ``env.reset``)."""
        self._env = env
        q = env.joint_positions
        self._q = q[: self.kinematics.n_joints].copy()
        start_pose = self.kinematics.fk(self._q)
        world_start = np.linalg.inv(_BASE_FROM_WORLD) @ start_pose
        start = world_start[:3, 3]
        x_axis = world_start[:3, 0]
        start_yaw = float(np.arctan2(x_axis[1], x_axis[0]))

        cube, _ = env.cube_pose
        target = env.target_position
        line = target - cube[:2]
        push = line / max(np.linalg.norm(line), 1e-9)
        yaw = float(np.arctan2(push[1], push[0]))
        reach = CUBE_HALF_SIZE + JAW_RADIUS
        behind = cube[:2] - push * (reach + STANDOFF)
        end = target - push * (reach - OVERSHOOT)
        above = np.array([*behind, HOVER_HEIGHT])
        low = np.array([*behind, PUSH_HEIGHT])
        finish = np.array([*end, PUSH_HEIGHT])
        push_s = float(np.linalg.norm(finish - low)) / PUSH_SPEED
        # (duration, from, to, yaw from, yaw to)
        self._segments = [
            (APPROACH_S, start, above, start_yaw, yaw),
            (DESCEND_S, above, low, yaw, yaw),
            (push_s, low, finish, yaw, yaw),
            (SETTLE_S, finish, finish, yaw, yaw),
        ]
        self._t = 0.0
        self.max_ik_error = 0.0

    @property
    def duration_s(self) -> float:
        """How long the plan takes (seconds)."""
        return float(sum(segment[0] for segment in self._segments))

    def pose_at(self, t: float) -> tuple[np.ndarray, float]:
        """The planned tool position (world) and yaw at time `t` (seconds from the episode's start)."""
        for duration, a, b, yaw_a, yaw_b in self._segments:
            if t <= duration:
                s = _min_jerk(t / duration)
                return a + (b - a) * s, yaw_a + (yaw_b - yaw_a) * s
            t -= duration
        _, _, b, _, yaw_b = self._segments[-1]
        return b, yaw_b

    def act(self) -> np.ndarray:
        """The next action, advancing the plan by one control period."""
        if self._env is None:
            raise RuntimeError("PushExpert.act() before reset(env)")
        self._t += 1.0 / FPS
        position, yaw = self.pose_at(self._t)
        result = self.kinematics.ik(tool_pose(position, yaw), self._q, max_iterations=50)
        self.max_ik_error = max(self.max_ik_error, result.position_error)
        self._q = result.q
        goals = np.concatenate([result.q, [self.gripper]])
        return self._env.units.to_motor(goals).astype(np.float32)


def run_expert_episode(env: SO101PushEnv, seed: int, expert: PushExpert | None = None) -> dict:
    """One expert episode on `env` from `seed`: {"success", "steps", "max_ik_error"}."""
    expert = expert or PushExpert()
    env.reset(seed=seed)
    expert.reset(env)
    success = False
    steps = 0
    for steps in range(1, env.episode_length + 1):  # noqa: B007 (reported after the loop)
        _, _, terminated, truncated, info = env.step(expert.act())
        success = bool(info["is_success"])
        if terminated or truncated:
            break
    return {"success": success, "steps": steps, "max_ik_error": expert.max_ik_error}


__all__ = ["PushExpert", "run_expert_episode", "tool_pose"]
