"""``PolicyServer``: a policy behind gRPC, answering each admitted observation with an action chunk.

    server = PolicyServer(RuntimeChunkPolicy.load("outputs/act_onnx"), port=8080).start()
    server.wait()                                          # or: with PolicyServer(...) as server: ...

    python -m dexloop.async_inference.server --policy.path=outputs/act_onnx [--host=0.0.0.0 --token=...]

The policy is anything with ``features`` (a PolicyFeatures) and ``predict_chunk(observation) ->
(n, action_dim) float32`` (``ChunkPolicy``); ``RuntimeChunkPolicy`` wraps an exported policy
(dexloop.inference.Runtime). The protocol is ``proto/dexloop/async_inference.proto``: one
bidirectional stream per session, a handshake first, then observations in and chunks out.

What the server guarantees:

- **Access.** It binds 127.0.0.1 unless told otherwise; any other address needs a token, and it
  refuses to start without one. With a token every call must carry ``authorization: Bearer
  <token>`` metadata (compared in constant time), or it ends with UNAUTHENTICATED.
- **Robustness.** Every message is parsed and checked (dexloop.async_inference.messages) before
  the policy sees it: bytes that are no message, unknown keys, wrong sizes, non-finite values end
  that session with INVALID_ARGUMENT naming the field; a message over ``max_message_bytes`` ends it
  with RESOURCE_EXHAUSTED (gRPC's own check, before anything is allocated); a policy failure ends it
  with INTERNAL. Other sessions, and the server, go on.
- **LeRobot's admission.** One observation waits for the policy at most: a newer one replaces it.
  An observation whose timestep was already predicted is skipped unless ``must_go`` is set (a
  skipped one replaces nothing).
- **Timings.** Each chunk carries when its observation was received, when inference started and
  ended, and when the chunk was sent (the server's CLOCK_MONOTONIC), plus the observation's own
  capture and send times echoed back.

The policy runs one call at a time (a lock), whatever the number of sessions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import os
import sys
import threading
import time
import typing
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import grpc
import numpy as np

from dexloop.async_inference._generated import pb2
from dexloop.async_inference.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ImageFeature,
    Limits,
    PolicyFeatures,
    StateFeature,
    check_actions,
    check_setup,
    check_token,
    chunk_message,
    decode,
    monotonic_clock_id,
    parse_observation,
    policy_info_message,
)
from dexloop.errors import (
    AsyncInferenceConfigError,
    AsyncMessageError,
    DexloopError,
    InferenceInputError,
    PolicyServerError,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# The token's environment variable: a token on the command line is visible to every user in `ps`.
TOKEN_ENV = "DEXLOOP_POLICY_SERVER_TOKEN"
SERVICE = pb2.DESCRIPTOR.services_by_name["AsyncInference"]
SESSION_METHOD = f"/{SERVICE.full_name}/Session"
# A session that has not sent its setup within this time is closed (it would hold a worker thread).
DEFAULT_SETUP_TIMEOUT_S = 10.0
# Per session, how many predicted observation timesteps are remembered for the admission filter.
_PREDICTED_MEMORY = 4096


@runtime_checkable
class ChunkPolicy(Protocol):
    """What a PolicyServer hosts. ``features`` says what it takes and gives; ``predict_chunk``
    maps one observation (feature key -> array: uint8 HWC images, float32 states, read-only) to
    ``(n, action_dim)`` float32 actions, n <= ``features.chunk_size``. A ``reset()`` method, where
    present, is called when a session starts (a policy with observation history forgets it)."""

    features: PolicyFeatures

    def predict_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray: ...


class RuntimeChunkPolicy:
    """An exported policy (dexloop.inference.Runtime) as a ChunkPolicy.

    Wire keys are the policy's feature keys (``observation.images.top``); images arrive HWC and are
    transposed for a graph exported with CHW inputs. ACT returns its whole chunk. Diffusion returns
    its ``n_action_steps`` actions from the current step, from the last ``n_obs_steps`` observations
    of this session (the first repeated until there are enough, as the torch policy's queues do)."""

    def __init__(self, runtime: Any, name: str = "") -> None:
        self.runtime = runtime
        self.name = name or str(runtime.folder)
        manifest = runtime.manifest
        history = bool(runtime.n_obs_steps)
        images: list[ImageFeature] = []
        states: list[StateFeature] = []
        # (feature key, graph input name, CHW?) per input, in the graph's order.
        self._inputs: list[tuple[str, str, bool]] = []
        for spec in runtime.inputs:
            dims = [d for d in spec.shape if not isinstance(d, str)]
            if history:
                dims = dims[1:]  # the n_obs_steps axis: the adapter stacks the history itself
            key = spec.feature or spec.name
            if spec.dtype == "uint8":
                chw = spec.layout == "CHW"
                height, width, channels = (dims[1], dims[2], dims[0]) if chw else dims
                images.append(ImageFeature(key, int(height), int(width), int(channels)))
            elif spec.dtype == "float32":
                chw = False
                states.append(StateFeature(key, tuple(int(d) for d in dims)))
            else:
                raise AsyncInferenceConfigError(
                    f"{runtime.folder}: input {spec.name!r} of dtype {spec.dtype}; the async transport carries "
                    "uint8 images and float32 states"
                )
            self._inputs.append((key, spec.name, chw))
        chunk = manifest.n_action_steps if history else manifest.chunk_size
        self.features = PolicyFeatures(
            action_dim=int(manifest.action_dim),
            chunk_size=int(chunk),
            images=tuple(images),
            states=tuple(states),
            action_names=tuple(manifest.action_names or ()),
            policy_type=manifest.policy_type,
        )
        self._history: dict[str, deque[np.ndarray]] = {}

    @classmethod
    def load(
        cls,
        folder: str | Path,
        backend: str = "onnxruntime",
        *,
        device: str = "cpu",
        threads: int | None = None,
    ) -> RuntimeChunkPolicy:
        """The export in ``folder`` loaded by Runtime.load with these settings."""
        from dexloop.inference import Runtime

        return cls(Runtime.load(folder, backend, device=device, threads=threads), name=str(folder))

    def reset(self) -> None:
        self.runtime.reset()
        self._history = {}

    def predict_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {}
        for key, name, chw in self._inputs:
            value = observation[key]
            feeds[name] = np.ascontiguousarray(value.transpose(2, 0, 1)) if chw else value
        steps = self.runtime.n_obs_steps
        if steps:
            for name, value in feeds.items():
                queue = self._history.get(name)
                if queue is None:
                    self._history[name] = deque([value] * steps, maxlen=steps)
                else:
                    queue.append(value)
            feeds = {name: np.stack(list(queue))[None] for name, queue in self._history.items()}
        return self.runtime.predict_chunk(feeds)[0]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class _TokenInterceptor(grpc.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>``. The given value's SHA-256 is
    compared with the expected one's in constant time, so neither content nor length leaks."""

    def __init__(self, token: str, stats: _Stats) -> None:
        self._expected = _digest(f"Bearer {token}".encode())
        self._stats = stats

        def deny(request_iterator: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong `authorization: Bearer <token>`")
            yield b""  # never reached; makes deny a generator, as a streaming handler is

        # A streaming handler answers at once, whatever the method's kind: it reads no request.
        self._deny = grpc.stream_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation: Any, handler_call_details: grpc.HandlerCallDetails) -> Any:
        given = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode("utf-8", "replace") if isinstance(value, str) else bytes(value)
                break
        if hmac.compare_digest(_digest(given), self._expected):
            return continuation(handler_call_details)
        self._stats.add("unauthenticated")
        return self._deny


class _Stats:
    """Counters of a server, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class _Abort(Exception):
    """Ends a session with a gRPC status (raised by the reader, delivered by the handler)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class _Pending:
    message: pb2.Observation
    arrays: dict[str, np.ndarray]
    received_ns: int


class _Session:
    """One stream's state: its setup, the observation waiting for the policy (at most one), the
    timesteps already predicted, and how it ended. The reader thread fills it, the handler drains it."""

    def __init__(self, server: PolicyServer) -> None:
        self._server = server
        self._cond = threading.Condition()
        self.setup: pb2.PolicySetup | None = None
        self._pending: _Pending | None = None
        self._predicted: OrderedDict[int, None] = OrderedDict()
        self._failure: _Abort | None = None
        self._ended = False

    def read(self, requests: Iterator[bytes]) -> None:
        server = self._server
        try:
            for raw in requests:
                received_ns = time.monotonic_ns()
                message = decode(pb2.ClientMessage, raw, "client message")
                kind = message.WhichOneof("kind")
                if self.setup is None:
                    if kind != "setup":
                        raise AsyncMessageError(
                            f"the first message of a session is a setup, got {kind or 'nothing'}"
                        )
                    check_setup(message.setup, server.limits)
                    with self._cond:
                        self.setup = message.setup
                        self._cond.notify_all()
                    continue
                if kind != "observation":
                    raise AsyncMessageError(
                        "setup sent twice in one session" if kind == "setup" else "an empty client message"
                    )
                arrays = parse_observation(message.observation, server.policy.features, server.limits)
                server.stats.add("observations_received")
                self._offer(message.observation, arrays, received_ns)
        except AsyncMessageError as error:
            server.stats.add("invalid_messages")
            self.fail(_Abort(grpc.StatusCode.INVALID_ARGUMENT, str(error)))
        except Exception as error:  # the stream broke (client gone, cancelled, over the size limit)
            log.debug("session stream ended: %r", error)
        finally:
            self.end()

    def _offer(self, observation: pb2.Observation, arrays: dict[str, np.ndarray], received_ns: int) -> None:
        stats = self._server.stats
        with self._cond:
            if not observation.must_go and observation.timestep in self._predicted:
                stats.add("observations_skipped")
                return
            if self._pending is not None:
                stats.add("observations_replaced")
            self._pending = _Pending(observation, arrays, received_ns)
            self._cond.notify_all()

    def fail(self, failure: _Abort) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = failure
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wait_setup(self, timeout_s: float) -> pb2.PolicySetup | None:
        with self._cond:
            self._cond.wait_for(lambda: self.setup is not None or self._ended or self._failure, timeout_s)
            # A good setup is answered even when a later message already failed: the handshake reply
            # comes first, then the error status.
            if self.setup is None and self._failure is not None:
                raise self._failure
            if self.setup is None and not self._ended:
                raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no setup message within {timeout_s:g} s")
            return self.setup

    def take(self) -> _Pending | None:
        """The next admitted observation (marked predicted), None once the stream ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending is not None or self._ended or self._failure)
            if self._failure is not None:
                raise self._failure
            if self._pending is None:
                return None
            pending, self._pending = self._pending, None
            self._predicted[pending.message.timestep] = None
            while len(self._predicted) > _PREDICTED_MEMORY:
                self._predicted.popitem(last=False)
            return pending


class PolicyServer:
    """A ChunkPolicy served over gRPC (see the module docstring).

    ``port=0`` binds a free port (``server.port`` says which). ``policy_name`` is what clients may
    ask for at setup (besides the policy type). ``max_sessions`` concurrent sessions are served; one
    more is refused with RESOURCE_EXHAUSTED."""

    def __init__(
        self,
        policy: ChunkPolicy,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        policy_name: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_sessions: int = 4,
        setup_timeout_s: float = DEFAULT_SETUP_TIMEOUT_S,
        limits: Limits | None = None,
    ) -> None:
        self.limits = replace(limits or Limits(), max_message_bytes=max_message_bytes)
        if not isinstance(policy, ChunkPolicy):
            raise AsyncInferenceConfigError(
                f"{type(policy).__name__} is no ChunkPolicy: it needs `features` and `predict_chunk(observation)`"
            )
        policy.features.check(self.limits)
        self.token = check_token(token, AsyncInferenceConfigError)
        if self.token is None and not is_loopback(host):
            raise AsyncInferenceConfigError(
                f"binding {host} (not loopback) needs a token: pass --token=... or set ${TOKEN_ENV} "
                f"(e.g. `openssl rand -hex 16`), or bind {DEFAULT_HOST}"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise AsyncInferenceConfigError(f"port {port!r}: expected 0 (any free port) to 65535")
        if max_sessions < 1:
            raise AsyncInferenceConfigError(f"max_sessions {max_sessions}: expected at least 1")
        self.policy = policy
        self.policy_name = policy_name
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        self.setup_timeout_s = setup_timeout_s
        self.stats = _Stats()
        self._clock_id = monotonic_clock_id()
        self._policy_lock = threading.Lock()
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    def start(self) -> PolicyServer:
        """Binds and starts serving; PolicyServerError when the address cannot be bound."""
        if self._server is not None:
            return self
        interceptors = [_TokenInterceptor(self.token, self.stats)] if self.token else []
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.max_sessions, thread_name_prefix="dexloop-policy-server"),
            handlers=[
                grpc.method_handlers_generic_handler(
                    SERVICE.full_name,
                    # No (de)serializers: the handler parses the bytes itself, so a garbled message is
                    # answered INVALID_ARGUMENT with its reason rather than gRPC's bare INTERNAL.
                    {"Session": grpc.stream_stream_rpc_method_handler(self._session)},
                )
            ],
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", self.limits.max_message_bytes),
                ("grpc.max_send_message_length", self.limits.max_message_bytes),
                # A second server on a taken port must fail, not share the port with the first.
                ("grpc.so_reuseport", 0),
                # Clients ping every few seconds to notice a dead link; never answer pings with GOAWAY.
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
            maximum_concurrent_rpcs=self.max_sessions,
        )
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError as error:
            bound = 0
            reason = f" ({error})"
        else:
            reason = ""
        if bound == 0:
            server.stop(None)
            raise PolicyServerError(
                f"cannot bind {self.address}: in use or not an address of this machine{reason}"
            )
        self.port = bound
        server.start()
        self._server = server
        log.info(
            "policy server on %s (%s, %s)",
            self.address,
            self.policy_name or self.policy.features.policy_type or type(self.policy).__name__,
            "token required" if self.token else "no token: loopback only",
        )
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stops serving; open sessions end at once (``grace=None``) or after ``grace`` seconds."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the server stops (True) or ``timeout`` passes (False)."""
        if self._server is None:
            return True
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _features_for(self, setup: pb2.PolicySetup) -> PolicyFeatures:
        features = self.policy.features
        wanted = setup.actions_per_chunk or features.chunk_size
        return replace(features, chunk_size=min(wanted, features.chunk_size))

    def _check_setup(self, setup: pb2.PolicySetup) -> None:
        if setup.protocol_version != PROTOCOL_VERSION:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"protocol version {setup.protocol_version}; this server speaks {PROTOCOL_VERSION}",
            )
        hosted = {self.policy_name, self.policy.features.policy_type} - {""}
        if setup.policy and setup.policy not in hosted:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the client asks for policy {setup.policy!r}; this server hosts {sorted(hosted) or 'an unnamed policy'}",
            )

    def _session(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        session = _Session(self)
        context.add_callback(session.end)
        threading.Thread(
            target=session.read, args=(requests,), name="dexloop-session-reader", daemon=True
        ).start()
        self.stats.add("sessions")
        try:
            setup = session.wait_setup(self.setup_timeout_s)
            if setup is None:
                return
            self._check_setup(setup)
            features = self._features_for(setup)
            reset = getattr(self.policy, "reset", None)
            if callable(reset):
                with self._policy_lock:
                    reset()
            info = policy_info_message(
                features,
                policy=self.policy_name,
                max_message_bytes=self.limits.max_message_bytes,
                clock_id=self._clock_id,
            )
            log.info("session from %s (%s)", context.peer(), setup.client_name or "unnamed client")
            yield pb2.ServerMessage(policy=info).SerializeToString()
            while (pending := session.take()) is not None:
                yield self._answer(pending, features)
        except _Abort as abort:
            self.stats.add(f"status_{abort.code.name.lower()}")
            log.info("session from %s ended: %s %s", context.peer(), abort.code.name, abort.details)
            context.abort(abort.code, abort.details)
        finally:
            session.end()

    def _answer(self, pending: _Pending, features: PolicyFeatures) -> bytes:
        timings = pb2.ServerTimings(received_ns=pending.received_ns)
        with self._policy_lock:
            timings.infer_start_ns = time.monotonic_ns()
            try:
                actions = self.policy.predict_chunk(pending.arrays)
            except (AsyncMessageError, InferenceInputError) as error:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"the policy refused the observation: {error}"
                ) from error
            except Exception as error:
                log.exception("the policy failed")
                raise _Abort(grpc.StatusCode.INTERNAL, f"the policy failed: {error}") from error
            timings.infer_end_ns = time.monotonic_ns()
        try:
            actions = check_actions(
                np.asarray(actions)[: features.chunk_size], features, "the policy's chunk"
            )
        except AsyncMessageError as error:
            raise _Abort(grpc.StatusCode.INTERNAL, str(error)) from error
        timings.sent_ns = time.monotonic_ns()
        chunk = chunk_message(
            actions, start_timestep=pending.message.timestep, observation=pending.message, timings=timings
        )
        self.stats.add("chunks_sent")
        return pb2.ServerMessage(chunk=chunk).SerializeToString()


# --- Command line ------------------------------------------------------------------------------

PROG = "python -m dexloop.async_inference.server"


@dataclass
class ServePolicyConfig:
    # The exported policy folder (`dexloop export`'s output: dexloop_export.json and the ONNX graphs).
    path: Path | None = None
    # onnxruntime (the export's graphs) or torch (the source checkpoint the manifest names).
    backend: str = "onnxruntime"
    # cpu, cuda or tensorrt (ONNX Runtime's execution providers).
    device: str = "cpu"
    # ONNX Runtime's intra-op threads (default: its own choice).
    threads: int | None = None


@dataclass
class ServeConfig:
    policy: ServePolicyConfig = field(default_factory=ServePolicyConfig)
    # The address to bind; anything but loopback needs a token.
    host: str = DEFAULT_HOST
    # The port (0: any free one, printed at start).
    port: int = DEFAULT_PORT
    # The bearer token clients must send (default: $DEXLOOP_POLICY_SERVER_TOKEN).
    token: str | None = None
    # The largest message accepted, in bytes (observations with all their camera frames).
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Concurrent sessions served (robots); one more is refused.
    max_sessions: int = 4


def parse_serve_config(args: Sequence[str], environ: Mapping[str, str] | None = None) -> ServeConfig:
    import draccus

    try:
        cfg = draccus.parse(config_class=ServeConfig, args=list(args))
    except SystemExit as error:
        raise AsyncInferenceConfigError(f"invalid options {list(args)} (see {PROG} --help)") from error
    except Exception as error:
        raise AsyncInferenceConfigError(f"invalid options {list(args)}: {error}") from error
    if cfg.policy.path is None:
        raise AsyncInferenceConfigError(
            "no policy: pass --policy.path=<export folder> (`dexloop export` makes one)"
        )
    if cfg.token is None:
        cfg.token = (os.environ if environ is None else environ).get(TOKEN_ENV) or None
    return cfg


def _describe(cls: type, prefix: str, lines: list[str]) -> None:
    """One ``--prefix.field=[default]  comment`` line per field of dataclass ``cls``, the comment
    above the field as its help (draccus's reading of it), as the other commands' ``--help`` shows.
    Here rather than dexloop.training's describe_fields, which imports torch: a deploy machine
    serving an export may have none."""
    from draccus.wrappers.docstring import get_attribute_docstring, get_preferred_help_text

    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            _describe(hint, f"{prefix}{item.name}.", lines)
            continue
        try:
            comment = get_preferred_help_text(get_attribute_docstring(cls, item.name)) or ""
        except Exception:  # the class's source is not available
            comment = ""
        default = "null" if item.default is None else item.default
        lines.append(f"  --{prefix}{item.name}=[{default}]  {' '.join(comment.split())}".rstrip())


def format_help() -> str:
    lines = [
        f"usage: {PROG} --policy.path=EXPORT [--host=127.0.0.1] [--port=8080] [--token=...]",
        "",
        "Serves an exported policy to robot clients over gRPC (typed protobuf messages; see",
        "proto/dexloop/async_inference.proto). Only loopback without a token.",
        "",
        "options (default in brackets):",
    ]
    _describe(ServeConfig, "", lines)
    return "\n".join(lines) + "\n"


def serve(cfg: ServeConfig, *, ready: threading.Event | None = None) -> PolicyServer:
    """Loads ``cfg.policy`` and serves it until interrupted (Ctrl-C); returns the stopped server."""
    policy = RuntimeChunkPolicy.load(
        cfg.policy.path, cfg.policy.backend, device=cfg.policy.device, threads=cfg.policy.threads
    )
    server = PolicyServer(
        policy,
        host=cfg.host,
        port=cfg.port,
        token=cfg.token,
        policy_name=str(cfg.policy.path),
        max_message_bytes=cfg.max_message_bytes,
        max_sessions=cfg.max_sessions,
    ).start()
    features = policy.features
    print(
        f"serving {features.policy_type} from {cfg.policy.path} on {server.address} "
        f"({len(features.images)} cameras, action_dim {features.action_dim}, chunk {features.chunk_size}; "
        f"{'token required' if server.token else 'loopback, no token'})",
        flush=True,
    )
    if ready is not None:
        ready.set()
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=1.0)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: 0 when stopped, 2 for unusable options, 1 when the policy cannot be served."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(format_help(), end="")
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        cfg = parse_serve_config(args)
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    try:
        serve(cfg)
    except AsyncInferenceConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "SESSION_METHOD",
    "TOKEN_ENV",
    "ChunkPolicy",
    "PolicyServer",
    "RuntimeChunkPolicy",
    "ServeConfig",
    "ServePolicyConfig",
    "format_help",
    "is_loopback",
    "main",
    "parse_serve_config",
    "serve",
]


if __name__ == "__main__":
    sys.exit(main())
