"""dexloop.sim.commands: the command lines `dexloop sim-bus` reads on stdin, run on a SimulatedBus."""

from __future__ import annotations

import pytest

from dexloop.errors import BusProtocolError, BusTimeoutError
from dexloop.motors import Motor, MotorNormMode
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import simulated_bus
from dexloop.sim.commands import HELP, SimCommandError, SimCommands


@pytest.fixture
def sim_and_bus():
    with simulated_bus("so101", time_constant_s=0.0) as sim:
        motors = {name: Motor(m.id, m.model, MotorNormMode.DEGREES) for name, m in sim.motors.items()}
        # The simulator's thread may wait for a core on a loaded machine: a wide allowance.
        bus = FeetechMotorsBus(sim.port, motors, latency_margin_ms=100)
        bus.connect()
        yield sim, SimCommands(sim), bus
        bus.disconnect(disable_torque=False)


def test_fault_commands_reach_the_wire(sim_and_bus):
    sim, commands, bus = sim_and_bus
    assert commands.run("corrupt wrist_roll") == "motor 5 (wrist_roll): next reply corrupted"
    with pytest.raises(BusProtocolError):
        bus.read("ID", "wrist_roll")
    assert bus.read("ID", "wrist_roll") == 5  # one reply only

    assert (
        commands.run("reply_as 2 7 -1") == "motor 2 (shoulder_lift): every reply until cleared sent as id 7"
    )
    for _ in range(2):
        with pytest.raises(BusProtocolError):
            bus.read("ID", "shoulder_lift")
    assert commands.run("clear 2") == "motor 2 (shoulder_lift): faults cleared"
    assert bus.read("ID", "shoulder_lift") == 2

    # Far beyond the bus's 100 ms allowance: the read times out, whatever the machine's load.
    assert commands.run("delay gripper 300000") == "motor 6 (gripper): next reply delayed by 300000 us"
    with pytest.raises(BusTimeoutError):
        bus.read("ID", "gripper")

    assert commands.run("drop gripper 0") == "motor 6 (gripper): no more replies dropped"

    # Faults on the line from the driver to the motors.
    assert commands.run("drop_instructions") == "the driver's next write lost"
    with pytest.raises(BusTimeoutError):
        bus.read("ID", "elbow_flex")
    corrupt_before = sim.simulator.corrupt_instructions
    assert commands.run("damage_instructions 2") == "the driver's next 2 writes damaged (one bit flipped)"
    for _ in range(2):
        with pytest.raises((BusTimeoutError, BusProtocolError)):
            bus.read("ID", "elbow_flex")
    assert sim.simulator.corrupt_instructions > corrupt_before
    assert (
        commands.run("noise_instructions 00ff -1")
        == "every write of the driver until cleared preceded by 00ff"
    )
    assert commands.run("clear") == "every motor: faults cleared"
    assert bus.read("ID", "elbow_flex", num_retry=1) == 3
    assert commands.run("garbage 1 ff00aa 2") == "motor 1 (shoulder_pan): next 2 replies preceded by ff00aa"


def test_joint_and_register_commands(sim_and_bus):
    sim, commands, _ = sim_and_bus
    assert commands.run("move elbow_flex 3000.5") == "motor 3 (elbow_flex): moved to 3000.5 steps"
    assert sim.position("elbow_flex") == pytest.approx(3000.5)
    assert (
        commands.run("read 3 Present_Position")
        == f"motor 3 (elbow_flex): Present_Position = {sim.read(3, 'Present_Position')}"
    )
    assert commands.run("positions").split() == [f"{name}={value}" for name, value in sim.positions().items()]
    assert commands.run("   ") == "" and commands.run("# a comment") == ""
    assert commands.run("help") == HELP


@pytest.mark.parametrize(
    "line, message",
    [
        ("jump 1", "unknown command 'jump'; commands: drop, corrupt"),
        ("drop", "drop takes 1..2 arguments, got 0: usage drop MOTOR [COUNT]"),
        ("drop gripper 1 2", "drop takes 1..2 arguments, got 3"),
        ("drop 7", "no motor '7' on so101_follower: use a name (shoulder_pan"),
        ("drop gripper many", "COUNT must be an integer, got 'many'"),
        ("drop gripper -2", "COUNT must be in -1..1000000, got -2"),
        ("error_bits 1 256", "BITS must be in 0..255, got 256"),
        ("garbage 1 xyz", "HEX_BYTES must be hexadecimal bytes such as ff00aa, got 'xyz'"),
        ("noise_instructions", "noise_instructions takes 1..2 arguments, got 0"),
        ("drop_instructions 1 2", "drop_instructions takes 0..1 arguments, got 2"),
        ("move all 10", "move needs one motor, not all"),
        ("move 1 far", "STEPS must be a number, got 'far'"),
        ("read 1 Nope", "has no register 'Nope'"),
        ("drop 'gripper", "cannot parse"),
    ],
)
def test_bad_commands_name_what_is_wrong(sim_and_bus, line, message):
    _, commands, _ = sim_and_bus
    with pytest.raises(SimCommandError) as error:
        commands.run(line)
    assert message in str(error.value)
