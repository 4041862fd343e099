"""Record demonstrations from a simulated SO-101 arm into a LeRobot dataset, then read them back.

python examples/03_record_on_simulated_arm.py [ROOT]

The arm is dexloop's servo simulator on a pty, driven through FeetechMotorsBus as a real arm would be.
Each episode sends a smooth goal trajectory at 30 Hz (the action), reads the joints back (the state) and
draws a camera frame of the arm's pose; LeRobotDataset.create / add_frame / save_episode record them with
LeRobot's default AV1 encoding, and the dataset is read back with LeRobotDataset.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dexloop.datasets import LeRobotDataset
from dexloop.motors import Motor, MotorCalibration, MotorNormMode
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import simulated_bus

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
FPS = 30
HEIGHT, WIDTH = 240, 320


def camera_view(positions: np.ndarray) -> np.ndarray:
    """A stand-in camera: one bar per joint whose height follows the joint's position."""
    image = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    bar = WIDTH // len(JOINTS)
    for number, value in enumerate(positions):
        level = int(np.clip((value + 100) / 200, 0, 1) * (HEIGHT - 20))
        image[HEIGHT - 10 - level : HEIGHT - 10, number * bar + 8 : (number + 1) * bar - 8] = (
            60 + 30 * number,
            200 - 25 * number,
            120,
        )
    return image


def main() -> None:
    root = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="dexloop-record-")) / "so101"
    )
    shutil.rmtree(root, ignore_errors=True)
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"{j}.pos" for j in JOINTS]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"{j}.pos" for j in JOINTS]},
        "observation.images.front": {
            "dtype": "video",
            "shape": (HEIGHT, WIDTH, 3),
            "names": ["height", "width", "channels"],
        },
    }
    with simulated_bus("so101_follower") as sim:
        motors = {
            name: Motor(i + 1, "sts3215", MotorNormMode.RANGE_M100_100) for i, name in enumerate(JOINTS)
        }
        # The recorder shares the CPU with one video encoder thread per camera: on a small machine a
        # reply may wait tens of milliseconds for a core, more than the default 10 ms allowance.
        bus = FeetechMotorsBus(sim.port, motors, latency_margin_ms=50.0)
        bus.connect()
        bus.write_calibration({name: MotorCalibration(m.id, 0, 0, 0, 4095) for name, m in motors.items()})
        bus.enable_torque()
        with LeRobotDataset.create(
            "dexloop/so101_sim", FPS, features, root=root, robot_type="so101_follower"
        ) as dataset:
            for episode in range(3):
                start = time.perf_counter()
                for frame in range(60):
                    time.sleep(max(0.0, start + frame / FPS - time.perf_counter()))
                    phase = 2 * np.pi * frame / 60
                    goal = 40 * np.sin(phase + np.arange(6) + episode)
                    bus.sync_write("Goal_Position", dict(zip(JOINTS, goal.tolist(), strict=True)))
                    # Retries as a recorder on a busy machine wants: a reply later than even that
                    # (the simulator's thread descheduled) is asked for again.
                    present = bus.sync_read("Present_Position", num_retry=2)
                    state = np.array([present[j] for j in JOINTS], dtype=np.float32)
                    dataset.add_frame(
                        {
                            "observation.state": state,
                            "action": goal.astype(np.float32),
                            "observation.images.front": camera_view(state),
                            "task": "wave the arm",
                        }
                    )
                saving = time.perf_counter()
                dataset.save_episode()
                print(
                    f"episode {episode}: 60 frames, save_episode() took {1000 * (time.perf_counter() - saving):.0f} ms"
                )
        bus.disconnect()

    dataset = LeRobotDataset(
        "dexloop/so101_sim", root=root, delta_timestamps={"action": [i / FPS for i in range(10)]}
    )
    item = dataset[75]
    print(f"recorded {dataset.num_episodes} episodes, {len(dataset)} frames into {root}")
    print(
        f"item 75: episode {int(item['episode_index'])}, frame {int(item['frame_index'])}, "
        f"camera {tuple(item['observation.images.front'].shape)}, action chunk {tuple(item['action'].shape)}"
    )
    print(f"state mean per joint: {np.round(dataset.meta.stats['observation.state']['mean'], 1).tolist()}")


if __name__ == "__main__":
    main()
