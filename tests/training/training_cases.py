"""Small datasets and a tiny ACT for the training tests (fixtures imported by the test modules).

``state_dataset``: 3 episodes (60 frames) of state, environment state and action, no video, so a
step of a tiny ACT costs milliseconds. ``camera_dataset``: 2 episodes of state and action with one
32x32 camera, for the image path (uint8 frames, ImageNet statistics, a ResNet backbone). Both are
the datasets of the lerobot-train reference runs in tests/data/training."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth import CameraSpec, write_v3_dataset

REPO_ID = "synth/training"

# ACT small enough for a 2-core machine: one encoder and decoder layer of width 32.
TINY_ACT = [
    "--policy.type=act",
    "--policy.dim_model=32",
    "--policy.dim_feedforward=64",
    "--policy.n_heads=2",
    "--policy.n_encoder_layers=1",
    "--policy.n_decoder_layers=1",
    "--policy.n_vae_encoder_layers=1",
    "--policy.latent_dim=8",
    "--policy.chunk_size=5",
    "--policy.n_action_steps=5",
    "--policy.pretrained_backbone_weights=null",
    "--policy.push_to_hub=false",
    "--policy.device=cpu",
]


# Also the dataset of the lerobot-train reference run (tests/data/training/lerobot_act_run).
STATE_DATASET = {
    "fps": 10,
    "episode_lengths": [20, 25, 15],
    "cameras": {},
    "state_dim": 4,
    "extra_features": {"observation.environment_state": ("float32", [3])},
}


@pytest.fixture(scope="session")
def state_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("training") / "state"
    write_v3_dataset(root, **STATE_DATASET)
    return root


# Also the dataset of the lerobot-train Diffusion reference run (lerobot_diffusion_run).
CAMERA_DATASET = {
    "fps": 10,
    "episode_lengths": [12, 10],
    "cameras": {"observation.images.top": {"height": 32, "width": 32, "codec": "libx264"}},
    "state_dim": 4,
}


@pytest.fixture(scope="session")
def camera_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("training") / "camera"
    cameras = {key: CameraSpec(**spec) for key, spec in CAMERA_DATASET["cameras"].items()}
    write_v3_dataset(root, **{**CAMERA_DATASET, "cameras": cameras})
    return root


def as_json(dataset: dict) -> dict:
    """A dataset description as the reference files hold it (tuples as lists)."""
    import json

    return json.loads(json.dumps(dataset))


def dataset_flags(root: Path) -> list[str]:
    return [f"--dataset.repo_id={REPO_ID}", f"--dataset.root={root}"]
