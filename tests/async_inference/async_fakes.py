"""Pieces the async-inference tests share: a deterministic fake policy, a recording sink, valid
messages built field by field, and raw gRPC access to the Session method (bytes in, bytes out)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")

from dexloop.async_inference import ImageFeature, PolicyFeatures, StateFeature  # noqa: E402
from dexloop.async_inference._generated import pb2  # noqa: E402
from dexloop.async_inference.server import SESSION_METHOD  # noqa: E402

TOP = "observation.images.top"
WRIST = "observation.images.wrist"
STATE = "observation.state"
FEATURES = PolicyFeatures(
    action_dim=3,
    chunk_size=8,
    images=(ImageFeature(TOP, 6, 8, 3), ImageFeature(WRIST, 4, 4, 1)),
    states=(StateFeature(STATE, (3,)),),
    action_names=("a", "b", "c"),
    policy_type="fake",
)


def expected_chunk(observation: dict[str, np.ndarray], n: int = FEATURES.chunk_size) -> np.ndarray:
    """What FakePolicy answers: row i is state + i, plus pixel (1, 2, 0) of the top camera in column 0
    and the wrist camera's mean in column 1 (so a mixed-up image changes the actions)."""
    state = np.asarray(observation[STATE], dtype=np.float32)
    rows = np.stack([state + np.float32(i) for i in range(n)])
    rows[:, 0] += np.float32(observation[TOP][1, 2, 0])
    rows[:, 1] += np.float32(observation[WRIST].mean())
    return rows.astype(np.float32)


class FakePolicy:
    """A ChunkPolicy whose actions are a fixed function of the observation (``expected_chunk``).
    ``gate`` (when cleared) holds every call until set; a state whose first value is -1 makes the
    call raise, -2 return NaN actions. ``seen`` lists the states it was called on."""

    features = FEATURES

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.seen: list[np.ndarray] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        self.started.set()
        assert self.gate.wait(10), "the test never opened the gate"
        state = observation[STATE]
        self.seen.append(np.array(state))
        if state[0] == -1:
            raise RuntimeError("the fake policy fails on request")
        chunk = expected_chunk(observation)
        if state[0] == -2:
            chunk[0, 0] = np.nan
        return chunk


def make_observation(value: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        TOP: rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
        WRIST: rng.integers(0, 256, (4, 4, 1), dtype=np.uint8),
        STATE: np.array([value, 0.5, -0.25], dtype=np.float32),
    }


@dataclass
class RecordingSink:
    """A stand-in for the C++ action queue's push: keeps every chunk and says it queued all."""

    chunks: list[tuple[int, np.ndarray, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, start_timestep: int, actions: np.ndarray, observed_at_ns: int, received_at_ns: int
    ) -> int:
        assert actions.dtype == np.float32 and actions.ndim == 2
        with self.lock:
            self.chunks.append((start_timestep, actions.copy(), observed_at_ns, received_at_ns))
        return len(actions)


def setup_bytes(**fields: object) -> bytes:
    fields.setdefault("protocol_version", pb2.PROTOCOL_VERSION_1)
    return pb2.ClientMessage(setup=pb2.PolicySetup(**fields)).SerializeToString()  # type: ignore[arg-type]


def observation_proto(
    value: float = 0.0, timestep: int = 0, *, must_go: bool = False, seed: int = 0
) -> pb2.ClientMessage:
    """A valid ClientMessage{observation} for FEATURES, built field by field (not by the code under test)."""
    obs = make_observation(value, seed)
    message = pb2.ClientMessage()
    o = message.observation
    o.timestep = timestep
    o.captured_monotonic_ns = 1
    o.must_go = must_go
    for key in (TOP, WRIST):
        h, w, c = obs[key].shape
        o.images.add(key=key, height=h, width=w, channels=c, data=obs[key].tobytes())
    o.states.add(key=STATE, shape=[3], data=obs[STATE].astype("<f4").tobytes())
    return message


@dataclass
class RawResult:
    code: object  # grpc.StatusCode
    details: str
    replies: list[pb2.ServerMessage]


def raw_session(
    address: str,
    requests: Iterable[bytes],
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout: float = 10.0,
    method: str = SESSION_METHOD,
) -> RawResult:
    """One Session call with hand-made request bytes; its final status and the replies."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)
        replies: list[pb2.ServerMessage] = []
        try:
            for raw in call(iter(requests), metadata=metadata, timeout=timeout):
                replies.append(pb2.ServerMessage.FromString(raw))
        except grpc.RpcError as error:
            return RawResult(error.code(), error.details() or "", replies)
        return RawResult(grpc.StatusCode.OK, "", replies)


class Feed:
    """A request iterator the test feeds message by message (``put``), ended by ``close``."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue()

    def put(self, raw: bytes) -> None:
        self._queue.put(raw)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[bytes]:
        while (raw := self._queue.get()) is not None:
            yield raw


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Polls ``condition`` until it holds; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def in_thread(function: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Runs ``function`` in a started thread; its result lands in the dict under "result"."""
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", function()), daemon=True)
    thread.start()
    return thread, out
