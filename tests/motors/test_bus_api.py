"""The LeRobot-facing surface of dexloop.motors, without a bus: names, tables, validation."""

from __future__ import annotations

import dataclasses

import pytest

from dexloop.errors import DeviceNotConnectedError
from dexloop.motors import (
    DynamixelMotorsBus,
    FeetechMotorsBus,
    Motor,
    MotorCalibration,
    MotorNormMode,
    MotorsBus,
    SerialMotorsBus,
    dynamixel,
    feetech,
)


def test_data_types_have_lerobots_fields_and_values():
    assert [f.name for f in dataclasses.fields(MotorCalibration)] == [
        "id",
        "drive_mode",
        "homing_offset",
        "range_min",
        "range_max",
    ]
    assert [f.name for f in dataclasses.fields(Motor)] == [
        "id",
        "model",
        "norm_mode",
        "motor_type_str",
        "recv_id",
    ]
    assert Motor(1, "sts3215", MotorNormMode.DEGREES) == Motor(
        id=1, model="sts3215", norm_mode=MotorNormMode.DEGREES
    )
    assert {m.name: m.value for m in MotorNormMode} == {
        "RANGE_0_100": "range_0_100",
        "RANGE_M100_100": "range_m100_100",
        "DEGREES": "degrees",
    }
    assert MotorNormMode.DEGREES == "degrees"  # a str enum
    assert SerialMotorsBus is MotorsBus
    assert issubclass(FeetechMotorsBus, MotorsBus) and issubclass(DynamixelMotorsBus, MotorsBus)


def test_operating_modes():
    assert {m.name: m.value for m in feetech.OperatingMode} == {
        "POSITION": 0,
        "VELOCITY": 1,
        "PWM": 2,
        "STEP": 3,
    }
    assert {m.name: m.value for m in dynamixel.OperatingMode} == {
        "CURRENT": 0,
        "VELOCITY": 1,
        "POSITION": 3,
        "EXTENDED_POSITION": 4,
        "CURRENT_POSITION": 5,
        "PWM": 16,
    }
    for module in (feetech, dynamixel):
        assert module.DriveMode.INVERTED.value == 1 and module.DriveMode.NON_INVERTED.value == 0
        assert module.TorqueMode.ENABLED.value == 1 and module.TorqueMode.DISABLED.value == 0


def test_class_tables_are_lerobots():
    assert FeetechMotorsBus.apply_drive_mode is True and DynamixelMotorsBus.apply_drive_mode is False
    for cls in (FeetechMotorsBus, DynamixelMotorsBus):
        assert cls.default_baudrate == 1_000_000
        assert cls.default_timeout == 1000
        assert cls.normalized_data == ["Goal_Position", "Present_Position"]
    assert FeetechMotorsBus.model_number_table == {
        "sts3215": 777,
        "sts3250": 2825,
        "sm8512bl": 11272,
        "scs0009": 1284,
    }
    assert DynamixelMotorsBus.model_number_table == {
        "xl330-m077": 1190,
        "xl330-m288": 1200,
        "xl430-w250": 1060,
        "xm430-w350": 1020,
        "xm540-w270": 1120,
        "xc430-w150": 1070,
        "xh540-w150": 1110,
        "xc330-t288": 1220,
        "xc330-t181": 1210,
    }
    assert list(FeetechMotorsBus.model_baudrate_table["sts3215"].items()) == [
        (1_000_000, 0),
        (500_000, 1),
        (250_000, 2),
        (128_000, 3),
        (115_200, 4),
        (57_600, 5),
        (38_400, 6),
        (19_200, 7),
    ]
    assert DynamixelMotorsBus.model_baudrate_table["xl330-m288"][1_000_000] == 3
    assert FeetechMotorsBus.available_baudrates == [
        4_800,
        9_600,
        14_400,
        19_200,
        38_400,
        57_600,
        115_200,
        128_000,
        250_000,
        500_000,
        1_000_000,
    ]
    assert len(DynamixelMotorsBus.available_baudrates) == 17
    assert FeetechMotorsBus.model_encoding_table["sts3215"] == {
        "Homing_Offset": 11,
        "Goal_Position": 15,
        "Goal_Velocity": 15,
        "Present_Position": 15,
        "Present_Velocity": 15,
        "Present_Load": 10,
    }
    assert FeetechMotorsBus.model_encoding_table["scs0009"] == {}
    assert DynamixelMotorsBus.model_encoding_table["xl430-w250"]["Goal_Position"] == 4
    assert DynamixelMotorsBus.model_encoding_table["xl430-w250"]["Goal_Current"] == 2
    assert FeetechMotorsBus.model_ctrl_table["sts3215"]["Present_Position"] == (56, 2)
    assert FeetechMotorsBus.model_ctrl_table["sts3215"]["Acceleration_Multiplier "] == (86, 1)
    assert FeetechMotorsBus.model_ctrl_table["scs0009"]["Lock"] == (48, 1)
    assert DynamixelMotorsBus.model_ctrl_table["xl330-m288"]["Present_Position"] == (132, 4)
    assert FeetechMotorsBus.model_resolution_table["scs0009"] == 1024
    assert feetech.MODEL_PROTOCOL["scs0009"] == 1 and feetech.MODEL_PROTOCOL["sts3215"] == 0
    assert dynamixel.MODEL_OPERATING_MODES["xl430-w250"] == [1, 3, 4, 16]


def test_constructor_validation():
    motors = {"a": Motor(1, "sts3215", MotorNormMode.DEGREES)}
    bus = FeetechMotorsBus("/dev/ttyNONE", motors)
    assert bus.port == "/dev/ttyNONE" and bus.motors is motors and bus.calibration == {}
    assert bus.ids == [1] and bus.models == ["sts3215"] and len(bus) == 1
    assert not bus.is_connected
    calibration = {"a": MotorCalibration(1, 0, 0, 0, 4095)}
    assert FeetechMotorsBus("/dev/x", motors, calibration).calibration is calibration

    with pytest.raises(ValueError, match=r"same id \[2\]"):
        FeetechMotorsBus("/dev/x", {"a": Motor(2, "sts3215", "degrees"), "b": Motor(2, "sts3215", "degrees")})
    with pytest.raises(ValueError, match="unknown motor model 'xl330-m288'.*sts3215"):
        FeetechMotorsBus("/dev/x", {"a": Motor(1, "xl330-m288", "degrees")})
    with pytest.raises(ValueError, match="unknown motor model 'sts3215'"):
        DynamixelMotorsBus("/dev/x", {"a": Motor(1, "sts3215", "degrees")})
    with pytest.raises(ValueError, match="id 253 is outside"):
        FeetechMotorsBus("/dev/x", {"a": Motor(253, "sts3215", "degrees")})
    with pytest.raises(TypeError, match="must be a Motor"):
        FeetechMotorsBus("/dev/x", {"a": (1, "sts3215")})
    with pytest.raises(ValueError, match="'radians' is not a valid MotorNormMode"):
        FeetechMotorsBus("/dev/x", {"a": Motor(1, "sts3215", "radians")})
    with pytest.raises(ValueError, match="protocol_version must be 0"):
        FeetechMotorsBus("/dev/x", motors, protocol_version=2)
    with pytest.raises(ValueError, match=r"incompatible with protocol_version=1: \{'a': 'sts3215'\}"):
        FeetechMotorsBus("/dev/x", motors, protocol_version=1)


def test_norm_mode_given_as_a_string_works():
    bus = FeetechMotorsBus(
        "/dev/x", {"a": Motor(1, "sts3215", "degrees")}, {"a": MotorCalibration(1, 0, 0, 0, 4095)}
    )
    assert bus._normalize({1: 4095}) == {1: (4095 - 2047.5) * 360 / 4095}
    assert bus._unnormalize({1: 0.0}) == {1: 2047}


def test_everything_needs_a_connection():
    bus = DynamixelMotorsBus("/dev/x", {"a": Motor(1, "xl330-m288", "degrees")})
    with pytest.raises(DeviceNotConnectedError, match="DynamixelMotorsBus is not connected") as info:
        bus.sync_read("Present_Position")
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(DeviceNotConnectedError):
        bus.enable_torque()
    with pytest.raises(DeviceNotConnectedError):
        bus.read_calibration()


def test_repr_names_port_and_motors():
    text = repr(FeetechMotorsBus("/dev/ttyACM0", {"gripper": Motor(6, "sts3215", MotorNormMode.RANGE_0_100)}))
    assert "FeetechMotorsBus(" in text and "/dev/ttyACM0" in text and "gripper" in text
