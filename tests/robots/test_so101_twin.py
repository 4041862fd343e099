"""The simulated SO-101 twin: LeRobot's SO follower class on dexloop's bus driver, over the servo
simulator's pty, moving the MuJoCo scene's joints; the same goal gives the motion ``dexloop eval``'s
environment gives it, and the control loop drives it like a real arm."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("mujoco")

from dexloop.envs.so101 import STATE_NAMES
from dexloop.envs.so101_push import SO101PushEnv
from dexloop.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError
from dexloop.robots.so101_twin import SO101Twin
from dexloop.robots.so_follower import SOFollower, ensure_safe_goal_position

STEP_DEGREES = 360 / 4095  # one encoder step in the body joints' degrees


def wait_for(condition, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def manual_twin():
    """A twin whose physics the test steps itself (no thread)."""
    twin = SO101Twin().start(physics_thread=False)
    yield twin
    twin.stop()


@pytest.fixture
def robot(manual_twin):
    robot = SOFollower(manual_twin.robot_config())
    robot.connect()
    yield robot
    if robot.is_connected:
        robot.disconnect()


def state_of(obs):
    return np.array([obs[name] for name in STATE_NAMES])


def test_the_robot_connects_with_the_twins_calibration(manual_twin, robot):
    assert robot.is_calibrated
    assert robot.observation_features == {**dict.fromkeys(STATE_NAMES, float), "top": (96, 128, 3)}
    assert robot.action_features == dict.fromkeys(STATE_NAMES, float)
    obs = robot.get_observation()
    assert obs["top"].shape == (96, 128, 3) and obs["top"].dtype == np.uint8
    with pytest.raises(DeviceAlreadyConnectedError):
        robot.connect()


def test_a_goal_moves_the_scene_as_the_env_step_does(manual_twin, robot):
    """The twin (bus -> registers -> physics -> encoders -> bus) against the gymnasium env fed the
    same actions: the same joint angles, bit for bit, and the same readings within an encoder step."""
    env = SO101PushEnv(cameras=("top",))
    try:
        manual_twin.reset(seed=1003)
        env_obs, _ = env.reset(seed=1003)
        twin_state = state_of(robot.get_observation())
        np.testing.assert_allclose(twin_state, env_obs["agent_pos"], atol=STEP_DEGREES * 1.01)
        rng = np.random.default_rng(0)
        for _ in range(20):
            action = env_obs["agent_pos"].astype(np.float64) + rng.uniform(-4, 4, 6)
            robot.send_action(dict(zip(STATE_NAMES, action.tolist(), strict=True)))
            robot.bus.ping(1)  # a round trip after the SYNC_WRITE: the simulator has applied it
            manual_twin.step()
            env_obs, reward, terminated, _, _ = env.step(action.astype(np.float32))
            np.testing.assert_array_equal(manual_twin.env.joint_positions, env.joint_positions)
            assert manual_twin.reward == reward and manual_twin.terminated == terminated
            np.testing.assert_allclose(
                state_of(robot.get_observation()), env_obs["agent_pos"], atol=STEP_DEGREES * 1.01
            )
        np.testing.assert_array_equal(robot.get_observation()["top"], env.render_camera("top"))
    finally:
        env.close()


def test_torque_off_leaves_the_joints_where_they_are(manual_twin, robot):
    manual_twin.reset(seed=1000)
    before = manual_twin.env.joint_positions
    goal = {name: value + 20.0 for name, value in robot.get_observation().items() if name in STATE_NAMES}
    robot.bus.disable_torque()
    robot.bus.sync_write("Goal_Position", {name.removesuffix(".pos"): v for name, v in goal.items()})
    for _ in range(10):
        manual_twin.step()
    # Nothing drives them: only gravity and contacts move them, far less than the 20 degrees asked.
    assert np.abs(manual_twin.env.joint_positions - before).max() < np.deg2rad(5)


def test_max_relative_target_clamps_like_lerobot(manual_twin):
    robot = SOFollower(manual_twin.robot_config(max_relative_target=2.0))
    robot.connect()
    try:
        present = robot.get_observation()
        sent = robot.send_action({name: present[name] + 10.0 for name in STATE_NAMES})
        for name in STATE_NAMES:
            assert sent[name] == pytest.approx(present[name] + 2.0)
    finally:
        robot.disconnect()
    safe = ensure_safe_goal_position({"a": (10.0, 0.0), "b": (-1.0, 0.0)}, {"a": 3.0, "b": 3.0})
    assert safe == {"a": 3.0, "b": -1.0}
    with pytest.raises(TypeError):
        ensure_safe_goal_position({"a": (10.0, 0.0)}, 3)
    with pytest.raises(ValueError, match="keys"):
        ensure_safe_goal_position({"a": (10.0, 0.0)}, {"b": 1.0})


def test_the_clamp_is_lerobots_formula_through_the_loops_safety_filter():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 8))
        goal, present = rng.normal(0, 50, n), rng.normal(0, 50, n)
        caps = rng.uniform(0, 30, n)
        keys = [f"m{i}" for i in range(n)]
        safe = ensure_safe_goal_position(
            {k: (g, p) for k, g, p in zip(keys, goal, present, strict=True)},
            dict(zip(keys, caps, strict=True)),
        )
        # LeRobot's ensure_safe_goal_position: present + clip(goal - present, -cap, cap).
        expected = present + np.clip(goal - present, -caps, caps)
        np.testing.assert_allclose([safe[k] for k in keys], expected, rtol=0, atol=1e-12)
    # Where LeRobot would pass a NaN goal on to the motor, the loop's filter keeps the joint where it is.
    assert ensure_safe_goal_position({"a": (float("nan"), 4.0)}, 1.0) == {"a": 4.0}


def test_the_control_loop_drives_the_twin():
    with SO101Twin() as twin:
        robot = SOFollower(twin.robot_config())
        robot.connect()
        try:
            twin.reset(seed=1001)
            start = twin.env.joint_positions
            loop = robot.start_loop(30, latency_margin_ms=20)
            present = robot.get_observation()
            target = np.array([present[name] for name in STATE_NAMES]) + np.array([15, 0, 0, 0, 0, 0])
            robot.send_action(dict(zip(STATE_NAMES, target.tolist(), strict=True)))
            wait_for(lambda: twin.env.joint_positions[0] - start[0] > np.deg2rad(10), what="the pan to turn")
            # Through the loop the robot reads the loop's snapshot: the same joints the scene has.
            wait_for(
                lambda: abs(robot.get_observation()["shoulder_pan.pos"] - target[0]) < 2.0, what="reading"
            )
            assert loop.counters["read_failures"] == 0 and loop.counters["actions_taken"] == 1
            robot.stop_loop()
        finally:
            robot.disconnect()
    with pytest.raises(DeviceNotConnectedError):
        robot.get_observation()


def test_calibrate_follows_lerobots_procedure(manual_twin, tmp_path, monkeypatch):
    """No calibration file: connect() calibrates as LeRobot's lerobot-calibrate does (middle pose,
    then each joint through its range by hand), writes the motors' registers and the file."""
    import dexloop.motors.motors_bus as motors_bus
    from dexloop.motors.calibration import load_calibration

    robot = SOFollower(manual_twin.robot_config(calibration_dir=tmp_path, id="fresh"))
    assert not robot.calibration
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "")
    sweep = iter([(1500, 2600), (2900, 1100)])  # the hand moves every joint but wrist_roll, twice

    def enter_pressed() -> bool:
        step = next(sweep, None)
        if step is None:
            return True
        for motor_id in (1, 2, 3, 4, 6):
            manual_twin.bus.simulator.set_actual_position(motor_id, step[motor_id % 2])
        return False

    monkeypatch.setattr(motors_bus, "_stdin_enter_pressed", enter_pressed)
    robot.connect()
    try:
        assert prompts and "middle of its range" in prompts[0]
        assert robot.is_calibrated
        saved = load_calibration(tmp_path / "fresh.json")
        assert saved == robot.calibration
        on_motors = robot.bus.read_calibration()
        for name, calibration in saved.items():
            held = on_motors[name]
            assert (held.homing_offset, held.range_min, held.range_max) == (
                calibration.homing_offset,
                calibration.range_min,
                calibration.range_max,
            ), name
        assert (saved["wrist_roll"].range_min, saved["wrist_roll"].range_max) == (0, 4095)
        for name in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "gripper"):
            assert saved[name].range_max - saved[name].range_min > 1000, saved[name]
    finally:
        robot.disconnect()
