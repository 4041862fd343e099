"""The checks ``add_frame`` makes on each recorded frame, as LeRobot 0.6.1's ``validate_frame``.

A frame holds exactly the dataset's user features plus ``task`` (the default columns timestamp,
frame_index, episode_index, index and task_index are filled in by the writer, so supplying one is an
error). Numeric features must be numpy arrays of exactly the declared dtype and shape (a scalar is an
array of shape (1,)); image and video features a PIL image or an array of the declared shape or its
cyclic permutation (LeRobot reads a declared (A, B, C) as channels-first and also takes (B, C, A));
strings a ``str``. Every problem of the frame is reported at once, with LeRobot's wording, as a
DatasetFrameError (a ValueError, which is what LeRobot raises).

One difference: a shape declared as a list is compared as the tuple it means (LeRobot compares the
array's tuple with the list itself, which never matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dexloop.errors import DatasetFrameError

from .info import DEFAULT_FEATURES, TEXT_DTYPES, VISUAL_DTYPES


def _is_numpy_dtype(name: str) -> bool:
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def _check_numeric(name: str, dtype: str, shape: tuple[int, ...], value: Any) -> str:
    if not isinstance(value, np.ndarray):
        return (
            f"The feature '{name}' is not a 'np.ndarray'. Expected type is '{dtype}', but type "
            f"'{type(value)}' provided instead.\n"
        )
    problems = ""
    if value.dtype != np.dtype(dtype):
        problems += f"The feature '{name}' of dtype '{value.dtype}' is not of the expected dtype '{dtype}'.\n"
    if value.shape != shape:
        problems += (
            f"The feature '{name}' of shape '{value.shape}' does not have the expected shape '{shape}'.\n"
        )
    return problems


def _check_visual(name: str, shape: tuple[int, ...], value: Any) -> str:
    if isinstance(value, np.ndarray):
        c, h, w = shape
        if value.ndim != 3 or (value.shape != (c, h, w) and value.shape != (h, w, c)):
            return (
                f"The feature '{name}' of shape '{value.shape}' does not have the expected shape "
                f"'{(c, h, w)}' or '{(h, w, c)}'.\n"
            )
        return ""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None and isinstance(value, Image.Image):
        return ""
    return (
        f"The feature '{name}' is expected to be of type 'PIL.Image' or 'np.ndarray' channel first or "
        f"channel last, but type '{type(value)}' provided instead.\n"
    )


def _check_value(name: str, feature: Mapping[str, Any], value: Any) -> str:
    dtype = feature["dtype"]
    shape = tuple(feature["shape"])
    if dtype in VISUAL_DTYPES:
        return _check_visual(name, shape, value)
    if dtype == "string":
        if not isinstance(value, str):
            return f"The feature '{name}' is expected to be of type 'str', but type '{type(value)}' provided instead.\n"
        return ""
    if dtype in TEXT_DTYPES:
        return ""  # language columns are filled after recording; LeRobot drops what is given
    if _is_numpy_dtype(dtype):
        return _check_numeric(name, dtype, shape, value)
    raise DatasetFrameError(f"The feature dtype '{dtype}' of '{name}' is not one a frame can hold.")


def validate_frame(frame: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]) -> None:
    """Raises DatasetFrameError listing every way `frame` does not fit `features`."""
    expected = set(features) - set(DEFAULT_FEATURES)
    given = set(frame)
    if "task" not in given:
        raise DatasetFrameError("Feature mismatch in `frame` dictionary:\nMissing features: {'task'}\n")
    given.discard("task")
    problems = ""
    missing, extra = expected - given, given - expected
    if missing or extra:
        problems += "Feature mismatch in `frame` dictionary:\n"
        if missing:
            problems += f"Missing features: {missing}\n"
        if extra:
            problems += f"Extra features: {extra}\n"
    for name in (name for name in features if name in given):  # the features' order, not a set's
        problems += _check_value(name, features[name], frame[name])
    if problems:
        raise DatasetFrameError(problems)
