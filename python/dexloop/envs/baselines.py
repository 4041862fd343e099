"""Reference figures for ``so101_push``: the expert, policies that cannot see, and the simulator's speed.

    python -m dexloop.envs.baselines --episodes 100

prints, over the same unseen seeds:

* the scripted expert's success rate;
* **state-only open-loop replay**: the mean of the expert's action sequences on the training seeds,
  played back whatever the cube's position. The arm always starts in the same pose, so a policy that
  sees only joint states gets the same observations until it touches the cube: what it can do is at
  best this mean motion, which pushes where the cube usually is, not where it is;
* a **random policy** (actions drawn uniformly from the action space, as ``env.action_space.sample()``);
* physics steps per second and rendering frames per second at the observation size.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np

from .expert import PushExpert, run_expert_episode
from .so101_push import IMAGE_SIZE, SUBSTEPS, SO101PushEnv


def expert_actions(seeds: Iterable[int], env: SO101PushEnv | None = None) -> list[np.ndarray]:
    """The expert's action sequence (steps x 6) of each seed's episode (successful or not)."""
    env = env or SO101PushEnv(obs_type="agent_pos")
    expert = PushExpert()
    sequences = []
    for seed in seeds:
        env.reset(seed=seed)
        expert.reset(env)
        actions = []
        for _ in range(env.episode_length):
            action = expert.act()
            actions.append(action)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        sequences.append(np.stack(actions))
    return sequences


def mean_trajectory(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """The step-wise mean of action sequences, each held at its last action past its end."""
    if not sequences:
        raise ValueError("mean_trajectory needs at least one sequence")
    length = max(len(s) for s in sequences)
    padded = [np.concatenate([s, np.repeat(s[-1:], length - len(s), axis=0)]) for s in sequences]
    return np.mean(padded, axis=0).astype(np.float32)


def open_loop_success(actions: np.ndarray, seeds: Iterable[int], env: SO101PushEnv | None = None) -> float:
    """Success rate of playing `actions` (held at the last one once done) from each seed's start."""
    env = env or SO101PushEnv(obs_type="agent_pos")
    successes = []
    for seed in seeds:
        env.reset(seed=seed)
        success = False
        for step in range(env.episode_length):
            _, _, terminated, truncated, info = env.step(actions[min(step, len(actions) - 1)])
            success = bool(info["is_success"])
            if terminated or truncated:
                break
        successes.append(success)
    return float(np.mean(successes))


def random_policy_success(seeds: Iterable[int], env: SO101PushEnv | None = None) -> float:
    """Success rate of uniformly random actions (the action space seeded by each episode's seed)."""
    env = env or SO101PushEnv(obs_type="agent_pos")
    successes = []
    for seed in seeds:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        success = False
        for _ in range(env.episode_length):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            success = bool(info["is_success"])
            if terminated or truncated:
                break
        successes.append(success)
    return float(np.mean(successes))


def timings(image_size: tuple[int, int] = IMAGE_SIZE, steps: int = 300) -> dict[str, float]:
    """Physics steps/s (and control steps/s without rendering) and rendered camera frames/s."""
    env = SO101PushEnv(obs_type="agent_pos")
    env.reset(seed=0)
    action = env.units.to_motor(env.joint_positions).astype(np.float32)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    physics = time.perf_counter() - start
    env.close()
    env = SO101PushEnv(image_size=image_size)
    env.reset(seed=0)
    env.render_camera("top")  # the renderer's first frame sets up its GL context
    start = time.perf_counter()
    for i in range(steps):
        env.render_camera(env.cameras[i % len(env.cameras)])
    render = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps // 3):
        env.step(action)
    with_cameras = time.perf_counter() - start
    env.close()
    return {
        "physics_steps_per_s": steps * SUBSTEPS / physics,
        "control_steps_per_s": steps / physics,
        "render_frames_per_s": steps / render,
        "env_steps_per_s_with_cameras": (steps // 3) / with_cameras,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dexloop.envs.baselines",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes (seeds)")
    parser.add_argument("--train_episodes", type=int, default=50, help="demonstrations averaged")
    parser.add_argument("--eval_seed", type=int, default=100_000, help="first evaluation seed")
    args = parser.parse_args(argv)
    eval_seeds = range(args.eval_seed, args.eval_seed + args.episodes)
    env = SO101PushEnv(obs_type="agent_pos")
    expert = PushExpert()
    start = time.perf_counter()
    results = [run_expert_episode(env, seed, expert) for seed in eval_seeds]
    expert_rate = float(np.mean([r["success"] for r in results]))
    print(
        f"expert: {100 * expert_rate:.0f}% success over {args.episodes} seeds "
        f"(mean {np.mean([r['steps'] for r in results]):.0f} steps, {time.perf_counter() - start:.1f} s)"
    )
    mean = mean_trajectory(expert_actions(range(args.train_episodes), env))
    replay = open_loop_success(mean, eval_seeds, env)
    print(
        f"state-only (mean of {args.train_episodes} demonstrations, open loop): {100 * replay:.0f}% success"
    )
    print(f"random policy: {100 * random_policy_success(eval_seeds, env):.0f}% success")
    for name, value in timings().items():
        print(f"{name}: {value:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
