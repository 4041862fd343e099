"""RuntimeChunkPolicy over a policy with observation history (Diffusion's ``n_obs_steps``), on a
torch- and ONNX-free stand-in for dexloop.inference.Runtime: the adapter feeds the graph the last
``n_obs_steps`` observations of the session, the first repeated until there are enough, and forgets
them when a session starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("grpc")

from dexloop.async_inference import RuntimeChunkPolicy
from dexloop.errors import AsyncInferenceConfigError
from dexloop.export.manifest import TensorSpec

N_OBS, H, W, C, DIM, STEPS = 2, 3, 4, 3, 2, 5


class HistoryRuntime:
    """Takes (1, N_OBS, ...) inputs as the Diffusion runtime does; returns the chunk (1, STEPS, DIM)
    whose row i is the state history's first row + i, and records what it was fed."""

    def __init__(self, inputs=None) -> None:
        self.folder = Path("/exports/diffusion")
        self.n_obs_steps = N_OBS
        self.inputs = inputs or [
            TensorSpec(
                "top", ["batch", N_OBS, C, H, W], "uint8", feature="observation.images.top", layout="CHW"
            ),
            TensorSpec("state", ["batch", N_OBS, DIM], "float32", feature="observation.state"),
        ]
        self.manifest = SimpleNamespace(
            policy_type="diffusion", action_dim=DIM, chunk_size=16, n_action_steps=STEPS, action_names=None
        )
        self.fed: list[dict[str, np.ndarray]] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict_chunk(self, feeds):
        self.fed.append(feeds)
        first = feeds["state"][0, 0]
        return (first[None, :] + np.arange(STEPS, dtype=np.float32)[:, None])[None]


def observation(value: float) -> dict[str, np.ndarray]:
    image = np.full((H, W, C), int(value), dtype=np.uint8)
    image[0, 1, 2] = 200  # a pixel whose place tells HWC from CHW
    return {"observation.images.top": image, "observation.state": np.full(DIM, value, dtype=np.float32)}


def test_history_is_stacked_and_reset():
    runtime = HistoryRuntime()
    policy = RuntimeChunkPolicy(runtime)
    features = policy.features
    assert [(f.key, f.shape) for f in features.images] == [("observation.images.top", (H, W, C))]
    assert [(f.key, f.shape) for f in features.states] == [("observation.state", (DIM,))]
    assert (features.chunk_size, features.action_dim, features.policy_type) == (STEPS, DIM, "diffusion")

    first = policy.predict_chunk(observation(1.0))
    np.testing.assert_array_equal(first[:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(runtime.fed[0]["state"][0, :, 0], [1.0, 1.0])  # the first, repeated
    policy.predict_chunk(observation(2.0))
    policy.predict_chunk(observation(3.0))
    np.testing.assert_array_equal(runtime.fed[1]["state"][0, :, 0], [1.0, 2.0])
    np.testing.assert_array_equal(runtime.fed[2]["state"][0, :, 0], [2.0, 3.0])
    top = runtime.fed[2]["top"]
    assert top.shape == (1, N_OBS, C, H, W)
    assert top[0, 1, 2, 0, 1] == 200  # pixel (h=0, w=1, c=2) moved to CHW

    policy.reset()
    assert runtime.resets == 1
    policy.predict_chunk(observation(7.0))
    np.testing.assert_array_equal(runtime.fed[3]["state"][0, :, 0], [7.0, 7.0])


def test_inputs_the_transport_cannot_carry_are_refused():
    inputs = [TensorSpec("ids", ["batch", N_OBS, 4], "int64", feature="observation.language_tokens")]
    with pytest.raises(AsyncInferenceConfigError, match="dtype int64"):
        RuntimeChunkPolicy(HistoryRuntime(inputs))
