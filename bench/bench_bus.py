"""Servo bus round trips: dexloop's driver against LeRobot's (the vendors' Python SDKs over pyserial).

Both drive the same simulated 6-motor buses (dexloop's servo simulator on a pty, answering with the
bytes real servos send): an SO-101 arm (6 x Feetech STS3215) and a Koch arm (Dynamixel X series). For
each bus it measures, in the same process:

* a 6-motor SYNC_READ of Present_Position and a 6-motor SYNC_WRITE of Goal_Position through each
  library's MotorsBus (``sync_read("Present_Position", normalize=False)``, as LeRobot's robots call it,
  and the normalised read a calibrated robot does), plus dexloop's bare ServoBus call;
* wall time per transaction (median and 99th percentile), CPU time of the calling thread per
  transaction, and the bytes on the wire (counted by the simulator) against the protocol minimum.

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
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import dexloop
from dexloop import motors as dexloop_motors
from dexloop.sim import preset, simulated_bus

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


def time_calls(call: Callable[[], object], count: int) -> dict:
    """Per-call wall time (median, p99, mean) and calling-thread CPU time, after a warm-up."""
    for _ in range(50):
        call()
    durations = np.empty(count)
    cpu_start = time.thread_time()
    for i in range(count):
        start = time.perf_counter()
        call()
        durations[i] = time.perf_counter() - start
    cpu = (time.thread_time() - cpu_start) / count
    return {
        "median_us": float(np.median(durations) * 1e6),
        "p99_us": float(np.percentile(durations, 99) * 1e6),
        "mean_us": float(durations.mean() * 1e6),
        "cpu_us": cpu * 1e6,
        "per_s": float(1 / durations.mean()),
    }


def wire_bytes(sim, call: Callable[[], object], count: int = 100) -> float:
    """Bytes on the wire per call, in both directions, as the simulator counts them."""
    simulator = sim.simulator
    simulator.reset_counters()
    for _ in range(count):
        call()
    time.sleep(0.01)  # let the last sync write reach the simulator
    return (simulator.bytes_received + simulator.bytes_sent) / count


def measure_library(name: str, library, bus_class, vendor: str, sim, count: int) -> dict:
    robot = ROBOTS[vendor]
    motor_names = preset(robot).motor_names
    bus = bus_class(
        port=sim.port, motors=motors_of(robot, library), calibration=calibration_of(robot, library)
    )
    bus.connect()
    # As a robot's configure() does: no return delay (the Dynamixel factory default holds each reply
    # 500 us), full acceleration.
    bus.configure_motors()
    try:
        goals = dict.fromkeys(motor_names, 2048)
        calls = {
            "sync_read": lambda: bus.sync_read("Present_Position", normalize=False),
            "sync_read_normalized": lambda: bus.sync_read("Present_Position"),
            "sync_write": lambda: bus.sync_write("Goal_Position", goals, normalize=False),
        }
        # Both libraries must agree on what they read before their speed is compared.
        positions = calls["sync_read"]()
        assert set(positions) == set(motor_names), f"{name} read {positions}"
        result = {}
        for operation, call in calls.items():
            result[operation] = time_calls(call, count)
            if operation in ("sync_read", "sync_write"):
                result[operation]["wire_bytes"] = wire_bytes(sim, call)
                result[operation]["minimum_bytes"] = MINIMUM_BYTES[(vendor, operation)]
        if name == "dexloop":
            # The C++ call alone, under the MotorsBus layer.
            servo_bus = bus.servo_bus
            ids = np.asarray([motor.id for motor in preset(robot).motors], dtype=np.uint8)
            register = dexloop._core.bus.find_model(preset(robot).motors[0].model).registers[
                "Present_Position"
            ]
            result["servo_bus_sync_read"] = time_calls(lambda: servo_bus.sync_read(ids, register), count)
        return result
    finally:
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
    meta = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": len(os.sched_getaffinity(0)),
        "dexloop": dexloop.__version__,
    }
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
    figure, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.2), squeeze=False)
    for axis, scenario in zip(axes[0], scenarios, strict=True):
        labels, dexloop_values, lerobot_values = [], [], []
        for vendor, record in results["scenarios"][scenario].items():
            for operation in ("sync_read", "sync_write"):
                labels.append(f"{ROBOTS[vendor]}\n{operation}")
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
    buses = {"feetech": dexloop_motors.FeetechMotorsBus, "dynamixel": dexloop_motors.DynamixelMotorsBus}
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
                record = {
                    "dexloop": measure_library(
                        "dexloop", dexloop_motors, buses[vendor], vendor, sim, args.transactions
                    )
                }
                if lerobot is not None:
                    record["lerobot"] = measure_library(
                        "lerobot", lerobot["library"], lerobot[vendor], vendor, sim, args.transactions
                    )
            ours = record["dexloop"]
            line = (
                f"  {robot:6s} sync_read {ours['sync_read']['median_us']:7.1f} us "
                f"(p99 {ours['sync_read']['p99_us']:.0f}, cpu {ours['sync_read']['cpu_us']:.0f} us, "
                f"{ours['sync_read']['wire_bytes']:.0f}/{ours['sync_read']['minimum_bytes']} bytes)  "
                f"sync_write {ours['sync_write']['median_us']:6.1f} us  "
                f"bare ServoBus sync_read {ours['servo_bus_sync_read']['median_us']:6.1f} us"
            )
            if "lerobot" in record:
                theirs = record["lerobot"]
                ratios = {
                    op: theirs[op]["mean_us"] / ours[op]["mean_us"]
                    for op in ("sync_read", "sync_read_normalized", "sync_write")
                }
                record["ratios_lerobot_over_dexloop"] = ratios
                line += (
                    f"\n  {'':6s} LeRobot: sync_read {theirs['sync_read']['median_us']:7.1f} us "
                    f"(p99 {theirs['sync_read']['p99_us']:.0f}, cpu {theirs['sync_read']['cpu_us']:.0f} us, "
                    f"{theirs['sync_read']['wire_bytes']:.0f} bytes)  sync_write "
                    f"{theirs['sync_write']['median_us']:6.1f} us  -> dexloop is "
                    f"{ratios['sync_read']:.1f}x faster on sync_read "
                    f"({ratios['sync_read_normalized']:.1f}x normalised), {ratios['sync_write']:.1f}x on sync_write"
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
