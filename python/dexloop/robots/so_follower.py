"""The SO-100 / SO-101 follower arm (LeRobot's ``so100_follower`` / ``so101_follower``, class name
``so_follower``) on dexloop's Feetech bus driver.

Six STS3215 servos with LeRobot's names, ids and norm modes (DEGREES for the body with
``use_degrees``, RANGE_M100_100 without; RANGE_0_100 for the gripper), LeRobot's configuration (P/I/D
16/0/32, gripper torque and current limits), ``max_relative_target`` clamping, and its calibration
files. Beyond LeRobot: ``start_loop(fps)`` hands the joints to dexloop's C++ control loop (fixed rate,
safety, watchdog); while it runs, ``get_observation`` reads the loop's newest snapshot and
``send_action`` queues the action for its next tick, so a Python caller never touches the bus.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dexloop._core import control as _control
from dexloop.errors import BusError, CalibrationError, DeviceAlreadyConnectedError, DeviceNotConnectedError
from dexloop.motors import Motor, MotorCalibration, MotorNormMode
from dexloop.motors.feetech import FeetechMotorsBus, OperatingMode
from dexloop.robots.presets import preset
from dexloop.robots.robot import Robot, RobotConfig

logger = logging.getLogger(__name__)


class Camera(Protocol):
    """What a robot needs of a camera (LeRobot's ``Camera``): its size, connect / disconnect, and
    ``read_latest()`` of an (height, width, 3) uint8 RGB frame."""

    height: int
    width: int

    @property
    def is_connected(self) -> bool: ...

    def connect(self) -> None: ...

    def read_latest(self) -> np.ndarray: ...

    def disconnect(self) -> None: ...


@dataclass(kw_only=True)
class SOFollowerConfig(RobotConfig):
    """LeRobot's ``SOFollowerRobotConfig`` (defaults included); ``cameras`` holds camera objects."""

    port: str
    disable_torque_on_disconnect: bool = True
    max_relative_target: float | dict[str, float] | None = None
    cameras: dict[str, Camera] = field(default_factory=dict)
    use_degrees: bool = True
    position_p_coefficient: int = 16
    position_i_coefficient: int = 0
    position_d_coefficient: int = 32
    num_read_retries: int = 2
    type: str = "so101_follower"
    # dexloop only: the allowance beyond a transaction's wire time before it times out (USB adapter
    # latency, servo turnaround; a simulated arm on a busy machine needs more).
    latency_margin_ms: float = 10.0


def ensure_safe_goal_position(
    goal_present_pos: dict[str, tuple[float, float]], max_relative_target: float | dict[str, float]
) -> dict[str, float]:
    """LeRobot's clamp: each goal within ``max_relative_target`` of the present position (a float for
    every joint or a dict with exactly the goal's keys). The arithmetic is the C++ loop's own
    SafetyFilter, so a robot clamps the same whether the loop drives it or ``send_action`` does."""
    if isinstance(max_relative_target, bool) or not isinstance(max_relative_target, float | dict):
        raise TypeError(f"max_relative_target must be a float or a dict, got {max_relative_target!r}")
    if isinstance(max_relative_target, float):
        caps = dict.fromkeys(goal_present_pos, max_relative_target)
    else:
        if set(max_relative_target) != set(goal_present_pos):
            raise ValueError("max_relative_target keys must match those of goal_present_pos.")
        caps = max_relative_target
    keys = list(goal_present_pos)
    goals = np.array([goal_present_pos[key][0] for key in keys], dtype=np.float64)
    present = np.array([goal_present_pos[key][1] for key in keys], dtype=np.float64)
    limits = np.array([caps[key] for key in keys], dtype=np.float64)
    safe_goals = _control.limit_relative_target(goals, present, limits)
    for key, goal, safe_goal in zip(keys, goals, safe_goals, strict=True):
        if abs(safe_goal - goal) > 1e-4:
            logger.warning(
                "Relative goal position magnitude had to be clamped to be safe.\n  %s: requested %s, clamped to %s",
                key,
                goal,
                safe_goal,
            )
    return {key: float(safe_goal) for key, safe_goal in zip(keys, safe_goals, strict=True)}


class SOFollower(Robot):
    """An SO-100 / SO-101 follower on a Feetech bus (``SOFollower(SOFollowerConfig(port=...))``)."""

    config_class = SOFollowerConfig
    name = "so_follower"

    def __init__(self, config: SOFollowerConfig) -> None:
        super().__init__(config)
        self.config = config
        body = MotorNormMode.DEGREES if config.use_degrees else MotorNormMode.RANGE_M100_100
        arm = preset(config.type if config.type.startswith("so10") else "so101_follower")
        self.bus = FeetechMotorsBus(
            port=config.port,
            motors={
                m.name: Motor(m.id, m.model, MotorNormMode.RANGE_0_100 if m.name == "gripper" else body)
                for m in arm.motors
            },
            calibration=self.calibration,
            latency_margin_ms=config.latency_margin_ms,
        )
        self.cameras = dict(config.cameras)
        self.loop: Any = None

    @property
    def _motors_ft(self) -> dict[str, type]:
        return {f"{motor}.pos": float for motor in self.bus.motors}

    @property
    def _cameras_ft(self) -> dict[str, tuple[int, int, int]]:
        return {name: (cam.height, cam.width, 3) for name, cam in self.cameras.items()}

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**self._motors_ft, **self._cameras_ft}

    @property
    def action_features(self) -> dict[str, type]:
        return self._motors_ft

    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected and all(cam.is_connected for cam in self.cameras.values())

    def connect(self, calibrate: bool = True) -> None:
        """Opens the bus (handshake), calibrates when the motors disagree with the calibration file
        (interactively, as LeRobot; or writes the file's calibration when it exists), connects the
        cameras and configures the motors."""
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self} already connected")
        self.bus.connect()
        if not self.is_calibrated:
            if self.calibration:
                # A calibration file the motors do not hold yet (a replaced motor, a reset): LeRobot asks;
                # without a terminal the file wins.
                logger.info("%s: writing the calibration of %s to the motors", self, self.calibration_fpath)
                self.bus.write_calibration(self.calibration)
            elif calibrate:
                self.calibrate()
            else:
                raise CalibrationError(
                    f"{self} is not calibrated and has no calibration file at {self.calibration_fpath}: "
                    "run `connect(calibrate=True)` (or LeRobot's lerobot-calibrate) first."
                )
        for cam in self.cameras.values():
            cam.connect()
        self.configure()
        logger.info("%s connected.", self)

    @property
    def is_calibrated(self) -> bool:
        return bool(self.bus.calibration) and self.bus.is_calibrated

    def calibrate(self) -> None:
        """LeRobot's procedure: middle of the range, then every joint through its range by hand."""
        self.bus.disable_torque()
        for motor in self.bus.motors:
            self.bus.write("Operating_Mode", motor, OperatingMode.POSITION.value)
        input(f"Move {self} to the middle of its range of motion and press ENTER....")
        homing_offsets = self.bus.set_half_turn_homings()
        full_turn_motor = "wrist_roll"
        unknown_range_motors = [motor for motor in self.bus.motors if motor != full_turn_motor]
        print(
            f"Move all joints except '{full_turn_motor}' sequentially through their entire ranges of motion.\n"
            "Recording positions. Press ENTER to stop..."
        )
        range_mins, range_maxes = self.bus.record_ranges_of_motion(unknown_range_motors)
        range_mins[full_turn_motor] = 0
        range_maxes[full_turn_motor] = 4095
        self.calibration = {
            motor: MotorCalibration(
                id=m.id,
                drive_mode=0,
                homing_offset=homing_offsets[motor],
                range_min=range_mins[motor],
                range_max=range_maxes[motor],
            )
            for motor, m in self.bus.motors.items()
        }
        self.bus.write_calibration(self.calibration)
        self._save_calibration()
        print(f"Calibration saved to {self.calibration_fpath}")

    def configure(self) -> None:
        with self.bus.torque_disabled():
            self.bus.configure_motors()
            for motor in self.bus.motors:
                self.bus.write("Operating_Mode", motor, OperatingMode.POSITION.value)
                self.bus.write("P_Coefficient", motor, self.config.position_p_coefficient)
                self.bus.write("I_Coefficient", motor, self.config.position_i_coefficient)
                self.bus.write("D_Coefficient", motor, self.config.position_d_coefficient)
                if motor == "gripper":
                    self.bus.write("Max_Torque_Limit", motor, 500)
                    self.bus.write("Protection_Current", motor, 250)
                    self.bus.write("Overload_Torque", motor, 25)

    # ------------------------------------------------------------------------------------------------
    # Observations and actions

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected.")

    def get_observation(self) -> dict[str, Any]:
        """``{"<motor>.pos": float, <camera>: (H, W, 3) uint8}``: one sync read (or, while the control
        loop runs, its newest snapshot) and each camera's latest frame."""
        self._require_connected()
        if self.loop is not None and self.loop.running:
            obs = self.loop.get_observation()
        else:
            positions = self.bus.sync_read("Present_Position", num_retry=self.config.num_read_retries)
            obs = {f"{motor}.pos": value for motor, value in positions.items()}
        for name, cam in self.cameras.items():
            obs[name] = cam.read_latest()
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Sends ``{"<motor>.pos": goal}`` (clamped by ``max_relative_target``); returns what was sent.
        While the control loop runs, the action is queued for its next tick (the loop applies the
        limits) and returned as given."""
        self._require_connected()
        goal_pos = {
            key.removesuffix(".pos"): float(val) for key, val in action.items() if key.endswith(".pos")
        }
        if self.loop is not None and self.loop.running:
            row = np.array([goal_pos[name] for name in self.loop.motor_names], dtype=np.float32)
            self.loop.push_chunk(row[None], start_timestep=self.loop.timestep + 1)
            return {f"{motor}.pos": val for motor, val in goal_pos.items()}
        if self.config.max_relative_target is not None:
            present_pos = self.bus.sync_read("Present_Position", num_retry=self.config.num_read_retries)
            goal_present_pos = {key: (g_pos, present_pos[key]) for key, g_pos in goal_pos.items()}
            goal_pos = ensure_safe_goal_position(goal_present_pos, self.config.max_relative_target)
        self.bus.sync_write("Goal_Position", goal_pos)
        return {f"{motor}.pos": val for motor, val in goal_pos.items()}

    # ------------------------------------------------------------------------------------------------
    # The C++ control loop

    def start_loop(self, fps: float, **options: Any) -> Any:
        """Hands the joints to a ``dexloop.control.ControlLoop`` at `fps` (options: its keyword
        arguments; ``max_relative_target`` defaults to the config's) and starts it."""
        from dexloop.control import ControlLoop

        self._require_connected()
        if self.loop is not None and self.loop.running:
            raise DeviceAlreadyConnectedError(f"{self}: a control loop already runs")
        options.setdefault("max_relative_target", self.config.max_relative_target)
        self.loop = ControlLoop(self.bus, fps=fps, **options)
        self.loop.start()
        # get_observation reads the loop's snapshot: wait for its first good read (a few ticks).
        deadline = time.monotonic() + max(1.0, 20 / fps)
        while not self.loop.snapshot().present_valid:
            if time.monotonic() > deadline:
                self.loop.stop()
                self.loop.raise_for_faults()
                raise BusError(f"{self}: the control loop read no positions within {max(1.0, 20 / fps):g} s")
            time.sleep(0.001)
        return self.loop

    def stop_loop(self) -> None:
        if self.loop is not None:
            self.loop.stop()

    def disconnect(self) -> None:
        self._require_connected()
        self.stop_loop()
        try:
            self.bus.disconnect(self.config.disable_torque_on_disconnect)
        finally:
            for cam in self.cameras.values():
                if cam.is_connected:
                    cam.disconnect()
        logger.info("%s disconnected.", self)


# LeRobot's type names of the same class.
SO100Follower = SO101Follower = SOFollower
SO100FollowerConfig = SO101FollowerConfig = SOFollowerConfig


__all__ = [
    "Camera",
    "SO100Follower",
    "SO100FollowerConfig",
    "SO101Follower",
    "SO101FollowerConfig",
    "SOFollower",
    "SOFollowerConfig",
    "ensure_safe_goal_position",
]
