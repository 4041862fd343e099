"""examples/03_record_on_simulated_arm.py, what README's demo runs: recording from the simulated SO-101."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dexloop.datasets import LeRobotDataset

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "03_record_on_simulated_arm.py"


def test_the_recording_example_records_the_simulated_arm(tmp_path) -> None:
    root = tmp_path / "so101"
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(root)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recorded 3 episodes, 180 frames" in result.stdout
    dataset = LeRobotDataset("dexloop/so101_sim", root=root)
    assert dataset.meta.robot_type == "so101_follower"
    # The state follows the commanded goals (the simulated servos move towards them, a little late).
    items = [dataset[i] for i in range(len(dataset))]
    state = np.stack([item["observation.state"].numpy() for item in items])
    action = np.stack([item["action"].numpy() for item in items])
    for joint in range(6):
        assert np.corrcoef(state[:, joint], action[:, joint])[0, 1] > 0.8, joint
