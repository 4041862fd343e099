"""FeetechMotorsBus / DynamixelMotorsBus against the servo simulator: the driver bytes a real arm sees.

The simulator (dexloop._core.sim) owns a pty that speaks the Feetech or Dynamixel protocol with full
control tables; its registers are inspected directly to check what the bus wrote.
"""

from __future__ import annotations

import json
import math
import time

import pytest

import dexloop._core as core
from dexloop.errors import (
    BusError,
    BusProtocolError,
    BusTimeoutError,
    CalibrationError,
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    HandshakeError,
    ServoError,
)
from dexloop.motors import Motor, MotorCalibration, MotorNormMode
from dexloop.motors.calibration import calibration_path, load_calibration, save_calibration
from dexloop.motors.dynamixel import DynamixelMotorsBus
from dexloop.motors.dynamixel import OperatingMode as DxlMode
from dexloop.motors.feetech import FeetechMotorsBus, OperatingMode

sim = getattr(core, "sim", None)
pytestmark = pytest.mark.skipif(
    sim is None, reason="dexloop._core.sim (the servo simulator) is not built into this extension"
)

SYNC_READ, SYNC_WRITE, READ, WRITE, PING = 0x82, 0x83, 0x02, 0x03, 0x01
DEG, M100, R100 = MotorNormMode.DEGREES, MotorNormMode.RANGE_M100_100, MotorNormMode.RANGE_0_100
# The simulator's thread may wait for a core on a loaded machine: a wide allowance beyond the wire time
# (tests of the deadline itself delay replies well past it).
LATENCY_MARGIN_MS = 100
SO_NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def so_motors(body=DEG):
    """LeRobot's SO-100/101 follower motors."""
    return {
        name: Motor(i + 1, "sts3215", R100 if name == "gripper" else body) for i, name in enumerate(SO_NAMES)
    }


def koch_motors(body=M100):
    """LeRobot's Koch follower motors (two models on one bus)."""
    models = ["xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288"]
    return {
        name: Motor(i + 1, models[i], R100 if name == "gripper" else body) for i, name in enumerate(SO_NAMES)
    }


@pytest.fixture
def so_bus(so101):
    bus = FeetechMotorsBus(so101.port, so_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    bus.connect()
    yield bus
    if bus.is_connected:
        bus.disconnect(disable_torque=False)


@pytest.fixture
def koch_bus(koch):
    bus = DynamixelMotorsBus(koch.port, koch_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    bus.connect()
    yield bus
    if bus.is_connected:
        bus.disconnect(disable_torque=False)


def settled(bus):
    """A SYNC_WRITE gets no reply: one round trip after it guarantees the simulator processed it."""
    assert bus.ping(bus.ids[0], num_retry=2) is not None


def registers(simulator, name, ids=range(1, 7)):
    return [simulator.read_register(i, name) for i in ids]


# --- Connection and handshake -------------------------------------------------------------------


def test_connect_and_disconnect_feetech(so101):
    bus = FeetechMotorsBus(so101.port, so_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    assert not bus.is_connected
    so101.reset_counters()
    bus.connect()
    assert bus.is_connected
    # Handshake: a PING (+ Model_Number read) then firmware major and minor reads for every motor.
    assert so101.instruction_count(PING) == 6
    assert so101.instruction_count(READ) == 6 + 12
    with pytest.raises(DeviceAlreadyConnectedError, match="already connected"):
        bus.connect()
    bus.enable_torque()
    assert registers(so101, "Torque_Enable") == [1] * 6 and registers(so101, "Lock") == [1] * 6
    bus.disconnect()
    assert not bus.is_connected
    assert registers(so101, "Torque_Enable") == [0] * 6 and registers(so101, "Lock") == [0] * 6
    with pytest.raises(DeviceNotConnectedError, match="Run `.connect\\(\\)` first"):
        bus.disconnect()
    for call in (
        lambda: bus.read("Present_Position", "gripper"),
        lambda: bus.write("Goal_Position", "gripper", 1, normalize=False),
        lambda: bus.sync_read("Present_Position"),
        lambda: bus.sync_write("Goal_Position", 1, normalize=False),
        lambda: bus.ping(1),
        lambda: bus.broadcast_ping(),
    ):
        with pytest.raises(DeviceNotConnectedError):
            call()
    # Reconnects.
    bus.connect()
    assert bus.sync_read("Present_Position", normalize=False).keys() == set(SO_NAMES)
    bus.disconnect(disable_torque=False)


def test_connect_and_disconnect_dynamixel(koch):
    bus = DynamixelMotorsBus(koch.port, koch_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    koch.reset_counters()
    bus.connect()
    assert koch.instruction_count(PING) == 6
    assert koch.instruction_count(READ) == 0  # Dynamixel ping replies carry the model number
    bus.enable_torque()
    assert registers(koch, "Torque_Enable") == [1] * 6
    bus.disconnect()
    assert registers(koch, "Torque_Enable") == [0] * 6
    assert not bus.is_connected


def test_connect_to_a_missing_port_names_it(tmp_path):
    bus = FeetechMotorsBus(str(tmp_path / "ttyNOPE"), so_motors())
    with pytest.raises(BusError, match="Could not connect on port '.*ttyNOPE'.*correct port") as info:
        bus.connect()
    assert isinstance(info.value, ConnectionError)
    assert not bus.is_connected


def test_handshake_missing_motor(so101):
    so101.vanish(6)
    so101.vanish(4)
    bus = FeetechMotorsBus(so101.port, so_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    with pytest.raises(HandshakeError) as info:
        bus.connect()
    message = str(info.value)
    assert so101.port in message
    assert "id 4 'wrist_flex' (expected sts3215 (777))" in message
    assert "id 6 'gripper'" in message
    assert "Fix:" in message and "setup_motor" in message
    assert isinstance(info.value, RuntimeError)  # as LeRobot's RuntimeError
    assert not bus.is_connected  # the port is closed again
    so101.reappear(None)
    bus.connect()
    assert bus.is_connected
    bus.disconnect()
    # No handshake: connects whatever answers.
    so101.vanish(2)
    bus.connect(handshake=False)
    assert bus.ping("shoulder_lift") is None
    assert bus.ping("shoulder_pan") == 777
    bus.disconnect(disable_torque=False)


def test_handshake_wrong_model():
    with sim.ServoSimulator("feetech", [(1, "sts3215"), (2, "sts3250")]) as simulator:
        motors = {"a": Motor(1, "sts3215", DEG), "b": Motor(2, "sts3215", DEG)}
        bus = FeetechMotorsBus(simulator.port, motors, latency_margin_ms=LATENCY_MARGIN_MS)
        with pytest.raises(
            HandshakeError, match=r"id 2 'b': expected sts3215 \(777\), found sts3250 \(2825\)"
        ):
            bus.connect()
        assert not bus.is_connected
        # A series key accepts any model of the series.
        bus = FeetechMotorsBus(
            simulator.port,
            {"a": Motor(1, "sts_series", DEG), "b": Motor(2, "sts_series", DEG)},
            latency_margin_ms=LATENCY_MARGIN_MS,
        )
        bus.connect()
        bus.disconnect()


def test_handshake_wrong_model_dynamixel(koch):
    motors = koch_motors()
    motors["shoulder_pan"] = Motor(1, "xl330-m077", M100)
    bus = DynamixelMotorsBus(koch.port, motors, latency_margin_ms=LATENCY_MARGIN_MS)
    with pytest.raises(HandshakeError, match=r"expected xl330-m077 \(1190\), found xl430-w250 \(1060\)"):
        bus.connect()


def test_handshake_firmware_mismatch(so101):
    so101.write_register(3, "Firmware_Minor_Version", 9)
    bus = FeetechMotorsBus(so101.port, so_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    with pytest.raises(HandshakeError, match="different firmware versions") as info:
        bus.connect()
    assert "3 'elbow_flex'" in str(info.value) and "3.9" in str(info.value) and "3.10" in str(info.value)
    assert not bus.is_connected


# --- Transactions -------------------------------------------------------------------------------


def test_read_write_sync_read_sync_write_raw(so_bus, so101):
    present = so_bus.sync_read("Present_Position", normalize=False)
    assert present == dict(zip(SO_NAMES, registers(so101, "Present_Position"), strict=True))
    assert all(type(v) is int for v in present.values())
    assert so_bus.read("Present_Position", "elbow_flex", normalize=False) == present["elbow_flex"]
    assert so_bus.sync_read("Present_Position", "gripper", normalize=False) == {"gripper": present["gripper"]}
    assert so_bus.sync_read("Present_Position", [6, "shoulder_pan"], normalize=False) == {
        "gripper": present["gripper"],
        "shoulder_pan": present["shoulder_pan"],
    }

    so_bus.write("Goal_Position", "wrist_flex", 1234.9, normalize=False)  # int() truncates, as LeRobot
    assert so101.read_register(4, "Goal_Position") == 1234
    so_bus.sync_write("Goal_Position", {"shoulder_pan": 1000, "gripper": 3000}, normalize=False)
    settled(so_bus)
    assert so101.read_register(1, "Goal_Position") == 1000 and so101.read_register(6, "Goal_Position") == 3000
    so_bus.sync_write("Acceleration", 17)
    settled(so_bus)
    assert registers(so101, "Acceleration") == [17] * 6
    assert so_bus.read("Acceleration", "wrist_roll") == 17  # not a normalised register
    assert so_bus.sync_read("Model_Number") == dict.fromkeys(SO_NAMES, 777)

    with pytest.raises(ValueError, match="'Present_Position' is a read-only register"):
        so_bus.write("Present_Position", "gripper", 5, normalize=False)
    with pytest.raises(ValueError, match="read-only"):
        so_bus.sync_write("Present_Position", 5, normalize=False)
    with pytest.raises(KeyError, match="Address for 'Nope' not found in sts3215 control table"):
        so_bus.read("Nope", "gripper")
    with pytest.raises(KeyError, match="no motor 'elbow'"):
        so_bus.read("Present_Position", "elbow")
    with pytest.raises(TypeError, match="single value or a dict"):
        so_bus.sync_write("Goal_Position", [1, 2, 3])


def test_sync_read_is_one_instruction_and_plans_are_cached(so_bus, so101):
    so101.reset_counters()
    for _ in range(5):
        so_bus.sync_read("Present_Position", normalize=False)
    assert so101.instruction_counts() == {SYNC_READ: 5}
    keys = [k for k in so_bus._plans if k[0] == "Present_Position"]
    assert keys == [("Present_Position", None)]
    plan = so_bus._plans[keys[0]]
    so_bus.sync_read("Present_Position", normalize=False)
    assert so_bus._plans[keys[0]] is plan
    so_bus.sync_read("Present_Position", ["gripper", "wrist_roll"], normalize=False)
    so_bus.sync_read("Present_Position", ("gripper", "wrist_roll"), normalize=False)
    assert ("Present_Position", ("gripper", "wrist_roll")) in so_bus._plans
    so101.reset_counters()
    so_bus.sync_write("Goal_Position", {"gripper": 2000, "wrist_roll": 2100}, normalize=False)
    settled(so_bus)
    assert so101.instruction_counts() == {SYNC_WRITE: 1, PING: 1, READ: 1}  # + the settling ping


def test_normalized_reads_and_writes_use_the_calibration(so_bus, so101):
    with pytest.raises(CalibrationError, match="no calibration registered"):
        so_bus.sync_read("Present_Position")
    calibration = {
        name: MotorCalibration(i + 1, 0, 0, 1000 + 10 * i, 3000 - 10 * i) for i, name in enumerate(SO_NAMES)
    }
    calibration["wrist_flex"] = MotorCalibration(4, 1, 0, 1000, 3000)  # drive mode: Feetech inverts
    so_bus.write_calibration(calibration)
    assert so_bus.calibration is calibration
    raw = so_bus.sync_read("Present_Position", normalize=False)
    normalized = so_bus.sync_read("Present_Position")
    for name in SO_NAMES:
        cal = calibration[name]
        if name == "gripper":
            n = (
                (min(cal.range_max, max(cal.range_min, raw[name])) - cal.range_min)
                / (cal.range_max - cal.range_min)
                * 100
            )
        else:
            n = (raw[name] - (cal.range_min + cal.range_max) / 2) * 360 / 4095
        assert normalized[name] == n
        assert so_bus.read("Present_Position", name) == n

    so_bus.enable_torque()
    goal = {"shoulder_pan": 10.5, "wrist_flex": -33.3, "gripper": 42.0}
    so_bus.sync_write("Goal_Position", goal)
    settled(so_bus)
    assert so101.read_register(1, "Goal_Position") == int(10.5 * 4095 / 360 + 2000)
    assert so101.read_register(4, "Goal_Position") == int(
        -33.3 * 4095 / 360 + 2000
    )  # no drive mode in degrees
    assert so101.read_register(6, "Goal_Position") == int(42.0 / 100 * (2950 - 1050) + 1050)
    so_bus.write("Goal_Position", "gripper", 150.0)  # clamped to 100
    assert so101.read_register(6, "Goal_Position") == 2950
    before = registers(so101, "Goal_Position")
    so101.reset_counters()
    with pytest.raises(ValueError, match="motor 'gripper'"):
        so_bus.sync_write("Goal_Position", {"shoulder_pan": 1.0, "gripper": math.nan})
    with pytest.raises(OverflowError, match="motor 'shoulder_pan'"):
        so_bus.sync_write("Goal_Position", math.inf)
    assert so101.instruction_counts() == {}  # nothing was sent
    assert registers(so101, "Goal_Position") == before

    # RANGE_M100_100 with the drive mode applied (Feetech).
    bus = FeetechMotorsBus(so101.port, so_motors(M100), calibration, latency_margin_ms=LATENCY_MARGIN_MS)
    bus.servo_bus.open()
    try:
        bus.sync_write("Goal_Position", {"wrist_flex": 50.0})
        settled(bus)
        assert so101.read_register(4, "Goal_Position") == int((-50.0 + 100) / 200 * 2000 + 1000)
        raw = bus.read("Present_Position", "wrist_flex", normalize=False)
        assert bus.read("Present_Position", "wrist_flex") == -(
            (min(3000, max(1000, raw)) - 1000) / 2000 * 200 - 100
        )
    finally:
        bus.servo_bus.close()

    so_bus.calibration = {**calibration, "gripper": MotorCalibration(6, 0, 0, 5, 5)}
    with pytest.raises(CalibrationError, match="'gripper'.*both 5"):
        so_bus.sync_read("Present_Position")


def test_dynamixel_ignores_drive_mode_in_software(koch_bus, koch):
    calibration = {name: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, name in enumerate(SO_NAMES)}
    calibration["elbow_flex"] = MotorCalibration(3, 1, 0, 1000, 3000)
    koch_bus.calibration = calibration
    koch_bus.sync_write("Goal_Position", {"elbow_flex": 50.0, "shoulder_pan": 50.0})
    settled(koch_bus)
    assert koch.read_register(3, "Goal_Position") == koch.read_register(1, "Goal_Position") == 2500


def test_sign_encodings_through_the_registers(so_bus, so101, koch_bus, koch):
    # Feetech: sign-magnitude, bit 15 for positions, bit 11 for Homing_Offset, little-endian.
    so_bus.write("Goal_Position", "shoulder_pan", -5, normalize=False)
    assert so101.read_memory(1, 42, 2) == (0x8000 | 5).to_bytes(2, "little")
    assert so_bus.read("Goal_Position", "shoulder_pan", normalize=False) == -5
    so_bus.sync_write("Goal_Position", {"shoulder_lift": -32767, "elbow_flex": 32767}, normalize=False)
    settled(so_bus)
    assert so101.read_memory(2, 42, 2) == b"\xff\xff" and so101.read_memory(3, 42, 2) == b"\xff\x7f"
    assert so_bus.sync_read("Goal_Position", ["shoulder_lift", "elbow_flex"], normalize=False) == {
        "shoulder_lift": -32767,
        "elbow_flex": 32767,
    }
    so_bus.write("Homing_Offset", "wrist_flex", -100)
    assert so101.read_memory(4, 31, 2) == (0x800 | 100).to_bytes(2, "little")
    assert so_bus.read("Homing_Offset", "wrist_flex") == -100
    # A present position below the homing offset reads negative (Present = Actual - Offset).
    so_bus.write("Homing_Offset", "wrist_roll", 2000)
    so101.set_actual_position(5, 1500)
    assert so_bus.read("Present_Position", "wrist_roll", normalize=False) == -500
    assert so_bus.sync_read("Present_Position", "wrist_roll", normalize=False) == {"wrist_roll": -500}
    for register, value in (("Homing_Offset", 2048), ("Homing_Offset", -2048), ("Goal_Position", 32768)):
        with pytest.raises(ValueError, match=f"value {value} does not fit register {register}"):
            so_bus.write(register, "gripper", value, normalize=False)
    with pytest.raises(ValueError, match="does not fit"):
        so_bus.sync_write("Goal_Position", {"gripper": 40000}, normalize=False)
    with pytest.raises(ValueError, match="does not fit"):
        so_bus.write("Acceleration", "gripper", -1)  # unsigned

    # Dynamixel: two's complement of the register's width (extended position mode ignores the limits).
    koch_bus.write("Operating_Mode", "shoulder_pan", DxlMode.EXTENDED_POSITION.value)
    koch_bus.write("Goal_Position", "shoulder_pan", -1000, normalize=False)
    assert koch.read_memory(1, 116, 4) == (-1000).to_bytes(4, "little", signed=True)
    assert koch_bus.read("Goal_Position", "shoulder_pan", normalize=False) == -1000
    koch_bus.write("Goal_Current", "gripper", -5)
    assert koch.read_memory(6, 102, 2) == b"\xfb\xff"
    assert koch_bus.sync_read("Goal_Current", "gripper") == {"gripper": -5}
    koch_bus.write("Homing_Offset", "wrist_roll", -1024)
    koch.set_actual_position(5, 100)
    assert koch_bus.read("Present_Position", "wrist_roll", normalize=False) == 100 - 1024  # Actual + Offset
    with pytest.raises(ValueError, match="does not fit"):
        koch_bus.write("Goal_Current", "gripper", 40000)


def test_feetech_protocol_1_scs():
    with sim.ServoSimulator(
        "feetech_scs", [(1, "scs0009"), (2, "scs0009")], time_constant_s=0.0
    ) as simulator:
        motors = {"a": Motor(1, "scs0009", DEG), "b": Motor(2, "scs0009", DEG)}
        with pytest.raises(ValueError, match="incompatible with protocol_version=0"):
            FeetechMotorsBus(simulator.port, motors, latency_margin_ms=LATENCY_MARGIN_MS)
        bus = FeetechMotorsBus(
            simulator.port, motors, protocol_version=1, latency_margin_ms=LATENCY_MARGIN_MS
        )
        bus.connect()
        bus.write("Goal_Position", "a", 700, normalize=False)
        assert simulator.read_memory(1, 42, 2) == (700).to_bytes(2, "big")  # SCS is big-endian
        assert bus.read("Goal_Position", "a", normalize=False) == 700
        with pytest.raises(NotImplementedError, match="Sync Read"):
            bus.sync_read("Present_Position", normalize=False)
        with pytest.raises(NotImplementedError, match="Broadcast Ping"):
            bus.broadcast_ping()
        cal = bus.read_calibration()
        assert cal["a"] == MotorCalibration(1, 0, 0, 0, 1023)
        bus.calibration = cal
        assert bus.is_calibrated
        assert (
            bus.read("Present_Position", "b")
            == (simulator.read_register(2, "Present_Position") - 511.5) * 360 / 1023
        )
        bus.enable_torque()
        assert [simulator.read_register(i, "Lock") for i in (1, 2)] == [1, 1]  # Lock @48 on SCS
        bus.disconnect()
        assert [simulator.read_register(i, "Torque_Enable") for i in (1, 2)] == [0, 0]


def test_mixed_models_share_registers(koch_bus, koch):
    values = koch_bus.sync_read("Present_Position", normalize=False)
    assert values == dict(zip(SO_NAMES, registers(koch, "Present_Position"), strict=True))
    assert koch_bus.sync_read("Model_Number") == {
        "shoulder_pan": 1060,
        "shoulder_lift": 1060,
        "elbow_flex": 1200,
        "wrist_flex": 1200,
        "wrist_roll": 1200,
        "gripper": 1200,
    }


# --- Torque, Lock, configuration ----------------------------------------------------------------


def test_torque_and_lock_sequences(so_bus, so101):
    so_bus.enable_torque(["gripper", 5])
    assert registers(so101, "Torque_Enable") == [0, 0, 0, 0, 1, 1]
    assert registers(so101, "Lock") == [0, 0, 0, 0, 1, 1]
    so_bus.enable_torque()
    with so_bus.torque_disabled(["elbow_flex"]):
        assert registers(so101, "Torque_Enable") == [1, 1, 0, 1, 1, 1]
        assert registers(so101, "Lock") == [1, 1, 0, 1, 1, 1]
    assert registers(so101, "Torque_Enable") == [1] * 6
    with pytest.raises(KeyError), so_bus.torque_disabled():
        assert registers(so101, "Torque_Enable") == [0] * 6
        assert registers(so101, "Lock") == [0] * 6
        raise KeyError("inside")
    assert registers(so101, "Torque_Enable") == [1] * 6 and registers(so101, "Lock") == [1] * 6
    so_bus.disable_torque("gripper")
    assert registers(so101, "Torque_Enable") == [1, 1, 1, 1, 1, 0]


def test_configure_motors(so_bus, so101, koch_bus, koch):
    for i in range(1, 7):
        so101.write_register(i, "Return_Delay_Time", 250)
        so101.write_register(i, "Phase", 0x1C)
    with so_bus.torque_disabled():
        so_bus.configure_motors()
        for motor in so_bus.motors:
            so_bus.write("Operating_Mode", motor, OperatingMode.POSITION.value)
    assert registers(so101, "Return_Delay_Time") == [0] * 6
    assert registers(so101, "Maximum_Acceleration") == [254] * 6
    assert registers(so101, "Acceleration") == [254] * 6
    assert registers(so101, "Phase") == [0x0C] * 6
    assert registers(so101, "Operating_Mode") == [0] * 6

    with koch_bus.torque_disabled():
        koch_bus.configure_motors()
        koch_bus.write("Operating_Mode", "gripper", DxlMode.CURRENT_POSITION.value)
    assert registers(koch, "Return_Delay_Time") == [0] * 6
    assert koch.read_register(6, "Operating_Mode") == 5
    assert registers(koch, "Torque_Enable") == [1] * 6


def test_baudrate_and_timeout(so_bus):
    assert so_bus.get_baudrate() == 1_000_000
    so_bus.set_baudrate(500_000)
    assert so_bus.get_baudrate() == 500_000
    so_bus.set_baudrate(1_000_000)
    so_bus.set_timeout(20)
    assert so_bus.timeout_ms == 20
    so_bus.set_timeout()
    assert so_bus.timeout_ms == 1000


def test_polling_for_fast_replies_is_a_bus_option(so101, koch):
    assert FeetechMotorsBus(so101.port, so_motors()).servo_bus.max_spin_us == 100
    for bus in (
        FeetechMotorsBus(so101.port, so_motors(), max_spin_us=0, latency_margin_ms=LATENCY_MARGIN_MS),
        DynamixelMotorsBus(koch.port, koch_motors(), max_spin_us=0, latency_margin_ms=LATENCY_MARGIN_MS),
    ):
        assert bus.servo_bus.max_spin_us == 0
        bus.connect()
        assert len(bus.sync_read("Present_Position", normalize=False)) == 6
        bus.disconnect(disable_torque=False)


# --- Calibration procedure ----------------------------------------------------------------------


def test_so101_calibration_end_to_end(so101, tmp_path, monkeypatch):
    """LeRobot's SOFollower.calibrate(), step by step, with a simulated person moving the joints."""
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    bus = FeetechMotorsBus(so101.port, so_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
    bus.connect()
    assert not bus.is_calibrated  # no calibration in the bus

    bus.disable_torque()
    for motor in bus.motors:
        bus.write("Operating_Mode", motor, OperatingMode.POSITION.value)
    # The person puts the arm mid-range.
    middle = {1: 2100, 2: 1800, 3: 2500, 4: 1000, 5: 3000, 6: 2047}
    for id_, steps in middle.items():
        so101.set_actual_position(id_, steps)
    offsets = bus.set_half_turn_homings()
    assert offsets == {name: middle[i + 1] - 2047 for i, name in enumerate(SO_NAMES)}
    assert registers(so101, "Homing_Offset") == [middle[i] - 2047 for i in range(1, 7)]
    assert bus.sync_read("Present_Position", normalize=False) == dict.fromkeys(SO_NAMES, 2047)
    assert bus.calibration == {}

    # The person sweeps every joint but wrist_roll through its range.
    sweeps = {1: (1300, 2900), 2: (900, 3000), 3: (1500, 3400), 4: (100, 2000), 6: (1900, 3300)}
    steps = 12
    calls = {"n": 0}

    def person_moves_and_presses_enter():
        k = calls["n"]
        calls["n"] += 1
        for id_, (lo, hi) in sweeps.items():
            # Down to lo, up to hi, back to the middle.
            if k < steps:
                target = middle[id_] + (lo - middle[id_]) * (k + 1) / steps
            elif k < 3 * steps:
                target = lo + (hi - lo) * (k + 1 - steps) / (2 * steps)
            else:
                target = middle[id_]
            so101.set_actual_position(id_, target)
        return k >= 3 * steps + 1

    unknown_range = [m for m in bus.motors if m != "wrist_roll"]
    mins, maxes = bus.record_ranges_of_motion(
        unknown_range, display_values=False, stop=person_moves_and_presses_enter, interval_s=0
    )
    for i, name in enumerate(SO_NAMES):
        if name == "wrist_roll":
            assert name not in mins
            continue
        lo, hi = sweeps[i + 1]
        assert mins[name] == lo - offsets[name] and maxes[name] == hi - offsets[name]
    mins["wrist_roll"], maxes["wrist_roll"] = 0, 4095

    calibration = {
        name: MotorCalibration(m.id, 0, offsets[name], mins[name], maxes[name])
        for name, m in bus.motors.items()
    }
    bus.write_calibration(calibration)
    assert registers(so101, "Min_Position_Limit") == [mins[n] for n in SO_NAMES]
    assert registers(so101, "Max_Position_Limit") == [maxes[n] for n in SO_NAMES]
    path = save_calibration(calibration, calibration_path("so101_follower", "sim_arm"))
    assert path == tmp_path / "robots" / "so_follower" / "sim_arm.json"
    assert bus.is_calibrated
    bus.disconnect()

    # A new session loads the file: calibrated, normalised values as LeRobot's formulas give.
    loaded = load_calibration(path)
    assert loaded == calibration
    bus = FeetechMotorsBus(so101.port, so_motors(), loaded, latency_margin_ms=LATENCY_MARGIN_MS)
    bus.connect()
    assert bus.is_calibrated
    so101.set_actual_position(1, 2500)
    raw = bus.read("Present_Position", "shoulder_pan", normalize=False)
    assert raw == 2500 - offsets["shoulder_pan"]
    cal = loaded["shoulder_pan"]
    assert (
        bus.sync_read("Present_Position")["shoulder_pan"]
        == (raw - (cal.range_min + cal.range_max) / 2) * 360 / 4095
    )
    # The servo's own limits clamp goals to the recorded range.
    bus.enable_torque()
    bus.write("Goal_Position", "gripper", 100.0)
    assert so101.read_register(6, "Goal_Position") == maxes["gripper"]
    bus.disable_torque()
    # A motor whose registers changed makes the calibration stale.
    bus.write("Min_Position_Limit", "elbow_flex", mins["elbow_flex"] + 1)
    assert not bus.is_calibrated
    bus.write_calibration(loaded)
    assert bus.is_calibrated
    bus.reset_calibration(["elbow_flex"])
    assert (
        so101.read_register(3, "Homing_Offset") == 0 and so101.read_register(3, "Max_Position_Limit") == 4095
    )
    assert bus.calibration == {}
    bus.disconnect()
    assert json.loads(path.read_text())["gripper"]["range_max"] == maxes["gripper"]


def test_feetech_calibration_is_read_motor_by_motor_as_lerobot_does(so_bus, so101):
    """One READ per register and motor, as LeRobot's FeetechMotorsBus makes them: a motor reporting an
    error while its calibration is read is an error, where a sync read would pass its values on."""
    so101.write_register(2, "Homing_Offset", 100)
    so101.reset_counters()
    calibration = so_bus.read_calibration()
    assert so101.instruction_counts() == {READ: 3 * 6}
    assert calibration["shoulder_lift"] == MotorCalibration(2, 0, 100, *registers(so101, "Min_Position_Limit", [2]),
                                                            *registers(so101, "Max_Position_Limit", [2]))  # fmt: skip
    so101.set_error_bits(5, 0x20)
    with pytest.raises(ServoError, match="overload"):
        so_bus.read_calibration()
    so101.set_error_bits(5, 0)


def test_koch_half_turn_homings_and_calibration(koch_bus, koch):
    koch_bus.disable_torque()
    for motor in koch_bus.motors:
        koch_bus.write("Operating_Mode", motor, DxlMode.EXTENDED_POSITION.value)
    for id_, steps in zip(range(1, 7), [1000, 2047, 3000, 4095, 0, 1500], strict=True):
        koch.set_actual_position(id_, steps)
    offsets = koch_bus.set_half_turn_homings()
    assert list(offsets.values()) == [1047, 0, -953, -2048, 2047, 547]  # 2047 - position
    assert registers(koch, "Homing_Offset") == [1047, 0, -953, -2048, 2047, 547]
    assert koch_bus.sync_read("Present_Position", normalize=False) == dict.fromkeys(SO_NAMES, 2047)
    koch_bus.write("Drive_Mode", "elbow_flex", 1)
    calibration = koch_bus.read_calibration()
    assert calibration["elbow_flex"] == MotorCalibration(3, 1, -953, 0, 4095)
    koch_bus.calibration = calibration
    assert koch_bus.is_calibrated
    koch_bus.calibration = {**calibration, "elbow_flex": MotorCalibration(3, 0, -953, 0, 4095)}
    assert not koch_bus.is_calibrated  # Dynamixel compares drive_mode too


def test_half_turn_homing_out_of_register_range(so_bus, so101):
    so_bus.disable_torque()
    so101.set_actual_position(2, 4095)  # offset 2048 does not fit sign-magnitude bit 11
    with pytest.raises(ValueError, match="homing offset 2048 of motor 'shoulder_lift'.*middle of its range"):
        so_bus.set_half_turn_homings()


def test_record_ranges_needs_movement(so_bus):
    with pytest.raises(ValueError, match="same min and max") as info:
        so_bus.record_ranges_of_motion(["gripper"], display_values=False, stop=lambda: True)
    assert "gripper" in str(info.value)


def test_record_ranges_display(so_bus, capsys):
    positions = so_bus.sync_read("Present_Position", normalize=False)
    with pytest.raises(ValueError):
        so_bus.record_ranges_of_motion(
            ["gripper"], display_values=True, stop=iter([False, True]).__next__, interval_s=0
        )
    out = capsys.readouterr().out
    assert "NAME" in out and f"gripper         | {positions['gripper']:>6} | {positions['gripper']:>6}" in out
    assert "\033[4A" in out  # cursor moved up between refreshes


# --- Faults: retries and typed errors ------------------------------------------------------------


def test_retries_and_typed_errors(so_bus, so101):
    so101.drop_replies(3, 1)
    with pytest.raises(BusTimeoutError, match="'elbow_flex'") as info:
        so_bus.read("Present_Position", "elbow_flex", normalize=False)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, TimeoutError)

    so101.drop_replies(3, 1)
    retries = so_bus.servo_bus.traffic["retries"]
    assert so_bus.read("Present_Position", "elbow_flex", normalize=False, num_retry=1) == so101.read_register(
        3, "Present_Position"
    )
    assert so_bus.servo_bus.traffic["retries"] == retries + 1

    so101.corrupt_replies(2, 1)
    with pytest.raises(BusProtocolError, match=r"\(motors: 1=shoulder_pan, 2=shoulder_lift"):
        so_bus.sync_read("Present_Position", normalize=False)
    so101.corrupt_replies(2, 2)
    assert so_bus.sync_read("Present_Position", normalize=False, num_retry=2)[
        "shoulder_lift"
    ] == so101.read_register(2, "Present_Position")

    so101.drop_replies(5, 3)
    with pytest.raises(BusTimeoutError, match="after 3 tries"):
        so_bus.sync_read("Present_Position", normalize=False, num_retry=2)
    so101.clear_faults()

    # Servo error bits: a RuntimeError, never retried; sync reads ignore them as the SDKs do.
    so101.set_error_bits(4, 0x20)
    so101.reset_counters()
    fences = so_bus.servo_bus.traffic["fences"]  # the failed sync read above leaves one to send
    with pytest.raises(ServoError, match="overload") as info:
        so_bus.read("Present_Position", "wrist_flex", num_retry=3)
    assert isinstance(info.value, RuntimeError)
    assert so101.instruction_count(READ) - (so_bus.servo_bus.traffic["fences"] - fences) == 1
    assert so_bus.sync_read("Present_Position", normalize=False)["wrist_flex"] == so101.read_register(
        4, "Present_Position"
    )
    with pytest.raises(ServoError):
        so_bus.write("Acceleration", "wrist_flex", 3)
    so101.set_error_bits(4, 0)

    # ping: None or, with raise_on_error, the typed error.
    so101.vanish(6)
    assert so_bus.ping("gripper") is None
    with pytest.raises(BusTimeoutError):
        so_bus.ping("gripper", raise_on_error=True)
    so101.reappear(6)
    assert so_bus.ping("gripper", num_retry=1) == 777


def test_disconnect_releases_every_motor_it_can(so_bus, so101):
    so_bus.enable_torque()
    so101.vanish(2)
    with pytest.raises(BusTimeoutError, match="could not disable the torque of 1 motor.*'shoulder_lift'"):
        so_bus.disconnect()
    assert not so_bus.is_connected
    so101.reappear(2)
    assert registers(so101, "Torque_Enable") == [0, 1, 0, 0, 0, 0]
    assert registers(so101, "Lock") == [0, 1, 0, 0, 0, 0]


def test_disconnect_retries_torque_off(so_bus, so101):
    so_bus.enable_torque()
    so101.drop_replies(None, 4)  # every motor misses 4 replies: 5 retries suffice
    so_bus.disconnect()
    so101.clear_faults()
    assert registers(so101, "Torque_Enable") == [0] * 6 and registers(so101, "Lock") == [0] * 6


# --- Discovery and motor set-up -------------------------------------------------------------------


def test_broadcast_ping(so_bus, koch_bus):
    assert so_bus.broadcast_ping(window_ms=30) == dict.fromkeys(range(1, 7), 777)
    assert koch_bus.broadcast_ping(window_ms=30) == {1: 1060, 2: 1060, 3: 1200, 4: 1200, 5: 1200, 6: 1200}
    # LeRobot's window: 6 bytes x 252 ids at 10 µs a byte + 3 ms x 252 + 16 ms at 1 Mbps.
    assert so_bus._broadcast_window_ms() == pytest.approx(6 * 252 * 0.01 + 756 + 16)
    assert koch_bus._broadcast_window_ms() == pytest.approx(14 * 252 * 0.01 + 756 + 16)


def test_broadcast_ping_nobody():
    with sim.ServoSimulator("feetech", [(1, "sts3215")]) as simulator:
        simulator.vanish(1)
        bus = FeetechMotorsBus(simulator.port, {}, latency_margin_ms=LATENCY_MARGIN_MS)
        bus.connect()
        assert bus.broadcast_ping(window_ms=20) is None
        with pytest.raises(BusTimeoutError, match="no motor answered a broadcast ping"):
            bus.broadcast_ping(num_retry=1, raise_on_error=True, window_ms=20)
        bus.disconnect()


def test_setup_motor_feetech():
    """A new motor (id 1, 500 kbps) gets the configured id and 1 Mbps, as lerobot-setup-motors does."""
    with sim.ServoSimulator("feetech", [(1, "sts3215")], baudrate=500_000, match_baudrate=True) as simulator:
        bus = FeetechMotorsBus(simulator.port, so_motors(), latency_margin_ms=LATENCY_MARGIN_MS)
        start = time.monotonic()
        bus.setup_motor("gripper")  # scans 1 Mbps (nothing), then 500 kbps
        assert time.monotonic() - start < 10
        assert simulator.ids == [6]
        assert simulator.read_register(6, "Baud_Rate") == 0
        assert simulator.read_register(6, "Torque_Enable") == 0 and simulator.read_register(6, "Lock") == 0
        assert bus.get_baudrate() == 1_000_000
        assert bus.ping("gripper") == 777
        # Known settings skip the scan.
        bus.setup_motor("wrist_roll", initial_baudrate=1_000_000, initial_id=6)
        assert simulator.ids == [5]
        bus.disconnect(disable_torque=False)


def test_setup_motor_wrong_model_and_missing():
    with sim.ServoSimulator(
        "dynamixel", [(1, "xl330-m288")], baudrate=57_600, match_baudrate=True
    ) as simulator:
        motors = koch_motors()
        bus = DynamixelMotorsBus(simulator.port, motors, latency_margin_ms=LATENCY_MARGIN_MS)
        with pytest.raises(
            HandshakeError, match="model number '1200' different than the one expected: '1060'"
        ):
            bus.setup_motor("shoulder_pan", initial_baudrate=57_600)
        bus.setup_motor("elbow_flex", initial_baudrate=57_600)
        assert simulator.ids == [3]
        assert simulator.read_register(3, "Baud_Rate") == 3  # 1 Mbps on X series
        assert bus.ping("elbow_flex") == 1200
        bus.servo_bus.close()
        simulator.vanish(None)
        with pytest.raises(HandshakeError, match="'wrist_flex' .* was not found"):
            bus.setup_motor("wrist_flex", initial_baudrate=1_000_000)
        bus.servo_bus.close()


def test_scan_port():
    class FewBaudratesBus(FeetechMotorsBus):
        available_baudrates = [57_600, 500_000, 1_000_000]  # noqa: RUF012

    with sim.ServoSimulator(
        "feetech", [(3, "sts3215"), (9, "sts3215")], baudrate=500_000, match_baudrate=True
    ) as s:
        assert FewBaudratesBus.scan_port(s.port) == {500_000: [3, 9]}


def test_misaddressed_garbled_and_late_replies(so_bus, so101):
    expected = so101.read_register(3, "Present_Position")
    so101.reply_as(3, 9, 1)
    with pytest.raises(BusProtocolError):
        so_bus.read("Present_Position", "elbow_flex", normalize=False)
    so101.reply_as(3, 9, 1)
    assert so_bus.read("Present_Position", "elbow_flex", normalize=False, num_retry=1) == expected
    so101.garbage_before_replies(3, b"\xff\x00\x12\xff", 1)
    assert so_bus.sync_read("Present_Position", normalize=False, num_retry=1)["elbow_flex"] == expected
    so101.delay_replies(3, 2_000, 1)  # well inside the deadline (wire time + the margin)
    assert so_bus.read("Present_Position", "elbow_flex", normalize=False) == expected
    late_us = 4 * LATENCY_MARGIN_MS * 1000
    so101.delay_replies(3, late_us, 1)  # far past it
    with pytest.raises(BusTimeoutError):
        so_bus.read("Present_Position", "elbow_flex", normalize=False)
    time.sleep(late_us / 1e6)  # let the late reply arrive and be discarded
    assert so_bus.read("Present_Position", "elbow_flex", normalize=False, num_retry=1) == expected


def _preset_names():
    try:
        from dexloop.sim import PRESETS
    except ImportError:
        return []
    return list(PRESETS)


@pytest.mark.parametrize("robot", _preset_names())
def test_every_simulated_arm_connects_and_reads(robot):
    """Each simulator preset (LeRobot's motor names, ids and models) works with the matching bus."""
    from dexloop.sim import simulated_bus

    with simulated_bus(robot, time_constant_s=0.0) as arm:
        bus_cls = FeetechMotorsBus if arm.preset.protocol == "feetech" else DynamixelMotorsBus
        motors = {
            m.name: Motor(m.id, m.model, R100 if m.name == "gripper" else DEG) for m in arm.preset.motors
        }
        bus = bus_cls(arm.port, motors, latency_margin_ms=LATENCY_MARGIN_MS)
        bus.connect()
        bus.calibration = bus.read_calibration()
        assert bus.is_calibrated
        raw = bus.sync_read("Present_Position", normalize=False)
        assert raw == arm.positions()
        normalized = bus.sync_read("Present_Position")
        assert normalized.keys() == raw.keys()
        arm.set_position(arm.preset.motors[0].name, 2047.5 + 4095 / 4)  # a quarter turn past the middle
        first = arm.preset.motors[0].name
        assert bus.read("Present_Position", first) == pytest.approx(90.0, abs=360 / 4095)
        bus.disconnect()
