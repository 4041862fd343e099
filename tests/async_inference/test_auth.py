"""Access: loopback by default; any other bind address needs a token, and with a token every call
without the right ``authorization: Bearer`` metadata ends UNAUTHENTICATED, the server serving on."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from async_fakes import (
    RecordingSink,
    expected_chunk,
    make_observation,
    observation_proto,
    raw_session,
    setup_bytes,
)

from dexloop.async_inference import PolicyServer
from dexloop.async_inference.server import is_loopback
from dexloop.errors import AsyncInferenceConfigError, PolicyServerAuthError

TOKEN = "0123456789abcdef-test-token"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "robot-server.local"])
def test_a_non_loopback_bind_needs_a_token(policy, host):
    with pytest.raises(AsyncInferenceConfigError, match="needs a token"):
        PolicyServer(policy, host=host, port=0)


@pytest.mark.parametrize("token", ["", "has space", "tab\there", "caf\u00e9"])
def test_unusable_tokens_are_refused(policy, token):
    with pytest.raises(AsyncInferenceConfigError, match="printable ASCII"):
        PolicyServer(policy, host="0.0.0.0", port=0, token=token)


def test_loopback_names():
    assert all(is_loopback(h) for h in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
    assert not any(is_loopback(h) for h in ["0.0.0.0", "::", "10.0.0.1", "example.org"])


def test_calls_without_the_token_are_unauthenticated_and_the_server_serves_on(start_server, make_client):
    server = start_server(host="0.0.0.0", token=TOKEN)
    address = f"127.0.0.1:{server.port}"
    good = [setup_bytes(), observation_proto(1.0).SerializeToString()]
    for metadata in [(), (("authorization", "Bearer wrong-token"),), (("authorization", TOKEN),)]:
        result = raw_session(address, good, metadata=metadata)
        assert result.code is grpc.StatusCode.UNAUTHENTICATED, metadata
        assert result.replies == []
    # An unknown method is refused the same way before anything else is said about it.
    result = raw_session(address, [b"\x00"], method="/dexloop.async_inference.AsyncInference/Nope")
    assert result.code is grpc.StatusCode.UNAUTHENTICATED
    assert server.stats.snapshot()["unauthenticated"] == 4

    for token in [None, "wrong-token"]:
        with pytest.raises(PolicyServerAuthError, match="UNAUTHENTICATED"):
            make_client(address, token=token).connect(timeout_s=10)

    sink = RecordingSink()
    client = make_client(address, token=TOKEN, sink=sink)
    client.connect(timeout_s=10)
    observation = make_observation(3.0)
    client.send_observation(observation, timestep=4)
    assert client.wait_for_chunks(1, timeout_s=10)
    assert sink.chunks[0][0] == 4
    np.testing.assert_array_equal(sink.chunks[0][1], expected_chunk(observation))
    result = raw_session(address, good, metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert result.code is grpc.StatusCode.OK
    assert [r.WhichOneof("kind") for r in result.replies] == ["policy", "chunk"]


def test_a_loopback_server_given_a_token_requires_it(start_server):
    server = start_server(token=TOKEN)
    assert raw_session(server.address, [setup_bytes()]).code is grpc.StatusCode.UNAUTHENTICATED
    ok = raw_session(server.address, [setup_bytes()], metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert ok.code is grpc.StatusCode.OK
