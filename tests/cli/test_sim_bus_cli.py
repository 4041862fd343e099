"""``dexloop sim-bus`` run as a user runs it: a subprocess, LeRobot-style flags, commands on stdin."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading

import pytest

from dexloop.errors import BusTimeoutError, ServoError
from dexloop.motors import Motor, MotorNormMode
from dexloop.motors.dynamixel import DynamixelMotorsBus
from dexloop.motors.feetech import FeetechMotorsBus

COMMAND = [sys.executable, "-m", "dexloop.cli.main", "sim-bus"]
# Generous: a loaded 2-core machine may take seconds to start Python and import torch-free dexloop.
LINE_TIMEOUT_S = 30
# The simulator's thread may wait for a core on a loaded machine: a wide allowance beyond the wire time.
LATENCY_MARGIN_MS = 100


def run_once(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )


class SimBusProcess:
    """A running `dexloop sim-bus`: stdout and stderr merged in order, stdin open for commands."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = self.next_line()
        self.description = self.next_line()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self) -> str:
        try:
            return self.lines.get(timeout=LINE_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"no line from {self.process.args} within {LINE_TIMEOUT_S} s") from None

    def command(self, line: str) -> str:
        """Sends one command and returns the line that answers it."""
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.next_line()

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=LINE_TIMEOUT_S)


@pytest.fixture
def so101_process():
    sim_bus = SimBusProcess("--robot.type=so101_follower", "--time_constant_s=0")
    yield sim_bus
    sim_bus.close()


def so101_bus(port: str) -> FeetechMotorsBus:
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    motors = {name: Motor(i + 1, "sts3215", MotorNormMode.RANGE_M100_100) for i, name in enumerate(names)}
    return FeetechMotorsBus(port, motors, latency_margin_ms=LATENCY_MARGIN_MS)


def test_help_lists_the_flags_with_their_defaults():
    result = run_once("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--robot.type str" in text and "(default: so101_follower)" in text
    assert "koch_follower" in text and "aloha_leader" in text
    for flag in ["--fault.motor", "--fault.drop", "--fault.corrupt", "--fault.delay_us", "--fault.vanish"]:
        assert flag in text
    assert "--baudrate int" in text and "(default: 1000000)" in text
    assert "Config file for" not in text  # draccus's per-group file flags are left out


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--robot.type=so102_follower"],
            "--robot.type: unknown robot 'so102_follower'; choose one of so100_follower",
        ),
        (["--robot", "so102"], "--robot.type: unknown robot 'so102'; choose one of"),
        (["--robot"], "--robot needs a value: one of so100_follower"),
        (["--baudrate=fast"], "--baudrate: couldn't parse 'fast' into an int"),
        (
            ["--baudrate=123"],
            "--baudrate: so101_follower motors cannot be set to 123 baud; choose one of 1000000, 500000",
        ),
        (["--time_constant_s=-1"], "--time_constant_s: must be >= 0 seconds, got -1.0"),
        (["--emulate_wire_time=maybe"], "--emulate_wire_time: couldn't parse 'maybe' into a bool"),
        (
            ["--fault.motor=elbow"],
            "--fault.motor: no motor 'elbow' on so101_follower: use a name (shoulder_pan",
        ),
        (["--fault.drop=-2"], "--fault.drop: a count, or -1 for every one; got -2"),
        (["--fault.error_bits=256"], "--fault.error_bits: a status error byte in 0..255, got 256"),
        (["--fault.drop_instructions=-3"], "--fault.drop_instructions: a count, or -1 for every one; got -3"),
        (["--nope=1"], "unrecognized arguments: --nope=1; see `dexloop sim-bus --help`"),
        (["--robot.type"], "--robot.type: expected one argument; see `dexloop sim-bus --help`"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_code_2(args, expected):
    result = run_once(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dexloop sim-bus: ") and expected in lines[0]


def test_a_config_file_is_read_and_a_bad_one_is_one_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("robot: [\n")
    result = run_once(f"--config_path={broken}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--config_path: the file is not a YAML mapping of these flags" in result.stderr
    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("robot:\n  type: koch_follower\nbaudrate: fast\n")
    result = run_once(f"--config_path={bad_value}")
    assert (
        result.returncode == 2
        and result.stderr == "dexloop sim-bus: --baudrate: couldn't parse 'fast' into an int\n"
    )
    missing = tmp_path / "missing.yaml"
    result = run_once(f"--config_path={missing}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and str(missing) in result.stderr

    good = tmp_path / "koch.yaml"
    good.write_text("robot:\n  type: koch_follower\nfault:\n  motor: wrist_roll\n  vanish: true\n")
    sim_bus = SimBusProcess(f"--config_path={good}")
    try:
        assert "Koch v1.1 follower" in sim_bus.description
        assert (
            sim_bus.next_line()
            == "dexloop sim-bus: motor 5 (wrist_roll): vanished (reappear to bring it back)"
        )
    finally:
        assert sim_bus.close() == 0


def test_drivers_talk_to_it_and_stdin_injects_faults(so101_process):
    sim_bus = so101_process
    assert sim_bus.port.startswith("/dev/") and "SO-101 follower" in sim_bus.description
    bus = so101_bus(sim_bus.port)
    bus.connect()
    try:
        assert sim_bus.command("move gripper 1000") == "motor 6 (gripper): moved to 1000 steps"
        assert bus.read("Present_Position", "gripper", normalize=False) == 1000

        assert sim_bus.command("vanish gripper") == "motor 6 (gripper): vanished (reappear to bring it back)"
        with pytest.raises(BusTimeoutError):
            bus.read("ID", "gripper")
        # After a failure the bus sends a fence READ before its next transaction, to the last motor
        # that answered (never the silent one): the next read of another motor succeeds at once.
        assert bus.read("ID", "wrist_roll") == 5
        assert sim_bus.command("reappear 6") == "motor 6 (gripper): answering again"
        assert bus.read("ID", "gripper") == 6

        assert sim_bus.command("error_bits wrist_flex 0x20") == "motor 4 (wrist_flex): error bits 0x20"
        with pytest.raises(ServoError):
            bus.read("ID", "wrist_flex")
        assert sim_bus.command("clear") == "every motor: faults cleared"
        assert bus.read("ID", "wrist_flex") == 4

        answer = sim_bus.command("drop all 2")
        assert answer == "every motor: next 2 replies dropped"
        # Each try after a failure starts with a fence, whose reply the fault may drop too.
        assert bus.read("ID", "shoulder_pan", num_retry=4) == 1

        assert sim_bus.command("vanish elbow").startswith(
            "dexloop sim-bus: no motor 'elbow' on so101_follower"
        )
        assert sim_bus.command("explode").startswith(
            "dexloop sim-bus: unknown command 'explode'; commands: drop"
        )
        assert sim_bus.command("positions").split()[-1] == "gripper=1000"
    finally:
        bus.disconnect()
    sim_bus.process.stdin.write("quit\n")
    sim_bus.process.stdin.flush()
    assert sim_bus.process.wait(timeout=LINE_TIMEOUT_S) == 0
    assert sim_bus.next_line() == "dexloop sim-bus: stopped"


def test_fault_flags_apply_from_the_start_and_the_old_robot_flag_works():
    sim_bus = SimBusProcess("--robot", "koch", "--fault.motor=gripper", "--fault.drop=-1")
    try:
        assert "Koch v1.1 follower" in sim_bus.description
        assert sim_bus.next_line() == "dexloop sim-bus: motor 6 (gripper): every reply until cleared dropped"
        models = ["xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288"]
        bus = DynamixelMotorsBus(
            sim_bus.port,
            {f"m{i + 1}": Motor(i + 1, model, MotorNormMode.DEGREES) for i, model in enumerate(models)},
            latency_margin_ms=LATENCY_MARGIN_MS,
        )
        bus.connect(handshake=False)
        try:
            assert bus.ping(6) is None
            assert bus.ping(5) == 1200  # XL330-M288's model number
        finally:
            bus.disconnect(disable_torque=False)
    finally:
        assert sim_bus.close() == 0  # SIGTERM stops it cleanly
