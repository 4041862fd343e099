"""``dexloop policy-server``: serve an exported policy to robot clients over gRPC.

    dexloop policy-server --policy.path=outputs/export/act                 # 127.0.0.1:8080, no token
    dexloop policy-server --policy.path=EXPORT --host=0.0.0.0 --token=...  # other hosts need a token

Typed protobuf messages (proto/dexloop/async_inference.proto), never pickle. The server is
dexloop.async_inference.server; ``--help`` lists its options with their defaults.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from dexloop.async_inference import server

    return server.main(argv)
