"""LeRobot's ``Robot`` interface: what record, deploy and the control loop drive.

A robot has ``observation_features`` and ``action_features`` (``{"<motor>.pos": float}`` and camera
keys ``{name: (height, width, 3)}``, known before connecting), ``connect(calibrate=True)``,
``is_calibrated``, ``calibrate()``, ``configure()``, ``get_observation()``, ``send_action(action)``
(returns the action actually sent, possibly clipped) and ``disconnect()``; it is a context manager.
Its calibration lives in ``calibration_dir/<id>.json`` in LeRobot's file format and location
(:mod:`dexloop.motors.calibration`), so a LeRobot-calibrated arm works as it is.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dexloop.motors import MotorCalibration
from dexloop.motors.calibration import calibration_dir as default_calibration_dir
from dexloop.motors.calibration import load_calibration, save_calibration

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RobotConfig:
    """LeRobot's ``RobotConfig``: the robot's ``id`` names its calibration file in ``calibration_dir``
    (default: LeRobot's ``$HF_LEROBOT_CALIBRATION/robots/<class name>``)."""

    id: str | None = None
    calibration_dir: Path | None = None


class Robot(abc.ABC):
    """A robot with LeRobot's lifecycle; subclasses set ``config_class`` and ``name``."""

    config_class: ClassVar[type[RobotConfig]]
    name: ClassVar[str]

    def __init__(self, config: RobotConfig) -> None:
        self.robot_type = self.name
        self.id = config.id
        self.calibration_dir = (
            Path(config.calibration_dir)
            if config.calibration_dir
            else default_calibration_dir(self.name, "robots")
        )
        self.calibration_fpath = self.calibration_dir / f"{self.id}.json"
        self.calibration: dict[str, MotorCalibration] = {}
        if self.calibration_fpath.is_file():
            self._load_calibration()

    def __str__(self) -> str:
        return f"{self.id} {type(self).__name__}"

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.is_connected:
            self.disconnect()

    def _load_calibration(self, fpath: Path | None = None) -> None:
        self.calibration = load_calibration(fpath or self.calibration_fpath)

    def _save_calibration(self, fpath: Path | None = None) -> None:
        save_calibration(self.calibration, fpath or self.calibration_fpath)

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, Any]: ...

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, Any]: ...

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    @property
    @abc.abstractmethod
    def is_calibrated(self) -> bool: ...

    @abc.abstractmethod
    def calibrate(self) -> None: ...

    @abc.abstractmethod
    def configure(self) -> None: ...

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def send_action(self, action: dict[str, Any]) -> dict[str, Any]: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...


__all__ = ["Robot", "RobotConfig"]
