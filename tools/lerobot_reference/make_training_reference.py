#!/usr/bin/env python
"""Reference outputs of LeRobot 0.6.1's training pieces, for tests/training/.

Run by hand with the LeRobot peer (the tests do not need LeRobot):

    /tmp/lerobot-peer-main/bin/python tools/lerobot_reference/make_training_reference.py --out tests/data/training

(the LeRobot peer with dexloop installed: tests/synth.py, which writes the reference run's dataset,
uses dexloop's parquet writer; everything measured is LeRobot's).

It writes, under ``--out``:

* ``lr_schedules.json``: for each scheduler configuration (every LeRobot scheduler type, and each
  diffusers schedule name the ``diffuser`` type reaches), the learning rate ``get_last_lr()[0]``
  LeRobot's scheduler gives before each optimizer step, at a sample of steps.
* ``optimizer/``: a tiny model's initial weights, the weights after 3 and 4 AdamW steps under a
  cosine schedule, and LeRobot's ``save_optimizer_state`` / ``save_scheduler_state`` files after
  step 3 (``training_state/``); ``multi_adam/`` the same for a dict of two Adam optimizers.
* ``rng/``: LeRobot's ``rng_state.safetensors`` after ``set_seed(1234)`` and one draw each, and the
  draws that follow once it is loaded back.
* ``sampler.json``: ``EpisodeAwareSampler`` orders (shuffled, drop_n_last_frames, episode subsets),
  ``compute_sampler_state`` values, and the per-rank batches accelerate's ``BatchSamplerShard``
  makes of them (2 and 3 processes, even batches).
* ``train_config.json``: ``draccus.encode`` of LeRobot's default ``TrainPipelineConfig`` (policy left
  out), with the default optimizer/scheduler choices of each type, and the validated configs
  ``lerobot-train`` saves for ``--policy.type=act`` / ``diffusion`` with a few flags.
* ``lerobot_act_run/``: ``lerobot-train`` of a tiny ACT (dropout and VAE on) for 12 steps on the
  synthetic dataset ``tests/synth.py`` writes for ``STATE_DATASET``: every step's loss
  (``losses.json``, with the flags) and its checkpoint after step 6 (``checkpoints/000006``).
* ``lerobot_diffusion_run/``: the same for a tiny Diffusion Policy (2 steps) on ``CAMERA_DATASET``
  (one 32x32 camera): its losses.

Only LeRobot's public API is called; nothing of LeRobot is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch


def lr_cases() -> list[dict]:
    """Scheduler configurations to sample: (type, fields, optimizer lr, num_training_steps)."""
    cases = [
        ("diffuser", {"name": "cosine", "num_warmup_steps": 500}, 1e-4, 3000),
        ("diffuser", {"name": "cosine", "num_warmup_steps": 0}, 1e-4, 200),
        ("diffuser", {"name": "linear", "num_warmup_steps": 10}, 3e-4, 100),
        ("diffuser", {"name": "cosine_with_restarts", "num_warmup_steps": 7}, 1e-3, 90),
        ("diffuser", {"name": "polynomial", "num_warmup_steps": 5}, 1e-3, 60),
        ("diffuser", {"name": "constant", "num_warmup_steps": None}, 1e-3, 20),
        ("diffuser", {"name": "constant_with_warmup", "num_warmup_steps": 9}, 1e-3, 40),
        ("vqbet", {"num_warmup_steps": 10, "num_vqvae_training_steps": 20, "num_cycles": 0.5}, 1e-4, 120),
        ("constant_with_warmup", {"num_warmup_steps": 13}, 2e-4, 50),
        ("cosine_annealing_with_warmup", {"num_warmup_steps": 6}, 5e-4, 70),
        (
            "cosine_decay_with_warmup",
            {"num_warmup_steps": 1000, "num_decay_steps": 30000, "peak_lr": 2.5e-5, "decay_lr": 2.5e-6},
            2.5e-5,
            30000,
        ),
        (
            "cosine_decay_with_warmup",
            {"num_warmup_steps": 1000, "num_decay_steps": 30000, "peak_lr": 2.5e-5, "decay_lr": 2.5e-6},
            2.5e-5,
            3000,
        ),
        (
            "cosine_decay_with_warmup",
            {"num_warmup_steps": 100, "num_decay_steps": 500, "peak_lr": 1e-4, "decay_lr": 2.5e-6},
            1e-4,
            800,
        ),
    ]
    return [{"type": t, "fields": f, "lr": lr, "num_training_steps": n} for t, f, lr, n in cases]


def sample_steps(case: dict) -> list[int]:
    total = case["num_training_steps"]
    fields = case["fields"]
    marks = {total - 1, total, total + 3}
    for key in ("num_warmup_steps", "num_vqvae_training_steps", "num_decay_steps"):
        value = fields.get(key)
        if value:
            marks |= {value - 1, value, value + 1}
    steps = set(range(min(total, 40))) | set(range(0, total + 4, max(1, total // 150))) | marks
    return sorted(s for s in steps if 0 <= s <= total + 3)


def make_lr_schedules(out: Path) -> None:
    from lerobot.optim.schedulers import LRSchedulerConfig

    results = []
    for case in lr_cases():
        config = LRSchedulerConfig.get_choice_class(case["type"])(**case["fields"])
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.Adam([parameter], lr=case["lr"])
        scheduler = config.build(optimizer, case["num_training_steps"])
        wanted = set(sample_steps(case))
        lrs = {}
        for step in range(max(wanted) + 1):
            if step in wanted:
                lrs[str(step)] = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
        results.append({**case, "lrs": lrs})
    (out / "lr_schedules.json").write_text(json.dumps(results, indent=1))


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(3, 4)
        self.second = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def tiny_step(model: TinyModel, optimizer, step: int) -> None:
    x = torch.linspace(-1, 1, 15).reshape(5, 3) * (step + 1)
    loss = (model(x) ** 2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def make_optimizer_state(out: Path) -> None:
    from lerobot.optim.optimizers import AdamWConfig, MultiAdamConfig, save_optimizer_state
    from lerobot.optim.schedulers import DiffuserSchedulerConfig, save_scheduler_state
    from safetensors.torch import save_file

    folder = out / "optimizer"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "training_state").mkdir(parents=True)
    torch.manual_seed(0)
    model = TinyModel()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, folder / "model_init.safetensors")
    optimizer = AdamWConfig(lr=1e-3, weight_decay=1e-4).build(model.parameters())
    scheduler = DiffuserSchedulerConfig(name="cosine", num_warmup_steps=2).build(optimizer, 10)
    for step in range(3):
        tiny_step(model, optimizer, step)
        scheduler.step()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, folder / "model_step3.safetensors")
    save_optimizer_state(optimizer, folder / "training_state")
    save_scheduler_state(scheduler, folder / "training_state")
    tiny_step(model, optimizer, 3)
    scheduler.step()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, folder / "model_step4.safetensors")
    (folder / "lr_step4.json").write_text(json.dumps(scheduler.get_last_lr()))

    folder = out / "multi_adam"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "training_state").mkdir(parents=True)
    torch.manual_seed(1)
    model = TinyModel()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, folder / "model_init.safetensors")
    config = MultiAdamConfig(lr=1e-3, optimizer_groups={"second": {"lr": 5e-4, "eps": 1e-6}})
    optimizers = config.build({"first": model.first.parameters(), "second": model.second.parameters()})
    x = torch.linspace(-1, 1, 15).reshape(5, 3)
    for _ in range(2):
        (model(x) ** 2).mean().backward()
        for single in optimizers.values():
            single.step()
            single.zero_grad()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, folder / "model_step2.safetensors")
    save_optimizer_state(optimizers, folder / "training_state")


def make_rng_state(out: Path) -> None:
    from lerobot.utils.random_utils import load_rng_state, save_rng_state, set_seed

    folder = out / "rng"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    set_seed(1234)
    random.random(), np.random.rand(), torch.rand(1)
    save_rng_state(folder)
    set_seed(99)  # anything: the load must bring the saved state back
    load_rng_state(folder)
    draws = {
        "random": [random.random() for _ in range(3)],
        "numpy": np.random.rand(3).tolist(),
        "numpy_normal": np.random.randn(3).tolist(),
        "torch": torch.rand(3).tolist(),
    }
    (folder / "draws_after_load.json").write_text(json.dumps(draws, indent=1))


def make_sampler(out: Path) -> None:
    from accelerate.data_loader import BatchSamplerShard
    from lerobot.datasets.sampler import EpisodeAwareSampler, compute_sampler_state

    starts, ends = [0, 7, 19, 20, 33], [7, 19, 20, 33, 45]
    cases = []
    for kwargs in (
        {"shuffle": False},
        {"shuffle": True, "seed": 1000},
        {"shuffle": True, "seed": 3, "drop_n_last_frames": 2},
        {"shuffle": True, "seed": 1000, "drop_n_first_frames": 1, "episode_indices_to_use": [0, 3, 4]},
    ):
        sampler = EpisodeAwareSampler(starts, ends, **kwargs)
        epochs = [list(sampler) for _ in range(2)]
        cases.append({"kwargs": kwargs, "len": len(sampler), "epochs": epochs})
    states = []
    for step, num_frames, batch_size, processes in [
        (0, 45, 4, 1),
        (11, 45, 4, 1),
        (12, 45, 4, 1),
        (7, 45, 4, 2),
        (30, 45, 8, 3),
    ]:
        states.append(
            {
                "args": [step, num_frames, batch_size, processes],
                "state": compute_sampler_state(step, num_frames, batch_size, processes),
            }
        )
    shards = []
    for batch_size, processes in [(4, 2), (8, 3), (16, 2)]:
        sampler = EpisodeAwareSampler(starts, ends, shuffle=True, seed=1000)
        order = list(sampler)
        batch_sampler = torch.utils.data.BatchSampler(order, batch_size=batch_size, drop_last=False)
        per_rank = [list(BatchSamplerShard(batch_sampler, processes, rank)) for rank in range(processes)]
        shards.append(
            {"order": order, "batch_size": batch_size, "num_processes": processes, "batches": per_rank}
        )
    (out / "sampler.json").write_text(json.dumps({"samplers": cases, "states": states, "shards": shards}))


def make_train_config(out: Path) -> None:
    import draccus
    import lerobot.policies  # noqa: F401  (registers the policy types)
    from lerobot.configs.default import DatasetConfig
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.optim.optimizers import OptimizerConfig
    from lerobot.optim.schedulers import LRSchedulerConfig

    config = TrainPipelineConfig(dataset=DatasetConfig(repo_id="user/dataset"))
    encoded = draccus.encode(config)
    optimizers = {}
    for name in ("adam", "adamw", "sgd", "multi_adam"):
        optimizers[name] = draccus.encode(OptimizerConfig.get_choice_class(name)())
    schedulers = {
        "diffuser": draccus.encode(LRSchedulerConfig.get_choice_class("diffuser")()),
        "constant_with_warmup": draccus.encode(LRSchedulerConfig.get_choice_class("constant_with_warmup")()),
    }
    # What lerobot-train saves as train_config.json for the same flags (validated: presets filled).
    validated = {}
    for policy_type in ("act", "diffusion"):
        flags = [
            "--dataset.repo_id=user/dataset",
            f"--policy.type={policy_type}",
            "--policy.push_to_hub=false",
            "--policy.device=cpu",
            "--output_dir=/nonexistent/train_out",
            "--steps=1000",
            "--batch_size=4",
            "--eval.batch_size=1",
        ]
        sys.argv = ["lerobot-train", *flags]
        config = draccus.parse(TrainPipelineConfig, args=flags)
        config.validate()
        validated[policy_type] = {"flags": flags, "train_config": draccus.encode(config)}
    payload = {
        "train_config": encoded,
        "optimizers": optimizers,
        "schedulers": schedulers,
        "validated": validated,
    }
    (out / "train_config.json").write_text(json.dumps(payload, indent=2, default=str))


# The datasets of the lerobot-train reference runs (tests/training rebuild them with the same calls).
STATE_DATASET = {
    "fps": 10,
    "episode_lengths": [20, 25, 15],
    "cameras": {},
    "state_dim": 4,
    "extra_features": {"observation.environment_state": ("float32", [3])},
}
CAMERA_DATASET = {
    "fps": 10,
    "episode_lengths": [12, 10],
    "cameras": {"observation.images.top": {"height": 32, "width": 32, "codec": "libx264"}},
    "state_dim": 4,
}
ACT_FLAGS = [
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
    "--policy.pretrained_backbone_weights=null",
    "--policy.push_to_hub=false",
    "--policy.device=cpu",
    "--batch_size=8",
    "--steps=12",
    "--save_freq=6",
    "--log_freq=1",
    "--num_workers=0",
]
DIFFUSION_FLAGS = [
    "--policy.type=diffusion",
    "--policy.use_group_norm=true",
    "--policy.pretrained_backbone_weights=null",
    "--policy.down_dims=[32,64]",
    "--policy.horizon=8",
    "--policy.n_action_steps=4",
    "--policy.diffusion_step_embed_dim=16",
    "--policy.spatial_softmax_num_keypoints=8",
    "--policy.push_to_hub=false",
    "--policy.device=cpu",
    "--batch_size=4",
    "--steps=2",
    "--save_freq=1",
    "--log_freq=1",
    "--num_workers=0",
]


def make_lerobot_run(
    out: Path, name: str, dataset: dict, flags: list[str], keep_checkpoint: str | None
) -> None:
    import subprocess
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from synth import CameraSpec, write_v3_dataset

    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "dataset"
        cameras = {key: CameraSpec(**spec) for key, spec in dataset["cameras"].items()}
        write_v3_dataset(root, **{**dataset, "cameras": cameras})
        run = Path(temporary) / "run"
        losses = Path(temporary) / "losses.json"
        command_flags = [
            "--dataset.repo_id=synth/training",
            f"--dataset.root={root}",
            *flags,
            "--env_eval_freq=0",
            f"--output_dir={run}",
        ]
        script = Path(__file__).with_name("lerobot_train_on_dexloop.py")
        command = [
            sys.executable,
            str(script),
            "--readers",
            "lerobot",
            "--losses-out",
            str(losses),
            "--",
            *command_flags,
        ]
        subprocess.run(command, check=True)
        recorded = json.loads(losses.read_text())["losses"]
        if keep_checkpoint:
            shutil.copytree(run / "checkpoints" / keep_checkpoint, folder / "checkpoints" / keep_checkpoint)
    payload = {"flags": flags, "dataset": dataset, "losses": recorded}
    (folder / "losses.json").write_text(json.dumps(payload, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_lr_schedules(args.out)
    make_optimizer_state(args.out)
    make_rng_state(args.out)
    make_sampler(args.out)
    make_train_config(args.out)
    make_lerobot_run(args.out, "lerobot_act_run", STATE_DATASET, ACT_FLAGS, keep_checkpoint="000006")
    make_lerobot_run(args.out, "lerobot_diffusion_run", CAMERA_DATASET, DIFFUSION_FLAGS, keep_checkpoint=None)
    print(f"written under {args.out}")


if __name__ == "__main__":
    main()
