"""The Diffusion Policy checkpoints LeRobot 0.6.1 saved for the reference cases
(tests/data/policies/diffusion), made loadable: shared by the parity tests and the export tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from diffusion_reference_cases import fill
from safetensors.torch import load_file, save_file

DATA = Path(__file__).resolve().parents[1] / "data" / "policies" / "diffusion"
PROCESSOR_FILES = (
    "policy_preprocessor.json",
    "policy_preprocessor_step_3_normalizer_processor.safetensors",
    "policy_postprocessor.json",
    "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
)


def build_checkpoint(name: str, dest: Path) -> Path:
    """LeRobot's checkpoint of case ``name`` in ``dest``: its files, and model.safetensors with the
    state dict LeRobot had (refilled, or LeRobot's own file)."""
    src = DATA / name
    dest.mkdir(parents=True, exist_ok=True)
    for fname in ("config.json", *PROCESSOR_FILES):
        shutil.copy(src / fname, dest / fname)
    if (src / "model.safetensors").exists():
        shutil.copy(src / "model.safetensors", dest / "model.safetensors")
        return dest
    manifest = json.loads((src / "state_dict.json").read_text())
    kept = load_file(str(src / "kept.safetensors")) if (src / "kept.safetensors").exists() else {}
    state = {}
    for entry in manifest:
        key = entry["key"]
        if entry["source"] == "kept":
            state[key] = kept[key]
        else:
            arr = fill(key, tuple(entry["shape"]), entry["dtype"])
            total = float(arr.astype(np.float64).sum())
            if abs(total - entry["sum"]) > max(1e-9, 1e-12 * abs(entry["sum"])):
                raise AssertionError(f"{key}: refilled values sum to {total}, LeRobot's to {entry['sum']}")
            state[key] = torch.from_numpy(arr)
    save_file(state, str(dest / "model.safetensors"))
    return dest


def expected(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(DATA / name / "expected.safetensors"))
