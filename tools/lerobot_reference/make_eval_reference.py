#!/usr/bin/env python
"""Make the PushT evaluation reference with real LeRobot 0.6.1 for dexloop's eval tests.

Run by hand (it needs LeRobot and gym-pusht, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_eval_reference.py --out tests/data/eval

It builds the tiny random-weight ACT of tests/eval/eval_reference_cases.py in LeRobot (backbone
tensors set to the values tests/policies/act_reference_cases.py defines), saves it with LeRobot's
``save_pretrained`` and processors, runs LeRobot's own ``lerobot-eval`` on it with the case's
arguments (PushT, seeds from 1000), and stores:

* ``<out>/act_pusht/``: the checkpoint, model.safetensors without the backbone tensors (the tests
  put them back), and ``reference.json`` (the backbone keys and shapes, the arguments);
* ``<out>/act_pusht/lerobot_eval_info.json``: LeRobot's eval_info.json (timings and video paths
  included as LeRobot wrote them; the tests compare the rewards and successes);
* ``<out>/act_pusht/lerobot_countdown.json``: what LeRobot's ``eval_policy`` returns for the same
  policy on the case's scripted env (episodes ending at different steps, some by success), in a
  vector env made as LeRobot's ``create_envs`` makes them.

Only LeRobot's public API and its command are used; nothing of LeRobot is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "policies"))
sys.path.insert(0, str(ROOT / "tests" / "eval"))
import act_reference_cases as act_cases  # noqa: E402
import eval_reference_cases as cases  # noqa: E402
from lerobot.configs.types import FeatureType, PolicyFeature  # noqa: E402
from lerobot.policies.act.configuration_act import ACTConfig  # noqa: E402
from lerobot.policies.act.modeling_act import ACTPolicy  # noqa: E402
from lerobot.policies.factory import make_pre_post_processors  # noqa: E402


def build_checkpoint(target: Path) -> dict[str, list[int]]:
    inputs = {k: PolicyFeature(type=FeatureType(t), shape=tuple(s)) for k, (t, s) in cases.INPUTS.items()}
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(cases.ACTION_DIM,))}
    config = ACTConfig(input_features=inputs, output_features=outputs, device="cpu", **cases.ACT_CONFIG)
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    backbone = {
        k: tuple(v.shape) for k, v in policy.state_dict().items() if k.startswith(act_cases.BACKBONE_PREFIX)
    }
    fills = {k: torch.from_numpy(act_cases.backbone_tensor(k, shape)) for k, shape in backbone.items()}
    _, unexpected = policy.load_state_dict(fills, strict=False)
    assert not unexpected
    stats = cases.dataset_stats()
    pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
    policy.save_pretrained(target)
    pre.save_pretrained(target)
    post.save_pretrained(target)
    return {k: list(shape) for k, shape in backbone.items()}


def run_countdown(checkpoint: Path) -> dict:
    import gymnasium as gym
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.scripts.lerobot_eval import eval_policy

    policy = ACTPolicy.from_pretrained(checkpoint)
    policy.eval()
    pre, post = make_pre_post_processors(
        policy.config,
        pretrained_path=str(checkpoint),
        preprocessor_overrides={"device_processor": {"device": "cpu"}},
    )
    env = gym.vector.SyncVectorEnv(
        [cases.make_countdown_env] * cases.COUNTDOWN_BATCH, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    with torch.no_grad():
        result = eval_policy(
            env,
            policy,
            PolicyProcessorPipeline(steps=[]),
            PolicyProcessorPipeline(steps=[]),
            pre,
            post,
            n_episodes=cases.COUNTDOWN_EPISODES,
            start_seed=cases.COUNTDOWN_START_SEED,
        )
    env.close()
    return {"per_episode": result["per_episode"], "aggregated": result["aggregated"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "eval")
    args = parser.parse_args()
    out = args.out / cases.CHECKPOINT
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "checkpoint"
        backbone = build_checkpoint(full)
        eval_dir = Path(tmp) / "eval"
        command = [
            str(Path(sys.executable).with_name("lerobot-eval")),
            f"--policy.path={full}",
            *cases.EVAL_ARGS,
            f"--output_dir={eval_dir}",
        ]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
        info = json.loads((eval_dir / "eval_info.json").read_text())
        countdown = run_countdown(full)

        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(full, out)
        weights = load_file(str(out / "model.safetensors"))
        stored = {k: v for k, v in weights.items() if k not in backbone}
        save_file(stored, str(out / "model.safetensors"), metadata={"format": "pt"})
        for path in out.iterdir():
            path.chmod(0o644)
    (out / "lerobot_eval_info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "lerobot_countdown.json").write_text(json.dumps(countdown, indent=2) + "\n")
    print(json.dumps(countdown["per_episode"], indent=1))
    reference = {
        "made_by": "tools/lerobot_reference/make_eval_reference.py with LeRobot 0.6.1 (lerobot-eval)",
        "eval_args": cases.EVAL_ARGS,
        "backbone_keys": backbone,
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    overall = info["overall"]
    print(json.dumps(info["per_task"][0]["metrics"], indent=1))
    print(
        f"LeRobot: pc_success {overall['pc_success']}, avg_sum_reward {overall['avg_sum_reward']}, "
        f"avg_max_reward {overall['avg_max_reward']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
