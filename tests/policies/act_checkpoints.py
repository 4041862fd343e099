"""The ACT checkpoints LeRobot 0.6.1 saved for the reference cases (tests/data/policies/act), made
loadable: shared by the parity tests and the export tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from act_reference_cases import CASES, backbone_tensor
from safetensors.torch import load_file, save_file

DATA = Path(__file__).resolve().parents[1] / "data" / "policies" / "act"
CASE_NAMES = [*CASES, "act_2cam_legacy"]


def materialize(name: str, parent: Path) -> Path:
    """A writable copy of a stored reference checkpoint with its backbone tensors put back."""
    target = parent / name
    shutil.copytree(DATA / name, target)
    for path in target.iterdir():
        path.chmod(0o644)
    meta = json.loads((DATA / name / "reference.json").read_text())
    weights = load_file(str(DATA / name / "model.safetensors"))
    for key, shape in meta["backbone_keys"].items():
        weights[key] = torch.from_numpy(backbone_tensor(key, tuple(shape)))
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def reference(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """LeRobot's outputs for case ``name`` and the case's facts (reference.json)."""
    return load_file(str(DATA / name / "reference.safetensors")), json.loads(
        (DATA / name / "reference.json").read_text()
    )
