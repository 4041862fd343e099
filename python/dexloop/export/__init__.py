"""Exporting trained policies: ONNX graphs that take raw observations and return actions, with a
manifest the inference runtime (dexloop.inference) reads. ``dexloop export`` is the command line.

The manifest needs only numpy; the exporter (torch, onnx) is imported when first used, so a deployed
runtime that reads manifests carries no torch."""

from __future__ import annotations

from typing import Any

from dexloop.export.manifest import MANIFEST_NAME, ExportManifest, GraphSpec, TensorSpec

_EXPORTER = ("PRECISIONS", "SUPPORTED_POLICIES", "ExportResult", "export_policy")


def __getattr__(name: str) -> Any:
    if name in _EXPORTER:
        from dexloop.export import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module 'dexloop.export' has no attribute {name!r}")


__all__ = [
    "MANIFEST_NAME",
    "PRECISIONS",
    "SUPPORTED_POLICIES",
    "ExportManifest",
    "ExportResult",
    "GraphSpec",
    "TensorSpec",
    "export_policy",
]
