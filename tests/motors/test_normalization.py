"""Joint normalisation: bit-exact with LeRobot.

Two independent checks: (1) a plain restatement of LeRobot's formulas (reference section 1.5), compared
value by value over sweeps of every raw position; (2) digests of LeRobot 0.6.1's own ``_normalize`` /
``_unnormalize`` outputs over the same sweeps (tests/data/calibration/normalization.json, made by
generate_with_lerobot.py there).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dexloop.errors import CalibrationError
from dexloop.motors import DynamixelMotorsBus, FeetechMotorsBus, Motor, MotorCalibration, MotorNormMode
from dexloop.motors.normalization import normalize_values, unnormalize_values

DATA = Path(__file__).resolve().parents[1] / "data" / "calibration"

M100 = MotorNormMode.RANGE_M100_100
R100 = MotorNormMode.RANGE_0_100
DEG = MotorNormMode.DEGREES


# --- The formulas, stated plainly (LeRobot's MotorsBus._normalize / _unnormalize) ---------------


def ref_normalize(v, mode, lo, hi, inverted, max_res=4095):
    if mode is DEG:
        return (v - (lo + hi) / 2) * 360 / max_res
    c = min(hi, max(lo, v))
    if mode is M100:
        n = (((c - lo) / (hi - lo)) * 200) - 100
        return -n if inverted else n
    n = ((c - lo) / (hi - lo)) * 100
    return 100 - n if inverted else n


def ref_unnormalize(n, mode, lo, hi, inverted, max_res=4095):
    if mode is DEG:
        return int((n * max_res / 360) + (lo + hi) / 2)
    if mode is M100:
        n = -n if inverted else n
        n = min(100.0, max(-100.0, n))
        return int(((n + 100) / 200) * (hi - lo) + lo)
    n = 100 - n if inverted else n
    n = min(100.0, max(0.0, n))
    return int((n / 100) * (hi - lo) + lo)


def run_normalize(values, mode, lo, hi, drive_mode, apply_drive_mode, max_res=4095):
    cal = {"m": MotorCalibration(1, drive_mode, 0, lo, hi)}
    k = len(values)
    return normalize_values(["m"] * k, values, [mode] * k, [max_res] * k, cal, apply_drive_mode)


def run_unnormalize(values, mode, lo, hi, drive_mode, apply_drive_mode, max_res=4095):
    cal = {"m": MotorCalibration(1, drive_mode, 0, lo, hi)}
    k = len(values)
    return unnormalize_values(["m"] * k, values, [mode] * k, [max_res] * k, cal, apply_drive_mode)


CALIBRATIONS = [(0, 4095), (760, 3320), (2030, 3480), (1000, 1001), (1, 4094), (1500, 2600), (3000, 1000)]
RAW = list(range(-300, 4400))


def same_floats(actual, expected):
    """Equal bit for bit (so -0.0 differs from 0.0, and NaN equals NaN)."""
    a = np.array(actual, dtype=np.float64)
    b = np.array(expected, dtype=np.float64)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("mode", list(MotorNormMode))
@pytest.mark.parametrize("drive_mode", [0, 1])
@pytest.mark.parametrize("apply_drive_mode", [True, False])
@pytest.mark.parametrize(("lo", "hi"), CALIBRATIONS)
def test_normalize_every_raw_value_matches_the_formulas(mode, drive_mode, apply_drive_mode, lo, hi):
    got = run_normalize(RAW, mode, lo, hi, drive_mode, apply_drive_mode)
    inverted = bool(apply_drive_mode and drive_mode)
    want = [ref_normalize(v, mode, lo, hi, inverted) for v in RAW]
    assert same_floats(got, want)
    assert all(type(x) is float for x in got)


@pytest.mark.parametrize("mode", list(MotorNormMode))
@pytest.mark.parametrize("drive_mode", [0, 1])
@pytest.mark.parametrize("apply_drive_mode", [True, False])
@pytest.mark.parametrize(("lo", "hi"), CALIBRATIONS)
def test_unnormalize_sweep_matches_the_formulas(mode, drive_mode, apply_drive_mode, lo, hi):
    grid = [i / 64 for i in range(-200 * 64, 200 * 64 + 1)] + [i / 100 for i in range(-15000, 15001, 7)]
    grid += [-0.0, 1e-300, -1e-300, 99.99999999999999, -99.99999999999999, 1e9, -1e9, 150, -150, 0, 100, -100]
    got = run_unnormalize(grid, mode, lo, hi, drive_mode, apply_drive_mode)
    inverted = bool(apply_drive_mode and drive_mode)
    want = [ref_unnormalize(n, mode, lo, hi, inverted) for n in grid]
    assert got == want
    assert all(type(x) is int for x in got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("mode", list(MotorNormMode))
def test_numpy_scalars_are_computed_as_lerobot_computes_them(dtype, mode):
    """A policy's float32 output is unnormalised in float32 arithmetic by LeRobot (numpy scalar
    promotion): dexloop evaluates the same expressions on the same objects."""
    grid = [dtype(i / 10) for i in range(-2000, 2001)]
    for inverted in (0, 1):
        got = run_unnormalize(grid, mode, 760, 3320, inverted, True)
        want = [ref_unnormalize(n, mode, 760, 3320, bool(inverted)) for n in grid]
        assert got == want


@pytest.mark.parametrize(("lo", "hi"), [(0, 4095), (760, 3320), (2030, 3480), (1, 4094)])
@pytest.mark.parametrize("mode", list(MotorNormMode))
@pytest.mark.parametrize("drive_mode", [0, 1])
def test_round_trip_raw_normalized_raw(lo, hi, mode, drive_mode):
    """raw -> normalised -> raw gives the (clamped) raw value back, or one step less where the float
    round trip lands just below it and int() truncates (LeRobot's behaviour, kept)."""
    raw = list(range(0, 4096))
    normalized = run_normalize(raw, mode, lo, hi, drive_mode, True)
    back = run_unnormalize(normalized, mode, lo, hi, drive_mode, True)
    inverted = bool(drive_mode)
    assert back == [
        ref_unnormalize(ref_normalize(v, mode, lo, hi, inverted), mode, lo, hi, inverted) for v in raw
    ]
    for v, b in zip(raw, back, strict=True):
        expected = v if mode is DEG else min(hi, max(lo, v))
        assert expected - 1 <= b <= expected, (v, b)
    # Most values survive exactly.
    exact = sum(1 for v, b in zip(raw, back, strict=True) if b == (v if mode is DEG else min(hi, max(lo, v))))
    assert exact > 0.5 * len(raw)


def test_round_trip_normalized_raw_normalized_is_stable():
    """A normalised value read from a motor, written back, reads the same again."""
    for mode in MotorNormMode:
        normalized = run_normalize(list(range(760, 3321)), mode, 760, 3320, 0, True)
        raw = run_unnormalize(normalized, mode, 760, 3320, 0, True)
        again = run_normalize(raw, mode, 760, 3320, 0, True)
        again_raw = run_unnormalize(again, mode, 760, 3320, 0, True)
        assert again_raw == raw


def test_degrees_use_the_4095_scale_and_no_clamp_and_no_drive_mode():
    assert run_normalize([4095], DEG, 0, 4095, 0, True) == [(4095 - 2047.5) * 360 / 4095]
    assert run_normalize([2047], DEG, 0, 4095, 1, True) == run_normalize([2047], DEG, 0, 4095, 0, True)
    assert run_normalize([-1000], DEG, 1000, 3000, 0, True) == [(-1000 - 2000) * 360 / 4095]
    assert run_unnormalize([720.0], DEG, 1000, 3000, 1, True) == [int(720 * 4095 / 360 + 2000)]
    assert run_unnormalize([-0.01], DEG, 0, 4095, 0, True) == [2047]  # int() truncates toward zero


def test_range_modes_clamp_and_invert():
    assert run_normalize([0, 5000], M100, 1000, 3000, 0, True) == [-100.0, 100.0]
    assert run_normalize([0, 5000], M100, 1000, 3000, 1, True) == [100.0, -100.0]
    assert run_normalize([0, 5000], R100, 1000, 3000, 1, True) == [100.0, 0.0]
    assert run_normalize([0, 5000], R100, 1000, 3000, 1, False) == [0.0, 100.0]
    assert run_unnormalize([-1000.0, 1000.0], M100, 1000, 3000, 0, True) == [1000, 3000]
    assert run_unnormalize([-1000.0, 1000.0], R100, 1000, 3000, 1, True) == [3000, 1000]
    # -0.0 comes out of an inverted mid-range value, as LeRobot's `-norm`.
    assert math.copysign(1, run_normalize([2000], M100, 1000, 3000, 1, True)[0]) == -1


@pytest.mark.parametrize("mode", list(MotorNormMode))
@pytest.mark.parametrize(
    ("value", "error"), [(math.nan, ValueError), (math.inf, OverflowError), (-math.inf, OverflowError)]
)
def test_non_finite_targets_raise_naming_the_motor(mode, value, error):
    with pytest.raises(error, match="motor 'm'"):
        run_unnormalize([value], mode, 1000, 3000, 0, True)
    with pytest.raises(error):
        run_unnormalize([np.float32(value)], mode, 1000, 3000, 0, True)


def test_calibration_problems_raise_calibration_error():
    with pytest.raises(CalibrationError, match="has no calibration"):
        normalize_values(["m"], [1], [M100], [4095], {}, True, owner="bus X")
    with pytest.raises(CalibrationError, match="no entry for motor 'm'"):
        normalize_values(["m"], [1], [M100], [4095], {"other": MotorCalibration(1, 0, 0, 0, 10)}, True)
    for mode in MotorNormMode:
        with pytest.raises(CalibrationError, match="range_min and range_max are both 7"):
            run_normalize([1], mode, 7, 7, 0, True)
        with pytest.raises(ValueError, match="motor 'm'"):  # CalibrationError is a ValueError, as LeRobot's
            run_unnormalize([1.0], mode, 7, 7, 0, True)


def test_resolution_other_than_4096():
    # SCS series: 1024 steps.
    assert run_normalize([1023], DEG, 0, 1023, 0, True, max_res=1023) == [(1023 - 511.5) * 360 / 1023]
    assert run_unnormalize([90.0], DEG, 0, 1023, 0, True, max_res=1023) == [int(90.0 * 1023 / 360 + 511.5)]


# --- Against LeRobot 0.6.1's own output ---------------------------------------------------------


def _lerobot_cases():
    spec = json.loads((DATA / "normalization.json").read_text())
    return spec, spec["cases"]


SPEC, CASES = _lerobot_cases()


def _digest(values, dtype):
    return hashlib.sha256(np.array(values, dtype=dtype).tobytes()).hexdigest()


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"{c['bus']}-{c['mode']}-d{c['drive_mode']}-{c['range_min']}-{c['range_max']}" for c in CASES],
)
def test_bit_exact_with_lerobot(case):
    assert SPEC["raw"] == "range(-200, 4301)"
    raw = list(range(-200, 4301))
    range_grid = [i / 100 for i in range(-15000, 15001)]
    degree_grid = [i / 100 for i in range(-20000, 20001)]
    apply = case["bus"] == "FeetechMotorsBus"
    mode = MotorNormMode(case["mode"])
    args = (mode, case["range_min"], case["range_max"], case["drive_mode"], apply)

    normalized = run_normalize(raw, *args)
    assert [repr(x) for x in normalized[:: SPEC["raw_sample_step"]]] == case["normalize_sample"]
    assert _digest(normalized, "<f8") == case["normalize_sha256"]

    grid = degree_grid if mode is DEG else range_grid
    unnormalized = run_unnormalize(grid, *args)
    assert unnormalized[:: SPEC["grid_sample_step"]] == case["unnormalize_sample"]
    assert _digest(unnormalized, "<i8") == case["unnormalize_sha256"]
    assert (
        _digest(run_unnormalize([np.float32(x) for x in grid], *args), "<i8")
        == case["unnormalize_float32_sha256"]
    )
    assert _digest(run_unnormalize(normalized, *args), "<i8") == case["round_trip_sha256"]


@pytest.mark.parametrize(
    "bus_cls, model", [(FeetechMotorsBus, "sts3215"), (DynamixelMotorsBus, "xl330-m288")]
)
def test_bus_private_helpers_match_lerobot_fixture(bus_cls, model):
    """The bus's LeRobot-named ``_normalize`` / ``_unnormalize`` ({id: value} dicts) give the same values."""
    for case in CASES:
        if case["bus"] != bus_cls.__name__ or case["range_min"] != 760:
            continue
        mode = MotorNormMode(case["mode"])
        cal = {"m": MotorCalibration(7, case["drive_mode"], 0, case["range_min"], case["range_max"])}
        bus = bus_cls("/dev/null", {"m": Motor(7, model, mode)}, cal)
        sample = [bus._normalize({7: v})[7] for v in range(-200, 4301, SPEC["raw_sample_step"])]
        assert [repr(x) for x in sample] == case["normalize_sample"]
        grid = [i / 100 for i in (range(-20000, 20001) if mode is DEG else range(-15000, 15001))]
        sample = [bus._unnormalize({7: x})[7] for x in grid[:: SPEC["grid_sample_step"]]]
        assert sample == case["unnormalize_sample"]
