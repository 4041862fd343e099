"""A simulated SO-101 follower: one arm seen two ways, moving together.

- **The bytes**: the servo simulator (C++, :mod:`dexloop.sim`) answers on a pty as six STS3215 do. The
  robot class, the C++ control loop and LeRobot's own driver open its port like ``/dev/ttyACM0``,
  write Goal_Position and read Present_Position.
- **The physics and cameras**: the MuJoCo scene ``so101_push`` (:mod:`dexloop.envs.so101_push`) moves
  the joints toward the goals the servos were sent, pushes the cube, and renders the top and wrist
  cameras.

A physics thread couples them once per control period (1/fps of wall-clock time, on absolute
deadlines): it reads every motor's Goal_Position register (what the driver wrote), steps the scene one
control period with the joints' position servos aimed there (the env's own step, so the same goal
gives the same motion as ``dexloop eval``), and writes the joints' new angles back as the motors'
encoder positions (what the driver reads next). The simulator's motors never move by themselves
(infinite time constant): physics owns the joints. With torque off, the servos hold nothing and the
joints stay where physics left them.

    with SO101Twin() as twin:
        robot = SOFollower(twin.robot_config())
        robot.connect()
        twin.reset(seed=1000)          # a new episode: cube placed, arm at home
        obs = robot.get_observation()  # joints over the bus, cameras from the scene
        ...
        twin.is_success

The twin's calibration (``SO101_SIM_CALIBRATION``) is written to the motors' registers and to a
LeRobot calibration file, so a robot connects without calibrating.
"""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.control.pacing import Pacer
from dexloop.envs.so101 import MOTOR_NAMES, SO101_SIM_CALIBRATION, MotorUnits
from dexloop.motors.calibration import save_calibration
from dexloop.robots.so_follower import SOFollowerConfig
from dexloop.sim import SimulatedBus

TWIN_ID = "so101_twin"


class TwinCamera:
    """A camera of the twin's scene with LeRobot's camera calls; frames are rendered when read."""

    def __init__(self, twin: SO101Twin, camera: str) -> None:
        self.twin = twin
        self.camera = camera
        self.height, self.width = twin.env.image_size
        self.fps = twin.fps
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def read(self) -> np.ndarray:
        return self.twin.render(self.camera)

    async_read = read_latest = read

    def disconnect(self) -> None:
        self._connected = False


class SO101Twin:
    """The simulated SO-101 (see the module documentation). ``fps`` is the physics coupling rate
    (the scene's control period: 30 Hz); ``cameras`` and ``image_size`` are the scene's."""

    def __init__(
        self,
        *,
        cameras: tuple[str, ...] = ("top",),
        image_size: tuple[int, int] | None = None,
        episode_length: int | None = None,
    ) -> None:
        from dexloop.envs.so101_push import EPISODE_LENGTH, FPS, IMAGE_SIZE, SO101PushEnv

        self.fps = FPS
        self.env = SO101PushEnv(
            obs_type="pixels_agent_pos",
            render_mode="rgb_array",
            image_size=image_size or IMAGE_SIZE,
            cameras=cameras,
            episode_length=episode_length or EPISODE_LENGTH,
        )
        self.units = MotorUnits(use_degrees=True)
        self.bus = SimulatedBus("so101_follower", time_constant_s=math.inf)
        self._ids = [self.bus.id_of(name) for name in MOTOR_NAMES]
        # One lock for the scene: the physics thread steps it, readers render it.
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._calibration_dir = Path(tempfile.mkdtemp(prefix="dexloop-twin-"))
        self.steps = 0
        self.reward = 0.0
        self.max_reward = 0.0
        self.terminated = False
        self.truncated = False
        self.late_steps = 0

    # ------------------------------------------------------------------------------------------------
    # Life cycle

    @property
    def port(self) -> str:
        return self.bus.port

    def start(self, physics_thread: bool = True) -> SO101Twin:
        """Starts the servo simulator and (unless ``physics_thread`` is False: the caller then calls
        ``step()`` itself, one control period each) the physics thread."""
        self.bus.start()
        for name, calibration in SO101_SIM_CALIBRATION.items():
            self.bus.write(name, "Homing_Offset", calibration.homing_offset)
            self.bus.write(name, "Min_Position_Limit", calibration.range_min)
            self.bus.write(name, "Max_Position_Limit", calibration.range_max)
        save_calibration(SO101_SIM_CALIBRATION, self._calibration_dir / f"{TWIN_ID}.json")
        self.reset(seed=0)
        self._stop.clear()
        if physics_thread:
            self._thread = threading.Thread(target=self._run, name="so101-twin-physics", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.bus.stop()
        self.env.close()

    def __enter__(self) -> SO101Twin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def robot_config(self, **overrides: Any) -> SOFollowerConfig:
        """The ``SOFollowerConfig`` of this arm: its port, calibration and cameras (``use_degrees``, as
        the scene's demonstrations were recorded)."""
        options: dict[str, Any] = {
            "port": self.port,
            "id": TWIN_ID,
            "calibration_dir": self._calibration_dir,
            "cameras": {name: TwinCamera(self, name) for name in self.env.cameras},
            "use_degrees": True,
            # Replies cross the kernel's pty workers, which wait for a core behind physics, rendering and
            # the policy on a busy machine (a control loop shortens this margin while it runs).
            "latency_margin_ms": 200.0,
        }
        options.update(overrides)
        return SOFollowerConfig(**options)

    # ------------------------------------------------------------------------------------------------
    # Episodes

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """A new episode of the scene (cube placed from `seed`, arm at its home pose); the motors'
        encoders and goals are set to the home pose so the arm does not jump."""
        with self._lock:
            self.env.reset(seed=seed, options=options)
            raw = self.units.raw_from_radians(self.env.joint_positions)
            for motor_id, steps in zip(self._ids, raw, strict=True):
                self.bus.simulator.set_actual_position(motor_id, float(steps))
                self.bus.simulator.write_register(motor_id, "Goal_Position", int(np.rint(steps)))
            self.steps = 0
            self.reward = 0.0
            self.max_reward = 0.0
            self.terminated = False
            self.truncated = False

    @property
    def is_success(self) -> bool:
        return self.terminated

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def joint_state(self) -> list[float]:
        """The joints' true angles as ``<motor>.pos`` values (LeRobot's units; not quantised)."""
        with self._lock:
            return self.units.to_motor(self.env.joint_positions).tolist()

    def render(self, camera: str) -> np.ndarray:
        with self._lock:
            return self.env.render_camera(camera)

    def render_view(self) -> np.ndarray:
        """The top camera at the visualisation size (for rollout videos)."""
        with self._lock:
            return self.env.render()

    # ------------------------------------------------------------------------------------------------
    # The physics thread

    def _goals(self) -> np.ndarray | None:
        """Every motor's Goal_Position register in radians; None when torque is off on any of them."""
        simulator = self.bus.simulator
        if not all(simulator.read_register(i, "Torque_Enable") for i in self._ids):
            return None
        raw = [simulator.read_register(i, "Goal_Position") for i in self._ids]
        return self.units.radians_from_raw(raw)

    def step(self) -> None:
        """One control period: the goals on the bus -> the scene -> the encoders."""
        with self._lock:
            goals = self._goals()
            if goals is None:
                goals = self.env.joint_positions  # no torque: nothing holds the joints elsewhere
            if not self.done:
                self.reward, terminated, truncated = self.env.step_joint_goals(goals)
                self.max_reward = max(self.max_reward, self.reward)
                self.terminated |= terminated
                self.truncated |= truncated
                self.steps += 1
            else:
                self.env.step_joint_goals(goals)
            raw = self.units.raw_from_radians(self.env.joint_positions)
            for motor_id, steps in zip(self._ids, raw, strict=True):
                self.bus.simulator.set_actual_position(motor_id, float(steps))

    def _run(self) -> None:
        pacer = Pacer(self.fps, sleep=self._stop.wait)
        while not self._stop.is_set():
            self.step()
            if not pacer.wait():
                self.late_steps += 1


__all__ = ["TWIN_ID", "SO101Twin", "TwinCamera"]
