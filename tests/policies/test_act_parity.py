"""ACT against LeRobot 0.6.1: checkpoints LeRobot saved (both layouts) load in dexloop and give
LeRobot's actions, chunks, preprocessed inputs and losses (reference outputs made by
tools/lerobot_reference/make_policy_reference.py; see tests/policies/act_reference_cases.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from act_checkpoints import CASE_NAMES, DATA, materialize, reference
from act_reference_cases import (
    BACKBONE_PREFIX,
    CASES,
    TRAIN_SEED,
    observations,
    training_targets,
)
from safetensors.torch import load_file, save_file

from dexloop.policies import ACTConfig, PreTrainedConfig, PreTrainedPolicy, make_pre_post_processors
from dexloop.policies.act import ACTPolicy

ATOL = 1e-5


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("act_checkpoints")
    return {name: materialize(name, parent) for name in [*CASES, "act_2cam_legacy"]}


def as_torch(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in obs.items()}


def load(folder: Path):
    policy = PreTrainedPolicy.from_pretrained(folder)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=folder)
    return policy, pre, post


TRAIN_CASES = list(CASES)  # the legacy checkpoint holds act_2cam's weights: its loss is that case's


@pytest.mark.parametrize("name", CASE_NAMES)
def test_select_action_sequence_and_chunk_match_lerobot(checkpoints, name):
    base = name.removesuffix("_legacy")
    ref, _ = reference(name)
    policy, pre, post = load(checkpoints[name])
    assert isinstance(policy, ACTPolicy) and not policy.training
    policy.reset()
    actions = torch.stack([post(policy.select_action(pre(as_torch(o)))) for o in observations(base)])
    torch.testing.assert_close(actions, ref["select_action"], atol=ATOL, rtol=0)
    policy.reset()
    first = pre(as_torch(observations(base)[0]))
    torch.testing.assert_close(
        policy.predict_action_chunk(first), ref["predict_action_chunk_normalized"], atol=ATOL, rtol=0
    )
    torch.testing.assert_close(
        post(policy.predict_action_chunk(first)), ref["predict_action_chunk"], atol=ATOL, rtol=0
    )
    for key, (kind, _) in CASES[base]["inputs"].items():
        if kind == "VISUAL":
            torch.testing.assert_close(
                first[key].double().sum(dim=(1, 2, 3)), ref[f"pre_sum.{key}"], atol=1e-3, rtol=1e-9
            )
        else:
            torch.testing.assert_close(first[key], ref[f"pre.{key}"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", TRAIN_CASES)
def test_training_loss_and_gradients_match_lerobot(checkpoints, name):
    """Train mode with LeRobot's seed: the same dropout masks and VAE sample, so the same loss dict
    and gradient norm; eval mode gives the L1 loss of the zero latent."""
    base = name.removesuffix("_legacy")
    ref, meta = reference(name)
    policy, pre, _ = load(checkpoints[name])
    batch = pre({**as_torch(observations(base)[0]), **as_torch(training_targets(base))})
    torch.testing.assert_close(batch["action"], ref["pre.action"], atol=ATOL, rtol=0)
    policy.train()
    torch.manual_seed(TRAIN_SEED)
    loss, loss_dict = policy.forward(batch)
    loss.backward()
    grad_norm = torch.sqrt(
        sum((p.grad.double() ** 2).sum() for p in policy.parameters() if p.grad is not None)
    )
    assert abs(loss.item() - ref["train_loss"].item()) <= ATOL
    assert set(loss_dict) == set(meta["train_loss_dict"])
    for key, value in meta["train_loss_dict"].items():
        assert abs(loss_dict[key] - value) <= ATOL
    assert abs(grad_norm.item() - meta["train_grad_norm"]) <= 1e-4 * meta["train_grad_norm"]
    policy.eval()
    eval_loss, eval_dict = policy.forward(batch)
    assert abs(eval_loss.item() - ref["eval_loss"].item()) <= ATOL
    assert eval_dict.keys() == meta["eval_loss_dict"].keys()


@pytest.mark.parametrize("name", list(CASES))
def test_parameter_names_and_fresh_init_are_lerobots(name):
    """The state dict has LeRobot's names; the same torch seed gives LeRobot's initial weights (the
    stored transformer weights are LeRobot's seed-0 initialisation, drawn after torchvision's ResNet)."""
    _, meta = reference(name)
    config = PreTrainedConfig.from_pretrained(DATA / name)
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    assert sorted(policy.state_dict()) == meta["state_dict_keys"]
    stored = load_file(str(DATA / name / "model.safetensors"))
    own = policy.state_dict()
    assert set(stored) == {k for k in own if not k.startswith(BACKBONE_PREFIX)}
    for key, value in stored.items():
        torch.testing.assert_close(own[key], value, atol=0, rtol=0, msg=key)


def test_temporal_ensembling_differs_from_plain_chunking(checkpoints):
    """The ensemble case's actions after the first step are blends, not the chunk's own steps."""
    ref, _ = reference("act_ensemble")
    policy, pre, post = load(checkpoints["act_ensemble"])
    obs = [as_torch(o) for o in observations("act_ensemble")]
    policy.reset()
    first_chunk = post(policy.predict_action_chunk(pre(obs[0])))
    torch.testing.assert_close(ref["select_action"][0], first_chunk[:, 0], atol=ATOL, rtol=0)
    assert (ref["select_action"][1] - first_chunk[:, 1]).abs().max() > 1e-4
    assert policy.temporal_ensembler is not None


def test_compiled_model_keys_load(checkpoints, tmp_path):
    """Weights of a torch.compile-d model (``._orig_mod.`` in the names) load without the infix."""
    folder = tmp_path / "compiled"
    shutil.copytree(checkpoints["act_envstate"], folder)
    weights = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("model.", "model._orig_mod.", 1): v for k, v in weights.items()}
    save_file(renamed, str(folder / "model.safetensors"))
    ref, _ = reference("act_envstate")
    policy, pre, post = load(folder)
    policy.reset()
    actions = torch.stack(
        [post(policy.select_action(pre(as_torch(o)))) for o in observations("act_envstate")]
    )
    torch.testing.assert_close(actions, ref["select_action"], atol=ATOL, rtol=0)


def test_legacy_layout_statistics_become_processor_statistics(checkpoints):
    """The pre-0.4 checkpoint's buffers give the processors the 0.4 checkpoint has."""
    old = make_pre_post_processors(
        PreTrainedConfig.from_pretrained(checkpoints["act_2cam_legacy"]),
        pretrained_path=checkpoints["act_2cam_legacy"],
    )
    new = make_pre_post_processors(
        PreTrainedConfig.from_pretrained(checkpoints["act_2cam"]), pretrained_path=checkpoints["act_2cam"]
    )
    for a, b in zip(old, new, strict=True):
        assert a.get_config() == b.get_config()
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert sa[key].keys() <= sb[key].keys()
            for stat in sa[key]:
                torch.testing.assert_close(sa[key][stat], sb[key][stat])


def test_saved_files_are_lerobots(checkpoints, tmp_path):
    """dexloop writes back what LeRobot wrote: the same config.json content, processor json bytes and
    tensors (the by-hand check tools/lerobot_reference/check_lerobot_loads_dexloop_policy.py loads
    dexloop's checkpoints in LeRobot)."""
    source = checkpoints["act_2cam"]
    policy, pre, post = load(source)
    out = tmp_path / "resaved"
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    names = {p.name for p in source.iterdir() if not p.name.startswith("reference")}
    assert {p.name for p in out.iterdir()} == names
    assert json.loads((out / "config.json").read_text()) == json.loads((source / "config.json").read_text())
    assert next(iter(json.loads((out / "config.json").read_text()))) == "type"
    for name in names:
        if name.endswith(".json") and name != "config.json":
            assert (out / name).read_bytes() == (source / name).read_bytes(), name
        elif name.endswith(".safetensors"):
            a, b = load_file(str(out / name)), load_file(str(source / name))
            assert a.keys() == b.keys()
            assert all(torch.equal(a[k], b[k]) for k in a), name


def test_default_config_is_lerobots():
    facts = json.loads((DATA / "lerobot_facts.json").read_text())
    ours = json.loads(json.dumps(ACTConfig(device="cpu").to_dict()))
    assert ours == facts["default_act_config"]
    assert list(ours) == list(facts["default_act_config"])  # same field order, "type" first


def test_imagenet_weights_name_in_config_neither_downloads_nor_warns_on_load(checkpoints, tmp_path, caplog):
    """LeRobot's default config names torchvision's ImageNet weights; loading a checkpoint never looks
    for them (its own weights replace the backbone's) and gives the same actions."""
    folder = tmp_path / "imagenet_named"
    shutil.copytree(checkpoints["act_ensemble"], folder)
    data = json.loads((folder / "config.json").read_text())
    data["pretrained_backbone_weights"] = "ResNet18_Weights.IMAGENET1K_V1"
    (folder / "config.json").write_text(json.dumps(data))
    ref, _ = reference("act_ensemble")
    with caplog.at_level("WARNING", logger="dexloop.policies"):
        policy, pre, post = load(folder)
    assert "Backbone weights" not in caplog.text
    assert policy.config.pretrained_backbone_weights == "ResNet18_Weights.IMAGENET1K_V1"
    policy.reset()
    actions = torch.stack(
        [post(policy.select_action(pre(as_torch(o)))) for o in observations("act_ensemble")]
    )
    torch.testing.assert_close(actions, ref["select_action"], atol=ATOL, rtol=0)
