"""``so101_push``: a simulated SO-101 pushes a cube onto a target, seen by a top and a wrist camera.

A gymnasium environment on MuJoCo (``gymnasium.make("dexloop/SO101Push-v0")``). The cube starts at a
random place in a 4 x 20 cm region in front of the arm, so where to push can only be seen, not
remembered: joint states alone do not tell it. The target (a green disc) is fixed.

Observations (``obs_type="pixels_agent_pos"``, LeRobot's layout for simulated envs)::

    {"agent_pos": float32 (6,),                       # <motor>.pos of the follower, LeRobot's units
     "pixels": {"top": uint8 (H, W, 3), "wrist": uint8 (H, W, 3)}}

``obs_type="agent_pos"`` leaves the cameras out (no rendering). Actions are the six ``<motor>.pos``
goals in the same units (:mod:`dexloop.envs.so101`); each is held for one control period (1/fps s) of
the joints' position servos. The reward is the progress of the cube toward the target (1 - distance
/ starting distance, clipped to [0, 1]), 1 once the cube's centre is within ``SUCCESS_RADIUS`` of the
target's; ``info["is_success"]`` says so and the episode terminates, as LeRobot's PushT does. It is
truncated after ``episode_length`` steps (10 s at 30 fps).

Rendering is offscreen (``MUJOCO_GL``: ``osmesa`` on a CPU machine, ``egl`` with a GPU; dexloop sets
``osmesa`` when nothing is set), without shadows, reflections or skybox, at the small sizes policies
use. ``close()`` frees the renderers.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from dexloop.errors import EnvError

from .so101 import JOINT_RANGES, MOTOR_NAMES, STATE_NAMES, MotorUnits

SCENE_XML = Path(__file__).resolve().parent / "assets" / "so101_push.xml"
FPS = 30
EPISODE_LENGTH = 300  # 10 s
SUBSTEPS = 10  # physics steps per control step (timestep 1/300 s)
CAMERAS = ("top", "wrist")
IMAGE_SIZE = (96, 128)  # (height, width)
TASK = "Push the red cube onto the green target."
# Where the cube's centre starts (world x, y ranges, metres) and its yaw range (radians).
CUBE_REGION = ((0.12, 0.16), (-0.10, 0.10))
CUBE_YAW = (-0.35, 0.35)
CUBE_HALF_SIZE = 0.015
TARGET_XY = np.array([0.24, 0.0])
SUCCESS_RADIUS = 0.03
# The arm's starting pose (radians, MOTOR_NAMES order): the tool 12 cm above the table at x = 0.17 m,
# pointing down, jaws closed. Every episode starts from it, so joint states tell nothing of the cube.
HOME_QPOS = np.deg2rad([11.0, -21.2, 17.0, 94.2, -79.0, 0.0])
OBS_TYPES = ("pixels_agent_pos", "agent_pos")


class SO101PushEnv(gym.Env):
    """The ``so101_push`` task. See the module documentation for spaces, reward and success."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        obs_type: str = "pixels_agent_pos",
        render_mode: str | None = "rgb_array",
        image_size: tuple[int, int] = IMAGE_SIZE,
        cameras: tuple[str, ...] | list[str] = CAMERAS,
        use_degrees: bool = True,
        episode_length: int = EPISODE_LENGTH,
        visualization_size: tuple[int, int] = (240, 320),
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise EnvError(f"obs_type must be one of {', '.join(OBS_TYPES)}, got {obs_type!r}")
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        cameras = tuple(cameras)
        unknown = [name for name in cameras if name not in CAMERAS]
        if unknown or not cameras:
            raise EnvError(f"cameras must be a non-empty subset of {', '.join(CAMERAS)}, got {list(cameras)}")
        for what, size in (("image_size", image_size), ("visualization_size", visualization_size)):
            if len(size) != 2 or not all(isinstance(v, int) and 8 <= v <= 2048 for v in size):
                raise EnvError(f"{what} must be (height, width) in 8..2048 pixels, got {size!r}")
        if not isinstance(episode_length, int) or episode_length <= 0:
            raise EnvError(f"episode_length must be a positive number of steps, got {episode_length!r}")
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.image_size = tuple(image_size)
        self.cameras = cameras
        self.episode_length = episode_length
        self.visualization_size = tuple(visualization_size)
        self.units = MotorUnits(use_degrees)
        self.task = TASK
        self.task_description = TASK

        self.model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
        # Offscreen buffers big enough for every renderer of this env.
        self.model.vis.global_.offheight = max(self.image_size[0], self.visualization_size[0])
        self.model.vis.global_.offwidth = max(self.image_size[1], self.visualization_size[1])
        self.data = mujoco.MjData(self.model)
        self._arm_qpos = np.array([self.model.joint(name).qposadr[0] for name in MOTOR_NAMES])
        self._arm_dof = np.array([self.model.joint(name).dofadr[0] for name in MOTOR_NAMES])
        self._cube_qpos = self.model.joint("cube").qposadr[0]
        self._cube_dof = self.model.joint("cube").dofadr[0]
        self._cube_body = self.model.body("cube").id
        self._renderer: mujoco.Renderer | None = None
        self._viz_renderer: mujoco.Renderer | None = None

        low = np.array([self.units.to_motor(self._limits(0))], dtype=np.float32)[0]
        high = np.array([self.units.to_motor(self._limits(1))], dtype=np.float32)[0]
        self.action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        # Readings can pass a joint's limit by a little while it presses against it (MuJoCo's limits
        # are soft), so the observation bounds have a margin of 2% of each range.
        margin = np.float32(0.02) * (high - low)
        agent_pos = spaces.Box(low=low - margin, high=high + margin, dtype=np.float32)
        if obs_type == "agent_pos":
            self.observation_space = spaces.Dict({"agent_pos": agent_pos})
        else:
            h, w = self.image_size
            pixels = spaces.Dict(
                {name: spaces.Box(0, 255, shape=(h, w, 3), dtype=np.uint8) for name in self.cameras}
            )
            self.observation_space = spaces.Dict({"agent_pos": agent_pos, "pixels": pixels})
        self._steps = 0
        self._start_distance = 1.0
        self._success = False

    @staticmethod
    def _limits(side: int) -> np.ndarray:
        return np.array([JOINT_RANGES[name][side] for name in MOTOR_NAMES])

    # State
    @property
    def joint_positions(self) -> np.ndarray:
        """The arm's joint angles (radians, MOTOR_NAMES order)."""
        return self.data.qpos[self._arm_qpos].copy()

    @property
    def cube_pose(self) -> tuple[np.ndarray, float]:
        """The cube's centre (world, metres) and yaw (radians)."""
        quat = self.data.qpos[self._cube_qpos + 3 : self._cube_qpos + 7]
        w, x, y, z = quat
        yaw = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
        return self.data.qpos[self._cube_qpos : self._cube_qpos + 3].copy(), yaw

    @property
    def target_position(self) -> np.ndarray:
        return TARGET_XY.copy()

    def _distance(self) -> float:
        return float(np.linalg.norm(self.data.qpos[self._cube_qpos : self._cube_qpos + 2] - TARGET_XY))

    # Gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = self.np_random
        (x0, x1), (y0, y1) = CUBE_REGION
        if options and "cube_xy" in options:
            xy = np.asarray(options["cube_xy"], dtype=float)
            if xy.shape != (2,) or not np.all(np.isfinite(xy)):
                raise EnvError(f"options['cube_xy'] must be 2 finite numbers, got {options['cube_xy']!r}")
            yaw = float(options.get("cube_yaw", 0.0))
        else:
            xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            yaw = float(rng.uniform(*CUBE_YAW))
        self.data.qpos[self._arm_qpos] = HOME_QPOS
        self.data.ctrl[:] = HOME_QPOS
        self.data.qpos[self._cube_qpos : self._cube_qpos + 3] = [xy[0], xy[1], CUBE_HALF_SIZE]
        self.data.qpos[self._cube_qpos + 3 : self._cube_qpos + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        self._start_distance = max(self._distance(), 1e-6)
        self._success = False
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if isinstance(action, dict):
            missing = [name for name in STATE_NAMES if name not in action]
            if missing:
                raise EnvError(
                    f"the action has no {', '.join(missing)} (it has: {', '.join(map(str, action))})"
                )
            action = [action[name] for name in STATE_NAMES]
        reward, terminated, truncated = self.step_joint_goals(
            self.units.to_radians(np.asarray(action, dtype=np.float64).reshape(-1))
        )
        return self._observation(), reward, terminated, truncated, self._info()

    def step_joint_goals(self, goals: np.ndarray) -> tuple[float, bool, bool]:
        """One control period with the joints' position servos aimed at `goals` (radians): what
        ``step`` does after converting its action, for a caller that holds goals in encoder terms (the
        simulated twin, whose goals arrive as Goal_Position registers). Returns (reward, terminated,
        truncated)."""
        self.data.ctrl[:] = goals
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        self._steps += 1
        distance = self._distance()
        self._success = distance <= SUCCESS_RADIUS
        reward = 1.0 if self._success else float(np.clip(1.0 - distance / self._start_distance, 0.0, 1.0))
        return reward, self._success, self._steps >= self.episode_length

    def _info(self) -> dict:
        return {"is_success": self._success, "distance": self._distance()}

    def _observation(self) -> dict:
        state = self.units.to_motor(self.joint_positions, quantize=True).astype(np.float32)
        if self.obs_type == "agent_pos":
            return {"agent_pos": state}
        return {"agent_pos": state, "pixels": {name: self.render_camera(name) for name in self.cameras}}

    # Rendering
    @staticmethod
    def _make_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
        try:
            renderer = mujoco.Renderer(model, height, width)
        except Exception as error:  # the GL backend's own error types
            # mujoco picks its backend from MUJOCO_GL once, when it is first imported.
            backend = getattr(getattr(mujoco, "gl_context", None), "GLContext", None)
            backend_name = getattr(backend, "__module__", "none")
            raise EnvError(
                f"cannot render offscreen with mujoco's GL backend {backend_name}: {error}. MUJOCO_GL is "
                "read when mujoco is first imported: set MUJOCO_GL=osmesa (CPU, Debian libosmesa6) or "
                "egl (GPU) before importing mujoco, or import dexloop.envs first"
            ) from None
        flags = renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        return renderer

    def render_camera(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """One camera's image (uint8 HWC) at the observation size, or at `size` = (height, width)."""
        if camera not in CAMERAS:
            raise EnvError(f"no camera {camera!r}: cameras are {', '.join(CAMERAS)}")
        if size is None or tuple(size) == self.image_size:
            if self._renderer is None:
                self._renderer = self._make_renderer(self.model, *self.image_size)
            renderer = self._renderer
        else:
            if self._viz_renderer is None or (self._viz_renderer.height, self._viz_renderer.width) != tuple(
                size
            ):
                if self._viz_renderer is not None:
                    self._viz_renderer.close()
                self._viz_renderer = self._make_renderer(self.model, *size)
            renderer = self._viz_renderer
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def render(self) -> np.ndarray | None:
        """The top camera at ``visualization_size`` (for rollout videos)."""
        if self.render_mode is None:
            return None
        return self.render_camera("top", self.visualization_size)

    def close(self) -> None:
        for renderer in (self._renderer, self._viz_renderer):
            if renderer is not None:
                renderer.close()
        self._renderer = None
        self._viz_renderer = None
