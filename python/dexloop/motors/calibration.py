"""LeRobot calibration files: where they live, reading them, writing them byte-for-byte as LeRobot does.

A file maps each motor name to its calibration, written by LeRobot with ``draccus.dump(calibration, f,
indent=4)`` — that is ``json.dump`` with ``indent=4``: fields in the order ``id, drive_mode,
homing_offset, range_min, range_max``, non-ASCII escaped, no trailing newline::

    {
        "shoulder_pan": {
            "id": 1,
            "drive_mode": 0,
            "homing_offset": -350,
            "range_min": 760,
            "range_max": 3320
        },
        ...
    }

Location: ``$HF_LEROBOT_CALIBRATION/{robots|teleoperators}/<device class name>/<id>.json``, where
``HF_LEROBOT_CALIBRATION`` defaults to ``$HF_LEROBOT_HOME/calibration`` and ``HF_LEROBOT_HOME`` to
``$HF_HOME/lerobot`` (``~/.cache/huggingface/lerobot``). The device class name is LeRobot's ``Robot.name``
/ ``Teleoperator.name``: ``so_follower`` for both ``--robot.type=so100_follower`` and ``so101_follower``
(since LeRobot's Jan 2026 merge of the two; older files live under ``so100_follower`` / ``so101_follower``),
``so_leader``, ``koch_follower``, ``koch_leader``, ``lekiwi``, ...

Reading is stricter than LeRobot's ``draccus.load`` where LeRobot accepts what is almost certainly a
mistake: values must be JSON integers (draccus also takes ``"12"`` and ``true``) and a motor may appear
once (``json`` keeps the last of duplicates). Any problem raises ``CalibrationError`` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from dexloop.errors import CalibrationError

from .motors_bus import MotorCalibration

ROBOTS = "robots"
TELEOPERATORS = "teleoperators"

# LeRobot 0.6.1 device class names (``Robot.name`` / ``Teleoperator.name``), i.e. calibration folders.
ROBOT_NAMES = (
    "so_follower",
    "bi_so_follower",
    "koch_follower",
    "omx_follower",
    "lekiwi",
    "hope_jr_arm",
    "hope_jr_hand",
    "openarm_follower",
    "bi_openarm_follower",
    "rebot_b601_follower",
    "bi_rebot_b601_follower",
)
TELEOPERATOR_NAMES = (
    "so_leader",
    "bi_so_leader",
    "koch_leader",
    "omx_leader",
    "homunculus_arm",
    "homunculus_glove",
    "openarm_leader",
    "bi_openarm_leader",
    "openarm_mini",
    "bi_openarm_mini",
    "rebot_102_leader",
    "bi_rebot_102_leader",
)
# ``--robot.type`` / ``--teleop.type`` values whose class name differs.
TYPE_TO_CLASS_NAME = {
    "so100_follower": "so_follower",
    "so101_follower": "so_follower",
    "so100_leader": "so_leader",
    "so101_leader": "so_leader",
}

_FIELDS = tuple(f.name for f in fields(MotorCalibration))


def lerobot_home() -> Path:
    """``$HF_LEROBOT_HOME``, default ``$HF_HOME/lerobot`` (``HF_HOME`` defaulting as huggingface_hub's)."""
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface"
    )
    return Path(os.environ.get("HF_LEROBOT_HOME", os.path.join(hf_home, "lerobot"))).expanduser()


def calibration_root() -> Path:
    """``$HF_LEROBOT_CALIBRATION``, default ``$HF_LEROBOT_HOME/calibration``."""
    return Path(os.environ.get("HF_LEROBOT_CALIBRATION", lerobot_home() / "calibration")).expanduser()


def device_class_name(device: str) -> str:
    """LeRobot's class name (calibration folder) of a device type: ``so101_follower`` -> ``so_follower``."""
    return TYPE_TO_CLASS_NAME.get(device, device)


def device_kind(device: str) -> str:
    """``"robots"`` or ``"teleoperators"`` for a known device type or class name."""
    name = device_class_name(device)
    if name in ROBOT_NAMES:
        return ROBOTS
    if name in TELEOPERATOR_NAMES:
        return TELEOPERATORS
    raise ValueError(
        f"unknown device '{device}': pass kind='robots' or kind='teleoperators' (known robots: "
        f"{', '.join(ROBOT_NAMES)}; teleoperators: {', '.join(TELEOPERATOR_NAMES)})"
    )


def calibration_dir(device: str, kind: str | None = None) -> Path:
    """The folder of `device`'s calibration files: ``<root>/<kind>/<class name>``."""
    if kind is None:
        kind = device_kind(device)
    elif kind not in (ROBOTS, TELEOPERATORS):
        raise ValueError(f"kind must be '{ROBOTS}' or '{TELEOPERATORS}', got {kind!r}")
    return calibration_root() / kind / device_class_name(device)


def calibration_path(
    device: str, device_id: str | None, kind: str | None = None, directory: str | os.PathLike | None = None
) -> Path:
    """``<directory>/<id>.json``; `directory` defaults to :func:`calibration_dir` (LeRobot's
    ``--robot.calibration_dir`` overrides it the same way). An id of None gives ``None.json``, as LeRobot."""
    folder = Path(directory) if directory else calibration_dir(device, kind)
    return folder / f"{device_id}.json"


def dumps_calibration(calibration: Mapping[str, MotorCalibration]) -> str:
    """The text LeRobot writes for `calibration` (``draccus.dump(..., indent=4)``)."""
    data: dict[str, dict[str, int]] = {}
    for motor, cal in calibration.items():
        if not isinstance(motor, str):
            raise TypeError(f"motor names must be strings, got {motor!r}")
        entry = {}
        for name in _FIELDS:
            value = getattr(cal, name)
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise TypeError(f"calibration of motor '{motor}': {name} must be an integer, got {value!r}")
            entry[name] = int(value)
        data[motor] = entry
    return json.dumps(data, indent=4)


def save_calibration(calibration: Mapping[str, MotorCalibration], path: str | os.PathLike) -> Path:
    """Writes `calibration` to `path` as LeRobot does (creating its folder); returns the path.

    The file is written to a temporary name and renamed, so a crash never leaves half a file."""
    path = Path(path)
    text = dumps_calibration(calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name opened with "x": the file gets the usual permissions (umask), as LeRobot's.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _no_duplicates(source: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise CalibrationError(f"calibration file {source}: '{key}' appears twice")
            result[key] = value
        return result

    return hook


def loads_calibration(text: str, source: str = "<string>") -> dict[str, MotorCalibration]:
    """Parses the text of a calibration file; `source` names it in errors."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(source))
    except json.JSONDecodeError as error:
        raise CalibrationError(f"calibration file {source} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise CalibrationError(
            f"calibration file {source} must hold an object mapping motor names to calibrations, "
            f"got {type(data).__name__}"
        )
    calibration: dict[str, MotorCalibration] = {}
    for motor, entry in data.items():
        if not isinstance(entry, dict):
            raise CalibrationError(
                f"calibration file {source}: motor '{motor}' must map to an object with {', '.join(_FIELDS)}, "
                f"got {json.dumps(entry)}"
            )
        missing = [name for name in _FIELDS if name not in entry]
        extra = [name for name in entry if name not in _FIELDS]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing {', '.join(missing)}")
            if extra:
                problems.append(f"unknown {', '.join(extra)}")
            raise CalibrationError(f"calibration file {source}: motor '{motor}': {'; '.join(problems)}")
        for name in _FIELDS:
            value = entry[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise CalibrationError(
                    f"calibration file {source}: motor '{motor}': {name} must be an integer, got {json.dumps(value)}"
                )
        calibration[motor] = MotorCalibration(**{name: entry[name] for name in _FIELDS})
    return calibration


def load_calibration(path: str | os.PathLike) -> dict[str, MotorCalibration]:
    """Reads a LeRobot calibration file. Raises CalibrationError (naming the file) when it is missing,
    unreadable or malformed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CalibrationError(
            f"calibration file {path} does not exist: calibrate the device first"
        ) from None
    except OSError as error:
        raise CalibrationError(f"calibration file {path} cannot be read: {error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CalibrationError(f"calibration file {path} is not UTF-8 text: {error}") from None
    return loads_calibration(text, str(path))


__all__ = [
    "ROBOTS",
    "ROBOT_NAMES",
    "TELEOPERATORS",
    "TELEOPERATOR_NAMES",
    "TYPE_TO_CLASS_NAME",
    "calibration_dir",
    "calibration_path",
    "calibration_root",
    "device_class_name",
    "device_kind",
    "dumps_calibration",
    "lerobot_home",
    "load_calibration",
    "loads_calibration",
    "save_calibration",
]
