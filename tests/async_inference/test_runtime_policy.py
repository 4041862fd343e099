"""An exported policy served for real: a small hand-built ONNX graph with its dexloop manifest, loaded
by dexloop.inference.Runtime on ONNX Runtime, wrapped by RuntimeChunkPolicy and served to a client;
the camera layout of the graph (HWC or CHW) is the adapter's business, the wire stays HWC. Also the
command line's options and its whole run in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from async_fakes import RecordingSink

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from onnx import TensorProto, helper
from support import write_act_export

from dexloop.async_inference import PolicyClient, PolicyServer, RuntimeChunkPolicy
from dexloop.async_inference.server import TOKEN_ENV, format_help, main, parse_serve_config
from dexloop.errors import AsyncInferenceConfigError

H, W, C = 5, 7, 3
STATE_DIM, CHUNK, ACTION_DIM = 4, 6, 4
TOP = "observation.images.top"
STATE = "observation.state"


def reference_chunk(image_hwc: np.ndarray, state: np.ndarray) -> np.ndarray:
    """What the graph computes: action[i, j] = state[j] + i + pixel(1, 2, channel 0) + pixel(0, 0, channel 1)."""
    steps = np.arange(CHUNK, dtype=np.float32)[:, None]
    return (state[None, :] + steps) + np.float32(image_hwc[1, 2, 0]) + np.float32(image_hwc[0, 0, 1])


def write_export(folder: Path, layout: str) -> Path:
    """An ACT-shaped export: graph policy.onnx taking uint8 camera frames and the state, giving
    (batch, CHUNK, ACTION_DIM) actions, and its manifest."""
    image_shape = ["batch", H, W, C] if layout == "HWC" else ["batch", C, H, W]

    def pixel(name: str, h: int, w: int, c: int) -> list:
        index = (h, w, c) if layout == "HWC" else (c, h, w)
        starts = helper.make_tensor(f"{name}_s", TensorProto.INT64, [3], list(index))
        ends = helper.make_tensor(f"{name}_e", TensorProto.INT64, [3], [i + 1 for i in index])
        axes = helper.make_tensor(f"{name}_a", TensorProto.INT64, [3], [1, 2, 3])
        return [
            helper.make_node("Constant", [], [f"{name}_starts"], value=starts),
            helper.make_node("Constant", [], [f"{name}_ends"], value=ends),
            helper.make_node("Constant", [], [f"{name}_axes"], value=axes),
            helper.make_node(
                "Slice", ["image_f", f"{name}_starts", f"{name}_ends", f"{name}_axes"], [f"{name}_4d"]
            ),
            helper.make_node("Reshape", [f"{name}_4d", "to_b11"], [name]),
        ]

    steps = helper.make_tensor("steps_v", TensorProto.FLOAT, [1, CHUNK, 1], [float(i) for i in range(CHUNK)])
    shape = helper.make_tensor("shape_v", TensorProto.INT64, [3], [-1, 1, 1])
    nodes = [
        helper.make_node("Cast", [TOP], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["to_b11"], value=shape),
        *pixel("p_a", 1, 2, 0),
        *pixel("p_b", 0, 0, 1),
        helper.make_node("Constant", [], ["steps"], value=steps),
        helper.make_node("Unsqueeze", [STATE, "axis1"], ["state_b1d"]),
        helper.make_node("Add", ["state_b1d", "steps"], ["with_steps"]),
        helper.make_node("Add", ["with_steps", "p_a"], ["with_a"]),
        helper.make_node("Add", ["with_a", "p_b"], ["action"]),
    ]
    return write_act_export(
        folder,
        nodes,
        camera=TOP,
        image_shape=image_shape,
        layout=layout,
        state_dim=STATE_DIM,
        chunk=CHUNK,
        action_names=[f"joint_{i}.pos" for i in range(ACTION_DIM)],
        initializer=(helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),),
    )


@pytest.fixture(scope="module", params=["HWC", "CHW"])
def export(request, tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / request.param.lower(), request.param)


@pytest.fixture(scope="module")
def hwc_export(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / "hwc", "HWC")


def observation(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        TOP: rng.integers(0, 256, (H, W, C), dtype=np.uint8),
        STATE: rng.standard_normal(STATE_DIM).astype(np.float32),
    }


def test_the_adapter_describes_the_export(export):
    policy = RuntimeChunkPolicy.load(export)
    features = policy.features
    assert features.policy_type == "act"
    assert [(f.key, f.shape) for f in features.images] == [(TOP, (H, W, C))]
    assert [(f.key, f.shape) for f in features.states] == [(STATE, (STATE_DIM,))]
    assert (features.action_dim, features.chunk_size) == (ACTION_DIM, CHUNK)
    assert features.action_names == tuple(f"joint_{i}.pos" for i in range(ACTION_DIM))
    obs = observation(0)
    np.testing.assert_allclose(
        policy.predict_chunk(obs), reference_chunk(obs[TOP], obs[STATE]), rtol=1e-6, atol=0
    )


def test_an_exported_policy_served_end_to_end(export):
    policy = RuntimeChunkPolicy.load(export)
    sink = RecordingSink()
    with (
        PolicyServer(policy, port=0, policy_name=str(export)) as server,
        PolicyClient(server.address, sink=sink, policy=str(export), backoff_initial_s=0.02) as client,
    ):
        sent = []
        for t in range(3):
            obs = observation(t)
            sent.append(obs)
            client.send_observation(obs, timestep=t * 4)
            assert client.wait_for_chunks(t + 1, timeout_s=10)
    assert [c[0] for c in sink.chunks] == [0, 4, 8]
    for (_, actions, _, _), obs in zip(sink.chunks, sent, strict=True):
        np.testing.assert_allclose(actions, reference_chunk(obs[TOP], obs[STATE]), rtol=1e-6, atol=0)


def test_command_line_options(tmp_path, capsys):
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--policy.path" in help_text and "--token" in help_text and "--host" in help_text
    assert "--policy.path" in format_help()
    assert main([]) == 2
    assert "no policy: pass --policy.path" in capsys.readouterr().err
    assert main(["--policy.path=x", "--port=notaport"]) == 2
    assert main([f"--policy.path={tmp_path}", "--port=0"]) == 1  # no export there
    assert "no export manifest" in capsys.readouterr().err
    cfg = parse_serve_config(["--policy.path=x"], environ={TOKEN_ENV: "from-the-environment"})
    assert (cfg.host, cfg.port, cfg.token) == ("127.0.0.1", 8080, "from-the-environment")
    assert (
        parse_serve_config(["--policy.path=x", "--token=given"], environ={TOKEN_ENV: "env"}).token == "given"
    )
    with pytest.raises(AsyncInferenceConfigError, match="no policy"):
        parse_serve_config([], environ={})


def test_command_line_refuses_a_public_bind_without_token(hwc_export, capsys):
    assert main([f"--policy.path={hwc_export}", "--host=0.0.0.0", "--port=0"]) == 2
    assert "needs a token" in capsys.readouterr().err


def test_the_server_process_killed_and_restarted(hwc_export):
    """A real process: served, killed with SIGKILL mid-session, started again on the same port; the
    client carries on by itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "dexloop.async_inference.server",
        f"--policy.path={hwc_export}",
        f"--port={port}",
    ]

    def launch() -> subprocess.Popen:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        seen = []
        while "serving" not in (line := process.stdout.readline()):
            seen.append(line)
            assert line, f"the server exited before serving: {''.join(seen)}"
        assert f"on 127.0.0.1:{port}" in line, line
        assert not any("Warning" in earlier for earlier in seen), seen
        return process

    sink = RecordingSink()
    process = launch()
    try:
        client = PolicyClient(f"127.0.0.1:{port}", sink=sink, backoff_initial_s=0.05, backoff_max_s=0.2)
        with client:
            client.send_observation(observation(1), timestep=1)
            assert client.wait_for_chunks(1, timeout_s=15)
            process.kill()
            process.wait(10)
            process = launch()
            obs = observation(2)
            for _ in range(200):  # until the new session has taken an observation
                client.send_observation(obs, timestep=2)
                if client.wait_for_chunks(2, timeout_s=0.1):
                    break
            assert client.counters()["reconnects"] == 1
            np.testing.assert_allclose(sink.chunks[-1][1], reference_chunk(obs[TOP], obs[STATE]), rtol=1e-6)
    finally:
        process.kill()
        process.wait(10)
