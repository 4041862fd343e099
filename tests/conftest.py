"""Shared pytest set-up: no network, the offscreen GL backend, helpers on sys.path (support.py), and
fixtures: copies of the shipped datasets, simulated servo buses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# The tests make or ship all their data; nothing may reach the Hugging Face Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
# mujoco picks its GL backend once, when first imported (whichever test does it first): offscreen
# rendering on the CPU unless the machine says otherwise (MUJOCO_GL=egl on a GPU machine).
os.environ.setdefault("MUJOCO_GL", "osmesa")
sys.path.insert(0, str(TESTS))

from support import LEROBOT_DATA, writable_copy  # noqa: E402


@pytest.fixture
def public_0_copy(tmp_path: Path) -> Path:
    """A writable copy of the LeRobot-recorded fixture dataset, for tests that damage it."""
    return writable_copy(LEROBOT_DATA / "public_0", tmp_path)


# --- Simulated servo buses (dexloop._core.sim): an SO-101 arm and a Koch arm, on a pty each ------


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
    from dexloop.robots.presets import preset

    models = [motor.model for motor in preset("koch_follower").motors]
    simulator = sim.ServoSimulator("dynamixel", list(enumerate(models, start=1)), time_constant_s=0.0, seed=4)
    with simulator:
        yield simulator
