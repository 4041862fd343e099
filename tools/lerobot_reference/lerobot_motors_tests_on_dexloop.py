"""A pytest plugin that runs LeRobot 0.6.1's own ``tests/motors`` with dexloop's buses in place of LeRobot's.

LeRobot's bus tests talk to a ``mock_serial.MockSerial``: a real pty whose other end answers byte
stubs (``build_read_stub`` ...), so the bytes a bus sends must be the vendor protocol's to the byte.
dexloop's ``FeetechMotorsBus`` / ``DynamixelMotorsBus`` open that pty like any serial port; nothing
SDK-specific needs mocking. The plugin, loaded before collection, points the names the test modules
import (``lerobot.motors.feetech.FeetechMotorsBus``, ``lerobot.motors.dynamixel.DynamixelMotorsBus``)
at dexloop's classes, and lets the tests' ``patch("lerobot.motors.motors_bus.enter_pressed")`` reach
dexloop's range recording. Tests of what dexloop does not offer are deselected, each with its reason
(``NOT_APPLICABLE``), and listed at the end of the run.

By hand, in a LeRobot environment with dexloop, pytest and mock-serial installed (README, "Installing
into a LeRobot environment"), from an extracted copy of LeRobot's tests:

    mkdir -p /tmp/lerobot-src && git -C <lerobot git mirror> archive v0.6.1 tests | tar -x -C /tmp/lerobot-src
    cd /tmp/lerobot-src && PYTHONPATH=<dexloop>/tools/lerobot_reference \\
        <lerobot env>/bin/python -m pytest -p lerobot_motors_tests_on_dexloop tests/motors
"""

from __future__ import annotations

import pytest

# (test file, test name prefix) -> why it does not apply to dexloop. An empty prefix: the whole file.
# Tests named ``test__<method>`` exercise LeRobot's private SDK-level methods (``_read``, ``_write``,
# ``_sync_read``, ``_sync_write``, ``_split_into_byte_chunks``): see PRIVATE_SDK.
PRIVATE_SDK = (
    "LeRobot's private SDK-level bus methods (_read, _write, _sync_read, _sync_write, "
    "_split_into_byte_chunks); dexloop's transactions are one native call each "
    "(ServoBus.read/write/sync_read/sync_write)"
)
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("test_feetech.py", "test__"): PRIVATE_SDK,
    ("test_dynamixel.py", "test__"): PRIVATE_SDK,
    ("test_feetech.py", "test_autouse_patch"): "checks LeRobot's macOS patch of the SDK's PortHandler",
    ("test_dynamixel.py", "test_autouse_patch"): "checks LeRobot's macOS patch of the SDK's PortHandler",
    ("test_motors_bus.py", ""): (
        "LeRobot's abstract MotorsBus with made-up models ('model_1' ...) whose SDK-level private methods "
        "(_read, _sync_read, _serialize_data ...) are patched, and LeRobot's table helpers "
        "(get_ctrl_table, get_address, assert_same_address); dexloop's buses take their models from the "
        "C++ control tables and have no such methods"
    ),
    ("test_damiao.py", ""): "Damiao CAN motors: dexloop has no CAN bus",
}

MOCK_LATENCY_MARGIN_MS = 100.0

_deselected: list[tuple[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    import lerobot.motors.dynamixel as lerobot_dynamixel
    import lerobot.motors.dynamixel.dynamixel as lerobot_dynamixel_module
    import lerobot.motors.feetech as lerobot_feetech
    import lerobot.motors.feetech.feetech as lerobot_feetech_module
    import lerobot.motors.motors_bus as lerobot_motors_bus

    import dexloop.motors.dynamixel as dexloop_dynamixel
    import dexloop.motors.feetech as dexloop_feetech
    import dexloop.motors.motors_bus as dexloop_motors_bus

    # MockSerial answers from a Python thread, which a loaded machine may not schedule within
    # dexloop's default 10 ms allowance beyond the wire time (the vendors' SDKs wait 16 ms and more):
    # the buses under test get MOCK_LATENCY_MARGIN_MS, everything else is dexloop's class as shipped.
    class FeetechMotorsBus(dexloop_feetech.FeetechMotorsBus):
        def __init__(self, *args, latency_margin_ms: float = MOCK_LATENCY_MARGIN_MS, **kwargs):
            super().__init__(*args, latency_margin_ms=latency_margin_ms, **kwargs)

    class DynamixelMotorsBus(dexloop_dynamixel.DynamixelMotorsBus):
        def __init__(self, *args, latency_margin_ms: float = MOCK_LATENCY_MARGIN_MS, **kwargs):
            super().__init__(*args, latency_margin_ms=latency_margin_ms, **kwargs)

    for module in (lerobot_feetech, lerobot_feetech_module):
        module.FeetechMotorsBus = FeetechMotorsBus
    for module in (lerobot_dynamixel, lerobot_dynamixel_module):
        module.DynamixelMotorsBus = DynamixelMotorsBus
    # LeRobot's record_ranges_of_motion polls motors_bus.enter_pressed, which the tests patch;
    # dexloop's polls its own function, which now asks LeRobot's name (looked up at each call).
    dexloop_motors_bus._stdin_enter_pressed = lambda: lerobot_motors_bus.enter_pressed()
    config.addinivalue_line(
        "markers", "dexloop_not_applicable: deselected by lerobot_motors_tests_on_dexloop"
    )


def _reason(item: pytest.Item) -> str | None:
    file_name = item.path.name
    for (test_file, prefix), reason in NOT_APPLICABLE.items():
        if file_name != test_file:
            continue
        if item.name.startswith(prefix):
            return reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, deselected = [], []
    for item in items:
        reason = _reason(item)
        if reason is None:
            kept.append(item)
        else:
            deselected.append(item)
            _deselected.append((item.nodeid, reason))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_terminal_summary(terminalreporter) -> None:
    if not _deselected:
        return
    terminalreporter.section("not applicable to dexloop (deselected)")
    by_reason: dict[str, list[str]] = {}
    for nodeid, reason in _deselected:
        by_reason.setdefault(reason, []).append(nodeid.split("::", 1)[1])
    for reason, names in by_reason.items():
        terminalreporter.write_line(f"{len(names):3d}  {reason}")
        terminalreporter.write_line(f"     {', '.join(sorted(set(n.split('[')[0] for n in names)))}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    import lerobot.motors.dynamixel as lerobot_dynamixel
    import lerobot.motors.feetech as lerobot_feetech

    buses = (lerobot_feetech.FeetechMotorsBus, lerobot_dynamixel.DynamixelMotorsBus)
    names = ", ".join(f"{bus.__mro__[1].__module__}.{bus.__name__}" for bus in buses)
    return [
        f"lerobot_motors_tests_on_dexloop: buses under test: {names} (latency_margin_ms={MOCK_LATENCY_MARGIN_MS})"
    ]
