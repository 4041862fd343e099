"""The ACT cases compared with LeRobot 0.6.1, shared by the reference script
(tools/lerobot_reference/make_policy_reference.py, run with LeRobot) and the tests (run with dexloop).

A ResNet-18 is 11 M parameters, far too much to store for a test. So the reference keeps LeRobot's
own (randomly initialised) transformer weights but gives every ``model.backbone.*`` tensor a value
both sides compute here (``backbone_tensor``: numpy's PCG64 generator seeded from the key, a stable
stream), and stores model.safetensors without them; the tests put them back before loading. The
observations, actions and dataset statistics of each case are made here too, so only LeRobot's
outputs are stored.

Only numpy here: the module is imported by both interpreters.
"""

from __future__ import annotations

import zlib

import numpy as np

BACKBONE_PREFIX = "model.backbone."
TRAIN_SEED = 1234

# Each case: ACTConfig fields, input features {key: (type, shape)}, action dim, normalisation, steps.
CASES: dict[str, dict] = {
    # Two cameras (feature maps of 2x2 tokens), robot state, VAE, MEAN_STD everywhere, a queue of 4.
    "act_2cam": {
        "config": {
            "chunk_size": 10,
            "n_action_steps": 4,
            "dim_model": 32,
            "n_heads": 2,
            "dim_feedforward": 64,
            "n_encoder_layers": 2,
            "n_decoder_layers": 1,
            "n_vae_encoder_layers": 2,
            "latent_dim": 8,
            "use_vae": True,
            "dropout": 0.1,
            "pretrained_backbone_weights": None,
        },
        "inputs": {
            "observation.state": ("STATE", (4,)),
            "observation.images.top": ("VISUAL", (3, 64, 64)),
            "observation.images.wrist": ("VISUAL", (3, 64, 64)),
        },
        "action_dim": 3,
        "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
        "steps": 6,
        "batch": 2,
    },
    # One camera, temporal ensembling, images not normalised, state MIN_MAX.
    "act_ensemble": {
        "config": {
            "chunk_size": 6,
            "n_action_steps": 1,
            "temporal_ensemble_coeff": 0.01,
            "dim_model": 32,
            "n_heads": 4,
            "dim_feedforward": 48,
            "n_encoder_layers": 1,
            "n_decoder_layers": 1,
            "n_vae_encoder_layers": 1,
            "latent_dim": 4,
            "use_vae": True,
            "dropout": 0.1,
            "pretrained_backbone_weights": None,
        },
        "inputs": {
            "observation.state": ("STATE", (5,)),
            "observation.image": ("VISUAL", (3, 32, 64)),
        },
        "action_dim": 2,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MEAN_STD"},
        "steps": 5,
        "batch": 2,
    },
    # No camera: environment state; pre-norm, GELU, two decoder layers, no VAE; quantile modes.
    "act_envstate": {
        "config": {
            "chunk_size": 8,
            "n_action_steps": 3,
            "dim_model": 16,
            "n_heads": 2,
            "dim_feedforward": 40,
            "feedforward_activation": "gelu",
            "pre_norm": True,
            "n_encoder_layers": 2,
            "n_decoder_layers": 2,
            "use_vae": False,
            "dropout": 0.1,
            "pretrained_backbone_weights": None,
        },
        "inputs": {
            "observation.state": ("STATE", (5,)),
            "observation.environment_state": ("ENV", (6,)),
        },
        "action_dim": 4,
        "normalization_mapping": {"STATE": "MIN_MAX", "ENV": "QUANTILES", "ACTION": "QUANTILE10"},
        "steps": 7,
        "batch": 3,
    },
}


def _rng(name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))


def backbone_tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The value both sides give backbone entry ``key`` (ResNet-like scales, float32)."""
    shape = tuple(int(d) for d in shape)
    rng = _rng(key)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        value = 1.0 + 0.5 * rng.random(shape)
    elif leaf in ("running_mean", "bias"):
        value = 0.1 * rng.standard_normal(shape)
    elif len(shape) == 4:  # convolutions: He (fan-out) scale, as torchvision initialises them
        value = rng.standard_normal(shape) * np.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
    else:  # frozen batch-norm scales
        value = 1.0 + 0.1 * rng.standard_normal(shape)
    return value.astype(np.float32)


def dataset_stats(case: str) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of the case's features as a dataset's stats.json holds them (images (C, 1, 1))."""
    spec = CASES[case]
    rng = _rng(f"{case}/stats")
    features = {key: shape for key, (_, shape) in spec["inputs"].items()}
    features["action"] = (spec["action_dim"],)
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, shape in features.items():
        dims = (shape[0], 1, 1) if len(shape) == 3 else shape
        centre = rng.uniform(-1, 1, dims) if len(shape) != 3 else rng.uniform(0.3, 0.6, dims)
        spread = rng.uniform(0.5, 2.0, dims) if len(shape) != 3 else rng.uniform(0.15, 0.3, dims)
        entry = {
            "mean": centre,
            "std": spread,
            "min": centre - 2 * spread,
            "max": centre + 2 * spread,
            "q01": centre - 1.8 * spread,
            "q99": centre + 1.7 * spread,
            "q10": centre - 1.1 * spread,
            "q90": centre + 1.2 * spread,
        }
        stats[key] = {name: value.astype(np.float32) for name, value in entry.items()}
    if case == "act_envstate":
        # A state dimension that never moves: MIN_MAX divides by eps there, not by zero.
        stats["observation.state"]["max"][1] = stats["observation.state"]["min"][1]
    return stats


def observations(case: str) -> list[dict[str, np.ndarray]]:
    """The raw (unnormalised) batched observations of the case's select_action steps."""
    spec = CASES[case]
    rng = _rng(f"{case}/observations")
    out = []
    for _ in range(spec["steps"]):
        obs = {}
        for key, (kind, shape) in spec["inputs"].items():
            full = (spec["batch"], *shape)
            if kind == "VISUAL":
                obs[key] = (np.floor(rng.random(full) * 256).clip(0, 255) / 255.0).astype(np.float32)
            else:
                obs[key] = rng.uniform(-2, 2, full).astype(np.float32)
        out.append(obs)
    return out


def training_targets(case: str) -> dict[str, np.ndarray]:
    """Raw actions (B, chunk, action_dim) and their padding flags for the forward (loss) check: the
    last sample's final two steps are padding."""
    spec = CASES[case]
    rng = _rng(f"{case}/targets")
    chunk = spec["config"]["chunk_size"]
    action = rng.uniform(-2, 2, (spec["batch"], chunk, spec["action_dim"])).astype(np.float32)
    is_pad = np.zeros((spec["batch"], chunk), dtype=bool)
    is_pad[-1, -2:] = True
    return {"action": action, "action_is_pad": is_pad}
