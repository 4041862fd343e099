"""Running exported policies: ``Runtime`` over ONNX Runtime (CPU, CUDA, TensorRT providers) and torch
eager, with the torch policies' action-selection semantics."""

from dexloop.inference.action_queue import ChunkQueue, TemporalEnsembler
from dexloop.inference.runtime import BACKENDS, Runtime

__all__ = ["BACKENDS", "ChunkQueue", "Runtime", "TemporalEnsembler"]
