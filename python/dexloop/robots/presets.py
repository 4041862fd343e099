"""The arms dexloop knows: LeRobot's motor names, ids and models for each robot type.

One table for every user of it: the robot classes (:mod:`dexloop.robots`) build their motors buses
from it, the servo simulator (:mod:`dexloop.sim`) its twins, and the benchmarks their buses. Presets
use LeRobot's names: ``so100_follower`` / ``so101_follower`` / ``so100_leader`` / ``so101_leader`` (6 x
sts3215), ``koch_follower`` (xl430-w250 x 2, xl330-m288 x 4), ``koch_leader`` (6 x xl330-m077), and the
legacy ALOHA arms (``aloha_follower``: ViperX 300, ``aloha_leader``: WidowX 250; shoulder and elbow
each have a shadow motor). Short names: ``so100``, ``so101``, ``koch`` and ``aloha`` are the followers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MotorPreset:
    name: str
    id: int
    model: str


@dataclass(frozen=True)
class RobotPreset:
    name: str
    protocol: str  # "feetech", "feetech_scs" or "dynamixel"
    motors: tuple[MotorPreset, ...]
    description: str

    @property
    def motor_names(self) -> list[str]:
        return [motor.name for motor in self.motors]


SO_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
ALOHA_JOINTS = (
    "waist",
    "shoulder",
    "shoulder_shadow",
    "elbow",
    "elbow_shadow",
    "forearm_roll",
    "wrist_angle",
    "wrist_rotate",
    "gripper",
)


def _arm(
    name: str, protocol: str, models: list[str], joints: tuple[str, ...], description: str
) -> RobotPreset:
    motors = tuple(
        MotorPreset(joint, i + 1, model) for i, (joint, model) in enumerate(zip(joints, models, strict=True))
    )
    return RobotPreset(name, protocol, motors, description)


_SO = ["sts3215"] * 6
_KOCH_FOLLOWER = ["xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288"]
_ALOHA_FOLLOWER = ["xm540-w270"] * 7 + ["xm430-w350", "xm430-w350"]
_ALOHA_LEADER = ["xm430-w350"] * 7 + ["xl430-w250", "xc430-w150"]

PRESETS: dict[str, RobotPreset] = {
    preset.name: preset
    for preset in [
        _arm("so100_follower", "feetech", _SO, SO_JOINTS, "SO-100 follower arm: 6 x Feetech STS3215"),
        _arm("so100_leader", "feetech", _SO, SO_JOINTS, "SO-100 leader arm: 6 x Feetech STS3215"),
        _arm("so101_follower", "feetech", _SO, SO_JOINTS, "SO-101 follower arm: 6 x Feetech STS3215"),
        _arm("so101_leader", "feetech", _SO, SO_JOINTS, "SO-101 leader arm: 6 x Feetech STS3215"),
        _arm(
            "koch_follower",
            "dynamixel",
            _KOCH_FOLLOWER,
            SO_JOINTS,
            "Koch v1.1 follower arm: Dynamixel XL430-W250 x 2, XL330-M288 x 4",
        ),
        _arm(
            "koch_leader", "dynamixel", ["xl330-m077"] * 6, SO_JOINTS, "Koch v1.1 leader arm: 6 x XL330-M077"
        ),
        _arm(
            "aloha_follower",
            "dynamixel",
            _ALOHA_FOLLOWER,
            ALOHA_JOINTS,
            "ALOHA follower arm (ViperX 300): XM540-W270 x 7, XM430-W350 x 2",
        ),
        _arm(
            "aloha_leader",
            "dynamixel",
            _ALOHA_LEADER,
            ALOHA_JOINTS,
            "ALOHA leader arm (WidowX 250): XM430-W350 x 7, XL430-W250, XC430-W150",
        ),
    ]
}
ALIASES = {
    "so100": "so100_follower",
    "so101": "so101_follower",
    "koch": "koch_follower",
    "aloha": "aloha_follower",
}


def preset(robot: str) -> RobotPreset:
    """The preset named `robot` (a preset name or one of the short names so100, so101, koch, aloha)."""
    key = ALIASES.get(robot, robot)
    if key not in PRESETS:
        choices = ", ".join([*ALIASES, *PRESETS])
        raise ValueError(f"unknown robot {robot!r}: choose one of {choices}")
    return PRESETS[key]


__all__ = ["ALIASES", "ALOHA_JOINTS", "PRESETS", "SO_JOINTS", "MotorPreset", "RobotPreset", "preset"]
