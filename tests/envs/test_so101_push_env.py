"""The ``so101_push`` environment: spaces, units, servo tracking, seeding, cameras, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from dexloop.envs import ENV_ID, SO101_SIM_CALIBRATION, STATE_NAMES, MotorUnits, SO101PushEnv
from dexloop.envs.so101_push import CUBE_REGION, HOME_QPOS, TARGET_XY
from dexloop.errors import EnvError
from dexloop.motors import MotorNormMode
from dexloop.motors.normalization import normalize_values


@pytest.fixture(scope="module")
def env():
    env = SO101PushEnv()
    yield env
    env.close()


@pytest.fixture(scope="module")
def state_env():
    env = SO101PushEnv(obs_type="agent_pos")
    yield env
    env.close()


def test_registered_with_gymnasium_and_spaces():
    env = gym.make(ENV_ID)
    try:
        observation, info = env.reset(seed=0)
        assert env.spec.max_episode_steps == 300 and env.metadata["render_fps"] == 30
        assert set(observation) == {"agent_pos", "pixels"} and set(observation["pixels"]) == {"top", "wrist"}
        assert observation["agent_pos"].dtype == np.float32 and observation["agent_pos"].shape == (6,)
        for image in observation["pixels"].values():
            assert image.dtype == np.uint8 and image.shape == (96, 128, 3)
        assert env.observation_space.contains(observation)
        assert env.action_space.shape == (6,) and info == {"is_success": False, "distance": info["distance"]}
        frame = env.render()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    finally:
        env.close()


def test_units_are_the_followers(state_env):
    observation, _ = state_env.reset(seed=0)
    # DEGREES for the body: the home pose's angles (to the encoder step), 0..100 for the gripper.
    np.testing.assert_allclose(observation["agent_pos"][:5], np.rad2deg(HOME_QPOS[:5]), atol=0.1)
    lower, upper = SO101_SIM_CALIBRATION["gripper"].range_min, SO101_SIM_CALIBRATION["gripper"].range_max
    assert observation["agent_pos"][5] == pytest.approx(100 * (2047.5 - lower) / (upper - lower), abs=0.1)
    assert (
        SO101_SIM_CALIBRATION["wrist_roll"].range_min == 0
        and SO101_SIM_CALIBRATION["wrist_roll"].range_max == 4095
    )
    # The values are what the bus's normalisation makes of whole encoder steps.
    units = MotorUnits()
    raw = np.rint(units.raw_from_radians(state_env.joint_positions))
    expected = normalize_values(
        [n.removesuffix(".pos") for n in STATE_NAMES],
        raw.tolist(),
        units.modes,
        [4095] * 6,
        SO101_SIM_CALIBRATION,
        True,
    )
    np.testing.assert_array_equal(observation["agent_pos"], np.float32(expected))
    # range_m100_100: the ends of each range are -100 and 100, the gripper's 0 and 100.
    ranges = MotorUnits(use_degrees=False)
    assert ranges.modes[0] is MotorNormMode.RANGE_M100_100 and ranges.modes[5] is MotorNormMode.RANGE_0_100
    lows = ranges.to_motor([-1.91986, -1.74533, -1.69, -1.65806, -np.pi, -0.174533])
    np.testing.assert_allclose(lows, [-100, -100, -100, -100, -100, 0], atol=0.1)
    # Goals round-trip to within an encoder step.
    q = np.array([0.3, -0.2, 0.5, -0.4, 1.0, 0.8])
    for u in (units, ranges):
        np.testing.assert_allclose(u.to_radians(u.to_motor(q)), q, atol=2 * np.pi / 4096)


def test_servos_track_goals_smoothly(state_env):
    observation, _ = state_env.reset(seed=0)
    goal = observation["agent_pos"] + np.array([10, -10, 10, -10, 10, 20], dtype=np.float32)
    trace = []
    for _ in range(30):  # one second
        observation, *_ = state_env.step(goal)
        trace.append(observation["agent_pos"])
    trace = np.array(trace)
    np.testing.assert_allclose(trace[-1], goal, atol=0.5)
    start = trace[0] - (trace[1] - trace[0])
    overshoot = np.max(np.sign(goal - start) * (trace - goal), axis=0)
    assert np.all(overshoot < 1.0), overshoot  # well damped: no ringing past the goal
    # Holding the present position keeps the arm still (gravity is compensated).
    for _ in range(30):
        held, *_ = state_env.step(trace[-1])
    np.testing.assert_allclose(held["agent_pos"], trace[-1], atol=0.3)


def test_seeds_place_the_cube_over_the_region(state_env):
    positions = []
    for seed in range(40):
        state_env.reset(seed=seed)
        positions.append(state_env.cube_pose[0])
    positions = np.array(positions)
    (x0, x1), (y0, y1) = CUBE_REGION
    assert np.all((positions[:, 0] >= x0) & (positions[:, 0] <= x1))
    assert np.all((positions[:, 1] >= y0) & (positions[:, 1] <= y1))
    assert np.ptp(positions[:, 1]) > 0.15  # spread wide: where to push must be seen
    state_env.reset(seed=7)
    first = state_env.cube_pose
    state_env.reset(seed=7)
    np.testing.assert_array_equal(state_env.cube_pose[0], first[0])


def test_cameras_see_the_cube(env):
    def red_pixels(image):
        image = image.astype(int)
        return int(np.sum((image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)))

    (x0, x1), (y0, y1) = CUBE_REGION
    seen = []
    for xy in [(x0, y0), (x0, y1), (x1, y0), (x1, y1), ((x0 + x1) / 2, 0.0)]:
        observation, _ = env.reset(seed=0, options={"cube_xy": xy})
        seen.append(red_pixels(observation["pixels"]["top"]))
    assert min(seen) >= 10, seen  # at every corner of the region the top camera sees the cube
    a, _ = env.reset(seed=0, options={"cube_xy": (x0, y0)})
    b, _ = env.reset(seed=0, options={"cube_xy": (x0, y1)})
    assert np.abs(a["pixels"]["top"].astype(int) - b["pixels"]["top"]).sum() > 0
    again, _ = env.reset(seed=0, options={"cube_xy": (x0, y0)})
    np.testing.assert_array_equal(again["pixels"]["top"], a["pixels"]["top"])  # rendering is deterministic


def test_success_reward_and_termination(state_env):
    observation, _ = state_env.reset(seed=0, options={"cube_xy": TARGET_XY + np.array([0.01, 0.0])})
    _, reward, terminated, truncated, info = state_env.step(observation["agent_pos"])
    assert info["is_success"] and terminated and not truncated and reward == 1.0
    observation, _ = state_env.reset(seed=0)
    steps = 0
    truncated = False
    while not truncated:
        observation, reward, terminated, truncated, info = state_env.step(observation["agent_pos"])
        steps += 1
        assert 0.0 <= reward <= 1.0 and not terminated
    assert steps == 300 and not info["is_success"]


def test_bad_input(state_env):
    state_env.reset(seed=0)
    with pytest.raises(EnvError, match="must hold 6 values"):
        state_env.step(np.zeros(5))
    with pytest.raises(EnvError, match=r"not finite for elbow_flex\.pos"):
        state_env.step([0, 0, np.nan, 0, 0, 0])
    with pytest.raises(EnvError, match=r"the action has no gripper\.pos"):
        state_env.step({name: 0.0 for name in STATE_NAMES[:5]})
    with pytest.raises(EnvError, match="obs_type"):
        SO101PushEnv(obs_type="pixels_only")
    with pytest.raises(EnvError, match="cameras"):
        SO101PushEnv(cameras=("front",))
    with pytest.raises(EnvError, match="image_size"):
        SO101PushEnv(image_size=(0, 128))
    with pytest.raises(EnvError, match="cube_xy"):
        state_env.reset(options={"cube_xy": [0.1]})


def test_close_frees_the_renderers():
    env = SO101PushEnv(image_size=(32, 32))
    env.reset(seed=0)
    env.render()
    assert env._renderer is not None and env._viz_renderer is not None
    env.close()
    env.close()  # twice is fine
    assert env._renderer is None and env._viz_renderer is None


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")
def test_passes_gymnasiums_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ENV_ID, image_size=(32, 40))
    try:
        check_env(env.unwrapped)  # determinism under seeds, spaces, step/reset signatures, render
    finally:
        env.close()
