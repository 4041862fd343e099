"""The async-inference protocol's messages to and from numpy, with the checks both sides run.

Every message a peer receives is checked here before anything acts on it, so the server and the
client refuse the same things with the same words (AsyncMessageError, naming the field):

- an observation carries exactly the policy's cameras and state vectors, each once, each of the
  policy's shape; an image holds height x width x channels bytes, a state 4 x prod(shape) bytes of
  finite float32 values;
- an action chunk is (n, action_dim) finite float32 values, n at most the policy's chunk size;
- every count, side, length and timestep is within ``Limits`` (a message cannot make the receiver
  allocate more than the message size limit allows, or overflow a timestep).

Arrays travel as raw little-endian bytes (np.frombuffer, no per-value protobuf decoding): images
uint8 HWC, floats float32 in C order. Arrays parsed from a message are read-only views of its bytes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError, Message

from dexloop.async_inference._generated import pb2
from dexloop.errors import AsyncInferenceConfigError, AsyncMessageError

PROTOCOL_VERSION = pb2.PROTOCOL_VERSION_1
FLOAT32 = np.dtype("<f4")
ACTION_KEY = "action"
# Room for 3 cameras of 640 x 480 x 3 (2.8 MB) with a wide margin for larger frames or more cameras.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Timesteps stay below 2**62 so start_timestep + n never overflows the int64 fields.
MAX_TIMESTEP = 2**62

_Msg = TypeVar("_Msg", bound=Message)


@dataclass(frozen=True)
class Limits:
    """The largest values either side accepts; anything beyond is refused before it is allocated."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_images: int = 16
    max_image_side: int = 8192
    max_channels: int = 4
    max_states: int = 16
    max_state_dims: int = 4
    max_state_values: int = 65536
    max_action_dim: int = 1024
    # The C++ ActionQueue's default capacity: the most timesteps one chunk may hold.
    max_chunk_size: int = 1024
    max_key_length: int = 256
    max_task_bytes: int = 4096

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise AsyncInferenceConfigError(f"limit {name}={value!r}: expected a positive integer")
        if self.max_message_bytes >= 2**31:
            # gRPC's message size options are C ints.
            raise AsyncInferenceConfigError(
                f"limit max_message_bytes={self.max_message_bytes}: gRPC takes at most {2**31 - 1}"
            )


@dataclass(frozen=True)
class ImageFeature:
    """A camera the policy takes: uint8 frames of height x width x channels (HWC)."""

    key: str
    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


@dataclass(frozen=True)
class StateFeature:
    """A float32 vector (or array) the policy takes, e.g. ``observation.state`` of shape (6,)."""

    key: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class PolicyFeatures:
    """What a hosted policy takes and gives: its cameras, state vectors, action length and the
    number of actions in one chunk. The server announces them at the handshake; both sides check
    every observation and chunk against them."""

    action_dim: int
    chunk_size: int
    images: tuple[ImageFeature, ...] = ()
    states: tuple[StateFeature, ...] = ()
    action_names: tuple[str, ...] = ()
    policy_type: str = ""

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.images] + [f.key for f in self.states]

    def check(self, limits: Limits, error: type[Exception] = AsyncInferenceConfigError) -> None:
        """Raises ``error`` when a feature is unusable or beyond ``limits``."""
        _check_int("action_dim", self.action_dim, 1, limits.max_action_dim, error)
        _check_int("chunk_size", self.chunk_size, 1, limits.max_chunk_size, error)
        if self.action_names and len(self.action_names) != self.action_dim:
            raise error(f"{len(self.action_names)} action names for action_dim {self.action_dim}")
        if len(self.images) > limits.max_images:
            raise error(f"{len(self.images)} cameras, at most {limits.max_images}")
        if len(self.states) > limits.max_states:
            raise error(f"{len(self.states)} state vectors, at most {limits.max_states}")
        seen: set[str] = set()
        for feature in (*self.images, *self.states):
            _check_key(feature.key, limits, error, "feature")
            if feature.key in seen:
                raise error(f"feature {feature.key!r} is listed twice")
            seen.add(feature.key)
        image_bytes = 0
        for image in self.images:
            _check_int(f"{image.key} height", image.height, 1, limits.max_image_side, error)
            _check_int(f"{image.key} width", image.width, 1, limits.max_image_side, error)
            _check_int(f"{image.key} channels", image.channels, 1, limits.max_channels, error)
            image_bytes += image.height * image.width * image.channels
        if image_bytes > limits.max_message_bytes:
            raise error(
                f"the policy's cameras take {image_bytes} bytes per observation, over the message limit "
                f"{limits.max_message_bytes} (raise max_message_bytes)"
            )
        for state in self.states:
            _check_shape(state.key, state.shape, limits, error)


def _check_int(what: str, value: Any, low: int, high: int, error: type[Exception]) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
        raise error(f"{what}: {value!r}, expected an integer in [{low}, {high}]")


def _check_key(key: Any, limits: Limits, error: type[Exception], what: str) -> None:
    if not isinstance(key, str) or not key or len(key) > limits.max_key_length:
        shown = key if not isinstance(key, str) else key[:64]
        raise error(f"{what} key {shown!r}: expected a name of 1 to {limits.max_key_length} characters")


def _check_shape(key: str, shape: Any, limits: Limits, error: type[Exception]) -> int:
    shape = tuple(shape)
    if not 1 <= len(shape) <= limits.max_state_dims:
        raise error(
            f"{key}: shape {shape} has {len(shape)} dimensions, expected 1 to {limits.max_state_dims}"
        )
    for dim in shape:
        _check_int(f"{key} shape {shape}", dim, 1, limits.max_state_values, error)
    size = math.prod(shape)
    if size > limits.max_state_values:
        raise error(f"{key}: shape {shape} holds {size} values, at most {limits.max_state_values}")
    return size


def decode(kind: type[_Msg], raw: bytes, what: str) -> _Msg:
    """``raw`` parsed as a ``kind`` message; AsyncMessageError when the bytes are no such message."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise AsyncMessageError(f"{what}: expected bytes, got {type(raw).__name__}")
    try:
        return kind.FromString(bytes(raw))
    except (DecodeError, ValueError, TypeError) as error:
        raise AsyncMessageError(
            f"{what}: {len(raw)} bytes that are no valid {kind.__name__} ({error})"
        ) from error


# --- Handshake ---------------------------------------------------------------------------------


def monotonic_clock_id() -> str:
    """What PolicyInfo.monotonic_clock_id carries: the Linux boot id, since CLOCK_MONOTONIC is one
    clock for every process (and container) of one boot. Empty where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def check_token(token: str | None, error: type[Exception] = AsyncInferenceConfigError) -> str | None:
    """``token`` if usable as a bearer token (printable ASCII, no spaces: it travels in a gRPC
    metadata value), None for no token."""
    if token is None:
        return None
    if not isinstance(token, str) or not token or not all(33 <= ord(c) <= 126 for c in token):
        raise error(
            "the token must be non-empty printable ASCII without spaces (e.g. `openssl rand -hex 16`)"
        )
    return token


def setup_message(
    *, policy: str = "", actions_per_chunk: int = 0, fps: float = 30.0, client_name: str = "", limits: Limits
) -> pb2.PolicySetup:
    """The client's handshake (checked as the server will check it)."""
    setup = pb2.PolicySetup(
        protocol_version=PROTOCOL_VERSION,
        policy=policy,
        actions_per_chunk=int(actions_per_chunk),
        fps=float(fps),
        client_name=client_name,
    )
    check_setup(setup, limits, AsyncInferenceConfigError)
    return setup


def check_setup(setup: pb2.PolicySetup, limits: Limits, error: type[Exception] = AsyncMessageError) -> None:
    """Raises ``error`` for a handshake with unusable values. The protocol version and the policy
    name are the server's to judge (FAILED_PRECONDITION, not a malformed message)."""
    if len(setup.policy) > 4096:
        raise error(f"setup policy: {len(setup.policy)} characters, at most 4096")
    if len(setup.client_name) > limits.max_key_length:
        raise error(
            f"setup client_name: {len(setup.client_name)} characters, at most {limits.max_key_length}"
        )
    if setup.actions_per_chunk > limits.max_chunk_size:
        raise error(f"setup actions_per_chunk: {setup.actions_per_chunk}, at most {limits.max_chunk_size}")
    if not math.isfinite(setup.fps) or setup.fps < 0:
        raise error(f"setup fps: {setup.fps}, expected a finite number >= 0 (0: unknown)")


def policy_info_message(
    features: PolicyFeatures, *, policy: str, max_message_bytes: int, clock_id: str
) -> pb2.PolicyInfo:
    """The server's handshake answer: ``features`` (their chunk size already cut to the session's
    ``actions_per_chunk``)."""
    return pb2.PolicyInfo(
        protocol_version=PROTOCOL_VERSION,
        policy=policy,
        policy_type=features.policy_type,
        images=[
            pb2.ImageSpec(key=f.key, height=f.height, width=f.width, channels=f.channels)
            for f in features.images
        ],
        states=[pb2.TensorSpec(key=f.key, shape=list(f.shape)) for f in features.states],
        action_dim=features.action_dim,
        action_names=list(features.action_names),
        chunk_size=features.chunk_size,
        max_message_bytes=max_message_bytes,
        monotonic_clock_id=clock_id,
    )


def features_from_policy_info(info: pb2.PolicyInfo, limits: Limits) -> PolicyFeatures:
    """The features a server announced, checked (AsyncMessageError for a server's nonsense)."""
    features = PolicyFeatures(
        action_dim=info.action_dim,
        chunk_size=info.chunk_size,
        images=tuple(ImageFeature(i.key, i.height, i.width, i.channels) for i in info.images),
        states=tuple(StateFeature(s.key, tuple(s.shape)) for s in info.states),
        action_names=tuple(info.action_names),
        policy_type=info.policy_type,
    )
    features.check(limits, AsyncMessageError)
    return features


# --- Observations ------------------------------------------------------------------------------


def observation_message(
    features: PolicyFeatures,
    observation: Mapping[str, Any],
    *,
    timestep: int,
    must_go: bool = False,
    task: str = "",
    captured_monotonic_ns: int | None = None,
    captured_wall_ns: int | None = None,
    limits: Limits,
    out: pb2.Observation | None = None,
) -> pb2.Observation:
    """``observation`` (feature key -> array: uint8 HWC images, float state vectors) as a message
    (written into ``out`` where given, e.g. the field of an enclosing message, saving a copy of the
    frames), checked as the server will check it. AsyncMessageError names a missing or unknown key,
    a wrong dtype or shape, a non-finite value."""
    if not isinstance(observation, Mapping):
        raise AsyncMessageError(
            f"an observation is a mapping of feature keys to arrays, got {type(observation).__name__}"
        )
    _check_keys(features, list(observation), "the observation")
    _check_timestep(timestep)
    captured = time.monotonic_ns() if captured_monotonic_ns is None else int(captured_monotonic_ns)
    captured_wall = time.time_ns() if captured_wall_ns is None else int(captured_wall_ns)
    if not 0 <= captured < 2**63 or not 0 <= captured_wall < 2**63:
        raise AsyncMessageError("observation capture times are nanoseconds in [0, 2**63)")
    if not isinstance(task, str):
        raise AsyncMessageError(f"task: expected a string, got {type(task).__name__}")
    message = pb2.Observation() if out is None else out
    message.Clear()
    message.timestep = int(timestep)
    message.captured_monotonic_ns = captured
    message.captured_wall_ns = captured_wall
    message.must_go = bool(must_go)
    message.task = task
    if len(task.encode()) > limits.max_task_bytes:
        raise AsyncMessageError(f"task: {len(task.encode())} bytes, at most {limits.max_task_bytes}")
    for image in features.images:
        array = np.asarray(observation[image.key])
        if array.dtype != np.uint8:
            raise AsyncMessageError(f"{image.key}: dtype {array.dtype}, expected uint8 (0-255) HWC images")
        if array.shape != image.shape:
            raise AsyncMessageError(f"{image.key}: shape {array.shape}, expected {image.shape} (HWC)")
        message.images.add(
            key=image.key,
            height=image.height,
            width=image.width,
            channels=image.channels,
            data=np.ascontiguousarray(array).tobytes(),
        )
    for state in features.states:
        value = observation[state.key]
        try:
            array = np.asarray(value, dtype=FLOAT32)
        except (TypeError, ValueError) as error:
            raise AsyncMessageError(
                f"{state.key}: {type(value).__name__} is not a float array ({error})"
            ) from error
        if array.shape != state.shape:
            raise AsyncMessageError(f"{state.key}: shape {array.shape}, expected {state.shape}")
        _check_finite(state.key, array)
        message.states.add(key=state.key, shape=list(state.shape), data=np.ascontiguousarray(array).tobytes())
    if message.ByteSize() > limits.max_message_bytes:
        raise AsyncMessageError(
            f"the observation is {message.ByteSize()} bytes, over the limit of {limits.max_message_bytes}"
        )
    return message


def parse_observation(
    message: pb2.Observation, features: PolicyFeatures, limits: Limits
) -> dict[str, np.ndarray]:
    """The arrays of a received observation (feature key -> read-only array), every field checked
    against ``features`` and ``limits``."""
    _check_timestep(message.timestep)
    for name in ("captured_monotonic_ns", "captured_wall_ns", "sent_monotonic_ns"):
        if getattr(message, name) < 0:
            raise AsyncMessageError(
                f"observation {name}: {getattr(message, name)}, expected nanoseconds >= 0"
            )
    if len(message.task.encode()) > limits.max_task_bytes:
        raise AsyncMessageError(f"task: {len(message.task.encode())} bytes, at most {limits.max_task_bytes}")
    if len(message.images) > limits.max_images or len(message.states) > limits.max_states:
        raise AsyncMessageError(
            f"the observation carries {len(message.images)} images and {len(message.states)} state vectors; the policy "
            f"takes {len(features.images)} and {len(features.states)}"
        )
    keys = [m.key for m in message.images] + [m.key for m in message.states]
    for key in keys:
        _check_key(key, limits, AsyncMessageError, "observation")
    _check_keys(features, keys, "the observation")
    images = {f.key: f for f in features.images}
    states = {f.key: f for f in features.states}
    arrays: dict[str, np.ndarray] = {}
    for image in message.images:
        spec = images.get(image.key)
        if spec is None:
            raise AsyncMessageError(
                f"{image.key}: sent as an image, but the policy takes it as a state vector"
            )
        got = (image.height, image.width, image.channels)
        if got != spec.shape:
            raise AsyncMessageError(
                f"{image.key}: image of {got[0]} x {got[1]} x {got[2]}, the policy takes {spec.shape} (HWC)"
            )
        expected = spec.height * spec.width * spec.channels
        data = image.data  # each read of a bytes field makes a new bytes object: read it once
        if len(data) != expected:
            raise AsyncMessageError(
                f"{image.key}: {len(data)} bytes, expected height x width x channels = "
                f"{spec.height} x {spec.width} x {spec.channels} = {expected}"
            )
        arrays[image.key] = np.frombuffer(data, dtype=np.uint8).reshape(spec.shape)
    for state in message.states:
        spec = states.get(state.key)
        if spec is None:
            raise AsyncMessageError(
                f"{state.key}: sent as a state vector, but the policy takes it as an image"
            )
        arrays[state.key] = _parse_tensor(state, spec.shape, limits)
    return arrays


def _check_keys(features: PolicyFeatures, keys: list[str], where: str) -> None:
    expected = features.keys
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise AsyncMessageError(f"{where} carries {duplicates} more than once")
    unknown = sorted(set(keys) - set(expected))
    missing = [k for k in expected if k not in keys]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown keys {[k[:64] for k in unknown][:8]}")
        if missing:
            parts.append(f"no {missing}")
        raise AsyncMessageError(f"{where} has {' and '.join(parts)}; the policy takes {expected}")


def _check_timestep(timestep: Any) -> None:
    if (
        not isinstance(timestep, (int, np.integer))
        or isinstance(timestep, bool)
        or not 0 <= timestep < MAX_TIMESTEP
    ):
        raise AsyncMessageError(f"timestep {timestep!r}: expected an integer in [0, 2**62)")


def _check_finite(key: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array))
        raise AsyncMessageError(
            f"{key}: {bad.size} non-finite values (first at flat index {int(bad[0])}: {array.flat[bad[0]]})"
        )


def _parse_tensor(tensor: pb2.FloatTensor, expected: tuple[int, ...], limits: Limits) -> np.ndarray:
    shape = _check_shape(tensor.key, tuple(tensor.shape), limits, AsyncMessageError)
    if tuple(tensor.shape) != expected:
        raise AsyncMessageError(f"{tensor.key}: shape {tuple(tensor.shape)}, expected {expected}")
    data = tensor.data
    if len(data) != shape * FLOAT32.itemsize:
        raise AsyncMessageError(
            f"{tensor.key}: {len(data)} bytes, expected {shape} float32 values = {shape * FLOAT32.itemsize}"
        )
    array = np.frombuffer(data, dtype=FLOAT32).reshape(expected)
    _check_finite(tensor.key, array)
    return array


# --- Action chunks -----------------------------------------------------------------------------


def check_actions(actions: Any, features: PolicyFeatures, what: str) -> np.ndarray:
    """``actions`` as a C-ordered float32 (n, action_dim) array, 1 <= n <= chunk size, all finite."""
    array = np.asarray(actions, dtype=FLOAT32)
    if (
        array.ndim != 2
        or array.shape[1] != features.action_dim
        or not 1 <= array.shape[0] <= features.chunk_size
    ):
        raise AsyncMessageError(
            f"{what}: shape {array.shape}, expected (n, {features.action_dim}) with 1 <= n <= {features.chunk_size}"
        )
    _check_finite(what, array)
    return np.ascontiguousarray(array)


def chunk_message(
    actions: np.ndarray, *, start_timestep: int, observation: pb2.Observation, timings: pb2.ServerTimings
) -> pb2.ActionChunk:
    """The chunk predicted from ``observation`` (whose timestep and times it echoes)."""
    return pb2.ActionChunk(
        start_timestep=start_timestep,
        observation_timestep=observation.timestep,
        observation_captured_monotonic_ns=observation.captured_monotonic_ns,
        observation_captured_wall_ns=observation.captured_wall_ns,
        observation_sent_monotonic_ns=observation.sent_monotonic_ns,
        actions=pb2.FloatTensor(key=ACTION_KEY, shape=list(actions.shape), data=actions.tobytes()),
        timings=timings,
    )


def parse_chunk(message: pb2.ActionChunk, features: PolicyFeatures, limits: Limits) -> np.ndarray:
    """The (n, action_dim) float32 actions of a received chunk (read-only), every field checked."""
    _check_timestep(message.start_timestep)
    _check_timestep(message.observation_timestep)
    tensor = message.actions
    shape = tuple(tensor.shape)
    if len(shape) != 2 or shape[1] != features.action_dim or not 1 <= shape[0] <= features.chunk_size:
        raise AsyncMessageError(
            f"chunk actions: shape {shape}, expected (n, {features.action_dim}) with 1 <= n <= {features.chunk_size}"
        )
    expected = shape[0] * shape[1] * FLOAT32.itemsize
    data = tensor.data
    if len(data) != expected:
        raise AsyncMessageError(f"chunk actions: {len(data)} bytes, expected {expected} for shape {shape}")
    array = np.frombuffer(data, dtype=FLOAT32).reshape(shape)
    _check_finite("chunk actions", array)
    if message.start_timestep + shape[0] >= MAX_TIMESTEP:
        raise AsyncMessageError(f"chunk start_timestep {message.start_timestep} + {shape[0]} overflows")
    return array


__all__ = [
    "ACTION_KEY",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "FLOAT32",
    "PROTOCOL_VERSION",
    "ImageFeature",
    "Limits",
    "PolicyFeatures",
    "StateFeature",
    "check_actions",
    "check_setup",
    "check_token",
    "chunk_message",
    "decode",
    "features_from_policy_info",
    "monotonic_clock_id",
    "observation_message",
    "parse_chunk",
    "parse_observation",
    "policy_info_message",
    "setup_message",
]
