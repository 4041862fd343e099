"""Fixtures of the async-inference tests: the fake policy, servers on free ports, clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("grpc")

from async_fakes import FakePolicy, RecordingSink

from dexloop.async_inference import PolicyClient, PolicyServer


@pytest.fixture
def policy() -> FakePolicy:
    return FakePolicy()


@pytest.fixture
def start_server(policy: FakePolicy) -> Iterator[Callable[..., PolicyServer]]:
    """Starts PolicyServers (default: the fake policy, loopback, a free port); stops them after."""
    servers: list[PolicyServer] = []

    def start(**options: object) -> PolicyServer:
        options.setdefault("port", 0)
        server = PolicyServer(options.pop("policy", policy), **options).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., PolicyServer]) -> PolicyServer:
    return start_server()


@pytest.fixture
def make_client() -> Iterator[Callable[..., PolicyClient]]:
    """Makes PolicyClients (fast backoff, a RecordingSink unless given); closes them after."""
    clients: list[PolicyClient] = []

    def make(address: str, **options: object) -> PolicyClient:
        options.setdefault("sink", RecordingSink())
        options.setdefault("backoff_initial_s", 0.02)
        options.setdefault("backoff_max_s", 0.2)
        client = PolicyClient(address, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
