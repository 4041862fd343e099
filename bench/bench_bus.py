"""Servo bus round trips: dexloop's driver against LeRobot's (the vendors' Python SDKs over pyserial).

Both drive the same simulated 6-motor buses (dexloop's servo simulator on a pty, answering with the
bytes real servos send): an SO-101 arm (6 x Feetech STS3215) and a Koch arm (Dynamixel X series). For
each bus it measures, in the same process:

* a 6-motor SYNC_READ of Present_Position and a 6-motor SYNC_WRITE of Goal_Position through each
  library's MotorsBus: the raw ``sync_read("Present_Position", normalize=False)`` of calibration
  steps and the normalised ``sync_read("Present_Position")`` of a calibrated robot's observation,
  plus dexloop's bare ServoBus call;
* each library with its defaults: dexloop's driver polls the port for replies that have been
  arriving within 100 us (``max_spin_us``), LeRobot's SDKs poll for every reply;
* wall time per transaction (median and 99th percentile), CPU time of the calling thread per
  transaction, and the bytes on the wire (counted by the simulator) against the protocol minimum.

The cost of never taking a late reply for a fresh one: after a failed transaction, dexloop sends one
fence (a short READ whose reply no late one can look like) before the next; the read following a
failure (the last motor's reply corrupted) is timed for both libraries (``sync_read_after_failure``).
Clean transactions send no fence.

Twice: with the simulator answering at once, and with it holding each reply for its wire time at
1 Mbit/s (what a real bus costs). LeRobot is measured when ``lerobot`` is importable in this Python:
the environment of shared/tools/lerobot-peer.sh has it (install dexloop there with
``/tmp/lerobot-peer/bin/pip install --no-build-isolation -e .``).

    python bench/bench_bus.py [--transactions 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import dexloop
from dexloop import motors as dexloop_motors
from dexloop.sim import preset, simulated_bus

from host import host_metadata

REPO = Path(__file__).resolve().parent.parent

# Bytes of a 6-motor transaction by the protocol: the least any driver can send and receive.
MINIMUM_BYTES = {
    # SYNC_READ: 8 + 6 ids; 6 replies of 6 + 2 data bytes. SYNC_WRITE: 8 + 6 x (id + 2 bytes).
    ("feetech", "sync_read"): (8 + 6) + 6 * (6 + 2),
    ("feetech", "sync_write"): 8 + 6 * 3,
    # SYNC_READ: 14 + 6 ids; 6 replies of 11 + 4 data bytes. SYNC_WRITE: 14 + 6 x (id + 4 bytes).
    ("dynamixel", "sync_read"): (14 + 6) + 6 * (11 + 4),
    ("dynamixel", "sync_write"): 14 + 6 * 5,
}

ROBOTS = {"feetech": "so101", "dynamixel": "koch"}


def motors_of(robot: str, library) -> dict:
    """The robot's motors in `library`'s Motor type (dexloop.motors or lerobot.motors)."""
    mode = library.MotorNormMode.RANGE_M100_100
    return {motor.name: library.Motor(motor.id, motor.model, mode) for motor in preset(robot).motors}


def calibration_of(robot: str, library) -> dict:
    return {
        motor.name: library.MotorCalibration(
            id=motor.id, drive_mode=0, homing_offset=0, range_min=1000, range_max=3000
        )
        for motor in preset(robot).motors
    }


def open_bus(library, bus_class, robot: str, sim):
    bus = bus_class(
        port=sim.port, motors=motors_of(robot, library), calibration=calibration_of(robot, library)
    )
    bus.connect()
    # As a robot's configure() does: no return delay (the Dynamixel factory default holds each reply
    # 500 us), full acceleration.
    bus.configure_motors()
    return bus


def calls_of(bus, robot: str) -> dict[str, Callable[[], object]]:
    goals = dict.fromkeys(preset(robot).motor_names, 2048)
    return {
        "sync_read": lambda: bus.sync_read("Present_Position", normalize=False),
        "sync_read_normalized": lambda: bus.sync_read("Present_Position"),
        "sync_write": lambda: bus.sync_write("Goal_Position", goals, normalize=False),
    }


def interleaved(
    calls: dict[str, dict[str, Callable[[], object]]], operation: str, count: int, rounds: int = 10
) -> dict:
    """Times `operation` for every library in alternating blocks, so that drift of the machine (this
    VM's pty path swings between ~25 and ~75 us from minute to minute) hits all of them alike.
    Per call: wall time (median, p99, mean) and CPU time of the calling thread."""
    names = [name for name in calls if operation in calls[name]]
    durations = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    block = max(1, count // rounds)
    for _ in range(rounds):
        for name in names:
            call = calls[name][operation]
            for _ in range(10):  # after switching library: caches, the simulator's state
                call()
            cpu_start = time.thread_time()
            for _ in range(block):
                start = time.perf_counter()
                call()
                durations[name].append(time.perf_counter() - start)
            cpu[name] += time.thread_time() - cpu_start
    result = {}
    for name in names:
        values = np.asarray(durations[name])
        result[name] = {
            "median_us": float(np.median(values) * 1e6),
            "p99_us": float(np.percentile(values, 99) * 1e6),
            "mean_us": float(values.mean() * 1e6),
            "cpu_us": cpu[name] / len(values) * 1e6,
            "per_s": float(1 / values.mean()),
        }
    return result


def after_failure(sim, calls: dict[str, dict[str, Callable[[], object]]], robot: str, count: int) -> dict:
    """Per library, the median wall time of the sync read that follows a failed one (the last
    motor's reply corrupted), alternating libraries round by round."""
    last_motor = preset(robot).motors[-1].id
    durations: dict[str, list[float]] = {name: [] for name in calls if "sync_read" in calls[name]}
    failed = dict.fromkeys(durations, 0)
    for _ in range(count):
        for name in durations:
            read = calls[name]["sync_read"]
            sim.corrupt_replies(last_motor, 1)
            with contextlib.suppress(Exception):  # LeRobot raises ConnectionError, dexloop BusProtocolError
                read()
            start = time.perf_counter()
            try:
                read()
            except Exception:  # a loaded machine can hold the simulator past a deadline: not timed
                failed[name] += 1
                continue
            durations[name].append(time.perf_counter() - start)
    return {
        name: {"median_us": float(np.median(values) * 1e6), "failed": failed[name]}
        for name, values in durations.items()
    }


def wire_bytes(sim, call: Callable[[], object], count: int = 100) -> float:
    """Bytes on the wire per call, in both directions, as the simulator counts them."""
    simulator = sim.simulator
    simulator.reset_counters()
    for _ in range(count):
        call()
    time.sleep(0.01)  # let the last sync write reach the simulator
    return (simulator.bytes_received + simulator.bytes_sent) / count


def measure_vendor(vendor: str, sim, lerobot: dict | None, count: int) -> dict:
    """dexloop's MotorsBus, its bare C++ ServoBus call, and LeRobot's MotorsBus (when importable), all
    open on the same simulated bus at once and used in turn."""
    robot = ROBOTS[vendor]
    dexloop_class = (
        dexloop_motors.FeetechMotorsBus if vendor == "feetech" else dexloop_motors.DynamixelMotorsBus
    )
    buses = {"dexloop": open_bus(dexloop_motors, dexloop_class, robot, sim)}
    if lerobot is not None:
        buses["lerobot"] = open_bus(lerobot["library"], lerobot[vendor], robot, sim)
    try:
        calls = {name: calls_of(bus, robot) for name, bus in buses.items()}
        # The libraries must agree on what they read before their speed is compared.
        readings = {name: calls[name]["sync_read"]() for name in calls}
        assert all(reading == readings["dexloop"] for reading in readings.values()), readings
        servo_bus = buses["dexloop"].servo_bus
        ids = np.asarray([motor.id for motor in preset(robot).motors], dtype=np.uint8)
        register = dexloop._core.bus.find_model(preset(robot).motors[0].model).registers["Present_Position"]
        calls["dexloop ServoBus"] = {"sync_read": lambda: servo_bus.sync_read(ids, register)}
        record: dict = {name: {} for name in calls}
        for operation in ("sync_read", "sync_read_normalized", "sync_write"):
            for name, stats in interleaved(calls, operation, count).items():
                record[name][operation] = stats
                if operation in ("sync_read", "sync_write"):
                    stats["wire_bytes"] = wire_bytes(sim, calls[name][operation])
                    stats["minimum_bytes"] = MINIMUM_BYTES[(vendor, operation)]
        for name, stats in after_failure(sim, calls, robot, max(50, count // 10)).items():
            record[name]["sync_read_after_failure"] = stats
        return record
    finally:
        for bus in buses.values():
            with contextlib.suppress(Exception):
                bus.disconnect(disable_torque=False)


def lerobot_buses() -> dict | None:
    try:
        import lerobot.motors as lerobot_motors
        from lerobot.motors.dynamixel import DynamixelMotorsBus
        from lerobot.motors.feetech import FeetechMotorsBus
    except ImportError as error:
        print(f"LeRobot is not importable here ({error}); measuring dexloop alone", flush=True)
        return None
    return {"library": lerobot_motors, "feetech": FeetechMotorsBus, "dynamixel": DynamixelMotorsBus}


def system_metadata() -> dict:
    meta = host_metadata()
    with contextlib.suppress(ImportError):
        from importlib.metadata import version

        import lerobot
        import scservo_sdk  # noqa: F401

        meta["lerobot"] = lerobot.__version__
        meta["feetech-servo-sdk"] = version("feetech-servo-sdk")
        meta["dynamixel-sdk"] = version("dynamixel-sdk")
        meta["pyserial"] = version("pyserial")
    return meta


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(results["scenarios"])
    figure, axes = plt.subplots(1, len(scenarios), figsize=(7 * len(scenarios), 4.4), squeeze=False)
    for axis, scenario in zip(axes[0], scenarios, strict=True):
        labels, dexloop_values, lerobot_values = [], [], []
        for vendor, record in results["scenarios"][scenario].items():
            for operation in ("sync_read", "sync_read_normalized", "sync_write"):
                label = operation.replace("_normalized", "\nnormalised")
                labels.append(f"{ROBOTS[vendor]}\n{label}")
                dexloop_values.append(record["dexloop"][operation]["median_us"])
                lerobot_values.append(record.get("lerobot", {}).get(operation, {}).get("median_us", 0))
        x = np.arange(len(labels))
        bars = axis.bar(x - 0.2, dexloop_values, 0.4, label="dexloop")
        axis.bar_label(bars, fmt="%.0f", fontsize=7)
        if any(lerobot_values):
            bars = axis.bar(x + 0.2, lerobot_values, 0.4, label="LeRobot 0.6.1 (SDK + pyserial)")
            axis.bar_label(bars, fmt="%.0f", fontsize=7)
        axis.set_xticks(x, labels, fontsize=8)
        axis.set_ylabel("median µs per 6-motor transaction")
        axis.set_title(scenario, fontsize=9)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=2000, help="timed transactions per measurement")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="JSON + PNG folder")
    parser.add_argument(
        "--skip-lerobot", action="store_true", help="do not measure LeRobot even if importable"
    )
    args = parser.parse_args()

    lerobot = None if args.skip_lerobot else lerobot_buses()
    results = {"system": system_metadata(), "transactions": args.transactions, "scenarios": {}}
    scenarios = {
        "simulator replies at once": {},
        "simulator holds replies for their wire time at 1 Mbit/s": {"emulate_wire_time": True},
    }
    for scenario, options in scenarios.items():
        print(f"\n{scenario}")
        records = {}
        for vendor, robot in ROBOTS.items():
            with simulated_bus(robot, **options) as sim:
                record = measure_vendor(vendor, sim, lerobot, args.transactions)
            ours = record["dexloop"]
            line = (
                f"  {robot:6s} dexloop sync_read {ours['sync_read']['median_us']:7.1f} us "
                f"(p99 {ours['sync_read']['p99_us']:.0f}, cpu {ours['sync_read']['cpu_us']:.0f} us, "
                f"{ours['sync_read']['wire_bytes']:.0f}/{ours['sync_read']['minimum_bytes']} bytes)  "
                f"sync_write {ours['sync_write']['median_us']:6.1f} us  "
                f"(bare ServoBus sync_read {record['dexloop ServoBus']['sync_read']['median_us']:.1f} us)"
                f"\n  {'':6s} dexloop sync_read after a failed one (fence + read) "
                f"{ours['sync_read_after_failure']['median_us']:7.1f} us"
            )
            if "lerobot" in record:
                theirs = record["lerobot"]
                ratios = {
                    f"{op}_{kind}": theirs[op][key] / ours[op][key]
                    for op in ("sync_read", "sync_read_normalized", "sync_write")
                    for kind, key in (("wall", "median_us"), ("cpu", "cpu_us"))
                }
                record["ratios_lerobot_over_dexloop"] = ratios
                line += (
                    f"\n  {'':6s} LeRobot sync_read {theirs['sync_read']['median_us']:7.1f} us "
                    f"(p99 {theirs['sync_read']['p99_us']:.0f}, cpu {theirs['sync_read']['cpu_us']:.0f} us, "
                    f"{theirs['sync_read']['wire_bytes']:.0f} bytes)  sync_write "
                    f"{theirs['sync_write']['median_us']:6.1f} us\n  {'':6s} dexloop faster by: sync_read "
                    f"{ratios['sync_read_wall']:.1f}x wall / {ratios['sync_read_cpu']:.1f}x CPU, normalised "
                    f"{ratios['sync_read_normalized_wall']:.1f}x / {ratios['sync_read_normalized_cpu']:.1f}x, "
                    f"sync_write {ratios['sync_write_wall']:.1f}x / {ratios['sync_write_cpu']:.1f}x"
                    f"\n  {'':6s} LeRobot sync_read after a failed one "
                    f"{theirs['sync_read_after_failure']['median_us']:7.1f} us"
                )
            print(line, flush=True)
            records[vendor] = record
        results["scenarios"][scenario] = records

    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_bus.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.results / "bench_bus.png")
    print(f"\nwrote {args.results / 'bench_bus.json'} and bench_bus.png")


if __name__ == "__main__":
    sys.exit(main())
