"""Training speed: ``dexloop train``'s loop on dexloop's loader against LeRobot 0.6.1's ``lerobot-train``.

On a dataset it records with dexloop's writer (``LeRobotDataset.create`` / ``add_frame`` /
``save_episode`` / ``finalize``; by default 8 episodes x 150 frames at 30 fps, 6-D state and action,
two AV1 cameras at 96x128 encoded with LeRobot's defaults, camera-like content from
bench/camera_frames.py), it trains, with the same ``lerobot-train`` flags on both sides:

* ACT with LeRobot's defaults (ResNet-18, dim_model 512, 4 encoder / 1 decoder layers, VAE,
  chunk_size 100), ``pretrained_backbone_weights=null`` (nothing is downloaded);
* Diffusion Policy, either LeRobot 0.6.1's defaults (``--diffusion-config default``: horizon 64,
  32 action steps, full frames) or the PushT-style configuration LeRobot shipped before
  (``--diffusion-config pusht``, the default here: horizon 16, 8 action steps, random 84x84 crops,
  GroupNorm); both keep the default U-Net (down_dims 512, 1024, 2048), n_obs_steps 2 and the
  optimizer/scheduler presets.

dexloop runs in this process (``dexloop.training.train.train``); LeRobot, when ``import lerobot``
works in this interpreter, runs its own ``lerobot.scripts.lerobot_train.train()`` with its own
dataset and loader (torchcodec decoding) in a child process of the same interpreter. Both loops time
a step the same way (LeRobot's definition, which dexloop's loop restates): ``dataloading_s`` from
asking for the next batch to having it preprocessed (uint8 -> float, normalisation), ``update_s``
the forward, backward and optimizer step. dexloop's come from its metrics.jsonl; LeRobot's are read
from its MetricsTracker after each ``update_policy`` call. The first ``--warmup`` steps (worker
start-up, allocator and decoder warm-up) are left out; over the ``--steps`` after them:
steps/s = steps / sum(step time), samples/s = batch x steps/s, data-wait share = sum(dataloading_s) /
sum(step time). With ``--rounds`` > 1 the two sides alternate and medians are reported, so a change
in the machine's load hits both alike.

    python bench/bench_train.py                    # writes bench/results/bench_train.{json,png}
    python bench/bench_train.py --quick            # smoke run (< 2 min), writes bench/out/ only
    python bench/bench_train.py --policies act --steps 40 --num-workers 0 2

Run it with an interpreter that has LeRobot 0.6.1 and dexloop installed to get the comparison
(``pip install --no-build-isolation --no-deps -e .`` into LeRobot's environment); elsewhere it
measures dexloop alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import camera_frames  # noqa: E402
from host import host_metadata  # noqa: E402

FPS = 30
CAMERAS = ("observation.images.front", "observation.images.wrist")
REPO_ID = "bench/train"
CONFIG_KEYS = (
    "episodes", "frames", "height", "width", "cameras", "state_dim",
    "steps", "warmup", "batch_size", "num_workers", "rounds", "seed", "diffusion_config", "quick",
)  # fmt: skip
TASK = "move the arm along the synthetic trajectory"

ACT_FLAGS = ["--policy.type=act"]
DIFFUSION_FLAGS = {
    "default": ["--policy.type=diffusion"],
    "pusht": [
        "--policy.type=diffusion",
        "--policy.horizon=16",
        "--policy.n_action_steps=8",
        "--policy.crop_shape=[84,84]",
        "--policy.use_group_norm=true",
    ],
}


# ----------------------------------------------------------------------------------------------
# The dataset


def dataset_features(height: int, width: int, state_dim: int, cameras: int) -> dict:
    names = [f"joint_{i}.pos" for i in range(state_dim)]
    features = {
        "observation.state": {"dtype": "float32", "shape": (state_dim,), "names": names},
        "action": {"dtype": "float32", "shape": (state_dim,), "names": names},
    }
    for camera in CAMERAS[:cameras]:
        features[camera] = {
            "dtype": "video",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
    return features


def ensure_dataset(
    folder: Path, episodes: int, frames: int, height: int, width: int, state_dim: int, cameras: int
) -> Path:
    """The benchmark dataset, recorded with dexloop's writer once per set of sizes and reused."""
    from dexloop.datasets import LeRobotDataset

    root = folder / f"train_{episodes}x{frames}_{cameras}cam_{width}x{height}_s{state_dim}_av1_v1"
    if (root / "meta" / "info.json").exists():
        return root
    # Recorded next to its final place and renamed when complete, so an interrupted run never
    # leaves a half-written dataset that a later run would reuse.
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"recording the benchmark dataset into {root} ...", file=sys.stderr, flush=True)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with LeRobotDataset.create(
        REPO_ID, FPS, dataset_features(height, width, state_dim, cameras), root=partial
    ) as dataset:
        for episode in range(episodes):
            # A smooth trajectory per episode; the action leads the state by a frame.
            phase, speed = rng.uniform(0, 2 * np.pi, state_dim), rng.uniform(0.5, 2.0, state_dim)
            t = np.arange(frames + 1) / FPS
            trajectory = (40 * np.sin(speed[None, :] * t[:, None] + phase[None, :])).astype(np.float32)
            videos = [
                camera_frames.camera_like_episode(100 * number + episode, height, width, frames)
                for number in range(cameras)
            ]
            for index, images in enumerate(zip(*videos, strict=True)):
                frame = {
                    "observation.state": trajectory[index],
                    "action": trajectory[index + 1],
                    "task": TASK,
                }
                frame.update(zip(CAMERAS, images, strict=False))
                dataset.add_frame(frame)
            dataset.save_episode()
            print(f"\r  episode {episode + 1}/{episodes}", end="", file=sys.stderr, flush=True)
    print(f"\r  {episodes} episodes in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    partial.rename(root)
    return root


# ----------------------------------------------------------------------------------------------
# Measuring


def summarise(dataloading: list[float], update: list[float], warmup: int, batch_size: int) -> dict:
    """steps/s, samples/s and the data-wait share of the steps after the first `warmup`."""
    data = np.asarray(dataloading[warmup:], dtype=float)
    step = data + np.asarray(update[warmup:], dtype=float)
    if len(step) == 0:
        raise RuntimeError(f"no timed steps: {len(dataloading)} steps ran, {warmup} are warm-up")
    total = float(step.sum())
    return {
        "timed_steps": len(step),
        "steps_per_s": len(step) / total,
        "samples_per_s": batch_size * len(step) / total,
        "data_wait_share": float(data.sum()) / total,
        "median_step_s": float(np.median(step)),
        "median_dataloading_s": float(np.median(data)),
        "dataloading_s": [float(v) for v in dataloading],
        "update_s": [float(v) for v in update],
    }


def run_dexloop(flags: list[str], output_dir: Path, warmup: int, batch_size: int) -> dict:
    from dexloop.training.config import parse_train_config
    from dexloop.training.train import train

    start = time.perf_counter()
    result = train(parse_train_config([*flags, f"--output_dir={output_dir}"]), progress=False)
    wall = time.perf_counter() - start
    with open(result.metrics_path) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    summary = summarise(
        [r["dataloading_s"] for r in records], [r["update_s"] for r in records], warmup, batch_size
    )
    return {**summary, "wall_s_incl_setup": wall, "final_loss": result.final_loss}


def run_lerobot(flags: list[str], output_dir: Path, warmup: int, batch_size: int, work: Path) -> dict:
    """LeRobot's train() in a child process of this interpreter (this file's --lerobot-child mode)."""
    timings = work / "lerobot_timings.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--lerobot-child", str(timings), "--"]
    command += [*flags, f"--output_dir={output_dir}"]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"lerobot-train failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    recorded = json.loads(timings.read_text())
    summary = summarise(recorded["dataloading_s"], recorded["update_s"], warmup, batch_size)
    return {**summary, "wall_s_incl_setup": wall, "final_loss": recorded["losses"][-1]}


def lerobot_child(timings: Path, flags: list[str]) -> None:
    """Runs LeRobot's lerobot-train with `flags`, recording each step's dataloading_s, update_s and
    loss as its MetricsTracker holds them right after update_policy."""
    import lerobot.scripts.lerobot_train as lerobot_train

    recorded: dict[str, list[float]] = {"dataloading_s": [], "update_s": [], "losses": []}
    update_policy = lerobot_train.update_policy

    def timed_update_policy(train_metrics, *rest, **kwargs):
        # dataloading_s was set just before this call, update_s inside it.
        train_metrics, output = update_policy(train_metrics, *rest, **kwargs)
        recorded["dataloading_s"].append(float(train_metrics.dataloading_s.val))
        recorded["update_s"].append(float(train_metrics.update_s.val))
        recorded["losses"].append(float(train_metrics.loss.val))
        return train_metrics, output

    lerobot_train.update_policy = timed_update_policy
    sys.argv = [sys.argv[0], *flags]
    lerobot_train.train()
    timings.write_text(json.dumps(recorded))


def lerobot_version() -> str | None:
    try:
        import lerobot
    except ImportError as error:
        print(f"LeRobot is not importable here ({error}); measuring dexloop alone", file=sys.stderr)
        return None
    return lerobot.__version__


def system_metadata() -> dict:
    meta = {**host_metadata(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    try:
        import lerobot
        import torchcodec

        meta["lerobot"] = lerobot.__version__
        meta["torchcodec"] = torchcodec.__version__
    except ImportError:
        pass
    meta["load_average_at_start"] = list(os.getloadavg())
    return meta


# ----------------------------------------------------------------------------------------------
# Reporting


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    labels = [f"{r['policy']}\n{r['num_workers']} workers" for r in runs]
    sides = [("dexloop", "tab:blue"), ("lerobot", "tab:orange")]
    figure, (speed_axis, wait_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.38
    x = np.arange(len(runs))
    for number, (side, colour) in enumerate(sides):
        name = "dexloop" if side == "dexloop" else f"LeRobot {results['system'].get('lerobot', '')}"
        speeds = [r.get(side, {}).get("samples_per_s", 0.0) for r in runs]
        waits = [100 * r.get(side, {}).get("data_wait_share", 0.0) for r in runs]
        offset = (number - 0.5) * width
        bars = speed_axis.bar(x + offset, speeds, width, label=name, color=colour)
        speed_axis.bar_label(bars, fmt="%.2f", fontsize=8)
        bars = wait_axis.bar(x + offset, waits, width, label=name, color=colour)
        wait_axis.bar_label(bars, fmt="%.1f%%", fontsize=8)
    speed_axis.set_xticks(x, labels)
    speed_axis.set_ylabel(f"training samples / s (batch {results['config']['batch_size']})")
    speed_axis.legend(fontsize=8)
    wait_axis.set_xticks(x, labels)
    wait_axis.set_ylabel("share of step time waiting for data (%)")
    wait_axis.axhline(10, color="gray", linestyle="--", linewidth=1)
    wait_axis.legend(fontsize=8)
    system, config = results["system"], results["config"]
    figure.suptitle(
        f"Training speed, {config['episodes']}x{config['frames']} frames, {config['cameras']} AV1 cameras "
        f"{config['width']}x{config['height']} ({system['cpu']}, {system['cores']} cores, load "
        f"{system['load_average_at_start'][0]:.1f})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def median_of(rounds: list[dict]) -> dict:
    keys = ("steps_per_s", "samples_per_s", "data_wait_share", "median_step_s", "median_dataloading_s")
    return {
        **{key: float(np.median([r[key] for r in rounds])) for key in keys},
        "timed_steps": rounds[0]["timed_steps"],
        "rounds": rounds,
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--lerobot-child":
        lerobot_child(Path(sys.argv[2]), [flag for flag in sys.argv[3:] if flag != "--"])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", nargs="+", choices=["act", "diffusion"], default=["act", "diffusion"])
    parser.add_argument("--diffusion-config", choices=sorted(DIFFUSION_FLAGS), default="pusht")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per run (%(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (%(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="(%(default)s)")
    parser.add_argument(
        "--num-workers",
        type=int,
        nargs="+",
        default=[2],
        help="loader workers; one run per value (%(default)s)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternating rounds per run; medians (%(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=150, help="frames per episode (%(default)s)")
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--cameras", type=int, choices=[1, 2], default=2)
    parser.add_argument("--state-dim", type=int, default=6)
    parser.add_argument(
        "--data", type=Path, default=REPO / "bench" / "out", help="where the dataset is recorded"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="JSON + PNG folder (bench/results; bench/out with --quick)"
    )
    parser.add_argument("--skip-lerobot", action="store_true", help="do not run LeRobot even if importable")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 episodes x 60 frames, 1 + 2 steps, batch 2"
    )
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.frames, args.steps, args.warmup, args.batch_size = 2, 60, 2, 1, 2
        args.num_workers = args.num_workers[:1]
        args.rounds = 1
    results_dir = args.results or REPO / "bench" / ("out" if args.quick else "results")
    name = "bench_train_quick" if args.quick else "bench_train"
    if args.quick and results_dir.resolve() == (REPO / "bench" / "results").resolve():
        parser.error("--quick never writes into bench/results")

    root = ensure_dataset(
        args.data, args.episodes, args.frames, args.height, args.width, args.state_dim, args.cameras
    )
    lerobot = None if args.skip_lerobot else lerobot_version()
    results: dict = {
        "system": system_metadata(),
        "config": {
            "dataset": root.name,
            **{key: getattr(args, key) for key in CONFIG_KEYS},
        },
        "method": (
            "per step: dataloading_s (next batch -> preprocessed) and update_s (forward, backward, optimizer), "
            "as lerobot-train defines them; steps after the warm-up; samples/s = batch * steps / sum(step time)"
        ),
        "runs": [],
    }
    print(
        f"dataset {root.name}; batch {args.batch_size}; {args.warmup} warm-up + {args.steps} timed steps; "
        f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"LeRobot {lerobot or 'not importable'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_train_") as scratch:
        work = Path(scratch)
        for policy in args.policies:
            policy_flags = ACT_FLAGS if policy == "act" else DIFFUSION_FLAGS[args.diffusion_config]
            for workers in args.num_workers:
                flags = [
                    f"--dataset.repo_id={REPO_ID}",
                    f"--dataset.root={root}",
                    *policy_flags,
                    "--policy.pretrained_backbone_weights=null",
                    "--policy.device=cpu",
                    "--policy.push_to_hub=false",
                    f"--batch_size={args.batch_size}",
                    f"--steps={args.warmup + args.steps}",
                    f"--num_workers={workers}",
                    f"--seed={args.seed}",
                    "--save_checkpoint=false",
                    "--env_eval_freq=0",
                    f"--log_freq={args.warmup + args.steps}",
                ]
                record: dict = {"policy": policy, "num_workers": workers, "flags": flags}
                rounds: dict[str, list[dict]] = {"dexloop": [], "lerobot": []}
                for number in range(args.rounds):
                    out = work / f"{policy}_w{workers}_r{number}"
                    rounds["dexloop"].append(
                        run_dexloop(flags, out / "dexloop", args.warmup, args.batch_size)
                    )
                    if lerobot:
                        rounds["lerobot"].append(
                            run_lerobot(flags, out / "lerobot", args.warmup, args.batch_size, out)
                        )
                for side, measured in rounds.items():
                    if measured:
                        record[side] = median_of(measured)
                line = f"{policy:9s} {workers} workers  dexloop {_figures(record['dexloop'])}"
                if "lerobot" in record:
                    ratio = record["dexloop"]["samples_per_s"] / record["lerobot"]["samples_per_s"]
                    record["dexloop_over_lerobot_samples_per_s"] = ratio
                    line += f"\n{'':20s} LeRobot {_figures(record['lerobot'])}"
                    line += f"\n{'':20s} -> dexloop / LeRobot samples/s = {ratio:.2f}"
                print(line, flush=True)
                results["runs"].append(record)
    results["system"]["load_average_at_end"] = list(os.getloadavg())
    print(f"load average at the end {results['system']['load_average_at_end'][0]:.2f}")
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, results_dir / f"{name}.png")
    print(f"wrote {results_dir / (name + '.json')} and {name}.png")


def _figures(side: dict) -> str:
    return (
        f"{side['steps_per_s']:6.3f} steps/s  {side['samples_per_s']:6.2f} samples/s  "
        f"data wait {100 * side['data_wait_share']:5.1f}% (median step {side['median_step_s']:.3f} s, "
        f"median data {1000 * side['median_dataloading_s']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
