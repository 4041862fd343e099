"""The servo simulator through its binding, the arm presets, and the ``dexloop sim-bus`` command.

The driver side is plain os / termios on the pty slave, with packets written out byte for byte."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

import pytest

from dexloop.sim import PRESETS, ServoSimulator, SimulatedBus, preset, simulated_bus

# Feetech PING of id 1 and its 6-byte status; Dynamixel PING of id 1 (status: model + firmware).
FEETECH_PING_1 = bytes.fromhex("ffff010201fb")
FEETECH_STATUS_1 = bytes.fromhex("ffff010200fc")
DYNAMIXEL_PING_1 = bytes.fromhex("fffffd0001030001194e")


def feetech_packet(motor_id: int, instruction: int, params: bytes = b"") -> bytes:
    body = bytes([motor_id, len(params) + 2, instruction, *params])
    return b"\xff\xff" + body + bytes([~sum(body) & 0xFF])


class Port:
    """The pty slave opened like a serial port, raw."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def transact(self, request: bytes, reply_size: int, timeout: float = 1.0) -> bytes:
        termios.tcflush(self.fd, termios.TCIFLUSH)
        os.write(self.fd, request)
        return self.read(reply_size, timeout)

    def read(self, size: int, timeout: float) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                break
            data += os.read(self.fd, size - len(data))
        return data


def test_binding_answers_a_feetech_ping_on_its_pty() -> None:
    with ServoSimulator("feetech", [(1, "sts3215"), (2, "sts3215")]) as sim, Port(sim.port) as port:
        assert sim.running
        assert sim.port.startswith("/dev/pts/")
        assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
        # READ Model_Number (address 3, 2 bytes) of id 2: 777, little-endian.
        status = port.transact(feetech_packet(2, 0x02, bytes([3, 2])), 8)
        assert status[5:7] == (777).to_bytes(2, "little")
        assert sim.instruction_count(0x01) == 1
        assert sim.instruction_counts() == {0x01: 1, 0x02: 1}
        assert sim.bytes_received == 14 and sim.replies_sent == 2
    assert not sim.running


def test_binding_faults_introspection_and_errors() -> None:
    sim = ServoSimulator("feetech", [(1, "sts3215"), (2, "sts3215")], time_constant_s=0.01, seed=3)
    sim.start()
    try:
        with Port(sim.port) as port:
            sim.drop_replies(1, 1)
            assert port.transact(FEETECH_PING_1, 6, timeout=0.05) == b""
            assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
            sim.corrupt_replies(None, 1)  # every motor
            corrupt = port.transact(FEETECH_PING_1, 6)
            assert corrupt[:5] == FEETECH_STATUS_1[:5] and corrupt[5] != FEETECH_STATUS_1[5]
            sim.reply_as(1, 7, count=1)
            assert port.transact(FEETECH_PING_1, 6)[2] == 7
            sim.garbage_before_replies(1, b"\x00\x11", 1)
            assert port.transact(FEETECH_PING_1, 8) == b"\x00\x11" + FEETECH_STATUS_1
            sim.set_error_bits(1, 0x20)
            assert port.transact(FEETECH_PING_1, 6)[4] == 0x20
            sim.vanish(1)
            assert port.transact(FEETECH_PING_1, 6, timeout=0.05) == b""
            sim.clear_faults()
            sent = time.monotonic()
            sim.delay_replies(1, 30_000, -1)
            assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
            assert time.monotonic() - sent >= 0.03
            sim.clear_faults(1)
            assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
        # Introspection bypasses the bus.
        sim.set_actual_position(2, 3000)
        assert sim.actual_position(2) == 3000
        sim.write_register(2, "Homing_Offset", -100)
        assert sim.read_register(2, "Present_Position") == 3100
        assert sim.read_memory(2, 3, 2) == (777).to_bytes(2, "little")
        assert sim.model(2) == "sts3215" and sim.ids == [1, 2]
        sim.write_register(2, "Torque_Enable", 1)
        sim.write_register(2, "Goal_Position", 3200)
        deadline = time.monotonic() + 2
        while sim.read_register(2, "Present_Position") != 3200 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sim.read_register(2, "Present_Position") == 3200
        with pytest.raises(ValueError, match="no motor with id 9"):
            sim.read_register(9, "ID")
        with pytest.raises(ValueError, match="has no register"):
            sim.read_register(1, "Nope")
    finally:
        sim.stop()
    with pytest.raises(ValueError, match="unknown servo protocol"):
        ServoSimulator("can", [(1, "sts3215")])
    with pytest.raises(ValueError, match="does not speak the dynamixel protocol"):
        ServoSimulator("dynamixel", [(1, "sts3215")])
    with pytest.raises(ValueError, match="given twice"):
        ServoSimulator("feetech", [(1, "sts3215"), (1, "sts3215")])


def test_binding_line_faults_from_the_driver_to_the_motors() -> None:
    with ServoSimulator("feetech", [(1, "sts3215")], seed=5) as sim, Port(sim.port) as port:
        # Noise while the line was idle, then the instruction: still answered.
        sim.noise_before_instructions(b"\x13\x37", 1)
        assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
        sim.drop_instructions(1)
        assert port.transact(FEETECH_PING_1, 6, timeout=0.05) == b""
        assert sim.instruction_count(0x01) == 1 and sim.corrupt_instructions == 0
        assert sim.bytes_received == 2 * len(FEETECH_PING_1)  # what the driver sent, noise aside
        # One flipped bit: Feetech ignores the damaged packet (or sees no packet at all).
        sim.damage_instructions(-1)
        for _ in range(5):
            assert port.transact(FEETECH_PING_1, 6, timeout=0.02) == b""
        assert sim.instruction_count(0x01) == 1
        sim.clear_faults()  # every motor: the line faults too
        time.sleep(0.06)  # a servo drops a partial packet after an idle line
        assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
    with ServoSimulator("dynamixel", [(1, "xl330-m288")], seed=5) as sim, Port(sim.port) as port:
        # Dynamixel answers a unicast packet whose CRC fails with the CRC error (when the id and
        # length survive the flipped bit), else nothing: never a normal status.
        for _ in range(20):
            sim.damage_instructions(1)
            reply = port.transact(DYNAMIXEL_PING_1, 14, timeout=0.05)
            assert reply == b"" or (reply[7] == 0x55 and reply[8] == 0x03), reply.hex()
        assert sim.instruction_count(0x01) == 0


@pytest.mark.parametrize(
    ("robot", "protocol", "models"),
    [
        ("so100", "feetech", ["sts3215"] * 6),
        ("so101_leader", "feetech", ["sts3215"] * 6),
        ("koch", "dynamixel", ["xl430-w250"] * 2 + ["xl330-m288"] * 4),
        ("koch_leader", "dynamixel", ["xl330-m077"] * 6),
        ("aloha", "dynamixel", ["xm540-w270"] * 7 + ["xm430-w350"] * 2),
        ("aloha_leader", "dynamixel", ["xm430-w350"] * 7 + ["xl430-w250", "xc430-w150"]),
    ],
)
def test_presets_use_lerobots_names_ids_and_models(robot: str, protocol: str, models: list[str]) -> None:
    arm = preset(robot)
    assert arm.protocol == protocol
    assert [motor.model for motor in arm.motors] == models
    assert [motor.id for motor in arm.motors] == list(range(1, len(models) + 1))
    if len(models) == 6:
        assert arm.motor_names == [
            "shoulder_pan",
            "shoulder_lift",
            "elbow_flex",
            "wrist_flex",
            "wrist_roll",
            "gripper",
        ]
    else:
        assert arm.motor_names[0] == "waist" and arm.motor_names[-1] == "gripper"
    with simulated_bus(robot) as sim:
        assert sim.simulator.ids == list(range(1, len(models) + 1))
        with Port(sim.port) as port:
            if protocol == "feetech":
                assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
            else:
                status = port.transact(DYNAMIXEL_PING_1, 14)
                model_number = int.from_bytes(status[9:11], "little")
                assert (status[4], status[7], status[8]) == (1, 0x55, 0) and model_number > 0


def test_simulated_bus_addresses_motors_by_name() -> None:
    bus = SimulatedBus("so101_follower", seed=1)
    assert not bus.simulator.running
    bus.set_position("gripper", 1500)
    assert bus.position("gripper") == 1500
    assert bus.positions()["gripper"] == 1500
    bus.write("elbow_flex", "Homing_Offset", 100)
    assert bus.read("elbow_flex", "Homing_Offset") == 100
    bus.vanish("wrist_roll")
    bus.drop_replies(None, -1)
    bus.clear_faults()
    with pytest.raises(ValueError, match="has no motor 'elbow'"):
        bus.read("elbow", "ID")
    with pytest.raises(ValueError, match="unknown robot 'so102'"):
        SimulatedBus("so102")
    assert set(PRESETS) >= {"so100_follower", "so101_leader", "koch_follower", "aloha_leader"}


def dexloop_command() -> list[str]:
    script = Path(sys.executable).with_name("dexloop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dexloop.cli.main"]


def test_cli_help_lists_commands_and_defaults() -> None:
    top = subprocess.run([*dexloop_command(), "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and "sim-bus" in top.stdout
    shown = subprocess.run(
        [*dexloop_command(), "sim-bus", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0
    help_text = " ".join(shown.stdout.split())  # argparse wraps lines
    for flag, default in [
        ("--robot.type", "so101_follower"),
        ("--baudrate", "1000000"),
        ("--time_constant_s", "0.04"),
    ]:
        assert flag in help_text and f"(default: {default})" in help_text
    assert "--emulate_wire_time" in help_text
    bad = subprocess.run(
        [*dexloop_command(), "sim-bus", "--robot", "nope"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "unknown robot 'nope'" in bad.stderr
    unknown = subprocess.run([*dexloop_command(), "fly"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown command 'fly'" in unknown.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_sim_bus_prints_its_port_answers_and_exits_cleanly(stop_signal: int) -> None:
    process = subprocess.Popen(
        [*dexloop_command(), "sim-bus", "--robot", "so101"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "sim-bus printed no port"
        port_path = process.stdout.readline().strip()
        assert port_path.startswith("/dev/")
        with Port(port_path) as port:
            assert port.transact(FEETECH_PING_1, 6) == FEETECH_STATUS_1
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
