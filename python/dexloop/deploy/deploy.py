"""``dexloop deploy``: an exported policy drives an arm through the C++ control loop, asynchronously.

The path every action takes:

    robot.get_observation()  (joints from the loop's snapshot; camera frames)
      -> the policy: in this process (LocalPolicy, a worker thread) or on a policy server over gRPC
         (PolicyClient: typed protobuf, the server's ONNX Runtime / torch runtime)
      -> the chunk, pushed into the C++ action queue (LeRobot's aggregation or ACT's temporal ensembling)
      -> the control loop's tick: safety limits, one SYNC_WRITE of Goal_Position
      -> the bus: the servo simulator's pty (the simulated twin) or a real arm's serial port.

A sender thread paces itself at the robot's fps: each period it asks ``should_send`` (LeRobot's
``chunk_size_threshold`` rule) and, if so, captures an observation tagged with the next timestep the
loop will execute. The loop never waits for it: a slow policy shows as stale actions dropped, not as a
late tick; no action at all shows as starved ticks (and, with ``action_timeout_s``, a fault that holds
the arm).

On the simulated twin (the default: no ``--robot.port``), each episode resets the scene from a seed
(LeRobot's evaluation seeds: ``--seed`` and up), runs until the cube is on the target or the episode
length passes, and counts a success as ``dexloop eval`` does. The report (``deploy_info.json`` in
``--output_dir``) holds the success rate, the loop's timing histograms and counters, and the latency of
each stage.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.control.pacing import Pacer
from dexloop.errors import DexloopError

log = logging.getLogger(__name__)

DEPLOY_INFO_NAME = "deploy_info.json"


@dataclass
class DeployPolicyConfig:
    path: str = ""  # an export folder (dexloop export) or a checkpoint, exported on the fly
    backend: str = "onnxruntime"  # or "torch" (in-process only; a server chooses its own)
    threads: int | None = None  # inference threads (None: the runtime's default)


@dataclass
class DeployRobotConfig:
    type: str = "so101_follower"
    port: str | None = None  # None: the simulated twin (servo simulator + MuJoCo)
    id: str | None = None
    max_relative_target: float | None = None
    cameras: list[str] = field(default_factory=lambda: ["top"])  # the twin's cameras
    episode_steps: int | None = None  # the twin's episode length in control periods (None: the scene's)


@dataclass
class DeployConfig:
    """What ``dexloop deploy`` runs (LeRobot-style flags: ``--policy.path``, ``--robot.type``, ...)."""

    policy: DeployPolicyConfig = field(default_factory=DeployPolicyConfig)
    robot: DeployRobotConfig = field(default_factory=DeployRobotConfig)
    server: str | None = None  # HOST:PORT of a policy server; None: the policy runs in this process
    token: str | None = None  # the server's token (default: $DEXLOOP_POLICY_SERVER_TOKEN)
    fps: float = 30.0
    n_episodes: int = 10
    seed: int = 1000  # the twin's episodes use seeds seed, seed + 1, ... (LeRobot's eval seeds)
    episode_time_s: float | None = None  # a real robot's episode length (the twin knows its own)
    chunk_size_threshold: float | None = None  # None: 1.0 with temporal ensembling, else LeRobot's 0.5
    aggregate_fn_name: str | None = None  # None: temporal_ensemble when the policy has a coefficient
    action_timeout_s: float | None = 1.0  # no fresh action this long: the arm holds
    realtime: bool = True  # SCHED_FIFO for the loop where the system allows it
    loop_latency_margin_ms: float = 10.0
    output_dir: str = "outputs/deploy"
    task: str = ""

    def validate(self) -> None:
        if not self.policy.path:
            raise DexloopError("--policy.path is required: an export folder or a pretrained_model checkpoint")
        if self.robot.type not in ("so100_follower", "so101_follower"):
            raise DexloopError(
                f"--robot.type={self.robot.type}: dexloop deploys on so100_follower / so101_follower"
            )
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise DexloopError(f"--fps={self.fps}: expected a positive rate")
        if self.n_episodes < 1:
            raise DexloopError(f"--n_episodes={self.n_episodes}: expected at least 1")
        if self.robot.port is not None and self.episode_time_s is None:
            raise DexloopError("--episode_time_s is required on a real robot (no simulator tells success)")


def resolve_export(policy_path: str | Path, output_dir: Path) -> Path:
    """``policy_path`` itself when it is an export; a checkpoint is exported to output_dir/export."""
    from dexloop.export.manifest import MANIFEST_NAME

    path = Path(policy_path)
    if (path / MANIFEST_NAME).is_file():
        return path
    if (path / "config.json").is_file():
        from dexloop.export.onnx_export import export_policy

        target = output_dir / "export"
        log.info("exporting %s to %s", path, target)
        export_policy(path, target, overwrite=True)
        return target
    raise DexloopError(f"{path}: neither a dexloop export ({MANIFEST_NAME}) nor a checkpoint (config.json)")


def policy_observation(
    features: Any, robot_obs: dict[str, Any], state_keys: list[str]
) -> dict[str, np.ndarray]:
    """A robot observation as the policy's features: ``observation.state`` from the ``<motor>.pos``
    values in order, ``observation.images.<camera>`` from each camera's frame."""
    out: dict[str, np.ndarray] = {}
    for state in features.states:
        out[state.key] = np.array([robot_obs[key] for key in state_keys], dtype=np.float32).reshape(
            state.shape
        )
    for image in features.images:
        camera = image.key.removeprefix("observation.images.")
        if camera not in robot_obs:
            raise DexloopError(
                f"the policy takes the camera {camera!r} ({image.key}); the robot has {sorted(robot_obs)}"
            )
        out[image.key] = np.ascontiguousarray(robot_obs[camera])
    return out


class _EpisodeSink:
    """Pushes chunks into the current episode's control loop; chunks predicted from observations
    of an earlier episode (or between episodes) are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loop: Any = None
        self.started_ns = 0
        self.dropped_chunks = 0

    def attach(self, loop: Any) -> None:
        with self._lock:
            self.loop = loop
            self.started_ns = time.monotonic_ns()

    def detach(self) -> None:
        with self._lock:
            self.loop = None

    def __call__(
        self, start_timestep: int, actions: np.ndarray, observed_at_ns: int, received_at_ns: int
    ) -> int:
        with self._lock:
            loop, started = self.loop, self.started_ns
        if loop is None or observed_at_ns < started or not loop.running:
            self.dropped_chunks += 1
            return 0
        return loop.push_chunk(actions, start_timestep, observed_at_ns, received_at_ns)


def _run_episode(
    cfg: DeployConfig, robot: Any, twin: Any, source: Any, sink: _EpisodeSink, loop_options: dict
):
    loop = robot.start_loop(cfg.fps, **loop_options)
    sink.attach(loop)
    state_keys = [f"{name}.pos" for name in loop.motor_names]
    features = source.features
    pacer = Pacer(cfg.fps)
    started = time.monotonic()
    sends = 0
    try:
        while True:
            if twin is not None:
                if twin.done:
                    break
            elif time.monotonic() - started >= cfg.episode_time_s:
                break
            depth = loop.queue_depth
            if source.should_send(depth):
                captured = time.monotonic_ns()
                obs = policy_observation(features, robot.get_observation(), state_keys)
                source.send_observation(
                    obs,
                    timestep=loop.timestep + 1,
                    must_go=source.must_go(depth),
                    task=cfg.task,
                    captured_monotonic_ns=captured,
                )
                sends += 1
            pacer.wait()
    finally:
        sink.detach()
        robot.stop_loop()
    stats = loop.stats()
    stats["observations_sent"] = sends
    stats["duration_s"] = time.monotonic() - started
    return stats


def _sum_counters(counters: list[dict[str, Any]]) -> dict[str, Any]:
    """The transport's counters over every session (numbers summed, the last session's state)."""
    total: dict[str, Any] = {}
    for entry in counters:
        for key, value in entry.items():
            summable = isinstance(value, int | float) and not isinstance(value, bool)
            total[key] = total.get(key, 0) + value if summable else value
    return total


def _histogram_summary(episodes: list[dict[str, Any]], name: str) -> dict[str, float]:
    """The worst episode's percentiles of a loop histogram (conservative across episodes)."""
    keys = ("p50_us", "p99_us", "p99.9_us", "max_us")
    return {key: max(ep["loop"][name][key] for ep in episodes) for key in keys}


def deploy_main(cfg: DeployConfig, twin: Any = None) -> dict[str, Any]:
    """Runs the deployment (see the module docstring); returns and writes the report. ``twin``: a
    started ``SO101Twin`` to deploy on instead of a new one (left running; a test injects faults
    through it)."""
    cfg.validate()
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    export = resolve_export(cfg.policy.path, output_dir)
    from dexloop.export.manifest import ExportManifest

    manifest = ExportManifest.load(export)
    ensemble = manifest.temporal_ensemble_coeff
    aggregate = cfg.aggregate_fn_name or ("temporal_ensemble" if ensemble is not None else "weighted_average")
    threshold = cfg.chunk_size_threshold
    if threshold is None:
        threshold = 1.0 if aggregate == "temporal_ensemble" else 0.5
    loop_options: dict[str, Any] = {
        "aggregate_fn_name": aggregate,
        "temporal_ensemble_coeff": ensemble if ensemble is not None else 0.01,
        "realtime": cfg.realtime,
        "latency_margin_ms": cfg.loop_latency_margin_ms,
        "action_timeout_s": cfg.action_timeout_s,
    }

    sink = _EpisodeSink()
    closed_counters: list[dict[str, Any]] = []
    if cfg.server:
        from dexloop.async_inference.client import LatencyStats, PolicyClient

        latency = LatencyStats(capacity=1 << 16)

        def open_source() -> Any:
            # One session per episode: the server forgets the timesteps it predicted (the loop's count
            # starts again) and the policy its observation history, as LeRobot's Ready() resets them.
            client = PolicyClient(
                cfg.server, cfg.token, sink=sink, fps=cfg.fps, chunk_size_threshold=threshold, latency=latency
            )
            client.connect()
            return client
    else:
        from dexloop.async_inference.server import RuntimeChunkPolicy
        from dexloop.deploy.local_policy import LocalPolicy

        policy = RuntimeChunkPolicy.load(export, cfg.policy.backend, threads=cfg.policy.threads)
        local = LocalPolicy(policy, sink=sink, chunk_size_threshold=threshold)
        local.connect()

        def open_source() -> Any:
            local.reset()
            return local

    source = open_source()

    from dexloop.robots.so_follower import SOFollower, SOFollowerConfig

    own_twin = twin is None and cfg.robot.port is None
    episodes: list[dict[str, Any]] = []
    try:
        if cfg.robot.port is None:
            from dexloop.robots.so101_twin import SO101Twin

            if own_twin:
                twin = SO101Twin(
                    cameras=tuple(cfg.robot.cameras), episode_length=cfg.robot.episode_steps
                ).start()
            robot_config = twin.robot_config(max_relative_target=cfg.robot.max_relative_target)
        else:
            robot_config = SOFollowerConfig(
                port=cfg.robot.port,
                id=cfg.robot.id,
                max_relative_target=cfg.robot.max_relative_target,
                type=cfg.robot.type,
            )
        robot = SOFollower(robot_config)
        robot.connect()
        try:
            for index in range(cfg.n_episodes):
                seed = cfg.seed + index
                if twin is not None:
                    twin.reset(seed=seed)
                if index > 0:
                    if cfg.server:
                        closed_counters.append(source.counters())
                        source.close()
                    source = open_source()
                start_state = twin.joint_state() if twin is not None else None
                loop_stats = _run_episode(cfg, robot, twin, source, sink, loop_options)
                episode = {
                    "episode": index,
                    "seed": seed,
                    "success": bool(twin.is_success) if twin is not None else None,
                    "steps": twin.steps if twin is not None else None,
                    "max_reward": twin.max_reward if twin is not None else None,
                    "start_state": start_state,
                    "final_state": twin.joint_state() if twin is not None else None,
                    "loop": loop_stats,
                }
                episodes.append(episode)
                log.info(
                    "episode %d (seed %d): %s in %d steps; loop lateness p99 %.0f us, starved ticks %d",
                    index,
                    seed,
                    "success" if episode["success"] else "failure",
                    episode["steps"] or 0,
                    loop_stats["lateness"]["p99_us"],
                    loop_stats["starved_ticks"],
                )
        finally:
            robot.disconnect()
    finally:
        source.close()
        if own_twin:
            twin.stop()

    successes = [ep["success"] for ep in episodes if ep["success"] is not None]
    report = {
        "config": asdict(cfg),
        "export": str(export),
        "policy_type": manifest.policy_type,
        "aggregate": aggregate,
        "chunk_size_threshold": threshold,
        "transport": "grpc" if cfg.server else "in-process",
        "n_episodes": len(episodes),
        "pc_success": 100.0 * sum(successes) / len(successes) if successes else None,
        "avg_max_reward": (
            float(np.mean([ep["max_reward"] for ep in episodes])) if twin is not None and episodes else None
        ),
        "starved_ticks": sum(ep["loop"]["starved_ticks"] for ep in episodes),
        "overruns": sum(ep["loop"]["overruns"] for ep in episodes),
        "lateness_us": _histogram_summary(episodes, "lateness"),
        "action_age_us": _histogram_summary(episodes, "action_age"),
        "dropped_chunks": sink.dropped_chunks,
        "transport_counters": _sum_counters([*closed_counters, source.counters()]),
        "transport_latency_ms": source.latency.percentiles(),
        "realtime": robot.loop.realtime_report if robot.loop is not None else None,
        "episodes": episodes,
    }
    (output_dir / DEPLOY_INFO_NAME).write_text(json.dumps(report, indent=2, default=str))
    return report


__all__ = [
    "DEPLOY_INFO_NAME",
    "DeployConfig",
    "DeployPolicyConfig",
    "DeployRobotConfig",
    "deploy_main",
    "policy_observation",
    "resolve_export",
]
