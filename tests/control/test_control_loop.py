"""dexloop.control.ControlLoop on the servo simulator: the C++ loop drives FeetechMotorsBus and
DynamixelMotorsBus over a pty, and the simulator's registers show what reached the motors.

Nothing here asserts a duration: conditions are awaited with generous deadlines (the loop keeps
ticking on a loaded machine, only later), and each test checks values, counters and faults.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import dexloop._core as core
from dexloop.control import ControlLoop
from dexloop.errors import (
    BusError,
    BusProtocolError,
    BusTimeoutError,
    CalibrationError,
    ControlLoopFaultError,
    DeviceNotConnectedError,
    DexloopError,
    SafetyLimitError,
)
from dexloop.motors import Motor, MotorCalibration, MotorNormMode
from dexloop.motors.dynamixel import DynamixelMotorsBus
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.robots.presets import preset

sim = core.sim
KOCH_MODELS = [motor.model for motor in preset("koch_follower").motors]
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
M100, R100, DEG = MotorNormMode.RANGE_M100_100, MotorNormMode.RANGE_0_100, MotorNormMode.DEGREES
LATENCY_MARGIN_MS = 100
FPS = 100


def wait_for(condition, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def calibration(drive_modes=(0, 1, 0, 0, 1, 0)):
    return {
        name: MotorCalibration(i + 1, drive_modes[i], 0, 1000 + 10 * i, 3000 - 10 * i)
        for i, name in enumerate(NAMES)
    }


def motors(models=("sts3215",) * 6, body=M100):
    return {
        name: Motor(i + 1, models[i], R100 if name == "gripper" else body) for i, name in enumerate(NAMES)
    }


@pytest.fixture
def so_bus(so101):
    bus = FeetechMotorsBus(so101.port, motors(), calibration(), latency_margin_ms=LATENCY_MARGIN_MS)
    bus.connect()
    yield bus
    if bus.is_connected:
        bus.disconnect(disable_torque=False)


def goal_registers(simulator):
    return [simulator.read_register(i, "Goal_Position") for i in range(1, 7)]


def expected_raw(bus, action):
    """What the Python bus's own normalisation writes for `action` (the reference path)."""
    raw = bus._unnormalize({i + 1: float(v) for i, v in enumerate(action)})
    return [raw[i] for i in range(1, 7)]


def run_until_taken(loop, count):
    wait_for(lambda: loop.counters["actions_taken"] >= count, what=f"{count} actions taken")


# --- Actions reach the motors ---------------------------------------------------------------------


def test_chunk_actions_become_goal_registers_feetech(so101, so_bus):
    chunk = np.array([[10, 20, -30, 0, 5, 50], [12, 22, -28, 2, 7, 52], [14, 24, -26, 4, 9, 54]], np.float32)
    with ControlLoop(so_bus, fps=FPS) as loop:
        assert loop.push_chunk(chunk, start_timestep=0) == 3
        run_until_taken(loop, 3)
        assert loop.timestep == 2 and loop.queue_depth == 0
        snapshot = loop.snapshot()
        assert snapshot.action_timestep == 2 and snapshot.goal_valid and snapshot.present_valid
        np.testing.assert_allclose(snapshot.goal, chunk[-1], rtol=0, atol=1e-5)
    # The C++ normalisation (drive mode applied in software on Feetech) writes what the Python bus would.
    assert goal_registers(so101) == expected_raw(so_bus, chunk[-1])
    stats = loop.stats()
    assert stats["actions_taken"] == 3 and stats["reads_ok"] >= 3 and stats["read_failures"] == 0
    assert stats["lateness"]["count"] == stats["ticks"] and stats["action_age"]["count"] == 3
    assert 0 <= stats["lateness"]["p50_us"] <= stats["lateness"]["p99_us"] <= stats["lateness"]["max_us"]


def test_positions_match_the_python_bus(so101, so_bus):
    for i, steps in enumerate([1200, 1500, 2048, 2500, 2900, 1100], start=1):
        so101.write_register(i, "Present_Position", steps)
    expected = so_bus.sync_read("Present_Position")
    with ControlLoop(so_bus, fps=FPS, write_goals=False) as loop:
        wait_for(lambda: loop.snapshot().present_valid, what="a first read")
        observation = loop.get_observation()
    assert observation == {f"{name}.pos": expected[name] for name in NAMES}


def test_dynamixel_loop_leaves_drive_mode_to_the_servos(koch):
    bus = DynamixelMotorsBus(
        koch.port, motors(KOCH_MODELS), calibration(), latency_margin_ms=LATENCY_MARGIN_MS
    )
    bus.connect()
    try:
        action = np.array([-40, 30, 20, -10, 0, 25], np.float32)
        with ControlLoop(bus, fps=FPS) as loop:
            loop.push_chunk(action, start_timestep=0)
            run_until_taken(loop, 1)
        assert goal_registers(koch) == expected_raw(bus, action)
    finally:
        bus.disconnect(disable_torque=False)


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("latest_only", 10.0), ("weighted_average", 7.0), ("average", 5.0), ("conservative", 3.0)],
)
def test_overlapping_chunks_are_aggregated(so101, so_bus, aggregate, expected):
    loop = ControlLoop(so_bus, fps=FPS, aggregate_fn_name=aggregate)
    loop.push_chunk(np.zeros((4, 6), np.float32), start_timestep=0)
    loop.push_chunk(np.full((4, 6), 10.0, np.float32), start_timestep=0)
    with loop:
        run_until_taken(loop, 1)
    np.testing.assert_allclose(loop.snapshot().goal, [expected] * 6, atol=1e-4)


def test_stale_actions_are_dropped(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS) as loop:
        loop.push_chunk(np.zeros((3, 6), np.float32), start_timestep=0)
        run_until_taken(loop, 3)
        # A chunk predicted from timestep 1: its first two actions are for executed timesteps.
        assert loop.push_chunk(np.ones((4, 6), np.float32), start_timestep=1) == 2
        run_until_taken(loop, 5)
    assert loop.counters["actions_dropped_stale"] == 2 and loop.timestep == 4


# --- The loop owns its bus -----------------------------------------------------------------------


def test_bus_is_refused_to_others_while_the_loop_runs(so101, so_bus):
    loop = ControlLoop(so_bus, fps=FPS)
    loop.start()
    try:
        assert so_bus.servo_bus.claimed
        with pytest.raises(BusError, match="control loop drives this bus"):
            so_bus.sync_read("Present_Position")
        with pytest.raises(BusError, match="control loop drives this bus"):
            so_bus.write("Goal_Position", "gripper", 10)
        with pytest.raises(BusError, match="control loop drives this bus"):
            so_bus.servo_bus.close()
        second = ControlLoop(so_bus, fps=FPS)
        with pytest.raises(DexloopError, match="already driven by another control loop"):
            second.start()
    finally:
        loop.stop()
    assert not so_bus.servo_bus.claimed
    assert set(so_bus.sync_read("Present_Position")) == set(NAMES)


# --- Faults: the loop keeps ticking, the arm holds, the fault is reported ------------------------


def test_vanished_motor_is_a_bus_fault_that_names_it_and_recovers(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS, bus_fault_ticks=3) as loop:
        loop.push_chunk(np.full((1, 6), 5.0, np.float32), start_timestep=0)
        run_until_taken(loop, 1)
        so101.vanish(3)
        wait_for(lambda: "bus_fault" in loop.faults, what="a bus fault")
        with pytest.raises(BusTimeoutError, match="'elbow_flex' \\(id 3\\): .*no status packet from motor 3"):
            loop.raise_for_faults()
        # While the fault lasts, the loop keeps its ticks and takes no action: the goal holds.
        held = loop.counters["held_ticks"]
        loop.push_chunk(np.full((50, 6), 30.0, np.float32), start_timestep=loop.timestep + 1)
        wait_for(lambda: loop.counters["held_ticks"] >= held + 5, what="held ticks")
        assert loop.counters["actions_taken"] == 1
        so101.reappear(3)
        wait_for(lambda: not loop.faults, what="the fault to clear")
        loop.raise_for_faults()
        run_until_taken(loop, 2)
    assert loop.counters["fault_onsets"]["bus_fault"] == 1


def test_corrupt_replies_are_a_protocol_fault(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS, bus_fault_ticks=2) as loop:
        wait_for(lambda: loop.counters["reads_ok"] > 0, what="a first read")
        so101.corrupt_replies(4, sim.UNTIL_CLEARED)
        wait_for(lambda: "bus_fault" in loop.faults, what="a bus fault")
        with pytest.raises(BusProtocolError, match="motor 'wrist_flex' \\(id 4\\): .*corrupt status packet"):
            loop.raise_for_faults()
        so101.clear_faults()
        wait_for(lambda: not loop.faults, what="the fault to clear")
    assert loop.counters["read_failures"] >= 2


def test_a_few_lost_replies_are_not_a_fault(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS, bus_fault_ticks=3) as loop:
        wait_for(lambda: loop.counters["reads_ok"] > 0, what="a first read")
        so101.drop_replies(2, 2)  # two failed reads in a row: one short of a fault
        wait_for(lambda: loop.counters["read_failures"] >= 2 and loop.counters["reads_ok"] > 5, what="reads")
        assert loop.counters["fault_onsets"]["bus_fault"] == 0


def test_disable_torque_on_fault_then_enable(so101, so_bus):
    so_bus.enable_torque()
    with ControlLoop(so_bus, fps=FPS, on_fault="disable_torque") as loop:
        wait_for(lambda: loop.counters["reads_ok"] > 0, what="a first read")
        so101.vanish(6)
        wait_for(lambda: loop.counters["torque_off_writes"] >= 1, what="torque off")
        so101.reappear(6)
        wait_for(lambda: not loop.faults, what="the fault to clear")
        # Torque stays off until asked for, so the arm does not jump back by itself.
        time.sleep(0.05)
        assert [so101.read_register(i, "Torque_Enable") for i in range(1, 6)] == [0] * 5
        assert not loop.snapshot().torque_enabled
        loop.enable_torque()
        wait_for(lambda: loop.snapshot().torque_enabled, what="torque on")
    assert [so101.read_register(i, "Torque_Enable") for i in range(1, 7)] == [1] * 6


def test_estop_turns_torque_off(so101, so_bus):
    so_bus.enable_torque()
    with ControlLoop(so_bus, fps=FPS) as loop:
        loop.push_chunk(np.full((200, 6), 3.0, np.float32), start_timestep=0)
        run_until_taken(loop, 1)
        loop.estop()
        wait_for(lambda: "estop" in loop.faults, what="the e-stop")
        with pytest.raises(ControlLoopFaultError, match="e-stop"):
            loop.raise_for_faults()
        taken = loop.counters["actions_taken"]
        time.sleep(0.05)
        assert loop.counters["actions_taken"] == taken
    assert [so101.read_register(i, "Torque_Enable") for i in range(1, 7)] == [0] * 6


def test_action_timeout_holds_the_arm(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS, action_timeout_s=0.05) as loop:
        loop.push_chunk(np.full((2, 6), 4.0, np.float32), start_timestep=0)
        wait_for(lambda: "action_timeout" in loop.faults, what="an action timeout")
        with pytest.raises(ControlLoopFaultError, match="no fresh action"):
            loop.raise_for_faults()
        held_goal = goal_registers(so101)
        loop.push_chunk(np.full((2, 6), 6.0, np.float32), start_timestep=loop.timestep + 1)
        wait_for(lambda: "action_timeout" not in loop.faults, what="a fresh action")
        run_until_taken(loop, 3)
    assert held_goal == expected_raw(so_bus, [4.0] * 6)


# --- Safety --------------------------------------------------------------------------------------


def test_max_relative_target_clamps_goals(so101, so_bus):
    present = so_bus.sync_read("Present_Position")
    with ControlLoop(so_bus, fps=FPS, max_relative_target={"shoulder_pan": 2.0, "elbow_flex": 1.0}) as loop:
        loop.push_chunk(np.full((1, 6), 40.0, np.float32), start_timestep=0)
        run_until_taken(loop, 1)
        goal = loop.snapshot().goal
    assert goal[0] == pytest.approx(present["shoulder_pan"] + 2.0, abs=1e-6)
    assert goal[2] == pytest.approx(present["elbow_flex"] + 1.0, abs=1e-6)
    assert goal[1] == pytest.approx(40.0)  # uncapped
    assert loop.counters["safety_relative_target"] == 2


def test_joint_limits_clamp_goals(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS, joint_limits={"wrist_roll": (-10.0, 10.0)}) as loop:
        loop.push_chunk(np.array([[150, 0, 0, 0, 50, 150]], np.float32), start_timestep=0)
        run_until_taken(loop, 1)
        goal = loop.snapshot().goal
    # The calibrated ranges by default (±100, 0..100), the override for wrist_roll.
    np.testing.assert_allclose(goal, [100, 0, 0, 0, 10, 100], atol=1e-9)
    assert loop.counters["safety_joint_limit"] == 3


def test_strict_safety_refuses_and_raises(so101, so_bus):
    present = so_bus.sync_read("Present_Position")
    before = goal_registers(so101)
    with ControlLoop(so_bus, fps=FPS, max_relative_target=1.0, strict=True) as loop:
        loop.push_chunk(np.full((5, 6), 60.0, np.float32), start_timestep=0)
        wait_for(lambda: "safety_limit" in loop.faults, what="a safety fault")
        with pytest.raises(SafetyLimitError, match="max_relative_target"):
            loop.push_chunk(np.zeros((1, 6), np.float32), start_timestep=loop.timestep + 1)
        with pytest.raises(SafetyLimitError):
            loop.raise_for_faults()
        assert goal_registers(so101) == before  # nothing clamped was sent
        loop.clear_faults()
        wait_for(lambda: not loop.faults, what="the fault to clear")
        safe = np.array([[present[name] + 0.5 for name in NAMES]], np.float32)
        loop.push_chunk(safe, start_timestep=loop.timestep + 1)
        wait_for(lambda: loop.snapshot().goal_valid, what="a safe goal sent")
    assert goal_registers(so101) == expected_raw(so_bus, safe[0])


def test_non_finite_actions_keep_the_previous_goal(so101, so_bus):
    with ControlLoop(so_bus, fps=FPS) as loop:
        loop.push_chunk(np.full((1, 6), 5.0, np.float32), start_timestep=0)
        run_until_taken(loop, 1)
        loop.push_chunk(np.array([[np.nan, 7, np.inf, 7, 7, -np.inf]], np.float32), start_timestep=1)
        run_until_taken(loop, 2)
        goal = loop.snapshot().goal
    np.testing.assert_allclose(goal, [5, 7, 5, 7, 7, 5], atol=1e-6)
    assert loop.counters["safety_not_finite"] == 3


# --- Refused configurations ------------------------------------------------------------------------


def test_bad_configurations_are_refused(so101, so_bus):
    with pytest.raises(ValueError, match="aggregate_fn_name"):
        ControlLoop(so_bus, fps=FPS, aggregate_fn_name="median")
    with pytest.raises(ValueError, match="fps"):
        ControlLoop(so_bus, fps=0)
    with pytest.raises(ValueError, match="not on FeetechMotorsBus"):
        ControlLoop(so_bus, fps=FPS, motors=["elbow"])
    with pytest.raises(ValueError, match="does not drive"):
        ControlLoop(so_bus, fps=FPS, max_relative_target={"knee": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        ControlLoop(so_bus, fps=FPS, max_relative_target=-1.0)
    with pytest.raises(ValueError, match="on_fault"):
        ControlLoop(so_bus, fps=FPS, on_fault="panic")
    loop = ControlLoop(so_bus, fps=FPS, motors=["gripper", "elbow_flex"])
    with pytest.raises(ValueError, match="shape \\(n, 2\\)"):
        loop.push_chunk(np.zeros((3, 6)), start_timestep=0)
    so_bus.calibration = {name: cal for name, cal in calibration().items() if name != "gripper"}
    with pytest.raises(CalibrationError, match="'gripper'"):
        ControlLoop(so_bus, fps=FPS)
    so_bus.calibration = {**calibration(), "gripper": MotorCalibration(6, 0, 0, 2000, 2000)}
    with pytest.raises(CalibrationError, match="both 2000"):
        ControlLoop(so_bus, fps=FPS)
    so_bus.disconnect(disable_torque=False)
    with pytest.raises(DeviceNotConnectedError):
        ControlLoop(so_bus, fps=FPS)


def test_the_loop_shortens_the_bus_deadline_while_it_runs(so101, so_bus):
    servo_bus = so_bus.servo_bus
    own = servo_bus.timeout_ms(20, 8, 1)
    loop = ControlLoop(so_bus, fps=FPS, latency_margin_ms=2.0)
    with loop:
        assert servo_bus.timeout_ms(20, 8, 1) == pytest.approx(own - LATENCY_MARGIN_MS + 2.0)
        so101.vanish(1)
        wait_for(lambda: "bus_fault" in loop.faults, what="a bus fault")
        # A silent motor costs a read of the period's length at most, so the loop keeps its rate.
        ticks = loop.counters["ticks"]
        time.sleep(0.2)
        assert loop.counters["ticks"] - ticks >= 5
        so101.reappear(1)
    assert servo_bus.timeout_ms(20, 8, 1) == pytest.approx(own)
    with pytest.raises(ValueError, match="latency_margin_ms"):
        ControlLoop(so_bus, fps=FPS, latency_margin_ms=1e6)
