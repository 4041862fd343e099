"""The manifest of an exported policy (``dexloop_export.json``): what a runtime needs to feed the graphs
and to act like the torch policy, without torch or the checkpoint.

It lists each graph file with its SHA-256 (a runtime refuses a graph that was replaced), each input and
output (name, the LeRobot feature it carries, shape with ``"batch"`` for the dynamic batch dimension,
dtype, image layout), the action-selection settings of the policy (chunk size, ``n_action_steps``,
temporal ensembling; for Diffusion ``n_obs_steps``, ``horizon`` and the noise scheduler), the action
names and fps of the training dataset where known, and the source checkpoint's hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dexloop.errors import ExportManifestError

MANIFEST_NAME = "dexloop_export.json"
MANIFEST_FORMAT = "dexloop-export/1"
BATCH = "batch"


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_folder(folder: Path) -> str:
    """One hash over the names and contents of the files directly in ``folder`` (a checkpoint's
    pretrained_model: config.json, model.safetensors, the processor files), in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(sha256_of_file(path)))
    return digest.hexdigest()


@dataclass
class TensorSpec:
    """One graph input or output. ``shape`` holds ints and ``"batch"`` for the dynamic dimension;
    ``feature`` is the LeRobot feature key (``observation.images.top``); ``layout`` ("HWC" or "CHW") is
    given for camera images."""

    name: str
    shape: list[int | str]
    dtype: str
    feature: str | None = None
    layout: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(data["name"]),
            shape=[d if isinstance(d, str) else int(d) for d in data["shape"]],
            dtype=str(data["dtype"]),
            feature=data.get("feature"),
            layout=data.get("layout"),
        )


@dataclass
class GraphSpec:
    """One ONNX file of the export and the tensors it takes and gives."""

    file: str
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphSpec:
        return cls(
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            inputs=[TensorSpec.from_dict(t) for t in data["inputs"]],
            outputs=[TensorSpec.from_dict(t) for t in data["outputs"]],
        )


@dataclass
class ExportManifest:
    """Everything a runtime reads about an export (see the module docstring)."""

    policy_type: str
    precision: str
    opset: int
    # Role -> graph: ACT has "policy"; Diffusion "encoder" and "denoiser".
    graphs: dict[str, GraphSpec]
    action_dim: int
    chunk_size: int
    n_action_steps: int
    temporal_ensemble_coeff: float | None = None
    # Diffusion only: observation history, the denoised horizon and the noise scheduler's settings.
    n_obs_steps: int | None = None
    horizon: int | None = None
    scheduler: dict[str, Any] | None = None
    # Diffusion only: the unnormalisation of the sampled actions ({mode, low, high, eps}).
    action_normalization: dict[str, Any] | None = None
    action_names: list[str] | None = None
    fps: float | None = None
    source: dict[str, Any] = field(default_factory=dict)
    # Measured at export: max |graph - torch| of the unnormalised actions on the check inputs.
    check: dict[str, Any] = field(default_factory=dict)
    exporter: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT

    @property
    def observation_inputs(self) -> list[TensorSpec]:
        """The graph inputs that carry observations (camera images and state vectors)."""
        graph = self.graphs["policy" if self.policy_type == "act" else "encoder"]
        return [spec for spec in graph.inputs if spec.feature is not None]

    def save(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: str | Path, *, verify_graphs: bool = True) -> ExportManifest:
        """The manifest of the export in ``folder``; ExportManifestError when it is missing, unreadable,
        of another format, or (``verify_graphs``) a graph file is missing or its hash differs."""
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise ExportManifestError(
                f"{path}: no export manifest; export the policy with `dexloop export --policy.path=... --onnx "
                f"--output={folder}`"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ExportManifestError(f"{path}: unreadable manifest ({error})") from error
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ExportManifestError(f"{path}: format {found!r}, this dexloop reads {MANIFEST_FORMAT!r}")
        try:
            manifest = cls(
                policy_type=str(data["policy_type"]),
                precision=str(data["precision"]),
                opset=int(data["opset"]),
                graphs={role: GraphSpec.from_dict(g) for role, g in data["graphs"].items()},
                action_dim=int(data["action_dim"]),
                chunk_size=int(data["chunk_size"]),
                n_action_steps=int(data["n_action_steps"]),
                temporal_ensemble_coeff=data.get("temporal_ensemble_coeff"),
                n_obs_steps=data.get("n_obs_steps"),
                horizon=data.get("horizon"),
                scheduler=data.get("scheduler"),
                action_normalization=data.get("action_normalization"),
                action_names=data.get("action_names"),
                fps=data.get("fps"),
                source=dict(data.get("source") or {}),
                check=dict(data.get("check") or {}),
                exporter=dict(data.get("exporter") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ExportManifestError(f"{path}: missing or malformed entry ({error!r})") from error
        needed = {"act": {"policy"}, "diffusion": {"encoder", "denoiser"}}.get(manifest.policy_type)
        if needed is None or set(manifest.graphs) != needed:
            raise ExportManifestError(
                f"{path}: policy type {manifest.policy_type!r} with graphs {sorted(manifest.graphs)}; expected "
                "act with 'policy', or diffusion with 'encoder' and 'denoiser'"
            )
        if verify_graphs:
            for role, graph in manifest.graphs.items():
                graph_path = folder / graph.file
                if not graph_path.is_file():
                    raise ExportManifestError(f"{graph_path}: the {role} graph listed in {path} is missing")
                if sha256_of_file(graph_path) != graph.sha256:
                    raise ExportManifestError(
                        f"{graph_path}: its SHA-256 differs from the one in {path}: the graph was replaced or "
                        "damaged after export; export again"
                    )
        return manifest


__all__ = [
    "BATCH",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "ExportManifest",
    "GraphSpec",
    "TensorSpec",
    "sha256_of_file",
    "sha256_of_folder",
]
