"""Rolling a policy out in vector envs and scoring the episodes, as LeRobot 0.6.1's ``lerobot-eval``.

``rollout`` runs one batch of episodes (one per sub-env) to the end of the slowest, ``eval_policy``
runs as many batches as ``n_episodes`` needs and scores them, ``eval_policy_all`` does that for each
task of a ``make_env`` mapping and aggregates, in the layout of LeRobot's ``eval_info.json``.

The arithmetic is LeRobot's, so the figures are comparable with LeRobot's for the same checkpoint
and seeds: batch ``b`` of ``n`` envs is reset with seeds ``start_seed + b*n ... + (b+1)*n - 1``; an
env's ``done`` is latched at its first termination or truncation, and all are done at the
``_max_episode_steps``-th step; an episode's ``sum_reward`` / ``max_reward`` / ``success`` are taken
over the steps up to and including ``first done + 1`` (LeRobot's mask keeps one step past the end;
with same-step autoreset that step belongs to the env's next episode, and LeRobot counts it, so it
is counted here too); success is ``info["final_info"]["is_success"]`` at an episode's end (or
``info["is_success"]`` when no env ended in the step). Episodes of the last batch beyond
``n_episodes`` are run and dropped.

Observations reach the policy as LeRobot's ``preprocess_observation`` makes them: uint8 HWC images
become float32 CHW tensors in [0, 1] under ``observation.image`` (one camera, ``pixels``) or
``observation.images.<camera>`` (``pixels`` a dict), ``agent_pos`` ``observation.state``,
``environment_state`` ``observation.environment_state``, other arrays ``observation.<key>``.
Videos of the first episodes (``env.render()`` after the reset and after every step, cut at the
episode's first done) are encoded with dexloop's own encoder (H.264 mp4, LeRobot's choice).
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import trange

from dexloop.errors import EnvError, PolicyError

logger = logging.getLogger("dexloop.eval")

ACTION = "action"
OBS_STR = "observation"
OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGE = "observation.image"
OBS_IMAGES = "observation.images"
# Passed in reset(options=...) at the start of each rollout, as LeRobot does: wrappers that freeze a
# finished sub-env tell a genuine new episode from gymnasium's argument-less autoreset by it.
NEW_ROLLOUT_OPTION = "lerobot_new_rollout"
MAX_EPISODES_RENDERED = 10


def _as_batched_float(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
    tensor = tensor.float()
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def _image_tensor(key: str, image: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.asarray(image))
    if tensor.ndim == 3:  # one env, not vectorised
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise EnvError(
            f"observation {key!r}: expected (batch, height, width, channels) images, got {tuple(tensor.shape)}"
        )
    _, h, w, c = tensor.shape
    if not (c < h and c < w):
        raise EnvError(f"observation {key!r}: expected channels-last images, got shape {tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8:
        raise EnvError(f"observation {key!r}: expected uint8 images, got {tensor.dtype}")
    return tensor.permute(0, 3, 1, 2).contiguous().to(torch.float32) / 255


def preprocess_observation(observations: dict[str, Any]) -> dict[str, Any]:
    """A vector env's observation as a LeRobot policy batch (see the module documentation)."""
    out: dict[str, Any] = {}
    if "pixels" in observations:
        pixels = observations["pixels"]
        images = (
            {f"{OBS_IMAGES}.{name}": image for name, image in pixels.items()}
            if isinstance(pixels, dict)
            else {OBS_IMAGE: pixels}
        )
        for key, image in images.items():
            out[key] = _image_tensor(key, image)
    if "environment_state" in observations:
        out[OBS_ENV_STATE] = _as_batched_float(observations["environment_state"])
    if "agent_pos" in observations:
        out[OBS_STATE] = _as_batched_float(observations["agent_pos"])
    handled = {"pixels", "environment_state", "agent_pos"}
    for key, value in observations.items():
        target = f"{OBS_STR}.{key}"
        if key in handled or target in out:
            continue
        if isinstance(value, np.ndarray | torch.Tensor):
            out[target] = _as_batched_float(value)
    return out


def _call_all(env: gym.vector.VectorEnv, name: str) -> list | None:
    try:
        return list(env.call(name))
    except (AttributeError, NotImplementedError):
        return None


def _task_strings(env: gym.vector.VectorEnv) -> list[str]:
    """The sub-envs' task descriptions (``task_description``, else ``task``, else empty strings)."""
    return _call_all(env, "task_description") or _call_all(env, "task") or [""] * env.num_envs


def _successes(info: dict, num_envs: int) -> list[bool]:
    if "final_info" in info:
        final_info = info["final_info"]
        if isinstance(final_info, dict):
            value = final_info.get("is_success", [False] * num_envs)
        else:  # gymnasium < 1.0: a per-env sequence with dicts for the envs that just finished
            return [
                bool(item.get("is_success", False)) if isinstance(item, dict) else False
                for item in final_info
            ]
    elif "is_success" in info:
        value = info["is_success"]
    else:
        return [False] * num_envs
    return [bool(v) for v in value.tolist()] if hasattr(value, "tolist") else [bool(value)] * num_envs


def rollout(
    env: gym.vector.VectorEnv,
    policy: torch.nn.Module,
    preprocessor: Callable[[dict], dict],
    postprocessor: Callable[[torch.Tensor], torch.Tensor],
    seeds: list[int] | None = None,
    render_callback: Callable[[gym.vector.VectorEnv], None] | None = None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """One episode in each sub-env of ``env``, all run until the last is done (or the step limit).

    Returns (batch, steps) tensors: ``action`` (batch, steps, action_dim), ``reward``, ``success``
    (per step) and ``done`` (cumulative: True from an env's first end on)."""
    policy.reset()
    observation, _ = env.reset(seed=seeds, options={NEW_ROLLOUT_OPTION: True})
    if render_callback is not None:
        render_callback(env)
    max_steps = int(env.call("_max_episode_steps")[0])

    actions, rewards, successes_per_step, dones = [], [], [], []
    done = np.zeros(env.num_envs, dtype=bool)
    step = 0
    bar = trange(
        max_steps, desc=f"Running rollout with at most {max_steps} steps", leave=False, disable=not progress
    )
    try:
        while not np.all(done) and step < max_steps:
            batch = preprocess_observation(observation)
            batch["task"] = _task_strings(env)
            batch = preprocessor(batch)
            with torch.inference_mode():
                action = policy.select_action(batch)
            action = postprocessor(action)
            action_numpy = action.to("cpu").numpy()
            if action_numpy.ndim != 2:
                raise PolicyError(
                    f"the policy's actions must be (batch, action_dim), got {action_numpy.shape}"
                )
            observation, reward, terminated, truncated, info = env.step(action_numpy)
            if render_callback is not None:
                render_callback(env)
            successes = _successes(info, env.num_envs)
            done = terminated | truncated | done
            if step + 1 == max_steps:
                done = np.ones_like(done, dtype=bool)
            actions.append(torch.from_numpy(action_numpy))
            rewards.append(torch.from_numpy(np.asarray(reward)))
            dones.append(torch.from_numpy(done))
            successes_per_step.append(torch.tensor(successes))
            step += 1
            running = torch.stack(successes_per_step, dim=1).any(dim=1).float().mean().item()
            bar.set_postfix({"running_success_rate": f"{running * 100:.1f}%"})
            bar.update()
    finally:
        bar.close()
    return {
        ACTION: torch.stack(actions, dim=1),
        "reward": torch.stack(rewards, dim=1),
        "success": torch.stack(successes_per_step, dim=1),
        "done": torch.stack(dones, dim=1),
    }


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> None:
    """Writes RGB frames (T, H, W, 3 uint8) as an H.264 mp4 with dexloop's encoder (odd sizes are
    cropped by one pixel, as yuv420p needs even ones); the file appears complete or not at all."""
    from dexloop.video import RGBEncoderConfig, open_encoder

    path = Path(path)
    frames = np.asarray(frames)
    height = frames.shape[1] - frames.shape[1] % 2
    width = frames.shape[2] - frames.shape[2] % 2
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    partial.unlink(missing_ok=True)
    # LeRobot's write_video leaves libx264 at its own settings (CRF 23); g is libx264's default too.
    encoder = open_encoder(
        str(partial), RGBEncoderConfig(vcodec="h264", g=250, crf=23), width=width, height=height, fps=int(fps)
    )
    try:
        for frame in frames:
            encoder.add_frame(np.ascontiguousarray(frame[:height, :width, :3]))
        encoder.end_episode()
        encoder.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def eval_policy(
    env: gym.vector.VectorEnv,
    policy: torch.nn.Module,
    preprocessor: Callable[[dict], dict],
    postprocessor: Callable[[torch.Tensor], torch.Tensor],
    n_episodes: int,
    max_episodes_rendered: int = 0,
    videos_dir: Path | None = None,
    start_seed: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Scores ``n_episodes`` episodes of ``policy`` in ``env`` (LeRobot's ``eval_policy``).

    Returns ``{"per_episode": [{episode_ix, sum_reward, max_reward, success, seed}], "aggregated":
    {avg_sum_reward, avg_max_reward, pc_success, eval_s, eval_ep_s}}`` and ``video_paths`` when
    episodes are rendered (the first ``max_episodes_rendered``, ``videos_dir/eval_episode_<i>.mp4``)."""
    if n_episodes < 1:
        raise EnvError(f"eval.n_episodes must be at least 1, got {n_episodes}")
    if max_episodes_rendered > 0 and not videos_dir:
        raise EnvError("rendering episodes (max_episodes_rendered > 0) needs a videos_dir")
    start = time.time()
    was_training = policy.training
    policy.eval()
    n_batches = n_episodes // env.num_envs + int(n_episodes % env.num_envs != 0)
    sum_rewards: list[float] = []
    max_rewards: list[float] = []
    all_successes: list[bool] = []
    all_seeds: list[int | None] = []
    video_paths: list[str] = []
    n_rendered = 0
    frames: list[np.ndarray] = []

    def render_frame(vec: gym.vector.VectorEnv) -> None:
        if n_rendered >= max_episodes_rendered:
            return
        count = min(max_episodes_rendered - n_rendered, vec.num_envs)
        if isinstance(vec, gym.vector.SyncVectorEnv):
            frames.append(np.stack([vec.envs[i].render() for i in range(count)]))
        else:  # an AsyncVectorEnv renders every sub-env; keep the ones wanted
            frames.append(np.stack(vec.call("render")[:count]))

    fps = env.metadata.get("render_fps", 30)
    bar = trange(n_batches, desc="Stepping through eval batches", disable=not progress)
    try:
        for batch_ix in bar:
            frames = []
            seeds = (
                None
                if start_seed is None
                else list(
                    range(start_seed + batch_ix * env.num_envs, start_seed + (batch_ix + 1) * env.num_envs)
                )
            )
            data = rollout(
                env,
                policy,
                preprocessor,
                postprocessor,
                seeds=seeds,
                render_callback=render_frame if max_episodes_rendered > 0 else None,
                progress=progress,
            )
            n_steps = data["done"].shape[1]
            # argmax returns the first maximum: the step of each env's first done.
            done_indices = torch.argmax(data["done"].to(int), dim=1)
            mask = (torch.arange(n_steps) <= (done_indices + 1).unsqueeze(1).expand(-1, n_steps)).int()
            sum_rewards.extend((data["reward"] * mask).sum(dim=1).tolist())
            max_rewards.extend((data["reward"] * mask).max(dim=1).values.tolist())
            all_successes.extend((data["success"] * mask).any(dim=1).tolist())
            all_seeds.extend(seeds if seeds else [None] * env.num_envs)

            if max_episodes_rendered > 0 and frames:
                stacked = np.stack(frames, axis=1)  # (b, t, h, w, c)
                for episode_frames, done_index in zip(stacked, done_indices.tolist(), strict=False):
                    if n_rendered >= max_episodes_rendered:
                        break
                    videos_dir.mkdir(parents=True, exist_ok=True)
                    path = videos_dir / f"eval_episode_{n_rendered}.mp4"
                    # frame 0 is the reset's: done_index + 1 steps after it, the last observation included
                    write_video(path, episode_frames[: done_index + 1], fps)
                    video_paths.append(str(path))
                    n_rendered += 1
            bar.set_postfix({"running_success_rate": f"{np.mean(all_successes[:n_episodes]) * 100:.1f}%"})
    finally:
        bar.close()
        policy.train(was_training)

    elapsed = time.time() - start
    info: dict[str, Any] = {
        "per_episode": [
            {"episode_ix": i, "sum_reward": s, "max_reward": m, "success": ok, "seed": seed}
            for i, (s, m, ok, seed) in enumerate(
                zip(
                    sum_rewards[:n_episodes],
                    max_rewards[:n_episodes],
                    all_successes[:n_episodes],
                    all_seeds[:n_episodes],
                    strict=True,
                )
            )
        ],
        "aggregated": {
            "avg_sum_reward": float(np.nanmean(sum_rewards[:n_episodes])),
            "avg_max_reward": float(np.nanmean(max_rewards[:n_episodes])),
            "pc_success": float(np.nanmean(all_successes[:n_episodes]) * 100),
            "eval_s": elapsed,
            "eval_ep_s": elapsed / n_episodes,
        },
    }
    if max_episodes_rendered > 0:
        info["video_paths"] = video_paths
    return info


def _mean(values: list) -> float:
    return float(np.nanmean(np.array(values, dtype=float))) if values else float("nan")


def eval_policy_all(
    envs: dict[str, dict[int, gym.vector.VectorEnv]],
    policy: torch.nn.Module,
    preprocessor: Callable[[dict], dict],
    postprocessor: Callable[[torch.Tensor], torch.Tensor],
    n_episodes: int,
    *,
    max_episodes_rendered: int = 0,
    videos_dir: Path | None = None,
    start_seed: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``eval_policy`` on every task of a ``make_env`` mapping (one after the other), in the layout
    LeRobot writes to eval_info.json: ``per_task`` (each task's per-episode lists), ``per_group``
    (each suite's averages) and ``overall`` (all episodes, with ``eval_s`` / ``eval_ep_s``). Videos
    go to ``videos_dir/<suite>_<task_id>/``. Each vector env is closed once evaluated."""
    start = time.time()
    keys = ("sum_rewards", "max_rewards", "successes", "video_paths", "predicted_video_paths")
    groups: dict[str, dict[str, list]] = defaultdict(lambda: {k: [] for k in keys})
    overall: dict[str, list] = {k: [] for k in keys}
    per_task: list[dict[str, Any]] = []
    was_training = policy.training
    policy.eval()
    try:
        for group, tasks in envs.items():
            for task_id, env in tasks.items():
                task_videos = None
                if videos_dir is not None and max_episodes_rendered > 0:
                    task_videos = Path(videos_dir) / f"{group}_{task_id}"
                    task_videos.mkdir(parents=True, exist_ok=True)
                try:
                    result = eval_policy(
                        env,
                        policy,
                        preprocessor,
                        postprocessor,
                        n_episodes,
                        max_episodes_rendered=max_episodes_rendered,
                        videos_dir=task_videos,
                        start_seed=start_seed,
                        progress=progress,
                    )
                finally:
                    env.close()
                episodes = result["per_episode"]
                metrics = {
                    "sum_rewards": [e["sum_reward"] for e in episodes],
                    "max_rewards": [e["max_reward"] for e in episodes],
                    "successes": [e["success"] for e in episodes],
                    "video_paths": result.get("video_paths", []),
                    "predicted_video_paths": [],
                }
                for key in keys:
                    groups[group][key].extend(metrics[key])
                    overall[key].extend(metrics[key])
                per_task.append({"task_group": group, "task_id": task_id, "metrics": metrics})
    finally:
        policy.train(was_training)

    def aggregate(acc: dict[str, list]) -> dict[str, Any]:
        return {
            "avg_sum_reward": _mean(acc["sum_rewards"]),
            "avg_max_reward": _mean(acc["max_rewards"]),
            "pc_success": _mean(acc["successes"]) * 100 if acc["successes"] else float("nan"),
            "n_episodes": len(acc["sum_rewards"]),
        }

    per_group = {
        group: {
            **aggregate(acc),
            "video_paths": list(acc["video_paths"]),
            "predicted_video_paths": list(acc["predicted_video_paths"]),
        }
        for group, acc in groups.items()
    }
    elapsed = time.time() - start
    overall_info = {
        **aggregate(overall),
        "eval_s": elapsed,
        "eval_ep_s": elapsed / max(1, len(overall["sum_rewards"])),
        "video_paths": list(overall["video_paths"]),
        "predicted_video_paths": list(overall["predicted_video_paths"]),
    }
    return {"per_task": per_task, "per_group": per_group, "overall": overall_info}


__all__ = [
    "NEW_ROLLOUT_OPTION",
    "eval_policy",
    "eval_policy_all",
    "preprocess_observation",
    "rollout",
    "write_video",
]
