"""Generates this folder's fixtures with LeRobot itself (run once by hand; not part of the test suite).

    HF_LEROBOT_CALIBRATION=$(mktemp -d) /tmp/lerobot-peer/bin/python tests/data/calibration/generate_with_lerobot.py

Writes, with LeRobot 0.6.1:
* ``<kind>/<class name>/<id>.json``: calibration files saved by LeRobot's own robots and teleoperators
  (``Robot._save_calibration`` / ``Teleoperator._save_calibration``, i.e. ``draccus.dump(..., indent=4)``),
  plus ``special/names.json`` written by ``draccus.dump`` directly (non-ASCII and quoted motor names);
* ``manifest.json``: for each file, the device type, id, the path LeRobot chose under
  ``$HF_LEROBOT_CALIBRATION`` and the calibration LeRobot loads back from it (``draccus.load``);
* ``normalization.json``: outputs of LeRobot's ``_normalize`` / ``_unnormalize`` (Feetech and Dynamixel
  buses, every norm mode, drive modes 0 and 1) over sweeps of inputs, as SHA-256 digests of the
  little-endian float64 / int64 arrays plus a few values in clear.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import draccus
import numpy as np
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus
from lerobot.motors.feetech import FeetechMotorsBus
from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig
from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig
from lerobot.teleoperators.koch_leader import KochLeader, KochLeaderConfig
from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig
from lerobot.utils.constants import HF_LEROBOT_CALIBRATION

HERE = Path(__file__).resolve().parent
RAW_STEP = 499
GRID_STEP = 2999
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def calib(values, drive_modes=None):
    drive_modes = drive_modes or [0] * 6
    return {
        name: MotorCalibration(id=i + 1, drive_mode=d, homing_offset=h, range_min=lo, range_max=hi)
        for i, (name, (h, lo, hi), d) in enumerate(zip(NAMES, values, drive_modes, strict=True))
    }


DEVICES = [
    # (type, class, config class, id, calibration)
    (
        "so101_follower",
        SOFollower,
        SOFollowerRobotConfig,
        "my_so101",
        calib(
            [
                (-350, 760, 3320),
                (1012, 812, 3200),
                (-1024, 870, 3080),
                (77, 830, 3190),
                (-2047, 0, 4095),
                (112, 2030, 3480),
            ]
        ),
    ),
    (
        "so100_follower",
        SOFollower,
        SOFollowerRobotConfig,
        "arm_left",
        calib(
            [
                (0, 1000, 3000),
                (-5, 900, 3100),
                (2047, 1, 4094),
                (-1, 1200, 2900),
                (3, 0, 4095),
                (-2000, 1990, 3400),
            ]
        ),
    ),
    (
        "so101_leader",
        SOLeader,
        SOLeaderTeleopConfig,
        "my_leader",
        calib(
            [
                (200, 700, 3400),
                (-870, 900, 3150),
                (1500, 880, 3100),
                (-33, 850, 3200),
                (0, 0, 4095),
                (64, 2000, 2900),
            ]
        ),
    ),
    (
        "koch_follower",
        KochFollower,
        KochFollowerConfig,
        "koch",
        calib(
            [
                (-1024, 0, 4095),
                (1034, 750, 3290),
                (-3000, 1010, 3100),
                (97, 900, 3000),
                (2047, 0, 4095),
                (-512, 1950, 2950),
            ]
        ),
    ),
    (
        "koch_leader",
        KochLeader,
        KochLeaderConfig,
        "koch",
        calib(
            [
                (1000, 0, 4095),
                (-200, 800, 3200),
                (3100, 900, 3000),
                (-45, 1000, 3100),
                (12, 0, 4095),
                (-300, 1700, 2600),
            ],
            drive_modes=[0, 0, 1, 0, 0, 0],
        ),
    ),
]


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def main() -> None:
    root = Path(os.environ["HF_LEROBOT_CALIBRATION"])
    assert root == HF_LEROBOT_CALIBRATION, (root, HF_LEROBOT_CALIBRATION)
    manifest = []
    for device_type, cls, config_cls, device_id, calibration in DEVICES:
        device = cls(config_cls(port="/dev/null", id=device_id))
        device.calibration = calibration
        device._save_calibration()
        relative = device.calibration_fpath.relative_to(root)
        target = HERE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(device.calibration_fpath, target)
        with open(device.calibration_fpath) as f, draccus.config_type("json"):
            loaded = draccus.load(dict[str, MotorCalibration], f)
        manifest.append(
            {
                "type": device_type,
                "id": device_id,
                "path": str(relative),
                "calibration": {k: vars(v) for k, v in loaded.items()},
            }
        )

    special = {
        "épaule": MotorCalibration(1, 0, -2047, 0, 4095),
        'say "hi"\\': MotorCalibration(2, 1, 2047, 4094, 4095),
        "腕": MotorCalibration(252, 0, 0, 0, 1),
    }
    (HERE / "special").mkdir(exist_ok=True)
    with open(HERE / "special" / "names.json", "w") as f, draccus.config_type("json"):
        draccus.dump(special, f, indent=4)
    with open(HERE / "special" / "names.json") as f, draccus.config_type("json"):
        loaded = draccus.load(dict[str, MotorCalibration], f)
    manifest.append(
        {
            "type": None,
            "id": None,
            "path": "special/names.json",
            "calibration": {k: vars(v) for k, v in loaded.items()},
        }
    )
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # Normalisation by LeRobot's own buses.
    ranges = [(0, 4095), (760, 3320), (2030, 3480), (1000, 1001), (1, 4094), (3000, 1000)]
    raw = list(range(-200, 4301))
    range_grid = [i / 100 for i in range(-15000, 15001)]
    degree_grid = [i / 100 for i in range(-20000, 20001)]
    cases = []
    for bus_cls, model in ((FeetechMotorsBus, "sts3215"), (DynamixelMotorsBus, "xl330-m288")):
        for mode in MotorNormMode:
            for drive_mode in (0, 1):
                for lo, hi in ranges:
                    bus = bus_cls(
                        "/dev/null",
                        {"m": Motor(7, model, mode)},
                        {"m": MotorCalibration(7, drive_mode, 0, lo, hi)},
                    )
                    normalized = np.array([bus._normalize({7: v})[7] for v in raw], dtype="<f8")
                    grid = degree_grid if mode is MotorNormMode.DEGREES else range_grid
                    unnorm = np.array([bus._unnormalize({7: x})[7] for x in grid], dtype="<i8")
                    unnorm32 = np.array([bus._unnormalize({7: np.float32(x)})[7] for x in grid], dtype="<i8")
                    round_trip = np.array(
                        [bus._unnormalize({7: float(x)})[7] for x in normalized], dtype="<i8"
                    )
                    cases.append(
                        {
                            "bus": bus_cls.__name__,
                            "model": model,
                            "mode": mode.value,
                            "drive_mode": drive_mode,
                            "range_min": lo,
                            "range_max": hi,
                            "normalize_sha256": digest(normalized),
                            "normalize_sample": [repr(float(x)) for x in normalized[::RAW_STEP]],
                            "unnormalize_sha256": digest(unnorm),
                            "unnormalize_sample": unnorm[::GRID_STEP].tolist(),
                            "unnormalize_float32_sha256": digest(unnorm32),
                            "round_trip_sha256": digest(round_trip),
                        }
                    )
    spec = {
        "generator": f"LeRobot 0.6.1 on Python {sys.version.split()[0]}",
        "raw": "range(-200, 4301)",
        "range_grid": "[i / 100 for i in range(-15000, 15001)]",
        "degree_grid": "[i / 100 for i in range(-20000, 20001)]",
        "float32": "np.float32(x) for x in the grid",
        "round_trip": "_unnormalize(float(n)) for n in the normalized raw sweep",
        "raw_sample_step": RAW_STEP,
        "grid_sample_step": GRID_STEP,
        "cases": cases,
    }
    text = json.dumps({k: v for k, v in spec.items() if k != "cases"}, indent=1)[:-2]
    text += ',\n "cases": [\n' + ",\n".join(json.dumps(case) for case in cases) + "\n ]\n}\n"
    (HERE / "normalization.json").write_text(text)


if __name__ == "__main__":
    main()
