"""LeRobot-shaped class tables (``model_ctrl_table`` ...) built from the control tables of the C++ core,
which transcribes LeRobot's ``motors/{feetech,dynamixel}/tables.py``."""

from __future__ import annotations

from typing import Any

from dexloop._core import bus as _bus


def vendor_tables(vendor: str) -> dict[str, dict[str, Any]]:
    """{table name: {model: ...}} for every model of `vendor`, series keys included."""
    ctrl: dict[str, dict[str, tuple[int, int]]] = {}
    resolution: dict[str, int] = {}
    baudrate: dict[str, dict[int, int]] = {}
    encoding: dict[str, dict[str, int]] = {}
    number: dict[str, int] = {}
    protocol: dict[str, int] = {}
    operating_modes: dict[str, list[int]] = {}
    for info in _bus.all_models():
        if info.vendor != vendor:
            continue
        name = info.name
        registers = info.registers
        ctrl[name] = {reg_name: (reg.address, reg.size) for reg_name, reg in registers.items()}
        resolution[name] = info.resolution
        baudrate[name] = dict(info.baudrates)
        # Feetech: {register: sign bit} (sign-magnitude); Dynamixel: {register: bytes} (two's complement).
        encoding[name] = {
            reg_name: reg.sign_bit if reg.sign == "sign_magnitude" else reg.size
            for reg_name, reg in registers.items()
            if reg.sign != "unsigned"
        }
        if info.model_number:
            number[name] = info.model_number
        protocol[name] = info.protocol
        if info.operating_modes:
            operating_modes[name] = list(info.operating_modes)
    return {
        "ctrl": ctrl,
        "resolution": resolution,
        "baudrate": baudrate,
        "encoding": encoding,
        "number": number,
        "protocol": protocol,
        "operating_modes": operating_modes,
    }
