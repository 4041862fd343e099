"""add_frame's checks against what LeRobot 0.6.1's validate_frame said of the same frames
(tests/data/lerobot/frame_validation_reference.json, recorded by
tools/lerobot_reference/make_frame_validation_reference.py from frame_validation_cases.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import LEROBOT_DATA

from dexloop.datasets.frame_validation import validate_frame
from dexloop.errors import DatasetError, DatasetFrameError

import frame_validation_cases as CASES

REFERENCE = json.loads((LEROBOT_DATA / "frame_validation_reference.json").read_text())


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_frames_are_judged_as_lerobot_judges_them(name: str) -> None:
    frame = CASES.cases()[name]
    want = REFERENCE[name]
    if want is None:
        validate_frame(frame, CASES.FEATURES)
        return
    with pytest.raises(DatasetFrameError) as raised:
        validate_frame(frame, CASES.FEATURES)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, DatasetError)
    # LeRobot lists problems in a set's order; dexloop in the features' order.
    assert sorted(str(raised.value).splitlines()) == sorted(want.splitlines())


def test_a_shape_declared_as_a_list_means_its_tuple() -> None:
    features = {
        name: {**feature, "shape": list(feature["shape"])} for name, feature in CASES.FEATURES.items()
    }
    validate_frame(CASES.good_frame(), features)
    with pytest.raises(DatasetFrameError, match=r"shape '\(7,\)' does not have the expected shape '\(6,\)'"):
        validate_frame({**CASES.good_frame(), "action": np.zeros(7, np.float32)}, features)
