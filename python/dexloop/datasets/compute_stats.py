"""Per-episode statistics as LeRobot 0.6.1 computes them when an episode is saved.

LeRobot stores, for every numeric, image and video feature of every episode, min / max / mean / std
/ count and the quantiles q01, q10, q50, q90, q99 (``stats/<feature>/<stat>`` columns of the
episodes parquet), and aggregates them into ``meta/stats.json``. Policies normalise with them, so a
dataset written by dexloop must hold the numbers LeRobot would have computed for the same frames.
This module reproduces LeRobot's procedure step for step:

* numeric features: the episode's array, promoted to at least float32, reshaped to (-1, last axis)
  (a feature of shape (A, B) gets stats of shape (B,), LeRobot's quirk); mean and mean of squares,
  population std; quantiles from a 5000-bin histogram per dimension between min and max (edges padded
  by 1e-10), interpolated linearly inside the bin; with fewer than 2 rows, numpy's statistics and
  every quantile equal to the mean;
* image and video features: a sample of the episode's frames (``sample_indices``: all of them below
  100 frames, then n**0.75 evenly spaced, at most 10000), each strided down to about 150 pixels on
  its long side when that side is 300 pixels or more, stats per channel divided by 255, shaped
  (3, 1, 1); ``count`` is the number of sampled frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dexloop import _core

DEFAULT_QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_BINS = 5000


def quantile_key(quantile: float) -> str:
    return f"q{int(quantile * 100):02d}"


def estimate_num_samples(length: int, minimum: int = 100, maximum: int = 10_000, power: float = 0.75) -> int:
    """How many frames of an episode of `length` frames go into its image stats."""
    if length < minimum:
        minimum = length
    return max(minimum, min(int(length**power), maximum))


def sample_indices(length: int) -> list[int]:
    """The frames of an episode sampled for its image stats: evenly spaced, first and last included."""
    return np.round(np.linspace(0, length - 1, estimate_num_samples(length))).astype(int).tolist()


def downsample_for_stats(image: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """A CHW image strided down so its long side is about `target` pixels, when that side is
    `threshold` pixels or more (a view, no copy)."""
    _, height, width = image.shape
    if max(width, height) < threshold:
        return image
    step = int(width / target) if width > height else int(height / target)
    return image[:, ::step, ::step]


def histogram_quantile(
    histogram: np.ndarray, edges: np.ndarray, target: float, cumulative: np.ndarray | None = None
) -> float:
    """The value below which `target` of the counted values lie, interpolated inside its bin (LeRobot's
    RunningQuantileStats). `cumulative`: the histogram's np.cumsum, when the caller has it."""
    if cumulative is None:
        cumulative = np.cumsum(histogram)
    index = int(np.searchsorted(cumulative, target))
    if index == 0:
        return edges[0]
    if index >= len(cumulative):
        return edges[-1]
    before = cumulative[index - 1]
    inside = cumulative[index] - before
    if inside == 0:
        return edges[index]
    return edges[index] + (target - before) / inside * (edges[index + 1] - edges[index])


def _quantile_edges(low: np.floating, high: np.floating) -> np.ndarray:
    return np.linspace(low - 1e-10, high + 1e-10, QUANTILE_BINS + 1)


def _summary(
    low: np.ndarray,
    high: np.ndarray,
    mean: np.ndarray,
    mean_of_squares: np.ndarray,
    count: int,
    histograms: Sequence[np.ndarray],
    edges: Sequence[np.ndarray],
    total: int,
    quantiles: Sequence[float],
) -> dict[str, np.ndarray]:
    """LeRobot's stats entries from the extrema, the means of the values and of their squares, and
    one histogram per dimension over `total` values."""
    stats = {
        "min": low,
        "max": high,
        "mean": mean,
        "std": np.sqrt(np.maximum(0, mean_of_squares - mean**2)),
        "count": np.array([count]),  # before the quantiles: LeRobot's column order
    }
    cumulatives = [np.cumsum(h) for h in histograms]
    for q in quantiles:
        stats[quantile_key(q)] = np.array(
            [
                histogram_quantile(h, e, q * total, c)
                for h, e, c in zip(histograms, edges, cumulatives, strict=True)
            ]
        )
    return stats


def _rows_stats(rows: np.ndarray, count: int, quantiles: Sequence[float]) -> dict[str, np.ndarray]:
    """Stats over the rows of a 2-D array (one column per dimension); `count` is what is recorded."""
    if rows.shape[0] < 2:
        stats = {
            "min": np.min(rows, axis=0),
            "max": np.max(rows, axis=0),
            "mean": np.mean(rows, axis=0),
            "std": np.std(rows, axis=0),
            "count": np.array([count]),
        }
        stats.update({quantile_key(q): stats["mean"].copy() for q in quantiles})
        return stats
    rows = rows.astype(np.result_type(rows.dtype, np.float32), copy=False)
    low, high = np.min(rows, axis=0), np.max(rows, axis=0)
    edges = [_quantile_edges(low[dim], high[dim]) for dim in range(rows.shape[1])]
    histograms = [
        np.histogram(rows[:, dim], bins=edges[dim])[0].astype(np.float64) for dim in range(rows.shape[1])
    ]
    mean, mean_of_squares = np.mean(rows, axis=0), np.mean(rows**2, axis=0)
    return _summary(low, high, mean, mean_of_squares, count, histograms, edges, rows.shape[0], quantiles)


def _integer_image_stats(sampled: np.ndarray, quantiles: Sequence[float]) -> dict[str, np.ndarray]:
    """_rows_stats over the pixels of 8- or 16-bit images (S, C, H, W), the same numbers from the
    core's channel sums (dexloop/dataset/image_sums.hpp): the means of several channels from float32
    sums accumulated in numpy's order and divided as np.mean divides them, the extrema and
    histograms from the counts of each value (all its occurrences fall in one bin)."""
    frames, channels = sampled.shape[0], sampled.shape[1]
    total = frames * sampled.shape[2] * sampled.shape[3]
    sums, squares, counts = _core.dataset.channel_sums(np.ascontiguousarray(sampled))
    if channels >= 2 and frames >= 2 and sampled.flags.c_contiguous:
        # The float rows are a C-ordered copy, which numpy reduces row after row as the core does;
        # np.mean's own division: in place, by the row count as an intp.
        mean = np.true_divide(sums, np.intp(total), out=sums, casting="unsafe")
        mean_of_squares = np.true_divide(squares, np.intp(total), out=squares, casting="unsafe")
    else:
        # One frame's or one channel's rows keep each channel contiguous, and numpy sums a
        # contiguous run pairwise, not in order: its own means over the float rows.
        rows = sampled.transpose(0, 2, 3, 1).reshape(-1, channels).astype(np.float32)
        mean, mean_of_squares = np.mean(rows, axis=0), np.mean(rows**2, axis=0)
    lowest = int(np.iinfo(sampled.dtype).min)
    low, high = np.empty(channels, np.float32), np.empty(channels, np.float32)
    histograms, edges = [], []
    for channel in range(channels):
        present = np.flatnonzero(counts[channel])
        values = (present + lowest).astype(np.float32)
        low[channel], high[channel] = values[0], values[-1]
        edges.append(_quantile_edges(low[channel], high[channel]))
        weights = counts[channel][present]
        histograms.append(np.histogram(values, bins=edges[-1], weights=weights)[0].astype(np.float64))
    return _summary(low, high, mean, mean_of_squares, frames, histograms, edges, total, quantiles)


def numeric_stats(
    values: np.ndarray, quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> dict[str, np.ndarray]:
    """Stats of one numeric feature over an episode: `values` has one row per frame."""
    values = np.asarray(values)
    frames = values.shape[0]
    if values.ndim == 1:
        stats = _rows_stats(values.reshape(-1, 1), frames, quantiles)
        return {k: v if k == "count" else v.reshape(1) for k, v in stats.items()}
    return _rows_stats(values.reshape(-1, values.shape[-1]), frames, quantiles)


def image_stats(
    sampled: np.ndarray, quantiles: Sequence[float] = DEFAULT_QUANTILES, *, depth: bool = False
) -> dict[str, np.ndarray]:
    """Stats of an image or video feature from its sampled, downsampled frames (S, C, H, W):
    per channel, shaped (C, 1, 1), in [0, 1] for RGB (depth keeps its units)."""
    sampled = np.asarray(sampled)
    frames, channels = sampled.shape[0], sampled.shape[1]
    pixels = frames * sampled.shape[2] * sampled.shape[3]
    if sampled.dtype.kind in "ui" and sampled.dtype.itemsize <= 2 and pixels >= 2:
        stats = _integer_image_stats(sampled, quantiles)
    else:
        stats = _rows_stats(sampled.transpose(0, 2, 3, 1).reshape(-1, channels), frames, quantiles)
    scale = 1.0 if depth else 255.0
    return {k: v if k == "count" else v.reshape(channels, 1, 1) / scale for k, v in stats.items()}


def compute_episode_stats(
    episode_data: Mapping[str, np.ndarray],
    features: Mapping[str, Mapping],
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[str, dict[str, np.ndarray]]:
    """LeRobot's ``compute_episode_stats``: numeric features from their (frames, ...) arrays, image
    and video features from the sampled frames (S, C, H, W) the recorder kept; strings skipped."""
    stats = {}
    for key, data in episode_data.items():
        dtype = features[key]["dtype"]
        if dtype in ("string", "language"):
            continue
        if dtype in ("image", "video"):
            depth = bool((features[key].get("info") or {}).get("is_depth_map", False))
            stats[key] = image_stats(data, quantiles, depth=depth)
        else:
            stats[key] = numeric_stats(data, quantiles)
    return stats
