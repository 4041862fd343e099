"""Helpers the tests import (``from support import LEROBOT_DATA, ...``): the shipped test data's
folders and assertions. Kept out of conftest.py, which several test folders have (a module named
``conftest`` would be whichever of them was imported first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
LEROBOT_DATA = DATA / "lerobot"
LEROBOT_V21_DATA = DATA / "lerobot_v21"


def writable_copy(source: Path, parent: Path) -> Path:
    """A copy of dataset folder `source` in `parent` (same name) that tests may change: the shipped
    test data may be read-only."""
    target = parent / source.name
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path) with its SHA-256: what "left untouched" compares."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_same_values(actual: dict, expected: dict, atol: dict[str, float] | None = None) -> None:
    """Same keys in the same order, tensors equal in dtype, shape and every value (within ``atol[key]``
    where given), other values equal."""
    import torch  # here, not at the top: the bus and simulator tests run where torch is not installed

    assert list(actual) == list(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            tolerance = (atol or {}).get(key, 0.0)
            torch.testing.assert_close(
                actual[key], value, rtol=0, atol=tolerance, msg=lambda m, key=key: f"{key}: {m}"
            )
        else:
            assert actual[key] == value, key


def requires_ffmpeg() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which("ffmpeg") is None, reason="the ffmpeg tool makes this test's videos"
    )


def write_act_export(
    folder: Path,
    nodes: list,
    *,
    camera: str,
    image_shape: list,
    layout: str,
    state_dim: int,
    chunk: int,
    action_names: list[str],
    initializer: tuple = (),
) -> Path:
    """A hand-built ACT-shaped export in `folder`: graph policy.onnx whose `nodes` turn the uint8
    `camera` image and ``observation.state`` (batch, state_dim) into ``action`` (batch, chunk,
    len(action_names)), and its dexloop manifest, as ``dexloop export`` writes them. For tests that
    serve or deploy a policy whose every action is known."""
    import onnx
    from onnx import TensorProto, helper

    from dexloop.export.manifest import ExportManifest, GraphSpec, TensorSpec, sha256_of_file

    state = "observation.state"
    action_shape = ["batch", chunk, len(action_names)]
    graph = helper.make_graph(
        nodes,
        folder.name,
        [
            helper.make_tensor_value_info(camera, TensorProto.UINT8, image_shape),
            helper.make_tensor_value_info(state, TensorProto.FLOAT, ["batch", state_dim]),
        ],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, action_shape)],
        initializer=list(initializer),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True)
    path = folder / "policy.onnx"
    onnx.save(model, path)
    ExportManifest(
        policy_type="act",
        precision="fp32",
        opset=17,
        graphs={
            "policy": GraphSpec(
                file="policy.onnx",
                sha256=sha256_of_file(path),
                inputs=[
                    TensorSpec(camera, image_shape, "uint8", feature=camera, layout=layout),
                    TensorSpec(state, ["batch", state_dim], "float32", feature=state),
                ],
                outputs=[TensorSpec("action", action_shape, "float32")],
            )
        },
        action_dim=len(action_names),
        chunk_size=chunk,
        n_action_steps=chunk,
        action_names=action_names,
        fps=30.0,
    ).save(folder)
    return folder
