"""Records the errors LeRobot 0.6.1's ``validate_frame`` (what ``add_frame`` checks) gives for a set of
frames, into tests/data/lerobot/frame_validation_reference.json, which
tests/datasets/test_frame_validation.py compares dexloop's checks against.

By hand, in the LeRobot environment (../shared/tools/lerobot-peer.sh):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_frame_validation_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lerobot.datasets.feature_utils import validate_frame

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests/data/lerobot/frame_validation_reference.json"
sys.path.insert(0, str(REPO / "tests/datasets"))

from frame_validation_cases import FEATURES, cases  # noqa: E402


def main() -> None:
    record = {}
    for name, frame in cases().items():
        try:
            validate_frame(frame, FEATURES)
            record[name] = None
        except ValueError as error:
            record[name] = str(error)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {OUT} ({len(record)} cases)")


if __name__ == "__main__":
    main()
