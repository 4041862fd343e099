"""dexloop._core.bus.ServoBus against the simulator: the instructions the MotorsBus layer does not use
(REG_WRITE/ACTION, BULK_READ, FAST_SYNC_READ), deadlines under faults, and the motor named in errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dexloop._core import bus
from dexloop.errors import BusProtocolError, BusTimeoutError, ServoError
from dexloop.sim import simulated_bus

IDS = np.arange(1, 7, dtype=np.uint8)
# Replies the simulator's thread sends late on a loaded machine still come within this margin; the
# tests of deadlines themselves set theirs.
LATENCY_MARGIN_MS = 100.0
DRIVER_DEFAULT_MARGIN_MS = 10.0


def open_bus(sim, vendor: str, protocol: int, **options) -> bus.ServoBus:
    options.setdefault("latency_margin_ms", LATENCY_MARGIN_MS)
    servo_bus = bus.ServoBus(sim.port, bus.protocol_of(vendor, protocol), **options)
    servo_bus.open()
    return servo_bus


@pytest.mark.parametrize(("robot", "vendor", "protocol"), [("so101", "feetech", 0), ("koch", "dynamixel", 2)])
def test_reg_write_takes_effect_on_action_only(robot: str, vendor: str, protocol: int) -> None:
    with simulated_bus(robot) as sim:
        servo_bus = open_bus(sim, vendor, protocol)
        model = bus.find_model(sim.simulator.model(1))
        torque, goal = model.registers["Torque_Enable"], model.registers["Goal_Position"]
        servo_bus.write(1, torque, 1)
        start = servo_bus.read(1, goal)
        servo_bus.reg_write(1, goal, start + 300)
        assert sim.read(1, "Goal_Position") == start  # registered, not applied
        servo_bus.action()  # broadcast
        time.sleep(0.05)
        assert sim.read(1, "Goal_Position") == start + 300


def test_dynamixel_bulk_read_reads_a_register_per_motor() -> None:
    with simulated_bus("koch") as sim:
        servo_bus = open_bus(sim, "dynamixel", 2)
        registers = bus.find_model("xl330-m288").registers
        wanted = [registers["Present_Position"], registers["ID"], registers["Present_Temperature"]]
        values = servo_bus.bulk_read(np.array([3, 4, 5], dtype=np.uint8), wanted)
        assert values.tolist() == [
            sim.read(3, "Present_Position"),
            4,
            sim.read(5, "Present_Temperature"),
        ]


def test_fast_sync_read_equals_sync_read_and_names_a_corrupt_block() -> None:
    with simulated_bus("koch") as sim:
        servo_bus = open_bus(sim, "dynamixel", 2)
        position = bus.find_model("xl330-m288").registers["Present_Position"]
        np.testing.assert_array_equal(
            servo_bus.sync_read(IDS, position, fast=True), servo_bus.sync_read(IDS, position)
        )
        sim.corrupt_replies(4, 1)
        with pytest.raises(BusProtocolError, match="motor 4"):
            servo_bus.sync_read(IDS, position, fast=True)


def fastest_of(runs: int, call) -> float:
    """The shortest wall time of `runs` calls, in ms: scheduling delays on a loaded machine inflate
    some runs, a wait hidden in the code inflates every one."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


@pytest.mark.parametrize(("robot", "vendor", "protocol"), [("so101", "feetech", 0), ("koch", "dynamixel", 2)])
def test_a_vanished_motor_times_out_within_the_computed_deadline(
    robot: str, vendor: str, protocol: int
) -> None:
    with simulated_bus(robot) as sim:
        # A margin long enough that one deadline more than due stands out from scheduling delays.
        servo_bus = open_bus(sim, vendor, protocol, latency_margin_ms=50.0)
        position = bus.find_model(sim.simulator.model(1)).registers["Present_Position"]
        sim.vanish(6)  # the last motor: nothing after it shows its reply is lost, only the deadline
        size = position.size
        overhead = 6 if vendor == "feetech" else 11
        request = (8 if vendor == "feetech" else 14) + 6
        deadline_ms = servo_bus.timeout_ms(request, 6 * (overhead + size), 6)

        def vanished_read() -> None:
            with pytest.raises(BusTimeoutError, match="motor 6 after 3 tries"):
                servo_bus.sync_read(IDS, position, retries=2)

        sync_read = 0x82  # SYNC_READ on both vendors
        sim.simulator.reset_counters()
        took_ms = fastest_of(3, vanished_read)
        # Each try waits its whole deadline, and nothing else: no extra transaction, no hidden wait
        # (each retry is preceded by one fence, answered at once by the motors still there).
        assert 3 * deadline_ms <= took_ms < 3.8 * deadline_ms
        assert sim.simulator.instruction_count(sync_read) == 9
        sim.reappear(6)
        assert len(servo_bus.sync_read(IDS, position, retries=5)) == 6


@pytest.mark.parametrize(("robot", "vendor", "protocol"), [("so101", "feetech", 0), ("koch", "dynamixel", 2)])
def test_a_lost_reply_before_the_last_fails_at_once(robot: str, vendor: str, protocol: int) -> None:
    """Servos answer in the order of the request: the reply of the motor after a silent one proves
    the silent one's lost, so the read fails then, without waiting out the deadline."""
    with simulated_bus(robot) as sim:
        servo_bus = open_bus(sim, vendor, protocol, latency_margin_ms=300.0)
        position = bus.find_model(sim.simulator.model(1)).registers["Present_Position"]
        sim.vanish(3)

        def lost_read() -> None:
            with pytest.raises(BusTimeoutError, match="motor 3 after 1 try"):
                servo_bus.sync_read(IDS, position, retries=0)

        assert fastest_of(3, lost_read) < 150  # the deadline is over 300 ms
        sim.reappear(3)
        assert len(servo_bus.sync_read(IDS, position, retries=5)) == 6


def test_servo_error_bits_name_the_fault() -> None:
    with simulated_bus("so101") as sim:
        servo_bus = open_bus(sim, "feetech", 0)
        sim.set_error_bits(2, 32)  # overload
        with pytest.raises(ServoError, match=r"motor 2 reports overload \(error byte 0x20\)"):
            servo_bus.read(2, bus.find_model("sts3215").registers["ID"])
        assert isinstance(ServoError("x"), RuntimeError)


def test_polling_for_fast_replies_returns_the_same_values() -> None:
    with simulated_bus("so101") as sim:
        sleeping = open_bus(sim, "feetech", 0, max_spin_us=0)
        position = bus.find_model("sts3215").registers["Present_Position"]
        expected = sleeping.sync_read(IDS, position)
        sleeping.close()
        polling = open_bus(sim, "feetech", 0, max_spin_us=100)
        for _ in range(50):  # long enough for the latency estimate to settle and polling to start
            np.testing.assert_array_equal(polling.sync_read(IDS, position), expected)


@pytest.mark.parametrize(("robot", "vendor", "protocol"), [("so101", "feetech", 0), ("koch", "dynamixel", 2)])
def test_a_reply_delayed_past_the_deadline_is_never_read_as_a_later_one(
    robot: str, vendor: str, protocol: int
) -> None:
    """One motor's reply held 15 ms (past the deadline) during a sync read of Present_Position; then,
    with no fault, sync reads of Goal_Position and Present_Position (same size, other values) in turn
    must each return their own register's values."""
    goals, positions = [100 + m for m in IDS.tolist()], [1000 + m for m in IDS.tolist()]
    # A driver thread descheduled for longer than the delay (a loaded machine) finds every reply in
    # time, rightly: then the right values come back and the scenario is tried again, up to 3 times.
    for scenario in range(3):
        with simulated_bus(robot, time_constant_s=0.0) as sim:
            # The driver's own margin, which the 15 ms delay below exceeds.
            servo_bus = open_bus(sim, vendor, protocol, latency_margin_ms=DRIVER_DEFAULT_MARGIN_MS)
            registers = bus.find_model(sim.simulator.model(1)).registers
            present, goal = registers["Present_Position"], registers["Goal_Position"]
            for motor, goal_value, position in zip(IDS.tolist(), goals, positions, strict=True):
                sim.write(motor, "Goal_Position", goal_value)
                sim.write(motor, "Present_Position", position)
            sim.delay_replies(3, 15_000, 1)
            try:
                values = servo_bus.sync_read(IDS, present)
            except BusTimeoutError as error:
                if "motor 3" not in str(error):
                    # Another motor's reply was late too: the simulator's thread waited for a core.
                    assert scenario < 2, f"the timeout never named the delayed motor: {error}"
                    continue
            else:
                assert values.tolist() == positions
                assert scenario < 2, "the delayed reply was never late: the scenario could not be made"
                continue
            # Retries only answer errors: a stale reply taken for a later read would still give the
            # other register's values.
            for _ in range(20):
                assert servo_bus.sync_read(IDS, goal, retries=3).tolist() == goals
                assert servo_bus.sync_read(IDS, present, retries=3).tolist() == positions
            assert servo_bus.traffic["fences"] >= 1
            break


@pytest.mark.parametrize(("robot", "vendor", "protocol"), [("so101", "feetech", 0), ("koch", "dynamixel", 2)])
def test_a_silent_motor_does_not_hold_up_the_next_read_of_another(
    robot: str, vendor: str, protocol: int
) -> None:
    """After a read of a vanished motor fails, the fence goes to a motor that answers, so a read
    of a healthy one succeeds at its first try."""
    # Up to three tries of the scenario, as a loaded machine can hold a reply past its deadline; a
    # fence sent to the silent motor fails every one.
    for scenario in range(3):
        with simulated_bus(robot) as sim:
            servo_bus = open_bus(sim, vendor, protocol)
            position = bus.find_model(sim.simulator.model(1)).registers["Present_Position"]
            assert servo_bus.read(5, position, retries=2) == sim.read(5, "Present_Position")  # 5 answers last
            sim.vanish(5)
            fences = servo_bus.traffic["fences"]
            with pytest.raises(BusTimeoutError, match="motor 5"):
                servo_bus.read(5, position)
            try:
                value = servo_bus.read(2, position, retries=0)
            except BusTimeoutError:
                if scenario == 2:
                    raise
                continue
            assert value == sim.read(2, "Present_Position")
            assert servo_bus.traffic["fences"] == fences + 1
            break


@pytest.mark.parametrize(("robot", "vendor", "protocol"), [("so101", "feetech", 0), ("koch", "dynamixel", 2)])
def test_reads_after_a_broadcast_ping_need_no_fence(robot: str, vendor: str, protocol: int) -> None:
    """Late answers to a broadcast PING are ping-shaped: reads of other lengths cannot take them
    for their own replies, so they go without a fence (as LeRobot's scan sends them)."""
    # A loaded machine (or a descheduled virtual CPU) can hold the read's reply past its deadline; the
    # failed read then rightly fences the next one. Up to three scans: one with no such delay must
    # read without a fence, where a driver that fences after every broadcast ping never does.
    for scan in range(3):
        with simulated_bus(robot) as sim:
            servo_bus = open_bus(sim, vendor, protocol)
            found = servo_bus.broadcast_ping(20.0)
            assert sorted(found) == IDS.tolist()
            position = bus.find_model(sim.simulator.model(1)).registers["Present_Position"]
            try:
                value = servo_bus.read(3, position, retries=0)
            except BusTimeoutError:
                if scan == 2:
                    raise
                continue
            assert value == sim.read(3, "Present_Position")
            assert servo_bus.traffic["fences"] == 0
            # A ping of the ping's length may meet a late answer: that one is fenced.
            servo_bus.ping(3)
            assert servo_bus.traffic["fences"] == 1
            break


def test_one_protocol_vocabulary_for_the_bus_and_the_simulator() -> None:
    Protocol = bus.Protocol
    assert bus.protocol_of("feetech", 0) == Protocol.FEETECH
    assert bus.protocol_of("feetech", 1) == Protocol.FEETECH_SCS
    assert bus.protocol_of("dynamixel", 2) == Protocol.DYNAMIXEL
    for vendor, version in (("feetech", 2), ("dynamixel", 0), ("dynamixel", 1)):
        with pytest.raises(ValueError, match="Feetech buses speak protocol 0 or 1"):
            bus.protocol_of(vendor, version)
    assert bus.parse_protocol("feetech_scs") == Protocol.FEETECH_SCS
    with pytest.raises(ValueError, match="unknown servo protocol 'can'"):
        bus.parse_protocol("can")
    from dexloop._core import sim as core_sim

    # The simulator takes the enum or its name, and says which it speaks with the same enum.
    with core_sim.ServoSimulator(Protocol.DYNAMIXEL, [(1, "xl330-m288")]) as simulator:
        assert simulator.protocol == Protocol.DYNAMIXEL
        servo_bus = bus.ServoBus(simulator.port, simulator.protocol)
        servo_bus.open()
        assert servo_bus.protocol == Protocol.DYNAMIXEL and servo_bus.vendor == "dynamixel"
        assert servo_bus.ping(1, retries=2)[0] == bus.find_model("xl330-m288").model_number
        servo_bus.close()
    with core_sim.ServoSimulator("feetech", [(1, "sts3215")]) as simulator:
        assert simulator.protocol == Protocol.FEETECH
