"""Observations out, chunks back: exact actions with the right timesteps reach the sink, the
handshake reports the policy's features, and the server admits observations as LeRobot's does
(newest replaces pending, predicted timesteps skipped, must-go always admitted)."""

from __future__ import annotations

import numpy as np
import pytest
from async_fakes import (
    FEATURES,
    STATE,
    Feed,
    RecordingSink,
    expected_chunk,
    in_thread,
    make_observation,
    observation_proto,
    raw_session,
    setup_bytes,
    wait_for,
)

from dexloop.async_inference import ConnectionState, PolicyFeatures
from dexloop.errors import AsyncInferenceConfigError, AsyncMessageError, PolicyServerError


def test_chunks_reach_the_sink_exactly(server, make_client):
    sink = RecordingSink()
    client = make_client(server.address, sink=sink)
    features = client.connect(timeout_s=10)
    assert features == FEATURES
    assert client.state is ConnectionState.CONNECTED
    sent = []
    for i in range(5):
        observation = make_observation(value=float(i), seed=i)
        client.send_observation(
            observation, timestep=10 * i, task="push the cube", captured_monotonic_ns=1000 + i
        )
        sent.append(observation)
        assert client.wait_for_chunks(i + 1, timeout_s=10)
    assert [start for start, *_ in sink.chunks] == [0, 10, 20, 30, 40]
    for (_, actions, observed_at, received_at), observation, i in zip(
        sink.chunks, sent, range(5), strict=True
    ):
        np.testing.assert_array_equal(actions, expected_chunk(observation))
        assert observed_at == 1000 + i
        assert received_at > observed_at
    counters = client.counters()
    assert counters["chunks_received"] == 5
    assert counters["actions_queued"] == 5 * FEATURES.chunk_size
    assert counters["errors"] == 0
    assert server.stats.snapshot()["chunks_sent"] == 5


def test_actions_per_chunk_cuts_the_chunk(server, make_client):
    sink = RecordingSink()
    client = make_client(server.address, sink=sink, actions_per_chunk=3)
    assert client.connect(timeout_s=10).chunk_size == 3
    observation = make_observation(2.0)
    client.send_observation(observation, timestep=7)
    assert client.wait_for_chunks(1, timeout_s=10)
    start, actions, _, _ = sink.chunks[0]
    assert start == 7
    np.testing.assert_array_equal(actions, expected_chunk(observation)[:3])
    assert client.should_send(1) and not client.should_send(2)


def test_handshake_announces_the_policy(server, make_client, policy):
    client = make_client(server.address)
    client.connect(timeout_s=10)
    info = client.policy_info
    assert info.policy_type == "fake"
    assert [(i.key, i.height, i.width, i.channels) for i in info.images] == [
        ("observation.images.top", 6, 8, 3),
        ("observation.images.wrist", 4, 4, 1),
    ]
    assert [(s.key, list(s.shape)) for s in info.states] == [(STATE, [3])]
    assert (info.action_dim, list(info.action_names), info.chunk_size) == (3, ["a", "b", "c"], 8)
    assert info.max_message_bytes == server.limits.max_message_bytes
    assert policy.resets == 1  # each session starts the policy afresh


def test_observations_are_checked_before_they_leave(server, make_client):
    client = make_client(server.address)
    with pytest.raises(PolicyServerError, match="not connected"):
        client.send_observation(make_observation(), timestep=0)
    client.connect(timeout_s=10)
    bad = make_observation()
    bad[STATE] = np.array([np.nan, 0, 0], dtype=np.float32)
    with pytest.raises(AsyncMessageError, match="observation.state: 1 non-finite"):
        client.send_observation(bad, timestep=0)
    bad = make_observation()
    bad["observation.images.side"] = bad.pop("observation.images.top")
    with pytest.raises(
        AsyncMessageError,
        match=r"unknown keys \['observation.images.side'\].*no \['observation.images.top'\]",
    ):
        client.send_observation(bad, timestep=0)
    with pytest.raises(AsyncMessageError, match="timestep -1"):
        client.send_observation(make_observation(), timestep=-1)
    assert client.counters()["observations_sent"] == 0


def test_newest_pending_observation_wins_and_predicted_timesteps_are_skipped(server, policy):
    policy.gate.clear()  # the first observation holds the policy; the next ones wait behind it
    feed = Feed()
    feed.put(setup_bytes())
    feed.put(observation_proto(value=0.0, timestep=0).SerializeToString())
    worker, done = in_thread(lambda: raw_session(server.address, feed))
    assert policy.started.wait(10)
    for value, timestep in [(1.0, 1), (2.0, 2), (3.0, 3)]:  # 1 and 2 are replaced by 3
        feed.put(observation_proto(value=value, timestep=timestep).SerializeToString())
    wait_for(lambda: server.stats.snapshot().get("observations_replaced", 0) == 2)
    policy.gate.set()
    wait_for(lambda: len(policy.seen) == 2)
    feed.put(
        observation_proto(value=4.0, timestep=3).SerializeToString()
    )  # timestep 3 was predicted: skipped
    wait_for(lambda: server.stats.snapshot().get("observations_skipped", 0) == 1)
    feed.put(observation_proto(value=5.0, timestep=3, must_go=True).SerializeToString())  # must-go: admitted
    feed.close()
    worker.join(10)
    result = done["result"]
    assert result.code.name == "OK", result.details
    assert result.replies[0].WhichOneof("kind") == "policy"
    chunks = [r.chunk for r in result.replies[1:]]
    assert [(c.observation_timestep, c.start_timestep) for c in chunks] == [(0, 0), (3, 3), (3, 3)]
    assert [float(s[0]) for s in policy.seen] == [0.0, 3.0, 5.0]


def test_a_skipped_observation_does_not_displace_a_pending_one(server, policy):
    policy.gate.clear()
    feed = Feed()
    feed.put(setup_bytes())
    feed.put(observation_proto(value=0.0, timestep=5).SerializeToString())
    worker, done = in_thread(lambda: raw_session(server.address, feed))
    assert policy.started.wait(10)
    feed.put(observation_proto(value=1.0, timestep=5, must_go=True).SerializeToString())  # admitted, waits
    wait_for(lambda: server.stats.snapshot().get("observations_received", 0) == 2)
    feed.put(observation_proto(value=2.0, timestep=5).SerializeToString())  # predicted timestep: skipped
    wait_for(lambda: server.stats.snapshot().get("observations_skipped", 0) == 1)
    policy.gate.set()
    feed.close()
    worker.join(10)
    assert done["result"].code.name == "OK"
    assert [float(s[0]) for s in policy.seen] == [0.0, 1.0]


def test_features_check_refuses_unusable_policies(start_server, policy):
    class Huge:
        features = PolicyFeatures(action_dim=3, chunk_size=5000)

        def predict_chunk(self, observation):
            raise AssertionError

    with pytest.raises(AsyncInferenceConfigError, match="chunk_size: 5000"):
        start_server(policy=Huge())
    with pytest.raises(AsyncInferenceConfigError, match="no ChunkPolicy"):
        start_server(policy=object())
