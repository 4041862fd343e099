"""``visualize_dataset``: an HTML page and a PNG plot per episode of a LeRobot dataset, viewable offline.

Each episode page shows the episode's camera videos next to a plot of every dimension of every
numeric (state, action and other per-frame) feature, with one scrubber over the frame indices:
moving it seeks every video to ``from_timestamp + timestamp`` of that frame (the rule by which the
reader finds a frame, see lerobot-dataset-format §1.5) and moves a cursor over every plot; playing
the videos moves the scrubber and the cursors. Image features stored in the parquet files (dtype
``image``) are shown as a picture that follows the scrubber. An index page links the episodes.

Choices, so that the output folder works opened as plain files with no network and no server:

* Plots are SVG written here, not plotly.js: plotly's bundle is megabytes of JavaScript that every
  page would have to inline (or share, which is no simpler than this), and all a page needs is
  polylines and a cursor. A data-unit ``viewBox`` with ``vector-effect: non-scaling-stroke`` puts
  frame k at x = k, so the cursor is one attribute; the pages stay small and need no dependency.
* Videos are not re-encoded: each mp4 a selected episode lives in is linked (or, across file
  systems, copied) once into ``output_dir/videos/`` under its dataset path, and the pages play their
  ``[from_timestamp, to_timestamp)`` segment of it. Re-encoding clips would cost minutes per episode
  and change the frames; data URIs would inflate shared files by a third in every page. Chromium,
  as Debian builds it, decodes AV1 (LeRobot's default) and H.264; a camera it cannot decode (e.g.
  HEVC depth) shows a message in its place.
* The PNG plots are drawn by matplotlib on a ``Figure`` with the Agg canvas, never through pyplot,
  so no global backend is switched and no figure outlives its episode.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from dexloop.errors import DatasetArgumentError, DatasetError, DatasetIndexError, DatasetNotFoundError

from ..durable import temporary_path, write_bytes_atomically
from ..frame_table import FrameTable
from ..info import DEFAULT_FEATURES, INFO_PATH, TEXT_DTYPES, VISUAL_DTYPES, frame_size
from ..metadata import LeRobotDatasetMetadata

INDEX_PAGE = "index.html"
# matplotlib's "tab10" colours: the same colour for a dimension in the PNG and in the page.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
# Plot geometry in CSS pixels (the SVG scales to the page width).
_PLOT_WIDTH, _PLOT_HEIGHT = 960, 200
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 12, 10, 26


def episode_page_name(episode_index: int) -> str:
    return f"episode_{episode_index:06d}.html"


def episode_plot_name(episode_index: int) -> str:
    return f"episode_{episode_index:06d}.png"


# -- what an episode holds --------------------------------------------------------------------------


@dataclass
class Signal:
    """A numeric feature of an episode, flattened to (frames, dims), with a name per dimension."""

    key: str
    names: list[str]
    values: np.ndarray  # float64 (frames, dims); NaN where a value is not finite


@dataclass
class Camera:
    key: str
    kind: str  # "video" or "image"
    height: int
    width: int
    # video: the dataset file holding the episode and its segment in seconds
    source: Path | None = None
    from_timestamp: float = 0.0
    to_timestamp: float = 0.0
    codec: str | None = None
    # image: the encoded image of each frame (PNG as LeRobot stores them)
    images: list[bytes] = field(default_factory=list)


@dataclass
class EpisodeData:
    index: int
    fps: int
    timestamps: np.ndarray  # episode-relative seconds per frame
    tasks: list[str]
    signals: list[Signal]
    cameras: list[Camera]

    @property
    def length(self) -> int:
        return len(self.timestamps)


def signal_names(key: str, feature: dict) -> list[str]:
    """A name per flattened dimension of a numeric feature: its ``names`` when info.json lists one
    per dimension (as a list, or a dict holding one such list, LeRobot's older ``{"motors": [...]}``),
    else ``key[i]`` (``key[i,j]`` for features of more dimensions)."""
    shape = tuple(int(n) for n in feature["shape"])
    size = math.prod(shape)
    names = feature.get("names")
    if isinstance(names, dict):
        lists = [value for value in names.values() if isinstance(value, (list, tuple))]
        names = lists[0] if len(lists) == 1 else None
    if isinstance(names, (list, tuple)) and len(names) == size and all(isinstance(n, str) for n in names):
        return list(names)
    if len(shape) <= 1:
        return [f"{key}[{i}]" for i in range(size)]
    return [f"{key}[{','.join(str(i) for i in index)}]" for index in np.ndindex(*shape)]


def signal_keys(features: dict[str, dict]) -> list[str]:
    """The features plotted: every numeric per-frame feature but LeRobot's bookkeeping columns
    (timestamp, frame_index, episode_index, index, task_index)."""
    return [
        key
        for key, feature in features.items()
        if key not in DEFAULT_FEATURES and feature["dtype"] not in (*VISUAL_DTYPES, *TEXT_DTYPES)
    ]


def open_metadata(dataset_or_root: Any) -> LeRobotDatasetMetadata:
    """The metadata of a ``LeRobotDataset``, a ``LeRobotDatasetMetadata`` or a dataset folder."""
    if isinstance(dataset_or_root, LeRobotDatasetMetadata):
        return dataset_or_root
    meta = getattr(dataset_or_root, "meta", None)
    if isinstance(meta, LeRobotDatasetMetadata):
        return meta
    if not isinstance(dataset_or_root, (str, os.PathLike)):
        raise DatasetArgumentError(
            f"expected a LeRobotDataset, a LeRobotDatasetMetadata or a dataset folder, got {dataset_or_root!r}"
        )
    root = Path(dataset_or_root)
    if not (root / INFO_PATH).is_file():
        # Checked here: the metadata class would take a missing folder for one to download.
        raise DatasetNotFoundError(f"{root}: holds no LeRobot dataset (no {INFO_PATH})")
    return LeRobotDatasetMetadata(root.name, root=root)


def _selected_episodes(meta: LeRobotDatasetMetadata, episodes: Iterable[int] | None) -> list[int]:
    total = len(meta.episodes) if meta.episodes is not None else 0
    if episodes is None:
        if total == 0:
            raise DatasetError(f"{meta.root}: the dataset has no episodes")
        return list(range(total))
    selected = []
    for episode in episodes:
        if isinstance(episode, (bool, np.bool_)) or not isinstance(episode, (int, np.integer)):
            raise DatasetArgumentError(f"episode indices must be integers, got {episode!r}")
        if not 0 <= int(episode) < total:
            raise DatasetIndexError(
                f"{meta.root}: episode {int(episode)} is out of range for {total} episodes"
            )
        selected.append(int(episode))
    if not selected:
        raise DatasetArgumentError("no episodes selected (an empty episode list)")
    return sorted(set(selected))


def read_episode(meta: LeRobotDatasetMetadata, episode_index: int) -> EpisodeData:
    """An episode's frames: timestamps, numeric features flattened per dimension, and where its
    camera frames are (video segments, or the encoded images of image features)."""
    row = meta._episode_row(episode_index)
    length = int(row["dataset_to_index"]) - int(row["dataset_from_index"])
    data_file = meta.root / meta.get_data_file_path(episode_index)
    table = FrameTable(meta.features, [data_file], [episode_index])
    if table.num_rows != length:
        raise DatasetError(
            f"{data_file}: holds {table.num_rows} rows of episode {episode_index}, but meta/episodes "
            f"gives it {length} frames (dataset_from_index..dataset_to_index)"
        )
    frame_index = table.numeric.get("frame_index")
    if frame_index is not None and not np.array_equal(frame_index, np.arange(length)):
        raise DatasetError(
            f"{data_file}: the rows of episode {episode_index} do not run frame_index 0..{length - 1}"
        )
    if "timestamp" in table.numeric:
        timestamps = table.numeric["timestamp"].astype(np.float64)
    else:
        timestamps = np.arange(length) / meta.fps
    signals = []
    for key in signal_keys(meta.features):
        if key not in table.numeric:
            continue
        values = table.numeric[key].reshape(length, -1).astype(np.float64)
        values[~np.isfinite(values)] = np.nan
        signals.append(Signal(key, signal_names(key, meta.features[key]), values))
    cameras = []
    for key in meta.camera_keys:
        feature = meta.features[key]
        height, width = frame_size(feature)
        if feature["dtype"] == "video":
            source = meta.root / meta.get_video_file_path(episode_index, key)
            if not source.is_file():
                raise DatasetError(
                    f"{source}: the video of camera {key!r} for episode {episode_index} is missing"
                )
            start = float(row[f"videos/{key}/from_timestamp"])
            end = row.get(f"videos/{key}/to_timestamp")
            info = feature.get("info") or feature.get("video_info") or {}
            cameras.append(
                Camera(
                    key,
                    "video",
                    height,
                    width,
                    source=source,
                    from_timestamp=start,
                    to_timestamp=float(end) if end is not None else start + length / meta.fps,
                    codec=info.get("video.codec"),
                )
            )
        else:
            images = []
            for frame, value in enumerate(table.images[key].to_pylist()):
                data = value.get("bytes") if isinstance(value, dict) else None
                if not data:
                    raise DatasetError(
                        f"{data_file}: image feature {key!r} of episode {episode_index} frame {frame} holds "
                        "no image bytes"
                    )
                images.append(data)
            cameras.append(Camera(key, "image", height, width, images=images))
    tasks = [str(task) for task in row.get("tasks") or []]
    return EpisodeData(episode_index, meta.fps, timestamps, tasks, signals, cameras)


# -- PNG plots --------------------------------------------------------------------------------------


def plot_episode(episode: EpisodeData) -> Any:
    """A matplotlib ``Figure`` with one subplot per numeric feature, one line per dimension
    (labelled by its name), over the frame index. None when the episode has no numeric feature."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "PNG plots need matplotlib: pip install 'dexloop[viz]' (or pass png=False)"
        ) from error
    if not episode.signals:
        return None
    figure = Figure(figsize=(11, 2.6 * len(episode.signals) + 0.6), layout="constrained")
    axes = figure.subplots(len(episode.signals), 1, sharex=True, squeeze=False)[:, 0]
    frames = np.arange(episode.length)
    for ax, signal in zip(axes, episode.signals, strict=True):
        for dim, name in enumerate(signal.names):
            ax.plot(
                frames, signal.values[:, dim], label=name, color=PALETTE[dim % len(PALETTE)], linewidth=1.2
            )
        ax.set_title(signal.key, loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
        if len(signal.names) <= 24:  # beyond that a legend hides the plot
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[-1].set_xlabel("frame")
    tasks = "; ".join(episode.tasks)
    figure.suptitle(
        f"episode {episode.index} ({episode.length} frames at {episode.fps} fps){': ' + tasks if tasks else ''}"
    )
    return figure


def _save_figure(figure: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    temporary = temporary_path(path)
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# -- SVG plots --------------------------------------------------------------------------------------


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    span = high - low
    if not span > 0:
        return [low]
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def _format(value: float) -> str:
    return f"{value:.6g}"


def _value_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -1.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1e-12 * max(1.0, abs(low)):
        pad = max(abs(low) * 0.1, 0.5)
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _polylines(values: np.ndarray) -> list[str]:
    """Points "x,-y" (frame index, negated value: SVG's y grows downwards) of each run of finite
    values; a non-finite value breaks the line."""
    runs, current = [], []
    for frame, value in enumerate(values):
        if np.isfinite(value):
            current.append(f"{frame},{_format(-float(value))}")
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    # A one-point run draws nothing; a zero-length segment with round caps shows it as a dot.
    return [" ".join(run if len(run) > 1 else run * 2) for run in runs]


def _svg_plot(signal: Signal, length: int) -> str:
    low, high = _value_range(signal.values)
    x_end = max(length - 1, 1)
    inner_width = _PLOT_WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    inner_height = _PLOT_HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM

    def px(frame: float) -> float:
        return _MARGIN_LEFT + frame / x_end * inner_width

    def py(value: float) -> float:
        return _MARGIN_TOP + (high - value) / (high - low) * inner_height

    parts = [
        f'<svg class="plot" data-feature="{html.escape(signal.key)}" viewBox="0 0 {_PLOT_WIDTH} {_PLOT_HEIGHT}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{html.escape(signal.key)}">',
        f'<rect class="frame" x="{_MARGIN_LEFT}" y="{_MARGIN_TOP}" width="{inner_width}" height="{inner_height}"/>',
    ]
    for tick in _nice_ticks(low, high):
        y = py(tick)
        parts.append(
            f'<line class="grid" x1="{_MARGIN_LEFT}" x2="{_PLOT_WIDTH - _MARGIN_RIGHT}" y1="{y:.2f}" y2="{y:.2f}"/>'
            f'<text class="tick" x="{_MARGIN_LEFT - 6}" y="{y + 4:.2f}" text-anchor="end">{_format(tick)}</text>'
        )
    for tick in _nice_ticks(0, length - 1 if length > 1 else 1):
        if tick != int(tick) or tick > length - 1:
            continue
        x = px(tick)
        parts.append(
            f'<text class="tick" x="{x:.2f}" y="{_PLOT_HEIGHT - 8}" text-anchor="middle">{int(tick)}</text>'
        )
    # The data area: one user unit per frame along x and per value along y (negated), stretched to
    # the box; strokes keep their width whatever the stretch.
    parts.append(
        f'<svg class="data" x="{_MARGIN_LEFT}" y="{_MARGIN_TOP}" width="{inner_width}" height="{inner_height}" '
        f'viewBox="0 {_format(-high)} {x_end} {_format(high - low)}" preserveAspectRatio="none" overflow="hidden">'
    )
    for dim, name in enumerate(signal.names):
        color = PALETTE[dim % len(PALETTE)]
        for points in _polylines(signal.values[:, dim]):
            parts.append(
                f'<polyline class="trace" data-dim="{dim}" data-name="{html.escape(name)}" stroke="{color}" '
                f'points="{points}"/>'
            )
    parts.append(
        f'<line class="cursor" x1="0" x2="0" y1="{_format(-high)}" y2="{_format(-low)}"/></svg></svg>'
    )
    legend = "".join(
        f'<span class="entry"><span class="swatch" style="background:{PALETTE[dim % len(PALETTE)]}"></span>'
        f'{html.escape(name)} <span class="value" data-dim="{dim}"></span></span>'
        for dim, name in enumerate(signal.names)
    )
    return (
        f'<section class="signal" data-feature="{html.escape(signal.key)}"><h3>{html.escape(signal.key)}</h3>'
        f'{"".join(parts)}<div class="legend">{legend}</div></section>'
    )


# -- pages ------------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
nav a { margin-right: 12px; }
.cameras { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.camera { margin: 0; }
.camera figcaption { font-size: 12px; color: #555; overflow-wrap: anywhere; }
.camera video, .camera img { display: block; min-width: 160px; background: #000; image-rendering: pixelated; }
.camera .error { color: #b00; font-size: 12px; max-width: 320px; }
.controls { position: sticky; top: 0; background: #fff; padding: 8px 0; display: flex; gap: 12px;
  align-items: center; z-index: 1; border-bottom: 1px solid #ddd; }
.controls input[type=range] { flex: 1; }
.signal h3 { margin: 14px 0 2px; font-size: 14px; }
.plot .frame { fill: none; stroke: #999; }
.plot .grid { stroke: #eee; }
.plot .tick { font-size: 11px; fill: #555; }
.plot .trace { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; stroke-linecap: round; }
.plot .cursor { stroke: #000; stroke-width: 1; vector-effect: non-scaling-stroke; }
.legend { font-size: 12px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.value { font-variant-numeric: tabular-nums; color: #555; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
"""

# The page's behaviour. Frame k of the episode is at from_timestamp + timestamps[k] in each video.
# Seeks land a tenth of a frame past that time: Chromium turns seconds into whole microseconds by
# truncation, and a time a hair before a frame's timestamp would show the frame before it.
_SCRIPT = r"""
"use strict";
const E = JSON.parse(document.getElementById("episode-data").textContent);
const scrubber = document.getElementById("scrubber");
const label = document.getElementById("frame-label");
const playButton = document.getElementById("play");
const videos = Array.from(document.querySelectorAll("video.camera-video"));
const images = Array.from(document.querySelectorAll("img.camera-image"));
const cursors = Array.from(document.querySelectorAll("line.cursor"));
const readouts = Array.from(document.querySelectorAll(".signal")).map((section) => ({
  values: E.signals[section.dataset.feature],
  spans: Array.from(section.querySelectorAll(".value")),
}));
const nudge = 0.1 / E.fps;
let frame = 0;
let playing = false;
let timer = null;

function clamp(k) { return Math.max(0, Math.min(E.length - 1, k)); }
function videoTime(video, k) { return Number(video.dataset.from) + E.timestamps[k] + nudge; }
function frameAt(video, seconds, exact) {
  const position = (seconds - Number(video.dataset.from)) * E.fps;
  return clamp(exact ? Math.round(position) : Math.floor(position + 1e-6));
}

// Shows frame k everywhere; seeks the videos too unless they are what moved (playback).
function show(k, seek) {
  frame = clamp(k);
  scrubber.value = String(frame);
  label.textContent = `frame ${frame} / ${E.length - 1}   t = ${E.timestamps[frame].toFixed(3)} s`;
  for (const line of cursors) { line.setAttribute("x1", frame); line.setAttribute("x2", frame); }
  for (const image of images) { image.src = E.images[image.dataset.key][frame]; }
  for (const { values, spans } of readouts) {
    spans.forEach((span, dim) => {
      const value = values[frame][dim];
      span.textContent = value === null ? "–" : Number(value.toPrecision(6)).toString();
    });
  }
  if (seek) { for (const video of videos) { video.currentTime = videoTime(video, frame); } }
  document.body.dataset.frame = String(frame);
}

function stop() {
  playing = false;
  playButton.textContent = "Play";
  for (const video of videos) { video.pause(); }
  if (timer !== null) { clearInterval(timer); timer = null; }
}

function onPlaybackFrame(k) {
  if (!playing) { return; }
  // Past the episode's end the file holds the next episode: stop on the last frame, seeking back
  // to it since the video may have moved on before it paused.
  if (k >= E.length - 1) { stop(); show(E.length - 1, true); return; }
  show(k, false);
  // The other cameras follow the first; one drifting by more than a frame is put back.
  for (const video of videos.slice(1)) {
    if (Math.abs(video.currentTime - videoTime(video, k)) > 1.0 / E.fps) { video.currentTime = videoTime(video, k); }
  }
}

function play() {
  if (playing) { return; }
  if (frame >= E.length - 1) { show(0, true); }
  playing = true;
  playButton.textContent = "Pause";
  if (videos.length === 0) {
    timer = setInterval(() => onPlaybackFrame(frame + 1), 1000 / E.fps);
    return;
  }
  for (const video of videos) {
    video.currentTime = videoTime(video, frame);
    video.play().catch(() => stop());
  }
  const lead = videos[0];
  if ("requestVideoFrameCallback" in lead) {
    const onFrame = (now, metadata) => {
      if (!playing) { return; }
      onPlaybackFrame(frameAt(lead, metadata.mediaTime, true));
      lead.requestVideoFrameCallback(onFrame);
    };
    lead.requestVideoFrameCallback(onFrame);
  } else {
    lead.addEventListener("timeupdate", function update() {
      if (!playing) { lead.removeEventListener("timeupdate", update); return; }
      onPlaybackFrame(frameAt(lead, lead.currentTime, false));
    });
  }
}

for (const video of videos) {
  video.addEventListener("loadedmetadata", () => { if (!playing) { video.currentTime = videoTime(video, frame); } });
  video.addEventListener("error", () => {
    const message = video.parentElement.querySelector(".error");
    message.hidden = false;
    message.textContent = `This browser cannot play ${video.dataset.src} (codec ${video.dataset.codec || "unknown"}).`;
  });
}
scrubber.addEventListener("input", () => { stop(); show(Number(scrubber.value), true); });
playButton.addEventListener("click", () => (playing ? stop() : play()));
document.addEventListener("keydown", (event) => {
  if (event.target === scrubber) { return; }
  if (event.key === " ") { event.preventDefault(); playing ? stop() : play(); }
  if (event.key === "ArrowRight") { stop(); show(frame + 1, true); }
  if (event.key === "ArrowLeft") { stop(); show(frame - 1, true); }
});
// The page's API, for scripts and tests: the frame shown, and a way to show another.
window.episodeViewer = { show: (k) => { stop(); show(k, true); }, play, stop, get frame() { return frame; } };
show(0, true);
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no "</" to end it early)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _url(path: str) -> str:
    return quote(path, safe="/")


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


def _image_suffix(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def _write_file(path: Path, data: bytes) -> None:
    """Written under a temporary name and renamed: a page never refers to half a file. Not flushed
    to disk one by one like the dataset's files (thousands of images; they can be made again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _place_video(source: Path, target: Path) -> None:
    """``target`` becomes the dataset's video file: a hard link (no copy, and the dataset's tools
    never rewrite a file in place), or a copy across file systems. Done once per file and run."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(source, target):
        return
    temporary = temporary_path(target)
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _episode_page(
    meta: LeRobotDatasetMetadata,
    episode: EpisodeData,
    videos: dict[str, str],
    images: dict[str, list[str]],
    neighbours: tuple[int | None, int | None],
    has_png: bool,
) -> str:
    title = f"{meta.repo_id} — episode {episode.index}"
    nav = [f'<a href="{INDEX_PAGE}">all episodes</a>']
    previous, following = neighbours
    if previous is not None:
        nav.append(f'<a href="{episode_page_name(previous)}" rel="prev">← episode {previous}</a>')
    if following is not None:
        nav.append(f'<a href="{episode_page_name(following)}" rel="next">episode {following} →</a>')
    if has_png:
        nav.append(f'<a href="{episode_plot_name(episode.index)}">PNG plot</a>')
    cameras = []
    for camera in episode.cameras:
        # Small cameras are shown enlarged (pixelated) to at least 160 px wide.
        shown = max(camera.width, 160)
        caption = f"{html.escape(camera.key)} ({camera.width}×{camera.height})"
        if camera.kind == "video":
            source = videos[camera.key]
            cameras.append(
                f'<figure class="camera" style="max-width:{max(shown, 240)}px"><video class="camera-video" data-key="{html.escape(camera.key)}" '
                f'src="{html.escape(_url(source))}" data-src="{html.escape(source)}" '
                f'data-from="{camera.from_timestamp!r}" data-to="{camera.to_timestamp!r}" '
                f'data-codec="{html.escape(camera.codec or "")}" width="{shown}" muted '
                f'playsinline preload="auto"></video><p class="error" hidden></p>'
                f"<figcaption>{caption}, {html.escape(camera.codec or 'video')}, "
                f"{camera.from_timestamp:.3f}–{camera.to_timestamp:.3f} s of {html.escape(source)}</figcaption></figure>"
            )
        else:
            cameras.append(
                f'<figure class="camera" style="max-width:{max(shown, 240)}px"><img class="camera-image" data-key="{html.escape(camera.key)}" '
                f'src="{html.escape(images[camera.key][0])}" width="{shown}" alt="{html.escape(camera.key)}">'
                f"<figcaption>{caption}, image</figcaption></figure>"
            )
    data = {
        "episode": episode.index,
        "fps": episode.fps,
        "length": episode.length,
        "timestamps": [float(t) for t in episode.timestamps],
        "signals": {
            signal.key: [[None if math.isnan(v) else v for v in row] for row in signal.values.tolist()]
            for signal in episode.signals
        },
        "images": images,
    }
    plots = "".join(_svg_plot(signal, episode.length) for signal in episode.signals)
    tasks = ", ".join(html.escape(task) for task in episode.tasks) or "–"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<nav>{"".join(nav)}</nav>
<h1>{html.escape(title)}</h1>
<p>{episode.length} frames at {episode.fps} fps ({episode.length / episode.fps:.2f} s). Tasks: {tasks}</p>
<div class="cameras">{"".join(cameras) or "<p>No cameras.</p>"}</div>
<div class="controls"><button id="play" type="button">Play</button>
<input id="scrubber" type="range" min="0" max="{episode.length - 1}" step="1" value="0" aria-label="frame">
<span id="frame-label"></span></div>
<div class="plots">{plots or "<p>No numeric features.</p>"}</div>
<script type="application/json" id="episode-data">{_script_json(data)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def _index_page(meta: LeRobotDatasetMetadata, rows: list[tuple[EpisodeData, bool]]) -> str:
    title = f"{meta.repo_id} — {meta.total_episodes} episodes, {meta.total_frames} frames at {meta.fps} fps"
    features = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(feature['dtype']))}</td>"
        f"<td>{html.escape(str(list(feature['shape'])))}</td></tr>"
        for key, feature in meta.features.items()
    )
    episodes = "".join(
        f'<tr><td><a href="{episode_page_name(episode.index)}">episode {episode.index}</a></td>'
        f"<td>{episode.length}</td><td>{episode.length / episode.fps:.2f} s</td>"
        f"<td>{html.escape(', '.join(episode.tasks))}</td>"
        f"<td>{f'<a href={chr(34)}{episode_plot_name(episode.index)}{chr(34)}>PNG</a>' if has_png else ''}</td></tr>"
        for episode, has_png in rows
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(meta.repo_id)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Dataset {html.escape(str(meta.root))}, codebase_version {html.escape(meta.info.codebase_version)},
robot_type {html.escape(str(meta.robot_type))}.</p>
<h2>Episodes</h2>
<table><tr><th>episode</th><th>frames</th><th>duration</th><th>tasks</th><th>plot</th></tr>{episodes}</table>
<h2>Features</h2>
<table><tr><th>feature</th><th>dtype</th><th>shape</th></tr>{features}</table>
</body></html>
"""


def _check_output_dir(meta: LeRobotDatasetMetadata, output_dir: Path) -> Path:
    output_dir = Path(output_dir)
    root = meta.root.resolve()
    resolved = output_dir.resolve()
    if resolved == root or root in resolved.parents:
        # The pages' videos/ folder would land on the dataset's own.
        raise DatasetArgumentError(
            f"output_dir {output_dir} is inside the dataset {meta.root}; choose another folder"
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise DatasetArgumentError(f"output_dir {output_dir} exists and is not a folder")
    return output_dir


def visualize_dataset(
    dataset_or_root: Any,
    episodes: Sequence[int] | None = None,
    *,
    output_dir: str | Path,
    png: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Writes ``episode_XXXXXX.html`` (and, with ``png``, ``episode_XXXXXX.png``) for each of
    ``episodes`` (default: all, or those a ``LeRobotDataset`` was opened with) and ``index.html``
    linking them into ``output_dir``, which may exist (its pages are replaced) but must not lie
    inside the dataset. Returns the episode pages' paths, in episode order.

    The folder is self-contained: the videos the pages play are linked or copied into its
    ``videos/`` and image features' frames written to ``images/``, so it can be moved or opened
    with no network. Progress goes to stderr (``progress=False`` silences it).
    """
    meta = open_metadata(dataset_or_root)
    if (
        episodes is None
        and getattr(dataset_or_root, "episodes", None) is not None
        and not isinstance(dataset_or_root, LeRobotDatasetMetadata)
    ):
        episodes = list(dataset_or_root.episodes)
    selected = _selected_episodes(meta, episodes)
    output_dir = _check_output_dir(meta, Path(output_dir))
    if png:
        try:
            import matplotlib  # noqa: F401  - fail before anything is written
        except ImportError as error:
            raise ImportError(
                "PNG plots need matplotlib: pip install 'dexloop[viz]' (or png=False)"
            ) from error
    from tqdm import tqdm

    output_dir.mkdir(parents=True, exist_ok=True)
    placed: set[Path] = set()
    pages: list[Path] = []
    rows: list[tuple[EpisodeData, bool]] = []
    bar = tqdm(selected, desc="visualize", unit="episode", file=sys.stderr, disable=not progress)
    for position, episode_index in enumerate(bar):
        episode = read_episode(meta, episode_index)
        videos: dict[str, str] = {}
        images: dict[str, list[str]] = {}
        for camera in episode.cameras:
            if camera.kind == "video":
                assert camera.source is not None
                relative = camera.source.relative_to(meta.root).as_posix()
                target = output_dir / relative
                if target not in placed:
                    _place_video(camera.source, target)
                    placed.add(target)
                videos[camera.key] = relative
            else:
                folder = f"images/{_safe_name(camera.key)}/episode_{episode_index:06d}"
                names = []
                for frame, data in enumerate(camera.images):
                    name = f"{folder}/frame_{frame:06d}{_image_suffix(data)}"
                    _write_file(output_dir / name, data)
                    names.append(_url(name))
                images[camera.key] = names
        has_png = False
        if png:
            figure = plot_episode(episode)
            if figure is not None:
                _save_figure(figure, output_dir / episode_plot_name(episode_index))
                has_png = True
        neighbours = (
            selected[position - 1] if position > 0 else None,
            selected[position + 1] if position + 1 < len(selected) else None,
        )
        page = output_dir / episode_page_name(episode_index)
        write_bytes_atomically(
            page, _episode_page(meta, episode, videos, images, neighbours, has_png).encode()
        )
        pages.append(page)
        rows.append((_summary(episode), has_png))
    write_bytes_atomically(output_dir / INDEX_PAGE, _index_page(meta, rows).encode())
    return pages


def _summary(episode: EpisodeData) -> EpisodeData:
    """The episode without its frames, kept for the index page."""
    return EpisodeData(episode.index, episode.fps, episode.timestamps, episode.tasks, [], [])
