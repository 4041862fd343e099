"""Shared pytest set-up: the tests' data folder, no network, and helpers on sys.path."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
LEROBOT_DATA = DATA / "lerobot"
LEROBOT_V21_DATA = DATA / "lerobot_v21"

# The tests make or ship all their data; nothing may reach the Hugging Face Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
# mujoco picks its GL backend once, when first imported (whichever test does it first): offscreen
# rendering on the CPU unless the machine says otherwise (MUJOCO_GL=egl on a GPU machine).
os.environ.setdefault("MUJOCO_GL", "osmesa")
sys.path.insert(0, str(TESTS))


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


@pytest.fixture
def public_0_copy(tmp_path: Path) -> Path:
    """A writable copy of the LeRobot-recorded fixture dataset, for tests that damage it."""
    return writable_copy(LEROBOT_DATA / "public_0", tmp_path)


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


# --- Simulated servo buses (dexloop._core.sim): an SO-101 arm and a Koch arm, on a pty each ------

KOCH_MODELS = ["xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288"]


@pytest.fixture
def so101():
    """Six STS3215 (ids 1-6) on a simulated Feetech bus; the motors reach a goal at once."""
    from dexloop._core import sim

    simulator = sim.ServoSimulator(
        "feetech", [(i, "sts3215") for i in range(1, 7)], time_constant_s=0.0, seed=3
    )
    with simulator:
        yield simulator


@pytest.fixture
def koch():
    """A Koch follower's Dynamixel motors (ids 1-6, two models) on a simulated bus."""
    from dexloop._core import sim

    simulator = sim.ServoSimulator(
        "dynamixel", list(enumerate(KOCH_MODELS, start=1)), time_constant_s=0.0, seed=4
    )
    with simulator:
        yield simulator
