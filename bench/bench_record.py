"""Recording-time video encoding: dexloop's streaming encoder against the FFmpeg command-line encoder.

Two cameras at 640x480, 30 fps, episodes of 300 frames of camera-like content (bench/camera_frames.py),
encoded with LeRobot's default settings (libsvtav1, yuv420p, g=2, crf=30, preset 12). For each it
measures, in the same run:

* dexloop: one StreamingEncoder per camera (a thread each behind a bounded queue), fed as a recorder
  feeds it, episode after episode into one mp4 per camera; per-camera encode fps, the time
  end_episode() blocks (what save_episode() waits for the videos), wall and CPU time, peak memory,
  and the queue's waits (back-pressure) and frames lost (must be 0);
* the limit: one ``ffmpeg`` process per camera encoding the same frames with the same settings from
  raw RGB on its standard input, all episodes as one stream, both cameras at once.

The frames are made before the timed part and handed to both the same way (from memory).

    python bench/bench_record.py                 # prints the table, writes bench/results/bench_record.*
    python bench/bench_record.py --episodes 4    # a shorter run
    python bench/bench_record.py --episodes 6 --frames 120 --rounds 0 --paced 10
        # frames as cameras deliver them, where the encoders keep up: how long end_episode and the
        # writer's save_episode block (bench/results/bench_record_paced.*)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from dexloop import _core  # noqa: E402
from dexloop.video import RGBEncoderConfig, VideoDecoder, open_encoder  # noqa: E402

import camera_frames  # noqa: E402
from host import host_metadata  # noqa: E402

FPS = 30
HEIGHT, WIDTH = 480, 640
CAMERAS = ("observation.images.front", "observation.images.wrist")


def make_frames(episodes: int, frames: int, distinct: int) -> dict[str, list[list[np.ndarray]]]:
    """Every camera's frames, episode by episode: `distinct` different episodes per camera, cycled
    (20 distinct 640x480 episodes of 300 frames would hold 11 GB)."""
    pool = {
        camera: [
            list(camera_frames.camera_like_episode(100 * number + episode, HEIGHT, WIDTH, frames))
            for episode in range(min(distinct, episodes))
        ]
        for number, camera in enumerate(CAMERAS)
    }
    return {
        camera: [pool[camera][episode % len(pool[camera])] for episode in range(episodes)]
        for camera in CAMERAS
    }


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(frames: int, wall: float, cpu: float, blocking: list[float], blocking_key: str) -> dict:
    """Frames per camera per second, wall and CPU time, and how long the per-episode call blocked."""
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "fps_per_camera": frames / wall,
        blocking_key: {
            "median": 1000 * float(np.median(blocking)),
            "max": 1000 * float(np.max(blocking)),
            "each": [1000 * float(b) for b in blocking],
        },
    }


def record_with_dexloop(
    folder: Path, frames: dict, encoder_threads: int | None, paced_fps: float = 0.0
) -> dict:
    """The recorder's loop: each frame of every camera added as it 'arrives' (as fast as the encoder
    takes them, or at `paced_fps` as a camera delivers them), then end_episode on every camera
    (what save_episode does for the videos)."""
    config = RGBEncoderConfig()
    encoders = {
        camera: open_encoder(
            str(folder / f"{camera}.mp4"),
            config,
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
            encoder_threads=encoder_threads,
        )
        for camera in CAMERAS
    }
    episodes = len(frames[CAMERAS[0]])
    blocking = []
    cpu_start, start = cpu_seconds(), time.perf_counter()
    for episode in range(episodes):
        episode_start = time.perf_counter()
        for number, frame_set in enumerate(
            zip(*(frames[camera][episode] for camera in CAMERAS), strict=True)
        ):
            if paced_fps:
                time.sleep(max(0.0, episode_start + number / paced_fps - time.perf_counter()))
            for camera, frame in zip(CAMERAS, frame_set, strict=True):
                encoders[camera].add_frame(frame)
        save_start = time.perf_counter()
        for encoder in encoders.values():
            encoder.end_episode()
        blocking.append(time.perf_counter() - save_start)
    for encoder in encoders.values():
        encoder.close()
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    total = sum(len(episode) for episode in frames[CAMERAS[0]])
    stats = {camera: encoder.stats for camera, encoder in encoders.items()}
    written = {camera: VideoDecoder(str(folder / f"{camera}.mp4")).info.frame_count for camera in CAMERAS}
    return {
        **throughput(total, wall, cpu, blocking, "end_episode_blocking_ms"),
        "queue_full_waits": {camera: s.full_waits for camera, s in stats.items()},
        "queue_waited_s": {camera: s.waited_s for camera, s in stats.items()},
        "frames_lost": {camera: total - written[camera] for camera in CAMERAS},
        "bytes": {camera: (folder / f"{camera}.mp4").stat().st_size for camera in CAMERAS},
    }


def record_with_ffmpeg_cli(folder: Path, frames: dict, encoder_threads: int | None) -> dict:
    """One ffmpeg per camera, fed raw RGB frames through a pipe, both cameras at once."""
    params = "fast-decode=0" + (f":lp={encoder_threads}" if encoder_threads else "")
    processes, feeders = {}, []
    cpu_start, start = cpu_seconds(), time.perf_counter()
    for camera in CAMERAS:
        command = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
            "-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30", "-preset", "12",
            "-svtav1-params", params, str(folder / f"{camera}.cli.mp4"),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.PIPE, env={**os.environ, "SVT_LOG": "1"})
        processes[camera] = process

        def feed(process=process, episodes=frames[camera]) -> None:
            for episode in episodes:
                for frame in episode:
                    process.stdin.write(frame.tobytes())
            process.stdin.close()

        feeders.append(threading.Thread(target=feed))
    for feeder in feeders:
        feeder.start()
    for feeder in feeders:
        feeder.join()
    for camera, process in processes.items():
        if process.wait() != 0:
            raise RuntimeError(f"ffmpeg failed for {camera}")
    wall = time.perf_counter() - start
    total = sum(len(episode) for episode in frames[CAMERAS[0]])
    return {
        "wall_s": wall,
        "cpu_s": cpu_seconds() - cpu_start,
        "fps_per_camera": total / wall,
        "bytes": {camera: (folder / f"{camera}.cli.mp4").stat().st_size for camera in CAMERAS},
    }


def record_dataset(dataset_class, root: Path, frames: dict, paced_fps: float = 0.0, **create_options) -> dict:
    """A whole recording through a LeRobotDataset class (dexloop's, or LeRobot's when importable):
    create(), every frame through add_frame() (a 6-D state and action besides the cameras; as fast
    as the writer takes them, or at `paced_fps` as cameras deliver them), then save_episode() per
    episode and finalize(). Frames lost: parquet rows minus each camera's frames in its mp4s
    (LeRobot's streaming encoder drops frames when its queue is full)."""
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "action": {"dtype": "float32", "shape": (6,), "names": None},
        **{
            camera: {"dtype": "video", "shape": (HEIGHT, WIDTH, 3), "names": ["height", "width", "channels"]}
            for camera in CAMERAS
        },
    }
    episodes = len(frames[CAMERAS[0]])
    blocking = []
    cpu_start, start = cpu_seconds(), time.perf_counter()
    dataset = dataset_class.create(
        repo_id="bench/record", fps=FPS, features=features, root=root, **create_options
    )
    for episode in range(episodes):
        episode_start = time.perf_counter()
        for number, frame_set in enumerate(
            zip(*(frames[camera][episode] for camera in CAMERAS), strict=True)
        ):
            if paced_fps:
                time.sleep(max(0.0, episode_start + number / paced_fps - time.perf_counter()))
            frame = {
                "observation.state": np.full(6, number, dtype=np.float32),
                "action": np.full(6, -number, dtype=np.float32),
                "task": "bench",
            }
            frame.update(zip(CAMERAS, frame_set, strict=True))
            dataset.add_frame(frame)
        save_start = time.perf_counter()
        dataset.save_episode()
        blocking.append(time.perf_counter() - save_start)
    dataset.finalize()
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    total = sum(len(episode) for episode in frames[CAMERAS[0]])
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(path).num_rows for path in root.glob("data/*/*.parquet"))
    in_videos = {
        camera: sum(
            VideoDecoder(str(path)).info.frame_count for path in root.glob(f"videos/{camera}/*/*.mp4")
        )
        for camera in CAMERAS
    }
    return {
        **throughput(total, wall, cpu, blocking, "save_episode_blocking_ms"),
        "rows": rows,
        "frames_lost": {camera: total - in_videos[camera] for camera in CAMERAS},
    }


def record_with_lerobot(scratch: Path, frames: dict) -> dict:
    """LeRobot 0.6.1's recording of the same frames, default (PNG, then encoding per episode, 4
    image-writer threads per camera as lerobot-record uses) and with streaming_encoding=True;
    empty when LeRobot is not importable."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset as LeRobots
    except ImportError:
        return {}
    return {
        "lerobot_default": record_dataset(
            LeRobots, scratch / "lerobot_default", frames, image_writer_threads=4 * len(CAMERAS)
        ),
        "lerobot_streaming": record_dataset(
            LeRobots, scratch / "lerobot_streaming", frames, streaming_encoding=True
        ),
    }


def system_metadata() -> dict:
    return {**host_metadata(), "ffmpeg": _core.video.ffmpeg_version()}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    shown = {
        "dexloop": "dexloop\nStreamingEncoder",
        "ffmpeg_cli": "ffmpeg CLI\n(limit)",
        "dexloop_writer": "dexloop\nLeRobotDataset",
        "lerobot_default": "LeRobot 0.6.1\ndefault",
        "lerobot_streaming": "LeRobot 0.6.1\nstreaming",
    }
    colors = {"dexloop": "tab:blue", "ffmpeg_cli": "tab:gray", "dexloop_writer": "tab:blue"}
    names = [name for name in shown if all(name in r for r in runs)]
    values = [np.median([r[name]["fps_per_camera"] for r in runs]) for name in names]
    lost = [sum(runs[0][name].get("frames_lost", {}).values()) for name in names]
    figure, axis = plt.subplots(figsize=(8, 4.2))
    bars = axis.bar(
        [shown[name] for name in names], values, color=[colors.get(name, "tab:orange") for name in names]
    )
    axis.bar_label(
        bars,
        labels=[f"{v:.1f}" + (f"\n{n} frames lost" if n else "") for v, n in zip(values, lost, strict=True)],
        fontsize=8,
    )
    axis.axhline(FPS, color="tab:red", linestyle="--", label=f"real time ({FPS} fps per camera)")
    axis.set_ylabel("frames / s per camera (2 cameras at once)")
    system = results["system"]
    axis.set_title(
        f"AV1 encoding, 2 cameras {WIDTH}x{HEIGHT}, LeRobot's settings\n({system['cpu']}, {system['cores']} cores)",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_paced(results: dict, path: Path) -> None:
    """How long each episode's save blocked in the paced runs: the encoders' end_episode (draining
    the codecs) against the writer's save_episode (saving their progress instead)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.8))
    drained = results["paced"]["end_episode_blocking_ms"]["each"]
    saved = results["paced_writer"]["save_episode_blocking_ms"]["each"]
    episodes = np.arange(len(saved))
    axis.bar(
        episodes - 0.2, drained, 0.4, color="tab:gray", label="StreamingEncoder.end_episode (codecs drain)"
    )
    axis.bar(episodes + 0.2, saved, 0.4, color="tab:blue", label="LeRobotDataset.save_episode (whole save)")
    axis.axhline(100, color="tab:red", linestyle="--", label="100 ms")
    axis.set_xticks(episodes)
    axis.set_xlabel("episode")
    axis.set_ylabel("blocking time (ms)")
    system = results["system"]
    axis.set_title(
        f"2 cameras {WIDTH}x{HEIGHT} AV1 (LeRobot's settings), {results['frames_per_episode']}-frame episodes "
        f"at {results['paced']['fps']:g} fps\n({system['cpu']}, {system['cores']} cores)",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=20, help="episodes per camera (%(default)s)")
    parser.add_argument("--frames", type=int, default=300, help="frames per episode (%(default)s)")
    parser.add_argument(
        "--distinct", type=int, default=2, help="different episodes per camera, cycled (%(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of both encoders (%(default)s)"
    )
    parser.add_argument(
        "--encoder-threads", type=int, default=None, help="SVT-AV1 lp (default: its own choice)"
    )
    parser.add_argument(
        "--paced",
        type=float,
        default=0.0,
        help="also record at this many frames/s per camera, as cameras deliver them, to measure end_episode "
        "when the encoder keeps up (0: skip)",
    )
    parser.add_argument(
        "--recording",
        action="store_true",
        help="also record whole datasets: dexloop's LeRobotDataset writer and, when importable, LeRobot "
        "0.6.1's (default and streaming_encoding=True)",
    )
    parser.add_argument(
        "--results", type=Path, default=REPO / "bench" / "results", help="JSON + PNG output folder"
    )
    args = parser.parse_args()

    print(
        f"making {args.episodes} x {args.frames} frames for {len(CAMERAS)} cameras ({WIDTH}x{HEIGHT})",
        flush=True,
    )
    frames = make_frames(args.episodes, args.frames, args.distinct)
    results = {
        "system": system_metadata(),
        "settings": {"codec": "libsvtav1", "pix_fmt": "yuv420p", "g": 2, "crf": 30, "preset": 12, "fps": FPS},
        "episodes": args.episodes,
        "frames_per_episode": args.frames,
        "runs": [],
    }
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            run = {
                "dexloop": record_with_dexloop(folder, frames, args.encoder_threads),
                "ffmpeg_cli": record_with_ffmpeg_cli(folder, frames, args.encoder_threads),
            }
            if args.recording:
                from dexloop.datasets import LeRobotDataset

                run["dexloop_writer"] = record_dataset(LeRobotDataset, folder / "dexloop_writer", frames)
                run.update(record_with_lerobot(folder, frames))
                for name in ("dexloop_writer", "lerobot_default", "lerobot_streaming"):
                    if name in run:
                        r = run[name]
                        print(
                            f"  recording with {name}: {r['fps_per_camera']:6.1f} fps/camera, wall {r['wall_s']:.0f} s, "
                            f"CPU {r['cpu_s']:.0f} s, save_episode median {r['save_episode_blocking_ms']['median']:.0f} ms "
                            f"max {r['save_episode_blocking_ms']['max']:.0f} ms, frames lost {r['frames_lost']}",
                            flush=True,
                        )
                if "lerobot_default" in run:
                    run["writer_over_lerobot_default"] = (
                        run["dexloop_writer"]["fps_per_camera"] / run["lerobot_default"]["fps_per_camera"]
                    )
        run["dexloop_over_ffmpeg_cli"] = (
            run["dexloop"]["fps_per_camera"] / run["ffmpeg_cli"]["fps_per_camera"]
        )
        results["runs"].append(run)
        ours, limit = run["dexloop"], run["ffmpeg_cli"]
        print(
            f"round {number}: dexloop {ours['fps_per_camera']:6.1f} fps/camera (CPU {ours['cpu_s']:.1f} s, "
            f"end_episode median {ours['end_episode_blocking_ms']['median']:.0f} ms, max "
            f"{ours['end_episode_blocking_ms']['max']:.0f} ms, frames lost {sum(ours['frames_lost'].values())}, "
            f"queue waits {sum(ours['queue_full_waits'].values())})  |  ffmpeg CLI {limit['fps_per_camera']:6.1f} "
            f"fps/camera (CPU {limit['cpu_s']:.1f} s)  ->  {run['dexloop_over_ffmpeg_cli']:.2f}x",
            flush=True,
        )
    if args.paced:
        from dexloop.datasets import LeRobotDataset

        with tempfile.TemporaryDirectory() as scratch:
            paced = record_with_dexloop(Path(scratch), frames, args.encoder_threads, args.paced)
            writer = record_dataset(LeRobotDataset, Path(scratch) / "writer", frames, paced_fps=args.paced)
        results["paced"] = {"fps": args.paced, **paced}
        results["paced_writer"] = {"fps": args.paced, **writer}
        print(
            f"paced at {args.paced:g} fps/camera: end_episode median {paced['end_episode_blocking_ms']['median']:.0f} ms, "
            f"max {paced['end_episode_blocking_ms']['max']:.0f} ms; queue waits {sum(paced['queue_full_waits'].values())}; "
            f"frames lost {sum(paced['frames_lost'].values())}",
            flush=True,
        )
        print(
            f"paced at {args.paced:g} fps/camera, LeRobotDataset writer: save_episode median "
            f"{writer['save_episode_blocking_ms']['median']:.0f} ms, max {writer['save_episode_blocking_ms']['max']:.0f} ms; "
            f"frames lost {sum(writer['frames_lost'].values())}",
            flush=True,
        )
    ratios = [run["dexloop_over_ffmpeg_cli"] for run in results["runs"]]
    if not ratios:  # --rounds 0: the paced runs only, published on their own
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "bench_record_paced.json").write_text(json.dumps(results, indent=2) + "\n")
        plot_paced(results, args.results / "bench_record_paced.png")
        print(f"wrote {args.results / 'bench_record_paced.json'} and bench_record_paced.png")
        return
    results["dexloop_over_ffmpeg_cli_median"] = float(np.median(ratios))
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"dexloop / ffmpeg CLI throughput: median {np.median(ratios):.2f}x; peak RSS {results['peak_rss_mb']:.0f} MB "
        "(the frames held in memory included)"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_record.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.results / "bench_record.png")
    print(f"wrote {args.results / 'bench_record.json'} and bench_record.png")


if __name__ == "__main__":
    main()
