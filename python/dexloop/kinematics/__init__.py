"""Kinematics of the arms dexloop drives: forward and inverse kinematics and Jacobians from a URDF.

    from dexloop.kinematics import RobotKinematics
    kin = RobotKinematics.so101()                 # the SO-101 follower, five arm joints
    pose = kin.fk([0.0, -0.5, 0.5, 0.8, 0.0])      # 4x4 pose of the tool frame (radians in)
    result = kin.ik(pose, q0=[0.0] * 5)           # IKResult(q, success, errors, iterations)
    jac = kin.jacobian(result.q)                  # 6 x 5, linear rows first

dexloop ships its own URDFs of the SO-101 and the Koch v1.1 followers (joint origins, axes and limits
from the arms' published descriptions). ``forward_kinematics`` / ``inverse_kinematics`` take and give
degrees, as LeRobot's ``RobotKinematics`` does.
"""

from __future__ import annotations

from .robot_kinematics import (
    ARM_JOINTS,
    DEFAULT_TARGET_FRAME,
    KOCH_URDF,
    SO101_URDF,
    IKResult,
    RobotKinematics,
    pose_matrix,
)

__all__ = [
    "ARM_JOINTS",
    "DEFAULT_TARGET_FRAME",
    "KOCH_URDF",
    "SO101_URDF",
    "IKResult",
    "RobotKinematics",
    "pose_matrix",
]
