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

Async (``--part async``): 30 Hz control of the same bus with a policy that takes 150 ms per chunk
(it sleeps, then returns 30 actions tracing a slow sine from the observed state), served over gRPC on
this machine, chunk size 30 and ``chunk_size_threshold`` 0.5 on both sides:

* dexloop: ``dexloop.async_inference.PolicyServer`` and ``PolicyClient``, chunks into the C++ loop's
  action queue; a Python thread sends observations when the queue is at or below the threshold.
* LeRobot: its ``PolicyServer`` (the 150 ms policy in place of a loaded checkpoint: its
  ``SendPolicyInstructions`` and ``_predict_action_chunk`` are replaced, the transport, admission
  filter and ``GetActions`` are its own) and its ``RobotClient`` driving its SO-101 follower class on
  the simulated bus (its control loop, receiver thread and aggregation unchanged).

Each reports starved ticks (ticks with no action to execute, after the first chunk arrived), the
action age when executed / the chunk's trip from observation capture to the client, and the stale
actions dropped.

Lateness is how long after the deadline a tick started (for LeRobot's loop, its deadline is the tick
before's start + 1/fps, the target its sleep aims at). ``--load N`` runs N CPU-bound processes beside
both loops for the whole run (the shared machine's other work). Results: bench/results/bench_loop.json
and bench_loop.png.

    python bench/bench_loop.py [--part all|jitter|async] [--rate 200] [--seconds 60] [--load 2]
        [--async-seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from dexloop import motors as dexloop_motors
from dexloop.control import ControlLoop, Pacer
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


ASYNC_FPS = 30
ASYNC_CHUNK = 30
ASYNC_THRESHOLD = 0.5
POLICY_S = 0.150


def slow_chunk(joints: int) -> np.ndarray:
    """The 150 ms policy's answer: the next 30 positions of a slow sine of the wall clock on every joint
    (the arm keeps moving, so LeRobot's server never filters observations as too similar)."""
    time.sleep(POLICY_S)
    t = time.time() + np.arange(ASYNC_CHUNK)[:, None] / ASYNC_FPS
    return (15.0 * np.sin(2 * np.pi * 0.2 * t + np.arange(joints)[None])).astype(np.float32)


def run_dexloop_async(seconds: float) -> dict:
    from dexloop.async_inference import PolicyClient, PolicyServer
    from dexloop.async_inference.messages import PolicyFeatures, StateFeature

    names = preset(ROBOT).motor_names

    class SlowPolicy:
        features = PolicyFeatures(
            action_dim=len(names),
            chunk_size=ASYNC_CHUNK,
            states=(StateFeature("observation.state", (len(names),)),),
            action_names=tuple(f"{name}.pos" for name in names),
            policy_type="act",
        )

        def predict_chunk(self, observation: dict) -> np.ndarray:
            return slow_chunk(observation["observation.state"].size)

    with simulated_bus(ROBOT) as sim:
        bus = FeetechMotorsBus(
            sim.port, motors_of(dexloop_motors), calibration_of(dexloop_motors), latency_margin_ms=10
        )
        bus.connect()
        loop = ControlLoop(bus, fps=ASYNC_FPS, realtime=True)
        with PolicyServer(SlowPolicy(), port=0) as server:
            client = PolicyClient(
                server.address,
                sink=lambda start, actions, observed, received: loop.push_chunk(
                    actions, start, observed, received
                ),
                fps=ASYNC_FPS,
                chunk_size_threshold=ASYNC_THRESHOLD,
                actions_per_chunk=ASYNC_CHUNK,
            )
            client.connect()
            loop.start()
            try:
                end = time.monotonic() + seconds
                pacer = Pacer(ASYNC_FPS)
                while time.monotonic() < end:
                    depth = loop.queue_depth
                    if client.should_send(depth):
                        state = loop.snapshot().present.astype(np.float32)
                        client.send_observation(
                            {"observation.state": state},
                            timestep=loop.timestep + 1,
                            must_go=client.must_go(depth),
                        )
                    pacer.wait()
            finally:
                loop.stop()
                client.close()
        bus.disconnect(disable_torque=False)
    counters = loop.counters
    age = loop.histogram("action_age")
    trip = client.latency.percentiles()["total"]
    return {
        "ticks": counters["ticks"],
        "actions_executed": counters["actions_taken"],
        "starved_ticks_after_first_chunk": counters["starved_ticks"],
        "ticks_before_first_chunk": counters["ticks_before_first_action"],
        "actions_dropped_stale": counters["actions_dropped_stale"],
        "chunks": client.counters()["chunks_received"],
        "action_age_ms": {
            "p50": age.percentile(0.5) / 1e6,
            "p99": age.percentile(0.99) / 1e6,
            "max": age.max / 1e6,
        },
        "chunk_trip_ms": {"p50": trip["p50"], "p99": trip["p99"], "max": trip["max"]},
        "lateness_p99_us": loop.histogram("lateness").percentile(0.99) / 1e3,
    }


def run_lerobot_async(seconds: float) -> dict | None:
    import tempfile

    try:
        # LeRobot's async modules open log files in ./logs when imported: keep them out of the repo.
        with contextlib.chdir(tempfile.mkdtemp(prefix="bench-loop-lerobot-logs-")):
            import lerobot.async_inference.policy_server
            import lerobot.async_inference.robot_client  # noqa: F401
        import grpc
        import torch
        from lerobot.async_inference.configs import PolicyServerConfig, RobotClientConfig
        from lerobot.async_inference.helpers import TimedAction
        from lerobot.async_inference.policy_server import PolicyServer
        from lerobot.async_inference.robot_client import RobotClient
        from lerobot.robots.so_follower import SO101FollowerConfig
        from lerobot.transport import services_pb2, services_pb2_grpc
    except ImportError as error:
        print(
            f"LeRobot's async inference is not importable here ({error}); measuring dexloop alone", flush=True
        )
        return None
    import socket
    import threading
    from concurrent import futures
    from types import SimpleNamespace

    from dexloop.motors.calibration import save_calibration

    class SlowPolicyServer(PolicyServer):
        """LeRobot's server with the 150 ms policy instead of a loaded checkpoint."""

        def SendPolicyInstructions(self, request, context):

            specs = pickle.loads(request.data)  # nosec: our own client in this process
            self.device, self.policy_type = specs.device, specs.policy_type
            self.lerobot_features, self.actions_per_chunk = specs.lerobot_features, specs.actions_per_chunk
            self.policy = SimpleNamespace(config=SimpleNamespace(image_features={}))
            return services_pb2.Empty()

        def _predict_action_chunk(self, observation_t):
            self.last_processed_obs = observation_t
            chunk = torch.from_numpy(slow_chunk(len(preset(ROBOT).motors)))
            return [
                TimedAction(
                    timestamp=observation_t.get_timestamp() + i * self.config.environment_dt,
                    timestep=observation_t.get_timestep() + i,
                    action=action,
                )
                for i, action in enumerate(chunk)
            ]

    class CountingClient(RobotClient):
        """LeRobot's client, counting what its control loop finds."""

        def __init__(self, config):
            super().__init__(config)
            self.loop_ticks = 0
            self.starved = 0
            self.before_first = 0
            self.executed = 0
            self.trips_ms: list[float] = []

        def actions_available(self):
            available = super().actions_available()
            self.loop_ticks += 1
            if not available:
                if self.executed:
                    self.starved += 1
                else:
                    self.before_first += 1
            return available

        def control_loop_action(self, verbose: bool = False):
            self.executed += 1
            return super().control_loop_action(verbose)

        def _aggregate_action_queues(self, incoming_actions, aggregate_fn=None):
            if incoming_actions:
                self.trips_ms.append((time.time() - incoming_actions[0].get_timestamp()) * 1e3)
            return super()._aggregate_action_queues(incoming_actions, aggregate_fn)

    # LeRobot logs every chunk at INFO; its loggers are named after the two sides.
    for name in ("policy_server", "robot_client"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server_config = PolicyServerConfig(host="127.0.0.1", port=port, fps=ASYNC_FPS)
    policy_server = SlowPolicyServer(server_config)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    services_pb2_grpc.add_AsyncInferenceServicer_to_server(policy_server, grpc_server)
    grpc_server.add_insecure_port(f"127.0.0.1:{port}")
    grpc_server.start()
    calibration_dir = Path(tempfile.mkdtemp(prefix="bench-loop-calibration-"))
    try:
        with simulated_bus(ROBOT) as sim:
            calibration = calibration_of(dexloop_motors)
            for name, cal in calibration.items():
                sim.write(name, "Homing_Offset", cal.homing_offset)
                sim.write(name, "Min_Position_Limit", cal.range_min)
                sim.write(name, "Max_Position_Limit", cal.range_max)
            save_calibration(calibration, calibration_dir / "bench.json")
            config = RobotClientConfig(
                policy_type="act",
                pretrained_name_or_path="slow-150ms",
                robot=SO101FollowerConfig(port=sim.port, id="bench", calibration_dir=calibration_dir),
                actions_per_chunk=ASYNC_CHUNK,
                server_address=f"127.0.0.1:{port}",
                chunk_size_threshold=ASYNC_THRESHOLD,
                fps=ASYNC_FPS,
                aggregate_fn_name="weighted_average",
            )
            client = CountingClient(config)
            if not client.start():
                raise RuntimeError("LeRobot's client could not reach its server")
            receiver = threading.Thread(target=client.receive_actions, daemon=True)
            receiver.start()
            stopper = threading.Timer(seconds, client.shutdown_event.set)
            stopper.start()
            try:
                client.control_loop(task="")
            finally:
                client.stop()
                receiver.join(timeout=5)
    finally:
        grpc_server.stop(0)
    trips = np.asarray(client.trips_ms or [0.0])
    return {
        "ticks": client.loop_ticks,
        "actions_executed": client.executed,
        "starved_ticks_after_first_chunk": client.starved,
        "ticks_before_first_chunk": client.before_first,
        "chunks": len(client.trips_ms),
        "chunk_trip_ms": {
            "p50": float(np.percentile(trips, 50)),
            "p99": float(np.percentile(trips, 99)),
            "max": float(trips.max()),
        },
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

    panels = [key for key in ("jitter", "async") if results.get(key)]
    figure, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 4.6), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        part = results[panel]
        if panel == "jitter":
            ours = part["dexloop"]
            uppers = np.array([upper for upper, _ in ours["lateness_buckets"]], dtype=float) / 1e3
            counts = np.array([count for _, count in ours["lateness_buckets"]], dtype=float)
            survival = 1.0 - np.cumsum(counts) / counts.sum()
            axis.step(uppers, np.maximum(survival, 1e-7), where="post", label="dexloop C++ ControlLoop")
            if part.get("lerobot"):
                samples = np.sort(np.asarray(part["lerobot"]["lateness_samples_us"]))
                axis.step(
                    np.maximum(samples, 0.1),
                    np.maximum(1.0 - np.arange(1, samples.size + 1) / samples.size, 1e-7),
                    where="post",
                    label=f"LeRobot {part['lerobot']['lerobot']} loop pacing (precise_sleep)",
                )
            axis.axvline(200, color="grey", linestyle=":", linewidth=1)
            axis.axvline(1000, color="grey", linestyle="--", linewidth=1)
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel("tick lateness (µs)")
            axis.set_ylabel("fraction of ticks later than this")
            axis.set_title(
                f"jitter: {part['rate_hz']:g} Hz, 6-motor sync read + write, {part['seconds']:g} s, "
                f"{results['load_processes']} CPU-bound processes beside",
                fontsize=9,
            )
        else:
            libraries = [name for name in ("dexloop", "lerobot") if part.get(name)]
            x = np.arange(len(libraries))
            starved = [part[name]["starved_ticks_after_first_chunk"] for name in libraries]
            bars = axis.bar(x - 0.2, starved, 0.4, label="starved ticks after the first chunk")
            axis.bar_label(bars, fontsize=8)
            axis.set_ylim(0, max(1, max(starved) * 1.3))
            twin = axis.twinx()
            trips = [part[name]["chunk_trip_ms"]["p99"] for name in libraries]
            bars = twin.bar(x + 0.2, trips, 0.4, color="tab:orange", label="chunk trip p99 (ms)")
            twin.bar_label(bars, fmt="%.0f", fontsize=8)
            twin.set_ylim(0, max(trips) * 1.3)
            axis.set_xticks(x, ["dexloop" if n == "dexloop" else "LeRobot 0.6.1" for n in libraries])
            axis.set_ylabel("starved ticks")
            twin.set_ylabel("observation capture to chunk received, p99 (ms)")
            axis.set_title(
                f"async: {ASYNC_FPS} Hz, policy {POLICY_S * 1e3:.0f} ms per chunk of {ASYNC_CHUNK}, "
                f"threshold {ASYNC_THRESHOLD}, {part['seconds']:g} s",
                fontsize=9,
            )
            twin.legend(loc="upper center", fontsize=8)
        axis.legend(loc="upper left" if panel == "async" else "lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("all", "jitter", "async"), default="all")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="jitter run length per loop")
    parser.add_argument("--async-seconds", type=float, default=30.0, help="async run length per library")
    parser.add_argument("--load", type=int, default=2, help="CPU-bound processes running beside the loops")
    parser.add_argument("--skip-lerobot", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if not math.isfinite(args.rate) or args.rate <= 0:
        parser.error("--rate must be positive")

    path = args.results / "bench_loop.json"
    # A part run alone keeps the other part of the last published run.
    results: dict = json.loads(path.read_text()) if args.part != "all" and path.is_file() else {}
    results.update({"system": host_metadata(), "load_processes": args.load, "euid_root": os.geteuid() == 0})
    with cpu_load(args.load):
        if args.part in ("all", "jitter"):
            jitter: dict = {"rate_hz": args.rate, "seconds": args.seconds}
            print(f"jitter, dexloop ControlLoop: {args.rate:g} Hz for {args.seconds:g} s ...", flush=True)
            jitter["dexloop"] = ours = run_dexloop(args.rate, args.seconds)
            late = ours["lateness"]
            print(
                f"  lateness p50 {late['p50_us']:.1f} us, p99 {late['p99_us']:.1f} us, p99.9 "
                f"{late['p99.9_us']:.1f} us, max {late['max_us']:.0f} us; overruns {ours['overruns']}, "
                f"read failures {ours['read_failures']}; realtime {ours['realtime']}",
                flush=True,
            )
            jitter["lerobot"] = None
            if not args.skip_lerobot:
                print(f"jitter, LeRobot loop pacing: {args.rate:g} Hz for {args.seconds:g} s ...", flush=True)
                jitter["lerobot"] = theirs = run_lerobot(args.rate, args.seconds)
                if theirs:
                    late = theirs["lateness"]
                    print(
                        f"  lateness p50 {late['p50_us']:.1f} us, p99 {late['p99_us']:.1f} us, "
                        f"p99.9 {late['p99.9_us']:.1f} us, max {late['max_us']:.0f} us; overruns {theirs['overruns']}",
                        flush=True,
                    )
                    jitter["ratio_lerobot_over_dexloop"] = {
                        key: theirs["lateness"][key] / max(ours["lateness"][key], 1e-3)
                        for key in ("p99_us", "p99.9_us", "max_us")
                    }
                    print(f"  LeRobot / dexloop lateness: {jitter['ratio_lerobot_over_dexloop']}", flush=True)
            results["jitter"] = jitter
        if args.part in ("all", "async"):
            part: dict = {"seconds": args.async_seconds, "fps": ASYNC_FPS, "policy_s": POLICY_S}
            for name, run in (("dexloop", run_dexloop_async), ("lerobot", run_lerobot_async)):
                if name == "lerobot" and args.skip_lerobot:
                    part[name] = None
                    continue
                print(
                    f"async, {name}: {ASYNC_FPS} Hz, {POLICY_S * 1e3:.0f} ms policy, {args.async_seconds:g} s ..."
                )
                part[name] = record = run(args.async_seconds)
                if record:
                    print(
                        f"  starved ticks after the first chunk {record['starved_ticks_after_first_chunk']} of "
                        f"{record['ticks']}; chunks {record['chunks']}; chunk trip p50 "
                        f"{record['chunk_trip_ms']['p50']:.0f} ms, p99 {record['chunk_trip_ms']['p99']:.0f} ms",
                        flush=True,
                    )
            results["async"] = part
    args.results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.results / "bench_loop.png")
    print(f"wrote {path} and bench_loop.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
