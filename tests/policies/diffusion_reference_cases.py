"""The Diffusion Policy cases compared with LeRobot 0.6.1, shared by the reference script
(tools/lerobot_reference/make_diffusion_reference.py, run with LeRobot) and the tests (run with dexloop).

A ResNet-18 alone is 11 M parameters, far too much to store for a test, so the weights and the
observations of the cases are not stored: both sides fill every tensor from a counter-based hash
(``fill``) - integer arithmetic and one float64 multiply, so the values are bit-identical in any numpy
- and the reference stores only what LeRobot produced (key names and shapes of its state dict, its
config.json and processor files, its actions, losses and scheduler outputs). Buffers LeRobot computes
itself (the spatial soft-argmax grid) are kept as LeRobot computed them.

Only numpy here: the module is imported by both interpreters.
"""

from __future__ import annotations

import zlib

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def uniform(name: str, n: int) -> np.ndarray:
    """``n`` float64 values in [-0.5, 0.5) from the splitmix64 hash of (name, index)."""
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) + np.uint64(zlib.crc32(name.encode())) * _GOLDEN
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53) - 0.5


def fill(key: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The value both sides give the state-dict entry ``key`` (a ResNet/U-Net-like scale per kind)."""
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape)) if shape else 1
    if dtype == "int64":  # BatchNorm's num_batches_tracked
        return np.full(shape, 7, dtype=np.int64)
    u = uniform(key, n)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = 1.0 + 0.5 * u
    elif leaf == "running_mean" or leaf == "bias":
        v = 0.2 * u
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = u * (2.0 * (3.0 / fan_in) ** 0.5)  # variance 1 / fan_in
    else:  # norm weights
        v = 1.0 + 0.2 * u
    return v.reshape(shape).astype(np.float32)


def image(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 image batch in [0, 1] on the 1/255 grid (as a decoded uint8 frame)."""
    n = int(np.prod(shape))
    levels = np.floor((uniform(name, n) + 0.5) * 256.0).clip(0, 255)
    return (levels / 255.0).reshape(shape).astype(np.float32)


def vector(name: str, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> np.ndarray:
    n = int(np.prod(shape))
    return (low + (uniform(name, n) + 0.5) * (high - low)).reshape(shape).astype(np.float32)


BATCH = 2
INIT_SEED = 3
N_SELECT_STEPS = 6
SEEDS = (0, 1234)

# Each case: LeRobot DiffusionConfig keyword arguments (besides features) and the features.
CASES: dict[str, dict] = {
    # One camera, GroupNorm, random crop in training / centre crop in eval, DDPM predicting noise.
    "ddpm_gn_crop": {
        "features": {"observation.state": ("STATE", (3,)), "observation.images.top": ("VISUAL", (3, 64, 64))},
        "action_dim": 2,
        "config": {
            "n_obs_steps": 2,
            "horizon": 8,
            "n_action_steps": 4,
            "down_dims": [16, 32],
            "diffusion_step_embed_dim": 16,
            "spatial_softmax_num_keypoints": 8,
            "use_group_norm": True,
            "crop_shape": [56, 56],
            "noise_scheduler_type": "DDPM",
            "num_inference_steps": 10,
            "prediction_type": "epsilon",
        },
    },
    # Two cameras with their own encoders, BatchNorm, resize then crop, environment state, DDIM
    # predicting the sample.
    "ddim_bn_2cam_resize": {
        "features": {
            "observation.state": ("STATE", (3,)),
            "observation.environment_state": ("ENV", (4,)),
            "observation.images.top": ("VISUAL", (3, 96, 96)),
            "observation.images.wrist": ("VISUAL", (3, 96, 96)),
        },
        "action_dim": 2,
        "config": {
            "n_obs_steps": 2,
            "horizon": 8,
            "n_action_steps": 4,
            "down_dims": [16, 32],
            "diffusion_step_embed_dim": 16,
            "spatial_softmax_num_keypoints": 8,
            "use_group_norm": False,
            "resize_shape": [64, 64],
            "crop_ratio": 0.875,
            "use_separate_rgb_encoder_per_camera": True,
            "noise_scheduler_type": "DDIM",
            "num_inference_steps": 10,
            "prediction_type": "sample",
        },
    },
    # Two cameras through one shared encoder, one observation step, bias-only FiLM, no clipping.
    "ddpm_shared_nobs1": {
        "features": {
            "observation.state": ("STATE", (3,)),
            "observation.images.top": ("VISUAL", (3, 64, 64)),
            "observation.images.wrist": ("VISUAL", (3, 64, 64)),
        },
        "action_dim": 3,
        "config": {
            "n_obs_steps": 1,
            "horizon": 8,
            "n_action_steps": 8,
            "down_dims": [16, 32],
            "kernel_size": 3,
            "n_groups": 4,
            "diffusion_step_embed_dim": 16,
            "spatial_softmax_num_keypoints": 8,
            "use_group_norm": True,
            "use_separate_rgb_encoder_per_camera": False,
            "use_film_scale_modulation": False,
            "noise_scheduler_type": "DDPM",
            "num_inference_steps": 20,
            "prediction_type": "sample",
            "clip_sample": False,
        },
    },
    # No camera: state and environment state, three U-Net stages, all 100 DDPM steps, masked loss.
    # Its model.safetensors is LeRobot's own file (random initialisation), stored as is.
    "ddpm_envstate": {
        "features": {"observation.state": ("STATE", (3,)), "observation.environment_state": ("ENV", (5,))},
        "action_dim": 2,
        "store_weights": True,
        "config": {
            "n_obs_steps": 2,
            "horizon": 16,
            "n_action_steps": 6,
            "down_dims": [8, 16, 16],
            "diffusion_step_embed_dim": 16,
            "noise_scheduler_type": "DDPM",
            "prediction_type": "epsilon",
            "do_mask_loss_for_padding": True,
        },
    },
}


def dataset_stats(case: dict) -> dict[str, dict[str, np.ndarray]]:
    """Normalisation statistics of the case's features (images: per-channel mean/std (3, 1, 1))."""
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, (kind, shape) in case["features"].items():
        if kind == "VISUAL":
            stats[key] = {
                "mean": np.array([0.45, 0.5, 0.55], dtype=np.float32).reshape(3, 1, 1),
                "std": np.array([0.25, 0.2, 0.3], dtype=np.float32).reshape(3, 1, 1),
            }
        else:
            stats[key] = {
                "min": vector(f"stats.{key}.min", shape, -3.0, -1.0),
                "max": vector(f"stats.{key}.max", shape, 1.0, 4.0),
            }
    a = case["action_dim"]
    stats["action"] = {
        "min": vector("stats.action.min", (a,), -2.0, -0.5),
        "max": vector("stats.action.max", (a,), 0.5, 3.0),
    }
    return stats


def observation(
    case: dict, tag: str, time_dim: int | None = None, raw: bool = False
) -> dict[str, np.ndarray]:
    """One batched observation (B, [time_dim,] ...) of the case; ``raw`` puts vectors in their
    dataset range (for the processor pipeline), otherwise they are already in [-1, 1]."""
    stats = dataset_stats(case) if raw else None
    out = {}
    lead = (BATCH,) if time_dim is None else (BATCH, time_dim)
    for key, (kind, shape) in case["features"].items():
        name = f"{tag}.{key}"
        if kind == "VISUAL":
            out[key] = image(name, (*lead, *shape))
        elif raw:
            lo, hi = stats[key]["min"], stats[key]["max"]
            out[key] = (lo + (vector(name, (*lead, *shape), 0.0, 1.0)) * (hi - lo)).astype(np.float32)
        else:
            out[key] = vector(name, (*lead, *shape))
    return out


def training_batch(case: dict, tag: str) -> dict[str, np.ndarray]:
    """A training batch: (B, n_obs_steps, ...) observations, (B, horizon, action_dim) actions, padding mask."""
    cfg = case["config"]
    batch = observation(case, tag, time_dim=cfg["n_obs_steps"])
    horizon = cfg["horizon"]
    batch["action"] = vector(f"{tag}.action", (BATCH, horizon, case["action_dim"]))
    pad = np.zeros((BATCH, horizon), dtype=bool)
    pad[1, horizon - 3 :] = True  # the second item runs past its episode's end
    batch["action_is_pad"] = pad
    return batch


# Scheduler cases: constructor keyword arguments (diffusers names) and the inference steps.
SCHEDULER_CASES: dict[str, dict] = {
    "ddpm_eps_clip": {
        "type": "DDPM",
        "kwargs": {"prediction_type": "epsilon", "clip_sample": True},
        "steps": 10,
    },
    "ddpm_sample_noclip": {
        "type": "DDPM",
        "kwargs": {"prediction_type": "sample", "clip_sample": False},
        "steps": 7,
    },
    "ddpm_eps_full": {
        "type": "DDPM",
        "kwargs": {"prediction_type": "epsilon", "clip_sample": True},
        "steps": 100,
    },
    "ddim_eps_clip": {
        "type": "DDIM",
        "kwargs": {"prediction_type": "epsilon", "clip_sample": True},
        "steps": 10,
    },
    "ddim_sample_range": {
        "type": "DDIM",
        "kwargs": {"prediction_type": "sample", "clip_sample": True, "clip_sample_range": 0.5},
        "steps": 25,
    },
}
SCHEDULER_COMMON = {
    "num_train_timesteps": 100,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "squaredcos_cap_v2",
}
SCHEDULER_SHAPE = (2, 8, 3)
