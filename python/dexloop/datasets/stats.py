"""Dataset statistics: ``meta/stats.json`` and LeRobot's rule for aggregating per-episode stats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.errors import DatasetError

Stats = dict[str, dict[str, np.ndarray]]


def load_stats(path: Path) -> Stats | None:
    """``{feature: {stat: ndarray}}`` from a stats JSON file, or None when the file is absent (as
    LeRobot: stats are optional for loading, required by training normalisation)."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: cannot read statistics ({error})") from error
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected an object of features")
    return stats_from_json(raw, path)


def stats_from_json(raw: dict[str, Any], path: Path | str) -> Stats:
    stats: Stats = {}
    for feature, values in raw.items():
        if not isinstance(values, dict):
            raise DatasetError(f"{path}: statistics of {feature!r} must be an object")
        try:
            stats[feature] = {name: np.atleast_1d(np.array(value)) for name, value in values.items()}
        except (TypeError, ValueError) as error:
            raise DatasetError(
                f"{path}: statistics of {feature!r} are not numeric arrays ({error})"
            ) from error
    return stats


def aggregate_stats(stats_list: list[Stats]) -> Stats:
    """Combines per-episode stats as LeRobot 0.6.1 does: min of mins, max of maxes, count-weighted
    mean, pooled variance, summed counts, count-weighted mean of each quantile present everywhere."""
    keys = {key for stats in stats_list for key in stats}
    return {key: _aggregate_feature([stats[key] for stats in stats_list if key in stats]) for key in keys}


def _aggregate_feature(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    means = np.stack([part["mean"] for part in parts])
    variances = np.stack([part["std"] ** 2 for part in parts])
    counts = np.stack([part["count"] for part in parts])
    total_count = counts.sum(axis=0)
    while counts.ndim < means.ndim:
        counts = np.expand_dims(counts, axis=-1)
    total_mean = (means * counts).sum(axis=0) / total_count
    total_variance = ((variances + (means - total_mean) ** 2) * counts).sum(axis=0) / total_count
    aggregated = {
        "min": np.min(np.stack([part["min"] for part in parts]), axis=0),
        "max": np.max(np.stack([part["max"] for part in parts]), axis=0),
        "mean": total_mean,
        "std": np.sqrt(total_variance),
        "count": total_count,
    }
    for name in parts[0]:
        if name.startswith("q") and name[1:].isdigit() and all(name in part for part in parts):
            aggregated[name] = (np.stack([part[name] for part in parts]) * counts).sum(axis=0) / total_count
    return aggregated
