"""``dexloop deploy`` on the simulated SO-101 twin: an exported policy (a small ONNX graph with its dexloop
manifest, run by ONNX Runtime) drives the arm through the whole path (observation -> policy, in this
process or on a gRPC policy server -> C++ action queue -> control loop -> pty -> servo simulator ->
MuJoCo), and faults along the way are survived and reported."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("onnxruntime")
pytest.importorskip("grpc")
pytest.importorskip("onnx")
from onnx import TensorProto, helper
from support import write_act_export

from dexloop.async_inference import PolicyServer, RuntimeChunkPolicy
from dexloop.cli.main import main as cli_main
from dexloop.deploy import DEPLOY_INFO_NAME, DeployConfig, deploy_main
from dexloop.deploy.deploy import DeployPolicyConfig, DeployRobotConfig
from dexloop.robots.so101_twin import SO101Twin

TOP, STATE = "observation.images.top", "observation.state"
CHUNK, DIM = 10, 6
# The policy turns the base: each action of a chunk is the observed state with shoulder_pan moved on
# by 1.5 degrees per step.
PAN_STEP = 1.5
EPISODE_STEPS = 45


def write_export(folder: Path) -> Path:
    offsets = np.zeros((1, CHUNK, DIM), np.float32)
    offsets[0, :, 0] = PAN_STEP * np.arange(1, CHUNK + 1)
    nodes = [
        helper.make_node(
            "Constant", [], ["axis1"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("Unsqueeze", [STATE, "axis1"], ["state_b1d"]),
        helper.make_node(
            "Constant",
            [],
            ["offsets"],
            value=helper.make_tensor("o", TensorProto.FLOAT, offsets.shape, offsets.ravel().tolist()),
        ),
        helper.make_node("Add", ["state_b1d", "offsets"], ["action"]),
    ]
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    return write_act_export(
        folder,
        nodes,
        camera=TOP,
        image_shape=["batch", 96, 128, 3],
        layout="HWC",
        state_dim=DIM,
        chunk=CHUNK,
        action_names=[f"{name}.pos" for name in names],
    )


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("deploy") / "turn_the_base")


def config(export: Path, output: Path, **overrides) -> DeployConfig:
    options = {
        "policy": DeployPolicyConfig(path=str(export), threads=1),
        "robot": DeployRobotConfig(episode_steps=EPISODE_STEPS),
        "n_episodes": 2,
        "output_dir": str(output),
        "loop_latency_margin_ms": 20.0,
    }
    options.update(overrides)
    return DeployConfig(**options)


def check_episodes(report: dict, min_chunks: int = EPISODE_STEPS // (CHUNK // 2) - 2) -> None:
    assert report["n_episodes"] == 2 and report["pc_success"] == 0.0  # turning the base pushes no cube
    for episode in report["episodes"]:
        loop = episode["loop"]
        assert episode["steps"] == EPISODE_STEPS
        assert loop["actions_taken"] > 0 and loop["read_failures"] == 0
        # Chunks of 10 asked for at half a chunk left: after the first, the queue never runs dry.
        assert loop["starved_ticks"] <= 3, loop
        assert loop["action_age"]["count"] == loop["actions_taken"]
        # A chunk whenever half of one is left (or, asked for every tick, most ticks), in every episode:
        # a server that remembered the last episode's timesteps would admit only must-go observations.
        assert loop["chunks_received"] >= min_chunks, loop


def test_deploy_in_process_turns_the_base(export, tmp_path):
    report = deploy_main(config(export, tmp_path))
    check_episodes(report)
    assert report["transport"] == "in-process" and report["aggregate"] == "weighted_average"
    assert report["chunk_size_threshold"] == 0.5
    # The policy's pan steps reached the physics: the base turned by tens of degrees per episode.
    assert report["episodes"][0]["final_state"][0] - report["episodes"][0]["start_state"][0] > 20
    written = json.loads((tmp_path / DEPLOY_INFO_NAME).read_text())
    assert written["n_episodes"] == 2 and set(written["transport_latency_ms"]) >= {"infer", "total"}


@pytest.mark.parametrize("every_tick", [False, True], ids=["threshold_0.5", "temporal_ensemble"])
def test_deploy_through_a_policy_server(export, tmp_path, every_tick):
    policy = RuntimeChunkPolicy.load(export, threads=1)
    options = {"aggregate_fn_name": "temporal_ensemble", "chunk_size_threshold": 1.0} if every_tick else {}
    with PolicyServer(policy, port=0, policy_name=str(export)) as server:
        report = deploy_main(config(export, tmp_path, server=server.address, **options))
    check_episodes(report, min_chunks=EPISODE_STEPS // 2 if every_tick else EPISODE_STEPS // (CHUNK // 2) - 2)
    assert report["transport"] == "grpc"
    assert report["transport_counters"]["chunks_received"] > 0
    stages = report["transport_latency_ms"]
    assert all(stages[stage]["p50"] >= 0 for stage in ("send_to_server", "infer", "return", "total"))


def test_the_loop_survives_a_server_restart_and_bus_faults(export, tmp_path):
    """Mid-deploy: the policy server dies and comes back on the same port, and the bus loses and
    garbles replies; the loop keeps ticking, holds the arm while no actions come, and resumes."""
    policy = RuntimeChunkPolicy.load(export, threads=1)
    server = PolicyServer(policy, port=0, policy_name=str(export)).start()
    port = server.port
    events: list[str] = []

    def faults() -> None:
        time.sleep(0.6)
        server.stop()
        events.append("server stopped")
        time.sleep(0.5)
        events.append("server restarted")
        restarted.append(PolicyServer(policy, port=port, policy_name=str(export)).start())

    def bus_faults() -> None:
        time.sleep(1.6)
        twin.bus.corrupt_replies("elbow_flex", 2)  # two garbled reads: one short of a bus fault
        time.sleep(0.3)
        twin.bus.vanish("wrist_flex")  # a motor gone for a while: a bus fault, the arm holds
        time.sleep(0.3)
        twin.bus.reappear("wrist_flex")
        events.append("bus faults done")

    restarted: list[PolicyServer] = []
    threads = [threading.Thread(target=faults), threading.Thread(target=bus_faults)]
    with SO101Twin(episode_length=120) as twin:
        for thread in threads:
            thread.start()
        try:
            report = deploy_main(
                config(
                    export,
                    tmp_path,
                    server=server.address,
                    n_episodes=1,
                    action_timeout_s=0.2,
                    # A silent motor's read gives up 10 ms past its wire time: well inside a period.
                    loop_latency_margin_ms=10.0,
                ),
                twin=twin,
            )
        finally:
            for thread in threads:
                thread.join()
            for s in restarted:
                s.stop()
    assert sorted(events) == ["bus faults done", "server restarted", "server stopped"]
    loop = report["episodes"][0]["loop"]
    assert report["transport_counters"]["reconnects"] >= 1
    assert loop["fault_onsets"]["action_timeout"] >= 1  # the arm held while the server was gone
    assert loop["fault_onsets"]["bus_fault"] >= 1 and loop["read_failures"] >= 3
    assert loop["actions_taken"] > 30  # and moved again after both
    # The loop kept its rate throughout: a tick for (nearly) every period of the episode. A busy
    # machine may delay the odd reply past a read's deadline and cost a deadline or two, no more.
    assert loop["ticks"] >= 0.95 * loop["duration_s"] * 30, loop
    assert loop["missed_deadlines"] <= 0.03 * loop["ticks"], loop
    assert report["episodes"][0]["steps"] == 120


def test_the_command_line(export, tmp_path, capsys):
    assert cli_main(["deploy", "--help"]) == 0
    assert "--policy.path" in capsys.readouterr().out
    assert cli_main(["deploy"]) == 2
    assert "--policy.path is required" in capsys.readouterr().err
    code = cli_main(
        [
            "deploy",
            f"--policy.path={export}",
            "--n_episodes=1",
            f"--robot.episode_steps={EPISODE_STEPS}",
            "--policy.threads=1",
            f"--output_dir={tmp_path}",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "success: 0.0% over 1 episodes" in out and (tmp_path / DEPLOY_INFO_NAME).is_file()
