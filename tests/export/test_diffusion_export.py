"""Diffusion Policy exported as an observation encoder and a denoiser graph, the DDPM/DDIM loop in the
runtime: on the checkpoints LeRobot 0.6.1 saved (tests/data/policies/diffusion) and with LeRobot's
noise draws, the runtime gives LeRobot's actions from raw observations; the step count is chosen at
run time; the numpy sampler equals the torch schedulers on every configuration they support."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))

from diffusion_checkpoints import build_checkpoint, expected
from diffusion_reference_cases import CASES, N_SELECT_STEPS, SEEDS, observation

from dexloop.errors import InferenceInputError
from dexloop.export import ExportManifest, export_policy
from dexloop.inference import Runtime
from dexloop.inference.diffusion_sampler import DiffusionSampler, scheduler_manifest
from dexloop.policies.diffusion import DiffusionConfig, DiffusionPolicy
from dexloop.policies.diffusion.modeling_diffusion import noise_scheduler_for

# Same noise, same steps: the acceptance bound is 1e-3; float reassociation in ONNX Runtime's kernels
# stays near 1e-5 over 10-100 denoising steps.
ATOL = 1e-4


def torch_noise(shape: tuple[int, ...]) -> np.ndarray:
    """A draw from torch's global generator: after torch.manual_seed, the draws LeRobot's policy makes."""
    return torch.randn(shape).numpy()


def robot_observation(runtime: Runtime, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A reference observation as a robot gives it: images uint8 HWC (the references are k/255)."""
    out = {}
    for spec in runtime.inputs:
        value = raw[spec.feature]
        if spec.dtype == "uint8":
            value = np.moveaxis(np.rint(value * 255).astype(np.uint8), -3, -1).copy()
        out[spec.name] = value
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diffusion_checkpoints")
    return {name: build_checkpoint(name, root / name) for name in CASES}


@pytest.fixture(scope="module")
def exports(checkpoints, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diffusion_exports")
    return {name: export_policy(path, root / name).folder for name, path in checkpoints.items()}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_exported_diffusion_gives_lerobots_actions(exports, name, backend):
    """select_action from raw observations (observation history, action queue, unnormalisation) with
    the noise LeRobot drew for the same torch seed."""
    ref = expected(name)
    runtime = Runtime.load(exports[name], backend=backend)
    for seed in SEEDS:
        runtime.reset()
        torch.manual_seed(seed)
        for k in range(N_SELECT_STEPS):
            obs = robot_observation(runtime, observation(CASES[name], f"pipe.{k}", raw=True))
            action = runtime.select_action(obs, noise_fn=torch_noise)
            np.testing.assert_allclose(action, ref[f"pipeline.seed{seed}.step{k}"].numpy(), atol=ATOL, rtol=0)


def test_manifest_of_a_diffusion_export(exports):
    manifest = ExportManifest.load(exports["ddim_bn_2cam_resize"])
    assert sorted(manifest.graphs) == ["denoiser", "encoder"]
    encoder, denoiser = manifest.graphs["encoder"], manifest.graphs["denoiser"]
    assert [(t.name, t.dtype) for t in encoder.inputs] == [
        ("observation.images.top", "uint8"),
        ("observation.images.wrist", "uint8"),
        ("observation.state", "float32"),
        ("observation.environment_state", "float32"),
    ]
    n_obs = manifest.n_obs_steps
    assert encoder.inputs[0].shape == ["batch", n_obs, 96, 96, 3]
    assert [t.name for t in denoiser.inputs] == ["sample", "timestep", "global_cond"]
    assert denoiser.inputs[0].shape == ["batch", manifest.horizon, manifest.action_dim]
    assert manifest.scheduler["type"] == "DDIM"
    assert len(manifest.scheduler["alphas_cumprod"]) == manifest.scheduler["num_train_timesteps"]


@pytest.mark.parametrize("steps", [3, 7])
def test_denoising_steps_are_chosen_at_run_time(checkpoints, exports, steps):
    """The same graphs run any number of DDIM steps, each equal to the torch policy set to that number."""
    name = "ddim_bn_2cam_resize"
    runtime = Runtime.load(exports[name])
    policy = DiffusionPolicy.from_pretrained(checkpoints[name])
    policy.diffusion.num_inference_steps = steps
    from dexloop.policies import make_pre_post_processors

    pre, post = make_pre_post_processors(policy.config, pretrained_path=checkpoints[name])
    raw = observation(CASES[name], "chunk", time_dim=policy.config.n_obs_steps, raw=True)
    noise = np.random.default_rng(steps).standard_normal((2, policy.config.horizon, 2)).astype(np.float32)
    got = runtime.predict_chunk(robot_observation(runtime, raw), noise=noise, num_inference_steps=steps)
    batch = pre({k: torch.from_numpy(v) for k, v in raw.items()})
    with torch.no_grad():
        want = post(policy.predict_action_chunk(batch, noise=torch.from_numpy(noise))).numpy()
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    other = runtime.predict_chunk(robot_observation(runtime, raw), noise=noise, num_inference_steps=steps + 5)
    assert np.abs(other - got).max() > 1e-3  # the step count changes the result


SCHEDULERS = [
    {"noise_scheduler_type": "DDPM", "prediction_type": "epsilon", "num_inference_steps": 100},
    {"noise_scheduler_type": "DDPM", "prediction_type": "sample", "beta_schedule": "linear"},
    {"noise_scheduler_type": "DDPM", "prediction_type": "epsilon", "clip_sample": False},
    {"noise_scheduler_type": "DDIM", "prediction_type": "epsilon", "num_inference_steps": 10},
    {"noise_scheduler_type": "DDIM", "prediction_type": "sample", "num_inference_steps": 25},
    {"noise_scheduler_type": "DDIM", "prediction_type": "epsilon", "beta_schedule": "scaled_linear"},
]


@pytest.mark.parametrize("options", SCHEDULERS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_numpy_sampler_equals_the_torch_scheduler(options):
    """The runtime's loop against dexloop's torch schedulers (which equal diffusers') on a fixed
    nonlinear stand-in for the U-Net, with the same initial and per-step noise."""
    config = DiffusionConfig(**{"num_inference_steps": 20, "beta_schedule": "squaredcos_cap_v2", **options})
    scheduler = noise_scheduler_for(config)
    sampler = DiffusionSampler(scheduler_manifest(scheduler, config))
    weights = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32) * 0.5

    def model(sample: np.ndarray, timestep: np.ndarray) -> np.ndarray:
        return np.tanh(sample @ weights + timestep[:, None, None] / 1000.0).astype(np.float32)

    torch.manual_seed(7)
    noise = torch.randn(3, 8, 4)
    steps = config.num_inference_steps
    scheduler.set_timesteps(steps)
    sample = noise.clone()
    for t in scheduler.timesteps:
        out = torch.from_numpy(model(sample.numpy(), np.full(3, int(t), dtype=np.int64)))
        sample = scheduler.step(out, t, sample).prev_sample
    assert np.array_equal(sampler.timesteps(steps), scheduler.timesteps.numpy())
    torch.manual_seed(7)
    torch.randn(3, 8, 4)  # the initial noise: the per-step draws follow it
    got = sampler.sample(model, noise.numpy(), steps, noise_fn=torch_noise)
    # float32 throughout; without clipping the stand-in model drives samples to tens: relative too.
    np.testing.assert_allclose(got, sample.numpy(), atol=1e-5, rtol=1e-5)


def test_sampler_inputs_are_checked(exports):
    runtime = Runtime.load(exports["ddpm_envstate"])
    sampler = runtime._sampler
    with pytest.raises(InferenceInputError, match="num_inference_steps"):
        sampler.timesteps(0)
    with pytest.raises(InferenceInputError, match="num_inference_steps"):
        sampler.timesteps(sampler.num_train_timesteps + 1)
    raw = observation(CASES["ddpm_envstate"], "chunk", time_dim=runtime.n_obs_steps, raw=True)
    obs = robot_observation(runtime, raw)
    with pytest.raises(InferenceInputError, match="noise"):
        runtime.predict_chunk(obs, noise=np.zeros((2, 3, 1), dtype=np.float32))
    with pytest.raises(InferenceInputError, match="step_noise"):
        runtime.predict_chunk(obs, step_noise=np.zeros((1, 2, 2), dtype=np.float32))
    single = {k: v[:1, -1] for k, v in obs.items()}  # one step of one robot
    with pytest.raises(InferenceInputError, match="shape"):
        runtime.predict_chunk(single)  # a chunk needs the observation history
    runtime.reset()
    assert runtime.select_action(single).shape == (1, runtime.manifest.action_dim)
