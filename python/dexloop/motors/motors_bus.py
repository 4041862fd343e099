"""LeRobot's MotorsBus API on dexloop's native servo driver.

A LeRobot user finds the names they know: ``Motor``, ``MotorCalibration``, ``MotorNormMode``,
``FeetechMotorsBus`` / ``DynamixelMotorsBus`` with ``connect``, ``read``, ``write``, ``sync_read``,
``sync_write``, ``enable_torque``, ``torque_disabled``, ``write_calibration``, ``set_half_turn_homings``,
``record_ranges_of_motion`` ... with LeRobot's semantics: register and motor names, ``normalize=`` and
``num_retry=`` keywords, the same normalisation to the bit (see :mod:`dexloop.motors.normalization`), the
same sign encodings, the same calibration procedure.

Underneath, every transaction is one call into ``dexloop._core.bus.ServoBus`` (C++, GIL released), which
encodes, retries and decodes. ``sync_read`` / ``sync_write`` resolve the register and the motor ids once
per ``(register, motors)`` and cache them, so the Python around a transaction is a dictionary lookup, one
native call and a short loop.

Where dexloop differs from LeRobot (documented on each method):

* errors are typed (``dexloop.errors``): ``BusTimeoutError`` / ``BusProtocolError`` (ConnectionErrors) for
  communication failures, ``ServoError`` (RuntimeError) for servo error bits, ``HandshakeError``
  (RuntimeError) for missing or unexpected motors, ``CalibrationError`` (ValueError) for a missing or
  unusable calibration, ``DeviceNotConnectedError`` / ``DeviceAlreadyConnectedError`` (ConnectionErrors);
* a failed handshake closes the port again (LeRobot leaves it open, so a second ``connect()`` fails);
* ``disconnect()`` tries to disable the torque of every motor even when one fails, always closes the port,
  then raises naming the motors that did not answer (LeRobot stops at the first failure, port left open);
* Feetech ``read_calibration`` / ``is_calibrated`` use three SYNC_READs (LeRobot: three READs per motor);
* a NaN / infinite goal raises ValueError / OverflowError naming the motor, as LeRobot's ``write`` and
  ``sync_write`` do (their ``int(value)``), also where LeRobot's ``_unnormalize`` alone would clamp it;
* writing a read-only register raises ``ValueError`` (LeRobot sends it; the servo ignores or rejects it);
* ``set_timeout`` records the value only: the driver gives each transaction its own deadline from the wire
  time plus ``latency_margin_ms``, as the vendors' SDKs (which LeRobot uses) re-arm theirs per packet too.

LeRobot's own ``Motor``, ``MotorNormMode`` and ``MotorCalibration`` values are accepted wherever dexloop's
are, so LeRobot's robot classes run on these buses unchanged: they are recognised by their fields (and
the enum's ``.value``), without importing lerobot, and converted to dexloop's types once, when the bus is
made or its calibration set (:func:`as_motor`, :func:`as_calibration`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import numbers
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pprint import pformat
from typing import Any, ClassVar

import numpy as np

from dexloop._core import bus as _bus
from dexloop.errors import (
    BusError,
    BusTimeoutError,
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    HandshakeError,
    ServoError,
)

from .normalization import MotorNormMode, normalize_values, unnormalize_values

logger = logging.getLogger(__name__)

NameOrID = str | int
Value = int | float

# Highest servo id (0xFC) on both vendors' buses; 0xFE is the broadcast id.
MAX_ID = 252


class DriveMode(Enum):
    """Shared by both vendors; importable from dexloop.motors.feetech and .dynamixel, as in LeRobot."""

    NON_INVERTED = 0
    INVERTED = 1


class TorqueMode(Enum):
    ENABLED = 1
    DISABLED = 0


@dataclass
class MotorCalibration:
    """A motor's calibration, as stored in LeRobot's calibration files."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


@dataclass
class Motor:
    """A motor on a bus: its id, model name (e.g. ``"sts3215"``) and normalisation mode."""

    id: int
    model: str
    norm_mode: MotorNormMode
    motor_type_str: str | None = None
    recv_id: int | None = None


_MOTOR_FIELDS = ("id", "model", "norm_mode")
_CALIBRATION_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


def as_motor(name: str, motor: Any) -> Motor:
    """`motor` as dexloop's Motor: itself if it is one, else a copy of a Motor-shaped value (LeRobot's
    ``lerobot.motors.Motor``, whose ``norm_mode`` is LeRobot's MotorNormMode: its ``.value`` is kept)."""
    if isinstance(motor, Motor):
        return motor
    missing = [field for field in _MOTOR_FIELDS if not hasattr(motor, field)]
    if missing:
        raise TypeError(
            f"motor '{name}' must be a Motor(id, model, norm_mode) (dexloop's or LeRobot's), got {motor!r} "
            f"(it has no {', '.join(missing)})"
        )
    return Motor(
        motor.id,
        motor.model,
        _norm_mode(name, motor.norm_mode),
        getattr(motor, "motor_type_str", None),
        getattr(motor, "recv_id", None),
    )


def _norm_mode(name: str, norm_mode: Any) -> MotorNormMode:
    """dexloop's MotorNormMode for a mode given as one, as a string, or as another enum (LeRobot's)."""
    try:
        return MotorNormMode(getattr(norm_mode, "value", norm_mode))
    except ValueError:
        choices = ", ".join(mode.value for mode in MotorNormMode)
        raise ValueError(
            f"motor '{name}': {norm_mode!r} is not a valid MotorNormMode (one of {choices})"
        ) from None


def as_calibration(name: str, calibration: Any) -> MotorCalibration:
    """`calibration` as dexloop's MotorCalibration: itself if it is one, else a copy of a value with the
    same fields (LeRobot's ``lerobot.motors.MotorCalibration``)."""
    if isinstance(calibration, MotorCalibration):
        return calibration
    missing = [field for field in _CALIBRATION_FIELDS if not hasattr(calibration, field)]
    if missing:
        raise TypeError(
            f"calibration of motor '{name}' must be a MotorCalibration(id, drive_mode, homing_offset, "
            f"range_min, range_max) (dexloop's or LeRobot's), got {calibration!r} (it has no {', '.join(missing)})"
        )
    return MotorCalibration(*(getattr(calibration, field) for field in _CALIBRATION_FIELDS))


def _as_motors(motors: Any) -> dict[str, Motor]:
    """The bus's motors as dexloop Motors; the given dict itself when every value already is one."""
    if not isinstance(motors, Mapping):
        raise TypeError(f"motors must be a dict {{name: Motor(id, model, norm_mode)}}, got {motors!r}")
    if isinstance(motors, dict) and all(isinstance(m, Motor) for m in motors.values()):
        return motors
    return {name: as_motor(name, m) for name, m in motors.items()}


def _as_calibrations(calibration: Any) -> dict[str, MotorCalibration]:
    """A calibration dict with dexloop MotorCalibrations; the given dict itself when it has only those."""
    if not calibration:
        return {}
    if not isinstance(calibration, Mapping):
        raise TypeError(f"calibration must be a dict {{motor name: MotorCalibration}}, got {calibration!r}")
    if isinstance(calibration, dict) and all(isinstance(c, MotorCalibration) for c in calibration.values()):
        return calibration
    return {name: as_calibration(name, c) for name, c in calibration.items()}


class _Plan:
    """A resolved ``(register, motors)`` pair: what a transaction needs, computed once."""

    __slots__ = (
        "id_list",
        "ids",
        "max_res",
        "models",
        "modes",
        "names",
        "normalized",
        "read_only",
        "register",
    )

    def __init__(self, names, id_list, models, register, normalized, modes, max_res):
        self.names = tuple(names)
        self.id_list = tuple(id_list)
        self.ids = np.array(id_list, dtype=np.uint8)
        self.ids.flags.writeable = False
        self.models = tuple(models)
        self.register = register
        self.read_only = register.read_only
        self.normalized = normalized
        self.modes = tuple(modes)
        self.max_res = tuple(max_res)


def _stdin_enter_pressed() -> bool:
    """True once the user pressed Enter on the terminal (non-blocking)."""
    try:
        ready = select.select([sys.stdin], [], [], 0)[0]
    except (OSError, ValueError, TypeError):
        return False
    return bool(ready) and sys.stdin.readline().strip() == ""


def _annotate(error: BaseException, text: str) -> None:
    """Appends `text` to an exception's message in place (the exception is then re-raised as is)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{error.args[0]} {text}", *error.args[1:])


class MotorsBus(abc.ABC):
    """Shared logic of the serial motor buses (LeRobot's ``SerialMotorsBus``, alias ``MotorsBus``).

    Example, one STS3215 on a bus::

        bus = FeetechMotorsBus(port="/dev/ttyACM0", motors={"my_motor": Motor(1, "sts3215", MotorNormMode.DEGREES)})
        bus.connect()
        position = bus.read("Present_Position", "my_motor", normalize=False)
        bus.write("Goal_Position", "my_motor", position + 30, normalize=False)
        bus.disconnect()

    ``latency_margin_ms`` (keyword, dexloop only) is the allowance beyond a transaction's wire time before
    it times out: USB adapter latency and servo turnaround. ``max_spin_us`` (keyword, dexloop only): replies
    whose first byte has been arriving within this many microseconds (a simulator's pty, a short read on a
    native UART) are awaited by polling the port instead of sleeping, which saves a thread wake-up per
    transaction; longer waits (a whole sync read on the wire, USB adapters, which hold bytes for 125 us to
    1 ms) are spent asleep, at no CPU cost. 0 never polls.
    """

    # Set by subclasses.
    vendor: ClassVar[str]
    apply_drive_mode: ClassVar[bool]
    available_baudrates: ClassVar[list[int]]
    default_baudrate: ClassVar[int] = 1_000_000
    default_timeout: ClassVar[int] = 1000
    model_ctrl_table: ClassVar[dict[str, dict[str, tuple[int, int]]]]
    model_resolution_table: ClassVar[dict[str, int]]
    model_baudrate_table: ClassVar[dict[str, dict[int, int]]]
    model_encoding_table: ClassVar[dict[str, dict[str, int]]]
    model_number_table: ClassVar[dict[str, int]]
    normalized_data: ClassVar[list[str]] = ["Goal_Position", "Present_Position"]
    # Bytes of a status packet answering a PING (sizes LeRobot's broadcast-ping window).
    _ping_status_size: ClassVar[int]
    # Whether the protocol has SYNC_READ (Feetech protocol 1 has not).
    _has_sync_read: bool = True

    def __init__(
        self,
        port: str,
        motors: dict[str, Motor],
        calibration: dict[str, MotorCalibration] | None = None,
        *,
        protocol: int,
        latency_margin_ms: float = 10.0,
        max_spin_us: int = 100,
    ):
        self.port = port
        self.motors = _as_motors(motors)
        self.calibration = calibration
        self.protocol = protocol
        self.timeout_ms: float = self.default_timeout
        self._model_info: dict[str, Any] = {}
        self._validate_motors()
        self._id_to_name_dict = {m.id: name for name, m in self.motors.items()}
        self._id_to_model_dict = {m.id: m.model for m in self.motors.values()}
        self._model_nb_to_model_dict = {v: k for k, v in self.model_number_table.items()}
        self._plans: dict[tuple, _Plan] = {}
        self._owner = f"{type(self).__name__} on '{port}'"
        self.servo_bus = _bus.ServoBus(
            port,
            _bus.protocol_of(self.vendor, protocol),
            baudrate=self.default_baudrate,
            latency_margin_ms=latency_margin_ms,
            max_spin_us=max_spin_us,
        )

    # ------------------------------------------------------------------------------------------------
    # Motors and registers

    @property
    def calibration(self) -> dict[str, MotorCalibration]:
        """{motor name: MotorCalibration} used to normalise positions ({} when uncalibrated). Assigning
        LeRobot MotorCalibrations stores dexloop's equivalents (equal to what ``read_calibration`` returns)."""
        return self._calibration

    @calibration.setter
    def calibration(self, calibration: Mapping[str, Any] | None) -> None:
        self._calibration = _as_calibrations(calibration)

    def _validate_motors(self) -> None:
        ids = [m.id for m in self.motors.values()]
        if len(ids) != len(set(ids)):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(
                f"{type(self).__name__}: some motors have the same id {duplicates}:\n{self.motors}"
            )
        for name, m in self.motors.items():
            if not 0 <= m.id <= MAX_ID:
                raise ValueError(f"motor '{name}': id {m.id} is outside 0..{MAX_ID}")
            info = self._model_info.get(m.model) or self._find_model(m.model)
            self._model_info[m.model] = info
            _norm_mode(name, m.norm_mode)  # a ValueError for an unknown mode

    def _find_model(self, model: str) -> Any:
        info = _bus.find_model(model)
        if info is None or info.vendor != self.vendor:
            raise ValueError(
                f"{type(self).__name__}: unknown motor model '{model}'. Known models: "
                f"{', '.join(sorted(self.model_ctrl_table))}"
            )
        return info

    def __len__(self) -> int:
        return len(self.motors)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(\n    Port: '{self.port}',\n"
            f"    Motors: \n{pformat(self.motors, indent=8, sort_dicts=False)},\n)"
        )

    @property
    def models(self) -> list[str]:
        return [m.model for m in self.motors.values()]

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.motors.values()]

    def _id_to_name(self, motor_id: int) -> str:
        return self._id_to_name_dict[motor_id]

    def _id_to_model(self, motor_id: int) -> str:
        return self._id_to_model_dict[motor_id]

    def _model_nb_to_model(self, model_nb: int) -> str:
        return self._model_nb_to_model_dict[model_nb]

    def _motor_name(self, motor: NameOrID) -> str:
        if isinstance(motor, str):
            if motor not in self.motors:
                raise KeyError(f"{self._owner} has no motor '{motor}' (motors: {', '.join(self.motors)})")
            return motor
        if isinstance(motor, numbers.Integral) and not isinstance(motor, bool):
            name = self._id_to_name_dict.get(int(motor))
            if name is None:
                raise KeyError(f"{self._owner} has no motor with id {motor} (ids: {self.ids})")
            return name
        raise TypeError(f"'{motor}' should be int, str.")

    def _get_motor_id(self, motor: NameOrID) -> int:
        if isinstance(motor, str):
            return self.motors[self._motor_name(motor)].id
        if isinstance(motor, numbers.Integral) and not isinstance(motor, bool):
            return int(motor)
        raise TypeError(f"'{motor}' should be int, str.")

    def _get_motor_model(self, motor: NameOrID) -> str:
        return self.motors[self._motor_name(motor)].model

    def _get_motors_list(self, motors: NameOrID | Sequence[NameOrID] | None) -> list[str]:
        if motors is None:
            return list(self.motors)
        if isinstance(motors, (str, numbers.Integral)):
            return [self._motor_name(motors)]
        if isinstance(motors, Sequence):
            return [self._motor_name(m) for m in motors]
        raise TypeError(motors)

    def _register(self, model: str, data_name: str) -> Any:
        info = self._model_info.get(model) or self._find_model(model)
        register = info.registers.get(data_name)
        if register is None:
            raise KeyError(f"Address for '{data_name}' not found in {model} control table.")
        return register

    def _plan(self, data_name: str, motors_key: Any) -> _Plan:
        """The cached plan of `data_name` on `motors_key` (None: every motor; a name or id; a tuple)."""
        plan = self._plans.get((data_name, motors_key))
        if plan is not None:
            return plan
        names = self._get_motors_list(motors_key)
        if not names:
            raise ValueError(f"{self._owner}: no motors to address")
        motors = [self.motors[n] for n in names]
        registers = [self._register(m.model, data_name) for m in motors]
        first = registers[0]
        for m, reg in zip(motors, registers, strict=True):
            if (reg.address, reg.size) != (first.address, first.size):
                raise NotImplementedError(
                    f"At least two motor models use a different address or size for `data_name`='{data_name}' "
                    f"({[(m.model, r.address, r.size) for m, r in zip(motors, registers, strict=True)]})."
                )
            if (reg.sign, reg.sign_bit) != (first.sign, first.sign_bit):
                raise NotImplementedError(
                    f"At least two motor models encode `data_name`='{data_name}' differently "
                    f"({[(m.model, r.sign, r.sign_bit) for m, r in zip(motors, registers, strict=True)]})."
                )
        plan = _Plan(
            names,
            [m.id for m in motors],
            [m.model for m in motors],
            first,
            data_name in self.normalized_data,
            [MotorNormMode(m.norm_mode) for m in motors],
            [self._model_info[m.model].resolution - 1 for m in motors],
        )
        if len(self._plans) >= 512:
            self._plans.clear()
        self._plans[(data_name, motors_key)] = plan
        return plan

    def _ids_text(self, plan: _Plan) -> str:
        return (
            "(motors: " + ", ".join(f"{i}={n}" for i, n in zip(plan.id_list, plan.names, strict=True)) + ")"
        )

    def _require_connected(self) -> None:
        if not self.servo_bus.is_open:
            raise DeviceNotConnectedError(f"{type(self).__name__} is not connected. Run `.connect()` first.")

    # ------------------------------------------------------------------------------------------------
    # Normalisation

    def _normalize_plan(self, plan: _Plan, values: Sequence[Any]) -> list[Any]:
        return normalize_values(
            plan.names,
            values,
            plan.modes,
            plan.max_res,
            self._calibration,
            self.apply_drive_mode,
            self._owner,
        )

    def _unnormalize_plan(self, plan: _Plan, values: Sequence[Any]) -> list[int]:
        return unnormalize_values(
            plan.names,
            values,
            plan.modes,
            plan.max_res,
            self._calibration,
            self.apply_drive_mode,
            self._owner,
        )

    def _normalize(self, ids_values: Mapping[int, int]) -> dict[int, Any]:
        """LeRobot's ``_normalize``: {id: raw} -> {id: normalised}."""
        plan = self._plan("Present_Position", tuple(self._id_to_name(i) for i in ids_values))
        return dict(zip(ids_values, self._normalize_plan(plan, list(ids_values.values())), strict=True))

    def _unnormalize(self, ids_values: Mapping[int, Any]) -> dict[int, int]:
        """LeRobot's ``_unnormalize``: {id: normalised} -> {id: raw}."""
        plan = self._plan("Goal_Position", tuple(self._id_to_name(i) for i in ids_values))
        return dict(zip(ids_values, self._unnormalize_plan(plan, list(ids_values.values())), strict=True))

    # ------------------------------------------------------------------------------------------------
    # Connection

    @property
    def is_connected(self) -> bool:
        """True while the serial port is open."""
        return self.servo_bus.is_open

    def connect(self, handshake: bool = True) -> None:
        """Opens the port and, with `handshake`, checks that the configured motors answer.

        Raises DeviceAlreadyConnectedError when connected, BusError when the port cannot be opened and
        HandshakeError when motors are missing or of another model (the port is closed again).
        """
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{type(self).__name__} is already connected.")
        self._connect(handshake)
        self.set_timeout()
        logger.debug(f"{type(self).__name__} connected.")

    def _connect(self, handshake: bool = True) -> None:
        try:
            self.servo_bus.open()
        except BusError as error:
            raise BusError(
                f"Could not connect on port '{self.port}': {error}. Make sure you are using the correct port "
                "(the arm's USB serial adapter, e.g. /dev/ttyACM0 or /dev/ttyUSB0; unplugging it and listing "
                "/dev shows which one) and that you may open it (Linux: be in the 'dialout' group)."
            ) from error
        if handshake:
            try:
                self._handshake()
            except BaseException:
                self.servo_bus.close()
                raise

    @abc.abstractmethod
    def _handshake(self) -> None: ...

    def _assert_motors_exist(self) -> None:
        # A series key ('sts_series', 'x_series') as model accepts any model number.
        expected = {m.id: self.model_number_table.get(m.model) for m in self.motors.values()}
        found: dict[int, int] = {}
        for id_ in self.ids:
            model_nb = self.ping(id_)
            if model_nb is not None:
                found[id_] = model_nb
        missing = [id_ for id_ in self.ids if id_ not in found]
        wrong = {
            id_: (expected[id_], nb)
            for id_, nb in found.items()
            if expected[id_] is not None and expected[id_] != nb
        }
        if not missing and not wrong:
            return

        def model_text(number: int | None) -> str:
            if number is None:
                return "any model of its series"
            name = self._model_nb_to_model_dict.get(number)
            return f"{name} ({number})" if name else f"unknown model ({number})"

        lines = [
            f"{type(self).__name__} motor check failed on port '{self.port}' at {self.get_baudrate()} baud:"
        ]
        if missing:
            lines.append("Missing motors (no answer to a ping):")
            lines += [
                f"  - id {id_} '{self._id_to_name(id_)}' (expected {model_text(expected[id_])})"
                for id_ in missing
            ]
        if wrong:
            lines.append("Motors with another model number:")
            lines += [
                f"  - id {id_} '{self._id_to_name(id_)}': expected {model_text(e)}, found {model_text(f)}"
                for id_, (e, f) in wrong.items()
            ]
        lines.append(f"Expected (id: model_number): {expected}")
        lines.append(f"Found (id: model_number): {found}")
        lines.append(
            "Fix: check the power supply and the cables of the motors listed; make sure this port is the bus of "
            "this arm; give each motor its id and the bus baud rate with setup_motor() (lerobot-setup-motors)."
        )
        raise HandshakeError("\n".join(lines))

    def disconnect(self, disable_torque: bool = True) -> None:
        """Disables the torque of every motor (5 retries each, Feetech also ``Lock=0``) and closes the port.

        Unlike LeRobot, a motor that does not answer does not stop the others from being released and the
        port is closed in any case; the failures are raised afterwards in one error naming the motors.
        """
        self._require_connected()
        failures: list[tuple[str, Exception]] = []
        if disable_torque:
            for name, m in self.motors.items():
                try:
                    self._disable_torque(m.id, m.model, num_retry=5)
                except (BusError, ServoError) as error:
                    failures.append((name, error))
        self.servo_bus.close()
        logger.debug(f"{type(self).__name__} disconnected.")
        if failures:
            text = "; ".join(f"'{name}': {error}" for name, error in failures)
            raise type(failures[0][1])(
                f"{self._owner}: could not disable the torque of {len(failures)} motor(s) before closing the "
                f"port: {text}. Power the arm off before touching it."
            )

    @classmethod
    def scan_port(cls, port: str, *args: Any, **kwargs: Any) -> dict[int, list[int]]:
        """Broadcast-pings `port` at every baud rate in ``available_baudrates``: {baud rate: [ids]}."""
        from tqdm import tqdm

        bus = cls(port, {}, *args, **kwargs)
        bus._connect(handshake=False)
        baudrate_ids: dict[int, list[int]] = {}
        try:
            for baudrate in tqdm(bus.available_baudrates, desc="Scanning port"):
                bus.set_baudrate(baudrate)
                ids_models = bus.broadcast_ping()
                if ids_models:
                    tqdm.write(f"Motors found for {baudrate=}: {pformat(ids_models, indent=4)}")
                    baudrate_ids[baudrate] = list(ids_models)
        finally:
            bus.servo_bus.close()
        return baudrate_ids

    def set_timeout(self, timeout_ms: float | None = None) -> None:
        """Records a packet timeout (default ``default_timeout``, 1000 ms), as LeRobot's ``set_timeout``.

        dexloop's driver gives every transaction its own deadline (wire time + ``latency_margin_ms``), as the
        vendors' SDKs re-arm their timeout per packet, overriding LeRobot's value; so this value is kept in
        ``timeout_ms`` for reference and does not change transactions.
        """
        self.timeout_ms = timeout_ms if timeout_ms is not None else self.default_timeout

    def get_baudrate(self) -> int:
        """The baud rate of the port."""
        return self.servo_bus.baudrate

    def set_baudrate(self, baudrate: int) -> None:
        """Sets the baud rate of the port (not of the motors: see ``setup_motor``)."""
        present = self.servo_bus.baudrate
        if present != baudrate:
            logger.info(f"Setting bus baud rate to {baudrate}. Previously {present}.")
            self.servo_bus.baudrate = baudrate
            if self.servo_bus.baudrate != baudrate:
                raise RuntimeError(f"{self._owner}: failed to set the bus baud rate to {baudrate}.")

    # ------------------------------------------------------------------------------------------------
    # Ping and motor set-up

    def ping(self, motor: NameOrID, num_retry: int = 0, raise_on_error: bool = False) -> int | None:
        """The model number of `motor` (name or id), or None when it does not answer (raises instead with
        `raise_on_error`)."""
        self._require_connected()
        id_ = self._get_motor_id(motor)
        try:
            model_number, _ = self.servo_bus.ping(id_, num_retry)
        except (BusError, ServoError) as error:
            if raise_on_error:
                raise
            logger.debug(f"ping failed for {id_=}: {error}")
            return None
        return model_number

    def _broadcast_window_ms(self) -> float:
        # The vendors' SDKs (and LeRobot's Feetech broadcast ping) listen for 252 status packets'
        # worth of bytes plus 3 ms per id plus 16 ms: about 0.79 s (Feetech) / 0.81 s (Dynamixel) at 1 Mbps.
        byte_ms = 10_000.0 / self.servo_bus.baudrate
        return self._ping_status_size * MAX_ID * byte_ms + 3.0 * MAX_ID + 16.0

    def broadcast_ping(
        self, num_retry: int = 0, raise_on_error: bool = False, *, window_ms: float | None = None
    ) -> dict[int, int] | None:
        """Pings the broadcast id: {id: model number} of every motor answering within the window (LeRobot's,
        unless `window_ms` is given), or None when none answers (raises BusTimeoutError with
        `raise_on_error`)."""
        self._assert_protocol_is_compatible("broadcast_ping")
        self._require_connected()
        window = self._broadcast_window_ms() if window_ms is None else window_ms
        found: dict[int, int] = {}
        for n_try in range(1 + num_retry):
            found = self.servo_bus.broadcast_ping(window)
            if found:
                break
            logger.debug(f"Broadcast ping failed on port '{self.port}' ({n_try=})")
        if not found:
            if raise_on_error:
                raise BusTimeoutError(
                    f"{self._owner}: no motor answered a broadcast ping at {self.get_baudrate()} baud "
                    f"after {num_retry + 1} tries"
                )
            return None
        # A Feetech motor whose model number could not be read afterwards is left out, as LeRobot does.
        return {id_: nb for id_, nb in found.items() if nb != 0}

    def _assert_protocol_is_compatible(self, instruction_name: str) -> None:  # noqa: B027 (optional hook)
        """Raises NotImplementedError for an instruction the protocol lacks (all exist by default)."""

    def setup_motor(
        self, motor: str, initial_baudrate: int | None = None, initial_id: int | None = None
    ) -> None:
        """Gives the only motor connected its configured id and the bus's default baud rate (1 Mbps).

        Scans the model's baud rates for it unless `initial_baudrate` (and `initial_id`) are given, checks
        its model number, disables its torque, writes ``ID`` then ``Baud_Rate``, and switches the port to
        the default baud rate.
        """
        if not self.is_connected:
            self._connect(handshake=False)
        if initial_baudrate is None:
            initial_baudrate, initial_id = self._find_single_motor(motor)
        if initial_id is None:
            _, initial_id = self._find_single_motor(motor, initial_baudrate)

        model = self.motors[motor].model
        target_id = self.motors[motor].id
        self.set_baudrate(initial_baudrate)
        self._disable_torque(initial_id, model)
        self.servo_bus.write(initial_id, self._register(model, "ID"), target_id)
        baudrate_value = self.model_baudrate_table[model][self.default_baudrate]
        self.servo_bus.write(target_id, self._register(model, "Baud_Rate"), baudrate_value)
        self.set_baudrate(self.default_baudrate)

    def _find_single_motor(self, motor: str, initial_baudrate: int | None = None) -> tuple[int, int]:
        model = self.motors[motor].model
        baudrates = (
            [initial_baudrate] if initial_baudrate is not None else list(self.model_baudrate_table[model])
        )
        expected = self.model_number_table[model]
        for baudrate in baudrates:
            self.set_baudrate(baudrate)
            id_model = self._find_ids()
            if id_model:
                found_id, found_model = next(iter(id_model.items()))
                if found_model != expected:
                    raise HandshakeError(
                        f"Found one motor on {baudrate=} with id={found_id} but it has a model number "
                        f"'{found_model}' different than the one expected: '{expected}'. Make sure you are "
                        f"connected only to the '{motor}' motor (model '{model}')."
                    )
                return baudrate, found_id
        raise HandshakeError(
            f"Motor '{motor}' (model '{model}') was not found on port '{self.port}' at any of the baud rates "
            f"{baudrates}. Make sure it is connected (alone) and powered."
        )

    def _find_ids(self) -> dict[int, int] | None:
        return self.broadcast_ping()

    @abc.abstractmethod
    def configure_motors(self) -> None:
        """Writes the recommended settings to every motor (vendor-specific)."""

    # ------------------------------------------------------------------------------------------------
    # Torque

    @abc.abstractmethod
    def _disable_torque(self, motor: int, model: str, num_retry: int = 0) -> None: ...

    @abc.abstractmethod
    def disable_torque(self, motors: NameOrID | Sequence[NameOrID] | None = None, num_retry: int = 0) -> None:
        """Disables the torque of the motors (all by default); EEPROM can then be written."""

    @abc.abstractmethod
    def enable_torque(self, motors: NameOrID | Sequence[NameOrID] | None = None, num_retry: int = 0) -> None:
        """Enables the torque of the motors (all by default)."""

    @contextlib.contextmanager
    def torque_disabled(self, motors: NameOrID | Sequence[NameOrID] | None = None) -> Iterator[None]:
        """Disables the torque for the block and enables it again afterwards, whatever happens in it."""
        self.disable_torque(motors)
        try:
            yield
        finally:
            self.enable_torque(motors)

    # ------------------------------------------------------------------------------------------------
    # Transactions

    def read(self, data_name: str, motor: NameOrID, *, normalize: bool = True, num_retry: int = 0) -> Value:
        """One register of one motor (READ with status packet), sign-decoded, normalised for
        Goal_Position / Present_Position unless ``normalize=False``."""
        self._require_connected()
        plan = self._plan(data_name, motor)
        try:
            value = self.servo_bus.read(plan.id_list[0], plan.register, num_retry)
        except (BusError, ServoError) as error:
            _annotate(error, f"('{plan.names[0]}')")
            raise
        if normalize and plan.normalized:
            return self._normalize_plan(plan, (value,))[0]
        return value

    def write(
        self, data_name: str, motor: NameOrID, value: Value, *, normalize: bool = True, num_retry: int = 0
    ) -> None:
        """Writes one register of one motor and waits for its status packet (reliable; for configuration).
        Goal_Position is unnormalised unless ``normalize=False``; other values are truncated with int()."""
        self._require_connected()
        plan = self._plan(data_name, motor)
        if plan.read_only:
            raise ValueError(f"{self._owner}: '{data_name}' is a read-only register of {plan.models[0]}")
        raw = self._unnormalize_plan(plan, (value,))[0] if normalize and plan.normalized else int(value)
        try:
            self.servo_bus.write(plan.id_list[0], plan.register, raw, num_retry)
        except (BusError, ServoError) as error:
            _annotate(error, f"('{plan.names[0]}', value {raw})")
            raise

    def sync_read(
        self,
        data_name: str,
        motors: NameOrID | Sequence[NameOrID] | None = None,
        *,
        normalize: bool = True,
        num_retry: int = 0,
    ) -> dict[str, Value]:
        """One register of several motors (all by default) in one SYNC_READ: {motor name: value}.

        Servo error bits in the replies are ignored, as LeRobot's SDK group reads do; a missing or
        corrupt reply fails the whole read (after `num_retry` immediate retries)."""
        if not self.servo_bus.is_open:
            self._require_connected()
        if not self._has_sync_read:
            self._assert_protocol_is_compatible("sync_read")
        key = (data_name, motors if motors is None or type(motors) in (str, int) else tuple(motors))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(data_name, key[1])
        try:
            values = self.servo_bus.sync_read(plan.ids, plan.register, num_retry).tolist()
        except (BusError, ServoError) as error:
            _annotate(error, self._ids_text(plan))
            raise
        if normalize and plan.normalized:
            values = normalize_values(
                plan.names,
                values,
                plan.modes,
                plan.max_res,
                self._calibration,
                self.apply_drive_mode,
                self._owner,
            )
        return dict(zip(plan.names, values, strict=True))

    def sync_write(
        self,
        data_name: str,
        values: Value | Mapping[str, Value],
        *,
        normalize: bool = True,
        num_retry: int = 0,
    ) -> None:
        """One SYNC_WRITE of a register: `values` is {motor name: value} or one value for every motor.

        No status packet comes back (fast; a lost packet goes unnoticed, fine for teleoperation).
        `num_retry` retries only when the port fails to send, as LeRobot's."""
        if not self.servo_bus.is_open:
            self._require_connected()
        if isinstance(values, dict):
            key = (data_name, tuple(values))
            given = list(values.values())
        elif isinstance(values, numbers.Real):
            key = (data_name, None)
            given = None
        elif isinstance(values, Mapping):
            key = (data_name, tuple(values))
            given = list(values.values())
        else:
            raise TypeError(f"'values' is expected to be a single value or a dict. Got {values}")
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(data_name, key[1])
        if plan.read_only:
            raise ValueError(f"{self._owner}: '{data_name}' is a read-only register of {plan.models[0]}")
        if given is None:
            given = [values] * len(plan.names)
        if normalize and plan.normalized:
            raw = unnormalize_values(
                plan.names,
                given,
                plan.modes,
                plan.max_res,
                self._calibration,
                self.apply_drive_mode,
                self._owner,
            )
        else:
            raw = [int(v) for v in given]
        array = np.array(raw, dtype=np.int64)
        for n_try in range(1 + num_retry):
            try:
                self.servo_bus.sync_write(plan.ids, plan.register, array)
                return
            except BusError as error:
                if n_try == num_retry:
                    _annotate(error, f"after {num_retry + 1} tries {self._ids_text(plan)}")
                    raise
                logger.debug(f"Failed to sync write {data_name} ({n_try=}): {error}")

    # ------------------------------------------------------------------------------------------------
    # Calibration

    @property
    @abc.abstractmethod
    def is_calibrated(self) -> bool:
        """True when the calibration held by the bus matches the motors' registers."""

    @abc.abstractmethod
    def read_calibration(self) -> dict[str, MotorCalibration]:
        """The calibration stored in the motors' registers."""

    @abc.abstractmethod
    def write_calibration(self, calibration_dict: dict[str, MotorCalibration], cache: bool = True) -> None:
        """Writes a calibration to the motors and, with `cache`, keeps it in ``calibration``."""

    def reset_calibration(self, motors: NameOrID | Sequence[NameOrID] | None = None) -> None:
        """Homing_Offset = 0, Min_Position_Limit = 0, Max_Position_Limit = resolution - 1 on the motors;
        forgets the cached calibration (all of it, as LeRobot)."""
        for motor in self._get_motors_list(motors):
            max_res = self._model_info[self.motors[motor].model].resolution - 1
            self.write("Homing_Offset", motor, 0, normalize=False)
            self.write("Min_Position_Limit", motor, 0, normalize=False)
            self.write("Max_Position_Limit", motor, max_res, normalize=False)
        self.calibration = {}

    def set_half_turn_homings(self, motors: NameOrID | Sequence[NameOrID] | None = None) -> dict[str, int]:
        """Writes homing offsets so that each motor's present position reads half a turn (2047 on a 12-bit
        encoder): resets the calibration, reads raw positions, writes ``Homing_Offset``. Returns the offsets."""
        motor_names = self._get_motors_list(motors)
        self.reset_calibration(motor_names)
        actual_positions = self.sync_read("Present_Position", motor_names, normalize=False)
        homing_offsets = self._get_half_turn_homings(actual_positions)
        for motor, offset in homing_offsets.items():
            try:
                self.write("Homing_Offset", motor, offset)
            except ValueError as error:
                raise ValueError(
                    f"{self._owner}: the homing offset {offset} of motor '{motor}' (present position "
                    f"{actual_positions[motor]}) does not fit the Homing_Offset register: {error}. Move the "
                    "joint towards the middle of its range and try again."
                ) from None
        return homing_offsets

    @abc.abstractmethod
    def _get_half_turn_homings(self, positions: Mapping[str, int]) -> dict[str, int]: ...

    def record_ranges_of_motion(
        self,
        motors: NameOrID | Sequence[NameOrID] | None = None,
        display_values: bool = True,
        *,
        stop: Callable[[], bool] | None = None,
        interval_s: float = 0.02,
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Records the min and max raw positions of the motors while a person moves the joints by hand.

        Loops (raw ``sync_read`` of Present_Position with 5 retries, about every `interval_s`) until the user
        presses Enter, or, when `stop` is given (dexloop only), until ``stop()`` returns True (checked after
        each read; tests and GUIs drive the procedure this way). Prints a live table with `display_values`.
        Raises ValueError naming the motors whose min equals their max (joints that were not moved).
        """
        motor_names = self._get_motors_list(motors)
        should_stop = stop if stop is not None else _stdin_enter_pressed
        start_positions = self.sync_read("Present_Position", motor_names, normalize=False, num_retry=5)
        mins = dict(start_positions)
        maxes = dict(start_positions)
        while True:
            positions = self.sync_read("Present_Position", motor_names, normalize=False, num_retry=5)
            for motor in motor_names:
                position = positions[motor]
                if position < mins[motor]:
                    mins[motor] = position
                if position > maxes[motor]:
                    maxes[motor] = position
            if display_values:
                print("\n-------------------------------------------")
                print(f"{'NAME':<15} | {'MIN':>6} | {'POS':>6} | {'MAX':>6}")
                for motor in motor_names:
                    print(f"{motor:<15} | {mins[motor]:>6} | {positions[motor]:>6} | {maxes[motor]:>6}")
            if should_stop():
                break
            if display_values:
                print(f"\033[{len(motor_names) + 3}A", end="")
            time.sleep(interval_s)

        same_min_max = [motor for motor in motor_names if mins[motor] == maxes[motor]]
        if same_min_max:
            raise ValueError(
                f"Some motors have the same min and max values:\n{pformat(same_min_max)}\n"
                "Move each of these joints through its whole range while recording."
            )
        return mins, maxes


SerialMotorsBus = MotorsBus

__all__ = [
    "MAX_ID",
    "Motor",
    "MotorCalibration",
    "MotorNormMode",
    "MotorsBus",
    "NameOrID",
    "SerialMotorsBus",
    "Value",
    "as_calibration",
    "as_motor",
]
