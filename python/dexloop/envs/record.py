"""Recording ``so101_push`` demonstrations of the scripted expert into a LeRobot dataset.

    from dexloop.envs import record_demonstrations
    summary = record_demonstrations("dexloop/so101_push", "data/so101_push", n_episodes=50, seed=0)

Episode attempts use the seeds ``seed, seed + 1, ...``; an attempt the expert fails is not recorded
(its seed is listed in the summary), so the dataset holds `n_episodes` successful demonstrations and
policies should be evaluated on seeds from ``summary["next_seed"]`` on. The dataset is written by
dexloop's LeRobot writer (``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` /
``finalize``) with the features of LeRobot's recordings of a real SO-101 follower:
``observation.state`` and ``action`` (six ``<motor>.pos`` floats) and one video per camera
(``observation.images.top``, ``observation.images.wrist``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dexloop.errors import EnvError

from .expert import PushExpert
from .so101 import STATE_NAMES
from .so101_push import CAMERAS, FPS, IMAGE_SIZE, SO101PushEnv

ROBOT_TYPE = "so101_follower"


def dataset_features(
    image_size: tuple[int, int] = IMAGE_SIZE, cameras: tuple[str, ...] = CAMERAS, use_videos: bool = True
) -> dict[str, dict[str, Any]]:
    """The dataset features of ``so101_push`` recordings (LeRobot's feature dicts)."""
    height, width = image_size
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": list(STATE_NAMES)},
        "action": {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": list(STATE_NAMES)},
    }
    for camera in cameras:
        features[f"observation.images.{camera}"] = {
            "dtype": "video" if use_videos else "image",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
    return features


def record_demonstrations(
    repo_id: str,
    root: str | Path,
    n_episodes: int,
    seed: int = 0,
    *,
    image_size: tuple[int, int] = IMAGE_SIZE,
    cameras: tuple[str, ...] = CAMERAS,
    use_degrees: bool = True,
    use_videos: bool = True,
    rgb_encoder: Any = None,
    max_attempts: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Records `n_episodes` successful expert demonstrations of ``so101_push`` into a new dataset at
    `root` (which must not exist). Returns {"root", "episodes", "frames", "attempts", "failed_seeds",
    "next_seed", "seconds"}. Raises EnvError when the expert fails more than `max_attempts` (default
    ``2 * n_episodes + 10``) attempts allow."""
    from dexloop.datasets import LeRobotDataset

    if not isinstance(n_episodes, int) or n_episodes <= 0:
        raise EnvError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    if max_attempts is None:
        max_attempts = 2 * n_episodes + 10
    cameras = tuple(cameras)
    env = SO101PushEnv(image_size=tuple(image_size), cameras=cameras, use_degrees=use_degrees)
    expert = PushExpert()
    start = time.perf_counter()
    failed: list[int] = []
    episodes = frames = attempts = 0
    try:
        with LeRobotDataset.create(
            repo_id,
            FPS,
            dataset_features(tuple(image_size), cameras, use_videos),
            root=root,
            robot_type=ROBOT_TYPE,
            use_videos=use_videos,
            rgb_encoder=rgb_encoder,
        ) as dataset:
            while episodes < n_episodes:
                if attempts >= max_attempts:
                    raise EnvError(
                        f"the expert succeeded in only {episodes} of {attempts} attempts (seeds {seed}.."
                        f"{seed + attempts - 1}); max_attempts={max_attempts} reached"
                    )
                episode_seed = seed + attempts
                attempts += 1
                length = _expert_episode(env, expert, episode_seed, dataset.add_frame)
                if length is None:
                    # Frames go to the encoders as the episode runs; a failed one is dropped whole.
                    dataset.clear_episode_buffer()
                    failed.append(episode_seed)
                    continue
                dataset.save_episode()
                episodes += 1
                frames += length
                if progress:
                    print(
                        f"\rrecorded {episodes}/{n_episodes} episodes ({frames} frames, "
                        f"{attempts - episodes} failed attempts)",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
        if progress:
            print(file=sys.stderr)
    finally:
        env.close()
    return {
        "root": str(root),
        "episodes": episodes,
        "frames": frames,
        "attempts": attempts,
        "failed_seeds": failed,
        "next_seed": seed + attempts,
        "seconds": time.perf_counter() - start,
    }


def _expert_episode(
    env: SO101PushEnv, expert: PushExpert, seed: int, add_frame: Callable[[dict], None]
) -> int | None:
    """Runs one expert episode from `seed`, handing each frame to `add_frame` as it happens; its
    length, or None when the expert failed."""
    observation, _ = env.reset(seed=seed)
    expert.reset(env)
    for step in range(1, env.episode_length + 1):
        action = expert.act()
        frame = {"observation.state": observation["agent_pos"], "action": action, "task": env.task}
        for camera, image in observation["pixels"].items():
            frame[f"observation.images.{camera}"] = image
        add_frame(frame)
        observation, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return step if info["is_success"] else None
    return None


__all__ = ["ROBOT_TYPE", "dataset_features", "main", "record_demonstrations"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dexloop.envs``: records expert demonstrations of ``so101_push``."""
    parser = argparse.ArgumentParser(
        prog="python -m dexloop.envs",
        description="Record scripted-expert demonstrations of the simulated SO-101 push task into a "
        "LeRobot dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--dataset.repo_id", dest="repo_id", default="dexloop/so101_push", help="dataset name"
    )
    parser.add_argument("--dataset.root", dest="root", required=True, help="a folder that does not exist yet")
    parser.add_argument(
        "--dataset.num_episodes",
        dest="num_episodes",
        type=int,
        default=50,
        help="successful episodes to record",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first attempt (then seed+1, ...)")
    parser.add_argument(
        "--env.image_height", dest="height", type=int, default=IMAGE_SIZE[0], help="camera pixels"
    )
    parser.add_argument(
        "--env.image_width", dest="width", type=int, default=IMAGE_SIZE[1], help="camera pixels"
    )
    parser.add_argument(
        "--env.cameras", dest="cameras", default=",".join(CAMERAS), help="comma-separated: top, wrist"
    )
    parser.add_argument(
        "--env.use_degrees",
        dest="use_degrees",
        type=lambda text: text.lower() in ("1", "true", "yes"),
        default=True,
        help="body joints in degrees (else -100..100)",
    )
    args = parser.parse_args(argv)
    try:
        summary = record_demonstrations(
            args.repo_id,
            args.root,
            args.num_episodes,
            args.seed,
            image_size=(args.height, args.width),
            cameras=tuple(name.strip() for name in args.cameras.split(",") if name.strip()),
            use_degrees=args.use_degrees,
        )
    except (EnvError, FileExistsError) as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    print(
        f"recorded {summary['episodes']} episodes ({summary['frames']} frames) into {summary['root']} in "
        f"{summary['seconds']:.0f} s; failed seeds: {summary['failed_seeds'] or 'none'}; evaluate on seeds "
        f">= {summary['next_seed']}"
    )
    return 0
