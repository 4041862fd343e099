"""Depth maps in LeRobot datasets: LeRobot 0.6.1's 12-bit quantiser and its inverse.

A depth camera is a video feature of shape (H, W, 1) whose ``info`` says ``"is_depth_map": true``.
LeRobot records its frames as uint16 millimetres or float32 metres (the unit is inferred from the
first frame's dtype and kept as ``info["depth_unit"]``), quantises each frame to 12-bit codes and
stores them in an HEVC gray12le mp4 with x265's lossless mode (``DepthEncoderConfig``), so the codes
come back exactly; on read the codes are mapped back to depth in ``depth_output_unit`` (millimetres
by default) and returned as float32 (1, H, W). (A depth *image* feature keeps the maps as recorded,
as TIFF cells in the parquet, and is only converted to the output unit on read.)

The mapping (``depth_min``, ``depth_max`` and ``shift`` in metres, ``use_log`` by default)::

    code  = rint((log(d + shift) - log(min + shift)) / (log(max + shift) - log(min + shift)) * 4095)
    depth = clip(exp(code * scale + log(min + shift)) - shift, min, max)    (metres)

The arithmetic is LeRobot's, operation for operation and in the same precisions (float32 arrays,
float32 or float64 constants where LeRobot has them), so the codes and the depths read back are
LeRobot's to the bit: quantisation runs in the frame's own unit (so millimetre frames are quantised
against the limits times 1000), dequantisation with torch's in-place float32 operations.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from dexloop.errors import DatasetFrameError

if TYPE_CHECKING:
    import torch

DEPTH_QMAX = 4095  # 12-bit codes
MM_PER_METRE = 1000.0
DEPTH_METER_UNIT = "m"
DEPTH_MILLIMETER_UNIT = "mm"
DEPTH_UNITS = (DEPTH_METER_UNIT, DEPTH_MILLIMETER_UNIT)
DEFAULT_DEPTH_UNIT = DEPTH_MILLIMETER_UNIT
_UINT16_MAX = 65535


def infer_depth_unit(dtype: Any) -> str:
    """LeRobot's rule: floating-point depth is in metres, integer depth in millimetres."""
    return DEPTH_METER_UNIT if np.issubdtype(np.dtype(dtype), np.floating) else DEPTH_MILLIMETER_UNIT


def depth_frame(value: Any, key: str, height: int, width: int) -> np.ndarray:
    """A recorded depth frame as a 2-D array (H, W) of uint16 millimetres or float32 metres, the
    frames LeRobot's writer accepts ((H, W), (H, W, 1) or (1, H, W)); anything else, and depth that
    is NaN, -inf or negative (LeRobot would store an undefined code or silently clip it to
    depth_min), is a DatasetFrameError."""
    if not isinstance(value, np.ndarray):  # a PIL image in mode I;16 or F
        value = np.array(value)
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    elif value.ndim == 3 and value.shape[-1] == 1:
        value = value[..., 0]
    if value.shape != (height, width):
        raise DatasetFrameError(
            f"The depth feature '{key}' of shape {value.shape} is not a ({height}, {width}) depth map "
            f"(give (H, W), (H, W, 1) or (1, H, W))"
        )
    if value.dtype not in (np.uint16, np.float32):
        raise DatasetFrameError(
            f"The depth feature '{key}' has dtype {value.dtype}: depth maps are uint16 millimetres or "
            "float32 metres"
        )
    if value.dtype == np.float32 and value.size:
        low = value.min()  # NaN propagates, so one pass finds NaN, -inf and negative depth
        if not low >= 0:
            bad = "NaN" if np.isnan(low) else f"negative ({low})"
            raise DatasetFrameError(
                f"The depth feature '{key}' holds {bad} depth: depth maps must be >= 0 (use 0 or +inf "
                "for pixels without a measurement; they are stored as depth_min and depth_max)"
            )
    return value


def quantize_depth(
    depth: np.ndarray,
    depth_min: float,
    depth_max: float,
    shift: float,
    use_log: bool,
    input_unit: str | None = None,
) -> np.ndarray:
    """LeRobot's ``quantize_depth`` (numpy path): 12-bit codes, uint16 of the frame's shape (a single
    channel axis dropped). `input_unit` defaults to the unit the dtype implies."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    elif depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    unit = input_unit or infer_depth_unit(depth.dtype)
    if unit not in DEPTH_UNITS:
        raise ValueError(f"input_unit must be 'm' or 'mm', got {unit!r}")
    values = depth.astype(np.float32, order="K")
    # The limits in the frame's unit, as float32 scalars (so the arithmetic stays float32).
    scale = 1.0 if unit == DEPTH_METER_UNIT else MM_PER_METRE
    low, high, offset = (
        np.float32(depth_min * scale),
        np.float32(depth_max * scale),
        np.float32(shift * scale),
    )
    if use_log:
        if depth_min + shift <= 0:
            raise ValueError(f"depth_min + shift must be positive, got {depth_min} + {shift}")
        log_low = math.log(float(low + offset))
        log_high = math.log(float(high + offset))
        norm = (np.log(values + offset) - log_low) / (log_high - log_low)
    else:
        norm = (values - low) / (high - low)
    return np.rint(norm * DEPTH_QMAX).clip(0, DEPTH_QMAX).astype(np.uint16, copy=False)


def _scale_offset(depth_min: float, depth_max: float, shift: float, use_log: bool) -> tuple[float, float]:
    if use_log:
        if depth_min + shift <= 0:
            raise ValueError(f"depth_min + shift must be positive, got {depth_min} + {shift}")
        log_low = math.log(float(depth_min) + float(shift))
        log_high = math.log(float(depth_max) + float(shift))
        return (log_high - log_low) / DEPTH_QMAX, log_low
    return (float(depth_max) - float(depth_min)) / DEPTH_QMAX, float(depth_min)


def dequantize_depth(
    codes: torch.Tensor,
    depth_min: float,
    depth_max: float,
    shift: float,
    use_log: bool,
    output_unit: str = DEFAULT_DEPTH_UNIT,
) -> torch.Tensor:
    """LeRobot's ``dequantize_depth`` (torch path, what its dataset returns): codes (..., 1, H, W) or
    (..., H, W, 1) to float32 depth (..., 1, H, W) in `output_unit`, millimetres rounded to whole
    ones. The same in-place float32 operations in the same order, so the values are LeRobot's."""
    import torch

    if output_unit not in DEPTH_UNITS:
        raise ValueError(f"output_unit must be 'm' or 'mm', got {output_unit!r}")
    scale, offset = _scale_offset(depth_min, depth_max, shift, use_log)
    if codes.ndim >= 3:
        codes = codes.squeeze(-3) if codes.shape[-3] == 1 else codes.squeeze(-1)
    out = codes.to(dtype=torch.float32, copy=True)
    out.mul_(scale).add_(offset)
    if use_log:
        out.exp_().sub_(float(shift))
    out.clamp_(float(depth_min), float(depth_max))
    out.unsqueeze_(-3)
    if output_unit == DEPTH_MILLIMETER_UNIT:
        out.mul_(MM_PER_METRE).round_().clamp_(0.0, _UINT16_MAX)
    return out
