#!/usr/bin/env python
"""Record what LeRobot 0.6.1's Diffusion Policy and its diffusers schedulers compute, for dexloop's tests.

Run by hand with the LeRobot interpreter (the tests do not need LeRobot):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_diffusion_reference.py \
        --out tests/data/policies/diffusion

For every case of tests/policies/diffusion_reference_cases.py it builds a tiny LeRobot
``DiffusionPolicy`` (random-weight, ``pretrained_backbone_weights=None``), fills every tensor of its
state dict with the shared hash ``fill`` (a ResNet-18 is too large to store; the spatial soft-argmax
grid keeps LeRobot's own values), saves it with LeRobot's ``save_pretrained`` and its processors, and
writes to ``<out>/<case>/``:

* LeRobot's config.json and the four processor files, as LeRobot wrote them (and LeRobot's own
  model.safetensors for the case that has no camera);
* ``state_dict.json``: every key of the state dict with its shape and dtype, in LeRobot's order,
  the float64 sum of each filled tensor (so a test knows it fills the same values) and which keys
  keep LeRobot's values (stored in ``kept.safetensors``);
* ``expected.safetensors``: per-tensor sums of the initial weights after
  ``torch.manual_seed(INIT_SEED)`` (same seed, same initialisation), ``select_action`` over several steps after ``torch.manual_seed(seed)``
  (normalised space, and through the processors from raw observations), ``predict_action_chunk``,
  and the training loss and gradient norm in train mode after ``torch.manual_seed(seed)``.

``<out>/schedulers.safetensors`` holds diffusers' DDPMScheduler / DDIMScheduler outputs (schedule,
timesteps, add_noise, and a whole denoising loop with fixed model outputs after a seed).

Only LeRobot's and diffusers' public APIs are called; nothing of them is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "policies"))

import diffusion_reference_cases as cases

PROCESSOR_FILES = (
    "policy_preprocessor.json",
    "policy_preprocessor_step_3_normalizer_processor.safetensors",
    "policy_postprocessor.json",
    "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
)
KEPT_SUFFIXES = (".pool.pos_grid",)


def make_config(case: dict):
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.diffusion import DiffusionConfig

    inputs = {k: PolicyFeature(type=FeatureType[t], shape=tuple(s)) for k, (t, s) in case["features"].items()}
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(case["action_dim"],))}
    kwargs = dict(case["config"])
    for key in ("down_dims", "crop_shape", "resize_shape"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        pretrained_backbone_weights=None,
        push_to_hub=False,
        **kwargs,
    )


def tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def record_case(name: str, case: dict, out: Path, work: Path) -> list[str]:
    from lerobot.policies.diffusion import DiffusionPolicy, make_diffusion_pre_post_processors
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    log = []
    cfg = make_config(case)
    torch.manual_seed(cases.INIT_SEED)
    policy = DiffusionPolicy(cfg)
    state = policy.state_dict()
    # The initialisation after a seed, summarised per tensor (sum, sum of absolute values), float64.
    init_stats = torch.tensor(
        [[v.double().sum().item(), v.double().abs().sum().item()] for v in state.values()],
        dtype=torch.float64,
    )
    filled, manifest, kept = {}, [], {}
    for key, value in state.items():
        dtype = str(value.dtype).removeprefix("torch.")
        entry = {"key": key, "shape": list(value.shape), "dtype": dtype}
        if case.get("store_weights"):
            entry["source"] = "model.safetensors"
            filled[key] = value
        elif key.endswith(KEPT_SUFFIXES):
            entry["source"] = "kept"
            kept[key] = value.clone()
            filled[key] = value
        else:
            entry["source"] = "fill"
            arr = cases.fill(key, tuple(value.shape), dtype)
            entry["sum"] = float(arr.astype(np.float64).sum())
            filled[key] = torch.from_numpy(arr)
        manifest.append(entry)
    policy.load_state_dict(filled, strict=True)

    ckpt = work / name
    policy.save_pretrained(ckpt)
    stats = {k: {s: torch.from_numpy(v) for s, v in d.items()} for k, d in cases.dataset_stats(case).items()}
    pre, post = make_diffusion_pre_post_processors(cfg, dataset_stats=stats)
    pre.save_pretrained(ckpt)
    post.save_pretrained(ckpt)

    case_out = out / name
    shutil.rmtree(case_out, ignore_errors=True)
    case_out.mkdir(parents=True)
    shutil.copy(ckpt / "config.json", case_out / "config.json")
    for fname in PROCESSOR_FILES:
        shutil.copy(ckpt / fname, case_out / fname)
    if case.get("store_weights"):
        shutil.copy(ckpt / "model.safetensors", case_out / "model.safetensors")
    (case_out / "state_dict.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if kept:
        save_file({k: v.contiguous() for k, v in kept.items()}, str(case_out / "kept.safetensors"))

    expected: dict[str, torch.Tensor] = {"init_stats": init_stats}
    n_obs = cfg.n_obs_steps

    # select_action in normalised space over several steps (two or more model calls).
    loaded = DiffusionPolicy.from_pretrained(ckpt)
    loaded.eval()
    for seed in cases.SEEDS:
        loaded.reset()
        torch.manual_seed(seed)
        for k in range(cases.N_SELECT_STEPS):
            obs = tensors(cases.observation(case, f"select.{k}"))
            expected[f"select.seed{seed}.step{k}"] = loaded.select_action(obs).clone()

    # predict_action_chunk on a batch that already holds n_obs_steps frames.
    for seed in cases.SEEDS:
        loaded.reset()
        torch.manual_seed(seed)
        batch = tensors(cases.observation(case, "chunk", time_dim=n_obs))
        expected[f"chunk.seed{seed}"] = loaded.predict_action_chunk(batch).clone()

    # The whole inference path from raw observations: LeRobot's saved processors around select_action.
    pre_l, post_l = make_pre_post_processors(cfg, pretrained_path=str(ckpt))
    for seed in cases.SEEDS:
        loaded.reset()
        torch.manual_seed(seed)
        for k in range(cases.N_SELECT_STEPS):
            raw = tensors(cases.observation(case, f"pipe.{k}", raw=True))
            action = post_l(loaded.select_action(pre_l(raw)))
            expected[f"pipeline.seed{seed}.step{k}"] = action.clone()

    # The training loss (train mode: random crop, BatchNorm batch statistics), from fresh weights.
    for seed in cases.SEEDS:
        trainee = DiffusionPolicy.from_pretrained(ckpt)
        trainee.train()
        batch = tensors(cases.training_batch(case, "train"))
        torch.manual_seed(seed)
        loss, _ = trainee.forward(batch)
        loss.backward()
        grads = [p.grad.flatten() for p in trainee.parameters() if p.grad is not None]
        expected[f"loss.seed{seed}"] = loss.detach().reshape(1).clone()
        expected[f"grad_norm.seed{seed}"] = torch.cat(grads).norm().reshape(1)
        log.append(f"{name}: seed {seed} loss {loss.item():.6f}")

    save_file({k: v.contiguous() for k, v in expected.items()}, str(case_out / "expected.safetensors"))
    log.append(f"{name}: {len(manifest)} state-dict keys, {len(expected)} expected tensors")
    return log


def record_schedulers(out: Path) -> list[str]:
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
    from safetensors.torch import save_file

    expected: dict[str, torch.Tensor] = {}
    shape = cases.SCHEDULER_SHAPE
    for name, spec in cases.SCHEDULER_CASES.items():
        cls = DDPMScheduler if spec["type"] == "DDPM" else DDIMScheduler
        sched = cls(**cases.SCHEDULER_COMMON, **spec["kwargs"])
        expected[f"{name}.alphas_cumprod"] = sched.alphas_cumprod.clone()
        x0 = torch.from_numpy(cases.vector(f"{name}.x0", shape))
        noise = torch.from_numpy(cases.vector(f"{name}.noise", shape, -2.0, 2.0))
        t_noise = torch.tensor([3, 97], dtype=torch.long)
        expected[f"{name}.add_noise"] = sched.add_noise(x0, noise, t_noise)
        sched.set_timesteps(spec["steps"])
        expected[f"{name}.timesteps"] = sched.timesteps.clone()
        torch.manual_seed(7)
        sample = torch.randn(shape)
        for i, t in enumerate(sched.timesteps):
            model_output = torch.from_numpy(cases.vector(f"{name}.model_output.{i}", shape, -1.5, 1.5))
            result = sched.step(model_output, t, sample)
            sample = result.prev_sample
            expected[f"{name}.step{i}.prev_sample"] = sample.clone()
            expected[f"{name}.step{i}.pred_original_sample"] = result.pred_original_sample.clone()
        # What the generator draws next shows how many draws the loop made.
        expected[f"{name}.next_draw"] = torch.randn(1)
    save_file({k: v.contiguous() for k, v in expected.items()}, str(out / "schedulers.safetensors"))
    return [f"schedulers: {len(expected)} tensors"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/data/policies/diffusion"))
    parser.add_argument("--case", action="append", help="only these cases (default: all)")
    args = parser.parse_args()
    import lerobot

    args.out.mkdir(parents=True, exist_ok=True)
    log = [f"lerobot {lerobot.__version__}, torch {torch.__version__}"]
    with tempfile.TemporaryDirectory(prefix="dexloop-diffusion-ref-") as tmp:
        for name, case in cases.CASES.items():
            if args.case and name not in args.case:
                continue
            log += record_case(name, case, args.out, Path(tmp))
    log += record_schedulers(args.out)
    print("\n".join(log))


if __name__ == "__main__":
    main()
