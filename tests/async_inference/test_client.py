"""The robot side: LeRobot's send rule and must-go flag, newest-wins sending, reconnection after the
server dies and comes back on the same port, refusals that end the client, and the latency stages."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from async_fakes import FEATURES, RecordingSink, expected_chunk, make_observation, wait_for

import dexloop.async_inference.server as server_module
from dexloop.async_inference import (
    LATENCY_STAGES,
    ConnectionState,
    LatencyStats,
    PolicyClient,
    PolicyFeatures,
    should_send,
)
from dexloop.errors import AsyncInferenceConfigError, PolicyServerError


def test_should_send_is_lerobots_rule():
    assert should_send(queue_depth=100, chunk_size=-1, chunk_size_threshold=0.5)  # before the first chunk
    assert should_send(0, 50, 0.5) and should_send(25, 50, 0.5)
    assert not should_send(26, 50, 0.5)
    assert should_send(35, 50, 0.7) and not should_send(36, 50, 0.7)
    assert not should_send(1, 50, 0.0) and should_send(0, 50, 0.0)


def test_must_go_is_sent_once_per_chunk(server, make_client, policy):
    client = make_client(server.address)
    client.connect(timeout_s=10)
    assert client.should_send(queue_depth=1000)  # no chunk yet: always
    assert client.must_go(queue_depth=0) and not client.must_go(queue_depth=3)
    policy.gate.clear()
    client.send_observation(make_observation(), timestep=0, must_go=client.must_go(0))
    assert not client.must_go(0)  # cleared by the must-go send, until a chunk arrives
    policy.gate.set()
    assert client.wait_for_chunks(1, timeout_s=10)
    assert client.must_go(0)
    assert not client.should_send(5) and client.should_send(4)  # chunk of 8, threshold 0.5


def test_the_client_reconnects_when_the_server_comes_back(start_server, make_client, policy):
    first = start_server()
    port = first.port
    sink = RecordingSink()
    client = make_client(f"127.0.0.1:{port}", sink=sink)
    client.connect(timeout_s=10)
    client.send_observation(make_observation(1.0), timestep=1)
    assert client.wait_for_chunks(1, timeout_s=10)

    first.stop()
    assert client.wait_for_state(ConnectionState.DISCONNECTED, timeout_s=10)
    # Observations while the server is away wait in the slot (the newest one) and go out on the new session.
    client.send_observation(make_observation(2.0), timestep=2)
    client.send_observation(make_observation(3.0), timestep=3)
    wait_for(lambda: client.counters()["errors"] >= 2)  # the lost session and at least one refused retry

    start_server(port=port)
    assert client.wait_for_state(ConnectionState.CONNECTED, timeout_s=10)
    assert client.wait_for_chunks(2, timeout_s=10)
    assert sink.chunks[1][0] == 3
    np.testing.assert_array_equal(sink.chunks[1][1], expected_chunk(make_observation(3.0)))
    client.send_observation(make_observation(4.0), timestep=4)
    assert client.wait_for_chunks(3, timeout_s=10)
    counters = client.counters()
    assert counters["reconnects"] == 1 and counters["connects"] == 2
    assert counters["observations_replaced"] == 1
    assert counters["state"] == "connected"
    assert "UNAVAILABLE" in counters["last_error"] or "CANCELLED" in counters["last_error"]


def test_a_server_back_with_another_policy_ends_the_client(start_server, make_client, policy):
    first = start_server()
    port = first.port
    client = make_client(f"127.0.0.1:{port}")
    client.connect(timeout_s=10)
    first.stop()

    class Other:
        features = PolicyFeatures(action_dim=6, chunk_size=8)

        def predict_chunk(self, observation):
            return np.zeros((8, 6), np.float32)

    start_server(policy=Other(), port=port)
    assert client.wait_for_state(ConnectionState.FAILED, timeout_s=10)
    with pytest.raises(PolicyServerError, match="came back with another policy"):
        client.send_observation(make_observation(), timestep=0)


def test_connect_gives_up_when_no_server_answers(make_client):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"127.0.0.1:{port}")
    with pytest.raises(
        PolicyServerError, match=rf"no policy server answered at 127.0.0.1:{port} within 0.3 s"
    ):
        client.connect(timeout_s=0.3)
    assert client.state is ConnectionState.CLOSED


def test_a_policy_mismatch_fails_connect(server, make_client):
    with pytest.raises(PolicyServerError, match="FAILED_PRECONDITION.*other/policy"):
        make_client(server.address, policy="other/policy").connect(timeout_s=10)


def test_a_failing_sink_is_counted_and_chunks_keep_coming(server, make_client):
    calls = []

    def sink(start, actions, observed_at_ns, received_at_ns):
        calls.append(start)
        if len(calls) == 1:
            raise RuntimeError("queue full")
        return len(actions)

    client = make_client(server.address, sink=sink)
    client.connect(timeout_s=10)
    for t in range(2):
        client.send_observation(make_observation(float(t)), timestep=t)
        assert client.wait_for_chunks(t + 1, timeout_s=10)
    counters = client.counters()
    assert calls == [0, 1] and counters["errors"] == 1 and counters["actions_queued"] == FEATURES.chunk_size
    assert "queue full" in counters["last_error"]


def test_client_options_are_checked():
    with pytest.raises(AsyncInferenceConfigError, match="sink must be callable"):
        _client(sink=None)
    with pytest.raises(AsyncInferenceConfigError, match="chunk_size_threshold"):
        _client(chunk_size_threshold=1.5)
    with pytest.raises(AsyncInferenceConfigError, match="backoff"):
        _client(backoff_initial_s=3.0, backoff_max_s=2.0)


def _client(**options):
    options.setdefault("sink", RecordingSink())
    return PolicyClient("127.0.0.1:1", **options)


def _latency_run(server, make_client, chunks: int = 6):
    client = make_client(server.address)
    client.connect(timeout_s=10)
    for t in range(chunks):
        client.send_observation(make_observation(float(t)), timestep=t)
        assert client.wait_for_chunks(t + 1, timeout_s=10)
    return client


def test_latency_stages_are_recorded_and_add_up(server, make_client):
    client = _latency_run(server, make_client)
    stats = client.latency
    assert stats.count == 6
    samples = {stage: stats.samples(stage) for stage in LATENCY_STAGES}
    for stage, values in samples.items():
        assert values.shape == (6,) and (values >= 0).all(), stage
    # One machine, one clock: the stages tile the whole trip exactly.
    parts = sum(samples[s] for s in LATENCY_STAGES if s != "total")
    np.testing.assert_array_equal(parts, samples["total"])
    table = stats.percentiles()
    assert set(table) == set(LATENCY_STAGES)
    for entry in table.values():
        assert 0 <= entry["p50"] <= entry["p90"] <= entry["p99"] <= entry["max"]
        assert entry["count"] == 6


def test_latency_across_machines_splits_the_network_time(start_server, make_client, monkeypatch):
    monkeypatch.setattr(server_module, "monotonic_clock_id", lambda: "another-machine")
    client = _latency_run(start_server(), make_client, chunks=3)
    to_server, back = client.latency.samples("send_to_server"), client.latency.samples("return")
    np.testing.assert_array_equal(to_server, back)
    for stage in LATENCY_STAGES:
        assert (client.latency.samples(stage) >= 0).all(), stage


def test_latency_stats_keep_the_last_samples():
    stats = LatencyStats(stages=("a",), capacity=4)
    assert stats.percentiles() == {}
    for value in range(10):
        stats.record({"a": value * 1_000_000})
    np.testing.assert_array_equal(stats.samples("a"), np.array([6, 7, 8, 9]) * 1_000_000)
    assert stats.percentiles((50,))["a"] == {"p50": 7.5, "max": 9.0, "count": 4.0}
