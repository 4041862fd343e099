"""Async inference over gRPC: a ``PolicyServer`` hosting a policy, a robot-side ``PolicyClient``
streaming observations to it and handing the returned action chunks to the control loop's queue.

The protocol is ``proto/dexloop/async_inference.proto`` (typed protobuf messages, never pickles);
its Python modules are generated when first needed (dexloop.async_inference._generated).
Needs the ``serve`` extra: ``pip install 'dexloop[serve]'``.

The names below are loaded on first use, so ``python -m dexloop.async_inference.server`` runs the
server module once, as __main__, rather than after the package imported it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LATENCY_STAGES": "client",
    "ConnectionState": "client",
    "LatencyStats": "client",
    "PolicyClient": "client",
    "should_send": "client",
    "DEFAULT_MAX_MESSAGE_BYTES": "messages",
    "PROTOCOL_VERSION": "messages",
    "ImageFeature": "messages",
    "Limits": "messages",
    "PolicyFeatures": "messages",
    "StateFeature": "messages",
    "ChunkPolicy": "server",
    "PolicyServer": "server",
    "RuntimeChunkPolicy": "server",
    "serve": "server",
}

if TYPE_CHECKING:
    from dexloop.async_inference.client import (
        LATENCY_STAGES,
        ConnectionState,
        LatencyStats,
        PolicyClient,
        should_send,
    )
    from dexloop.async_inference.messages import (
        DEFAULT_MAX_MESSAGE_BYTES,
        PROTOCOL_VERSION,
        ImageFeature,
        Limits,
        PolicyFeatures,
        StateFeature,
    )
    from dexloop.async_inference.server import ChunkPolicy, PolicyServer, RuntimeChunkPolicy, serve


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "LATENCY_STAGES",
    "PROTOCOL_VERSION",
    "ChunkPolicy",
    "ConnectionState",
    "ImageFeature",
    "LatencyStats",
    "Limits",
    "PolicyClient",
    "PolicyFeatures",
    "PolicyServer",
    "RuntimeChunkPolicy",
    "StateFeature",
    "serve",
    "should_send",
]
