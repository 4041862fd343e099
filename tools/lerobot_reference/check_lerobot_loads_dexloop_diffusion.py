#!/usr/bin/env python
"""Check by hand that Diffusion Policy checkpoints saved by dexloop load in LeRobot 0.6.1 and act the same.

Run with the interpreter that has both LeRobot and dexloop:

    /tmp/lerobot-peer-main/bin/python tools/lerobot_reference/check_lerobot_loads_dexloop_diffusion.py

For each case of tests/policies/diffusion_reference_cases.py, dexloop builds a Diffusion Policy
(its own random initialisation), trains it a few steps with the config's optimizer preset (so the
BatchNorm statistics and every weight move), and saves it with dexloop's ``save_pretrained`` and its
processors. LeRobot then loads the folder (``DiffusionPolicy.from_pretrained`` and
``make_pre_post_processors(pretrained_path=...)``); the check fails unless LeRobot finds exactly the
keys it expects, and unless, after the same ``torch.manual_seed``, LeRobot's processors + policy give
dexloop's actions from raw observations over several steps, and the same training loss.
``--checkpoint FOLDER`` also compares the two on a folder dexloop wrote, e.g. after ``dexloop train``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "policies"))

import diffusion_reference_cases as cases

ATOL = 1e-5


def tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def dexloop_config(case: dict):
    from dexloop.policies.diffusion import DiffusionConfig
    from dexloop.policies.types import FeatureType, PolicyFeature

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


def check_case(name: str, case: dict, root: Path) -> list[str]:
    from lerobot.policies.diffusion import DiffusionPolicy as LeRobotDiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors as lerobot_processors
    from safetensors.torch import load_file

    from dexloop.policies.diffusion import DiffusionPolicy, make_diffusion_pre_post_processors

    config = dexloop_config(case)
    torch.manual_seed(100)
    policy = DiffusionPolicy(config)
    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    policy.train()
    for step in range(3):
        loss, _ = policy.forward(tensors(cases.training_batch(case, f"dexloop-train.{step}")))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    stats = {k: {s: torch.from_numpy(v) for s, v in d.items()} for k, d in cases.dataset_stats(case).items()}
    pre, post = make_diffusion_pre_post_processors(config, dataset_stats=stats)
    folder = root / name
    policy.save_pretrained(folder)
    pre.save_pretrained(folder)
    post.save_pretrained(folder)

    lerobot = LeRobotDiffusionPolicy.from_pretrained(str(folder))
    file_keys = set(load_file(str(folder / "model.safetensors")))
    lerobot_keys = set(lerobot.state_dict())
    if file_keys != lerobot_keys:
        raise SystemExit(
            f"{name}: keys differ; missing in file {sorted(lerobot_keys - file_keys)[:5]}, "
            f"unexpected {sorted(file_keys - lerobot_keys)[:5]}"
        )
    for key, value in load_file(str(folder / "model.safetensors")).items():
        if not torch.equal(lerobot.state_dict()[key].cpu(), value):
            raise SystemExit(f"{name}: LeRobot's {key} differs from the file after loading")
    pre_l, post_l = lerobot_processors(lerobot.config, pretrained_path=str(folder))

    worst = 0.0
    for seed in cases.SEEDS:
        policy.reset()
        lerobot.reset()
        torch.manual_seed(seed)
        ours = [
            post(policy.select_action(pre(tensors(cases.observation(case, f"pipe.{k}", raw=True)))))
            for k in range(cases.N_SELECT_STEPS)
        ]
        torch.manual_seed(seed)
        theirs = [
            post_l(lerobot.select_action(pre_l(tensors(cases.observation(case, f"pipe.{k}", raw=True)))))
            for k in range(cases.N_SELECT_STEPS)
        ]
        for a, b in zip(ours, theirs, strict=True):
            worst = max(worst, (a - b).abs().max().item())

    losses = []
    for impl in (
        DiffusionPolicy.from_pretrained(folder),
        LeRobotDiffusionPolicy.from_pretrained(str(folder)),
    ):
        impl.train()
        torch.manual_seed(7)
        loss, _ = impl.forward(tensors(cases.training_batch(case, "train")))
        losses.append(loss.item())
    loss_diff = abs(losses[0] - losses[1])
    status = "OK" if worst <= ATOL * 2.5 and loss_diff <= ATOL else "MISMATCH"
    return [
        f"{name}: {status} - LeRobot loaded {len(file_keys)} keys (no missing, no unexpected); "
        f"actions over {cases.N_SELECT_STEPS} steps x {len(cases.SEEDS)} seeds: max |dexloop - LeRobot| = {worst:.2e}; "
        f"training loss dexloop {losses[0]:.6f} LeRobot {losses[1]:.6f} (diff {loss_diff:.1e})"
    ]


def check_folder(folder: Path) -> list[str]:
    """A checkpoint folder dexloop wrote (e.g. ``dexloop train``'s ``checkpoints/last/pretrained_model``):
    LeRobot's and dexloop's processors + policy from the same random raw observations and seed."""
    from lerobot.policies.diffusion import DiffusionPolicy as LeRobotDiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors as lerobot_processors

    from dexloop.policies.diffusion import DiffusionPolicy
    from dexloop.policies.factory import make_pre_post_processors

    ours = DiffusionPolicy.from_pretrained(folder)
    pre, post = make_pre_post_processors(ours.config, pretrained_path=str(folder))
    theirs = LeRobotDiffusionPolicy.from_pretrained(str(folder))
    pre_l, post_l = lerobot_processors(theirs.config, pretrained_path=str(folder))
    gen = torch.Generator().manual_seed(0)
    observations = [
        {key: torch.rand(tuple(ft.shape), generator=gen) for key, ft in ours.config.input_features.items()}
        for _ in range(cases.N_SELECT_STEPS)
    ]
    worst = 0.0
    for seed in cases.SEEDS:
        ours.reset()
        theirs.reset()
        torch.manual_seed(seed)
        a = [post(ours.select_action(pre(dict(obs)))) for obs in observations]
        torch.manual_seed(seed)
        b = [post_l(theirs.select_action(pre_l(dict(obs)))) for obs in observations]
        worst = max(worst, *((x - y).abs().max().item() for x, y in zip(a, b, strict=True)))
    status = "OK" if worst <= ATOL else "MISMATCH"
    return [
        f"{folder}: {status} - max |dexloop - LeRobot| over {cases.N_SELECT_STEPS} steps x {len(cases.SEEDS)} seeds = {worst:.2e}"
    ]


def main() -> None:
    import argparse

    import lerobot

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint", type=Path, action="append", help="also check this dexloop-written folder"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"lerobot {lerobot.__version__}, torch {torch.__version__}")
    lines = []
    with tempfile.TemporaryDirectory(prefix="dexloop-diffusion-to-lerobot-") as tmp:
        for name, case in cases.CASES.items():
            lines += check_case(name, case, Path(tmp))
    for folder in args.checkpoint or []:
        lines += check_folder(folder)
    print("\n".join(lines))
    if any("MISMATCH" in line for line in lines):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
