"""dexloop.kinematics against MuJoCo's own kinematics: FK, Jacobians, IK round trips, bad input.

The SO-101 is checked against the MuJoCo scene of ``so101_push`` (dexloop's MJCF, a separate file from
the URDF Pinocchio reads), so the two descriptions are known to be the same arm; the Koch against
MuJoCo's reading of the same URDF.
"""

from __future__ import annotations

import numpy as np
import pytest

# dexloop.envs first: it sets MUJOCO_GL (the offscreen backend), which mujoco reads when it loads.
import dexloop.envs.so101_push as so101_push
from dexloop.errors import KinematicsError
from dexloop.kinematics import ARM_JOINTS, KOCH_URDF, SO101_URDF, RobotKinematics, pose_matrix

mujoco = so101_push.mujoco

SO101_LINKS = ["shoulder", "upper_arm", "lower_arm", "wrist", "gripper", "moving_jaw"]


def _pose(xpos: np.ndarray, xmat: np.ndarray) -> np.ndarray:
    return pose_matrix(xpos, np.asarray(xmat).reshape(3, 3))


@pytest.fixture(scope="module")
def so101_scene():
    model = mujoco.MjModel.from_xml_path(str(so101_push.SCENE_XML))
    return model, mujoco.MjData(model)


def _set_arm(model, data, names, q):
    for name, value in zip(names, q, strict=True):
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)


def test_so101_fk_matches_mujoco_bodies_on_random_configurations(so101_scene):
    model, data = so101_scene
    kin = RobotKinematics(SO101_URDF, joint_names=None)  # all six joints, the gripper's too
    assert kin.joint_names == [
        "shoulder_pan",
        "shoulder_lift",
        "elbow_flex",
        "wrist_flex",
        "wrist_roll",
        "gripper",
    ]
    rng = np.random.default_rng(0)
    base = model.body("base").id
    site = model.site("gripperframe").id
    worst = 0.0
    for _ in range(100):
        q = rng.uniform(kin.lower, kin.upper)
        _set_arm(model, data, kin.joint_names, q)
        world_from_base = _pose(data.xpos[base], data.xmat[base])
        base_from_world = np.linalg.inv(world_from_base)
        poses = kin.frame_poses(q)
        for link in SO101_LINKS:
            body = model.body(link).id
            worst = max(
                worst, np.abs(base_from_world @ _pose(data.xpos[body], data.xmat[body]) - poses[link]).max()
            )
        tool = base_from_world @ _pose(data.site_xpos[site], data.site_xmat[site])
        worst = max(worst, np.abs(tool - kin.fk(q)).max())
    assert worst <= 1e-6, worst


def test_so101_jacobian_matches_mujoco_and_finite_differences(so101_scene):
    model, data = so101_scene
    kin = RobotKinematics.so101()
    site = model.site("gripperframe").id
    base = model.body("base").id
    rng = np.random.default_rng(1)
    dofs = [model.joint(name).dofadr[0] for name in ARM_JOINTS]
    for _ in range(20):
        q = rng.uniform(kin.lower, kin.upper)
        _set_arm(model, data, ARM_JOINTS, q)
        jacp = np.zeros((3, model.nv))
        jacr = np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, data, jacp, jacr, site)
        world_rot = data.xmat[base].reshape(3, 3)
        jac = kin.jacobian(q)  # base-frame axes, at the tool's origin
        np.testing.assert_allclose(world_rot @ jac[:3], jacp[:, dofs], atol=1e-9)
        np.testing.assert_allclose(world_rot @ jac[3:], jacr[:, dofs], atol=1e-9)
        # And the linear part is the derivative of fk's position.
        eps = 1e-6
        numeric = np.column_stack(
            [(kin.fk(q + eps * e)[:3, 3] - kin.fk(q - eps * e)[:3, 3]) / (2 * eps) for e in np.eye(5)]
        )
        np.testing.assert_allclose(jac[:3], numeric, atol=1e-7)
    assert kin.jacobian(q, reference="local").shape == (6, 5)
    assert kin.jacobian(q, reference="world").shape == (6, 5)


def test_koch_fk_matches_mujoco_reading_the_same_urdf():
    model = mujoco.MjModel.from_xml_path(str(KOCH_URDF))
    data = mujoco.MjData(model)
    kin = RobotKinematics(KOCH_URDF, joint_names=None)
    poses_checked = 0
    rng = np.random.default_rng(2)
    for _ in range(50):
        q = rng.uniform(kin.lower, kin.upper)
        _set_arm(model, data, kin.joint_names, q)
        poses = kin.frame_poses(q)
        for body in range(1, model.nbody):  # MuJoCo fuses the fixed links into their parents
            name = model.body(body).name
            np.testing.assert_allclose(_pose(data.xpos[body], data.xmat[body]), poses[name], atol=1e-6)
            poses_checked += 1
    assert poses_checked >= 50 * 6


@pytest.mark.parametrize("robot", ["so101", "koch"])
def test_ik_round_trips(robot):
    kin = getattr(RobotKinematics, robot)()
    rng = np.random.default_rng(3)
    successes = 0
    for _ in range(40):
        q = rng.uniform(kin.lower * 0.8, kin.upper * 0.8)
        target = kin.fk(q)
        result = kin.ik(target, q + rng.uniform(-0.3, 0.3, kin.n_joints))
        if result.success:
            successes += 1
            reached = kin.fk(result.q)
            assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) <= 1e-5
            assert np.linalg.norm(reached[:3, :3] - target[:3, :3]) <= 2e-4
            assert np.all(result.q >= kin.lower - 1e-12) and np.all(result.q <= kin.upper + 1e-12)
        assert result.position_error == pytest.approx(np.linalg.norm(kin.fk(result.q)[:3, 3] - target[:3, 3]))
    assert successes >= 38


def test_position_only_ik_and_unreachable_targets():
    kin = RobotKinematics.so101()
    q0 = np.zeros(5)
    point = kin.fk(np.array([0.4, -0.3, 0.6, 0.5, 0.0]))[:3, 3]
    result = kin.ik(point, q0)
    assert result.success and np.linalg.norm(kin.fk(result.q)[:3, 3] - point) <= 1e-5
    far = kin.ik(np.array([2.0, 0.0, 0.0]), q0)  # 2 m away: the arm is half a metre long
    assert not far.success and far.position_error > 1.0


def test_lerobot_degree_interface():
    kin = RobotKinematics.so101()
    q = np.array([0.2, -0.4, 0.7, 0.9, -1.1])
    np.testing.assert_allclose(kin.forward_kinematics(np.rad2deg(q)), kin.fk(q))
    # A trailing gripper value is ignored by FK and passed through by IK, as in LeRobot.
    current = np.concatenate([np.rad2deg(q) + 5.0, [37.0]])
    solution = kin.inverse_kinematics(current, kin.fk(q), orientation_weight=1.0)
    assert solution.shape == (6,) and solution[5] == 37.0
    np.testing.assert_allclose(kin.forward_kinematics(solution), kin.fk(q), atol=1e-5)


def test_bad_input_is_a_kinematics_error(tmp_path):
    kin = RobotKinematics.so101()
    with pytest.raises(KinematicsError, match="has 3 values"):
        kin.fk([0.0, 0.0, 0.0])
    with pytest.raises(KinematicsError, match="not finite for joint elbow_flex"):
        kin.fk([0.0, 0.0, np.nan, 0.0, 0.0])
    with pytest.raises(KinematicsError, match="no frame named 'hand'"):
        kin.fk(np.zeros(5), frame="hand")
    with pytest.raises(KinematicsError, match="4x4 pose or a 3-vector"):
        kin.ik(np.eye(3), np.zeros(5))
    with pytest.raises(KinematicsError, match="reference must be"):
        kin.jacobian(np.zeros(5), reference="body")
    with pytest.raises(KinematicsError, match="no joint named elbow"):
        RobotKinematics(SO101_URDF, joint_names=["elbow"])
    with pytest.raises(KinematicsError, match="does not exist"):
        RobotKinematics(tmp_path / "missing.urdf")
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot name='x'><link name='a'/><joint name='j' type='revolute'>")
    with pytest.raises(KinematicsError, match=r"broken\.urdf cannot be loaded"):
        RobotKinematics(broken)
