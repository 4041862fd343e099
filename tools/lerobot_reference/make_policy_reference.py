#!/usr/bin/env python
"""Make ACT reference checkpoints and outputs with real LeRobot 0.6.1 for dexloop's policy tests.

Run by hand (it needs LeRobot, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_policy_reference.py --out tests/data/policies/act

For each case of tests/policies/act_reference_cases.py it builds a small random-weight ``ACTPolicy``
in LeRobot (backbone tensors set to the values the cases module defines, so they need not be stored),
saves it with LeRobot's ``save_pretrained`` and its processors (the >= 0.4 layout), reloads it from
those files the way ``lerobot-eval`` does, and records what LeRobot returns for the case's
observations: the ``select_action`` sequence (action queue, or temporal ensembling), the
``predict_action_chunk`` of the first observation, the preprocessed state inputs, and the training
loss in train mode (fixed torch seed: dropout and the VAE sample) and in eval mode. Outputs go to
``<out>/<case>/`` (checkpoint files, model.safetensors without the backbone tensors) and
``<out>/<case>/reference.{safetensors,json}``.

``<out>/act_2cam_legacy/`` is the first case in LeRobot's pre-0.4 layout, written as LeRobot's
normalisation migration would undo it: config.json without the fields 0.3 did not have, and the
normalisation statistics back inside model.safetensors as ``normalize_inputs.buffer_*``,
``normalize_targets.buffer_action.*`` and ``unnormalize_outputs.buffer_action.*`` (LeRobot 0.3.3's
names and shapes); no processor files. Its expected outputs are those of ``act_2cam``.

``<out>/lerobot_facts.json`` holds what LeRobot says about things the tests check without a model:
the config.json of a default ``ACTConfig``, torchvision's ResNet-18 state-dict names and shapes, and
``dataset_to_policy_features`` of the datasets in tests/data/lerobot.

Only LeRobot's public API is called here; nothing of LeRobot is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "policies"))
import act_reference_cases as cases  # noqa: E402
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature  # noqa: E402
from lerobot.policies.act.configuration_act import ACTConfig  # noqa: E402
from lerobot.policies.act.modeling_act import ACTPolicy  # noqa: E402
from lerobot.policies.factory import make_pre_post_processors  # noqa: E402


def lerobot_config(name: str) -> ACTConfig:
    spec = cases.CASES[name]
    inputs = {k: PolicyFeature(type=FeatureType(t), shape=tuple(s)) for k, (t, s) in spec["inputs"].items()}
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(spec["action_dim"],))}
    mapping = {k: NormalizationMode(v) for k, v in spec["normalization_mapping"].items()}
    return ACTConfig(
        input_features=inputs,
        output_features=outputs,
        normalization_mapping=mapping,
        device="cpu",
        **spec["config"],
    )


def torch_dict(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in obs.items()}


def make_case(name: str, out: Path) -> None:
    spec = cases.CASES[name]
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)

    torch.manual_seed(0)
    policy = ACTPolicy(lerobot_config(name))
    state = policy.state_dict()
    backbone = {k: tuple(v.shape) for k, v in state.items() if k.startswith(cases.BACKBONE_PREFIX)}
    if backbone:
        fills = {k: torch.from_numpy(cases.backbone_tensor(k, shape)) for k, shape in backbone.items()}
        _, unexpected = policy.load_state_dict(fills, strict=False)
        assert not unexpected
    stats = cases.dataset_stats(name)
    pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
    policy.save_pretrained(target)
    pre.save_pretrained(target)
    post.save_pretrained(target)

    # Everything below comes from the saved files, as lerobot-eval would load them.
    policy = ACTPolicy.from_pretrained(target, strict=True)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(target))
    observations = [torch_dict(o) for o in cases.observations(name)]

    outputs: dict[str, torch.Tensor] = {}
    policy.reset()
    actions = []
    for obs in observations:
        batch = pre(dict(obs))
        actions.append(post(policy.select_action(batch)))
    outputs["select_action"] = torch.stack(actions)
    policy.reset()
    first = pre(dict(observations[0]))
    outputs["predict_action_chunk"] = post(policy.predict_action_chunk(first))
    outputs["predict_action_chunk_normalized"] = policy.predict_action_chunk(first)
    for key in spec["inputs"]:
        if spec["inputs"][key][0] != "VISUAL":
            outputs[f"pre.{key}"] = first[key]
        else:
            outputs[f"pre_sum.{key}"] = first[key].double().sum(dim=(1, 2, 3))

    targets = cases.training_targets(name)
    train_batch = pre({**observations[0], **torch_dict(targets)})
    outputs["pre.action"] = train_batch["action"]
    policy.train()
    torch.manual_seed(cases.TRAIN_SEED)
    loss, loss_dict = policy.forward(train_batch)
    loss.backward()
    grad_norm = torch.sqrt(
        sum((p.grad.double() ** 2).sum() for p in policy.parameters() if p.grad is not None)
    )
    policy.zero_grad()
    policy.eval()
    eval_loss, eval_dict = policy.forward(train_batch)
    outputs["train_loss"] = loss.detach().reshape(1)
    outputs["eval_loss"] = eval_loss.detach().reshape(1)

    save_file({k: v.detach().contiguous() for k, v in outputs.items()}, str(target / "reference.safetensors"))
    meta = {
        "case": name,
        "lerobot_version": __import__("lerobot").__version__,
        "torch_version": torch.__version__,
        "train_seed": cases.TRAIN_SEED,
        "train_loss_dict": loss_dict,
        "train_grad_norm": float(grad_norm),
        "eval_loss_dict": eval_dict,
        "backbone_keys": {k: list(s) for k, s in backbone.items()},
        "state_dict_keys": sorted(policy.state_dict()),
    }
    (target / "reference.json").write_text(json.dumps(meta, indent=2) + "\n")

    # Store the weights without the backbone the tests recompute.
    weights = load_file(str(target / "model.safetensors"))
    kept = {k: v for k, v in weights.items() if not k.startswith(cases.BACKBONE_PREFIX)}
    save_file(kept, str(target / "model.safetensors"), metadata={"format": "pt"})
    print(
        f"{name}: {len(weights)} tensors ({len(kept)} stored), select_action {tuple(outputs['select_action'].shape)}, "
        f"train loss {loss.item():.6f} {loss_dict}, eval loss {eval_loss.item():.6f}"
    )


def make_legacy(out: Path, source_name: str = "act_2cam") -> None:
    source = out / source_name
    target = out / f"{source_name}_legacy"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    config = json.loads((source / "config.json").read_text())
    for field in ("use_peft", "pretrained_path", "pretrained_revision"):  # not in LeRobot 0.3's base config
        config.pop(field, None)
    (target / "config.json").write_text(json.dumps(config, indent=4))
    weights = load_file(str(source / "model.safetensors"))
    stats = cases.dataset_stats(source_name)
    mapping = config["normalization_mapping"]
    needed = {"MEAN_STD": ("mean", "std"), "MIN_MAX": ("min", "max")}
    for module, features in (
        ("normalize_inputs", config["input_features"]),
        ("normalize_targets", config["output_features"]),
        ("unnormalize_outputs", config["output_features"]),
    ):
        for key, ft in features.items():
            mode = mapping.get(ft["type"], "IDENTITY")
            if mode == "IDENTITY":
                continue
            for stat in needed[mode]:
                value = torch.from_numpy(stats[key][stat]).float().clone()
                if ft["type"] == "VISUAL":
                    value = value.reshape(-1, 1, 1)
                weights[f"{module}.buffer_{key.replace('.', '_')}.{stat}"] = value
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(source / "reference.json", target / "reference.json")
    shutil.copy(source / "reference.safetensors", target / "reference.safetensors")
    print(f"{target.name}: {len(weights)} tensors incl. normalisation buffers, no processor files")


def make_facts(out: Path) -> None:
    import tempfile

    import torchvision
    from lerobot.utils.feature_utils import dataset_to_policy_features

    with tempfile.TemporaryDirectory() as tmp:
        ACTConfig(device="cpu")._save_pretrained(Path(tmp))
        default_config = json.loads((Path(tmp) / "config.json").read_text())
    resnet = torchvision.models.resnet18(weights=None)
    datasets = {}
    for name in ("fps15_types", "two_cams_fps10", "images_fps10", "h264_fps30"):
        features = json.loads(
            (ROOT / "tests" / "data" / "lerobot" / name / "meta" / "info.json").read_text()
        )["features"]
        datasets[name] = {
            key: {"type": ft.type.value, "shape": list(ft.shape)}
            for key, ft in dataset_to_policy_features(features).items()
        }
    facts = {
        "default_act_config": default_config,
        "resnet18_state_dict": {k: list(v.shape) for k, v in resnet.state_dict().items()},
        "dataset_to_policy_features": datasets,
    }
    (out / "lerobot_facts.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(
        f"lerobot_facts.json: {len(facts['resnet18_state_dict'])} ResNet-18 entries, {len(datasets)} datasets"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "policies" / "act")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in cases.CASES:
        make_case(name, args.out)
    make_legacy(args.out)
    make_facts(args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"total {total / 1024:.0f} KiB under {args.out}")


if __name__ == "__main__":
    main()
