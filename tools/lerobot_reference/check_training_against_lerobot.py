#!/usr/bin/env python
"""``dexloop train`` against LeRobot 0.6.1's ``lerobot-train``, by hand (the tests use stored results).

    .venv/bin/python tools/lerobot_reference/check_training_against_lerobot.py \\
        --lerobot-python /tmp/lerobot-peer/bin/python [--policy act|diffusion] [--work /tmp/train-check]

On a synthetic dataset (tests/synth.py) it runs, with the same flags:

1. ``lerobot-train`` for 12 steps, checkpoints at 6 and 12 (LeRobot's interpreter);
2. ``dexloop train`` the same (this interpreter); the two loss curves are compared;
3. LeRobot resuming LeRobot's checkpoint 6 and LeRobot resuming dexloop's checkpoint 6: the same
   losses mean the two checkpoints hold the same state (model, optimizer, scheduler, generators);
4. dexloop resuming LeRobot's checkpoint 6, compared with the uninterrupted curve of steps 7..12.

LeRobot's own resume is not step-exact: its DataLoader draws a base seed from torch's generator when
the resumed run opens its first epoch, a draw the uninterrupted run made earlier; dexloop restores the
generators after that draw. Results of 2026-12-02 (torch 2.11 for LeRobot, 2.13 for dexloop, CPU),
for ACT (dropout and VAE on; 60 frames in batches of 8, so step 9 starts a new epoch) and for
Diffusion Policy (one 32x32 camera, Adam with the warmup-cosine preset): the loss curves of 1 and 2
are identical (largest difference 0.0), 3's two runs give identical losses (and differ from the
uninterrupted curve, as explained), and 4 equals the uninterrupted steps 7..12 exactly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ACT = [
    "--policy.type=act",
    "--policy.dim_model=32",
    "--policy.dim_feedforward=64",
    "--policy.n_heads=2",
    "--policy.n_encoder_layers=1",
    "--policy.n_decoder_layers=1",
    "--policy.n_vae_encoder_layers=1",
    "--policy.latent_dim=8",
    "--policy.chunk_size=5",
    "--policy.n_action_steps=5",
]
DIFFUSION = [
    "--policy.type=diffusion",
    "--policy.use_group_norm=true",
    "--policy.down_dims=[32,64]",
    "--policy.horizon=8",
    "--policy.n_action_steps=4",
    "--policy.diffusion_step_embed_dim=16",
    "--policy.spatial_softmax_num_keypoints=8",
]
COMMON = [
    "--policy.pretrained_backbone_weights=null",
    "--policy.push_to_hub=false",
    "--policy.device=cpu",
    "--batch_size=8",
    "--steps=12",
    "--save_freq=6",
    "--log_freq=1",
    "--num_workers=0",
]


def lerobot_train(python: str, flags: list[str], losses: Path) -> list[float]:
    script = REPO / "tools" / "lerobot_reference" / "lerobot_train_on_dexloop.py"
    command = [
        python,
        str(script),
        "--readers",
        "lerobot",
        "--losses-out",
        str(losses),
        "--",
        *flags,
        "--env_eval_freq=0",
    ]
    subprocess.run(command, check=True, capture_output=True)
    return json.loads(losses.read_text())["losses"]


def dexloop_train(flags: list[str], output_dir: Path) -> list[float]:
    subprocess.run([sys.executable, "-m", "dexloop.cli.train", *flags], check=True, capture_output=True)
    with open(output_dir / "metrics.jsonl") as handle:
        return [json.loads(line)["loss"] for line in handle]


def checkpoint_copy(run: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    (target / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "checkpoints" / "000006", target / "checkpoints" / "000006")
    (target / "checkpoints" / "last").symlink_to("000006")
    return target / "checkpoints" / "last" / "pretrained_model" / "train_config.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lerobot-python", required=True)
    parser.add_argument("--policy", choices=["act", "diffusion"], default="act")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dexloop-train-check"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from synth import CameraSpec, write_v3_dataset

    shutil.rmtree(args.work, ignore_errors=True)
    root = args.work / "dataset"
    if args.policy == "act":
        extra = {"observation.environment_state": ("float32", [3])}
        write_v3_dataset(
            root, fps=10, episode_lengths=[20, 25, 15], cameras={}, state_dim=4, extra_features=extra
        )
        policy = ACT
    else:
        cameras = {"observation.images.top": CameraSpec(32, 32, codec="libx264")}
        write_v3_dataset(root, fps=10, episode_lengths=[20, 25, 15], cameras=cameras, state_dim=4)
        policy = DIFFUSION
    flags = ["--dataset.repo_id=synth/check", f"--dataset.root={root}", *policy, *COMMON]

    lerobot_run, dexloop_run = args.work / "lerobot", args.work / "dexloop"
    lerobot = lerobot_train(
        args.lerobot_python, [*flags, f"--output_dir={lerobot_run}"], args.work / "l.json"
    )
    dexloop = dexloop_train([*flags, f"--output_dir={dexloop_run}"], dexloop_run)
    print(f"1/2 lerobot-train: {lerobot}")
    print(f"    dexloop train: {dexloop}")
    print(
        f"    identical: {lerobot == dexloop}; largest difference {max(abs(a - b) for a, b in zip(lerobot, dexloop, strict=True))}"
    )

    resumed = {}
    for name, run in (("lerobot", lerobot_run), ("dexloop", dexloop_run)):
        config = checkpoint_copy(run, args.work / f"lerobot_resumes_{name}")
        resume = ["--resume=true", f"--config_path={config}", f"--output_dir={config.parents[3]}"]
        resumed[name] = lerobot_train(args.lerobot_python, resume, args.work / f"r_{name}.json")
    print(f"3   LeRobot resumes LeRobot's checkpoint 6: {resumed['lerobot']}")
    print(f"    LeRobot resumes dexloop's checkpoint 6: {resumed['dexloop']}")
    print(
        f"    same: {resumed['lerobot'] == resumed['dexloop']}; equal to uninterrupted 7..12: {resumed['lerobot'] == lerobot[6:]}"
    )

    config = checkpoint_copy(lerobot_run, args.work / "dexloop_resumes_lerobot")
    target = config.parents[3]
    continued = dexloop_train(["--resume=true", f"--config_path={config}", f"--output_dir={target}"], target)
    print(f"4   dexloop resumes LeRobot's checkpoint 6: {continued}")
    print(f"    equal to the uninterrupted steps 7..12: {continued == lerobot[6:]}")


if __name__ == "__main__":
    main()
