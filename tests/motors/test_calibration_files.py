"""LeRobot calibration files: read and written byte-for-byte, at LeRobot's default locations.

The files under tests/data/calibration/ were written by LeRobot 0.6.1's own robots and teleoperators
(generate_with_lerobot.py there); manifest.json records where LeRobot put each one and what LeRobot
loads back from it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from dexloop.errors import CalibrationError, DexloopError
from dexloop.motors import MotorCalibration
from dexloop.motors.calibration import (
    calibration_dir,
    calibration_path,
    calibration_root,
    device_class_name,
    device_kind,
    dumps_calibration,
    lerobot_home,
    load_calibration,
    loads_calibration,
    save_calibration,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "calibration"
MANIFEST = json.loads((DATA / "manifest.json").read_text())


def as_dict(calibration):
    return {name: vars(cal) for name, cal in calibration.items()}


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["path"] for e in MANIFEST])
def test_reads_what_lerobot_wrote_and_writes_the_same_bytes(entry, tmp_path):
    path = DATA / entry["path"]
    calibration = load_calibration(path)
    assert as_dict(calibration) == entry["calibration"]
    assert list(calibration) == list(entry["calibration"])  # motor order kept
    assert all(isinstance(c, MotorCalibration) for c in calibration.values())

    original = path.read_bytes()
    assert dumps_calibration(calibration).encode() == original
    out = save_calibration(calibration, tmp_path / "sub" / "dir" / "x.json")
    assert out.read_bytes() == original
    assert [p.name for p in out.parent.iterdir()] == ["x.json"]  # no temporary file left


@pytest.mark.parametrize("entry", [e for e in MANIFEST if e["type"]], ids=lambda e: f"{e['type']}-{e['id']}")
def test_default_location_is_lerobots(entry, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    assert calibration_path(entry["type"], entry["id"]) == tmp_path / entry["path"]


def test_location_environment_chain(monkeypatch, tmp_path):
    for var in ("HF_LEROBOT_CALIBRATION", "HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home" / ".cache" / "huggingface" / "lerobot"
    assert lerobot_home() == home
    assert calibration_root() == home / "calibration"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration_root() == tmp_path / "xdg" / "huggingface" / "lerobot" / "calibration"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert calibration_root() == tmp_path / "hf" / "lerobot" / "calibration"
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    assert calibration_root() == tmp_path / "lr" / "calibration"
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", "~/cal")
    assert calibration_root() == tmp_path / "home" / "cal"


def test_device_names_and_kinds(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    assert device_class_name("so100_follower") == device_class_name("so101_follower") == "so_follower"
    assert device_class_name("so101_leader") == "so_leader"
    assert device_class_name("koch_leader") == "koch_leader"
    assert device_kind("so101_follower") == "robots"
    assert device_kind("koch_follower") == "robots"
    assert device_kind("lekiwi") == "robots"
    assert device_kind("so100_leader") == "teleoperators"
    assert device_kind("koch_leader") == "teleoperators"
    assert calibration_dir("koch_leader") == tmp_path / "teleoperators" / "koch_leader"
    assert calibration_dir("my_arm", kind="robots") == tmp_path / "robots" / "my_arm"
    with pytest.raises(ValueError, match="unknown device 'my_arm'"):
        calibration_dir("my_arm")
    with pytest.raises(ValueError, match="kind must be"):
        calibration_dir("so_follower", kind="robot")
    # --robot.calibration_dir replaces the folder; an id of None gives None.json, as LeRobot.
    assert calibration_path("so_follower", "a", directory=tmp_path / "x") == tmp_path / "x" / "a.json"
    assert calibration_path("so_follower", None).name == "None.json"


def test_random_calibrations_round_trip(tmp_path):
    rng = random.Random(7)
    for trial in range(200):
        calibration = {}
        for _ in range(rng.randint(0, 8)):
            name = "".join(rng.choice('abcxyz_é腕"\\/ \t\n0') for _ in range(rng.randint(1, 12)))
            calibration[name] = MotorCalibration(
                id=rng.randint(0, 252),
                drive_mode=rng.randint(0, 1),
                homing_offset=rng.randint(-2047, 2047),
                range_min=rng.randint(-(2**31), 2**31),
                range_max=rng.randint(0, 4095),
            )
        text = dumps_calibration(calibration)
        assert text.isascii() and not text.endswith("\n")
        assert loads_calibration(text) == calibration
        path = save_calibration(calibration, tmp_path / f"{trial}.json")
        assert load_calibration(path) == calibration
        assert json.loads(path.read_text()) == as_dict(calibration)


def test_numpy_integers_are_written_as_ints(tmp_path):
    np = pytest.importorskip("numpy")
    calibration = {
        "m": MotorCalibration(np.int64(1), np.uint8(0), np.int32(-5), np.int16(10), np.int64(4000))
    }
    assert loads_calibration(dumps_calibration(calibration)) == {"m": MotorCalibration(1, 0, -5, 10, 4000)}
    with pytest.raises(TypeError, match="homing_offset must be an integer"):
        dumps_calibration({"m": MotorCalibration(1, 0, 1.5, 0, 1)})


def entry(**overrides):
    base = {"id": 1, "drive_mode": 0, "homing_offset": -3, "range_min": 10, "range_max": 20}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


MALFORMED = {
    "not json": ('{"a": ', "not valid JSON"),
    "empty file": ("", "not valid JSON"),
    "a list": ("[1, 2]", "must hold an object"),
    "null motor": ('{"a": null}', "motor 'a' must map to an object"),
    "missing field": (json.dumps({"a": entry(range_max=...)}), "missing range_max"),
    "extra field": (json.dumps({"a": entry(speed=3)}), "unknown speed"),
    "float": (json.dumps({"a": entry(homing_offset=-3.0)}), "homing_offset must be an integer, got -3.0"),
    "string": (json.dumps({"a": entry(id="1")}), 'id must be an integer, got "1"'),
    "bool": (json.dumps({"a": entry(drive_mode=True)}), "drive_mode must be an integer, got true"),
    "duplicate motor": (
        '{"a": ' + json.dumps(entry()) + ', "a": ' + json.dumps(entry()) + "}",
        "'a' appears twice",
    ),
    "legacy schema": (
        json.dumps({"homing_offset": [1, 2], "drive_mode": [0, 0], "motor_names": ["a", "b"]}),
        "motor 'homing_offset' must map to an object",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_files_raise_calibration_error_naming_the_file(name, tmp_path):
    text, message = MALFORMED[name]
    path = tmp_path / "bad calibration.json"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=message) as info:
        load_calibration(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, DexloopError) and isinstance(info.value, ValueError)


def test_unreadable_files_raise_calibration_error(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "latin1.json").write_bytes(b'{"\xe9": 1}')
    with pytest.raises(CalibrationError, match="not UTF-8"):
        load_calibration(tmp_path / "latin1.json")
    with pytest.raises(CalibrationError, match="cannot be read"):
        load_calibration(tmp_path)  # a directory
    if os.geteuid() != 0:
        locked = tmp_path / "locked.json"
        locked.write_text("{}")
        locked.chmod(0)
        with pytest.raises(CalibrationError, match="cannot be read"):
            load_calibration(locked)


def test_empty_calibration_is_valid():
    assert loads_calibration("{}") == {}
    assert dumps_calibration({}) == "{}"
