"""Training-time data loading: dexloop's LeRobotDataset against its limits and against LeRobot.

On a dataset it generates (12 episodes x 200 frames at 30 fps, two AV1 cameras 320x240 encoded with
LeRobot's defaults: libsvtav1, g=2, crf=30, preset 12; camera-like content: a textured scene that pans,
a moving object, sensor noise), it measures samples/s through torch's DataLoader, batch 32, shuffled,
``return_uint8=True`` (as lerobot-train loads), for two queries:

* ACT-style: a 100-step action chunk, the state and both cameras at the current frame;
* Diffusion-style: 2 observation steps of state and both cameras, 16 actions (steps -1..14).

In the same run it measures the baselines the ratios are printed against:

* the decode-bound limit: FFmpeg decoding only the frames those very batches need (a plain FFmpeg loop
  with no colour conversion and no output, on as many threads as dexloop uses, files already open);
* the same reader with the cross-checks of its batch path bypassed (ChecksBypassed), in alternating
  rounds: their cost is the ratio checked / bypassed;
* LeRobot 0.6.1's own LeRobotDataset (torchcodec backend) at num_workers 0 and 2 (spawned workers,
  prefetch 4, persistent, as lerobot-train sets them), when ``lerobot`` is importable in this Python.
  The environment of shared/tools/lerobot-peer.sh has it: install dexloop there too
  (``/tmp/lerobot-peer/bin/pip install --no-build-isolation -e .``) and run this script with it.

    python bench/bench_dataset.py                    # prints the table, writes bench/results/
    python bench/bench_dataset.py --batches 60 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the synthetic LeRobot dataset writer lives with the tests

from dexloop import _core  # noqa: E402
from dexloop.datasets import LeRobotDataset  # noqa: E402

import camera_frames  # noqa: E402
from host import host_metadata  # noqa: E402
from synth import CameraSpec, write_v3_dataset  # noqa: E402

FPS = 30
EPISODES = 12
EPISODE_LENGTH = 200
HEIGHT, WIDTH = 240, 320
CAMERAS = ("observation.images.front", "observation.images.wrist")
BATCH = 32


def camera_like_frame(episode: int, frame: int, height: int, width: int) -> np.ndarray:
    return camera_frames.camera_like_frame(episode, frame, height, width, pan_frames=2 * EPISODE_LENGTH)


def ensure_dataset(folder: Path) -> Path:
    root = folder / f"act_dp_{EPISODES}x{EPISODE_LENGTH}_{WIDTH}x{HEIGHT}_av1_v1"
    if (root / "meta/info.json").exists():
        return root
    print(f"generating the benchmark dataset in {root} (about a minute) ...", flush=True)
    write_v3_dataset(
        root,
        fps=FPS,
        episode_lengths=[EPISODE_LENGTH] * EPISODES,
        cameras={key: CameraSpec(HEIGHT, WIDTH) for key in CAMERAS},
        paint=camera_like_frame,
    )
    return root


QUERIES = {
    "act": {"action": [k / FPS for k in range(100)]},
    "diffusion": {
        "observation.state": [-1 / FPS, 0.0],
        **{camera: [-1 / FPS, 0.0] for camera in CAMERAS},
        "action": [k / FPS for k in range(-1, 15)],
    },
}


class FixedOrder(torch.utils.data.Sampler):
    """The same shuffled order for every loader measured."""

    def __init__(self, order: np.ndarray):
        self.order = [int(i) for i in order]

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def measure(make_dataset: Callable, order: np.ndarray, workers: int, warmup: int, batches: int) -> dict:
    """samples/s over `batches` batches once `warmup` batches (worker start-up, decoder caches) have
    passed. The loader runs to its natural end, so no worker is stopped with batches in flight."""
    dataset = make_dataset()
    options = {}
    if workers:
        options = dict(multiprocessing_context="spawn", prefetch_factor=4, persistent_workers=True)
    sampler = FixedOrder(order[: (warmup + batches) * BATCH])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, sampler=sampler, num_workers=workers, **options
    )
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    timed = 0
    for batch in iterator:
        assert batch["action"].shape[0] == BATCH
        timed += 1
    elapsed = time.perf_counter() - start
    assert timed == batches
    del iterator, loader
    return {"samples_per_s": BATCH * batches / elapsed, "seconds": elapsed, "batches": batches}


def frames_needed(
    dataset: LeRobotDataset, rows: np.ndarray, query: dict
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(files, file index, timestamp) of every camera frame the items at `rows` need, by LeRobot's
    rule (window rows clamped to the episode; time = from_timestamp + the row's parquet timestamp)."""
    meta = dataset.meta
    from_index = np.asarray(meta.episodes["dataset_from_index"])
    to_index = np.asarray(meta.episodes["dataset_to_index"])
    timestamp = dataset._table.numeric["timestamp"]  # the parquet column the loader reads
    episode = dataset._table.numeric["episode_index"][rows]
    files: list[str] = []
    file_index, times = [], []
    for camera in CAMERAS:
        offsets = np.round(np.asarray(query.get(camera, [0.0])) * FPS).astype(int)
        window = np.clip(
            rows[:, None] + offsets[None, :], from_index[episode][:, None], to_index[episode][:, None] - 1
        )
        start = np.asarray(meta.episodes[f"videos/{camera}/from_timestamp"])[episode]
        for ep, row_window, offset in zip(episode, window, start, strict=True):
            path = str(dataset.root / meta.get_video_file_path(int(ep), camera))
            if path not in files:
                files.append(path)
            for row in row_window:
                file_index.append(files.index(path))
                times.append(offset + float(timestamp[row]))
    return files, np.asarray(file_index, dtype=np.int32), np.asarray(times)


def decode_bound(
    dataset: LeRobotDataset, order: np.ndarray, query: dict, skip: int, batches: int, threads: int
) -> dict:
    seconds, frames = 0.0, 0
    for b in range(skip, skip + batches):
        rows = order[b * BATCH : (b + 1) * BATCH]
        files, file_index, times = frames_needed(dataset, rows, query)
        decoded, elapsed = _core.video.decode_frames_only(files, file_index, times, threads)
        seconds += elapsed
        frames += decoded
    return {"samples_per_s": BATCH * batches / seconds, "seconds": seconds, "frames_decoded": frames}


class _TimedPool:
    """Stands in for the dataset's DecoderPool, timing its (native, GIL-free) decode calls, which
    cProfile cannot see into."""

    def __init__(self, pool):
        self.pool = pool
        self.seconds = 0.0

    def decode(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.pool.decode(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def profile_batches(dataset: LeRobotDataset, order: np.ndarray, batches: int) -> dict:
    """Where the time of the batch path (``__getitems__`` and the DataLoader's collate) goes: the
    share spent in C++ decoding, and the Python functions with the most self time."""
    collate = torch.utils.data.default_collate
    collate(dataset.__getitems__(order[:BATCH].tolist()))  # warm: decoders open, buffers mapped
    timed = _TimedPool(dataset._decoder_pool())
    dataset._pool = timed
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for b in range(1, batches + 1):
        collate(dataset.__getitems__(order[b * BATCH : (b + 1) * BATCH].tolist()))
    profiler.disable()
    wall = time.perf_counter() - start
    dataset._pool = timed.pool
    stats = pstats.Stats(profiler)
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:8]
    return {
        "wall_s": wall,
        "native_decode_s": timed.seconds,
        "native_decode_share": timed.seconds / wall,
        "top_self_time": [
            {"function": f"{func[0]}:{func[1]}({func[2]})", "self_s": row[2]} for func, row in top
        ],
    }


class ChecksBypassed(LeRobotDataset):
    """The reader with the cross-checks of its batch path bypassed (index validation, the check of
    each video file against the metadata on first use): the baseline for what those checks cost. The
    decoder's damage flags are read in C++ with each frame; they are covered by the decode-bound
    limit, which reads none of them."""

    def _rows(self, indices):
        rows = np.asarray(indices, dtype=np.int64)
        return np.where(rows < 0, rows + len(self), rows)

    def _check_video_file(self, file: int) -> None:
        pass


def cross_check_cost(
    make_checked: Callable, make_bypassed: Callable, order: np.ndarray, warmup: int, batches: int, rounds: int
) -> dict:
    """samples/s of the batch path (0 workers) with and without the cross-checks, measured in
    alternation so that a change in the machine's load hits both alike; medians over `rounds`."""
    runs: dict[str, list[float]] = {"checked": [], "bypassed": []}
    for _ in range(rounds):
        for name, make in (("checked", make_checked), ("bypassed", make_bypassed)):
            runs[name].append(measure(make, order, 0, warmup, batches)["samples_per_s"])
    checked, bypassed = (float(np.median(runs[name])) for name in ("checked", "bypassed"))
    spread = max(np.ptp(values) / np.median(values) for values in runs.values())
    return {
        "checked_samples_per_s": checked,
        "bypassed_samples_per_s": bypassed,
        "checked_over_bypassed": checked / bypassed,
        "round_to_round_spread": float(spread),
        "runs": runs,
    }


def lerobot_factory(root: Path, query: dict) -> Callable | None:
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset as LeRobotReference
    except ImportError as error:
        print(f"LeRobot is not importable here ({error}); measuring dexloop alone", flush=True)
        return None

    def make():
        return LeRobotReference("bench/act_dp", root=root, delta_timestamps=query, return_uint8=True)

    return make


def system_metadata() -> dict:
    meta = {**host_metadata(), "torch": torch.__version__}
    try:
        import lerobot
        import torchcodec

        meta["lerobot"] = lerobot.__version__
        meta["torchcodec"] = torchcodec.__version__
    except ImportError:
        pass
    meta["ffmpeg"] = _core.video.ffmpeg_version()
    return meta


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["queries"])
    queries = [results["queries"][label] for label in labels]
    series = [
        ("dexloop, 0 workers", lambda q: q["dexloop"]["workers_0"]["samples_per_s"]),
        ("dexloop, 2 workers", lambda q: q["dexloop"].get("workers_2", {}).get("samples_per_s")),
        (
            "LeRobot 0.6.1, 0 workers",
            lambda q: q.get("lerobot", {}).get("workers_0", {}).get("samples_per_s"),
        ),
        (
            "LeRobot 0.6.1, 2 workers",
            lambda q: q.get("lerobot", {}).get("workers_2", {}).get("samples_per_s"),
        ),
        ("decode-bound limit", lambda q: q["decode_bound"]["samples_per_s"]),
    ]
    figure, (axis, checks_axis) = plt.subplots(1, 2, figsize=(11, 4.5), width_ratios=[2.2, 1])
    width = 0.16
    for number, (name, get) in enumerate(series):
        values = [get(q) or 0 for q in queries]
        bars = axis.bar(
            np.arange(len(labels)) + (number - (len(series) - 1) / 2) * width, values, width, label=name
        )
        axis.bar_label(bars, fmt="%.0f", fontsize=7)
    axis.set_xticks(np.arange(len(labels)), [f"{label}-style query" for label in labels])
    axis.set_ylabel("samples / s (batch 32, shuffled)")
    system = results["system"]
    axis.set_title(
        f"LeRobot dataset loading, 2 AV1 cameras 320x240 ({system['cpu']}, {system['cores']} cores)",
        fontsize=10,
    )
    axis.legend(fontsize=8)
    # The cost of the cross-checks: medians of the alternating rounds, whiskers to the extremes.
    width = 0.35
    for number, name in enumerate(("checked", "bypassed")):
        runs = [q["cross_checks"]["runs"][name] for q in queries]
        medians = [float(np.median(r)) for r in runs]
        whiskers = [
            [m - min(r) for m, r in zip(medians, runs, strict=True)],
            [max(r) - m for m, r in zip(medians, runs, strict=True)],
        ]
        bars = checks_axis.bar(
            np.arange(len(labels)) + (number - 0.5) * width, medians, width, yerr=whiskers, capsize=3,
            label=f"cross-checks {name}", color=("tab:blue", "tab:gray")[number],
        )  # fmt: skip
        checks_axis.bar_label(bars, fmt="%.0f", fontsize=7, label_type="center", color="white")
    checks_axis.set_xticks(np.arange(len(labels)), labels)
    checks_axis.set_title("cost of the cross-checks (dexloop, 0 workers)", fontsize=10)
    checks_axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement (%(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (%(default)s)")
    parser.add_argument(
        "--data", type=Path, default=REPO / "bench" / "out", help="where the dataset is generated"
    )
    parser.add_argument(
        "--results", type=Path, default=REPO / "bench" / "results", help="JSON + PNG output folder"
    )
    parser.add_argument(
        "--skip-lerobot", action="store_true", help="do not measure LeRobot even if importable"
    )
    parser.add_argument("--profile", action="store_true", help="print the profile of dexloop's batch path")
    parser.add_argument(
        "--check-rounds",
        type=int,
        default=5,
        help="alternating rounds measuring the cross-checks' cost (%(default)s)",
    )
    args = parser.parse_args()

    root = ensure_dataset(args.data)
    threads = len(os.sched_getaffinity(0))
    order = np.random.default_rng(0).permutation(EPISODES * EPISODE_LENGTH)
    results = {"system": system_metadata(), "batch_size": BATCH, "decode_threads": threads, "queries": {}}
    print(f"dataset {root.name}; batch {BATCH}; {threads} cores; timed batches {args.batches}")
    for name, query in QUERIES.items():
        record: dict = {"delta_timestamps_frames": {k: [round(d * FPS) for d in v] for k, v in query.items()}}

        def make(query=query):
            return LeRobotDataset("bench/act_dp", root=root, delta_timestamps=query, return_uint8=True)

        record["dexloop"] = {
            f"workers_{w}": measure(make, order, w, args.warmup, args.batches) for w in (0, 2)
        }

        def make_bypassed(query=query):
            return ChecksBypassed("bench/act_dp", root=root, delta_timestamps=query, return_uint8=True)

        record["cross_checks"] = cross_check_cost(
            make, make_bypassed, order, args.warmup, args.batches, args.check_rounds
        )
        record["decode_bound"] = decode_bound(make(), order, query, args.warmup, args.batches, threads)
        record["profile"] = profile_batches(make(), order, min(args.batches, 20))
        reference = None if args.skip_lerobot else lerobot_factory(root, query)
        if reference is not None:
            lerobot_batches = max(8, args.batches // 4)
            record["lerobot"] = {
                f"workers_{w}": measure(reference, order, w, args.warmup, lerobot_batches) for w in (0, 2)
            }
        ours = record["dexloop"]["workers_0"]["samples_per_s"]
        limit = record["decode_bound"]["samples_per_s"]
        record["ratios"] = {"dexloop_w0_over_decode_bound": ours / limit}
        line = (
            f"{name:10s} dexloop w0 {ours:7.1f}/s  w2 {record['dexloop']['workers_2']['samples_per_s']:7.1f}/s  "
            f"decode-bound {limit:7.1f}/s  ({100 * ours / limit:.0f}% of the limit; "
            f"{100 * record['profile']['native_decode_share']:.0f}% of the batch path in C++ decoding)"
        )
        cost = record["cross_checks"]
        line += (
            f"\n{'':10s} cross-checks: {cost['checked_samples_per_s']:7.1f}/s checked, "
            f"{cost['bypassed_samples_per_s']:7.1f}/s bypassed -> ratio {cost['checked_over_bypassed']:.3f} "
            f"(rounds differ by up to {100 * cost['round_to_round_spread']:.0f}%)"
        )
        if "lerobot" in record:
            best = max(v["samples_per_s"] for v in record["lerobot"].values())
            record["ratios"]["dexloop_w0_over_lerobot_best"] = ours / best
            line += (
                f"\n{'':10s} LeRobot w0 {record['lerobot']['workers_0']['samples_per_s']:7.1f}/s  "
                f"w2 {record['lerobot']['workers_2']['samples_per_s']:7.1f}/s  -> dexloop (0 workers) is "
                f"{ours / best:.1f}x LeRobot's best"
            )
        print(line, flush=True)
        if args.profile:
            for row in record["profile"]["top_self_time"]:
                print(f"    {row['self_s']:7.3f} s  {row['function']}")
        results["queries"][name] = record

    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_dataset.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.results / "bench_dataset.png")
    print(f"wrote {args.results / 'bench_dataset.json'} and bench_dataset.png")


if __name__ == "__main__":
    main()
