"""Malformed, hostile and oversized requests, sent as raw bytes on the Session method: each ends its
own call with an error status naming the problem, and the server goes on answering good clients."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from async_fakes import (
    STATE,
    TOP,
    WRIST,
    Feed,
    in_thread,
    make_observation,
    observation_proto,
    raw_session,
    setup_bytes,
    wait_for,
)

from dexloop.async_inference._generated import pb2
from dexloop.async_inference.server import SESSION_METHOD

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def assert_still_serving(address: str, value: float = 9.0) -> None:
    result = raw_session(address, [setup_bytes(), observation_proto(value, timestep=1).SerializeToString()])
    assert result.code is grpc.StatusCode.OK, result.details
    assert [r.WhichOneof("kind") for r in result.replies] == ["policy", "chunk"]
    assert (
        np.frombuffer(result.replies[1].chunk.actions.data, "<f4")[0]
        == value + make_observation()[TOP][1, 2, 0]
    )


def mutated(edit) -> bytes:
    message = observation_proto(1.0)
    edit(message.observation)
    return message.SerializeToString()


def _set_shape(field, shape):
    del field.shape[:]
    field.shape.extend(shape)


# (name, edit of a valid observation, words the status details must contain)
OBSERVATION_CASES = [
    (
        "image one byte short",
        lambda o: setattr(o.images[0], "data", o.images[0].data[:-1]),
        "143 bytes, expected",
    ),
    ("image one byte long", lambda o: setattr(o.images[0], "data", o.images[0].data + b"\x00"), "145 bytes"),
    ("image height differs", lambda o: setattr(o.images[0], "height", 7), "image of 7 x 8 x 3"),
    ("huge image", lambda o: setattr(o.images[0], "height", 2**31), "image of 2147483648 x 8 x 3"),
    ("unknown camera", lambda o: setattr(o.images[0], "key", "observation.images.side"), "unknown keys"),
    ("camera twice", lambda o: o.images.append(o.images[1]), "more than once"),
    ("missing camera", lambda o: o.images.pop(), "no ['observation.images.wrist']"),
    ("image sent as state", lambda o: setattr(o.images[1], "key", STATE), "more than once"),
    ("empty key", lambda o: setattr(o.images[0], "key", ""), "expected a name of 1 to"),
    (
        "NaN state",
        lambda o: setattr(o.states[0], "data", np.array([0, np.nan, 0], "<f4").tobytes()),
        "non-finite",
    ),
    (
        "inf state",
        lambda o: setattr(o.states[0], "data", np.array([np.inf, 0, 0], "<f4").tobytes()),
        "non-finite",
    ),
    (
        "state bytes short",
        lambda o: setattr(o.states[0], "data", b"\x00" * 11),
        "11 bytes, expected 3 float32",
    ),
    ("state shape differs", lambda o: _set_shape(o.states[0], [4]), "shape (4,), expected (3,)"),
    ("huge state shape", lambda o: _set_shape(o.states[0], [2**32 - 1]), "expected an integer in"),
    ("many state dims", lambda o: _set_shape(o.states[0], [1] * 1000), "1000 dimensions"),
    ("state values overflow", lambda o: _set_shape(o.states[0], [65536, 65536]), "holds 4294967296 values"),
    ("negative timestep", lambda o: setattr(o, "timestep", -5), "timestep -5"),
    ("timestep near int64 max", lambda o: setattr(o, "timestep", 2**63 - 1), "timestep"),
    ("negative capture time", lambda o: setattr(o, "captured_monotonic_ns", -1), "captured_monotonic_ns"),
    ("task too long", lambda o: setattr(o, "task", "x" * 5000), "task: 5000 bytes"),
    ("many images", lambda o: [o.images.add(key=f"k{i}") for i in range(40)], "carries 42 images"),
]


@pytest.mark.parametrize(("name", "edit", "words"), OBSERVATION_CASES, ids=[c[0] for c in OBSERVATION_CASES])
def test_a_bad_observation_is_invalid_argument(server, name, edit, words):
    result = raw_session(server.address, [setup_bytes(), mutated(edit)])
    assert result.code is INVALID, (name, result.code, result.details)
    assert words in result.details, result.details
    assert [r.WhichOneof("kind") for r in result.replies] == ["policy"]
    assert_still_serving(server.address)


SESSION_CASES = [
    ("random bytes first", [b"\xff\xfe garbage \x00\x01"], "no valid ClientMessage"),
    ("observation first", [observation_proto().SerializeToString()], "first message of a session is a setup"),
    ("empty message first", [b""], "got nothing"),
    ("setup twice", [setup_bytes(), setup_bytes()], "setup sent twice"),
    ("empty message later", [setup_bytes(), b""], "an empty client message"),
    (
        "truncated observation",
        [setup_bytes(), observation_proto().SerializeToString()[:-7]],
        "no valid ClientMessage",
    ),
    (
        "bad UTF-8 task",
        [setup_bytes(), observation_proto().SerializeToString() + b"\x12\x06B\x02\xff\xfe"],
        "no valid",
    ),
    ("setup with NaN fps", [setup_bytes(fps=float("nan"))], "setup fps"),
    ("setup asks too many actions", [setup_bytes(actions_per_chunk=10**6)], "actions_per_chunk"),
]


@pytest.mark.parametrize(("name", "requests", "words"), SESSION_CASES, ids=[c[0] for c in SESSION_CASES])
def test_a_malformed_session_is_invalid_argument(server, name, requests, words):
    result = raw_session(server.address, requests)
    assert result.code is INVALID, (name, result.code, result.details)
    assert words in result.details, result.details
    assert_still_serving(server.address)


def test_setup_mismatches_are_failed_precondition(start_server):
    server = start_server(policy_name="outputs/act_onnx")
    for setup, words in [
        (setup_bytes(protocol_version=0), "protocol version 0"),
        (setup_bytes(protocol_version=7), "protocol version 7"),
        (setup_bytes(policy="outputs/other_policy"), "hosts ['fake', 'outputs/act_onnx']"),
    ]:
        result = raw_session(server.address, [setup])
        assert result.code is grpc.StatusCode.FAILED_PRECONDITION
        assert words in result.details
    for name in ["outputs/act_onnx", "fake"]:
        assert raw_session(server.address, [setup_bytes(policy=name)]).code is grpc.StatusCode.OK


def test_random_and_garbled_bytes_never_break_the_server(server):
    rng = np.random.default_rng(1234)
    valid = observation_proto(1.0).SerializeToString()
    outcomes = set()
    for trial in range(60):
        if trial % 3 == 0:
            payload = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        elif trial % 3 == 1:
            garbled = bytearray(valid)
            for index in rng.integers(0, len(garbled), int(rng.integers(1, 8))):
                garbled[index] = int(rng.integers(0, 256))
            payload = bytes(garbled)
        else:
            payload = valid[: int(rng.integers(0, len(valid)))]
        result = raw_session(server.address, [setup_bytes(), payload], timeout=10)
        # A garbled byte may land in pixel data and leave a valid observation: then a chunk comes back.
        assert result.code in (INVALID, grpc.StatusCode.OK), (trial, result.code, result.details)
        if result.code is grpc.StatusCode.OK:
            assert [r.WhichOneof("kind") for r in result.replies] in (["policy"], ["policy", "chunk"])
        outcomes.add(result.code)
    assert INVALID in outcomes
    assert_still_serving(server.address)


def test_unary_and_unknown_calls_get_errors(server):
    with grpc.insecure_channel(server.address) as channel:
        # A unary call on the streaming method: one garbage request, answered with an error status.
        unary = channel.unary_unary(SESSION_METHOD, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as error:
            unary(b"\x08\x96\x01 garbage", timeout=10)
        assert error.value.code() is INVALID
        unknown = channel.unary_unary("/dexloop.async_inference.AsyncInference/Missing")
        with pytest.raises(grpc.RpcError) as error:
            unknown(b"", timeout=10)
        assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert_still_serving(server.address)


def test_a_message_over_the_limit_is_resource_exhausted(start_server):
    server = start_server(max_message_bytes=64 * 1024)
    big = observation_proto(1.0)
    big.observation.task = ""
    big.observation.images[0].data = b"\x00" * (100 * 1024)
    result = raw_session(server.address, [setup_bytes(), big.SerializeToString()])
    assert result.code is grpc.StatusCode.RESOURCE_EXHAUSTED, result.details
    assert_still_serving(server.address)


def test_policy_failures_end_the_session_with_internal(server):
    for value, words in [(-1.0, "the policy failed: the fake policy fails on request"), (-2.0, "non-finite")]:
        result = raw_session(server.address, [setup_bytes(), observation_proto(value).SerializeToString()])
        assert result.code is grpc.StatusCode.INTERNAL
        assert words in result.details
    assert_still_serving(server.address)


def test_a_silent_session_times_out_and_extra_sessions_are_refused(start_server):
    server = start_server(max_sessions=1, setup_timeout_s=0.5)
    feed = Feed()  # sends nothing until closed
    worker, done = in_thread(lambda: raw_session(server.address, feed))
    wait_for(lambda: server.stats.snapshot().get("sessions", 0) == 1)
    refused = raw_session(server.address, [setup_bytes()])
    assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    worker.join(10)
    feed.close()
    assert done["result"].code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no setup message within 0.5 s" in done["result"].details
    assert_still_serving(server.address)


def test_wrong_message_kinds_in_images_are_refused(server):
    # A state vector under an image's key and an image under the state's key.
    message = observation_proto(1.0)
    o = message.observation
    image = pb2.Image(key=STATE, height=1, width=3, channels=1, data=b"\x00\x00\x00")
    state = pb2.FloatTensor(key=WRIST, shape=[16], data=b"\x00" * 64)
    del o.images[1]
    del o.states[:]
    o.images.append(image)
    o.states.append(state)
    result = raw_session(server.address, [setup_bytes(), message.SerializeToString()])
    assert result.code is INVALID
    assert "sent as an image, but the policy takes it as a state vector" in result.details
