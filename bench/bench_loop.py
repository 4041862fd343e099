"""Control-loop timing: dexloop's C++ loop against LeRobot 0.6.1's loop pacing, on the same machine, in
the same run.

Jitter (``--part jitter``): a 6-motor SO-101 bus (dexloop's servo simulator on a pty: the bytes six
STS3215 servos send) driven at ``--rate`` Hz for ``--seconds``, each tick one SYNC_READ of
Present_Position and one SYNC_WRITE of Goal_Position:

* dexloop: ``dexloop.control.ControlLoop`` on dexloop's FeetechMotorsBus: a C++ thread on absolute
  deadlines (clock_nanosleep + a 100 us spin), SCHED_FIFO where the system grants it; Python pushes
  chunks of actions into its queue meanwhile, as a policy would.
* LeRobot: its record/rollout loop's pacing (``start = perf_counter(); work;
  precise_sleep(1/fps - (perf_counter() - start))``, lerobot.utils.robot_utils) around its own
  FeetechMotorsBus (feetech-servo-sdk + pyserial), on a second simulated bus. Measured when ``lerobot``
  is importable in this Python (the environment of shared/tools/lerobot-peer.sh, with dexloop
  installed into it).

Lateness is how long after the deadline a tick started (for LeRobot's loop, its deadline is the tick
before's start + 1/fps, the target its sleep aims at). ``--load N`` runs N CPU-bound processes beside
both loops for the whole run (the shared machine's other work). Results: bench/results/bench_loop.json
and bench_loop.png.

    python bench/bench_loop.py [--rate 200] [--seconds 60] [--load 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

from dexloop import motors as dexloop_motors
from dexloop.control import ControlLoop
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import preset, simulated_bus

from host import host_metadata

REPO = Path(__file__).resolve().parent.parent
ROBOT = "so101"
PERCENTILES = (50, 90, 99, 99.9)


def motors_of(library) -> dict:
    mode = library.MotorNormMode.RANGE_M100_100
    return {m.name: library.Motor(m.id, m.model, mode) for m in preset(ROBOT).motors}


def calibration_of(library) -> dict:
    return {
        m.name: library.MotorCalibration(
            id=m.id, drive_mode=0, homing_offset=0, range_min=1000, range_max=3000
        )
        for m in preset(ROBOT).motors
    }


def trajectory(ticks: int, joints: int) -> np.ndarray:
    """A slow sine on every joint (normalised units), one row per tick."""
    t = np.arange(ticks)[:, None] / 200.0
    return (20.0 * np.sin(2 * np.pi * 0.25 * t + np.arange(joints)[None])).astype(np.float32)


def summary(lateness_ns: np.ndarray, period_ns: int) -> dict:
    out = {f"p{p:g}_us": float(np.percentile(lateness_ns, p) / 1e3) for p in PERCENTILES}
    out["max_us"] = float(lateness_ns.max() / 1e3)
    out["mean_us"] = float(lateness_ns.mean() / 1e3)
    out["ticks"] = int(lateness_ns.size)
    out["late_by_a_period"] = int((lateness_ns >= period_ns).sum())
    return out


def histogram_summary(histogram, period_ns: int) -> dict:
    out = {f"p{p:g}_us": histogram.percentile(p / 100) / 1e3 for p in PERCENTILES}
    out["max_us"] = histogram.max / 1e3
    out["mean_us"] = histogram.mean / 1e3
    out["ticks"] = histogram.count
    out["late_by_a_period"] = sum(count for upper, count in histogram.buckets() if upper > period_ns)
    return out


def run_dexloop(rate: float, seconds: float) -> dict:
    """dexloop's ControlLoop at `rate`; Python feeds it 0.5 s chunks every 0.25 s."""
    with simulated_bus(ROBOT, time_constant_s=0.0) as sim:
        bus = FeetechMotorsBus(
            sim.port, motors_of(dexloop_motors), calibration_of(dexloop_motors), latency_margin_ms=10
        )
        bus.connect()
        try:
            loop = ControlLoop(bus, fps=rate, realtime=True)
            ticks = int(rate * seconds)
            actions = trajectory(ticks + int(rate), len(loop.motor_names))
            chunk = int(rate / 2)
            report = loop.start()
            try:
                loop.push_chunk(actions[:chunk], start_timestep=0)
                # One second to settle (first reads, page faults) before the histograms count.
                time.sleep(1.0)
                loop.reset_histograms()
                start_ticks = loop.counters["ticks"]
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    step = loop.timestep + 1
                    loop.push_chunk(actions[step : step + chunk], start_timestep=step)
                    time.sleep(0.25)
            finally:
                loop.stop()
            counters = loop.counters
            result = {
                "realtime": report,
                "lateness": histogram_summary(loop.histogram("lateness"), loop.period_ns),
                "read_us": histogram_summary(loop.histogram("read"), 10**12),
                "write_us": histogram_summary(loop.histogram("write"), 10**12),
                "work_us": histogram_summary(loop.histogram("work"), 10**12),
                "ticks": counters["ticks"] - start_ticks,
                "overruns": counters["overruns"],
                "missed_deadlines": counters["missed_deadlines"],
                "read_failures": counters["read_failures"],
                "starved_ticks": counters["starved_ticks"],
                "lateness_buckets": loop.histogram("lateness").buckets(),
            }
        finally:
            bus.disconnect(disable_torque=False)
    return result


def run_lerobot(rate: float, seconds: float) -> dict | None:
    """LeRobot 0.6.1's loop pacing around its FeetechMotorsBus, at `rate`."""
    try:
        import lerobot
        import lerobot.motors as lerobot_motors
        from lerobot.motors.feetech import FeetechMotorsBus as LeRobotFeetechBus
        from lerobot.utils.robot_utils import precise_sleep
    except ImportError as error:
        print(f"LeRobot is not importable here ({error}); measuring dexloop alone", flush=True)
        return None
    interval = 1.0 / rate
    with simulated_bus(ROBOT, time_constant_s=0.0) as sim:
        bus = LeRobotFeetechBus(
            port=sim.port, motors=motors_of(lerobot_motors), calibration=calibration_of(lerobot_motors)
        )
        bus.connect()
        try:
            names = list(bus.motors)
            ticks = int(rate * (seconds + 1))
            actions = trajectory(ticks, len(names))
            lateness = np.zeros(ticks, dtype=np.int64)
            work = np.zeros(ticks, dtype=np.int64)
            failures = 0
            target = None
            for i in range(ticks):
                start = time.perf_counter()
                if target is not None:
                    lateness[i] = int((start - target) * 1e9)
                try:
                    bus.sync_read("Present_Position")
                    bus.sync_write("Goal_Position", dict(zip(names, actions[i].tolist(), strict=True)))
                except ConnectionError:
                    failures += 1
                dt = time.perf_counter() - start
                work[i] = int(dt * 1e9)
                target = start + interval
                precise_sleep(max(interval - dt, 0.0))
        finally:
            bus.disconnect(disable_torque=False)
    settle = int(rate)  # the same first second left out as for dexloop
    late = lateness[settle:]
    return {
        "lerobot": lerobot.__version__,
        "pacing": "lerobot.utils.robot_utils.precise_sleep (record / rollout loop)",
        "lateness": summary(late, int(interval * 1e9)),
        "work_us": summary(work[settle:], 10**12),
        "ticks": int(late.size),
        "overruns": int((work[settle:] > interval * 1e9).sum()),
        "read_failures": failures,
        "lateness_samples_us": np.sort(late / 1e3)[:: max(1, late.size // 2000)].tolist(),
    }


def _burn() -> None:
    while True:
        pass


@contextlib.contextmanager
def cpu_load(processes: int):
    workers = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.6))
    ours = results["dexloop"]
    uppers = np.array([upper for upper, _ in ours["lateness_buckets"]], dtype=float) / 1e3
    counts = np.array([count for _, count in ours["lateness_buckets"]], dtype=float)
    survival = 1.0 - np.cumsum(counts) / counts.sum()
    axis.step(uppers, np.maximum(survival, 1e-7), where="post", label="dexloop C++ ControlLoop")
    if results.get("lerobot"):
        samples = np.sort(np.asarray(results["lerobot"]["lateness_samples_us"]))
        axis.step(
            np.maximum(samples, 0.1),
            np.maximum(1.0 - np.arange(1, samples.size + 1) / samples.size, 1e-7),
            where="post",
            label=f"LeRobot {results['lerobot']['lerobot']} loop pacing (precise_sleep)",
        )
    axis.axvline(200, color="grey", linestyle=":", linewidth=1)
    axis.axvline(1000, color="grey", linestyle="--", linewidth=1)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("tick lateness (µs)")
    axis.set_ylabel("fraction of ticks later than this")
    axis.set_title(
        f"{results['rate_hz']:g} Hz, 6-motor sync read + write, {results['seconds']:g} s, "
        f"{results['load_processes']} CPU-bound processes beside",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--load", type=int, default=2, help="CPU-bound processes running beside the loops")
    parser.add_argument("--skip-lerobot", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if not math.isfinite(args.rate) or args.rate <= 0:
        parser.error("--rate must be positive")

    results: dict = {
        "system": host_metadata(),
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "load_processes": args.load,
        "euid_root": os.geteuid() == 0,
    }
    with cpu_load(args.load):
        print(f"dexloop ControlLoop: {args.rate:g} Hz for {args.seconds:g} s ...", flush=True)
        results["dexloop"] = ours = run_dexloop(args.rate, args.seconds)
        late = ours["lateness"]
        print(
            f"  lateness p50 {late['p50_us']:.1f} us, p99 {late['p99_us']:.1f} us, p99.9 {late['p99.9_us']:.1f} us, "
            f"max {late['max_us']:.0f} us; overruns {ours['overruns']}, read failures {ours['read_failures']}; "
            f"realtime {ours['realtime']}",
            flush=True,
        )
        results["lerobot"] = None
        if not args.skip_lerobot:
            print(f"LeRobot loop pacing: {args.rate:g} Hz for {args.seconds:g} s ...", flush=True)
            results["lerobot"] = theirs = run_lerobot(args.rate, args.seconds)
            if theirs:
                late = theirs["lateness"]
                print(
                    f"  lateness p50 {late['p50_us']:.1f} us, p99 {late['p99_us']:.1f} us, "
                    f"p99.9 {late['p99.9_us']:.1f} us, max {late['max_us']:.0f} us; overruns {theirs['overruns']}",
                    flush=True,
                )
                results["ratio_lerobot_over_dexloop"] = {
                    key: theirs["lateness"][key] / max(ours["lateness"][key], 1e-3)
                    for key in ("p99_us", "p99.9_us", "max_us")
                }
                print(f"  LeRobot / dexloop lateness: {results['ratio_lerobot_over_dexloop']}", flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_loop.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.results / "bench_loop.png")
    print(f"wrote {args.results / 'bench_loop.json'} and bench_loop.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
