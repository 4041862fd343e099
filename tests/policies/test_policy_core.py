"""The policy core without LeRobot: config files, checkpoint loading errors, processors and their
normalisation modes, the factory on dexloop's dataset metadata, and the ResNet backbone."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from act_reference_cases import CASES, dataset_stats, observations
from safetensors.torch import load_file, save_file

from dexloop.datasets.metadata import LeRobotDatasetMetadata
from dexloop.errors import (
    CheckpointError,
    PolicyConfigError,
    PolicyFeatureError,
    PolicyNotFoundError,
    ProcessorError,
)
from dexloop.policies import (
    ACTConfig,
    PreTrainedConfig,
    PreTrainedPolicy,
    available_policies,
    dataset_to_policy_features,
    get_policy_class,
    make_policy,
    make_policy_config,
    make_pre_post_processors,
)
from dexloop.policies.act import ACTPolicy
from dexloop.policies.backbones import FrozenBatchNorm2d, make_resnet, resnet18
from dexloop.policies.processors import (
    NormalizerProcessorStep,
    PolicyProcessorPipeline,
    UnnormalizerProcessorStep,
    create_transition,
)
from dexloop.policies.processors.converters import TransitionKey
from dexloop.policies.types import FeatureType, NormalizationMode, PolicyFeature

TESTS = Path(__file__).resolve().parents[1]
ACT_DATA = TESTS / "data" / "policies" / "act"
LEROBOT_DATA = TESTS / "data" / "lerobot"
FACTS = json.loads((ACT_DATA / "lerobot_facts.json").read_text())


@pytest.fixture
def envstate(tmp_path) -> Path:
    """A writable copy of the camera-less LeRobot checkpoint (no backbone to restore)."""
    target = tmp_path / "act_envstate"
    shutil.copytree(ACT_DATA / "act_envstate", target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


def tiny_act(**overrides) -> ACTConfig:
    fields = {
        "input_features": {
            "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
            "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 24, 32)),
        },
        "output_features": {"action": PolicyFeature(FeatureType.ACTION, (4,))},
        "chunk_size": 5,
        "n_action_steps": 5,
        "dim_model": 16,
        "n_heads": 2,
        "dim_feedforward": 32,
        "n_encoder_layers": 1,
        "n_vae_encoder_layers": 1,
        "pretrained_backbone_weights": None,
        "device": "cpu",
    }
    fields.update(overrides)
    return ACTConfig(**fields)


# ------------------------------------------------------------------------------------ config.json


def test_config_round_trip_and_overrides(envstate):
    config = PreTrainedConfig.from_pretrained(envstate)
    assert isinstance(config, ACTConfig) and config.type == "act"
    assert config.env_state_feature == PolicyFeature(FeatureType.ENV, (6,))
    assert config.robot_state_feature.shape == (5,) and config.image_features == {}
    assert config.action_delta_indices == list(range(8)) and config.observation_delta_indices is None
    config.save_pretrained(envstate / "again")
    assert PreTrainedConfig.from_pretrained(envstate / "again") == config
    overridden = PreTrainedConfig.from_pretrained(
        envstate, cli_overrides=["--n_action_steps=2", "--dropout=0.0"]
    )
    assert (overridden.n_action_steps, overridden.dropout) == (2, 0.0)


def edit_config(folder: Path, change) -> None:
    data = json.loads((folder / "config.json").read_text())
    change(data)
    (folder / "config.json").write_text(json.dumps(data))


def test_unknown_type_names_config_json(envstate):
    edit_config(envstate, lambda d: d.update(type="no_such_policy"))
    with pytest.raises(PolicyConfigError, match=r"config\.json.*'no_such_policy' is not registered"):
        PreTrainedConfig.from_pretrained(envstate)
    with pytest.raises(PolicyConfigError, match="no_such_policy"):
        PreTrainedPolicy.from_pretrained(envstate)


def test_missing_type_and_unknown_field_name_config_json(envstate, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(envstate, other)
    edit_config(envstate, lambda d: d.pop("type"))
    with pytest.raises(PolicyConfigError, match=r"config\.json: missing 'type'"):
        PreTrainedConfig.from_pretrained(envstate)
    edit_config(other, lambda d: d.update(flux_capacitor=1))
    with pytest.raises(PolicyConfigError, match=r"config\.json: field\(s\) \['flux_capacitor'\]"):
        PreTrainedConfig.from_pretrained(other)


def test_invalid_values_are_config_errors(envstate):
    edit_config(envstate, lambda d: d.update(n_action_steps=50))
    with pytest.raises(PolicyConfigError, match=r"config\.json.*chunk size"):
        PreTrainedConfig.from_pretrained(envstate)
    with pytest.raises(PolicyConfigError, match="temporal ensembling"):
        tiny_act(temporal_ensemble_coeff=0.01, n_action_steps=2)
    with pytest.raises(PolicyConfigError, match="ResNet"):
        tiny_act(vision_backbone="vit")


def test_missing_files_are_not_found_errors(envstate, tmp_path):
    with pytest.raises(PolicyNotFoundError, match=r"config\.json not found in"):
        PreTrainedConfig.from_pretrained(tmp_path)
    (envstate / "model.safetensors").unlink()
    with pytest.raises(PolicyNotFoundError, match=r"model\.safetensors not found in .*act_envstate"):
        PreTrainedPolicy.from_pretrained(envstate)
    # A Hub repo id while offline (the tests never reach the Hub).
    with pytest.raises(PolicyNotFoundError, match="config.json"):
        PreTrainedConfig.from_pretrained("someone/no-such-policy")


# ------------------------------------------------------------------------------------ weights


def rewrite_weights(folder: Path, change) -> None:
    weights = load_file(str(folder / "model.safetensors"))
    change(weights)
    save_file(weights, str(folder / "model.safetensors"))


def test_missing_weight_names_file_and_key(envstate):
    rewrite_weights(envstate, lambda w: w.pop("model.action_head.weight"))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors.*missing key\(s\) \['model\.action_head\.weight'\]"
    ):
        PreTrainedPolicy.from_pretrained(envstate)


def test_unexpected_weight_names_file_and_key(envstate):
    rewrite_weights(envstate, lambda w: w.update({"model.extra.weight": torch.zeros(2)}))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors.*unexpected key\(s\) \['model\.extra\.weight'\]"
    ):
        PreTrainedPolicy.from_pretrained(envstate)


def test_mismatched_shape_names_file_key_and_shapes(envstate):
    rewrite_weights(envstate, lambda w: w.update({"model.action_head.bias": torch.zeros(7)}))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors.*model\.action_head\.bias \(file \(7,\), model \(4,\)\)"
    ):
        PreTrainedPolicy.from_pretrained(envstate)


def test_no_partial_load(envstate):
    """A failed load leaves nothing half-loaded: the error comes before any tensor is copied."""
    config = PreTrainedConfig.from_pretrained(envstate)
    torch.manual_seed(3)
    policy = ACTPolicy(config)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    rewrite_weights(envstate, lambda w: w.update({"model.action_head.bias": torch.zeros(7)}))
    with pytest.raises(CheckpointError):
        policy.load_weights(envstate / "model.safetensors")
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_not_a_safetensors_file(envstate):
    (envstate / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        PreTrainedPolicy.from_pretrained(envstate)


def test_config_of_another_policy_type_is_refused(envstate):
    with pytest.raises(PolicyConfigError, match="needs a PreTrainedConfig"):
        ACTPolicy(object())
    if "diffusion" not in available_policies():
        pytest.skip("no diffusion policy package")
    other = make_policy_config("diffusion", device="cpu")
    with pytest.raises(PolicyConfigError, match=r"type 'diffusion' is not a 'act' policy"):
        ACTPolicy.from_pretrained(envstate, config=other)


# ------------------------------------------------------------------------------------ processors


def test_processor_without_statistics_for_a_key_names_file_and_key(envstate):
    state_file = envstate / "policy_preprocessor_step_3_normalizer_processor.safetensors"
    stats = load_file(str(state_file))
    del stats["observation.environment_state.q99"]
    save_file(stats, str(state_file))
    config = PreTrainedConfig.from_pretrained(envstate)
    with pytest.raises(
        ProcessorError,
        match=r"normalizer_processor\.safetensors: 'observation\.environment_state' has no 'q99'",
    ):
        make_pre_post_processors(config, pretrained_path=envstate)


def test_missing_state_file_and_unknown_step(envstate):
    config = PreTrainedConfig.from_pretrained(envstate)
    (envstate / "policy_postprocessor_step_0_unnormalizer_processor.safetensors").unlink()
    with pytest.raises(
        ProcessorError, match=r"policy_postprocessor_step_0_unnormalizer_processor\.safetensors.*missing"
    ):
        make_pre_post_processors(config, pretrained_path=envstate)
    pre_json = envstate / "policy_preprocessor.json"
    data = json.loads(pre_json.read_text())
    data["steps"][1]["registry_name"] = "warp_drive_processor"
    pre_json.write_text(json.dumps(data))
    with pytest.raises(ProcessorError, match=r"policy_preprocessor\.json: step 1 'warp_drive_processor'"):
        PolicyProcessorPipeline.from_pretrained(envstate, config_filename="policy_preprocessor.json")


def test_overrides_by_registry_name(envstate):
    pre = PolicyProcessorPipeline.from_pretrained(
        envstate,
        config_filename="policy_preprocessor.json",
        overrides={
            "rename_observations_processor": {
                "rename_map": {"observation.env": "observation.environment_state"}
            }
        },
    )
    batch = pre({"observation.state": torch.zeros(5), "observation.env": torch.zeros(6)})
    assert batch["observation.environment_state"].shape == (1, 6)  # renamed, batched, normalised
    with pytest.raises(ProcessorError, match=r"override key\(s\) \['no_such_step'\] match no step"):
        PolicyProcessorPipeline.from_pretrained(
            envstate, config_filename="policy_preprocessor.json", overrides={"no_such_step": {}}
        )


def test_statistics_override_wins(envstate):
    stats = {k: {n: v * 0 + 1 for n, v in s.items()} for k, s in dataset_stats("act_envstate").items()}
    stats["observation.state"]["min"] = np.zeros(5, dtype=np.float32)
    stats["observation.state"]["max"] = np.full(5, 2.0, dtype=np.float32)
    pre = PolicyProcessorPipeline.from_pretrained(
        envstate,
        config_filename="policy_preprocessor.json",
        overrides={"normalizer_processor": {"stats": stats}},
    )
    batch = pre({"observation.state": torch.full((5,), 1.5), "observation.environment_state": torch.zeros(6)})
    torch.testing.assert_close(batch["observation.state"], torch.full((1, 5), 0.5))


def test_processors_made_without_statistics_refuse_to_run():
    """LeRobot lets a feature without statistics through unnormalised; dexloop names it."""
    config = tiny_act()
    pre, post = make_pre_post_processors(config)
    with pytest.raises(ProcessorError, match=r"no statistics for 'observation\.state'"):
        pre({"observation.state": torch.zeros(4), "observation.images.top": torch.zeros(3, 24, 32)})
    with pytest.raises(ProcessorError, match=r"no statistics for 'action'"):
        post(torch.zeros(1, 4))


def test_a_dataset_without_statistics_is_refused(tmp_path):
    meta = LeRobotDatasetMetadata("images_fps10", root=LEROBOT_DATA / "images_fps10")
    meta.stats = None
    with pytest.raises(ProcessorError, match=r"images_fps10 has no statistics"):
        make_pre_post_processors(tiny_act(), dataset_meta=meta)
    bad = {"observation.state": {"mean": np.zeros(4)}}
    with pytest.raises(ProcessorError, match=r"'observation\.state' has no 'std'"):
        NormalizerProcessorStep(
            features=tiny_act().input_features, norm_map=tiny_act().normalization_mapping, stats=bad
        )


@pytest.mark.parametrize("mode", list(NormalizationMode))
def test_normalization_modes(mode):
    """LeRobot's formulas: MEAN_STD with eps on std; the range modes map [low, high] to [-1, 1] and
    divide by eps only where the range is exactly 0; IDENTITY passes through; inverse undoes them."""
    low = torch.tensor([-1.0, 2.0, 0.5])
    high = torch.tensor([3.0, 2.0, 1.5])  # the middle dimension never moves
    names = {
        NormalizationMode.MEAN_STD: ("mean", "std"),
        NormalizationMode.MIN_MAX: ("min", "max"),
        NormalizationMode.QUANTILES: ("q01", "q99"),
        NormalizationMode.QUANTILE10: ("q10", "q90"),
    }
    stats = {"observation.state": {}, "action": {}}
    if mode in names:
        for key in stats:
            stats[key] = {names[mode][0]: low.numpy(), names[mode][1]: high.numpy()}
    features = {
        "observation.state": PolicyFeature(FeatureType.STATE, (3,)),
        "action": PolicyFeature(FeatureType.ACTION, (3,)),
    }
    norm_map = {"STATE": mode.value, "ACTION": mode.value}
    normalizer = NormalizerProcessorStep(features=features, norm_map=norm_map, stats=stats)
    unnormalizer = UnnormalizerProcessorStep(features=features, norm_map=norm_map, stats=stats)
    x = torch.tensor([[0.0, 2.0, 1.0], [3.0, 2.0, 0.5]])
    out = normalizer(create_transition(observation={"observation.state": x}, action=x.clone()))
    y = out[TransitionKey.OBSERVATION]["observation.state"]
    if mode is NormalizationMode.IDENTITY:
        expected = x
    elif mode is NormalizationMode.MEAN_STD:
        expected = (x - low) / (high + 1e-8)
    else:
        denom = torch.where(high - low == 0, torch.tensor(1e-8), high - low)
        expected = 2 * (x - low) / denom - 1
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(out[TransitionKey.ACTION], expected)
    back = unnormalizer(create_transition(action=y))[TransitionKey.ACTION]
    torch.testing.assert_close(back, x)


def test_visual_statistics_broadcast_per_channel():
    features = {"observation.image": PolicyFeature(FeatureType.VISUAL, (3, 4, 4))}
    stats = {"observation.image": {"mean": np.array([0.1, 0.2, 0.3]), "std": np.array([0.5, 0.5, 0.5])}}
    step = NormalizerProcessorStep(features=features, norm_map={"VISUAL": "MEAN_STD"}, stats=stats)
    assert step.state_dict()["observation.image.mean"].shape == (3, 1, 1)
    image = torch.rand(2, 3, 4, 4)
    out = step(create_transition(observation={"observation.image": image}))[TransitionKey.OBSERVATION]
    torch.testing.assert_close(
        out["observation.image"], (image - torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)) / (0.5 + 1e-8)
    )


def test_pipeline_save_load_round_trip(tmp_path):
    config = tiny_act(normalization_mapping={"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "MIN_MAX"})
    stats = {
        "observation.state": {"q01": np.full(4, -1.0), "q99": np.full(4, 1.0)},
        "action": {"min": np.zeros(4), "max": np.full(4, 4.0)},
    }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    pre.save_pretrained(tmp_path)
    post.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "policy_postprocessor.json",
        "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
        "policy_preprocessor.json",
        "policy_preprocessor_step_3_normalizer_processor.safetensors",
    ]
    pre2, post2 = make_pre_post_processors(config, pretrained_path=tmp_path)
    obs = {
        "observation.state": torch.tensor([0.5, -0.5, 0.0, 1.0]),
        "observation.images.top": torch.rand(3, 24, 32),
    }
    a, b = pre(dict(obs)), pre2(dict(obs))
    torch.testing.assert_close(a["observation.state"], b["observation.state"])
    torch.testing.assert_close(a["observation.state"], torch.tensor([[0.5, -0.5, 0.0, 1.0]]))
    torch.testing.assert_close(post2(torch.zeros(1, 4)), torch.full((1, 4), 2.0))


# ------------------------------------------------------------------------------------ factory


def test_factory_types():
    assert get_policy_class("act") is ACTPolicy
    assert isinstance(make_policy_config("act", chunk_size=7, n_action_steps=7), ACTConfig)
    with pytest.raises(PolicyConfigError, match="Unknown policy type 'nope'.*'act'"):
        get_policy_class("nope")
    with pytest.raises(PolicyConfigError, match="nope"):
        make_policy_config("nope")


@pytest.mark.parametrize("name", sorted(FACTS["dataset_to_policy_features"]))
def test_dataset_to_policy_features_is_lerobots(name):
    meta = LeRobotDatasetMetadata(name, root=LEROBOT_DATA / name)
    ours = {
        k: {"type": ft.type.value, "shape": list(ft.shape)}
        for k, ft in dataset_to_policy_features(meta.features).items()
    }
    assert ours == FACTS["dataset_to_policy_features"][name]


def test_make_policy_from_dataset_metadata_and_train_step():
    meta = LeRobotDatasetMetadata("images_fps10", root=LEROBOT_DATA / "images_fps10")
    config = make_policy_config(
        "act",
        chunk_size=4,
        n_action_steps=4,
        dim_model=16,
        n_heads=2,
        dim_feedforward=32,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    policy = make_policy(config, ds_meta=meta)
    assert set(config.input_features) == {"observation.state", "observation.images.top"}
    assert config.image_features["observation.images.top"].shape == (3, 24, 32)
    pre, post = make_pre_post_processors(config, dataset_stats=meta.stats)
    batch = pre(
        {
            "observation.state": torch.zeros(2, 4),
            "observation.images.top": torch.rand(2, 3, 24, 32),
            "action": torch.zeros(2, 4, 4),
            "action_is_pad": torch.zeros(2, 4, dtype=torch.bool),
        }
    )
    policy.train()
    loss, info = policy.forward(batch)
    loss.backward()
    assert set(info) == {"l1_loss", "kld_loss"} and torch.isfinite(loss)
    mean = torch.as_tensor(meta.stats["action"]["mean"], dtype=torch.float32).reshape(1, 4)
    torch.testing.assert_close(post(torch.zeros(1, 4)), mean)  # MEAN_STD: 0 is the dataset's mean
    groups = policy.get_optim_params()
    assert groups[1]["lr"] == config.optimizer_lr_backbone and len(groups[1]["params"]) > 0
    preset = config.get_optimizer_preset()
    assert (preset.type, preset.lr, preset.weight_decay, preset.grad_clip_norm) == ("adamw", 1e-5, 1e-4, 10.0)
    assert config.get_scheduler_preset() is None


def test_features_absent_from_the_dataset_name_the_key(envstate, tmp_path):
    """A checkpoint needing an input the dataset lacks is refused before anything is built."""
    saved = tmp_path / "cam_policy"
    torch.manual_seed(0)
    ACTPolicy(
        tiny_act(
            input_features={
                "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
                "observation.images.side": PolicyFeature(FeatureType.VISUAL, (3, 24, 32)),
            }
        )
    ).save_pretrained(saved)
    config = PreTrainedConfig.from_pretrained(saved)
    config.pretrained_path = saved
    meta = LeRobotDatasetMetadata("images_fps10", root=LEROBOT_DATA / "images_fps10")
    with pytest.raises(PolicyFeatureError, match=r"needs input 'observation\.images\.side'.*images_fps10"):
        make_policy(config, ds_meta=meta)
    policy = make_policy(
        config, ds_meta=meta, rename_map={"observation.images.top": "observation.images.side"}
    )
    assert not policy.training


def test_batch_without_a_configured_input_names_it():
    policy = ACTPolicy(tiny_act())
    with pytest.raises(PolicyFeatureError, match=r"no 'observation\.images\.top'"):
        policy.select_action({"observation.state": torch.zeros(1, 4)})
    with pytest.raises(PolicyFeatureError, match="at least one image or the environment state"):
        ACTPolicy(tiny_act(input_features={"observation.state": PolicyFeature(FeatureType.STATE, (4,))}))


def test_select_action_queue_refills_every_n_action_steps():
    torch.manual_seed(0)
    policy = ACTPolicy(tiny_act(n_action_steps=2))
    calls = []
    original = policy.predict_action_chunk
    policy.predict_action_chunk = lambda batch: calls.append(1) or original(batch)
    obs = {"observation.state": torch.zeros(1, 4), "observation.images.top": torch.zeros(1, 3, 24, 32)}
    for _ in range(5):
        policy.select_action(obs)
    assert len(calls) == 3
    policy.reset()
    policy.select_action(obs)
    assert len(calls) == 4


# ------------------------------------------------------------------------------------ backbone


def test_resnet18_has_torchvisions_state_dict():
    ours = {k: list(v.shape) for k, v in resnet18().state_dict().items()}
    assert ours == FACTS["resnet18_state_dict"]
    assert list(ours) == list(FACTS["resnet18_state_dict"])


def test_frozen_batch_norm_matches_batch_norm_in_eval():
    bn = torch.nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    frozen = FrozenBatchNorm2d(5)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(frozen(x), bn(x))
    assert [name for name, _ in frozen.named_parameters()] == []


def test_backbone_weights_from_a_local_file_never_downloaded(tmp_path, monkeypatch, caplog):
    torch.manual_seed(1)
    source = resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    loaded = make_resnet("resnet18", path, norm_layer=FrozenBatchNorm2d)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key])
    # The torchvision enum name is looked up in local caches only; absent, the weights stay random.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DEXLOOP_BACKBONE_WEIGHTS_DIR", str(tmp_path / "none"))
    with caplog.at_level(logging.WARNING, logger="dexloop.policies"):
        make_resnet("resnet18", "ResNet18_Weights.IMAGENET1K_V1")
    assert "never downloads" in caplog.text
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(path, cache / "resnet18-f37072fd.pth")
    found = make_resnet("resnet18", "ResNet18_Weights.IMAGENET1K_V1")
    torch.testing.assert_close(found.conv1.weight, source.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"resnet18\.pth: backbone weight 'conv1\.weight' has shape"):
        make_resnet("resnet18", path)


def test_observation_generation_is_stable():
    """The reference cases' inputs are made the same way on both sides (spot check of the stream)."""
    first = observations("act_envstate")[0]["observation.state"]
    assert first.shape == (CASES["act_envstate"]["batch"], 5) and first.dtype == np.float32
    assert np.all(np.abs(first) <= 2)


def test_hub_repo_ids_go_through_dexloop_hub(envstate, monkeypatch):
    """A repo id is fetched file by file through dexloop.hub (as a model repo) and loads as a folder does."""
    import dexloop.hub

    asked = []

    def fake_download(repo_id, *, revision, local_dir, allow_patterns, what, token, repo_type):
        asked.append((repo_id, revision, tuple(allow_patterns), repo_type))
        return envstate, revision

    monkeypatch.setattr(dexloop.hub, "download", fake_download)
    policy = PreTrainedPolicy.from_pretrained("someone/act-envstate", revision="v1")
    pre, post = make_pre_post_processors(
        policy.config, pretrained_path="someone/act-envstate", pretrained_revision="v1"
    )
    assert isinstance(policy, ACTPolicy) and len(pre) == 4 and len(post) == 2
    files = {name for _, _, names, _ in asked for name in names}
    assert {
        "config.json",
        "model.safetensors",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
    } <= files
    assert "policy_preprocessor_step_3_normalizer_processor.safetensors" not in files  # read next to its json
    assert {(repo, rev, kind) for repo, rev, _, kind in asked} == {("someone/act-envstate", "v1", "model")}
