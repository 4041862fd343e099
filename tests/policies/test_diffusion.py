"""Diffusion Policy against LeRobot 0.6.1: checkpoints LeRobot saved load here and give LeRobot's
actions for the same ``torch.manual_seed`` (the noise draws match), LeRobot's training loss, and
LeRobot's actions through its saved processors.

The reference checkpoints (tests/data/policies/diffusion/<case>/, written by
tools/lerobot_reference/make_diffusion_reference.py) hold LeRobot's config.json and processor files
and the key list of its state dict; the weights are refilled here with the shared hash of
diffusion_reference_cases (a ResNet-18 is too large to store), except for the camera-less case whose
model.safetensors is LeRobot's own file.

Tolerance 1e-5 (absolute, on values of order 1): the same float32 operations run in another torch build
(2.13 here, 2.11 for the reference), whose convolution kernels may round differently in the last bits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusion_checkpoints import DATA, build_checkpoint, expected
from diffusion_reference_cases import (
    CASES,
    INIT_SEED,
    N_SELECT_STEPS,
    SEEDS,
    dataset_stats,
    observation,
    training_batch,
)
from safetensors.torch import load_file, save_file

from dexloop.errors import CheckpointError, PolicyConfigError, PolicyFeatureError
from dexloop.policies.config import PreTrainedConfig
from dexloop.policies.diffusion import DiffusionConfig, DiffusionPolicy, make_diffusion_pre_post_processors
from dexloop.policies.diffusion.modeling_diffusion import SpatialSoftmax
from dexloop.policies.types import FeatureType, NormalizationMode, PolicyFeature

# Actions after up to 100 float32 denoising steps: torch's CPU kernels take other vector paths on
# other processors (AVX2, AVX-512), which moves the last digits by up to about 1.4e-5 here. A wrong
# noise draw or scheduler step moves actions by orders of magnitude more.
ATOL = 5e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is much faster than two fighting over a busy machine's cores
    (intra-op parallelism on 8x16 tensors only spins)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diffusion-ckpts")
    return {name: build_checkpoint(name, root / name) for name in CASES}


def load(path: Path) -> DiffusionPolicy:
    policy = DiffusionPolicy.from_pretrained(path)
    assert not policy.training
    return policy


# ----------------------------------------------------------------------------------------------
# LeRobot parity
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_keys_are_lerobots(name: str, checkpoints) -> None:
    manifest = json.loads((DATA / name / "state_dict.json").read_text())
    policy = load(checkpoints[name])
    own = policy.state_dict()
    assert list(own) == [e["key"] for e in manifest]
    for entry in manifest:
        assert list(own[entry["key"]].shape) == entry["shape"], entry["key"]
        assert str(own[entry["key"]].dtype).removeprefix("torch.") == entry["dtype"], entry["key"]


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if (DATA / n / "kept.safetensors").exists()])
def test_spatial_softmax_grid_is_lerobots(name: str) -> None:
    """The keypoint grid a fresh model builds (numpy linspace) is the one LeRobot saved."""
    kept = load_file(str(DATA / name / "kept.safetensors"))
    config = DiffusionConfig.from_pretrained(DATA / name)
    fresh = DiffusionPolicy(config).state_dict()
    for key, value in kept.items():
        assert torch.equal(fresh[key], value), key


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_gives_lerobots_initial_weights(name: str) -> None:
    """A fresh model after ``torch.manual_seed`` has LeRobot's initial weights (and BatchNorm
    statistics), tensor by tensor: training from scratch starts where LeRobot's would."""
    ref = expected(name)["init_stats"]
    config = DiffusionConfig.from_pretrained(DATA / name)
    torch.manual_seed(INIT_SEED)
    state = DiffusionPolicy(config).state_dict()
    ours = torch.tensor(
        [[v.double().sum().item(), v.double().abs().sum().item()] for v in state.values()],
        dtype=torch.float64,
    )
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_select_action_matches_lerobot(name: str, checkpoints) -> None:
    ref = expected(name)
    policy = load(checkpoints[name])
    for seed in SEEDS:
        policy.reset()
        torch.manual_seed(seed)
        for k in range(N_SELECT_STEPS):
            action = policy.select_action(tensors(observation(CASES[name], f"select.{k}")))
            torch.testing.assert_close(action, ref[f"select.seed{seed}.step{k}"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_predict_action_chunk_matches_lerobot(name: str, checkpoints) -> None:
    ref = expected(name)
    policy = load(checkpoints[name])
    n_obs = policy.config.n_obs_steps
    for seed in SEEDS:
        policy.reset()
        torch.manual_seed(seed)
        chunk = policy.predict_action_chunk(tensors(observation(CASES[name], "chunk", time_dim=n_obs)))
        assert chunk.shape == (2, policy.config.n_action_steps, policy.config.action_feature.shape[0])
        torch.testing.assert_close(chunk, ref[f"chunk.seed{seed}"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_processors_and_policy_match_lerobot_from_raw_observations(name: str, checkpoints) -> None:
    from dexloop.policies.processors import PolicyProcessorPipeline
    from dexloop.policies.processors.converters import (
        policy_action_to_transition,
        transition_to_policy_action,
    )

    ref = expected(name)
    # 1e-5 in the policy's normalised action space: the unnormaliser scales by (max - min) / 2.
    stats = dataset_stats(CASES[name])["action"]
    atol = ATOL * float(np.max(stats["max"] - stats["min"]) / 2)
    policy = load(checkpoints[name])
    pre = PolicyProcessorPipeline.from_pretrained(checkpoints[name], "policy_preprocessor.json")
    post = PolicyProcessorPipeline.from_pretrained(
        checkpoints[name],
        "policy_postprocessor.json",
        to_transition=policy_action_to_transition,
        to_output=transition_to_policy_action,
    )
    for seed in SEEDS:
        policy.reset()
        torch.manual_seed(seed)
        for k in range(N_SELECT_STEPS):
            raw = tensors(observation(CASES[name], f"pipe.{k}", raw=True))
            action = post(policy.select_action(pre(raw)))
            torch.testing.assert_close(action, ref[f"pipeline.seed{seed}.step{k}"], rtol=0, atol=atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_loss_matches_lerobot(name: str, checkpoints) -> None:
    """Train mode: the random crop, the noise and the timesteps are drawn as LeRobot draws them."""
    ref = expected(name)
    for seed in SEEDS:
        policy = load(checkpoints[name])
        policy.train()
        batch = tensors(training_batch(CASES[name], "train"))
        torch.manual_seed(seed)
        loss, output = policy.forward(batch)
        assert output is None
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
        torch.testing.assert_close(loss.detach().reshape(1), ref[f"loss.seed{seed}"], rtol=0, atol=ATOL)
        # The gradient's route through ResNet's max-pool goes to one of tied maxima (about 3% of the
        # windows of the resized two-camera case), and which one is the CPU kernel's choice: on an
        # AVX2-only CPU that gradient norm is 5e-4 off the reference while the loss agrees to 1e-7.
        torch.testing.assert_close(
            grads.norm().reshape(1), ref[f"grad_norm.seed{seed}"], rtol=2e-3, atol=ATOL
        )


# Fields LeRobot 0.6.1 writes that a LeRobot <= 0.3 config.json does not have.
NEWER_FIELDS = (
    "use_peft",
    "pretrained_path",
    "pretrained_revision",
    "resize_shape",
    "crop_ratio",
    "gradient_checkpointing",
    "compile_model",
    "compile_mode",
)


def test_legacy_checkpoint_with_normalisation_buffers(checkpoints, tmp_path: Path) -> None:
    """The pre-0.4 layout: no processor files, the statistics inside model.safetensors as LeRobot 0.3's
    Normalize / Unnormalize buffers (``normalize_inputs.buffer_observation_state.min`` ...), a
    config.json without the newer fields. The processors come from those buffers and give the
    actions LeRobot 0.6.1 gives with the same statistics in its processor files."""
    from dexloop.policies.factory import make_pre_post_processors

    name = "ddpm_envstate"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    config = json.loads((DATA / name / "config.json").read_text())
    for field_name in NEWER_FIELDS:
        config.pop(field_name)
    (legacy / "config.json").write_text(json.dumps(config, indent=4))
    state = load_file(str(checkpoints[name] / "model.safetensors"))
    stats = dataset_stats(CASES[name])
    for prefix, key in (
        ("normalize_inputs", "observation.state"),
        ("normalize_targets", "action"),
        ("unnormalize_outputs", "action"),
    ):
        for stat in ("min", "max"):
            state[f"{prefix}.buffer_{key.replace('.', '_')}.{stat}"] = torch.from_numpy(
                stats[key][stat].copy()
            )
    save_file(state, str(legacy / "model.safetensors"))

    policy = load(legacy)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(legacy))
    ref = expected(name)
    atol = ATOL * float(np.max(stats["action"]["max"] - stats["action"]["min"]) / 2)
    seed = SEEDS[0]
    torch.manual_seed(seed)
    for k in range(N_SELECT_STEPS):
        raw = tensors(observation(CASES[name], f"pipe.{k}", raw=True))
        action = post(policy.select_action(pre(raw)))
        torch.testing.assert_close(action, ref[f"pipeline.seed{seed}.step{k}"], rtol=0, atol=atol)


def test_config_reads_and_writes_lerobots_config_json() -> None:
    for name in CASES:
        text = json.loads((DATA / name / "config.json").read_text())
        config = PreTrainedConfig.from_pretrained(DATA / name)
        assert isinstance(config, DiffusionConfig)
        written = config.to_dict()
        assert list(written) == list(text), name  # same fields, same order ("type" first)
        assert written == text, name


def test_dexloop_checkpoint_round_trip(checkpoints, tmp_path: Path) -> None:
    """A checkpoint dexloop saves reloads with the same weights, config and actions."""
    name = "ddim_bn_2cam_resize"
    policy = load(checkpoints[name])
    policy.save_pretrained(tmp_path / "out")
    again = load(tmp_path / "out")
    for (k1, v1), (k2, v2) in zip(policy.state_dict().items(), again.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == json.loads(
        (DATA / name / "config.json").read_text()
    )
    obs = tensors(observation(CASES[name], "select.0"))
    torch.manual_seed(5)
    a = policy.select_action(obs)
    torch.manual_seed(5)
    b = again.select_action(obs)
    assert torch.equal(a, b)


def test_make_processors_pipeline_shape() -> None:
    config = _config()
    stats = {
        "observation.state": {"min": torch.zeros(3), "max": torch.ones(3) * 2},
        "action": {"min": -torch.ones(2), "max": torch.ones(2)},
        "observation.images.top": {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)},
    }
    pre, post = make_diffusion_pre_post_processors(config, dataset_stats=stats)
    names = [type(s).__name__ for s in pre.steps]
    assert names == [
        "RenameObservationsProcessorStep",
        "AddBatchDimensionProcessorStep",
        "DeviceProcessorStep",
        "NormalizerProcessorStep",
    ]
    assert [type(s).__name__ for s in post.steps] == ["UnnormalizerProcessorStep", "DeviceProcessorStep"]
    out = pre(
        {
            "observation.state": torch.tensor([1.0, 2.0, 0.0]),
            "observation.images.top": torch.full((3, 32, 32), 0.75),
        }
    )
    torch.testing.assert_close(out["observation.state"], torch.tensor([[0.0, 1.0, -1.0]]))
    torch.testing.assert_close(out["observation.images.top"], torch.ones(1, 3, 32, 32))


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------


def _features(**images) -> dict[str, PolicyFeature]:
    feats = {"observation.state": PolicyFeature(FeatureType.STATE, (3,))}
    for key, shape in (images or {"top": (3, 32, 32)}).items():
        feats[f"observation.images.{key}"] = PolicyFeature(FeatureType.VISUAL, shape)
    return feats


def _config(**kwargs) -> DiffusionConfig:
    defaults = {
        "input_features": _features(),
        "output_features": {"action": PolicyFeature(FeatureType.ACTION, (2,))},
        "down_dims": (16, 32),
        "horizon": 8,
        "n_action_steps": 4,
        "diffusion_step_embed_dim": 16,
        "spatial_softmax_num_keypoints": 4,
        "pretrained_backbone_weights": None,
        "use_group_norm": True,
        "num_inference_steps": 3,
        "device": "cpu",
    }
    defaults.update(kwargs)
    return DiffusionConfig(**defaults)


def test_config_defaults_are_lerobots() -> None:
    config = DiffusionConfig()
    assert config.type == "diffusion"
    assert (config.n_obs_steps, config.horizon, config.n_action_steps) == (2, 64, 32)
    assert config.normalization_mapping == {
        "VISUAL": NormalizationMode.MEAN_STD,
        "STATE": NormalizationMode.MIN_MAX,
        "ACTION": NormalizationMode.MIN_MAX,
    }
    assert config.down_dims == (512, 1024, 2048)
    assert config.pretrained_backbone_weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert (config.noise_scheduler_type, config.num_train_timesteps, config.beta_schedule) == (
        "DDPM",
        100,
        "squaredcos_cap_v2",
    )
    assert config.observation_delta_indices == [-1, 0]
    assert config.action_delta_indices == list(range(-1, 63))
    assert config.reward_delta_indices is None
    optimizer = config.get_optimizer_preset()
    assert (optimizer.type, optimizer.lr, tuple(optimizer.betas), optimizer.eps, optimizer.weight_decay) == (
        "adam",
        1e-4,
        (0.95, 0.999),
        1e-8,
        1e-6,
    )
    assert optimizer.grad_clip_norm == 10.0
    scheduler = config.get_scheduler_preset()
    assert (scheduler.type, scheduler.name, scheduler.num_warmup_steps) == ("diffuser", "cosine", 500)


def test_preset_schedule_warms_up_then_decays() -> None:
    config = _config()
    policy = DiffusionPolicy(config)
    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    lr_scheduler = config.get_scheduler_preset().build(optimizer, num_training_steps=1000)
    lrs = []
    for _ in range(1000):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        lr_scheduler.step()
    assert lrs[0] == 0.0
    assert lrs[250] == pytest.approx(0.5e-4)
    assert lrs[500] == pytest.approx(1e-4)
    assert lrs[750] == pytest.approx(0.5e-4, rel=1e-6)


def test_resize_and_crop_ratio_derive_crop_shape() -> None:
    assert _config(resize_shape=(64, 80), crop_ratio=0.5).crop_shape == (32, 40)
    assert _config(resize_shape=(64, 80), crop_shape=(10, 10)).crop_shape is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 10}, "integer multiple of the downsampling factor"),
        ({"vision_backbone": "vit_b"}, "ResNet"),
        ({"prediction_type": "v_prediction"}, "prediction_type"),
        ({"noise_scheduler_type": "PNDM"}, "noise_scheduler_type"),
        ({"crop_ratio": 1.5}, "crop_ratio"),
        ({"resize_shape": (0, 4)}, "resize_shape"),
        ({"crop_shape": (0, 4)}, "crop_shape"),
    ],
)
def test_bad_config_values_raise(kwargs, match) -> None:
    with pytest.raises(PolicyConfigError, match=match):
        _config(**kwargs)


def test_bad_features_raise() -> None:
    with pytest.raises(PolicyFeatureError, match="observation.state"):
        DiffusionPolicy(
            _config(input_features={"observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))})
        )
    with pytest.raises(PolicyFeatureError, match="at least one image or the environment state"):
        DiffusionPolicy(_config(input_features={"observation.state": PolicyFeature(FeatureType.STATE, (3,))}))
    with pytest.raises(PolicyFeatureError, match="does not match"):
        DiffusionPolicy(_config(input_features=_features(top=(3, 32, 32), wrist=(3, 48, 48))))
    with pytest.raises(PolicyFeatureError, match="crop_shape"):
        DiffusionPolicy(_config(crop_shape=(40, 40)))
    with pytest.raises(PolicyFeatureError, match="'action'"):
        DiffusionPolicy(_config(output_features={}))
    with pytest.raises(PolicyFeatureError, match="BatchNorm"):
        DiffusionPolicy(_config(pretrained_backbone_weights="ResNet18_Weights.IMAGENET1K_V1"))


def test_horizon_not_divisible_in_config_json_raises(tmp_path: Path) -> None:
    data = json.loads((DATA / "ddpm_gn_crop" / "config.json").read_text())
    data["horizon"] = 10
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(PolicyConfigError, match="config.json"):
        DiffusionConfig.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------
# Behaviour and bad input
# ----------------------------------------------------------------------------------------------


def _obs(images=None, state_dim=3, batch=2):
    obs = {"observation.state": torch.rand(batch, state_dim)}
    for key, shape in (images or {"top": (3, 32, 32)}).items():
        obs[f"observation.images.{key}"] = torch.rand(batch, *shape)
    return obs


def test_select_action_queues_replan_every_n_action_steps() -> None:
    policy = DiffusionPolicy(_config(use_separate_rgb_encoder_per_camera=False)).eval()
    calls = []
    original = policy.diffusion.generate_actions

    def counting(batch, noise=None):
        calls.append({k: v.shape for k, v in batch.items()})
        return original(batch, noise=noise)

    policy.diffusion.generate_actions = counting
    for _ in range(9):
        action = policy.select_action(_obs())
        assert action.shape == (2, 2)
    assert len(calls) == 3  # steps 0, 4 and 8
    assert calls[0]["observation.images"] == (2, 2, 1, 3, 32, 32)  # (B, n_obs, cameras, C, H, W)
    policy.reset()
    assert all(len(q) == 0 for q in policy._queues.values())


def test_given_noise_makes_actions_deterministic() -> None:
    policy = DiffusionPolicy(_config(noise_scheduler_type="DDIM")).eval()
    obs = _obs()
    noise = torch.randn(2, 8, 2)
    a = policy.predict_action_chunk(
        {k: v.unsqueeze(1).expand(-1, 2, *v.shape[1:]) for k, v in obs.items()}, noise=noise
    )
    b = policy.predict_action_chunk(
        {k: v.unsqueeze(1).expand(-1, 2, *v.shape[1:]) for k, v in obs.items()}, noise=noise
    )
    assert torch.equal(a, b)
    with pytest.raises(PolicyFeatureError, match="noise has shape"):
        policy.predict_action_chunk(
            {k: v.unsqueeze(1).expand(-1, 2, *v.shape[1:]) for k, v in obs.items()},
            noise=torch.randn(2, 4, 2),
        )


def test_wrong_image_shapes_raise() -> None:
    policy = DiffusionPolicy(_config(input_features=_features(top=(3, 32, 32), wrist=(3, 32, 32)))).eval()
    with pytest.raises(PolicyFeatureError, match="all cameras must have the same shape"):
        policy.select_action(_obs({"top": (3, 32, 32), "wrist": (3, 32, 40)}))
    with pytest.raises(PolicyFeatureError, match="the config declares"):
        policy.select_action(_obs({"top": (3, 40, 40), "wrist": (3, 40, 40)}))
    with pytest.raises(PolicyFeatureError, match="channels"):
        policy.select_action(_obs({"top": (1, 32, 32), "wrist": (1, 32, 32)}))
    with pytest.raises(PolicyFeatureError, match="dimensions"):
        policy.select_action(
            {
                "observation.state": torch.rand(2, 3),
                **{f"observation.images.{k}": torch.rand(3, 32, 32) for k in ("top", "wrist")},
            }
        )


def test_missing_or_wrong_inputs_raise() -> None:
    policy = DiffusionPolicy(_config()).eval()
    obs = _obs()
    del obs["observation.state"]
    with pytest.raises(PolicyFeatureError, match="observation.state"):
        policy.select_action(obs)
    with pytest.raises(PolicyFeatureError, match="last dimension must be 3"):
        policy.select_action(_obs(state_dim=4))
    with pytest.raises(PolicyFeatureError, match="observation steps"):
        policy.predict_action_chunk(
            {"observation.state": torch.rand(2, 3, 3), "observation.images.top": torch.rand(2, 3, 3, 32, 32)}
        )
    train = {
        "observation.state": torch.rand(2, 2, 3),
        "observation.images.top": torch.rand(2, 2, 3, 32, 32),
        "action": torch.rand(2, 8, 2),
    }
    policy.train()
    with pytest.raises(PolicyFeatureError, match="action_is_pad"):
        policy.forward(train)
    train["action_is_pad"] = torch.zeros(2, 8, dtype=torch.bool)
    train["action"] = torch.rand(2, 6, 2)
    with pytest.raises(PolicyFeatureError, match="horizon=8"):
        policy.forward(train)


def test_loss_masking_ignores_padded_actions() -> None:
    """With a U-Net predicting zeros and ``sample`` targets, the loss is the mean squared action over
    the unpadded steps only (and over all steps without masking)."""
    batch = {
        "observation.state": torch.rand(2, 2, 3),
        "observation.images.top": torch.rand(2, 2, 3, 32, 32),
        "action": torch.rand(2, 8, 2),
        "action_is_pad": torch.zeros(2, 8, dtype=torch.bool),
    }
    batch["action_is_pad"][1, 5:] = True
    batch["action"][1, 5:] = 100.0
    for masked in (True, False):
        policy = DiffusionPolicy(_config(do_mask_loss_for_padding=masked, prediction_type="sample"))
        policy.diffusion.unet.forward = lambda x, t, global_cond=None: torch.zeros_like(x)
        loss, _ = policy.forward(batch)
        valid = ~batch["action_is_pad"] if masked else torch.ones(2, 8, dtype=torch.bool)
        want = (batch["action"][valid] ** 2).mean()
        torch.testing.assert_close(loss, want)


def test_checkpoint_with_missing_weight_raises(checkpoints, tmp_path: Path) -> None:
    name = "ddpm_envstate"
    dest = tmp_path / "broken"
    shutil.copytree(checkpoints[name], dest)
    state = load_file(str(dest / "model.safetensors"))
    state.pop("diffusion.unet.final_conv.1.weight")
    save_file(state, str(dest / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"final_conv\.1\.weight"):
        DiffusionPolicy.from_pretrained(dest)


def test_spatial_softmax_expected_keypoints() -> None:
    pool = SpatialSoftmax((1, 3, 5), num_kp=None)
    assert pool.pos_grid[:, 0].reshape(3, 5)[0].tolist() == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])
    features = torch.full((1, 1, 3, 5), -1e4)
    features[0, 0, 2, 4] = 0.0  # all the mass on the bottom-right pixel
    assert pool(features).tolist() == [[[1.0, 1.0]]]


def test_compiled_unet_keeps_lerobots_parameter_names() -> None:
    """compile_model compiles the U-Net's forward without wrapping the module, so the state dict
    (and the checkpoints written from it) has no ``_orig_mod`` level."""
    plain = DiffusionPolicy(_config()).state_dict()
    compiled = DiffusionPolicy(_config(compile_model=True)).state_dict()
    assert list(compiled) == list(plain)
    assert not any("_orig_mod" in key for key in compiled)
