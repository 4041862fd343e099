"""Frames and features for the add_frame checks: recorded against LeRobot by
tools/lerobot_reference/make_frame_validation_reference.py and replayed against dexloop by
test_frame_validation.py. Each case differs from a good frame in one way (a set in LeRobot's message
then holds one element, so its printed order is fixed)."""

from __future__ import annotations

import numpy as np
import PIL.Image

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
    "action": {"dtype": "float32", "shape": (6,), "names": None},
    "observation.images.front": {
        "dtype": "video",
        "shape": (48, 64, 3),
        "names": ["height", "width", "channels"],
    },
    "observation.images.still": {
        "dtype": "image",
        "shape": (3, 8, 10),
        "names": ["channels", "height", "width"],
    },
    "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    "observation.note": {"dtype": "string", "shape": (1,), "names": None},
    "timestamp": {"dtype": "float32", "shape": (1,), "names": None},
    "frame_index": {"dtype": "int64", "shape": (1,), "names": None},
    "episode_index": {"dtype": "int64", "shape": (1,), "names": None},
    "index": {"dtype": "int64", "shape": (1,), "names": None},
    "task_index": {"dtype": "int64", "shape": (1,), "names": None},
}


def good_frame() -> dict:
    return {
        "observation.state": np.zeros(6, np.float32),
        "action": np.zeros(6, np.float32),
        "observation.images.front": np.zeros((48, 64, 3), np.uint8),
        "observation.images.still": np.zeros((3, 8, 10), np.uint8),
        "next.done": np.array([False]),
        "observation.note": "fine",
        "task": "pick the cube",
    }


def cases() -> dict[str, dict]:
    """name -> frame. Each differs from a good frame in one way (sets in LeRobot's messages then hold
    one element, so their printed order is fixed)."""

    def frame(**changes):
        result = good_frame()
        for key, value in changes.items():
            key = key.replace("__", ".")
            if value is None:
                del result[key]
            else:
                result[key] = value
        return result

    return {
        "good": frame(),
        "good_chw_video": frame(**{"observation__images__front": np.zeros((3, 48, 64), np.uint8)}),
        "good_hwc_image": frame(**{"observation__images__still": np.zeros((8, 10, 3), np.uint8)}),
        "good_pil_video": frame(**{"observation__images__front": PIL.Image.new("RGB", (64, 48))}),
        "good_float_video": frame(**{"observation__images__front": np.zeros((48, 64, 3), np.float32)}),
        "no_task": frame(task=None),
        "missing_feature": frame(action=None),
        "extra_feature": frame(**{"observation__extra": np.zeros(2, np.float32)}),
        "default_feature_given": frame(timestamp=np.zeros(1, np.float32)),
        "wrong_dtype": frame(**{"observation__state": np.zeros(6, np.float64)}),
        "wrong_shape": frame(**{"observation__state": np.zeros(7, np.float32)}),
        "wrong_dtype_and_shape": frame(**{"observation__state": np.zeros((2, 3), np.int64)}),
        "scalar_not_array": frame(**{"next__done": False}),
        "zero_dim_array": frame(**{"next__done": np.array(False)}),
        "list_not_array": frame(action=[0.0] * 6),
        "video_wrong_shape": frame(**{"observation__images__front": np.zeros((48, 64), np.uint8)}),
        "video_transposed_wrongly": frame(**{"observation__images__front": np.zeros((64, 48, 3), np.uint8)}),
        "video_not_an_image": frame(**{"observation__images__front": "picture.png"}),
        "string_not_str": frame(**{"observation__note": 7}),
        "two_problems": frame(action=np.zeros(5, np.float32), **{"next__done": np.array([1])}),
    }
