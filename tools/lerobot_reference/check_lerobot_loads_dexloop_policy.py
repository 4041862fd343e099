#!/usr/bin/env python
"""Check by hand that ACT checkpoints saved by dexloop load in real LeRobot 0.6.1 and give dexloop's actions.

Run with the interpreter that has both LeRobot and dexloop:

    /tmp/lerobot-peer-main/bin/python tools/lerobot_reference/check_lerobot_loads_dexloop_policy.py

For each case of tests/policies/act_reference_cases.py (plus one with a full random ResNet-18 and a
default-size-ish transformer), dexloop builds a random-weight ``ACTPolicy`` and its processors with the
case's statistics, saves them with ``save_pretrained`` (config.json, model.safetensors, the processor
json + safetensors files), and computes its outputs. LeRobot then loads the folder with
``ACTPolicy.from_pretrained(strict=True)`` and ``make_pre_post_processors(pretrained_path=...)`` and
computes the same outputs: the select_action sequence, the action chunk and the train-mode loss with
the same torch seed. The largest differences are printed; the script exits non-zero when one exceeds
1e-5 or LeRobot refuses a file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "policies"))
import act_reference_cases as cases  # noqa: E402
from lerobot.policies.act.modeling_act import ACTPolicy as LeACTPolicy  # noqa: E402
from lerobot.policies.factory import make_pre_post_processors as le_make_pre_post_processors  # noqa: E402

import dexloop.policies as dx  # noqa: E402
from dexloop.policies.act import ACTPolicy as DexACTPolicy  # noqa: E402
from dexloop.policies.types import FeatureType, PolicyFeature  # noqa: E402

EXTRA = {
    # A larger model with a freshly initialised ResNet-18 (dexloop's own init, no filled values).
    "act_big": {
        "config": {
            "chunk_size": 20,
            "n_action_steps": 20,
            "dim_model": 128,
            "n_heads": 8,
            "dim_feedforward": 256,
            "n_encoder_layers": 2,
            "n_decoder_layers": 1,
            "n_vae_encoder_layers": 2,
            "pretrained_backbone_weights": None,
        },
        "inputs": {
            "observation.state": ("STATE", (6,)),
            "observation.images.front": ("VISUAL", (3, 96, 128)),
        },
        "action_dim": 6,
        "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
        "steps": 3,
        "batch": 2,
    }
}
cases.CASES.update(EXTRA)


def run(policy, pre, post, name):
    obs = [{k: torch.from_numpy(v) for k, v in o.items()} for o in cases.observations(name)]
    policy.reset()
    actions = torch.stack([post(policy.select_action(pre(dict(o)))) for o in obs])
    policy.reset()
    chunk = post(policy.predict_action_chunk(pre(dict(obs[0]))))
    targets = {k: torch.from_numpy(v) for k, v in cases.training_targets(name).items()}
    batch = pre({**obs[0], **targets})
    policy.train()
    torch.manual_seed(cases.TRAIN_SEED)
    loss, loss_dict = policy.forward(batch)
    policy.eval()
    return actions, chunk, loss.detach(), loss_dict


def main() -> int:
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in cases.CASES.items():
            inputs = {k: PolicyFeature(FeatureType(t), tuple(s)) for k, (t, s) in spec["inputs"].items()}
            cfg = dx.make_policy_config(
                "act",
                input_features=inputs,
                output_features={"action": PolicyFeature(FeatureType.ACTION, (spec["action_dim"],))},
                normalization_mapping=spec["normalization_mapping"],
                device="cpu",
                **spec["config"],
            )
            torch.manual_seed(7)
            policy = DexACTPolicy(cfg)
            pre, post = dx.make_pre_post_processors(cfg, dataset_stats=cases.dataset_stats(name))
            folder = Path(tmp) / name
            policy.save_pretrained(folder)
            pre.save_pretrained(folder)
            post.save_pretrained(folder)
            ours = run(policy, pre, post, name)

            le_policy = LeACTPolicy.from_pretrained(folder, strict=True)
            le_pre, le_post = le_make_pre_post_processors(le_policy.config, pretrained_path=str(folder))
            theirs = run(le_policy, le_pre, le_post, name)
            diffs = {
                "select_action": (ours[0] - theirs[0]).abs().max().item(),
                "chunk": (ours[1] - theirs[1]).abs().max().item(),
                "train_loss": abs(ours[2].item() - theirs[2].item()),
            }
            same_dict = all(np.isclose(ours[3][k], theirs[3][k], atol=1e-6) for k in theirs[3])
            worst = max(worst, *diffs.values())
            print(
                f"{name}: LeRobot loaded {folder.name} (strict); max |dexloop - LeRobot| {diffs}; loss dicts equal: {same_dict}"
            )
    print(f"worst difference {worst:.3g} ({'OK' if worst <= 1e-5 else 'FAIL'})")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
