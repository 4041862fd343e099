"""``PolicyClient``: the robot side of async inference (LeRobot's RobotClient transport).

    def sink(start, actions, observed_at_ns, received_at_ns):  # into dexloop.control's ControlLoop
        return loop.push_chunk(actions, start, observed_at_ns, received_at_ns)

    client = PolicyClient("127.0.0.1:8080", sink=sink, actions_per_chunk=50)
    features = client.connect()                      # handshake: what the policy takes and gives
    while running:                                   # each tick of the robot's side:
        depth = loop.queue_depth
        if client.should_send(depth):
            client.send_observation(capture(), timestep=max(loop.timestep, 0),
                                    must_go=client.must_go(depth))
    client.close()

Sending never blocks the caller: the observation is checked and encoded in the caller's thread,
then waits in a slot of one until the stream takes it; a newer observation replaces one not yet
sent (and inherits its ``must_go``). A background thread owns the connection: it hands every
returned chunk to ``sink(start_timestep, actions, observed_at_ns, received_at_ns) -> int`` (the
C++ action queue's push; ``actions`` a read-only (n, action_dim) float32 array, the times the
client's CLOCK_MONOTONIC nanoseconds of the observation's capture and the chunk's arrival), and when
the server goes away it reconnects by itself (exponential backoff, capped), the observation waiting
in the slot going out on the new session.

When to send (LeRobot's rule, ``should_send``): when the queue holds at most
``chunk_size_threshold`` of a chunk (always before the first chunk arrives). ``must_go`` asks the
server to skip its filter: LeRobot sets it when the queue is empty, once per chunk; it is re-armed
when a chunk arrives (and when a session starts).

Each chunk's trip is recorded per stage in ``client.latency`` (nanoseconds; percentiles in ms):
``capture_to_send`` (capture until the stream took the observation), ``send_to_server``,
``queue_wait`` (on the server, until the policy was free), ``infer``, ``return`` (the policy's end
until the chunk reached the client), ``client_receive`` (decoding and the sink), ``total``. Where
the server runs on another machine (its clock id differs), the two network stages are each half of
the round trip less the server's time.

A refused session (UNAUTHENTICATED: a wrong token; FAILED_PRECONDITION: another protocol version or
policy) or a server that comes back with other features ends the client: ``state`` is FAILED and
``connect`` / ``send_observation`` raise the reason.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import grpc
import numpy as np

from dexloop.async_inference._generated import pb2, pb2_grpc
from dexloop.async_inference.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Limits,
    PolicyFeatures,
    check_token,
    features_from_policy_info,
    monotonic_clock_id,
    observation_message,
    parse_chunk,
    setup_message,
)
from dexloop.errors import (
    AsyncInferenceConfigError,
    AsyncMessageError,
    PolicyServerAuthError,
    PolicyServerError,
)

log = logging.getLogger(__name__)

Sink = Callable[[int, np.ndarray, int, int], int]
LATENCY_STAGES = (
    "capture_to_send",
    "send_to_server",
    "queue_wait",
    "infer",
    "return",
    "client_receive",
    "total",
)
# Status codes after which trying again cannot help: the server refuses this client as it is.
_FATAL = {
    grpc.StatusCode.UNAUTHENTICATED: PolicyServerAuthError,
    grpc.StatusCode.FAILED_PRECONDITION: PolicyServerError,
    grpc.StatusCode.UNIMPLEMENTED: PolicyServerError,
}


class ConnectionState(str, enum.Enum):
    """Where a PolicyClient's connection stands."""

    IDLE = "idle"  # connect() not called yet
    CONNECTING = "connecting"  # opening a session (first or again after a loss)
    CONNECTED = "connected"  # the handshake came back: observations go out, chunks come in
    DISCONNECTED = "disconnected"  # the session was lost; waiting out the backoff before the next try
    FAILED = "failed"  # refused for good (see last_error); nothing more is tried
    CLOSED = "closed"  # close() was called


def should_send(queue_depth: int, chunk_size: int, chunk_size_threshold: float) -> bool:
    """LeRobot's rule for sending an observation: the queue holds at most ``chunk_size_threshold``
    of a chunk. Before the first chunk (``chunk_size`` <= 0, LeRobot's -1) always."""
    if chunk_size <= 0:
        return True
    return queue_depth / chunk_size <= chunk_size_threshold


class LatencyStats:
    """Per-stage durations (nanoseconds) of the last ``capacity`` chunks, thread-safe."""

    def __init__(self, stages: Sequence[str] = LATENCY_STAGES, capacity: int = 4096) -> None:
        self.stages = tuple(stages)
        self.capacity = int(capacity)
        self._samples = np.zeros((len(self.stages), self.capacity), dtype=np.int64)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Chunks recorded so far (the last ``capacity`` are kept)."""
        return self._count

    def record(self, durations_ns: Mapping[str, int]) -> None:
        with self._lock:
            column = self._count % self.capacity
            for row, stage in enumerate(self.stages):
                self._samples[row, column] = durations_ns[stage]
            self._count += 1

    def samples(self, stage: str) -> np.ndarray:
        """The kept durations of ``stage`` in nanoseconds, oldest first."""
        with self._lock:
            row = self._samples[self.stages.index(stage)]
            if self._count <= self.capacity:
                return row[: self._count].copy()
            start = self._count % self.capacity
            return np.concatenate([row[start:], row[:start]])

    def percentiles(self, quantiles: Sequence[float] = (50, 90, 99)) -> dict[str, dict[str, float]]:
        """Per stage: ``p50`` ... and ``max`` in milliseconds, and ``count``; empty before any chunk."""
        out: dict[str, dict[str, float]] = {}
        for stage in self.stages:
            values = self.samples(stage)
            if values.size == 0:
                continue
            ms = values / 1e6
            entry = {f"p{q:g}": float(np.percentile(ms, q)) for q in quantiles}
            entry["max"] = float(ms.max())
            entry["count"] = float(values.size)
            out[stage] = entry
        return out


class _Attempt:
    """One session's life: set done when its stream ended, which stops its request generator."""

    def __init__(self) -> None:
        self.done = False
        self.handshaken = False


class PolicyClient:
    """The transport of a robot talking to a PolicyServer (see the module docstring).

    ``address`` is ``host:port``; ``token`` the server's bearer token (None: none sent).
    ``policy`` the policy the client expects (empty: whatever the server hosts);
    ``actions_per_chunk`` how many actions of each chunk to get back (0: all). Backoff between
    connection attempts starts at ``backoff_initial_s`` and doubles up to ``backoff_max_s``."""

    def __init__(
        self,
        address: str,
        token: str | None = None,
        *,
        sink: Sink,
        policy: str = "",
        actions_per_chunk: int = 0,
        fps: float = 30.0,
        chunk_size_threshold: float = 0.5,
        client_name: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        limits: Limits | None = None,
        latency_capacity: int = 4096,
        latency: LatencyStats | None = None,
    ) -> None:
        if not callable(sink):
            raise AsyncInferenceConfigError(
                "sink must be callable: sink(start_timestep, actions, observed_at_ns, received_at_ns)"
            )
        if not math.isfinite(chunk_size_threshold) or not 0 <= chunk_size_threshold <= 1:
            raise AsyncInferenceConfigError(
                f"chunk_size_threshold {chunk_size_threshold}: expected a value in [0, 1]"
            )
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise AsyncInferenceConfigError(
                f"backoff {backoff_initial_s} s to {backoff_max_s} s: expected 0 < initial <= max"
            )
        self.address = address
        self.limits = replace(limits or Limits(), max_message_bytes=max_message_bytes)
        self.sink = sink
        self.chunk_size_threshold = float(chunk_size_threshold)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        # Several clients may share one (a deployment opens a session per episode).
        self.latency = latency if latency is not None else LatencyStats(capacity=latency_capacity)
        token = check_token(token)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._setup = setup_message(
            policy=policy,
            actions_per_chunk=actions_per_chunk,
            fps=fps,
            client_name=client_name,
            limits=self.limits,
        )
        self._clock_id = monotonic_clock_id()
        self._cond = threading.Condition()
        self._state = ConnectionState.IDLE
        self._features: PolicyFeatures | None = None
        self._info: pb2.PolicyInfo | None = None
        self._same_clock = False
        self._pending: pb2.ClientMessage | None = None
        self._must_go_armed = True
        self._chunk_size = -1
        self._counters = {
            "observations_sent": 0,
            "observations_replaced": 0,
            "chunks_received": 0,
            "actions_queued": 0,
            "connects": 0,
            "reconnects": 0,
            "errors": 0,
        }
        self._last_error: Exception | None = None
        self._fatal: Exception | None = None
        self._closed = threading.Event()
        self._call: Any = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def connect(self, timeout_s: float = 10.0) -> PolicyFeatures:
        """Starts the connection thread and waits for the first handshake: the policy's features.
        PolicyServerError (PolicyServerAuthError for a refused token) when the server refuses the
        session or none answers within ``timeout_s`` (the client is closed then)."""
        if self._closed.is_set():
            raise PolicyServerError(f"{self.address}: the client is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dexloop-policy-client", daemon=True)
            self._thread.start()
        with self._cond:
            self._cond.wait_for(lambda: self._features is not None or self._fatal is not None, timeout_s)
            fatal, features, last = self._fatal, self._features, self._last_error
        if fatal is not None:
            self.close()
            raise fatal
        if features is None:
            self.close()
            raise PolicyServerError(
                f"no policy server answered at {self.address} within {timeout_s:g} s"
                + (f" (last error: {last})" if last else "")
            )
        return features

    def close(self) -> None:
        """Ends the session and the connection thread; chunks stop arriving."""
        self._closed.set()
        with self._cond:
            if self._state is not ConnectionState.FAILED:
                self._state = ConnectionState.CLOSED
            call = self._call
            self._cond.notify_all()
        if call is not None:
            call.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> PolicyClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- what a control loop asks ----------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def features(self) -> PolicyFeatures | None:
        """The hosted policy's features (as cut to ``actions_per_chunk``), once connected."""
        return self._features

    @property
    def policy_info(self) -> pb2.PolicyInfo | None:
        """The server's whole handshake answer, once connected."""
        return self._info

    @property
    def last_error(self) -> Exception | None:
        return self._last_error

    def counters(self) -> dict[str, Any]:
        """Observations sent and replaced before sending, chunks received, actions the sink queued,
        sessions opened (``connects``; ``reconnects`` of them after a loss), errors, and the state."""
        with self._cond:
            out: dict[str, Any] = dict(self._counters)
            out["state"] = self._state.value
            out["last_error"] = str(self._last_error) if self._last_error else ""
        return out

    def should_send(self, queue_depth: int) -> bool:
        """``should_send(queue_depth, chunk size seen so far, chunk_size_threshold)``."""
        return should_send(queue_depth, self._chunk_size, self.chunk_size_threshold)

    def must_go(self, queue_depth: int) -> bool:
        """Whether the next observation should be must-go: the queue is empty and no must-go
        observation went out since the last chunk (or session start)."""
        return self._must_go_armed and queue_depth == 0

    def send_observation(
        self,
        observation: Mapping[str, Any],
        *,
        timestep: int,
        must_go: bool = False,
        task: str = "",
        captured_monotonic_ns: int | None = None,
        captured_wall_ns: int | None = None,
    ) -> None:
        """Queues ``observation`` (feature key -> array) for the server without waiting; a newer one
        replaces it while it has not gone out. Checked here against the policy's features
        (AsyncMessageError); PolicyServerError before the first handshake or after the client
        failed or closed. Capture times default to now."""
        with self._cond:
            features, fatal = self._features, self._fatal
        if fatal is not None:
            raise fatal
        if self._closed.is_set():
            raise PolicyServerError(f"{self.address}: the client is closed")
        if features is None:
            raise PolicyServerError(f"{self.address}: not connected yet; call connect() first")
        message = pb2.ClientMessage()
        observation_message(
            features,
            observation,
            timestep=timestep,
            must_go=must_go,
            task=task,
            captured_monotonic_ns=captured_monotonic_ns,
            captured_wall_ns=captured_wall_ns,
            limits=self.limits,
            out=message.observation,
        )
        with self._cond:
            if must_go:
                self._must_go_armed = False
            if self._pending is not None:
                self._counters["observations_replaced"] += 1
                if self._pending.observation.must_go:
                    message.observation.must_go = True
            self._pending = message
            self._cond.notify_all()

    def wait_for_chunks(self, count: int, timeout_s: float) -> bool:
        """Blocks until ``count`` chunks were received in all (True) or ``timeout_s`` passed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counters["chunks_received"] >= count, timeout_s)

    def wait_for_state(self, state: ConnectionState, timeout_s: float) -> bool:
        """Blocks until the connection is in ``state`` (True) or ``timeout_s`` passed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state is state, timeout_s)

    # --- the connection thread -------------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        with self._cond:
            if self._state not in (ConnectionState.CLOSED, ConnectionState.FAILED):
                self._state = state
            self._cond.notify_all()

    def _error(self, error: Exception) -> None:
        with self._cond:
            self._counters["errors"] += 1
            self._last_error = error
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self.backoff_initial_s
        options = [
            ("grpc.max_receive_message_length", self.limits.max_message_bytes),
            ("grpc.max_send_message_length", self.limits.max_message_bytes),
            # Notice a link that died silently (no RST: cable, Wi-Fi) within seconds, not minutes.
            ("grpc.keepalive_time_ms", 5000),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.http2.max_pings_without_data", 0),
            # One attempt per call: this thread owns the retries (and their backoff).
            ("grpc.enable_retries", 0),
        ]
        while not self._closed.is_set():
            self._set_state(ConnectionState.CONNECTING)
            attempt = _Attempt()
            channel = grpc.insecure_channel(self.address, options=options)
            try:
                call = pb2_grpc.AsyncInferenceStub(channel).Session(
                    self._requests(attempt), metadata=self._metadata
                )
                with self._cond:
                    self._call = call
                if self._closed.is_set():
                    call.cancel()
                for reply in call:
                    self._on_reply(reply, attempt)
                    if attempt.handshaken:
                        delay = self.backoff_initial_s
                if not self._closed.is_set():
                    raise PolicyServerError(f"{self.address}: the server ended the session")
            except grpc.RpcError as error:
                if not self._closed.is_set():
                    self._on_rpc_error(error)
            except (AsyncMessageError, PolicyServerError) as error:
                if not self._closed.is_set():
                    log.warning("policy server %s: %s", self.address, error)
                    self._error(error)
                    if isinstance(error, _FatalError):
                        self._fail(error.reason)
            except Exception as error:  # never let the thread die silently
                log.exception("policy client %s", self.address)
                self._error(error)
            finally:
                with self._cond:
                    attempt.done = True
                    call, self._call = self._call, None
                    self._cond.notify_all()
                if call is not None:
                    call.cancel()
                channel.close()
            if self._closed.is_set() or self._fatal is not None:
                break
            self._set_state(ConnectionState.DISCONNECTED)
            self._closed.wait(delay)
            delay = min(delay * 2, self.backoff_max_s)

    def _fail(self, error: Exception) -> None:
        with self._cond:
            self._fatal = error
            self._state = ConnectionState.FAILED
            self._cond.notify_all()

    def _on_rpc_error(self, error: grpc.RpcError) -> None:
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        name = code.name if code is not None else "UNKNOWN"
        wrapped = _FATAL.get(code, PolicyServerError)(f"{self.address}: {name}: {details}")
        self._error(wrapped)
        if code in _FATAL:
            log.error("policy server %s refused the session: %s %s", self.address, name, details)
            self._fail(wrapped)
        else:
            log.info("policy server %s: %s %s; reconnecting", self.address, name, details)

    def _requests(self, attempt: _Attempt) -> Iterator[pb2.ClientMessage]:
        yield pb2.ClientMessage(setup=self._setup)
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._pending is not None or attempt.done or self._closed.is_set()
                )
                if attempt.done or self._closed.is_set():
                    return
                message, self._pending = self._pending, None
                self._counters["observations_sent"] += 1
            message.observation.sent_monotonic_ns = time.monotonic_ns()
            yield message

    def _on_reply(self, reply: pb2.ServerMessage, attempt: _Attempt) -> None:
        kind = reply.WhichOneof("kind")
        if kind == "policy" and not attempt.handshaken:
            self._on_policy(reply.policy, attempt)
        elif kind == "chunk" and attempt.handshaken:
            self._on_chunk(reply.chunk)
        else:
            raise AsyncMessageError(f"the server sent {kind or 'an empty message'} out of turn")

    def _on_policy(self, info: pb2.PolicyInfo, attempt: _Attempt) -> None:
        features = features_from_policy_info(info, self.limits)
        with self._cond:
            if self._features is not None and features != self._features:
                raise _FatalError(
                    PolicyServerError(
                        f"{self.address}: the server came back with another policy ({features}, before "
                        f"{self._features}); its chunks would not fit this robot"
                    )
                )
            reconnect = self._features is not None
            self._features = features
            self._info = info
            self._same_clock = bool(info.monotonic_clock_id) and info.monotonic_clock_id == self._clock_id
            self._counters["connects"] += 1
            if reconnect:
                self._counters["reconnects"] += 1
            # A new session knows nothing of the last one's chunks: let the next empty queue go.
            self._must_go_armed = True
            attempt.handshaken = True
            if self._state not in (ConnectionState.CLOSED, ConnectionState.FAILED):
                self._state = ConnectionState.CONNECTED
            self._cond.notify_all()
        log.info("policy server %s: session open (%s)", self.address, features.policy_type or "policy")

    def _on_chunk(self, chunk: pb2.ActionChunk) -> None:
        received_ns = time.monotonic_ns()
        features = self._features
        assert features is not None
        actions = parse_chunk(chunk, features, self.limits)
        try:
            queued = self.sink(
                chunk.start_timestep, actions, chunk.observation_captured_monotonic_ns, received_ns
            )
        except Exception as error:
            log.exception(
                "policy client %s: the sink failed on the chunk at timestep %d",
                self.address,
                chunk.start_timestep,
            )
            self._error(error)
            queued = 0
        done_ns = time.monotonic_ns()
        self.latency.record(self._stages(chunk, received_ns, done_ns))
        with self._cond:
            self._counters["chunks_received"] += 1
            self._counters["actions_queued"] += int(queued or 0)
            self._chunk_size = max(self._chunk_size, actions.shape[0])
            self._must_go_armed = True
            self._cond.notify_all()

    def _stages(self, chunk: pb2.ActionChunk, received_ns: int, done_ns: int) -> dict[str, int]:
        t = chunk.timings
        captured = chunk.observation_captured_monotonic_ns
        sent = chunk.observation_sent_monotonic_ns
        if self._same_clock:
            to_server = t.received_ns - sent
            back = received_ns - t.infer_end_ns
        else:
            # Other clocks: the round trip less the server's own time, split evenly.
            network = (received_ns - sent) - (t.infer_end_ns - t.received_ns)
            to_server = back = max(network // 2, 0)
        return {
            "capture_to_send": sent - captured,
            "send_to_server": to_server,
            "queue_wait": t.infer_start_ns - t.received_ns,
            "infer": t.infer_end_ns - t.infer_start_ns,
            "return": back,
            "client_receive": done_ns - received_ns,
            "total": done_ns - captured,
        }


class _FatalError(PolicyServerError):
    """Carries an error after which the client stops trying."""

    def __init__(self, reason: PolicyServerError) -> None:
        super().__init__(str(reason))
        self.reason = reason


__all__ = ["LATENCY_STAGES", "ConnectionState", "LatencyStats", "PolicyClient", "Sink", "should_send"]
