"""Forward and inverse kinematics and Jacobians of a serial arm described by a URDF, on Pinocchio.

The class keeps LeRobot's ``lerobot.model.kinematics.RobotKinematics`` interface (joint positions in
degrees, poses as 4x4 homogeneous matrices in the URDF's base frame, ``forward_kinematics`` /
``inverse_kinematics(current_joint_pos, desired_ee_pose, position_weight, orientation_weight)``), so
code written for LeRobot's placo-based solver runs on it, and adds the radian-level calls a
controller needs: :meth:`RobotKinematics.fk`, :meth:`RobotKinematics.jacobian` and
:meth:`RobotKinematics.ik` (damped least squares with joint limits, reporting how well it converged).

Pinocchio (``pin`` on PyPI) computes the kinematics; it is a well-kept C++ library whose URDF
parser, frame placements and Jacobians are used by many robotics stacks, so this module only chooses
frames and joints and solves the least-squares problem.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dexloop.errors import KinematicsError

ASSETS = Path(__file__).resolve().parent / "assets"
SO101_URDF = ASSETS / "so101.urdf"
KOCH_URDF = ASSETS / "koch.urdf"
# The tool frame of both descriptions: between the jaw tips.
DEFAULT_TARGET_FRAME = "gripperframe"
# Joints that move the tool frame (the gripper joint moves a jaw, not the frame).
ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")

_REFERENCES = ("local_world_aligned", "world", "local")


def _pin():
    try:
        import pinocchio
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dexloop.kinematics needs Pinocchio: pip install pin (or dexloop's 'sim' extra)"
        ) from error
    return pinocchio


@dataclass(frozen=True)
class IKResult:
    """The outcome of :meth:`RobotKinematics.ik`: joint positions (radians, one per solver joint),
    whether both errors are within tolerance, the final position error (metres), orientation error
    (radians, the angle of the remaining rotation) and the iterations used."""

    q: np.ndarray
    success: bool
    position_error: float
    orientation_error: float
    iterations: int


def pose_matrix(position: Sequence[float], rotation: np.ndarray | None = None) -> np.ndarray:
    """A 4x4 homogeneous pose from a position and an optional 3x3 rotation (identity)."""
    pose = np.eye(4)
    pose[:3, 3] = np.asarray(position, dtype=float)
    if rotation is not None:
        pose[:3, :3] = np.asarray(rotation, dtype=float)
    return pose


class RobotKinematics:
    """Kinematics of the arm in `urdf_path`, for the tool frame `target_frame_name`.

    `joint_names` are the joints the solver uses, in the order of every joint vector this class takes
    and returns (default: every revolute or prismatic joint of the URDF, in tree order). Joints of the
    URDF not listed stay at zero. Poses are expressed in the URDF's root link frame.
    """

    def __init__(
        self,
        urdf_path: str | os.PathLike = SO101_URDF,
        target_frame_name: str = DEFAULT_TARGET_FRAME,
        joint_names: Sequence[str] | None = None,
    ) -> None:
        pin = _pin()
        self.urdf_path = Path(urdf_path)
        if not self.urdf_path.is_file():
            raise KinematicsError(f"robot description {self.urdf_path} does not exist")
        try:
            self.model = pin.buildModelFromUrdf(str(self.urdf_path))
        except (RuntimeError, ValueError) as error:
            raise KinematicsError(f"robot description {self.urdf_path} cannot be loaded: {error}") from None
        self.data = self.model.createData()
        movable = [self.model.names[i] for i in range(1, self.model.njoints)]
        self.joint_names = list(movable if joint_names is None else joint_names)
        if not self.joint_names:
            raise KinematicsError(f"{self.urdf_path}: no joints to solve for")
        unknown = [name for name in self.joint_names if name not in movable]
        if unknown:
            raise KinematicsError(
                f"{self.urdf_path}: no joint named {', '.join(unknown)} (joints: {', '.join(movable)})"
            )
        if len(set(self.joint_names)) != len(self.joint_names):
            raise KinematicsError(f"{self.urdf_path}: joint_names lists a joint twice: {self.joint_names}")
        joints = [self.model.joints[self.model.getJointId(name)] for name in self.joint_names]
        if any(joint.nq != 1 or joint.nv != 1 for joint in joints):
            raise KinematicsError(f"{self.urdf_path}: only one-degree-of-freedom joints are supported")
        self._idx_q = np.array([joint.idx_q for joint in joints])
        self._idx_v = np.array([joint.idx_v for joint in joints])
        self.lower = np.asarray(self.model.lowerPositionLimit, dtype=float)[self._idx_q].copy()
        self.upper = np.asarray(self.model.upperPositionLimit, dtype=float)[self._idx_q].copy()
        self.target_frame_name = target_frame_name
        self._target_frame = self.frame_id(target_frame_name)

    @classmethod
    def so101(cls, joint_names: Sequence[str] | None = ARM_JOINTS) -> RobotKinematics:
        """The SO-101 follower (dexloop's URDF), solving for the five arm joints by default."""
        return cls(SO101_URDF, DEFAULT_TARGET_FRAME, joint_names)

    @classmethod
    def koch(cls, joint_names: Sequence[str] | None = ARM_JOINTS) -> RobotKinematics:
        """The Koch v1.1 follower (dexloop's URDF), solving for the five arm joints by default."""
        return cls(KOCH_URDF, DEFAULT_TARGET_FRAME, joint_names)

    # Frames and joint vectors
    def frame_id(self, name: str) -> int:
        """The Pinocchio frame of a link or fixed frame named `name` (a link wins over a joint of the
        same name, as the SO-101's "gripper" is both)."""
        pin = _pin()
        for frame_type in (pin.BODY, pin.FIXED_JOINT, pin.OP_FRAME, pin.JOINT):
            if self.model.existFrame(name, frame_type):
                return self.model.getFrameId(name, frame_type)
        links = sorted({f.name for f in self.model.frames if f.type == pin.BODY})
        raise KinematicsError(f"{self.urdf_path}: no frame named {name!r} (links: {', '.join(links)})")

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def _full_q(self, q: Sequence[float] | np.ndarray, what: str = "q") -> np.ndarray:
        values = np.asarray(q, dtype=float).reshape(-1)
        if values.shape[0] < self.n_joints:
            raise KinematicsError(
                f"{what} has {values.shape[0]} values; the solver joints are {', '.join(self.joint_names)}"
            )
        values = values[: self.n_joints]
        if not np.all(np.isfinite(values)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]
            raise KinematicsError(f"{what} is not finite for joint {', '.join(bad)}: {values.tolist()}")
        full = np.zeros(self.model.nq)
        full[self._idx_q] = values
        return full

    # Radian-level calls
    def fk(self, q: Sequence[float] | np.ndarray, frame: str | None = None) -> np.ndarray:
        """The 4x4 pose of `frame` (default the target frame) at joint positions `q` (radians)."""
        pin = _pin()
        frame_id = self._target_frame if frame is None else self.frame_id(frame)
        pin.forwardKinematics(self.model, self.data, self._full_q(q))
        return np.array(pin.updateFramePlacement(self.model, self.data, frame_id).homogeneous)

    def frame_poses(self, q: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
        """{link name: 4x4 pose} of every link at `q` (radians)."""
        pin = _pin()
        pin.framesForwardKinematics(self.model, self.data, self._full_q(q))
        return {
            frame.name: np.array(self.data.oMf[i].homogeneous)
            for i, frame in enumerate(self.model.frames)
            if frame.type == pin.BODY
        }

    def jacobian(
        self,
        q: Sequence[float] | np.ndarray,
        frame: str | None = None,
        reference: str = "local_world_aligned",
    ) -> np.ndarray:
        """The 6 x n Jacobian (linear rows first, then angular) of `frame` at `q`, one column per
        solver joint. `reference`: "local_world_aligned" (velocity of the frame's origin, in base-frame
        axes), "world" (spatial velocity at the base origin) or "local" (in the frame's own axes)."""
        pin = _pin()
        if reference not in _REFERENCES:
            raise KinematicsError(f"reference must be one of {', '.join(_REFERENCES)}, got {reference!r}")
        ref = {
            "local_world_aligned": pin.LOCAL_WORLD_ALIGNED,
            "world": pin.WORLD,
            "local": pin.LOCAL,
        }[reference]
        frame_id = self._target_frame if frame is None else self.frame_id(frame)
        full = self._full_q(q)
        pin.computeJointJacobians(self.model, self.data, full)
        pin.updateFramePlacements(self.model, self.data)
        jac = pin.getFrameJacobian(self.model, self.data, frame_id, ref)
        return np.array(jac[:, self._idx_v])

    def ik(
        self,
        target: np.ndarray,
        q0: Sequence[float] | np.ndarray,
        *,
        frame: str | None = None,
        position_weight: float = 1.0,
        orientation_weight: float = 1.0,
        max_iterations: int = 200,
        position_tolerance: float = 1e-5,
        orientation_tolerance: float = 1e-4,
        damping: float = 1e-3,
        max_step: float = 0.2,
    ) -> IKResult:
        """Joint positions (radians) that put `frame` at `target` (a 4x4 pose, or a 3-vector position
        when orientation does not matter), starting from `q0` and staying within the joint limits.

        Damped least squares on the weighted 6-D error (position in metres, rotation as the world-frame
        rotation vector of ``R_target R^T``): each step solves ``(J^T W J + damping^2 I) dq = J^T W e``
        and is capped at `max_step` radians. A target the arm cannot reach exactly (a 5-joint arm asked
        for an arbitrary orientation) converges to the weighted compromise; ``success`` tells whether
        both errors are within tolerance (the orientation error is ignored when its weight is 0)."""
        pin = _pin()
        target = np.asarray(target, dtype=float)
        if target.shape == (3,):
            target = pose_matrix(target)
            orientation_weight = 0.0
        if target.shape != (4, 4) or not np.all(np.isfinite(target)):
            raise KinematicsError(f"target must be a finite 4x4 pose or a 3-vector, got shape {target.shape}")
        if position_weight < 0 or orientation_weight < 0 or position_weight + orientation_weight <= 0:
            raise KinematicsError(
                f"weights must be >= 0 and not both 0, got position {position_weight}, orientation {orientation_weight}"
            )
        frame_id = self._target_frame if frame is None else self.frame_id(frame)
        full = self._full_q(q0, "q0")
        q = np.clip(full[self._idx_q], self.lower, self.upper)
        weights = np.array([position_weight] * 3 + [orientation_weight] * 3)
        p_target = target[:3, 3]
        r_target = target[:3, :3]
        identity = np.eye(self.n_joints)

        def errors(full_q: np.ndarray) -> tuple[np.ndarray, float, float]:
            pin.forwardKinematics(self.model, self.data, full_q)
            placement = pin.updateFramePlacement(self.model, self.data, frame_id)
            e_pos = p_target - placement.translation
            e_rot = pin.log3(r_target @ placement.rotation.T)
            return np.concatenate([e_pos, e_rot]), float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))

        def converged(pos_err: float, rot_err: float) -> bool:
            return pos_err <= position_tolerance and (
                orientation_weight == 0 or rot_err <= orientation_tolerance
            )

        full[self._idx_q] = q
        error, pos_err, rot_err = errors(full)
        iterations = 0
        for iterations in range(1, max_iterations + 1):
            if converged(pos_err, rot_err):
                iterations -= 1
                break
            pin.computeJointJacobians(self.model, self.data, full)
            jac = pin.getFrameJacobian(self.model, self.data, frame_id, pin.LOCAL_WORLD_ALIGNED)[
                :, self._idx_v
            ]
            weighted = jac * weights[:, None]
            dq = np.linalg.solve(
                weighted.T @ weighted + damping**2 * identity, weighted.T @ (weights * error)
            )
            largest = np.max(np.abs(dq))
            if largest > max_step:
                dq *= max_step / largest
            q_new = np.clip(q + dq, self.lower, self.upper)
            step = float(np.max(np.abs(q_new - q)))
            q = q_new
            full[self._idx_q] = q
            error, pos_err, rot_err = errors(full)
            if step < 1e-10:  # stuck at a limit or at the least-squares optimum
                break
        return IKResult(q.copy(), converged(pos_err, rot_err), pos_err, rot_err, iterations)

    # LeRobot's interface (degrees)
    def forward_kinematics(self, joint_pos_deg: Sequence[float] | np.ndarray) -> np.ndarray:
        """LeRobot's ``forward_kinematics``: the target frame's 4x4 pose at joint positions in degrees
        (extra trailing values, such as the gripper, are ignored)."""
        return self.fk(np.deg2rad(np.asarray(joint_pos_deg, dtype=float).reshape(-1)[: self.n_joints]))

    def inverse_kinematics(
        self,
        current_joint_pos: Sequence[float] | np.ndarray,
        desired_ee_pose: np.ndarray,
        position_weight: float = 1.0,
        orientation_weight: float = 0.01,
    ) -> np.ndarray:
        """LeRobot's ``inverse_kinematics``: joint positions in degrees reaching `desired_ee_pose`,
        starting from `current_joint_pos` (degrees); values past the solver joints (the gripper) are
        passed through unchanged."""
        current = np.asarray(current_joint_pos, dtype=float).reshape(-1)
        result = self.ik(
            desired_ee_pose,
            np.deg2rad(current[: self.n_joints]) if current.shape[0] >= self.n_joints else current,
            position_weight=position_weight,
            orientation_weight=orientation_weight,
        )
        out = current.copy()
        out[: self.n_joints] = np.rad2deg(result.q)
        return out


__all__ = [
    "ARM_JOINTS",
    "DEFAULT_TARGET_FRAME",
    "KOCH_URDF",
    "SO101_URDF",
    "IKResult",
    "RobotKinematics",
    "pose_matrix",
]
